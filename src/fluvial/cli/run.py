"""`fluvial run sc` / `fluvial run spu`: one server process in the foreground, logging to stderr,
stopping cleanly on SIGTERM/SIGINT."""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import signal
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import typer

from fluvial import defaults as d

app = typer.Typer(no_args_is_help=True, help="Run one fluvial server process in the foreground.")


def split_addr(addr: str, default_port: int) -> tuple[str, int]:
    host, sep, port = addr.rpartition(":")
    if not sep:
        return addr, default_port
    try:
        return host or "127.0.0.1", int(port)
    except ValueError:
        raise typer.BadParameter(f"{addr!r} is not HOST:PORT") from None


def _limits(max_connections: int, idle_timeout: float, write_timeout: float) -> Any:
    from fluvial.transport.server import ConnectionLimits

    if max_connections < 1 or idle_timeout <= 0 or write_timeout <= 0:
        raise typer.BadParameter("--max-connections, --idle-timeout and --write-timeout must be positive")
    return ConnectionLimits(max_connections, idle_timeout, write_timeout)


_MAX_CONNECTIONS = typer.Option(d.CONNECTIONS_MAX, "--max-connections",
                                help="Connections this process accepts (all ports); more are refused at once.")
_IDLE_TIMEOUT = typer.Option(d.CONNECTION_IDLE_TIMEOUT_SECONDS, "--idle-timeout",
                             help="Seconds before a connection with no request in flight and no stream is closed.")
_WRITE_TIMEOUT = typer.Option(d.CONNECTION_WRITE_TIMEOUT_SECONDS, "--write-timeout",
                              help="Seconds a peer may take no bytes before it is disconnected.")


def _configure_logging() -> None:
    logging.basicConfig(stream=sys.stderr, level=logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s %(message)s")


def _serve(start: Callable[[], Awaitable[object]], stop: Callable[[], Awaitable[None]]) -> None:
    _configure_logging()
    if os.environ.get("FLUVIAL_EVENT_LOOP", "uvloop") == "uvloop":   # "asyncio": the stock loop
        import uvloop

        uvloop.install()

    async def main() -> None:
        done = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, done.set)
        await start()
        # what exists now (modules, configuration, the replicas opened at start) lives as long as the
        # process: out of the collector's sight, and young collections far less often than every 700
        # allocations (a produce request allocates hundreds of short-lived objects)
        gc.freeze()
        gc.set_threshold(d.SERVER_GC_GEN0_THRESHOLD, *gc.get_threshold()[1:])
        await done.wait()
        logging.getLogger("fluvial").info("shutting_down")
        await stop()

    asyncio.run(main())


@app.command("sc")
def run_sc(
    data_dir: Path = typer.Option(..., "--data-dir", help="Metadata lives in DATA_DIR/metadata.db."),
    public_addr: str = typer.Option(f"127.0.0.1:{d.SC_PUBLIC_PORT}", "--public-addr"),
    private_addr: str = typer.Option("", "--private-addr", help="Default: the public port + 1."),
    metadata: str = typer.Option("", "--metadata", help="Metadata store URL (default: embedded sqlite)."),
    metrics_addr: str = typer.Option("", "--metrics-addr", help="Serve Prometheus metrics on HOST:PORT."),
    spu_offline_after: float = typer.Option(d.SPU_OFFLINE_AFTER_SECONDS, "--spu-offline-after",
                                            help="Seconds of heartbeat silence before an SPU is offline and "
                                                 "its partitions get new leaders (must exceed the SPUs' "
                                                 f"leader lease, {d.LEADER_LEASE_SECONDS} s)."),
    max_connections: int = _MAX_CONNECTIONS,
    idle_timeout: float = _IDLE_TIMEOUT,
    write_timeout: float = _WRITE_TIMEOUT,
) -> None:
    """Run the streaming controller."""
    from fluvial.sc.server import ScConfig, ScServer

    host, port = split_addr(public_addr, d.SC_PUBLIC_PORT)
    phost, pport = split_addr(private_addr, port + 1) if private_addr else (host, port + 1)
    if spu_offline_after <= d.LEADER_LEASE_SECONDS:
        raise typer.BadParameter(f"must be more than the leader lease ({d.LEADER_LEASE_SECONDS} s)",
                                 param_hint="--spu-offline-after")
    server = ScServer(ScConfig(str(data_dir), host, port, phost, pport, metadata or None,
                               spu_offline_after_seconds=spu_offline_after,
                               limits=_limits(max_connections, idle_timeout, write_timeout)))
    if metrics_addr:
        from prometheus_client import REGISTRY

        from fluvial.observability.metrics import ScCollector

        REGISTRY.register(ScCollector(server))
    _metrics(metrics_addr)
    _serve(server.start, server.stop)


