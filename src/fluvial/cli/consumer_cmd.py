"""`fluvial consumer list|delete`: stored consumer offsets — `fluvio consumer` v0.17.3's commands and
columns (CONSUMER TOPIC PARTITION OFFSET LAST SEEN)."""

from __future__ import annotations

import time
from typing import Annotated

import typer

from fluvial.cli.common import (
    ClusterOpt,
    OutputOpt,
    ProfileOpt,
    emit,
    fail,
    format_duration,
    out,
    render_table,
    to_doc,
    with_client,
)
from fluvial.client.consumer import StoredOffset, delete_consumer_offset, list_consumer_offsets

app = typer.Typer(no_args_is_help=True, help="Consumer offsets: list and delete.")

LIST_HEADER = ("CONSUMER", "TOPIC", "PARTITION", "OFFSET", "LAST SEEN")


def consumer_rows(offsets: list[StoredOffset], now: float) -> list[list[str]]:
    """Sorted as fluvio sorts them (consumer, topic, partition); LAST SEEN as a humantime duration."""
    ordered = sorted(offsets, key=lambda o: (o.consumer_id, o.topic, o.partition))
    return [[o.consumer_id, o.topic, str(o.partition), str(o.offset),
             format_duration(max(0, int(now) - o.modified_time))] for o in ordered]


@app.command("list")
def list_(output: OutputOpt = "table", cluster: ClusterOpt = None, profile: ProfileOpt = None) -> None:
    """List the consumers and the offsets they stored."""
    offsets = with_client(cluster, profile, lambda c: list_consumer_offsets(c, timeout=c.timeout))
    if not offsets:                    # whatever -O says, as fluvio (consumer/list.rs)
        out.print("No consumers found", markup=False)
        return
    emit(output, to_doc(offsets), lambda: render_table(LIST_HEADER, consumer_rows(offsets, time.time())))


@app.command("delete")
def delete(
    consumer: Annotated[str, typer.Argument(help="The consumer id.")],
    topic: Annotated[str | None, typer.Option("-t", "--topic", help="Only its offsets of this topic.")] = None,
    partition: Annotated[int | None, typer.Option("-p", "--partition", help="Only this partition (needs --topic).")] = None,
    cluster: ClusterOpt = None,
    profile: ProfileOpt = None,
) -> None:
    """Delete a consumer's stored offsets (all of them, one topic's, or one partition's)."""
    if partition is not None and topic is None:
        fail("--partition needs --topic")

    async def remove(client: object) -> list[StoredOffset]:
        found = await list_consumer_offsets(client, consumer_id=consumer, topic=topic,
                                            timeout=client.timeout)  # type: ignore[attr-defined]
        chosen = [o for o in found if partition is None or o.partition == partition]
        for o in chosen:
            await delete_consumer_offset(client, o.consumer_id, o.topic, o.partition,
                                         timeout=client.timeout)  # type: ignore[attr-defined]
        return chosen

    deleted = with_client(cluster, profile, remove)
    if not deleted:
        out.print("no consumers found", markup=False)
    for o in deleted:
        out.print(f'consumer "{o.consumer_id}" on topic "{o.topic}" and partition "{o.partition}" deleted',
                  markup=False)
