"""Disk-full soak (issue #9): real SPUs on real tmpfs mounts, each in a mount namespace of its own (root).

1. Fill/free cycles: one SPU on a 16 MiB tmpfs, fluvial's idempotent producer writing 8 KiB records
   without pause; each cycle the disk fills until the data dir goes FULL, stays full for --hold seconds,
   and is grown (`nsenter … mount -o remount,size=…`) by --step MiB. Checked: the SPU is the same
   process throughout (0 restarts), exactly one data-dir transition into FULL and one out of it per cycle
   (no flapping, no replica-level transitions), every acknowledged record read back exactly once at its
   acknowledged offset, recovery (grow → next acknowledgement) p50/max.
2. Full under load: the disk filled again and held FULL for --full-minutes while raw ProduceRequests
   (--rate per second over --connections connections) hit it. Measured: SPU log lines per minute, the
   latency of the PartitionFull (72) answers, and that every one of them is counted in
   `fluvial_produce_errors_total{code="PARTITION_FULL"}` of the SPU's --metrics-addr.
3. Failover: 3 SPUs, rf = 3, the leader on a 16 MiB disk, the followers on 64 MiB; a ReadCommitted
   producer fills the leader: time from the leader's FULL line in its log to the first acknowledgement
   of a record the new leader wrote (offset ≥ the old leader's LEO).

Markdown tables on stdout, benchmarks/results/disk_full_soak.json; exit 1 when a check fails.

    sudo make soak                                   # ≤ 30 min
    python benchmarks/disk_full_soak.py --quick      # ≈ 2 min: 10 cycles, 1 minute full, 1 failover
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import itertools
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections import Counter, deque
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.integration.cluster import FLUVIAL, free_ports

from benchlib import (
    RESULTS,
    interrupt_on_signals,
    log,
    machine_facts,
    machine_line,
    print_markdown_table,
    write_results,
)
from fluvial import defaults as d
from fluvial.client.admin import Admin, TopicConfig
from fluvial.client.connect import Fluvial
from fluvial.client.consumer import ConsumerConfig, Offset
from fluvial.client.producer import ProducerConfig
from fluvial.protocol import spu as sp
from fluvial.protocol.codec import decode_from, encode
from fluvial.protocol.records import build_batch
from fluvial.transport.client import ClientConnection

UNSHARE = ("unshare", "-m", "--propagation", "private")
STATE_CHANGE = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) \S+ \S+ state_change machine=(\S+) "
                          r"subject=(\S+) from=(\S+) to=(\S+) event=(\S+)(.*)$")
PRODUCE_VERSION = 24
RECORD_BYTES = 8 * d.KIB
WAIT_SECONDS = 60.0               # any single wait (FULL, an ack, an SPU online) gives up after this
RECOVERY_TARGET_SECONDS = 2.0
FULL_P99_TARGET_MS = 50.0
LINES_FIRST_MINUTE_MAX = 10
LINES_PER_MINUTE_AFTER_MAX = 2


def log_time(stamp: str) -> float:
    """Epoch seconds of a Python logging asctime (local time, as the servers write it)."""
    return dt.datetime.strptime(stamp, "%Y-%m-%d %H:%M:%S,%f").timestamp()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def pct(xs: list[float], q: float) -> float:
    if not xs:
        return float("nan")
    s = sorted(xs)
    return s[min(len(s) - 1, int(q * len(s)))]


class TmpfsCluster:
    """An SC and SPUs, SPU N on a tmpfs of `sizes[N]` MiB in its own mount namespace, with metrics."""

    def __init__(self, root: Path, sizes: dict[int, int], reserve_bytes: int | None = None) -> None:
        self.root = root
        root.mkdir(parents=True)
        self.sc_port, self.base = free_ports(len(sizes))
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.sizes = dict(sizes)
        self.metrics_port: dict[int, int] = {}
        self._spawn("sc", [*FLUVIAL, "run", "sc", "--data-dir", str(root / "sc"), "--public-addr",
                           f"127.0.0.1:{self.sc_port}"])
        for spu, mib in sizes.items():
            disk = self.disk(spu)
            disk.mkdir()
            port = self.base + d.SPU_PORT_STRIDE * (spu - d.SPU_BASE_ID)
            self.metrics_port[spu] = free_port()
            cmd = " ".join([*FLUVIAL, "run", "spu", "--id", str(spu), "--data-dir", str(disk), "--public-addr",
                            f"127.0.0.1:{port}", "--private-addr", f"127.0.0.1:{port + 1}", "--sc-addr",
                            f"127.0.0.1:{self.sc_port + 1}", "--metrics-addr",
                            f"127.0.0.1:{self.metrics_port[spu]}",
                            *(["--reserve-bytes", str(reserve_bytes)] if reserve_bytes is not None else [])])
            self._spawn(f"spu-{spu}", [*UNSHARE, "sh", "-c", f"mount -t tmpfs -o size={mib}m tmpfs {disk} && exec {cmd}"])
        self.pids = {name: p.pid for name, p in self.procs.items()}

    def disk(self, spu: int) -> Path:
        return self.root / f"disk-{spu}"

    def spu_port(self, spu: int) -> int:
        return self.base + d.SPU_PORT_STRIDE * (spu - d.SPU_BASE_ID)

    def _spawn(self, name: str, argv: list[str]) -> None:
        with open(self.root / f"{name}.log", "wb") as out:
            self.procs[name] = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                                start_new_session=True)

    def log_lines(self, name: str) -> list[str]:
        return (self.root / f"{name}.log").read_text(errors="replace").splitlines()

    def transitions(self, spu: int) -> list[tuple[float, str, str, str, str, str]]:
        """(time, machine, subject, from, to, rest) of every state_change line of SPU `spu`."""
        out = []
        for line in self.log_lines(f"spu-{spu}"):
            m = STATE_CHANGE.match(line)
            if m:
                out.append((log_time(m[1]), m[2], m[3], m[4].lower(), m[5].lower(), m[7].strip()))
        return out

    def resize(self, spu: int, mib: int) -> None:
        done = subprocess.run(["nsenter", "-t", str(self.pids[f"spu-{spu}"]), "-m", "mount", "-t", "tmpfs", "-o",
                               f"remount,size={mib}m", "tmpfs", str(self.disk(spu))], capture_output=True, text=True,
                              timeout=10)
        if done.returncode != 0:
            raise RuntimeError(f"remount of SPU {spu}'s disk to {mib} MiB failed: {done.stderr.strip()}")
        self.sizes[spu] = mib

    def alive_same_pid(self, spu: int) -> bool:
        p = self.procs[f"spu-{spu}"]
        if p.poll() is not None or p.pid != self.pids[f"spu-{spu}"]:
            return False
        with contextlib.suppress(OSError):
            return b"spu" in Path(f"/proc/{p.pid}/cmdline").read_bytes()
        return False

    def metric(self, spu: int, name: str, labels: str = "") -> float:
        """Sum of the samples `name{…labels…}` on SPU `spu`'s /metrics (0 when absent)."""
        with urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port[spu]}/metrics", timeout=5) as r:
            text = r.read().decode()
        total = 0.0
        for line in text.splitlines():
            if line.startswith(name + "{") or line.startswith(name + " "):
                if labels and labels not in line:
                    continue
                total += float(line.rsplit(" ", 1)[1])
        return total

    async def admin(self, call: Any) -> Any:
        async with await Admin.connect("127.0.0.1", self.sc_port, timeout=15) as admin:
            return await call(admin)

    async def wait(self, what: str, check: Any, timeout: float = WAIT_SECONDS) -> Any:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with contextlib.suppress(Exception):
                got = await check()
                if got:
                    return got
            await asyncio.sleep(0.05)
        raise TimeoutError(f"timed out after {timeout:.0f} s waiting for {what}")

    async def online(self) -> None:
        async def check() -> bool:
            spus = await self.admin(lambda a: a.list_spus())
            return len([s for s in spus if s.online]) == len(self.sizes)
        await self.wait(f"{len(self.sizes)} SPUs online", check)

    def stop(self) -> None:
        for p in self.procs.values():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(p.pid, signal.SIGTERM)
        for p in self.procs.values():
            try:
                p.wait(timeout=15)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(p.pid, signal.SIGKILL)
                p.wait(timeout=5)


