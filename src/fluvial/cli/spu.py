"""`fluvial spu list`: `fluvio cluster spu list` v0.17.3's columns (ID NAME STATUS TYPE RACK PUBLIC PRIVATE)."""

from __future__ import annotations

import typer

from fluvial.cli.common import ClusterOpt, OutputOpt, ProfileOpt, emit, render_table, to_doc, with_admin
from fluvial.client.admin import SpuInfo

app = typer.Typer(no_args_is_help=True, help="SPU operations.")

LIST_HEADER = ("ID", "NAME", "STATUS", "TYPE", "RACK", "PUBLIC", "PRIVATE")


def spu_row(s: SpuInfo) -> list[str]:
    """One row as Fluvio prints it: status `Online`, type `"custom"` (its Display quotes it)."""
    return [str(s.id), s.name, s.resolution.name.capitalize(), f'"{s.spu_type.name.lower()}"', s.rack or "-",
            s.address, s.private_address]


@app.command("list")
def list_(output: OutputOpt = "table", cluster: ClusterOpt = None, profile: ProfileOpt = None) -> None:
    """List all SPUs known by this cluster."""
    spus = with_admin(cluster, profile, lambda admin: admin.list_spus())
    docs = [{**to_doc(s), "online": s.online} for s in spus]
    emit(output, docs, lambda: render_table(LIST_HEADER, map(spu_row, spus)), "no spu", empty=not spus)
