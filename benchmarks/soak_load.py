#!/usr/bin/env python3
"""Load soak (issue #12): many producers, live and slow consumers, connection churn and an SC kill -9,
against a real local cluster (3 SPUs, one topic of 6 partitions, rf = 3), then a full read-back.

The script starts `fluvial cluster start --spu 3` on free loopback ports in a temporary data dir and
runs, for the load time, in separate processes (this script with `--worker`):
  producers  4 processes × 25 producers (one fluvial client each, idempotent), keyed records
             `key = p{proc}-{producer}`, value `key|seq|` padded to 100 B, each producer paced at
             10 records/s with at most 1,000 unacknowledged; even-numbered producers use
             `ReadCommitted`, odd ones the default (`ReadUncommitted`, acknowledged by the leader)
  consumers  4 processes, each a live `stream(Offset.beginning())` over all partitions; 2 of them sleep
             2 ms / 10 ms between records (deliberately slow); each checks that offsets of a partition
             come without gap or repeat and that every key's sequence only goes up
  churn      1 process that connects, opens a short stream (a bounded read of the tail, or a live stream
             cancelled after 0.2 s) or lists topics, and closes, in a loop
  SC         killed with SIGKILL half-way, restarted 3 s later from `D/sc` (as the tests' `restart_sc`)
The SC's and SPUs' RSS (`/proc/<pid>/status`) and open FDs (`/proc/<pid>/fd`) are sampled throughout.

At the end, once every partition's replicas are in sync, everything is read from the beginning, and the
script checks (exit code 1 when one fails): no acknowledged (producer, seq) is missing, no record is
there twice, every key's records are in sequence order, each partition's offsets are contiguous and its
record count is its high watermark, the live consumers saw neither gaps, repeats nor reordering, every
worker finished, and the servers' RSS and FDs stay flat: within each phase (after warm-up — the first
quarter of the load, at least 20 s — until the SC kill; from 10 s after the SC is back to the end) the
mean of the last quarter of the samples ≤ the first quarter's × 1.10 + 8 MiB (RSS; also from the first
phase to the last) and ≤ + 16 (FDs: the SC restart moves client connections between SPUs, so they are
compared within a phase), and the FDs go back to their idle count (+ 4) once the clients are gone.
It also reports acknowledged records/s, the longest time without any acknowledgement (while the SC is
down, leaders' leases run out: replicated partitions take no writes), and client errors outside the SC
outage.

    .venv/bin/python benchmarks/soak_load.py                  # 30 min of load (~32 min in all)
    .venv/bin/python benchmarks/soak_load.py --minutes 10     # 10 min of load
    .venv/bin/python benchmarks/soak_load.py --quick          # 2 min of load (~3 min in all)
    make soak-load                                            # the default; SOAK_ARGS=--quick for the short one

Results go to benchmarks/results/soak_load.json (raw samples included); with --keep the data dir (server
logs in D/logs/, worker output in workers/) is left in place.
"""

from __future__ import annotations

import argparse
import array
import asyncio
import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.integration.cluster import FLUVIAL, free_ports

from benchlib import (
    RESULTS,
    fs_type,
    interrupt_on_signals,
    log,
    machine_facts,
    machine_line,
    print_log_problems,
    print_markdown_table,
    write_results,
)
from fluvial import defaults as d
from fluvial.client.admin import Admin, TopicConfig
from fluvial.client.connect import Fluvial
from fluvial.client.consumer import ConsumerConfig, Offset
from fluvial.client.producer import ProducerConfig
from fluvial.protocol.spu import Isolation

TOPIC = "soak"
PARTITIONS = 6
REPLICATION = 3
SPUS = (5001, 5002, 5003)
SLOW_SLEEPS = (0.0, 0.0, 0.002, 0.010)         # per consumer process: seconds slept after each record
MAX_INFLIGHT = 1000                            # unacknowledged records per producer
SC_DOWN_SECONDS = 3.0
SC_SETTLE_SECONDS = 10.0                       # after the SC is back: clients reconnected, leaders moved
WORKER_GRACE_SECONDS = 150                     # after the load: producers flush (delivery timeout 120 s)
CONNECT_TIMEOUT_SECONDS = 30
ERRORS_KEPT = 100                              # error samples a worker reports (counts are complete)
RSS_GROWTH_FRACTION = 0.10
RSS_GROWTH_SLACK_KIB = 8 * 1024
FD_GROWTH_MAX = 16
FD_IDLE_SLACK = 4
MIB = 1024


# ==================================================================================== workers (processes)


def value_of(key: str, seq: int, size: int) -> bytes:
    return f"{key}|{seq}|".encode().ljust(size, b".")


def parse_value(v: bytes) -> tuple[str, int]:
    key, seq, _ = v.split(b"|", 2)
    return key.decode(), int(seq)


class Ranges:
    """Increasing integers kept as [start, end) ranges (acknowledgements arrive in order per producer)."""

    def __init__(self) -> None:
        self.ranges: list[list[int]] = []
        self.count = 0

    def add(self, n: int) -> None:
        if self.ranges and self.ranges[-1][1] == n:
            self.ranges[-1][1] += 1
        else:
            self.ranges.append([n, n + 1])
        self.count += 1