def value_of(seq: int) -> bytes:
    return seq.to_bytes(8, "big") + b"s" * (RECORD_BYTES - 8)


async def read_all(c: TmpfsCluster, topic: str) -> list[tuple[int, int]]:
    """(offset, seq) of every record of partition 0, from the beginning to the high watermark."""
    client = await Fluvial.connect(f"127.0.0.1:{c.sc_port}")
    try:
        consumer = await client.consumer(topic)
        async with await consumer.stream(Offset.beginning(), ConsumerConfig(disable_continuous=True)) as s:
            return [(r.offset, int.from_bytes(bytes(r.value[:8]), "big")) async for r in s]
    finally:
        await client.close()


def check_read_back(acked: dict[int, int], got: list[tuple[int, int]]) -> dict[str, int]:
    """acked: seq -> offset. Lost = acknowledged but not read at its offset; duplicates = a seq read twice."""
    counts = Counter(seq for _, seq in got)
    at = dict(got)
    lost = sum(1 for seq, off in acked.items() if at.get(off) != seq or counts[seq] == 0)
    dups = sum(1 for seq in acked if counts[seq] > 1)
    return {"acked": len(acked), "read": len(got), "lost": lost, "duplicated": dups}


# ================================================================================ 1. fill/free cycles


class SoakProducer:
    """fluvial's idempotent producer sending RECORD_BYTES records without pause, at most `window` in flight."""

    def __init__(self, c: TmpfsCluster, topic: str, window: int = 64) -> None:
        self.c, self.topic, self.window = c, topic, window
        self.acked: dict[int, int] = {}             # seq -> offset
        self.ack_times: list[float] = []            # wall time of each acknowledgement, in order
        self.failed: dict[int, str] = {}
        self.stop = asyncio.Event()
        self.sent = 0

    async def run(self, max_records: int) -> None:
        client = await Fluvial.connect(f"127.0.0.1:{self.c.sc_port}")
        cfg = ProducerConfig(delivery_timeout_seconds=600, linger_seconds=0.002)
        inflight: deque[tuple[int, Any]] = deque()

        async def settle() -> None:
            seq, fut = inflight.popleft()
            try:
                meta = await fut
                self.acked[seq] = meta.offset
                self.ack_times.append(time.time())
            except Exception as e:
                self.failed[seq] = f"{type(e).__name__}: {e}"

        try:
            async with await client.topic_producer(self.topic, cfg) as producer:
                while not self.stop.is_set() and self.sent < max_records:
                    inflight.append((self.sent, await producer.send(None, value_of(self.sent))))
                    self.sent += 1
                    if len(inflight) >= self.window:
                        await settle()
                await producer.flush()
                while inflight:
                    await settle()
        finally:
            await client.close()


