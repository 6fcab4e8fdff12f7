"""`fluvial partition list` (`fluvio partition list` v0.17.3's flags and columns) and fluvial's own
`partition describe | elect-leader | move`."""

from __future__ import annotations

from typing import Annotated

import typer

from fluvial.cli.common import (
    ClusterOpt,
    OutputOpt,
    ProfileOpt,
    emit,
    emit_objects,
    errors_to_exit,
    format_bytes,
    out,
    render_table,
    to_doc,
    with_admin,
)
from fluvial.client.admin import PartitionInfo, partition_info
from fluvial.errors import InvalidConfig
from fluvial.protocol import fluvial_api as fa
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
    objects = with_admin(cluster, profile, lambda admin: admin.list_objects("Partition", system=system))
    pairs = sorted(((partition_info(m), m) for m in objects), key=lambda pm: (pm[0].topic, pm[0].partition))
    parts = [p for p, _m in pairs]
    emit_objects(output, "Partition", [m for _p, m in pairs],
                 lambda: render_table(LIST_HEADER, map(partition_row, parts)), "No partitions found")


DESCRIBE_HEADER = ("TOPIC", "PARTITION", "LEADER", "EPOCH", "RESOLUTION", "HW", "LEO", "ISR", "MIN ISR",
                   "REPLICA", "ONLINE", "IN SYNC", "REPLICA LEO", "LAG", "STATE")


def describe_rows(parts: list[fa.PartitionDetail]) -> list[list[str]]:
    """One row per replica; the partition's columns only on its first row."""
    rows = []
    for p in parts:
        isr = "[" + ", ".join(str(r.spu_id) for r in p.replicas if r.in_sync) + "]"
        for n, r in enumerate(p.replicas):
            head = ([p.topic, str(p.partition), str(p.leader), str(p.leader_epoch),
                     _RESOLUTION.get(p.resolution, p.resolution), str(p.hw), str(p.leo), isr, str(p.min_in_sync)]
                    if n == 0 else [""] * 9)
            rows.append([*head, str(r.spu_id) + (" (leader)" if r.spu_id == p.leader else ""),
                         "yes" if r.online else "no", "yes" if r.in_sync else "no",
                         str(r.leo) if r.leo >= 0 else "-", str(r.lag) if r.lag >= 0 else "-", r.state])
    return rows


@app.command("describe")
def describe(
    topic: Annotated[str, typer.Argument(metavar="TOPIC", help="The topic whose partitions to describe.")],
    output: OutputOpt = "table",
    cluster: ClusterOpt = None,
    profile: ProfileOpt = None,
) -> None:
    """fluvial: leader, leader epoch, in-sync replicas and every replica's LEO and lag."""
    parts = with_admin(cluster, profile, lambda admin: admin.partition_details(topic))
    emit(output, [to_doc(p) for p in parts], lambda: render_table(DESCRIBE_HEADER, describe_rows(parts)),
         "No partitions found", empty=not parts)


@app.command("elect-leader")
def elect_leader(
    topic: Annotated[str, typer.Option("--topic", help="Topic of the partition.")],
    partition: Annotated[int, typer.Option("--partition", help="Partition number.")] = 0,
    spu: Annotated[int | None, typer.Option("--spu", help="The in-sync SPU to lead (default: the preferred "
                                            "replica, the first of the replica list).")] = None,
    cluster: ClusterOpt = None,
    profile: ProfileOpt = None,
) -> None:
    """fluvial: move leadership back to the preferred (or a named) in-sync replica."""
    with_admin(cluster, profile, lambda admin: admin.elect_leader(topic, partition, spu))
    out.print(f"leader election requested for {topic}-{partition}", markup=False)


@app.command("move")
def move(
    topic: Annotated[str, typer.Option("--topic", help="Topic of the partition.")],
    replicas: Annotated[str, typer.Option("--replicas", metavar="ID,ID,...",
                                          help="The new replica set, preferred leader first.")],
    partition: Annotated[int, typer.Option("--partition", help="Partition number.")] = 0,
    cluster: ClusterOpt = None,
    profile: ProfileOpt = None,
) -> None:
    """fluvial: re-replicate a partition onto other SPUs (new followers catch up, then the old are dropped)."""
    with errors_to_exit():
        try:
            ids = [int(x) for x in replicas.split(",") if x.strip()]
        except ValueError:
            raise InvalidConfig(f"--replicas must be SPU ids separated by commas, not {replicas!r}") from None
    with_admin(cluster, profile, lambda admin: admin.move_partition(topic, partition, ids))
    out.print(f"partition {topic}-{partition} moving to {ids}", markup=False)
