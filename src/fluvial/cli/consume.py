"""`fluvial consume TOPIC`: print records — `fluvio consume`'s flags and output."""

from __future__ import annotations

import shutil
import sys
from collections.abc import Callable
from typing import Annotated, Any

import typer

from fluvial.cli import smartmodule as sm
from fluvial.cli.common import ProfileOpt, choice, conflict, err, errors_to_exit, fail, with_client
from fluvial.cli.produce import _check_isolation, parse_isolation
from fluvial.cli.record_format import OUTPUT_TYPES, FullTable, formatter
from fluvial.client.connect import Fluvial
from fluvial.client.consumer import ConsumerConfig, ConsumerStream, Offset, OffsetStrategy
from fluvial.errors import InvalidConfig
from fluvial.protocol.spu import Isolation

# `-c` is `--consumer` here, as in `fluvio consume`; the cluster address is `--cluster` only.
ClusterLongOpt = Annotated[str | None, typer.Option(
    "--cluster", metavar="HOST:PORT", help="Address of the SC (default: the current profile's, else 127.0.0.1:9003).")]


def truncating(render: Callable[[Any], str | None], width: int) -> Callable[[Any], str | None]:
    def cut(r: Any) -> str | None:
        line = render(r)
        return None if line is None else line[:width]
    return cut


def start_offset(beginning: bool, head: int | None, tail: int | None, start: int | None) -> Offset:
    """`fluvio consume`'s rule: -B, -H n, --start n, -T n, else the end (only new records)."""
    chosen = [beginning, head is not None, tail is not None, start is not None]
    if sum(chosen) > 1:
        raise ValueError("use only one of -B/--beginning, -H/--head, -T/--tail, --start")
    if beginning:
        return Offset.from_beginning(0)
    if head is not None:
        return Offset.from_beginning(head)
    if start is not None:
        return Offset.absolute(start)
    if tail is not None:
        return Offset.from_end(tail)
    return Offset.end()


