"""`fluvial` entry point."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from fluvial import __version__
from fluvial.cli.cluster import app as cluster_app
from fluvial.cli.common import ROOT_TARGET, ClapTyper, fail
from fluvial.cli.consume import consume
from fluvial.cli.consumer_cmd import app as consumer_app
from fluvial.cli.partition import app as partition_app
from fluvial.cli.produce import produce
from fluvial.cli.profile_cmd import app as profile_app
from fluvial.cli.run import app as run_app
from fluvial.cli.smartmodule import app as smartmodule_app
from fluvial.cli.spu import app as spu_app
from fluvial.cli.table_format import app as table_format_app
from fluvial.cli.topic import app as topic_app
from fluvial.storage.fileio import OS_IO
from fluvial.storage.validator import find_replica_dirs, verify_replica_dir

app = ClapTyper(no_args_is_help=True, add_completion=False, help="fluvial: the Fluvio streaming platform in Python.")
storage_app = typer.Typer(no_args_is_help=True, help="Inspect replica storage on disk.")
app.add_typer(storage_app, name="storage")
app.add_typer(cluster_app, name="cluster")
app.add_typer(run_app, name="run")
app.add_typer(topic_app, name="topic")
app.add_typer(partition_app, name="partition")
app.add_typer(spu_app, name="spu")
app.add_typer(profile_app, name="profile")
app.command("produce")(produce)
app.command("consume")(consume)
app.add_typer(consumer_app, name="consumer")
app.add_typer(smartmodule_app, name="smartmodule")
app.add_typer(smartmodule_app, name="sm", hidden=True)      # fluvio's short form
app.add_typer(table_format_app, name="table-format")
app.add_typer(table_format_app, name="tf", hidden=True)       # fluvio's visible alias

out = Console()


@app.callback()
def root(
    cluster: str | None = typer.Option(None, "-c", "--cluster", metavar="HOST:PORT",
                                       help="Address of the SC, for every command (as `fluvio -c`)."),
    profile: str | None = typer.Option(None, "-P", "--profile", metavar="NAME",
                                       help="Use this profile of the Fluvio profile file, for every command."),
) -> None:
    """fluvial: the Fluvio streaming platform in Python."""
    ROOT_TARGET["cluster"], ROOT_TARGET["profile"] = cluster, profile


@app.command()
def version() -> None:
    """Print fluvial's version."""
    out.print(f"fluvial {__version__}")


@storage_app.command("verify")
def storage_verify(
    directory: Path = typer.Argument(..., help="A data dir, an spu-logs-N dir or one replica dir."),
    output: str = typer.Option("table", "-O", "--output", help="table or json"),
) -> None:
    """CRC-check every batch of every segment under DIRECTORY; exit 1 if anything is corrupt."""
    if not directory.is_dir():
        fail(f"{directory} is not a directory")
    replicas = find_replica_dirs(directory)
    reports = [verify_replica_dir(r, OS_IO) for r in replicas]
    if output == "json":
        doc = [{"replica": r.path, "ok": r.ok, "segments": len(r.segments),
                "batches": sum(s.batches for s in r.segments), "bytes": sum(s.bytes for s in r.segments),
                "problems": [{"file": p.path, "position": p.position, "reason": p.reason} for p in r.all_problems()]}
               for r in reports]
        sys.stdout.write(json.dumps(doc, indent=2) + "\n")
    else:
        table = Table("REPLICA", "SEGMENTS", "BATCHES", "BYTES", "STATUS")
        for r in reports:
            status = "ok" if r.ok else f"[red]{len(r.all_problems())} problem(s)[/red]"
            table.add_row(r.path, str(len(r.segments)), str(sum(s.batches for s in r.segments)),
                          str(sum(s.bytes for s in r.segments)), status)
        out.print(table)
        for r in reports:
            for p in r.all_problems():
                out.print(f"corrupt: {p.path} at byte {p.position}: {p.reason}", highlight=False, soft_wrap=True)
    if not replicas:
        fail(f"no replica directories (with segment files) under {directory}")
    if not all(r.ok for r in reports):
        raise typer.Exit(1)


def main() -> None:  # pragma: no cover
    app()


if __name__ == "__main__":
    main()
