"""`fluvial topic create|list|describe|delete`: `fluvio topic` v0.17.3's flags and output."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any

import typer

from fluvial.cli.common import (
    ClusterOpt,
    OutputOpt,
    ProfileOpt,
    choice,
    conflict,
    emit,
    emit_objects,
    err,
    errors_to_exit,
    fail,
    format_duration,
    one_line,
    out,
    parse_duration,
    parse_size,
    render_table,
    with_admin,
)
from fluvial.client.admin import Admin, TopicConfig, TopicInfo, topic_info
from fluvial.errors import AdminError, ErrorCode, FluvialError, InvalidConfig, admin_error
from fluvial.sc import topics as rules

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


# `fluvio topic create`'s argument group "config-arg" (`topic/create.rs:44-148, 307-346` of v0.17.3):
# `-c/--config` conflicts with every one of them; clap names them like this in its conflict message.
CONFIG_ARG_NAMES = {
    "name": "[name]", "partitions": "--partitions <partitions>", "replication": "--replication <integer>",
    "ignore_rack_assignment": "--ignore-rack-assignment", "replica_assignment": "--replica-assignment <file.json>",
    "retention_time": "--retention-time <time>", "segment_size": "--segment-size <bytes>",
    "compression_type": "--compression-type <compression>", "max_partition_size": "--max-partition-size <bytes>",
    "system": "--system",
}
CONFIG_FLAG = "--config <PATH>"
REPLICA_ASSIGNMENT_FLAG = "--replica-assignment <file.json>"


def _given(ctx: typer.Context, *names: str) -> list[str]:
    """The parameters the user typed (not defaults), in `names` order."""
    from typer._click.core import ParameterSource

    return [n for n in names if ctx.get_parameter_source(n) not in (None, ParameterSource.DEFAULT)]


def check_name(name: str) -> None:
    """`fluvio topic create`'s own check before any request (`topic/create.rs:283-290`)."""
    if not name.strip():
        raise InvalidConfig("Invalid argument: Topic name is required")
    problem = rules.name_problem(name)
    if problem is not None:
        raise InvalidConfig(f"Invalid argument: Invalid Topic name {name}. {problem}")


@app.command("create")
def create(
    ctx: typer.Context,
    name: Annotated[str | None, typer.Argument(metavar="NAME", help="The name of the topic to create.")] = None,
    partitions: Annotated[int, typer.Option("-p", "--partitions", help="The number of partitions.")] = 1,
    replication: Annotated[int, typer.Option("-r", "--replication",
                                             help="The number of full replicas of each partition.")] = 1,
    ignore_rack_assignment: Annotated[bool, typer.Option(
        "-i", "--ignore-rack-assignment", help="Ignore racks while computing replica assignment.")] = False,
    replica_assignment: Annotated[Path | None, typer.Option(
        "-f", "--replica-assignment", metavar="FILE.JSON",
        help='Replica assignment file: [{"id": 0, "replicas": [5001, 5002]}, ...] (leader first).')] = None,
    config: Annotated[Path | None, typer.Option(
        "-c", "--config", metavar="PATH", help="Topic configuration file (fluvio's YAML: meta, partition, "
        "retention, compression); conflicts with the name and the other settings.")] = None,
    retention_time: Annotated[str | None, typer.Option(
        "--retention-time", metavar="TIME", help="Retention time, rounded to seconds. Ex: '1h', '2d 10s', "
        "'7 days' (default).")] = None,
    segment_size: Annotated[str | None, typer.Option(
        "--segment-size", metavar="BYTES", help="Segment size. Ex: 2048, '2 Ki', '10 MiB', '1 GB'.")] = None,
    max_partition_size: Annotated[str | None, typer.Option(
        "--max-partition-size", metavar="BYTES", help="Max partition size. Ex: 2048, '2 Ki', '10 MiB', '1 GB'.")] = None,
    compression_type: Annotated[str | None, typer.Option(
        "--compression-type", metavar="TYPE", callback=choice(("none", "gzip", "snappy", "lz4", "any", "zstd"),
                                                              "compression type"), help="Compression of the topic: none, gzip, snappy, lz4, zstd "
        "or any (default: producer's choice).")] = None,
    dry_run: Annotated[bool, typer.Option("-d", "--dry-run", help="Validate the configuration, create nothing.")] = False,
    system: Annotated[bool, typer.Option("-s", "--system", hidden=True, help="Create a system topic.")] = False,
    min_in_sync_replicas: Annotated[int | None, typer.Option(
        "--min-in-sync-replicas", metavar="N", help="fluvial: ReadCommitted produce is refused while fewer "
        "replicas are in sync (default: min(2, replication)).")] = None,
    unclean_leader_election: Annotated[bool, typer.Option(
        "--unclean-leader-election", help="fluvial: when no in-sync replica is left, elect any live replica "
        "(committed records can be lost).")] = False,
    cluster: Annotated[str | None, typer.Option(
        "--cluster", metavar="HOST:PORT", help="Address of the SC (default: the current profile's, else "
        "127.0.0.1:9003). (`-c` is --config here, as in fluvio.)")] = None,
    profile: ProfileOpt = None,
) -> None:
    """Create a topic with the given name (or from a --config file)."""
    if config is not None and (given := _given(ctx, *CONFIG_ARG_NAMES)):
        conflict(CONFIG_FLAG, CONFIG_ARG_NAMES[given[0]])
    if replica_assignment is not None and (given := _given(ctx, "partitions", "replication", "ignore_rack_assignment")):
        conflict(REPLICA_ASSIGNMENT_FLAG, CONFIG_ARG_NAMES[given[0]])
    with errors_to_exit():
        if config is not None:
            name, topic_config = topic_config_file(config, dry_run)
        else:
            name = name or ""
            assignment = read_replica_assignment(replica_assignment) if replica_assignment is not None else None
            topic_config = TopicConfig(
                partitions=partitions, replication=replication, ignore_rack_assignment=ignore_rack_assignment,
                retention_time=parse_duration(retention_time) if retention_time is not None else None,
                segment_size=parse_size(segment_size) if segment_size is not None else None,
                max_partition_size=parse_size(max_partition_size) if max_partition_size is not None else None,
                compression=compression_type, system=system, dry_run=dry_run,
                min_in_sync_replicas=min_in_sync_replicas, unclean_leader_election=unclean_leader_election,
                replica_assignment=assignment)
        check_name(name)
    warning = with_admin(cluster, profile, lambda admin: admin.create_topic(name, topic_config))
    out.print(f'topic "{name}" created', markup=False)
    if warning:
        err.print(f"warning: {warning}", markup=False)


