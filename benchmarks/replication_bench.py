#!/usr/bin/env python3
"""Replication: failover time and the cost of replicated, committed produce.

Failover (3 SPUs, rf = 3, default timeouts): fluvial's idempotent `ReadCommitted` producer sends one
100 B record every 5 ms; after 1 s of acknowledgements the partition's leader is
  kill    kill -9                      (the SC sees the connection close)
  stop    SIGSTOP                      (heartbeat silence, 2 s; the stopped leader's lease ran out first)
  link    its veth link set down       (the leader runs in its own network namespace; heartbeat path)
and the failover time is from the fault to the first acknowledgement of a record sent after it (only a
new leader can commit one). Then the fault is undone (restart / SIGCONT / link up), the old leader
catches up, and — for `link`, whose namespaced SPU must lead — leadership is moved back with
`partition elect-leader`. p50, p90 and max over the trials.

Throughput (3 SPUs): fluvial's client, `ReadCommitted`, 1 KiB records, `send_all` in chunks of 1,000
(all queued, then every acknowledgement awaited), rf = 3 vs rf = 1 on the same cluster, interleaved reps; during the rf = 3 runs the SC's per-follower lag (records)
is sampled every 50 ms; its p99 is reported. The ratio is taken within a rep, then the median.

    .venv/bin/python benchmarks/replication_bench.py                 # 30 trials per fault, 3 reps (~15 min)
    .venv/bin/python benchmarks/replication_bench.py --quick         # 5 trials, 2 reps (~3 min)

Results go to benchmarks/results/replication.json.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.integration.cluster import FLUVIAL, free_ports
from tests.integration.test_replication_netns import IsolatedCluster, Net

from benchlib import (
    RESULTS,
    fmt_range,
    interrupt_on_signals,
    log,
    machine_facts,
    machine_line,
    median,
    print_markdown_table,
    write_results,
)
from fluvial import defaults as d
from fluvial.client.admin import Admin, TopicConfig
from fluvial.client.connect import Fluvial
from fluvial.client.producer import ProducerConfig
from fluvial.protocol.spu import Isolation

SPUS = (5001, 5002, 5003)


def percentile(xs: list[float], q: float) -> float:
    s = sorted(xs)
    return s[min(len(s) - 1, max(0, round(q * (len(s) - 1))))] if s else float("nan")


class LocalCluster:
    """`fluvial cluster start` on free ports; SPUs restarted with the same arguments."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.sc_port, self.base = free_ports(3)
        self.profile = root / "profile"
        self.env = {**os.environ, "FLV_PROFILE_PATH": str(self.profile)}

    def start(self) -> None:
        subprocess.run([*FLUVIAL, "cluster", "start", "--spu", "3", "--data-dir", str(self.root / "data"),
                        "--sc-port", str(self.sc_port), "--spu-base-port", str(self.base), "--profile",
                        str(self.profile)], check=True, env=self.env, capture_output=True, timeout=120)

    def stop(self) -> None:
        subprocess.run([*FLUVIAL, "cluster", "shutdown", "--data-dir", str(self.root / "data")], env=self.env,
                       capture_output=True, timeout=60)

    def pid(self, spu: int) -> int:
        return int((self.root / "data" / "run" / f"spu-{spu}.pid").read_text())

    def restart(self, spu: int) -> None:
        from fluvial.cli.cluster import _launch

        p = self.base + d.SPU_PORT_STRIDE * (spu - d.SPU_BASE_ID)
        _launch(f"spu-{spu}", ["run", "spu", "--id", str(spu), "--data-dir", str(self.root / "data" / f"spu-{spu}"),
                               "--public-addr", f"127.0.0.1:{p}", "--private-addr", f"127.0.0.1:{p + 1}",
                               "--sc-addr", f"127.0.0.1:{self.sc_port + 1}"], self.root / "data")


async def details(sc_port: int, topic: str) -> Any:
    async with await Admin.connect("127.0.0.1", sc_port, timeout=10) as admin:
        return (await admin.partition_details(topic))[0]


async def wait_in_sync(sc_port: int, topic: str, timeout: float = 60) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(Exception):
            p = await details(sc_port, topic)
            if all(r.in_sync and r.online for r in p.replicas) and p.hw == p.leo:
                return p
        await asyncio.sleep(0.1)
    raise RuntimeError(f"{topic} not back in sync within {timeout} s")


