"""`fluvial profile [current]|list|switch NAME`: the Fluvio profile file (`$FLV_PROFILE_PATH`, else
`~/.fluvio/config`), as `fluvio profile` v0.17.3."""

from __future__ import annotations

from typing import Annotated

import typer

from fluvial.cli.common import OutputOpt, emit, errors_to_exit, out, render_table, to_doc
from fluvial.client import profile as profiles

app = typer.Typer(help="Manage profiles (the Fluvio profile file). Without a command: print the current one.")

LIST_HEADER = ("", "PROFILE", "CLUSTER", "ADDRESS", "TLS", "INSTALLATION")


def profile_row(p: profiles.ProfileInfo) -> list[str]:
    return ["*" if p.current else "", p.name, p.cluster, p.endpoint, p.tls.capitalize(), p.installation]


@app.callback(invoke_without_command=True)
def main(ctx: typer.Context) -> None:
    if ctx.invoked_subcommand is None:
        current()


@app.command("current")
def current() -> None:
    """Print the name of the current profile."""
    with errors_to_exit():
        name = profiles.current_profile()
    out.print(name if name is not None else "no current profile set", markup=False)


@app.command("list")
def list_(output: OutputOpt = "table") -> None:
    """List the profiles; the current one is marked with *."""
    with errors_to_exit():
        items = profiles.list_profiles()
    emit(output, to_doc(items), lambda: render_table(LIST_HEADER, map(profile_row, items)),
         f"no profiles in {profiles.profile_path()}", empty=not items)


@app.command("switch")
def switch(name: Annotated[str, typer.Argument(metavar="NAME", help="The profile to make current.")]) -> None:
    """Switch to the named profile."""
    with errors_to_exit():
        profiles.switch_profile(name)