def read_replica_assignment(path: Path) -> tuple[tuple[int, tuple[int, ...]], ...]:
    """fluvio's replica assignment file: the JSON of `PartitionMaps` (`topic/create.rs:363-369`)."""
    try:
        doc = json.loads(path.read_text())
        return tuple((int(m["id"]), tuple(int(s) for s in m["replicas"])) for m in doc)
    except (ValueError, TypeError, KeyError) as e:
        raise InvalidConfig(f"error reading replica assignment: {e}") from None


# fluvio's `TopicConfig` YAML (`topic/config.rs` of v0.17.3, serde kebab-case; compression by its Rust
# variant name, e.g. `Lz4`)
_YAML_COMPRESSION = {"None": "none", "Gzip": "gzip", "Snappy": "snappy", "Lz4": "lz4", "Any": "any", "Zstd": "zstd"}


def topic_config_file(path: Path, dry_run: bool) -> tuple[str, TopicConfig]:
    """(name, TopicConfig) from fluvio's topic configuration file."""
    doc = _yaml_mapping(path)
    meta, part = doc.get("meta"), doc.get("partition") or {}
    retention, compression = doc.get("retention") or {}, doc.get("compression") or {}
    if not isinstance(meta, dict) or "name" not in meta:
        raise InvalidConfig(f"{path}: missing field `meta.name`")
    if doc.get("deduplication") is not None:
        raise InvalidConfig(f"{path}: deduplication is not supported by fluvial yet")
    kind = compression.get("type", "Any")
    if kind not in _YAML_COMPRESSION:
        raise InvalidConfig(f"{path}: compression.type: unknown variant `{kind}`, expected one of "
                            f"{', '.join(f'`{k}`' for k in _YAML_COMPRESSION)}")
    maps = part.get("maps")
    return str(meta["name"]), TopicConfig(
        partitions=int(part.get("count", 1)), replication=int(part.get("replication", 1)),
        ignore_rack_assignment=bool(part.get("ignore-rack-assignment", False)),
        retention_time=parse_duration(str(retention["time"])) if retention.get("time") is not None else None,
        segment_size=parse_size(str(retention["segment-size"])) if retention.get("segment-size") is not None else None,
        max_partition_size=parse_size(str(part["max-size"])) if part.get("max-size") is not None else None,
        compression=_YAML_COMPRESSION[kind], dry_run=dry_run,
        replica_assignment=None if maps is None else tuple(
            (int(m["id"]), tuple(int(s) for s in m["replicas"])) for m in maps))


def _yaml_mapping(path: Path) -> dict[str, Any]:
    import yaml

    try:
        doc = yaml.safe_load(path.read_text())
    except yaml.YAMLError as e:
        raise InvalidConfig(f"{path}: {one_line(str(e))}") from None
    if not isinstance(doc, dict):
        raise InvalidConfig(f"{path}: expected a YAML mapping")
    return doc


