#!/usr/bin/env python3
"""NATS JetStream baseline for fluvial's producer benchmark: the acked publish rate of small records
into a JetStream stream on this machine, with the `nats-py` client, to put next to fluvial's producer
batch call in the same run.

What runs: a `nats-server -js` of our own (Debian's nats-server, `scripts/ensure-nats.sh` installs it)
on 127.0.0.1 and a random free port, its JetStream store in a fresh temp dir on the checkout's disk
(`--dir`), stopped and removed at the end, also on errors, Ctrl-C and SIGTERM. One client connection
(nats-py, uvloop by default) publishes N records of `--size` bytes to a fresh stream per run:

* jetstream/file    — stream with file storage (as a real deployment). An ack means the server has
                      stored the message in its file store, written to the OS (the server fsyncs in
                      the background, not per message): compare with fluvial's flush policy `os`.
* jetstream/memory  — the same into a memory-storage stream (no file I/O): how much of the cost is
                      the store.
* core              — plain core-NATS `publish` to a subject nobody subscribes to, then one
                      flush (PING/PONG): no acks, no storage; the client's raw send rate, for context.

The JetStream publishes are pipelined: `JetStreamContext.publish_async` sends each message at once and
returns a future for its ack, and the context's semaphore (`publish_async_max_pending` = the window)
bounds the acks outstanding, so the publisher stalls only when the window is full. The run ends when
every ack has come back (`publish_async_completed`); every ack is checked (no error, sequence numbers
1..N) and the stream must then hold exactly N messages. Several windows are tried (`--window`,
default 256, 1024 and 4096 = nats-py's default of 4000;
16384 measured no better here), each rep runs every (storage, window) once in an order flipped from
rep to rep; the reported JetStream rate is the window with the best median. Subject validation is
skipped in the client (`skip_subject_validation`; the subject is a fixed valid token).

    .venv/bin/python benchmarks/nats_baseline.py                          # table on stdout, ~1 minute
    .venv/bin/python benchmarks/nats_baseline.py --records 100000 --size 100 --json   # JSON on stdout
    .venv/bin/python benchmarks/nats_baseline.py --window 4096 --storage file --no-core --reps 3

From another benchmark (its own server, stopped on return):

    from nats_baseline import measure_jetstream
    res = measure_jetstream(records=50_000, size=100)   # res["records_s"], res["mb_s"], res["config"]

or, to interleave with other measurements against one server, `with NatsServer(parent) as srv:` and
`srv.jetstream_run(...)` / `srv.core_run(...)` per rep.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchlib import (
    RESULTS,
    Service,
    cpu_model,
    fs_type,
    git_revision,
    interrupt_on_signals,
    load_average,
    log,
    machine_line,
    median,
    package_version,
    print_markdown_table,
    proc_cpu_seconds,
    results_dir,
)

MB = 1_000_000                          # MB/s = 10^6 payload bytes per second
DEFAULT_WINDOWS = (256, 1024, 4096)
STORAGES = ("file", "memory")
LOOPS = ("uvloop", "asyncio")
SUBJECT = "bench.records"


class NatsBenchError(RuntimeError):
    pass


def nats_server_binary() -> str:
    path = shutil.which("nats-server") or shutil.which("nats-server", path="/usr/sbin:/sbin")
    if path is None:
        raise NatsBenchError("nats-server not found: run `make ensure-nats` (scripts/ensure-nats.sh)")
    return path


def nats_server_version(binary: str | None = None) -> str:
    out = subprocess.run([binary or nats_server_binary(), "--version"], capture_output=True, text=True,
                         timeout=10)
    m = re.search(r"v?(\d+\.\d+\.\d+\S*)", out.stdout + out.stderr)
    return m.group(1) if m else (out.stdout + out.stderr).strip()


# ============================================================================================= server


class NatsServer(Service):
    """`nats-server -js` on 127.0.0.1 and a random free port (`-p -1`, the port read back from its log),
    JetStream store in a temp dir under `parent`. A context manager: the server is stopped (SIGTERM, then
    SIGKILL after 10 s) and the temp dir removed on exit, whatever happened."""

    def __init__(self, parent: str | Path | None = None, keep: bool = False, loop: str = "uvloop") -> None:
        self.parent = Path(parent) if parent else RESULTS
        self.keep = keep
        self.loop = loop
        self.root: Path | None = None
        self.proc: subprocess.Popen[bytes] | None = None
        self.port = 0
        self.binary = nats_server_binary()
        self.version = nats_server_version(self.binary)
        self._streams = 0

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    @property
    def store_dir(self) -> Path:
        assert self.root is not None
        return self.root / "jetstream"

    def start(self, timeout: float = 15.0) -> None:
        self.parent.mkdir(parents=True, exist_ok=True)
        self.root = Path(tempfile.mkdtemp(prefix="fluvial-natsbench-", dir=self.parent))
        self.store_dir.mkdir()
        log_path = self.root / "nats-server.log"
        cmd = [self.binary, "-js", "-sd", str(self.store_dir), "-a", "127.0.0.1", "-p", "-1",
               "-n", "fluvial-natsbench", "-l", str(log_path)]
        self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout
        pat = re.compile(rb"Listening for client connections on [\d.]+:(\d+)")
        ready = False
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                break
            text = log_path.read_bytes() if log_path.exists() else b""
            m = pat.search(text)
            if m:
                self.port = int(m.group(1))
            if self.port and b"Server is ready" in text:
                ready = True
                break
            time.sleep(0.02)
        if not ready:
            text = log_path.read_text(errors="replace") if log_path.exists() else ""
            raise NatsBenchError(f"nats-server did not start (exit {self.proc.poll()}):\n{text[-3000:]}")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None
        if self.root is not None and not self.keep:
            shutil.rmtree(self.root, ignore_errors=True)
            self.root = None

    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def _run(self, coro_fn: Any, *args: Any) -> dict[str, Any]:
        """Run one client measurement in a fresh event loop of the chosen kind (in this process)."""
        factory = None
        if self.loop == "uvloop":
            import uvloop

            factory = uvloop.new_event_loop
        with asyncio.Runner(loop_factory=factory) as runner:
            return runner.run(coro_fn(self, *args))

    def jetstream_run(self, records: int, size: int, window: int, storage: str = "file") -> dict[str, Any]:
        """One timed run: `records` acked publishes of `size` bytes into a fresh stream (deleted after)."""
        self._streams += 1
        return self._run(_jetstream_run, records, size, window, storage, f"BENCH{self._streams}")

    def core_run(self, records: int, size: int) -> dict[str, Any]:
        return self._run(_core_run, records, size)


# ============================================================================================= client


async def _connect(srv: NatsServer) -> Any:
    import nats

    return await nats.connect(srv.url, allow_reconnect=False, skip_subject_validation=True,
                              pending_size=8 * 1024 * 1024, name="fluvial-natsbench")


async def _jetstream_run(srv: NatsServer, records: int, size: int, window: int, storage: str,
                         stream: str) -> dict[str, Any]:
    from nats.js.api import StorageType

    nc = await _connect(srv)
    try:
        js = nc.jetstream(publish_async_max_pending=window)
        subject = f"{SUBJECT}.{stream.lower()}"
        await js.add_stream(name=stream, subjects=[subject],
                            storage=StorageType.FILE if storage == "file" else StorageType.MEMORY)
        payload = os.urandom(size)
        publish_async = js.publish_async
        futures = []
        append = futures.append
        s0, c0, t0 = proc_cpu_seconds(srv.pid()), time.process_time(), time.perf_counter()
        for _ in range(records):
            append(await publish_async(subject, payload))
        await js.publish_async_completed()
        t1, c1, s1 = time.perf_counter(), time.process_time(), proc_cpu_seconds(srv.pid())
        errors = [f.exception() for f in futures if f.exception() is not None]
        if errors:
            raise NatsBenchError(f"{len(errors)} of {records} publishes failed, first: {errors[0]!r}")
        seqs = sorted(f.result().seq for f in futures)
        if seqs != list(range(1, records + 1)):
            raise NatsBenchError(f"ack sequence numbers are not 1..{records}")
        info = await js.stream_info(stream)
        if info.state.messages != records or info.state.bytes < records * size:
            raise NatsBenchError(f"stream holds {info.state.messages} messages / {info.state.bytes} bytes, "
                                 f"expected {records} of {size} B")
        await js.delete_stream(stream)
    finally:
        await nc.close()
    return {"mode": "jetstream", "storage": storage, "window": window, "records": records, "size": size,
            "seconds": t1 - t0, "client_cpu": c1 - c0, "server_cpu": s1 - s0,
            "records_s": records / (t1 - t0), "mb_s": records * size / (t1 - t0) / MB,
            "stream_bytes": info.state.bytes}


async def _core_run(srv: NatsServer, records: int, size: int) -> dict[str, Any]:
    nc = await _connect(srv)
    try:
        payload = os.urandom(size)
        publish = nc.publish
        s0, c0, t0 = proc_cpu_seconds(srv.pid()), time.process_time(), time.perf_counter()
        for _ in range(records):
            await publish(SUBJECT, payload)
        await nc.flush(timeout=60)          # PING/PONG: the server has read every message
        t1, c1, s1 = time.perf_counter(), time.process_time(), proc_cpu_seconds(srv.pid())
        if nc.stats["out_msgs"] < records:
            raise NatsBenchError(f"only {nc.stats['out_msgs']} of {records} messages sent")
    finally:
        await nc.close()
    return {"mode": "core", "records": records, "size": size, "seconds": t1 - t0, "client_cpu": c1 - c0,
            "server_cpu": s1 - s0, "records_s": records / (t1 - t0), "mb_s": records * size / (t1 - t0) / MB}


# ========================================================================================== benchmark


def summarize(runs: list[dict[str, Any]]) -> dict[str, Any]:
    rs = [r["records_s"] for r in runs]
    mb = [r["mb_s"] for r in runs]
    return {"records_s": median(rs), "records_s_min": min(rs), "records_s_max": max(rs),
            "mb_s": median(mb), "mb_s_min": min(mb), "mb_s_max": max(mb), "reps": len(runs),
            "client_cpu_per_s": median([r["client_cpu"] / r["seconds"] for r in runs]),
            "server_cpu_per_s": median([r["server_cpu"] / r["seconds"] for r in runs]),
            "runs": [round(x) for x in rs]}


def store_machine_facts(parent: Path, server_version: str) -> dict[str, Any]:
    return {"cores": os.cpu_count(), "cpu": cpu_model(), "python": platform.python_version(),
            "kernel": platform.release(), "store_fs": fs_type(str(parent)), "nats_server": server_version,
            "nats_py": package_version("nats-py"), "fluvial_rev": git_revision(), "loadavg_start": load_average()}


def measure_jetstream(records: int = 50_000, size: int = 100, *, reps: int = 5,
                      windows: tuple[int, ...] | list[int] = DEFAULT_WINDOWS,
                      storages: tuple[str, ...] | list[str] = STORAGES, core: bool = True,
                      loop: str = "uvloop", parent: str | Path | None = None,
                      warmup: bool = True, server: NatsServer | None = None) -> dict[str, Any]:
    """Acked JetStream publish rate of `records` × `size`-byte messages, median over `reps` reps for
    every (storage, window), plus core NATS if `core`. Starts (and stops) its own nats-server unless
    `server` is given. Returns {"records_s", "mb_s", "records_s_min"/"_max", "window", "storage",
    "config", "results": {storage: {window: summary}}, "best": {storage: summary}, "core": summary,
    "machine"}: the top-level numbers are file storage at its best window (by median)."""
    reps = max(1, reps)
    own = server is None
    srv = server if server is not None else NatsServer(parent, loop=loop)
    storages = [s for s in STORAGES if s in storages]
    try:
        if own:
            srv.start()
        machine = store_machine_facts(srv.parent, srv.version)
        log(f"nats-server {srv.version} at {srv.url}, store {srv.store_dir} ({machine['store_fs']}), "
            f"client nats-py {machine['nats_py']} on {srv.loop}")
        if warmup:                              # untimed: first connection, imports, the store's files
            for storage in storages:
                srv.jetstream_run(max(1, records // 10), size, max(windows), storage)
            if core:
                srv.core_run(max(1, records // 10), size)
        steps: list[tuple[str, int]] = [(s, w) for s in storages for w in windows]
        if core:
            steps.append(("core", 0))
        runs: dict[tuple[str, int], list[dict[str, Any]]] = {k: [] for k in steps}
        for rep in range(reps):
            line = []
            for storage, window in (steps if rep % 2 == 0 else steps[::-1]):
                out = (srv.core_run(records, size) if storage == "core"
                       else srv.jetstream_run(records, size, window, storage))
                runs[(storage, window)].append(out)
                line.append(f"{storage}{'/' + str(window) if window else ''} {out['records_s']:,.0f}")
            log(f"  rep {rep + 1}/{reps}: " + ", ".join(line) + " records/s")
        machine["loadavg_end"] = load_average()
    finally:
        if own:
            srv.stop()
    results: dict[str, dict[int, dict[str, Any]]] = {}
    best: dict[str, dict[str, Any]] = {}
    for storage in storages:
        results[storage] = {w: summarize(runs[(storage, w)]) for w in windows}
        w_best = max(windows, key=lambda w: results[storage][w]["records_s"])
        best[storage] = {"window": w_best, **results[storage][w_best]}
    top_storage = "file" if "file" in best else storages[0] if storages else None
    out: dict[str, Any] = {
        "benchmark": "nats-jetstream-acked-publish",
        "config": {"records": records, "size": size, "reps": reps, "windows": list(windows),
                   "storages": storages, "loop": srv.loop, "client": f"nats-py {package_version('nats-py')}",
                   "publish": "JetStreamContext.publish_async, window = publish_async_max_pending, "
                              "one connection, all acks awaited and checked",
                   "server": f"nats-server {srv.version} -js, 127.0.0.1, store on {machine['store_fs']}"},
        "results": {s: {str(w): v for w, v in per.items()} for s, per in results.items()},
        "best": best,
        "machine": machine,
    }
    if top_storage is not None:
        b = best[top_storage]
        out.update(storage=top_storage, window=b["window"], records_s=b["records_s"], mb_s=b["mb_s"],
                   records_s_min=b["records_s_min"], records_s_max=b["records_s_max"])
    if core:
        out["core"] = summarize(runs[("core", 0)])
    return out


# ============================================================================================= report


def print_table(res: dict[str, Any]) -> None:
    cfg = res["config"]
    print()
    print(machine_line(res["machine"]))
    print(f"config: {cfg['records']:,} records × {cfg['size']} B, {cfg['reps']} reps, client {cfg['client']} "
          f"on {cfg['loop']}, {cfg['server']}")
    print()
    head = ["NATS publish", "window", "records/s (median)", "records/s range", "MB/s", "client CPU",
            "server CPU"]
    rows = []
    for storage, per in res["results"].items():
        for w, s in per.items():
            mark = " ← best" if int(w) == res["best"][storage]["window"] else ""
            rows.append([f"jetstream/{storage}, acked", w + mark, f"{s['records_s']:,.0f}",
                         f"{s['records_s_min']:,.0f}–{s['records_s_max']:,.0f}", f"{s['mb_s']:,.1f}",
                         f"{s['client_cpu_per_s']:.0%}", f"{s['server_cpu_per_s']:.0%}"])
    if "core" in res:
        s = res["core"]
        rows.append(["core (no acks, no store)", "", f"{s['records_s']:,.0f}",
                     f"{s['records_s_min']:,.0f}–{s['records_s_max']:,.0f}", f"{s['mb_s']:,.1f}",
                     f"{s['client_cpu_per_s']:.0%}", f"{s['server_cpu_per_s']:.0%}"])
    print_markdown_table(head, rows)
    print()
    print("MB/s = 10^6 payload bytes per second. CPU = CPU seconds ÷ wall seconds of the timed window "
          "(client: this process; server: nats-server, all threads).")


# =============================================================================================== main


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--records", type=int, default=50_000, help="records per run (default %(default)s)")
    p.add_argument("--size", type=int, default=100, help="payload bytes per record (default %(default)s)")
    p.add_argument("--reps", type=int, default=5, help="runs per measurement (default %(default)s)")
    p.add_argument("--window", type=int, action="append",
                   help="outstanding-ack windows to try (repeatable; default "
                        + ", ".join(map(str, DEFAULT_WINDOWS)) + ")")
    p.add_argument("--storage", action="append", choices=STORAGES,
                   help="JetStream storage (repeatable; default file and memory)")
    p.add_argument("--no-core", action="store_true", help="skip the core-NATS publish rate")
    p.add_argument("--loop", choices=LOOPS, default="uvloop", help="client event loop (default %(default)s)")
    p.add_argument("--dir", default=None,
                   help="parent of the server's temp store dir (default benchmarks/results/, the checkout's disk)")
    p.add_argument("--allow-tmpfs", action="store_true", help="allow a store dir on tmpfs")
    p.add_argument("--keep", action="store_true", help="keep the store dir and server log")
    p.add_argument("--json", action="store_true", help="print the results as JSON on stdout (no table)")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    parent = results_dir(args.dir, args.allow_tmpfs)
    if parent is None:
        return 2
    interrupt_on_signals()                      # stop the server and remove its store as on Ctrl-C
    t0 = time.perf_counter()
    try:
        with NatsServer(parent, keep=args.keep, loop=args.loop) as srv:
            res = measure_jetstream(args.records, args.size, reps=args.reps,
                                    windows=tuple(args.window or DEFAULT_WINDOWS),
                                    storages=tuple(args.storage or STORAGES), core=not args.no_core,
                                    server=srv)
    except KeyboardInterrupt:
        log("interrupted: nats-server stopped, store removed")
        return 130
    except NatsBenchError as e:
        log(f"error: {e}")
        return 1
    res["elapsed_s"] = round(time.perf_counter() - t0, 1)
    log(f"done in {res['elapsed_s']} s")
    if args.json:
        json.dump(res, sys.stdout, indent=2)
        print()
    else:
        print_table(res)
    return 0


if __name__ == "__main__":
    with contextlib.suppress(BrokenPipeError):
        sys.exit(main())
