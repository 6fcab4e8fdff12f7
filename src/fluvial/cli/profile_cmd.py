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


@app.command("delete")
def delete(name: Annotated[str, typer.Argument(metavar="PROFILE_NAME", help="The profile to delete.")]) -> None:
    """Delete the named profile (`fluvio profile delete`: its texts, exit 0)."""
    with errors_to_exit():
        found, was_current = profiles.delete_profile(name)
    if not found:
        out.print(f"profile {name} not found", markup=False)
        return
    out.print(f"profile {name} deleted", markup=False)
    out.print("warning: this removed your current profile, use 'fluvio profile switch' to select a different one"
              if was_current else "profile deleted", markup=False)


@app.command("delete-cluster")
def delete_cluster(
    name: Annotated[str, typer.Argument(metavar="CLUSTER_NAME", help="The cluster connection to delete.")],
    force: Annotated[bool, typer.Option("-f", "--force", help="Delete it even if profiles use it.")] = False,
) -> None:
    """Delete the named cluster (`fluvio profile delete-cluster`: its texts, exit 0)."""
    with errors_to_exit():
        users = profiles.delete_cluster(name, force)
    if users is None:
        out.print(f"No profile named {name} exists", markup=False)
    elif users:
        out.print(f"The following profiles reference cluster {name}:", markup=False)
        for p in users:
            out.print(f"  {p}", markup=False)
        out.print("If you would still like to delete the cluster, use --force", markup=False)
    else:
        out.print(f"Cluster {name} deleted", markup=False)


@app.command("rename")
def rename(
    old: Annotated[str, typer.Argument(metavar="FROM", help="The name of the profile to rename.")],
    new: Annotated[str, typer.Argument(metavar="TO", help="The new name to give the profile.")],
) -> None:
    """Rename a profile (silent, as fluvio)."""
    with errors_to_exit():
        profiles.rename_profile(old, new)


def _check_installation(value: str | None) -> str | None:
    if value is not None and value.lower() not in profiles.INSTALLATION_TYPES:
        raise typer.BadParameter(f"unsupported installation type '{value}'")
    return value


@app.command("add")
def add(
    name: Annotated[str, typer.Argument(metavar="PROFILE_NAME", help="Name of the profile to add.")],
    address: Annotated[str, typer.Argument(metavar="CLUSTER_ADDRESS", help="Address of the SC, e.g. 127.0.0.1:9003.")],
    installation: Annotated[str | None, typer.Argument(
        metavar="[INSTALLATION_TYPE]", callback=_check_installation,
        help="local, local-k8, k8 (default, as fluvio), read-only, docker or cloud.")] = None,
) -> None:
    """Manually add a profile and switch to it (`fluvio profile add`)."""
    with errors_to_exit():
        profiles.add_profile(name, address, profiles.INSTALLATION_TYPES[(installation or "k8").lower()])
    out.print(f"Switched to profile {name}", markup=False)
