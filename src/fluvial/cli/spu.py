"""`fluvial spu list`: `fluvio cluster spu list` v0.17.3's columns (ID NAME STATUS TYPE RACK PUBLIC PRIVATE);
`fluvial spu describe`: fluvial's DEGRADED state and its reason, from the SC."""

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
    render_table,
    to_doc,
    with_admin,
)
from fluvial.client.admin import SpuInfo, spu_info
from fluvial.errors import InvalidConfig

app = typer.Typer(no_args_is_help=True, help="SPU operations.")

LIST_HEADER = ("ID", "NAME", "STATUS", "TYPE", "RACK", "PUBLIC", "PRIVATE")


def spu_row(s: SpuInfo) -> list[str]:
    """One row as Fluvio prints it: status `Online`, type `"custom"` (its Display quotes it)."""
    return [str(s.id), s.name, s.resolution.name.capitalize(), f'"{s.spu_type.name.lower()}"', s.rack or "-",
            s.address, s.private_address]


@app.command("list")
def list_(output: OutputOpt = "table", cluster: ClusterOpt = None, profile: ProfileOpt = None) -> None:
    """List all SPUs known by this cluster."""
    objects = sorted(with_admin(cluster, profile, lambda admin: admin.list_objects("SPU")), key=lambda m: m.spec.id)
    spus = [spu_info(m) for m in objects]
    emit_objects(output, "SPU", objects, lambda: render_table(LIST_HEADER, map(spu_row, spus)), "no spu")


@app.command("describe")
def describe(
    spu_id: Annotated[int | None, typer.Argument(metavar="[ID]", help="One SPU (default: every SPU).")] = None,
    output: OutputOpt = "table",
    cluster: ClusterOpt = None,
    profile: ProfileOpt = None,
) -> None:
    """fluvial: an SPU's state as the SC sees it (online / degraded / offline) with the reason, its data
    dirs (state, free, total, reserve) and the partitions it leads."""
    health = with_admin(cluster, profile, lambda admin: admin.cluster_health())
    spus = [s for s in health.spus if spu_id is None or s.spu_id == spu_id]
    if spu_id is not None and not spus:
        with errors_to_exit():
            raise InvalidConfig(f"SPU {spu_id} not found")

    def text() -> str:
        lines = []
        for s in spus:
            lines += [f"SPU {s.spu_id}", f"  state:    {s.state}", f"  address:  {s.address}",
                      f"  leads:    {s.leads} partition(s)"]
            if s.reason:
                lines.append(f"  reason:   {s.reason}")
            for dr in s.dirs:
                lines.append(f"  data dir: {dr.path} {dr.state.name.lower()}, {dr.free_bytes} of {dr.total_bytes} "
                             f"bytes free, reserve {dr.reserve_bytes}")
        return "\n".join(lines)

    emit(output, [to_doc(s) for s in spus], text, "no spu", empty=not spus)