async def fill_free_cycles(c: TmpfsCluster, spu: int, cycles: int, step_mib: int, hold: float,
                           deadline: float) -> dict[str, Any]:
    topic = "soak"
    await c.admin(lambda a: a.create_topic(topic, TopicConfig(segment_size=1 * d.MIB, max_partition_size=1 * d.GIB)))
    await c.wait("the topic's leader", lambda: _has_leader(c, topic))
    prod = SoakProducer(c, topic)
    task = asyncio.create_task(prod.run(max_records=10_000_000))
    rows: list[dict[str, Any]] = []
    error = ""
    try:
        for cycle in range(cycles):
            if time.time() > deadline:
                error = f"time budget spent after {cycle} cycles"
                break
            async def full_now(n: int = cycle + 1) -> bool:
                if task.done():
                    raise RuntimeError(f"producer ended: {task.exception()!r}")
                return sum(1 for t in c.transitions(spu) if t[1] == "data_dir" and t[4] == "full") >= n
            await c.wait(f"cycle {cycle}: the data dir FULL", full_now)
            t_full = [t for t in c.transitions(spu) if t[1] == "data_dir" and t[4] == "full"][-1][0]
            await asyncio.sleep(hold)
            acks_before = len(prod.ack_times)
            if cycle == cycles - 1:
                prod.stop.set()     # no refill after the last cycle: what is in flight (≤ 512 KiB) then fits
            c.resize(spu, c.sizes[spu] + step_mib)
            t_free = time.time()

            async def acked_again(n: int = acks_before, freed: float = t_free) -> bool:
                return any(t > freed for t in prod.ack_times[n:])
            await c.wait(f"cycle {cycle}: an acknowledgement after the disk grew", acked_again)
            t_ack = next(t for t in prod.ack_times[acks_before:] if t > t_free)
            rows.append({"cycle": cycle, "size_mib": c.sizes[spu], "full_at": t_full, "freed_at": t_free,
                         "recovery_s": t_ack - t_free, "acked_so_far": len(prod.acked)})
            log(f"  cycle {cycle}: FULL at {c.sizes[spu] - step_mib} MiB, recovery {t_ack - t_free:.3f} s, "
                f"{len(prod.acked)} acked")
    except Exception as e:
        error = f"{type(e).__name__}: {e}"
        log("  " + error + "\n  SPU log (tail):\n    " + "\n    ".join(c.log_lines(f"spu-{spu}")[-25:]))
        c.resize(spu, c.sizes[spu] + 64)        # let the producer's records in flight finish
    prod.stop.set()
    try:
        await asyncio.wait_for(task, timeout=WAIT_SECONDS)
    except Exception as e:
        error = error or f"producer did not finish: {type(e).__name__}: {e}"
    got = await read_all(c, topic)
    rb = check_read_back(prod.acked, got)
    trans = c.transitions(spu)
    outs = [t[0] for t in trans if t[1] == "data_dir" and t[3] == "full"]
    for row in rows:
        out = next((t for t in outs if t >= row["freed_at"] - 0.05), float("nan"))
        row["spu_release_s"] = out - row["freed_at"]        # grow → the dir's FULL → OK/LOW line
        row["full_for_s"] = row["freed_at"] - row["full_at"]
    dir_into_full = sum(1 for t in trans if t[1] == "data_dir" and t[4] == "full")
    dir_out_of_full = sum(1 for t in trans if t[1] == "data_dir" and t[3] == "full")
    replica_lines = [t for t in trans if t[1] == "replica"]
    rec = [r["recovery_s"] for r in rows]
    return {"cycles_done": len(rows), "cycles": rows, "error": error, "hold_s": hold, "step_mib": step_mib,
            "read_back": rb, "delivery_failures": len(prod.failed),
            "delivery_failure_examples": list(prod.failed.values())[:3],
            "data_dir_into_full": dir_into_full, "data_dir_out_of_full": dir_out_of_full,
            "data_dir_transitions": [f"{t[3]}->{t[4]}" for t in trans if t[1] == "data_dir"],
            "replica_transitions": len(replica_lines),
            "replica_transition_examples": [f"{t[2]} {t[3]}->{t[4]} {t[5]}" for t in replica_lines[:5]],
            "recovery_p50_s": statistics.median(rec) if rec else float("nan"),
            "recovery_max_s": max(rec) if rec else float("nan"),
            "spu_release_p50_s": statistics.median([r["spu_release_s"] for r in rows]) if rows else float("nan"),
            "spu_release_max_s": max([r["spu_release_s"] for r in rows], default=float("nan")),
            "full_for_p50_s": statistics.median([r["full_for_s"] for r in rows]) if rows else float("nan"),
            "final_size_mib": c.sizes[spu]}