@app.command("list")
def list_(
    output: OutputOpt = "table",
    system: Annotated[bool, typer.Option("-s", "--system", help="Show system topics only.")] = False,
    cluster: ClusterOpt = None,
    profile: ProfileOpt = None,
) -> None:
    """List all of the topics in the cluster."""
    objects = with_admin(cluster, profile, lambda admin: admin.list_objects("Topic", system=system))
    objects.sort(key=lambda m: m.name)
    topics = [topic_info(m) for m in objects]
    emit_objects(output, "Topic", objects, lambda: render_table(LIST_HEADER, map(topic_row, topics)),
                 "No topics found")


@app.command("describe")
def describe(
    name: Annotated[str, typer.Argument(metavar="NAME", help="The name of the topic to describe.")],
    output: OutputOpt = "table",
    cluster: ClusterOpt = None,
    profile: ProfileOpt = None,
) -> None:
    """Print detailed information about a topic (`-O json|yaml`: `[{name, spec, status}]`, as fluvio's
    `describe_objects` serialises the list, `topic/describe.rs:63-75`)."""
    meta = with_admin(cluster, profile, lambda admin: _find(admin, name))
    topic = topic_info(meta)
    emit_objects(output, "Topic", [meta], lambda: "\n".join("  " + line for line in describe_lines(topic)), "")


async def _find(admin: Admin, name: str) -> Any:
    """The topic's metadata object, system or not; TopicNotFound when there is none."""
    for system in (False, True):
        found = [m for m in await admin.list_objects("Topic", names=[name], system=system) if m.name == name]
        if found:
            return found[0]
    raise admin_error(ErrorCode.TOPIC_NOT_FOUND, name, f'topic "{name}" not found')


@app.command("delete")
def delete(
    names: Annotated[list[str], typer.Argument(metavar="NAME...", help="One or more topics to delete.")],
    continue_on_error: Annotated[bool, typer.Option(
        "-c", "--continue-on-error", help="Continue deleting in case of an error.")] = False,
    system: Annotated[bool, typer.Option("-s", "--system", help="Delete system topic(s).")] = False,
    force: Annotated[bool, typer.Option(
        "-f", "--force", help="Skip deletion confirmation (fluvial never asks: accepted for fluvio's scripts).")
    ] = False,
    cluster: Annotated[str | None, typer.Option(
        "--cluster", metavar="HOST:PORT", help="Address of the SC (`-c` is --continue-on-error here, as in fluvio).")
    ] = None,
    profile: ProfileOpt = None,
) -> None:
    """Delete one or more topics with the given name(s)."""
    failed = with_admin(cluster, profile, lambda admin: _delete_all(admin, names, continue_on_error, system))
    if failed:
        fail("Failed deleting topic(s). Check previous errors.")


async def _delete_all(admin: Admin, names: Sequence[str], continue_on_error: bool, system: bool) -> list[str]:
    failed: list[str] = []
    for name in names:
        try:
            await admin.delete_topic(name, force=system)
        except FluvialError as e:
            if not continue_on_error:
                raise
            failed.append(name)
            text = e.fluvio_text if isinstance(e, AdminError) else str(e)
            out.print(f'topic "{name}" delete failed with: {text}', markup=False)
            continue
        out.print(f'{"system topic" if system else "topic"} "{name}" deleted', markup=False)
    return failed


@app.command("add-partition")
def add_partition(
    topic: Annotated[str, typer.Argument(metavar="TOPIC", help="Topic name.")],
    count: Annotated[int, typer.Option("-c", "--count", help="Number of partitions to add.")] = 1,
    cluster: Annotated[str | None, typer.Option(
        "--cluster", metavar="HOST:PORT", help="Address of the SC (`-c` is --count here, as in fluvio).")] = None,
    profile: ProfileOpt = None,
) -> None:
    """Add partitions to a topic (`fluvio topic add-partition`): placed like a new topic's, the existing
    ones stay where they are."""
    added = with_admin(cluster, profile, lambda admin: _add(admin, topic, count))
    out.print(f'added new partitions to topic: "{topic}"', markup=False)
    emit("table", None, lambda: render_table(("PARTITION", "SPU"), [(str(p), str(r[0])) for p, r in added.items()]))


async def _add(admin: Admin, topic: str, count: int) -> dict[int, tuple[int, ...]]:
    found = await admin.list_topics([topic])
    if not found:         # fluvio checks first, with its own text (`topic/add_partition.rs:33-38`)
        raise InvalidConfig(f'topic "{topic}" not found')
    return await admin.add_partitions(topic, count)
