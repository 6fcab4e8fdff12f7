"""`fluvial topic create|list|describe|delete`: `fluvio topic` v0.17.3's flags and output."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated

import typer

from fluvial.cli.common import (
    ClusterOpt,
    OutputOpt,
    ProfileOpt,
    emit,
    err,
    errors_to_exit,
    fail,
    format_duration,
    out,
    parse_duration,
    parse_size,
    render_table,
    to_doc,
    with_admin,
)
from fluvial.client.admin import Admin, TopicConfig, TopicInfo
from fluvial.errors import FluvialError

app = typer.Typer(no_args_is_help=True, help="Topic operations.")

LIST_HEADER = ("NAME", "TYPE", "PARTITIONS", "REPLICAS", "RETENTION TIME", "COMPRESSION", "DEDUPLICATION",
               "STATUS", "REASON")


def topic_row(t: TopicInfo) -> list[str]:
    """One `fluvio topic list` row (STATUS as Fluvio prints it: `resolution::provisioned`)."""
    return [
        t.name, t.type,
        "" if t.partitions is None else str(t.partitions),
        "" if t.replication is None else str(t.replication),
        format_duration(t.retention_seconds),
        t.compression.name.lower(),
        t.deduplication or "none",
        f"resolution::{resolution_label(t)}",
        t.reason,
    ]


def resolution_label(t: TopicInfo) -> str:
    """Fluvio's `TopicResolution::resolution_label`."""
    return {"INIT": "initializing", "DELETING": "Deleting"}.get(
        t.resolution.name, t.resolution.name.lower().replace("_", "-"))


def describe_lines(t: TopicInfo) -> list[str]:
    """`fluvio topic describe`'s key:value lines (plus fluvial's storage settings)."""
    kv: list[tuple[str, str]] = [("Name", t.name), ("Type", t.type)]
    if t.type == "computed":
        kv += [("Partition Count", str(t.partitions)), ("Replication Factor", str(t.replication)),
               ("Ignore Rack Assignment", str(t.ignore_rack_assignment).lower())]
    kv += [("Retention Time", format_duration(t.retention_seconds)),
           ("Compression", t.compression.name.lower())]
    if t.segment_size is not None:
        kv.append(("Segment Size", str(t.segment_size)))
    if t.max_partition_size is not None:
        kv.append(("Max Partition Size", str(t.max_partition_size)))
    if t.deduplication:
        kv.append(("Deduplication Filter", t.deduplication))
    kv += [("Status", resolution_label(t)), ("Reason", t.reason)]
    return [f"{k}:{v}" for k, v in kv] + ["-----------------"]


