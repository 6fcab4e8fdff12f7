"""`fluvial partition list`: `fluvio partition list` v0.17.3's flags and columns."""

from __future__ import annotations

from typing import Annotated

import typer

from fluvial.cli.common import (
    ClusterOpt,
    OutputOpt,
    ProfileOpt,
    emit,
    format_bytes,
    render_table,
    to_doc,
    with_admin,
)
from fluvial.client.admin import PartitionInfo
from fluvial.protocol.metadata import PARTITION_SIZE_ERROR, PARTITION_SIZE_NOT_SUPPORTED

app = typer.Typer(no_args_is_help=True, help="Partition operations.")

LIST_HEADER = ("TOPIC", "PARTITION", "LEADER", "MIRROR", "REPLICAS", "RESOLUTION", "SIZE", "BASE", "HW", "LEO",
               "LRS", "FOLLOWER OFFSETS")

_RESOLUTION = {"OFFLINE": "Offline", "ONLINE": "Online", "LEADER_OFFLINE": "LeaderOffline",
               "ELECTION_LEADER_FOUND": "ElectionLeaderFound", "OUT_OF_STORAGE": "OutOfStorage"}


def size_text(size: int) -> str:
    if size == PARTITION_SIZE_NOT_SUPPORTED:
        return "NA"
    if size == PARTITION_SIZE_ERROR or size < 0:
        return "ERROR"
    return format_bytes(size)


def partition_row(p: PartitionInfo) -> list[str]:
    """One `fluvio partition list` row (Rust `Debug` renderings: `[5002]`, `Online`,
    `[ReplicaStatus { spu: 5002, hw: 3, leo: 3 }]`)."""
    followers = ", ".join(f"ReplicaStatus {{ spu: {f.spu}, hw: {f.hw}, leo: {f.leo} }}" for f in p.followers)
    return [
        p.topic, str(p.partition), str(p.leader), "",
        "[" + ", ".join(str(r) for r in p.replicas if r != p.leader) + "]",
        _RESOLUTION.get(p.resolution.name, p.resolution.name),
        size_text(p.size), str(p.base_offset), str(p.hw), str(p.leo), str(p.lsr),
        f"[{followers}]",
    ]


@app.command("list")
def list_(
    output: OutputOpt = "table",
    system: Annotated[bool, typer.Option("-s", "--system", help="Show system partitions only.")] = False,
    cluster: ClusterOpt = None,
    profile: ProfileOpt = None,
) -> None:
    """List all of the partitions in the cluster."""
    parts = with_admin(cluster, profile, lambda admin: admin.list_partitions(system=system))
    docs = [{**to_doc(p), "status": p.status} for p in parts]
    emit(output, docs, lambda: render_table(LIST_HEADER, map(partition_row, parts)), "No partitions found",
         empty=not parts)
