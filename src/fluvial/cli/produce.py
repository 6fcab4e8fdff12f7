"""`fluvial produce TOPIC`: lines from stdin (or `-f FILE`) as records — `fluvio produce`'s flags."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import IO, Annotated

import typer
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TransferSpeedColumn

from fluvial import defaults as d
from fluvial.cli import smartmodule as sm
from fluvial.cli.common import (
    ClusterOpt,
    ProfileOpt,
    choice,
    err,
    errors_to_exit,
    fail,
    out,
    parse_seconds,
    parse_size,
    with_client,
)
from fluvial.client.connect import Fluvial
from fluvial.client.producer import DeliverySemantic, ProducerConfig, TopicProducer
from fluvial.errors import InvalidConfig
from fluvial.protocol.records import Compression
from fluvial.protocol.spu import Isolation


def parse_isolation(text: str) -> Isolation:
    value = text.replace("-", "_").lower()
    if value in ("read_committed", "readcommitted"):
        return Isolation.READ_COMMITTED
    if value in ("read_uncommitted", "readuncommitted"):
        return Isolation.READ_UNCOMMITTED
    raise typer.BadParameter(f"{text!r}: use read_committed or read_uncommitted")


def parse_semantic(text: str) -> DeliverySemantic:
    """Fluvio's spellings (`producer/config.rs:233-243`): at-most-once, at_most_once, AtMostOnce, …"""
    try:
        return DeliverySemantic.parse(text)
    except InvalidConfig as e:
        raise typer.BadParameter(str(e)) from None


def _check_isolation(value: str | None) -> str | None:
    if value is not None:
        parse_isolation(value)     # a usage error (exit 2), as clap's value parser
    return value


def _check_semantic(value: str) -> str:
    parse_semantic(value)          # a usage error (exit 2), as clap's value parser
    return value


def split_line(line: bytes, separator: bytes | None, key: bytes | None) -> tuple[bytes | None, bytes]:
    """(key, value) of one input line (without its newline)."""
    if separator is not None:
        k, sep, v = line.partition(separator)
        if not sep:
            raise ValueError(f"line without the key separator {separator.decode(errors='replace')!r}: "
                             f"{line[:60].decode(errors='replace')!r}")
        return k, v
    return key, line


def produce(
    topic: Annotated[str, typer.Argument(help="The name of the topic to produce to.")],
    cluster: ClusterOpt = None,
    profile: ProfileOpt = None,
    verbose: Annotated[bool, typer.Option("-v", "--verbose", help="Print each record once it is acknowledged.")] = False,
    key: Annotated[str | None, typer.Option("--key", help="Send every record with this key.")] = None,
    key_separator: Annotated[str | None, typer.Option(
        "--key-separator", help="Split each line on the first separator into key and value.")] = None,
    raw: Annotated[bool, typer.Option("--raw", help="Send the whole input as one record.")] = False,
    compression: Annotated[str | None, typer.Option(
        "--compression", callback=choice(tuple(Compression.NAMES), "compression"),
        help="none, gzip, snappy, lz4 or zstd (default: the topic's).")] = None,
    file: Annotated[Path | None, typer.Option("-f", "--file", help="Read records from this file (one per line).")] = None,
    linger: Annotated[str | None, typer.Option("--linger", help="Time to wait before sending a batch, e.g. 150ms.")] = None,
    batch_size: Annotated[str | None, typer.Option("--batch-size", help="Max bytes of a batch.")] = None,
    max_request_size: Annotated[str | None, typer.Option(
        "--max-request-size", help="Max bytes of one batch; a larger record is refused before sending.")] = None,
    isolation: Annotated[str | None, typer.Option(
        "--isolation", callback=_check_isolation,
        help="read_committed (wait for commit) or read_uncommitted (leader only).")] = None,
    delivery_semantic: Annotated[str, typer.Option(
        "--delivery-semantic", callback=_check_semantic, metavar="SEMANTIC",
        help="at-least-once / AtLeastOnce (retry until acknowledged) or at-most-once / AtMostOnce.")
    ] = "at-least-once",
    partition: Annotated[int | None, typer.Option(
        "-p", "--partition", metavar="INTEGER", help="Send every record to this partition.")] = None,
    delivery_timeout: Annotated[str | None, typer.Option(
        "--delivery-timeout", help="Give a record up after retrying this long, e.g. 30s (fluvial).")] = None,
    smartmodule: sm.SmartModuleOpt = None,
    smartmodule_path: sm.SmartModulePathOpt = None,
    aggregate_initial: sm.AggregateInitialOpt = None,
    params: sm.ParamsOpt = None,
    transforms: sm.TransformsOpt = None,
    transforms_line: sm.TransformsLineOpt = None,
) -> None:
    """Write records to a topic: each line of stdin (or of --file) is one record."""
    if key is not None and key_separator is not None:
        fail("--key and --key-separator cannot be used together")
    if raw and key_separator is not None:
        fail("--raw and --key-separator cannot be used together")
    if key_separator == "":
        fail("--key-separator must not be empty")
    config = ProducerConfig(partition=partition)
    with errors_to_exit():
        _configure(config, compression, linger, batch_size, max_request_size, isolation, delivery_semantic,
                   delivery_timeout)
        config.smartmodules = sm.invocations(smartmodule, smartmodule_path, aggregate_initial, params, transforms,
                                             transforms_line)
    with_client(cluster, profile, lambda client: _produce(client, topic, config, key, key_separator, raw, file, verbose))