async def failover_trials(sc_port: int, topic: str, trials: int, fault: Any, restore: Any,
                          before: Any = None) -> list[float]:
    """Failover times (seconds) of `trials` faults of the current leader."""
    client = await Fluvial.connect(f"127.0.0.1:{sc_port}")
    times: list[float] = []
    try:
        config = ProducerConfig(linger_seconds=0, isolation=Isolation.READ_COMMITTED, idempotent=True,
                                request_timeout_seconds=3, delivery_timeout_seconds=120)
        async with await client.topic_producer(topic, config) as producer:
            for n in range(trials):
                p = await wait_in_sync(sc_port, topic)
                if before is not None:
                    p = await before(p)
                leader = p.leader
                fault_at = [0.0]           # set when the fault is applied
                first_after: asyncio.Future[float] = asyncio.get_running_loop().create_future()

                async def acked(sent: float, handle: Any, fut: asyncio.Future[float] = first_after,
                                at: list[float] = fault_at) -> None:
                    await handle
                    if at[0] and sent > at[0] and not fut.done():
                        fut.set_result(time.monotonic())

                tasks = []
                started = time.monotonic()
                while not first_after.done():
                    now = time.monotonic()
                    if not fault_at[0] and now - started > 1.0:
                        fault_at[0] = time.monotonic()
                        await asyncio.to_thread(fault, leader)
                    tasks.append(asyncio.ensure_future(acked(time.monotonic(), await producer.send(None, b"x" * 100))))
                    await asyncio.sleep(0.005)
                    if time.monotonic() - started > 60:
                        raise RuntimeError("no acknowledgement within 60 s of the fault")
                took = first_after.result() - fault_at[0]
                times.append(took)
                await producer.flush()
                await asyncio.gather(*tasks)
                await asyncio.to_thread(restore, leader)
                log(f"  trial {n + 1}/{trials}: leader {leader} -> {took * 1000:.0f} ms")
    finally:
        await client.close()
    return times


def run_failover(root: Path, mode: str, trials: int) -> list[float]:
    if mode == "link":
        net = Net()
        net.up()
        c = IsolatedCluster(root / mode, net)
        try:
            c.start()

            async def main() -> list[float]:
                await asyncio.sleep(3)
                async with await Admin.connect("127.0.0.1", c.sc_port, timeout=30) as admin:
                    await admin.create_topic("fo", TopicConfig(replication=3))

                async def to_5003(p: Any) -> Any:
                    if p.leader != 5003:
                        async with await Admin.connect("127.0.0.1", c.sc_port, timeout=10) as admin:
                            await admin.elect_leader("fo", 0, 5003)
                        while (p := await details(c.sc_port, "fo")).leader != 5003:
                            await asyncio.sleep(0.1)
                    return p

                return await failover_trials(c.sc_port, "fo", trials, lambda _l: net.cut(), lambda _l: net.heal(),
                                             before=to_5003)

            return asyncio.run(main())
        finally:
            c.stop()
            net.down()
    cluster = LocalCluster(root / mode)
    cluster.start()
    try:
        async def main() -> list[float]:
            async with await Admin.connect("127.0.0.1", cluster.sc_port, timeout=30) as admin:
                await admin.create_topic("fo", TopicConfig(replication=3))
            if mode == "kill":
                def fault(leader: int) -> None:
                    os.kill(cluster.pid(leader), signal.SIGKILL)

                def restore(leader: int) -> None:
                    cluster.restart(leader)
            else:
                def fault(leader: int) -> None:
                    os.kill(cluster.pid(leader), signal.SIGSTOP)

                def restore(leader: int) -> None:
                    os.kill(cluster.pid(leader), signal.SIGCONT)
            return await failover_trials(cluster.sc_port, "fo", trials, fault, restore)

        return asyncio.run(main())
    finally:
        for spu in SPUS:
            with contextlib.suppress(Exception):
                os.kill(cluster.pid(spu), signal.SIGCONT)
        cluster.stop()


# ------------------------------------------------------------------------------------------ throughput