class ErrorLog:
    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()
        self.samples: list[list[Any]] = []

    def add(self, where: str, e: BaseException) -> None:
        name = f"{where}:{type(e).__name__}"
        self.counts[name] += 1
        if len(self.samples) < ERRORS_KEPT:
            self.samples.append([round(time.time(), 3), name, str(e)[:200]])

    def dump(self) -> dict[str, Any]:
        return {"counts": dict(self.counts), "samples": self.samples}


async def connect(endpoint: str, errors: ErrorLog, deadline: float) -> Fluvial:
    """Connect, retrying (the SC may be down) until wall-clock `deadline`."""
    while True:
        try:
            return await Fluvial.connect(endpoint, timeout=10)
        except Exception as e:
            errors.add("connect", e)
            if time.time() > deadline:
                raise
            await asyncio.sleep(0.5)


async def producer_worker(cfg: dict[str, Any]) -> dict[str, Any]:
    proc, end, rate, size = cfg["proc"], cfg["end"], cfg["rate"], cfg["value_bytes"]
    errors = ErrorLog()
    out: dict[str, Any] = {}
    timeline: Counter[int] = Counter()            # acknowledgements per tenth of a wall-clock second

    async def one(i: int) -> None:
        key = f"p{proc}-{i}"
        committed = i % 2 == 0
        config = ProducerConfig(isolation=Isolation.READ_COMMITTED) if committed else ProducerConfig()
        acked, failed, sent = Ranges(), [0], 0
        queue: asyncio.Queue[Any] = asyncio.Queue(maxsize=MAX_INFLIGHT)
        client = await connect(cfg["endpoint"], errors, time.time() + CONNECT_TIMEOUT_SECONDS)

        async def acker() -> None:
            while (item := await queue.get()) is not None:
                seq, handle = item
                try:
                    await handle
                    acked.add(seq)
                    timeline[int(time.time() * 10)] += 1
                except Exception as e:
                    failed[0] += 1
                    errors.add("delivery", e)

        try:
            producer = await client.topic_producer(TOPIC, config)
            task = asyncio.ensure_future(acker())
            interval, due = 1.0 / rate, time.monotonic()
            max_records = int(rate * max(0.0, end - time.time())) + 1
            while time.time() < end and sent < max_records:
                try:
                    handle = await producer.send(key, value_of(key, sent, size))
                except Exception as e:           # refused before queuing: never acknowledged
                    errors.add("send", e)
                    failed[0] += 1
                else:
                    await queue.put((sent, handle))
                sent += 1
                due += interval
                await asyncio.sleep(max(0.0, due - time.monotonic()))
            try:
                async with asyncio.timeout(WORKER_GRACE_SECONDS - 20):
                    await producer.flush()
                    await queue.put(None)
                    await task
            except Exception as e:
                errors.add("flush", e)
                task.cancel()
            with contextlib.suppress(Exception):
                await producer.close(timeout=5)
        finally:
            await client.close()
            out[key] = {"committed": committed, "sent": sent, "acked": acked.ranges, "acked_count": acked.count,
                        "failed": failed[0]}

    results = await asyncio.gather(*(one(i) for i in range(cfg["producers"])), return_exceptions=True)
    for r in results:
        if isinstance(r, BaseException):
            errors.add("producer", r)
    return {"producers": out, "acks_per_tenth_second": dict(timeline), "errors": errors.dump()}


async def consumer_worker(cfg: dict[str, Any]) -> dict[str, Any]:
    end, pause = cfg["end"], cfg["sleep"]
    errors = ErrorLog()
    stats = {"records": 0, "offset_gaps": 0, "offset_repeats": 0, "key_regressions": 0, "key_repeats": 0,
             "slow_sleep_seconds": pause}
    next_offset: dict[int, int] = {}
    last_seq: dict[str, int] = {}
    client = await connect(cfg["endpoint"], errors, time.time() + CONNECT_TIMEOUT_SECONDS)
    try:
        consumer = await client.consumer(TOPIC)
        stream = await consumer.stream(Offset.beginning())

        async def read() -> None:
            async for rec in stream:
                stats["records"] += 1
                want = next_offset.get(rec.partition, 0)
                if rec.offset > want:
                    stats["offset_gaps"] += 1
                elif rec.offset < want:
                    stats["offset_repeats"] += 1
                next_offset[rec.partition] = rec.offset + 1
                key, seq = parse_value(rec.value)
                prev = last_seq.get(key, -1)
                if seq == prev:
                    stats["key_repeats"] += 1
                elif seq < prev:
                    stats["key_regressions"] += 1
                last_seq[key] = max(prev, seq)
                if pause:
                    await asyncio.sleep(pause)

        task = asyncio.ensure_future(read())
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(max(0.0, end - time.time())):
                await asyncio.shield(task)
        if task.done() and not task.cancelled() and (exc := task.exception()) is not None:
            errors.add("stream", exc)
        task.cancel()
        with contextlib.suppress(BaseException):
            await task
        with contextlib.suppress(Exception):
            await stream.close()
    finally:
        await client.close()
    return {"stats": stats, "errors": errors.dump()}