async def _has_leader(c: TmpfsCluster, topic: str) -> bool:
    parts = await c.admin(lambda a: a.partition_details(topic))
    return bool(parts) and parts[0].leader > 0


# ================================================================================ 2. full under load


def produce_request(topic: str, value: bytes) -> bytes:
    req = sp.ProduceRequest(None, sp.Isolation.READ_UNCOMMITTED, 1000, [sp.TopicProduceData(
        topic, [sp.PartitionProduceData(0, build_batch([(None, value)]))])])
    return encode(req, PRODUCE_VERSION)


async def raw_produce(conn: ClientConnection, body: bytes) -> int:
    reader = await conn.request(sp.SpuApiKey.PRODUCE, PRODUCE_VERSION, body, timeout=5)
    return int(decode_from(sp.ProduceResponse, reader, PRODUCE_VERSION).responses[0].partitions[0].error_code.code)


async def fill_until_full(c: TmpfsCluster, spu: int, topic: str) -> int:
    """Raw 64 KiB batches (¼ of the minimum reserve: the dir reaches FULL before the headroom refuses
    them) until the data dir's log says FULL. Returns the number written."""
    conn = await ClientConnection.connect("127.0.0.1", c.spu_port(spu))
    body = produce_request(topic, b"f" * 64 * d.KIB)
    written = 0
    try:
        for _ in range(100_000):
            t = [x for x in c.transitions(spu) if x[1] == "data_dir"]
            if t and t[-1][4] == "full":
                return written
            code = await raw_produce(conn, body)
            if code == 0:
                written += 1
            else:
                await asyncio.sleep(0.05)      # refused (72): wait for the guard's poll to mark the dir FULL
    finally:
        await conn.close()
    raise TimeoutError("the data dir never went FULL")