@app.command("create")
def create(
    name: Annotated[str, typer.Argument(metavar="NAME", help="The name of the topic to create.")],
    partitions: Annotated[int, typer.Option("-p", "--partitions", help="The number of partitions.")] = 1,
    replication: Annotated[int, typer.Option("-r", "--replication",
                                             help="The number of full replicas of each partition.")] = 1,
    ignore_rack_assignment: Annotated[bool, typer.Option(
        "-i", "--ignore-rack-assignment", help="Ignore racks while computing replica assignment.")] = False,
    retention_time: Annotated[str | None, typer.Option(
        "--retention-time", metavar="TIME", help="Retention time, rounded to seconds. Ex: '1h', '2d 10s', "
        "'7 days' (default).")] = None,
    segment_size: Annotated[str | None, typer.Option(
        "--segment-size", metavar="BYTES", help="Segment size. Ex: 2048, '2 Ki', '10 MiB', '1 GB'.")] = None,
    max_partition_size: Annotated[str | None, typer.Option(
        "--max-partition-size", metavar="BYTES", help="Max partition size. Ex: 2048, '2 Ki', '10 MiB', '1 GB'.")] = None,
    compression_type: Annotated[str | None, typer.Option(
        "--compression-type", metavar="TYPE", help="Compression of the topic: none, gzip, snappy, lz4, zstd "
        "or any (default: producer's choice).")] = None,
    dry_run: Annotated[bool, typer.Option("-d", "--dry-run", help="Validate the configuration, create nothing.")] = False,
    system: Annotated[bool, typer.Option("-s", "--system", hidden=True, help="Create a system topic.")] = False,
    min_in_sync_replicas: Annotated[int | None, typer.Option(
        "--min-in-sync-replicas", metavar="N", help="fluvial: ReadCommitted produce is refused while fewer "
        "replicas are in sync (default: min(2, replication)).")] = None,
    unclean_leader_election: Annotated[bool, typer.Option(
        "--unclean-leader-election", help="fluvial: when no in-sync replica is left, elect any live replica "
        "(committed records can be lost).")] = False,
    cluster: ClusterOpt = None,
    profile: ProfileOpt = None,
) -> None:
    """Create a topic with the given name."""
    with errors_to_exit():
        config = TopicConfig(
            partitions=partitions, replication=replication, ignore_rack_assignment=ignore_rack_assignment,
            retention_time=parse_duration(retention_time) if retention_time is not None else None,
            segment_size=parse_size(segment_size) if segment_size is not None else None,
            max_partition_size=parse_size(max_partition_size) if max_partition_size is not None else None,
            compression=compression_type, system=system, dry_run=dry_run,
            min_in_sync_replicas=min_in_sync_replicas, unclean_leader_election=unclean_leader_election)
    warning = with_admin(cluster, profile, lambda admin: admin.create_topic(name, config))
    out.print(f'topic "{name}" created', markup=False)
    if warning:
        err.print(f"warning: {warning}", markup=False)


@app.command("list")
def list_(
    output: OutputOpt = "table",
    system: Annotated[bool, typer.Option("-s", "--system", help="Show system topics only.")] = False,
    cluster: ClusterOpt = None,
    profile: ProfileOpt = None,
) -> None:
    """List all of the topics in the cluster."""
    topics = with_admin(cluster, profile, lambda admin: admin.list_topics(system=system))
    emit(output, to_doc(topics), lambda: render_table(LIST_HEADER, map(topic_row, topics)),
         "No topics found", empty=not topics)


@app.command("describe")
def describe(
    name: Annotated[str, typer.Argument(metavar="NAME", help="The name of the topic to describe.")],
    output: OutputOpt = "table",
    cluster: ClusterOpt = None,
    profile: ProfileOpt = None,
) -> None:
    """Print detailed information about a topic."""
    topic = with_admin(cluster, profile, lambda admin: admin.describe_topic(name))
    emit(output, to_doc(topic), lambda: "\n".join("  " + line for line in describe_lines(topic)))


@app.command("delete")
def delete(
    names: Annotated[list[str], typer.Argument(metavar="NAME...", help="One or more topics to delete.")],
    continue_on_error: Annotated[bool, typer.Option(
        "--continue-on-error", help="Continue deleting in case of an error.")] = False,
    system: Annotated[bool, typer.Option("-s", "--system", help="Delete system topic(s).")] = False,
    cluster: ClusterOpt = None,
    profile: ProfileOpt = None,
) -> None:
    """Delete one or more topics with the given name(s)."""
    failed = with_admin(cluster, profile, lambda admin: _delete_all(admin, names, continue_on_error, system))
    if failed:
        fail(f"failed deleting topic(s): {', '.join(failed)}. Check previous errors.")


async def _delete_all(admin: Admin, names: Sequence[str], continue_on_error: bool, system: bool) -> list[str]:
    failed: list[str] = []
    for name in names:
        try:
            await admin.delete_topic(name, force=system)
        except FluvialError as e:
            if not continue_on_error:
                raise
            failed.append(name)
            out.print(f'topic "{name}" delete failed with: {e}', markup=False)
            continue
        out.print(f'{"system topic" if system else "topic"} "{name}" deleted', markup=False)
    return failed