async def produce_run(sc_port: int, topic: str, records: int, sample_lag: bool) -> tuple[float, list[float]]:
    client = await Fluvial.connect(f"127.0.0.1:{sc_port}")
    lags: list[float] = []
    stop = asyncio.Event()

    async def sampler() -> None:
        async with await Admin.connect("127.0.0.1", sc_port, timeout=10) as admin:
            while not stop.is_set():
                p = (await admin.partition_details(topic))[0]
                lags.extend(float(r.lag) for r in p.replicas if r.spu_id != p.leader and r.lag >= 0)
                await asyncio.sleep(0.05)

    try:
        config = ProducerConfig(isolation=Isolation.READ_COMMITTED, delivery_timeout_seconds=120)
        value = b"v" * 1024
        chunk = 1000
        async with await client.topic_producer(topic, config) as producer:
            task = asyncio.ensure_future(sampler()) if sample_lag else None
            t0 = time.perf_counter()
            deliveries = [await producer.send_all([value] * chunk) for _ in range(records // chunk)]
            for delivery in deliveries:               # pipelined: the buffer (64 MiB) bounds what waits
                await delivery.offsets()
            elapsed = time.perf_counter() - t0
            stop.set()
            if task is not None:
                await task
    finally:
        await client.close()
    return records / elapsed, lags


def run_throughput(root: Path, reps: int, records: int) -> dict[str, Any]:
    cluster = LocalCluster(root / "throughput")
    cluster.start()
    rf1, rf3, ratios, lags = [], [], [], []
    try:
        async def create(name: str, rf: int) -> None:
            async with await Admin.connect("127.0.0.1", cluster.sc_port, timeout=30) as admin:
                await admin.create_topic(name, TopicConfig(replication=rf))

        for rep in range(reps):
            asyncio.run(create(f"r1-{rep}", 1))
            asyncio.run(create(f"r3-{rep}", 3))
            order = [("r1", 1), ("r3", 3)] if rep % 2 == 0 else [("r3", 3), ("r1", 1)]
            got: dict[int, float] = {}
            for prefix, rf in order:
                rate, lag = asyncio.run(produce_run(cluster.sc_port, f"{prefix}-{rep}", records, rf == 3))
                got[rf] = rate
                lags += lag
            rf1.append(got[1])
            rf3.append(got[3])
            ratios.append(got[3] / got[1])
            log(f"  rep {rep + 1}/{reps}: rf=1 {got[1]:,.0f} rec/s, rf=3 {got[3]:,.0f} rec/s, ratio {ratios[-1]:.2f}")
    finally:
        cluster.stop()
    return {"rf1": rf1, "rf3": rf3, "ratio": ratios, "lag_p99": percentile(lags, 0.99),
            "lag_max": max(lags) if lags else float("nan"), "lag_samples": len(lags)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--trials", type=int, default=None)
    ap.add_argument("--reps", type=int, default=None)
    ap.add_argument("--records", type=int, default=None)
    ap.add_argument("--modes", default="kill,stop,link")
    args = ap.parse_args()
    interrupt_on_signals()
    trials = args.trials or (5 if args.quick else 30)
    reps = args.reps or (2 if args.quick else 3)
    records = args.records or (20_000 if args.quick else 50_000)
    root = Path(tempfile.mkdtemp(prefix="fluvial-repl-"))
    machine = machine_facts(str(root), "tmp")
    print(machine_line(machine))
    results: dict[str, Any] = {"machine": machine, "trials": trials, "failover": {}}
    try:
        for mode in [m for m in args.modes.split(",") if m]:
            log(f"failover: {mode}, {trials} trials")
            results["failover"][mode] = run_failover(root, mode, trials)
        log(f"throughput: {reps} reps of {records} × 1 KiB, ReadCommitted")
        results["throughput"] = run_throughput(root, reps, records)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    rows = []
    for mode, xs in results["failover"].items():
        rows.append([mode, len(xs), f"{percentile(xs, 0.5):.2f}", f"{percentile(xs, 0.9):.2f}", f"{max(xs):.2f}"])
    print()
    print_markdown_table(["fault", "trials", "p50 s", "p90 s", "max s"], rows)
    t = results["throughput"]
    print()
    print_markdown_table(["rf=1 rec/s", "rf=3 rec/s", "rf=3 / rf=1", "follower lag p99 (records)", "lag max"],
                         [[f"{median(t['rf1']):,.0f}", f"{median(t['rf3']):,.0f}",
                           f"{median(t['ratio']):.2f} ({fmt_range(t['ratio'])})", f"{t['lag_p99']:.0f}",
                           f"{t['lag_max']:.0f}"]])
    write_results(RESULTS / "replication.json", results)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
