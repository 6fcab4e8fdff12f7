"""`fluvial profile [current]|list|switch NAME`: the Fluvio profile file (`$FLV_PROFILE_PATH`, else
`~/.fluvio/config`), as `fluvio profile` v0.17.3."""

from __future__ import annotations

from typing import Annotated

import typer

from fluvial.cli.common import OutputOpt, emit, err, errors_to_exit, out, render_table, to_doc
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


EXPORT_FORMATS = ("table", "yaml", "json", "toml")


def _check_export_format(value: str) -> str:
    if value.lower() not in EXPORT_FORMATS:
        raise typer.BadParameter(f"{value!r} is not one of {', '.join(EXPORT_FORMATS)}")
    return value.lower()


@app.command("export")
def export(
    name: Annotated[str | None, typer.Argument(metavar="[PROFILE_NAME]", help="The profile (default: current).")] = None,
    output: Annotated[str, typer.Option("-O", "--output", metavar="TYPE", callback=_check_export_format,
                                        help="toml (default: a profile file), json or yaml (the cluster).")] = "toml",
) -> None:
    """Export a profile for use in other applications (`fluvio profile export`)."""
    import sys

    if output == "table":
        err.print("Table format is not supported, using TOML instead", markup=False)
        output = "toml"
    with errors_to_exit():
        cluster, config = profiles.export_cluster(name)
    if output == "toml":
        sys.stdout.write(profiles.dumps(profiles.export_config(cluster, config)).lstrip("\n") + "\n")
    else:
        from fluvial.cli import serde_shape

        sys.stdout.write(serde_shape.dumps(config, output) + "\n")
