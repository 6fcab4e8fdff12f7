"""`fluvial table-format create|list|delete` (alias `tf`): TableFormat objects on the SC, as
`fluvio table-format` v0.17.3 (`crates/fluvio-cli/src/client/tableformat/`); `consume -O full-table
--table-format NAME` lays records out by one."""

from __future__ import annotations

import enum
from pathlib import Path
from typing import Annotated, Any

import typer

from fluvial.cli.common import (
    ClusterOpt,
    OutputOpt,
    ProfileOpt,
    emit_objects,
    errors_to_exit,
    one_line,
    out,
    render_table,
    with_admin,
)
from fluvial.errors import InvalidConfig
from fluvial.protocol import metadata as md

app = typer.Typer(no_args_is_help=True, help="Create and manage TableFormats (how `consume -O full-table` shows records).")

LIST_HEADER = ("NAME", "STATUS")


def _enum(kind: type[enum.IntEnum], value: Any, where: str) -> Any:
    if value is None:
        return None
    try:
        return kind[str(value).upper()]
    except KeyError:
        raise InvalidConfig(f"{where}: unknown variant `{value}`, expected one of "
                            f"{', '.join(f'`{m.name}`' for m in kind)}") from None


def spec_from_config(doc: Any, path: Path) -> md.TableFormatSpec:
    """fluvio's `TableFormatConfig` YAML (`tableformat/mod.rs:77-104`): `name`, `input_format`, `columns`
    (each `keyPath`, `headerLabel`, `width`, `alignment`, `format`, `display`, `primaryKey`,
    `headerBgColor`, `headerTextColor`: camelCase), `smartmodule`; unknown keys are ignored, as serde does."""
    if not isinstance(doc, dict) or not isinstance(doc.get("name"), str):
        raise InvalidConfig(f"{path}: missing field `name`")
    columns = None
    if doc.get("columns") is not None:
        columns = []
        for c in doc["columns"]:
            if not isinstance(c, dict) or "keyPath" not in c:
                raise InvalidConfig(f"{path}: columns: missing field `keyPath`")
            columns.append(md.TableFormatColumnConfig(
                header_label=c.get("headerLabel"), width=None if c.get("width") is None else str(c["width"]),
                alignment=_enum(md.TableFormatAlignment, c.get("alignment"), f"{path}: alignment"),
                key_path=str(c["keyPath"]), format=c.get("format"), display=c.get("display"),
                primary_key=c.get("primaryKey"),
                header_bg_color=_enum(md.Color, c.get("headerBgColor"), f"{path}: headerBgColor"),
                header_text_color=_enum(md.Color, c.get("headerTextColor"), f"{path}: headerTextColor")))
    return md.TableFormatSpec(name=doc["name"],
                              input_format=_enum(md.DataFormat, doc.get("input_format"), f"{path}: input_format"),
                              columns=columns, smartmodule=doc.get("smartmodule"))


def read_config(path: Path) -> md.TableFormatSpec:
    import yaml

    try:
        doc = yaml.safe_load(path.read_text())
    except yaml.YAMLError as e:
        raise InvalidConfig(f"{path}: {one_line(str(e))}") from None
    return spec_from_config(doc, path)


@app.command("create")
def create(
    config: Annotated[Path, typer.Option("-c", "--config", metavar="CONFIG", help="The path to the TableFormat config.")],
    cluster: Annotated[str | None, typer.Option("--cluster", metavar="HOST:PORT", help="Address of the SC.")] = None,
    profile: ProfileOpt = None,
) -> None:
    """Create a new TableFormat display."""
    with errors_to_exit():
        spec = read_config(config)
    with_admin(cluster, profile, lambda admin: admin.create_table_format(spec))
    out.print(f'tableformat "{spec.name}" created', markup=False)


@app.command("list")
def list_(output: OutputOpt = "table", cluster: ClusterOpt = None, profile: ProfileOpt = None) -> None:
    """List all TableFormat displays."""
    objects = with_admin(cluster, profile, lambda admin: admin.list_table_formats())
    rows = [(m.name, md.TableFormatResolution(m.status.resolution).name.capitalize()) for m in objects]
    emit_objects(output, "TableFormat", objects, lambda: render_table(LIST_HEADER, rows), "no tableformats")


@app.command("delete")
def delete(
    name: Annotated[str, typer.Argument(metavar="NAME", help="The name of the table format to delete.")],
    cluster: ClusterOpt = None,
    profile: ProfileOpt = None,
) -> None:
    """Delete a TableFormat display (prints nothing, as fluvio)."""
    with_admin(cluster, profile, lambda admin: admin.delete_table_format(name))