async def full_under_load(c: TmpfsCluster, spu: int, minutes: float, rate: float, connections: int) -> dict[str, Any]:
    topic = "soak"
    await c.admin(lambda a: a.create_topic(topic, TopicConfig(segment_size=1 * d.MIB, max_partition_size=1 * d.GIB)))
    await c.wait("the topic's leader", lambda: _has_leader(c, topic))
    filled = await fill_until_full(c, spu, topic)
    await asyncio.sleep(1.0)                       # let the FULL transition's own lines come out
    lines_at = [len(c.log_lines(f"spu-{spu}"))]
    before = c.metric(spu, "fluvial_produce_errors_total", 'code="PARTITION_FULL"')
    suppressed_before = c.metric(spu, "fluvial_log_suppressed_total")
    codes: Counter[str] = Counter()
    lat72: list[float] = []
    seconds = minutes * 60.0
    start = time.monotonic()
    end = start + seconds
    body = produce_request(topic, b"L" * 100)

    async def worker(k: int) -> None:
        conn = await ClientConnection.connect("127.0.0.1", c.spu_port(spu))
        interval = connections / rate
        nxt = time.monotonic() + k * interval / connections
        try:
            while time.monotonic() < end:
                now = time.monotonic()
                if nxt > now:
                    await asyncio.sleep(nxt - now)
                nxt = max(nxt + interval, time.monotonic() - 1.0)   # catch up at most 1 s of backlog
                sent = time.perf_counter()
                try:
                    code = await raw_produce(conn, body)
                except Exception as e:
                    codes[type(e).__name__] += 1
                    await asyncio.sleep(0.1)
                    with contextlib.suppress(Exception):
                        await conn.close()
                    conn = await ClientConnection.connect("127.0.0.1", c.spu_port(spu))
                    continue
                codes[str(code)] += 1
                if code == 72:
                    lat72.append(time.perf_counter() - sent)
        finally:
            await conn.close()

    async def minute_marks() -> None:
        for _ in range(int(seconds // 60) + 1):
            left = end - time.monotonic()
            if left <= 0:
                return
            await asyncio.sleep(min(60.0, left))
            lines_at.append(len(c.log_lines(f"spu-{spu}")))

    await asyncio.gather(*(worker(k) for k in range(connections)), minute_marks())
    took = time.monotonic() - start
    if len(lines_at) < 2 or took - 60.0 * (len(lines_at) - 1) > 1.0:
        lines_at.append(len(c.log_lines(f"spu-{spu}")))
    after = c.metric(spu, "fluvial_produce_errors_total", 'code="PARTITION_FULL"')
    suppressed_after = c.metric(spu, "fluvial_log_suppressed_total")
    # lines per minute from the FULL line of this fill, by their own timestamps (whole minutes held only)
    t_full = [t[0] for t in c.transitions(spu) if t[1] == "data_dir" and t[4] == "full"][-1]
    stamps = [log_time(ln[:23]) for ln in c.log_lines(f"spu-{spu}") if re.match(r"\d{4}-\d\d-\d\d ", ln)]
    held = max(1, int((time.time() - t_full) // 60))
    per_minute = [sum(1 for x in stamps if t_full + 60 * k <= x < t_full + 60 * (k + 1)) for k in range(held)]
    new_lines = [ln for ln in c.log_lines(f"spu-{spu}") if re.match(r"\d{4}-\d\d-\d\d ", ln)
                 and log_time(ln[:23]) >= t_full][:40]
    answered = sum(codes.values())
    return {"filled_batches": filled, "seconds": took, "connections": connections, "target_rate": rate,
            "requests": answered, "rate": answered / took, "codes": dict(codes),
            "p50_72_ms": pct(lat72, 0.5) * 1e3, "p99_72_ms": pct(lat72, 0.99) * 1e3, "max_72_ms": max(lat72) * 1e3
            if lat72 else float("nan"), "counted_72": after - before, "answered_72": codes.get("72", 0),
            "log_suppressed": suppressed_after - suppressed_before, "lines_per_minute": per_minute,
            "lines_after_full_by_file": [b - a for a, b in itertools.pairwise(lines_at)], "lines": new_lines}


# ================================================================================ 3. failover


async def failover_trial(root: Path) -> dict[str, Any]:
    c = TmpfsCluster(root, {5001: 16, 5002: 64, 5003: 64})
    try:
        await c.online()
        topic = "fo"
        await c.admin(lambda a: a.create_topic(topic, TopicConfig(replication=3, segment_size=1 * d.MIB,
                                                                  max_partition_size=1 * d.GIB)))

        async def details() -> Any:
            return (await c.admin(lambda a: a.partition_details(topic)))[0]

        async def in_sync() -> bool:
            p = await details()
            return len(p.replicas) == 3 and all(r.in_sync for r in p.replicas)
        await c.wait("all in sync", in_sync)
        if (await details()).leader != 5001:
            await c.admin(lambda a: a.elect_leader(topic, 0, 5001))

        async def small_leads() -> bool:
            return bool((await details()).leader == 5001)
        await c.wait("SPU 5001 leads", small_leads)
        total = 6000                                       # 6000 × 4 KiB ≈ 24 MiB: fills 16, not 64
        acks: list[tuple[int, float]] = []
        failed: list[str] = []
        client = await Fluvial.connect(f"127.0.0.1:{c.sc_port}")
        try:
            cfg = ProducerConfig(isolation=sp.Isolation.READ_COMMITTED, delivery_timeout_seconds=90,
                                 linger_seconds=0.005)
            async with await client.topic_producer(topic, cfg) as producer:
                outs: deque[Any] = deque()

                async def settle() -> None:
                    try:
                        acks.append(((await outs.popleft()).offset, time.time()))
                    except Exception as e:
                        failed.append(f"{type(e).__name__}: {e}")
                for i in range(total):
                    outs.append(await producer.send(None, i.to_bytes(8, "big") + b"x" * 4088))
                    if len(outs) >= 256:
                        await settle()
                await producer.flush()
                while outs:
                    await settle()
        finally:
            await client.close()
        after = await details()
        old = next(r for r in after.replicas if r.spu_id == 5001)
        fulls = [t for t in c.transitions(5001) if t[1] == "data_dir" and t[4] == "full"]
        t_full = fulls[0][0] if fulls else float("nan")
        old_leo = old.leo
        new_acks = [t for off, t in acks if off >= old_leo]
        got = await read_all(c, topic)
        seqs = [s for _, s in got]
        rb = {"acked": len(acks), "read": len(got), "lost": len({o for o, _ in acks} - {o for o, _ in got}),
              "duplicated": len(seqs) - len(set(seqs))}
        elected = [ln for ln in c.log_lines("sc") if "leader_elected" in ln and "was=5001" in ln]
        cli = {}
        sc = f"127.0.0.1:{c.sc_port}"
        for args in (["partition", "list", "-c", sc], ["partition", "describe", topic, "-c", sc],
                     ["spu", "list", "-c", sc], ["cluster", "status", "--sc-port", str(c.sc_port)]):
            with contextlib.suppress(subprocess.SubprocessError, OSError):
                done = subprocess.run([*FLUVIAL, *args], capture_output=True, text=True, timeout=30,
                                      env={**os.environ, "COLUMNS": "200"})
                cli["fluvial " + " ".join(args[:3] if args[0] == "partition" and args[1] == "describe" else args[:2])] = (
                    done.stdout + done.stderr)
        return {"new_leader": after.leader, "old_leader_state": old.state, "old_leader_leo": old_leo,
                "failover_s": (min(new_acks) - t_full) if new_acks and fulls else float("nan"),
                "elected_after_full_s": (log_time(elected[0][:23]) - t_full) if elected and fulls else float("nan"),
                "read_back": rb, "delivery_failures": len(failed), "failure_examples": failed[:3],
                "spus_same_pid": all(c.alive_same_pid(s) for s in (5001, 5002, 5003)), "cli": cli,
                "spu_5001_log": [ln for ln in c.log_lines("spu-5001") if "WARNING" in ln or "ERROR" in ln][:15],
                "sc_log": [ln for ln in c.log_lines("sc") if "5001" in ln and ("WARNING" in ln or "elect" in ln)][:15]}
    finally:
        c.stop()


# ================================================================================ main


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="≈ 2 min: 10 cycles, 1 minute full, 1 failover")
    ap.add_argument("--cycles", type=int, default=None, help="fill/free cycles (default 50; 10 with --quick)")
    ap.add_argument("--size-mib", type=int, default=16, help="the SPU's tmpfs at the start")
    ap.add_argument("--step-mib", type=int, default=3, help="MiB added to the tmpfs to free space each cycle")
    ap.add_argument("--reserve-bytes", type=int, default=d.SPACE_RESERVE_MIN_BYTES,
                    help="the cycling SPU's --reserve-bytes (default 1 MiB, the default R of a disk ≤ 20 MiB): "
                         "fixed, so that R does not grow with the tmpfs past what one step frees")
    ap.add_argument("--hold", type=float, default=2.0, help="seconds the disk stays FULL in each cycle")
    ap.add_argument("--full-minutes", type=float, default=None, help="minutes held FULL under load (10; 1)")
    ap.add_argument("--rate", type=float, default=1250.0, help="produce requests/s against the full disk")
    ap.add_argument("--connections", type=int, default=4)
    ap.add_argument("--failovers", type=int, default=None, help="failover trials (3; 1 with --quick; 0 skips)")
    ap.add_argument("--budget-minutes", type=float, default=30.0, help="the cycles stop early past this")
    args = ap.parse_args()
    if os.geteuid() != 0:
        log("disk_full_soak needs root (tmpfs mounts in mount namespaces of their own)")
        return 2
    interrupt_on_signals()
    cycles = args.cycles if args.cycles is not None else (10 if args.quick else 50)
    minutes = args.full_minutes if args.full_minutes is not None else (1.0 if args.quick else 10.0)
    failovers = args.failovers if args.failovers is not None else (1 if args.quick else 3)
    started = time.time()
    deadline = started + args.budget_minutes * 60 - minutes * 60 - failovers * 60
    root = Path(tempfile.mkdtemp(prefix="fluvial-dfsoak-"))
    machine = machine_facts(str(root), "tmpfs (one per SPU, own mount namespace)")
    print(machine_line(machine))
    results: dict[str, Any] = {"machine": machine, "quick": args.quick, "command": " ".join(sys.argv),
                               "args": vars(args), "errors": []}
    try:
        c = TmpfsCluster(root / "single", {5001: args.size_mib}, args.reserve_bytes)
        try:
            asyncio.run(c.online())
            log(f"1. fill/free: {cycles} cycles, {args.size_mib} MiB tmpfs + {args.step_mib} MiB per cycle, "
                f"held FULL {args.hold} s")
            results["cycles"] = asyncio.run(fill_free_cycles(c, 5001, cycles, args.step_mib, args.hold, deadline))
            results["single_spu_same_pid"] = c.alive_same_pid(5001)
            results["single_spu_log_lines"] = len(c.log_lines("spu-5001"))
        finally:
            c.stop()
            with contextlib.suppress(OSError):
                shutil.copy(c.root / "spu-5001.log", RESULTS / "disk_full_soak.spu.log")
        # a fresh SPU: its first full minute is not helped by a rate limiter already in a summary interval
        log(f"2. full under load: {minutes} min at {args.rate:.0f} requests/s over {args.connections} connections, "
            f"fresh SPU on {args.size_mib} MiB")
        c = TmpfsCluster(root / "full", {5001: args.size_mib})
        try:
            asyncio.run(c.online())
            results["full"] = asyncio.run(full_under_load(c, 5001, minutes, args.rate, args.connections))
            results["full_spu_same_pid"] = c.alive_same_pid(5001)
        except Exception as e:
            log(f"  full under load: {type(e).__name__}: {e}")
            results["errors"].append(f"full under load: {type(e).__name__}: {e}")
        finally:
            c.stop()
            with contextlib.suppress(OSError):
                shutil.copy(c.root / "spu-5001.log", RESULTS / "disk_full_soak.full.spu.log")
        results["failover"] = []
        for k in range(failovers):
            log(f"3. failover trial {k + 1}/{failovers}: rf=3, leader on 16 MiB, followers on 64 MiB")
            try:
                results["failover"].append(asyncio.run(failover_trial(root / f"fo{k}")))
            except Exception as e:
                log(f"  failover: {type(e).__name__}: {e}")
                results["errors"].append(f"failover {k + 1}: {type(e).__name__}: {e}")
    finally:
        shutil.rmtree(root, ignore_errors=True)
    results["seconds"] = time.time() - started
    checks = report(results, cycles)
    results["checks"] = checks
    write_results(RESULTS / "disk_full_soak.json", results)
    failed = [ck for ck in checks if not ck["ok"]]
    if failed:
        print("\nFAILED: " + "; ".join(f"{ck['check']} ({ck['measured']})" for ck in failed))
    return 1 if failed else 0


def report(r: dict[str, Any], cycles: int) -> list[dict[str, Any]]:
    checks: list[dict[str, Any]] = []

    def check(name: str, target: str, measured: object, ok: bool) -> None:
        checks.append({"check": name, "target": target, "measured": str(measured), "ok": bool(ok)})

    for err in r["errors"]:
        check("phase ran to its end", "no error", err, False)
    nan = float("nan")
    cy = r["cycles"]
    full = r.get("full") or {"lines_per_minute": [], "rate": 0.0, "p50_72_ms": nan, "p99_72_ms": nan,
                             "max_72_ms": nan, "answered_72": 0, "counted_72": 0.0, "codes": {}, "seconds": 0.0,
                             "requests": 0, "log_suppressed": 0.0}

    n = cy["cycles_done"]
    check("fill/free cycles completed", str(cycles), f"{n}" + (f" ({cy['error']})" if cy["error"] else ""),
          n == cycles and not cy["error"])
    check("SPU restarts (same pid throughout)", "0", "0" if r["single_spu_same_pid"] else "restarted/exited",
          r["single_spu_same_pid"])
    if "full_spu_same_pid" in r:
        check("SPU restarts while full under load", "0", "0" if r["full_spu_same_pid"] else "restarted/exited",
              r["full_spu_same_pid"])
    # the producer may fill the disk once more between the last cycle's recovery and its stop: no flap
    refilled = int(cy["data_dir_transitions"][-1:] in (["low->full"], ["ok->full"]))
    check("data dir → FULL transitions", f"{n} (one per cycle)" + (" + 1 refill after the last" if refilled else ""),
          cy["data_dir_into_full"], cy["data_dir_into_full"] == n + refilled)
    check("data dir FULL → transitions", f"{n} (one per cycle)", cy["data_dir_out_of_full"], cy["data_dir_out_of_full"] == n)
    check("replica state_change lines (flaps)", "0 (folded into the dir's line)", cy["replica_transitions"],
          cy["replica_transitions"] == 0)
    rb = cy["read_back"]
    check("acknowledged records lost / duplicated", "0 / 0", f"{rb['lost']} / {rb['duplicated']} of {rb['acked']}",
          rb["lost"] == 0 and rb["duplicated"] == 0 and rb["acked"] > 0)
    check("producer deliveries failed", "0", cy["delivery_failures"], cy["delivery_failures"] == 0)
    check("recovery grow → next ack, max", f"≤ {RECOVERY_TARGET_SECONDS} s", f"{cy['recovery_max_s']:.3f} s "
          f"(p50 {cy['recovery_p50_s']:.3f} s)", cy["recovery_max_s"] <= RECOVERY_TARGET_SECONDS)
    lpm = full["lines_per_minute"]
    check("SPU log lines, first minute full", f"≤ {LINES_FIRST_MINUTE_MAX}", lpm[0] if lpm else "n/a",
          bool(lpm) and lpm[0] <= LINES_FIRST_MINUTE_MAX)
    if len(lpm) > 1:
        check("SPU log lines per later minute, max", f"≤ {LINES_PER_MINUTE_AFTER_MAX}", max(lpm[1:]),
              max(lpm[1:]) <= LINES_PER_MINUTE_AFTER_MAX)
    check("produce requests/s against the full disk", "≥ 1,000", f"{full['rate']:,.0f}", full["rate"] >= 1000)
    check("PartitionFull (72) latency p99", f"≤ {FULL_P99_TARGET_MS:.0f} ms", f"{full['p99_72_ms']:.1f} ms",
          full["p99_72_ms"] <= FULL_P99_TARGET_MS)
    check("every 72 counted in fluvial_produce_errors_total", f"{full['answered_72']:,}", f"{full['counted_72']:,.0f}",
          full["answered_72"] > 0 and full["counted_72"] == full["answered_72"])
    others = {k: v for k, v in full["codes"].items() if k != "72"}
    check("answers other than 72 while full", "none", others or "none", not others)
    for k, fo in enumerate(r["failover"]):
        check(f"failover {k + 1}: new leader, 0 lost, SPUs same pid", "≠ 5001, 0, yes",
              f"{fo['new_leader']}, {fo['read_back']['lost']}, {'yes' if fo['spus_same_pid'] else 'no'}",
              fo["new_leader"] != 5001 and fo["read_back"]["lost"] == 0 and fo["read_back"]["duplicated"] == 0
              and fo["spus_same_pid"] and fo["delivery_failures"] == 0)

    print("\n### 1. Fill/free cycles\n")
    print_markdown_table(["cycles", "records acked", "read back", "lost", "dup", "delivery failures", "→FULL", "FULL→",
                          "replica lines", "full for p50 s", "grow → SPU leaves FULL p50/max s",
                          "grow → next ack p50 s", "max s"],
                         [[n, rb["acked"], rb["read"], rb["lost"], rb["duplicated"], cy["delivery_failures"],
                           cy["data_dir_into_full"], cy["data_dir_out_of_full"], cy["replica_transitions"],
                           f"{cy['full_for_p50_s']:.2f}", f"{cy['spu_release_p50_s']:.3f} / {cy['spu_release_max_s']:.3f}",
                           f"{cy['recovery_p50_s']:.3f}", f"{cy['recovery_max_s']:.3f}"]])
    print("\n### 2. Full under load\n")
    print_markdown_table(["minutes", "requests", "req/s", "72 p50 ms", "72 p99 ms", "72 max ms", "72 answered",
                          "72 counted", "log lines per minute", "suppressed"],
                         [[f"{full['seconds'] / 60:.1f}", full["requests"], f"{full['rate']:,.0f}",
                           f"{full['p50_72_ms']:.2f}", f"{full['p99_72_ms']:.2f}", f"{full['max_72_ms']:.1f}",
                           full["answered_72"], f"{full['counted_72']:.0f}", ", ".join(map(str, lpm)),
                           f"{full['log_suppressed']:.0f}"]])
    if r["failover"]:
        print("\n### 3. Failover off a full leader (rf = 3)\n")
        print_markdown_table(["trial", "new leader", "FULL → elected s", "FULL → first ack on new leader s",
                              "acked", "lost", "dup", "delivery failures"],
                             [[k + 1, fo["new_leader"], f"{fo['elected_after_full_s']:.3f}", f"{fo['failover_s']:.3f}",
                               fo["read_back"]["acked"], fo["read_back"]["lost"], fo["read_back"]["duplicated"],
                               fo["delivery_failures"]] for k, fo in enumerate(r["failover"])])
    print("\n### Checks\n")
    print_markdown_table(["check", "target", "measured", "ok"],
                         [[ck["check"], ck["target"], ck["measured"], "yes" if ck["ok"] else "**NO**"] for ck in checks])
    return checks


if __name__ == "__main__":
    raise SystemExit(main())