async def churn_worker(cfg: dict[str, Any]) -> dict[str, Any]:
    end = cfg["end"]
    errors = ErrorLog()
    done: Counter[str] = Counter()
    for i in range(cfg["max_iterations"]):
        if time.time() >= end:
            break
        kind = ("tail", "live", "admin")[i % 3]
        try:
            async with asyncio.timeout(20):
                client = await Fluvial.connect(cfg["endpoint"], timeout=5)
                try:
                    if kind == "admin":
                        async with await client.admin() as admin:
                            await admin.list_topics()
                    else:
                        consumer = await client.consumer(TOPIC, [i % PARTITIONS])
                        if kind == "tail":
                            conf = ConsumerConfig(disable_continuous=True)
                            async with await consumer.stream(Offset.from_end(5), conf) as stream:
                                async for _rec in stream:
                                    pass
                        else:
                            async with await consumer.stream(Offset.end()) as stream:
                                with contextlib.suppress(TimeoutError):
                                    async with asyncio.timeout(0.2):
                                        async for _rec in stream:
                                            pass
                finally:
                    await client.close()
            done[kind] += 1
        except Exception as e:
            errors.add(kind, e)
            await asyncio.sleep(0.2)
        await asyncio.sleep(0.02)
    return {"iterations": dict(done), "errors": errors.dump()}


def run_worker(spec: str) -> int:
    cfg = json.loads(spec)
    fn = {"producer": producer_worker, "consumer": consumer_worker, "churn": churn_worker}[cfg["role"]]
    result = asyncio.run(fn(cfg))
    Path(cfg["out"]).write_text(json.dumps(result))
    return 0


# ====================================================================================== the cluster


class SoakCluster:
    """`fluvial cluster start --spu 3` on free ports; the SC killed and relaunched like `restart_sc`."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.data = root / "data"
        self.sc_port, self.base = free_ports(len(SPUS))
        self.profile = root / "profile"
        self.env = {**os.environ, "FLV_PROFILE_PATH": str(self.profile)}
        self.sc_proc: subprocess.Popen[bytes] | None = None

    @property
    def endpoint(self) -> str:
        return f"127.0.0.1:{self.sc_port}"

    def start(self) -> None:
        subprocess.run([*FLUVIAL, "cluster", "start", "--spu", str(len(SPUS)), "--data-dir", str(self.data),
                        "--sc-port", str(self.sc_port), "--spu-base-port", str(self.base), "--profile",
                        str(self.profile)], check=True, env=self.env, capture_output=True, timeout=120)

    def stop(self) -> None:
        subprocess.run([*FLUVIAL, "cluster", "shutdown", "--data-dir", str(self.data)], env=self.env,
                       capture_output=True, timeout=60)
        if self.sc_proc is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.sc_proc.wait(timeout=10)

    def pid(self, name: str) -> int | None:
        try:
            return int((self.data / "run" / f"{name}.pid").read_text())
        except (OSError, ValueError):
            return None

    def kill_sc(self) -> None:
        pid = self.pid("sc")
        if pid is None:
            raise RuntimeError("no SC pid file")
        os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and Path(f"/proc/{pid}").exists():
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, os.WNOHANG)
            if "State:\tZ" in _read(f"/proc/{pid}/status"):
                break
            time.sleep(0.05)

    def restart_sc(self) -> None:
        from fluvial.cli.cluster import _launch

        self.sc_proc = _launch("sc", ["run", "sc", "--data-dir", str(self.data / "sc"), "--public-addr",
                                      self.endpoint], self.data)

    def log_problems(self) -> list[str]:
        out = []
        for f in sorted((self.data / "logs").glob("*.log")):
            for line in f.read_text(errors="replace").splitlines():
                if " WARNING " in line or " ERROR " in line or "Traceback" in line:
                    out.append(f"{f.stem}: {line}")
        return out


def _read(path: str) -> str:
    try:
        return Path(path).read_text()
    except OSError:
        return ""


async def wait_spus_online(sc_port: int, timeout: float) -> float:
    """Seconds until the SC answers and shows every SPU online."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        with contextlib.suppress(Exception):
            async with await Admin.connect("127.0.0.1", sc_port, timeout=2) as admin:
                spus = await admin.list_spus(timeout=2)
                if {s.id for s in spus if s.online} >= set(SPUS):
                    return time.monotonic() - t0
        await asyncio.sleep(0.2)
    raise RuntimeError(f"SPUs not online within {timeout} s after the SC restart")