def consume(
    topic: Annotated[str, typer.Argument(help="Topic name.")],
    partition: Annotated[list[int] | None, typer.Option("-p", "--partition", help="Partition id (repeatable); default all.")] = None,
    all_partitions: Annotated[bool, typer.Option("-A", "--all-partitions", help="Consume from all partitions (the default).")] = False,
    disable_continuous: Annotated[bool, typer.Option("-d", "--disable-continuous",
                                                     help="Exit after the records available now.")] = False,
    key_value: Annotated[bool, typer.Option("-k", "--key-value", help='Print records as "[key] value".')] = False,
    format: Annotated[str | None, typer.Option(
        "-F", "--format", help="Template with {{key}}, {{value}}, {{offset}}, {{partition}}, {{time}}.")] = None,
    beginning: Annotated[bool, typer.Option("-B", "--beginning", help="Consume from the beginning of the log.")] = False,
    head: Annotated[int | None, typer.Option("-H", "--head", metavar="INTEGER",
                                             help="Start this many records after the beginning.")] = None,
    tail: Annotated[int | None, typer.Option("-T", "--tail", metavar="INTEGER",
                                             help="Start this many records before the end.")] = None,
    start: Annotated[int | None, typer.Option("--start", metavar="INTEGER", help="Absolute offset to start from.")] = None,
    end: Annotated[int | None, typer.Option("--end", metavar="INTEGER", help="Stop after this offset (inclusive).")] = None,
    max_bytes: Annotated[int | None, typer.Option("-b", "--maxbytes", help="Max bytes of one fetch.")] = None,
    isolation: Annotated[str | None, typer.Option("--isolation", callback=_check_isolation,
                                                  help="read_committed or read_uncommitted.")] = None,
    suppress_unknown: Annotated[bool, typer.Option("--suppress-unknown", help="Skip records the output type cannot show.")] = False,
    output: Annotated[str | None, typer.Option("-O", "--output", callback=choice(OUTPUT_TYPES, "output type"),
                                               help=f"Output type: {', '.join(OUTPUT_TYPES)}.")] = None,
    consumer: Annotated[str | None, typer.Option("-c", "--consumer", help="Consumer id: resume from and store its offsets.")] = None,
    smartmodule: sm.SmartModuleOpt = None,
    smartmodule_path: sm.SmartModulePathOpt = None,
    aggregate_initial: sm.AggregateInitialOpt = None,
    params: sm.ParamsOpt = None,
    transforms: sm.TransformsOpt = None,
    transforms_line: sm.TransformsLineOpt = None,
    truncate: Annotated[bool, typer.Option(
        "--truncate", help="Cut each printed record to the terminal's width.")] = False,
    disable_progressbar: Annotated[bool, typer.Option(
        "--disable-progressbar", help="Accepted for fluvio's scripts (fluvial shows no progress bar).")] = False,
    table_format: Annotated[str | None, typer.Option(
        "--table-format", metavar="NAME", help="Lay records out by this TableFormat (with -O full-table).")] = None,
    cluster: ClusterLongOpt = None,
    profile: ProfileOpt = None,
) -> None:
    """Read records from a topic (all partitions unless -p) and print them.

    Streams new records until interrupted unless -d is given."""
    if format is not None and output is not None:
        fail("--format and --output cannot be used together")
    if truncate and (format is not None or output is not None):       # consume/mod.rs: conflicts_with_all
        conflict("--truncate", "--output <OUTPUT>" if output is not None else "--format <FORMAT>")
    if partition and all_partitions:
        fail("--partition and --all-partitions cannot be used together")
    if end is not None and start is not None and end < start:
        fail(f"--end {end} must be greater than or equal to --start {start}")
    with errors_to_exit():
        offset = start_offset(beginning, head, tail, start)
        render = formatter(output or "dynamic", format, key_value, suppress_unknown)
        if truncate:        # fluvio cuts to the terminal's width (u16::MAX columns when there is none)
            render = truncating(render, shutil.get_terminal_size((65535, 0)).columns if sys.stdout.isatty()
                                else 65535)
        live = not (disable_continuous or end is not None)
        iso = parse_isolation(isolation) if isolation is not None else Isolation.READ_UNCOMMITTED
        chain = sm.invocations(smartmodule, smartmodule_path, aggregate_initial, params, transforms, transforms_line)
    config = ConsumerConfig(isolation=iso, disable_continuous=disable_continuous, end_offset=end, consumer_id=consumer,
                            offset_strategy=OffsetStrategy.AUTO if consumer else OffsetStrategy.NONE,
                            smartmodules=chain)
    if max_bytes is not None:
        config.max_bytes = max_bytes
    if sys.stdout.isatty():
        err.print(f"Consuming records from '{topic}'", style="bold", markup=False)
    with_client(cluster, profile, lambda client: _consume(client, topic, partition or None, offset, config, render,
                                                          table_format, live))


async def _consume(client: Fluvial, topic: str, partitions: list[int] | None, offset: Offset,
                   config: ConsumerConfig, render: object, table_format: str | None = None,
                   live: bool = True) -> None:
    if table_format is not None:           # fluvio looks it up first (`consume/mod.rs:248-275`)
        async with await client.admin() as admin:
            found = [m for m in await admin.list_table_formats() if m.name == table_format]
        if not found:
            raise InvalidConfig(f"TableFormat not found: {table_format}")
        if isinstance(render, FullTable):
            render = FullTable.of(found[0].spec, live=live)
    elif isinstance(render, FullTable):
        render.live = live
    consumer = await client.consumer(topic, partitions)
    stream = await consumer.stream(offset, config)
    try:
        await _print(stream, render)
        if config.consumer_id:
            stream.offset_commit()
            await stream.offset_flush()
    finally:
        await stream.close()


async def _print(stream: ConsumerStream, render: object) -> None:
    write = sys.stdout.write
    try:
        while True:
            records = await stream.next_batch()
            if not records:
                final = render.finish() if isinstance(render, FullTable) else None
                if final:
                    write(final + "\n")
                return
            lines = [line for line in map(render, records) if line is not None]  # type: ignore[arg-type]
            if lines:
                write("\n".join(lines) + "\n")
                sys.stdout.flush()
    except BrokenPipeError:
        sys.stderr.close()        # the reader went away (e.g. `| head`): stop quietly