@app.command("spu")
def run_spu(
    spu_id: int = typer.Option(..., "--id", help="SPU id (5001, 5002, …)."),
    data_dir: Path = typer.Option(..., "--data-dir", help="Replicas live in DATA_DIR/spu-logs-ID/."),
    public_addr: str = typer.Option("", "--public-addr", help="Default: 127.0.0.1:9010 + 10·(ID − 5001)."),
    private_addr: str = typer.Option("", "--private-addr", help="Default: the public port + 1."),
    sc_addr: str = typer.Option(f"127.0.0.1:{d.SC_PRIVATE_PORT}", "--sc-addr", envvar="FLV_SC_PRIVATE_HOST",
                                help="The SC's private address."),
    flush: str = typer.Option("", "--flush", help="os | fsync-every-batch | fsync-interval:MS"),
    reserve_bytes: int = typer.Option(-1, "--reserve-bytes", help="Free space kept per data dir (default 5 %)."),
    metrics_addr: str = typer.Option("", "--metrics-addr", help="Serve Prometheus metrics on HOST:PORT."),
    max_connections: int = _MAX_CONNECTIONS,
    idle_timeout: float = _IDLE_TIMEOUT,
    write_timeout: float = _WRITE_TIMEOUT,
    evict_when_full: bool = typer.Option(False, "--evict-when-full",
                                         help="While the data dir is FULL, delete its oldest sealed segments "
                                              "whatever the topics' retention (DATA LOSS)."),
    smartmodule_call_budget_ms: int = typer.Option(
        int(d.SMARTMODULE_CALL_BUDGET_SECONDS * 1000), "--smartmodule-call-budget-ms",
        envvar="FLUVIAL_SMARTMODULE_CALL_BUDGET_MS",
        help="CPU time one SmartModule call may take; a module over it ends its own stream."),
    smart_engine_max_memory: int = typer.Option(
        d.SMARTMODULE_MEMORY_MAX_BYTES, "--smart-engine-max-memory", envvar="FLV_SMART_ENGINE_MAX_MEMORY_BYTES",
        help="Linear memory cap of each SmartModule instance, in bytes."),
) -> None:
    """Run a streaming processing unit."""
    from fluvial.spu.server import SpuConfig, SpuServer
    from fluvial.storage.config import FlushPolicy

    if flush:
        FlushPolicy.parse(flush)     # a bad value fails here, with its message
    default_public = d.SPU_BASE_PUBLIC_PORT + d.SPU_PORT_STRIDE * (spu_id - d.SPU_BASE_ID)
    host, port = split_addr(public_addr, default_public) if public_addr else ("127.0.0.1", default_public)
    phost, pport = split_addr(private_addr, port + 1) if private_addr else (host, port + 1)
    sc_host, sc_port = split_addr(sc_addr, d.SC_PRIVATE_PORT)
    server = SpuServer(SpuConfig(spu_id, str(data_dir), host, port, phost, pport, sc_host, sc_port,
                                 flush or None, reserve_bytes if reserve_bytes >= 0 else None,
                                 limits=_limits(max_connections, idle_timeout, write_timeout),
                                 evict_when_full=evict_when_full,
                                 smartmodule_call_budget_seconds=max(1, smartmodule_call_budget_ms) / 1000,
                                 smartmodule_memory_max_bytes=smart_engine_max_memory))
    if metrics_addr:
        from prometheus_client import REGISTRY

        from fluvial.observability.metrics import SpuCollector

        REGISTRY.register(SpuCollector(server))
    _metrics(metrics_addr)
    _serve(server.start, server.stop)


def _metrics(addr: str) -> None:
    if addr:
        from prometheus_client import start_http_server

        host, port = split_addr(addr, 9100)
        start_http_server(port, addr=host)