def _configure(config: ProducerConfig, compression: str | None, linger: str | None, batch_size: str | None,
               max_request_size: str | None, isolation: str | None, semantic: str,
               delivery_timeout: str | None = None) -> None:
    if compression is not None:
        if compression.lower() not in Compression.NAMES:
            raise ValueError(f"unknown compression {compression!r}: use none, gzip, snappy, lz4 or zstd")
        config.compression = compression.lower()
    if linger is not None:
        config.linger_seconds = parse_seconds(linger)
    if batch_size is not None:
        config.batch_size_bytes = parse_size(batch_size)
    if max_request_size is not None:       # Fluvio's max_request_size bounds one batch (`memory_batch.rs`)
        config.max_batch_bytes = parse_size(max_request_size)
        config.max_request_bytes = min(config.max_request_bytes, config.max_batch_bytes)
    if isolation is not None:
        config.isolation = parse_isolation(isolation)
    config.delivery_semantic = parse_semantic(semantic)
    if delivery_timeout is not None:
        config.delivery_timeout_seconds = parse_seconds(delivery_timeout)


async def _produce(client: Fluvial, topic: str, config: ProducerConfig, key: str | None, key_separator: str | None,
                   raw: bool, file: Path | None, verbose: bool) -> None:
    producer = await client.topic_producer(topic, config)
    try:
        sep = key_separator.encode() if key_separator is not None else None
        k = key.encode() if key is not None else None
        if file is not None:
            await _produce_file(producer, file, sep, k, raw, verbose)
        elif raw:
            data = await asyncio.to_thread(sys.stdin.buffer.read)
            await _send_lines(producer, [data], None, k, verbose)
        elif sys.stdin.isatty():
            await _produce_interactive(producer, sep, k, verbose)
        else:
            await _produce_stream(producer, sys.stdin.buffer, sep, k, verbose, None)
        await producer.flush()
    finally:
        await producer.close()


async def _enqueue(producer: TopicProducer, lines: list[bytes], sep: bytes | None, key: bytes | None,
                   verbose: bool) -> asyncio.Future[None]:
    """Queue the lines as records (in order); the returned future completes when all are acknowledged."""
    pairs = [split_line(line, sep, key) for line in lines]
    keys = [p[0] for p in pairs] if (sep is not None or key is not None) else None
    delivery = await producer.send_all([p[1] for p in pairs], keys)

    async def confirm() -> None:
        if not verbose:
            await delivery.offsets()
            return
        await delivery
        for k, v in pairs:
            out.print(f"[{(k or b'null').decode(errors='replace')}] {v.decode(errors='replace')}", markup=False)

    return asyncio.ensure_future(confirm())


async def _send_lines(producer: TopicProducer, lines: list[bytes], sep: bytes | None, key: bytes | None,
                      verbose: bool) -> None:
    await (await _enqueue(producer, lines, sep, key, verbose))


def _strip(line: bytes) -> bytes:
    return line[:-2] if line.endswith(b"\r\n") else line[:-1] if line.endswith(b"\n") else line


async def _produce_stream(producer: TopicProducer, stream: IO[bytes], sep: bytes | None, key: bytes | None,
                          verbose: bool, progress: tuple[Progress, object] | None) -> None:
    pending: list[asyncio.Future[None]] = []
    try:
        while True:
            chunk = await asyncio.to_thread(stream.readlines, d.CLI_PRODUCE_READ_BYTES)
            if not chunk:
                break
            lines = [_strip(line) for line in chunk]
            if sep is not None:
                lines = [line for line in lines if line]
            if progress is not None:
                bar, task = progress
                bar.update(task, advance=sum(map(len, chunk)))  # type: ignore[arg-type]
            pending.append(await _enqueue(producer, lines, sep, key, verbose))
            while pending and pending[0].done():
                pending.pop(0).result()          # the first failure stops reading input
        for fut in pending:
            await fut
    finally:
        # every delivery is collected: a failure is reported once, as one line, never as a stray traceback
        await asyncio.gather(*pending, return_exceptions=True)


PROMPT = "> "
OK_LINE = "\x1b[32mOk!\x1b[0m\n"      # Fluvio's `print_cli_ok!` (fluvio-types `macros.rs:38-42`)


async def _produce_interactive(producer: TopicProducer, sep: bytes | None, key: bytes | None, verbose: bool) -> None:
    """As `fluvio produce` on a terminal (`produce/mod.rs:399-421` of v0.17.3): `> ` on stderr, each line
    sent (and, unless at-most-once, acknowledged), then a green `Ok!` on stdout and the next prompt."""
    wait = producer.config.delivery_semantic is not DeliverySemantic.AT_MOST_ONCE
    sys.stderr.write(PROMPT)
    sys.stderr.flush()
    while True:
        line = await asyncio.to_thread(sys.stdin.buffer.readline)
        if not line:
            return
        delivery = await _enqueue(producer, [_strip(line)], sep, key, verbose)
        if wait:
            await delivery
        sys.stdout.write(OK_LINE)
        sys.stdout.flush()
        sys.stderr.write(PROMPT)
        sys.stderr.flush()


async def _produce_file(producer: TopicProducer, file: Path, sep: bytes | None, key: bytes | None, raw: bool,
                        verbose: bool) -> None:
    if not file.is_file():
        fail(f"{file}: no such file")
    if raw:
        await _send_lines(producer, [file.read_bytes()], None, key, verbose)
        return
    size = file.stat().st_size
    columns = (TextColumn("{task.description}"), BarColumn(), DownloadColumn(), TransferSpeedColumn())
    with open(file, "rb") as f, Progress(*columns, console=err, transient=True,
                                         disable=not err.is_terminal) as bar:
        task = bar.add_task(f"producing {file.name}", total=size)
        await _produce_stream(producer, f, sep, key, verbose, (bar, task))