async def wait_in_sync(sc_port: int, timeout: float) -> list[Any]:
    """Every partition with all replicas online and in sync and HW = LEO; its details."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        with contextlib.suppress(Exception):
            async with await Admin.connect("127.0.0.1", sc_port, timeout=10) as admin:
                last = await admin.partition_details(TOPIC)
            if len(last) == PARTITIONS and all(p.hw == p.leo and all(r.in_sync and r.online for r in p.replicas)
                                               for p in last):
                return last
        await asyncio.sleep(0.5)
    raise RuntimeError(f"{TOPIC} not in sync within {timeout} s: {last}")


async def create_topic(sc_port: int) -> None:
    async with await Admin.connect("127.0.0.1", sc_port, timeout=30) as admin:
        await admin.create_topic(TOPIC, TopicConfig(partitions=PARTITIONS, replication=REPLICATION))


# ====================================================================================== sampling


Sample = tuple[float, str, int, int, int, int, int]   # t, name, pid, VmRSS, FDs, RssAnon, RssFile (KiB)


class Sampler(threading.Thread):
    """RSS (KiB; also its anonymous and file-backed parts) and open FDs of the SC and SPUs every `every`
    seconds."""

    def __init__(self, cluster: SoakCluster, every: float) -> None:
        super().__init__(daemon=True)
        self.cluster, self.every = cluster, every
        self.samples: list[Sample] = []
        self.stop = threading.Event()

    def sample_once(self) -> list[Sample]:
        rows = []
        now = time.time()
        for name in ["sc", *(f"spu-{s}" for s in SPUS)]:
            pid = self.cluster.pid(name)
            if pid is None:
                continue
            status = _read(f"/proc/{pid}/status")
            kib = {line.split(":")[0]: int(line.split()[1]) for line in status.splitlines()
                   if line.startswith(("VmRSS:", "RssAnon:", "RssFile:"))}
            rss = kib.get("VmRSS")
            try:
                fds = len(os.listdir(f"/proc/{pid}/fd"))
            except OSError:
                continue
            if rss is not None:
                rows.append((now, name, pid, rss, fds, kib.get("RssAnon", 0), kib.get("RssFile", 0)))
        return rows

    def run(self) -> None:
        while not self.stop.wait(self.every):
            self.samples.extend(self.sample_once())


def mean(xs: list[int]) -> float:
    return sum(xs) / len(xs) if xs else float("nan")


def quarters(rows: list[Sample], field: int) -> tuple[float, float]:
    """Mean of `field` over the first and over the last quarter of `rows`."""
    q = max(1, len(rows) // 4)
    return mean([r[field] for r in rows[:q]]), mean([r[field] for r in rows[-q:]])


def resource_summary(samples: list[Sample], name: str, t_from: float, t_to: float,
                     phases: dict[str, tuple[float, float]], idle_before: int | None,
                     idle_after: int | None) -> dict[str, Any]:
    """Start/end/max of RSS and FDs of `name` in [t_from, t_to], and whether they stay flat: within each
    phase (after warm-up, before the SC kill; after the SC is back and settled) of the last process,
    the last quarter's mean RSS ≤ the first quarter's × (1 + RSS_GROWTH_FRACTION) + RSS_GROWTH_SLACK_KIB
    and mean FDs ≤ the first quarter's + FD_GROWTH_MAX; RSS the same from the first phase's first quarter
    to the last phase's last quarter (the SC kill moves client connections between processes, so FDs
    are compared within a phase only); FDs back at their idle count once the clients are gone."""
    rows = [s for s in samples if s[1] == name and t_from <= s[0] <= t_to]
    if not rows:
        return {"samples": 0, "flat": None}
    last_pid = rows[-1][2]
    judged: dict[str, Any] = {}
    ok = True
    windows = []
    for phase, (lo, hi) in phases.items():
        w = [s for s in rows if s[2] == last_pid and lo <= s[0] < hi]
        if len(w) < 4:
            continue
        windows.append(w)
        rss_first, rss_last = quarters(w, 3)
        fd_first, fd_last = quarters(w, 4)
        rss_ok = rss_last <= rss_first * (1 + RSS_GROWTH_FRACTION) + RSS_GROWTH_SLACK_KIB
        fd_ok = fd_last <= fd_first + FD_GROWTH_MAX
        ok = ok and rss_ok and fd_ok
        judged[phase] = {"samples": len(w), "rss_kib_first_quarter": round(rss_first),
                         "rss_kib_last_quarter": round(rss_last), "fds_first_quarter": round(fd_first, 1),
                         "fds_last_quarter": round(fd_last, 1), "rss_flat": rss_ok, "fds_flat": fd_ok}
    rss_first = quarters(windows[0], 3)[0] if windows else float("nan")
    rss_last = quarters(windows[-1], 3)[1] if windows else float("nan")
    rss_overall = not windows or rss_last <= rss_first * (1 + RSS_GROWTH_FRACTION) + RSS_GROWTH_SLACK_KIB
    idle_ok = idle_before is None or idle_after is None or idle_after <= idle_before + FD_IDLE_SLACK
    return {"samples": len(rows), "pids": sorted({s[2] for s in rows}),
            "rss_kib_start": rows[0][3], "rss_kib_end": rows[-1][3], "rss_kib_max": max(s[3] for s in rows),
            "fds_start": rows[0][4], "fds_end": rows[-1][4], "fds_max": max(s[4] for s in rows),
            "rss_anon_kib_start": rows[0][5], "rss_anon_kib_end": rows[-1][5],
            "rss_file_kib_start": rows[0][6], "rss_file_kib_end": rows[-1][6],
            "rss_kib_warm_first": rss_first, "rss_kib_warm_last": rss_last, "rss_flat_overall": rss_overall,
            "phases": judged, "fds_idle_before": idle_before, "fds_idle_after": idle_after,
            "fds_back_to_idle": idle_ok,
            "flat": bool(ok and rss_overall and idle_ok) if windows else None}


# ====================================================================================== read-back


async def read_back(endpoint: str, timeout: float) -> dict[str, Any]:
    """Everything in the topic from the beginning: per key the sequences in offset order."""
    seqs: dict[str, array.array[int]] = {}
    offsets_ok, records, bad_values = True, 0, 0
    next_offset: dict[int, int] = {}
    client = await Fluvial.connect(endpoint)
    t0 = time.monotonic()
    try:
        consumer = await client.consumer(TOPIC)
        async with asyncio.timeout(timeout):
            stream = await consumer.stream(Offset.beginning(), ConsumerConfig(disable_continuous=True))
            async with stream:
                while batch := await stream.next_batch():
                    for rec in batch:
                        records += 1
                        if rec.offset != next_offset.get(rec.partition, 0):
                            offsets_ok = False
                        next_offset[rec.partition] = rec.offset + 1
                        try:
                            key, seq = parse_value(rec.value)
                        except ValueError:
                            bad_values += 1
                            continue
                        if rec.key is None or rec.key.decode() != key:
                            bad_values += 1
                        a = seqs.get(key)
                        if a is None:
                            a = seqs[key] = array.array("q")
                        a.append(seq)
    finally:
        await client.close()
    return {"seqs": seqs, "records": records, "offsets_contiguous": offsets_ok, "bad_values": bad_values,
            "per_partition": next_offset, "seconds": time.monotonic() - t0}


def check_records(producers: dict[str, Any], read: dict[str, Any]) -> dict[str, Any]:
    """Lost acknowledged records, duplicates (all / idempotent producers) and order violations."""
    lost, dups, order, unacked_written, lost_examples = 0, 0, 0, 0, []
    dups_by_group = {"read_committed": 0, "default": 0}
    seqs: dict[str, array.array[int]] = read["seqs"]
    unknown_keys = sorted(set(seqs) - set(producers))
    for key, p in producers.items():
        got = seqs.get(key, array.array("q"))
        seen = set(got)
        n_dups = len(got) - len(seen)
        dups += n_dups
        dups_by_group["read_committed" if p["committed"] else "default"] += n_dups
        high = -1
        for s in got:                         # first occurrences must go up
            if s < high:
                order += 1
            high = max(high, s)
        acked = {s for start, end in p["acked"] for s in range(start, end)}
        missing = sorted(acked - seen)
        lost += len(missing)
        lost_examples += [[key, s] for s in missing[:20 - len(lost_examples)]]
        unacked_written += len(seen - acked)
    return {"lost": lost, "lost_examples": lost_examples, "duplicates": dups, "duplicates_by_group": dups_by_group,
            "order_violations": order, "written_not_acknowledged": unacked_written,
            "unknown_keys": unknown_keys[:20]}


# ====================================================================================== main


def longest_stall(timeline: Counter[int], lo: int, hi: int) -> tuple[int, int]:
    """(length, first slot) of the longest run of time slots in [lo, hi) without an acknowledgement."""
    best, best_at, run, run_at = 0, 0, 0, 0
    for sec in range(lo, hi):
        if timeline.get(sec, 0) == 0:
            run_at = run_at if run else sec
            run += 1
            if run > best:
                best, best_at = run, run_at
        else:
            run = 0
    return best, best_at


def spawn(root: Path, name: str, cfg: dict[str, Any]) -> tuple[subprocess.Popen[bytes], Path]:
    out = root / "workers" / f"{name}.json"
    cfg = {**cfg, "out": str(out)}
    err = open(root / "workers" / f"{name}.err", "wb")  # noqa: SIM115 - the child owns it
    proc = subprocess.Popen([sys.executable, __file__, "--worker", json.dumps(cfg)], stdout=err, stderr=err,
                            stdin=subprocess.DEVNULL)
    return proc, out


def run(args: argparse.Namespace, root: Path) -> tuple[dict[str, Any], bool]:
    load_seconds = args.minutes * 60
    cluster = SoakCluster(root)
    (root / "workers").mkdir(parents=True)
    log(f"cluster: SC 127.0.0.1:{cluster.sc_port}, SPUs from port {cluster.base}, data {cluster.data}")
    cluster.start()
    workers: list[tuple[str, subprocess.Popen[bytes], Path]] = []
    sampler = Sampler(cluster, args.sample_seconds)
    events: dict[str, Any] = {}
    try:
        asyncio.run(create_topic(cluster.sc_port))
        asyncio.run(wait_in_sync(cluster.sc_port, 60))
        time.sleep(1)
        idle_before = {r[1]: r[4] for r in sampler.sample_once()}
        sampler.start()
        t_start = time.time()
        end = t_start + load_seconds
        common = {"endpoint": cluster.endpoint, "end": end}
        for i in range(args.producer_procs):
            name = f"producer-{i}"
            workers.append((name, *spawn(root, name, {**common, "role": "producer", "proc": i,
                                                      "producers": args.producers, "rate": args.rate,
                                                      "value_bytes": args.value_bytes})))
        for i, pause in enumerate(SLOW_SLEEPS[:args.consumer_procs]):
            name = f"consumer-{i}"
            workers.append((name, *spawn(root, name, {**common, "role": "consumer", "sleep": pause})))
        workers.append(("churn", *spawn(root, "churn", {**common, "role": "churn",
                                                        "max_iterations": int(load_seconds * 50) + 1})))
        log(f"load: {len(workers)} worker processes for {load_seconds:.0f} s")

        kill_at = t_start + load_seconds * args.sc_kill_at
        while time.time() < kill_at:
            time.sleep(min(1.0, max(0.0, kill_at - time.time())))
            if any(p.poll() not in (None, 0) for _n, p, _o in workers):
                break
        events["sc_kill"] = time.time()
        log("SC: kill -9")
        cluster.kill_sc()
        time.sleep(SC_DOWN_SECONDS)
        cluster.restart_sc()
        events["sc_restart"] = time.time()
        events["sc_back_seconds"] = asyncio.run(wait_spus_online(cluster.sc_port, 60))
        events["sc_back"] = time.time()
        log(f"SC: restarted, all SPUs online after {events['sc_back_seconds']:.2f} s")

        for name, proc, _out in workers:
            try:
                proc.wait(timeout=max(1.0, end + WORKER_GRACE_SECONDS - time.time()))
            except subprocess.TimeoutExpired:
                log(f"{name}: still running {WORKER_GRACE_SECONDS} s after the load; killed")
                proc.kill()
                proc.wait(timeout=10)
        t_load_end = time.time()
        events["load_seconds"] = t_load_end - t_start
        sampler.stop.set()
        sampler.join(timeout=10)
        results: dict[str, Any] = {"workers": {}}
        for name, proc, out in workers:
            try:
                results["workers"][name] = {"exit": proc.returncode, **json.loads(out.read_text())}
            except (OSError, ValueError):
                results["workers"][name] = {"exit": proc.returncode, "missing": True}
        log("read-back: waiting for every replica in sync")
        details = asyncio.run(wait_in_sync(cluster.sc_port, 120))
        hw_total = sum(p.hw for p in details)
        read = asyncio.run(read_back(cluster.endpoint, max(120.0, hw_total / 5000)))
        log(f"read-back: {read['records']:,} records in {read['seconds']:.1f} s")
        time.sleep(2)                                  # every client is gone: the idle FD count again
        details_after = asyncio.run(wait_in_sync(cluster.sc_port, 30))
        partitions = [{"partition": p.partition, "leader": p.leader, "read": read["per_partition"].get(p.partition, 0),
                       "hw_before_read": b.hw, "hw_after_read": p.hw, "leo_after_read": p.leo,
                       "replica_leos": {r.spu_id: r.leo for r in p.replicas}}
                      for b, p in zip(sorted(details, key=lambda x: x.partition),
                                      sorted(details_after, key=lambda x: x.partition), strict=True)]
        idle_after = {r[1]: r[4] for r in sampler.sample_once()}
        problems = cluster.log_problems()
    finally:
        sampler.stop.set()
        for _name, proc, _out in workers:
            if proc.poll() is None:
                proc.kill()
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.wait(timeout=10)
        cluster.stop()

    producers: dict[str, Any] = {}
    for name, w in results["workers"].items():
        if name.startswith("producer"):
            producers.update(w.get("producers", {}))
    checks = check_records(producers, read)
    timeline: Counter[int] = Counter()
    for name, w in results["workers"].items():
        if name.startswith("producer"):
            timeline.update({int(k): v for k, v in w.get("acks_per_tenth_second", {}).items()})
    stall = longest_stall(timeline, int((t_start + 5) * 10), int((t_load_end - 5) * 10))
    per_second: Counter[int] = Counter()
    for k, v in timeline.items():
        per_second[int(k / 10 - t_start)] += v
    acked = sum(p["acked_count"] for p in producers.values())
    sent = sum(p["sent"] for p in producers.values())
    failed = sum(p["failed"] for p in producers.values())
    consumers = {n: w for n, w in results["workers"].items() if n.startswith("consumer")}
    live_bad = sum(w.get("stats", {}).get(k, 0) for w in consumers.values()
                   for k in ("offset_gaps", "offset_repeats", "key_regressions", "key_repeats"))
    warmup = max(args.warmup_fraction * load_seconds, 20.0)
    phases = {"before_sc_kill": (t_start + warmup, events["sc_kill"]),
              "after_sc_back": (events["sc_back"] + SC_SETTLE_SECONDS, t_load_end)}
    resources = {}
    for name in ["sc", *(f"spu-{s}" for s in SPUS)]:
        resources[name] = resource_summary(sampler.samples, name, t_start, t_load_end, phases,
                                           idle_before.get(name), idle_after.get(name))
    outage = (events["sc_kill"], events["sc_back"] + SC_SETTLE_SECONDS)
    client_errors = [e for w in results["workers"].values() for e in (w.get("errors") or {}).get("samples", [])]
    outside = [e for e in client_errors if not outage[0] <= e[0] <= outage[1]]
    missing_workers = [n for n, w in results["workers"].items() if w.get("missing") or w["exit"] != 0]
    passed = {
        "acknowledged records lost = 0": checks["lost"] == 0,
        "duplicates (idempotent producers) = 0": checks["duplicates"] == 0,
        "per-key order kept": checks["order_violations"] == 0,
        "log offsets contiguous, values intact": read["offsets_contiguous"] and read["bad_values"] == 0
                                                  and not checks["unknown_keys"],
        "read-back = high watermarks": all(p["read"] == p["hw_after_read"] for p in partitions),
        "live consumers: no gap, repeat or reorder": live_bad == 0,
        "every worker finished": not missing_workers,
        "RSS and FDs flat after warm-up": all(r.get("flat") for r in resources.values()),
    }
    payload = {
        "config": {"minutes": args.minutes, "producer_procs": args.producer_procs, "producers_per_proc": args.producers,
                   "rate_per_producer": args.rate, "value_bytes": args.value_bytes, "consumer_procs": args.consumer_procs,
                   "slow_sleeps": list(SLOW_SLEEPS[:args.consumer_procs]), "partitions": PARTITIONS,
                   "replication": REPLICATION, "sc_kill_at": args.sc_kill_at, "sc_down_seconds": SC_DOWN_SECONDS,
                   "sample_seconds": args.sample_seconds, "warmup_seconds": warmup},
        "events": {k: (round(v - t_start, 2) if k in ("sc_kill", "sc_restart", "sc_back") else round(v, 2))
                   for k, v in events.items()},
        "produce": {"sent": sent, "acknowledged": acked, "failed": failed,
                    "acked_per_second": acked / load_seconds,
                    "acknowledged_read_committed": sum(p["acked_count"] for p in producers.values() if p["committed"]),
                    "acknowledged_default": sum(p["acked_count"] for p in producers.values() if not p["committed"])},
        "read_back": {"records": read["records"], "hw_total": hw_total,
                      "hw_total_after_read": sum(p["hw_after_read"] for p in partitions), "seconds": read["seconds"],
                      "records_per_second": read["records"] / read["seconds"] if read["seconds"] else 0,
                      "offsets_contiguous": read["offsets_contiguous"], "bad_values": read["bad_values"],
                      "partitions": partitions},
        "checks": checks,
        "client_errors_outside_sc_outage": {"count": len(outside), "of_sampled": len(client_errors),
                                            "examples": outside[:10]},
        "produce_stall": {"longest_seconds_without_acks": stall[0] / 10,
                          "from_load_second": round(stall[1] / 10 - t_start, 1) if stall[0] else None},
        "acks_per_second": dict(sorted(per_second.items())),
        "passed": passed,
        "consumers": consumers,
        "churn": results["workers"].get("churn"),
        "producer_errors": {n: w.get("errors") for n, w in results["workers"].items() if n.startswith("producer")},
        "resources": resources,
        "samples": [list(s) for s in sampler.samples],
        "server_log_problems": problems,
    }
    return payload, all(passed.values())


def report(payload: dict[str, Any]) -> None:
    pr, rb, ch = payload["produce"], payload["read_back"], payload["checks"]
    ev = payload["events"]
    print()
    print_markdown_table(["check", "measured", "ok"], [
        ["acknowledged records lost", f"{ch['lost']} of {pr['acknowledged']:,}",
         _ok(payload, "acknowledged records lost = 0")],
        ["duplicates", f"{ch['duplicates']} (ReadCommitted {ch['duplicates_by_group']['read_committed']}, "
                       f"default {ch['duplicates_by_group']['default']})",
         _ok(payload, "duplicates (idempotent producers) = 0")],
        ["per-key order violations", ch["order_violations"], _ok(payload, "per-key order kept")],
        ["read-back", f"{rb['records']:,} records (HW sum {rb['hw_total']:,} before, "
                      f"{rb['hw_total_after_read']:,} after), {rb['records_per_second']:,.0f}/s",
         _ok(payload, "read-back = high watermarks")],
        ["written, not acknowledged", ch["written_not_acknowledged"], ""],
        ["live consumers (gap/repeat/reorder)", ", ".join(
            f"{n}: {w.get('stats', {}).get('records', 0):,} rec" for n, w in payload["consumers"].items()),
         _ok(payload, "live consumers: no gap, repeat or reorder")],
        ["produce", f"{pr['sent']:,} sent, {pr['acknowledged']:,} acked ({pr['acked_per_second']:,.0f} records/s), "
                    f"{pr['failed']} failed", ""],
        ["SC kill -9 → back", f"at {ev.get('sc_kill', 0):.0f} s; SPUs online {ev.get('sc_back_seconds', 0):.2f} s "
                              "after the relaunch", ""],
        ["longest produce stall (no acks)", f"{payload['produce_stall']['longest_seconds_without_acks']:.1f} s"
         + (f" from {payload['produce_stall']['from_load_second']:.1f} s"
            if payload['produce_stall']['from_load_second'] is not None else ""), ""],
        ["churn iterations", json.dumps((payload["churn"] or {}).get("iterations", {})), ""],
        ["client errors outside the SC outage (+10 s)",
         f"{payload['client_errors_outside_sc_outage']['count']} of "
         f"{payload['client_errors_outside_sc_outage']['of_sampled']} sampled", ""],
        ["every worker finished", "", _ok(payload, "every worker finished")],
    ])
    print()
    rows = []
    for name, r in payload["resources"].items():
        if not r.get("samples"):
            rows.append([name, "no samples", "", "", "", "", "", "no"])
            continue
        ph = r["phases"]
        fds = " ; ".join(f"{p['fds_first_quarter']:.0f} → {p['fds_last_quarter']:.0f}" for p in ph.values())
        rows.append([name,
                     f"{r['rss_kib_start'] / MIB:.1f} / {r['rss_kib_end'] / MIB:.1f} / {r['rss_kib_max'] / MIB:.1f}",
                     f"{r['rss_kib_warm_first'] / MIB:.1f} → {r['rss_kib_warm_last'] / MIB:.1f}",
                     f"{r['rss_anon_kib_start'] / MIB:.1f} → {r['rss_anon_kib_end'] / MIB:.1f} / "
                     f"{r['rss_file_kib_start'] / MIB:.1f} → {r['rss_file_kib_end'] / MIB:.1f}",
                     f"{r['fds_start']} / {r['fds_end']} / {r['fds_max']}", fds,
                     f"{r['fds_idle_before']} → {r['fds_idle_after']}",
                     {True: "yes", False: "**NO**", None: "too few samples"}[r["flat"]]])
    print_markdown_table(["process", "RSS MiB start / end / max", "RSS MiB after warm-up (1st → last quarter)",
                          "anon / file-backed MiB (start → end)",
                          "FDs start / end / max", "FDs per phase (1st → last quarter; before kill ; after)",
                          "FDs idle before → after", "flat"], rows)
    errs: Counter[str] = Counter()
    texts: dict[str, Counter[str]] = {}
    for w in [*payload["producer_errors"].values(), *(c.get("errors") for c in payload["consumers"].values()),
              (payload["churn"] or {}).get("errors")]:
        errs.update((w or {}).get("counts", {}))
        for _t, kind, text in (w or {}).get("samples", []):
            texts.setdefault(kind, Counter())[text] += 1
    if errs:
        print("\nclient-side errors (count, most frequent text among the sampled):")
        for kind, n in errs.most_common():
            top = texts.get(kind, Counter()).most_common(1)
            print(f"  {kind} {n}" + (f": {top[0][0]}" if top else ""))
    print_log_problems(payload["server_log_problems"])


def _ok(payload: dict[str, Any], name: str) -> str:
    return "yes" if payload["passed"][name] else "**NO**"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    ap.add_argument("--minutes", type=float, default=None, help="load time (default 30; --quick 2)")
    ap.add_argument("--quick", action="store_true", help="2 minutes of load, samples every 2 s")
    ap.add_argument("--producer-procs", type=int, default=4)
    ap.add_argument("--producers", type=int, default=25, help="producers per process")
    ap.add_argument("--rate", type=float, default=10.0, help="records/s per producer")
    ap.add_argument("--value-bytes", type=int, default=100)
    ap.add_argument("--consumer-procs", type=int, default=len(SLOW_SLEEPS), choices=range(1, len(SLOW_SLEEPS) + 1))
    ap.add_argument("--sc-kill-at", type=float, default=0.5, help="fraction of the load time")
    ap.add_argument("--sample-seconds", type=float, default=None, help="default 5 (--quick 2)")
    ap.add_argument("--warmup-fraction", type=float, default=0.25)
    ap.add_argument("--dir", default=None, help="parent of the data dir (default: the temp dir)")
    ap.add_argument("--keep", action="store_true", help="leave the data dir (logs, worker output)")
    args = ap.parse_args()
    if args.worker:
        return run_worker(args.worker)
    interrupt_on_signals()
    args.minutes = args.minutes or (2.0 if args.quick else 30.0)
    args.sample_seconds = args.sample_seconds or (2.0 if args.quick else 5.0)
    root = Path(tempfile.mkdtemp(prefix="fluvial-soak-", dir=args.dir))
    machine = machine_facts(str(root), fs_type(str(root)), mode="quick" if args.quick else f"{args.minutes:g} min",
                            delivery_timeout_s=d.DELIVERY_TIMEOUT_SECONDS)
    print(machine_line(machine))
    t0 = time.monotonic()
    try:
        payload, ok = run(args, root)
    finally:
        if args.keep:
            log(f"data kept in {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)
    payload = {"machine": machine, "wall_seconds": round(time.monotonic() - t0, 1), **payload}
    report(payload)
    write_results(RESULTS / "soak_load.json", payload)
    failed = [k for k, v in payload["passed"].items() if not v]
    print("\nsoak: " + ("all checks passed" if ok else "FAILED: " + "; ".join(failed)))
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
