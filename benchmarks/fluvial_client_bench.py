#!/usr/bin/env python3
"""fluvial's own asyncio client against the official `fluvio` client (PyPI 0.21.0) on the same one-SPU
fluvial cluster, with NATS JetStream's acked publish rate measured in the same run.

Sides, for 100 B and 10 KiB values with 8-byte keys (the same key and value bytes every record, as in
client_bench.py; NATS messages have no key, so its payload is the 100 B value):

  produce  official/send       `send(key, value)` × N, `flush()`, `wait()` on the last output
           official/send_all   `send_all([(key, value)] × chunk)` per chunk, `flush()`, last output's wait
           fluvial/send        `await producer.send(key, value)` × N, `await flush()`, `await` the last handle
           fluvial/send_all    `await producer.send_all(values, keys)` per chunk, `await delivery.offsets()`
                               for every chunk (all acks)
  consume  official            `partition_consumer(topic, 0).stream(Offset.beginning())` until N records
           fluvial/iter        `async for rec in stream` (ConsumerConfig(disable_continuous=True))
           fluvial/batch       `await stream.next_batch()` until []
  nats     jetstream           nats_baseline's `_jetstream_run`: acked `publish_async` of N × 100 B into a
                               file-storage stream, window pinned (default 4096), every ack checked

Every measured client runs in its own fresh Python process (fluvial's client and nats-py on uvloop) and
times itself; the producer defaults of both clients are used (16 KiB batches, 100 ms linger; fluvial's
producer is idempotent). Every produce is checked: its last offset must be N − 1 and the partition must
hold exactly N records (log start 0, high watermark N, read with fluvial's FetchOffsets). Every consume
checks every offset against its position and sums the value bytes. The three consumers read the topic
the official single-send producer wrote in the same rep. Each rep runs every side once; odd reps run the
produce sides and the consume sides in reverse order (ABBA). Ratios are taken within a rep, then the
median (and min–max) over the reps. After the reps, one more run each of fluvial's 100 B single-send
produce, batch produce and both consumes runs under cProfile in the client process (not counted).

    .venv/bin/python benchmarks/fluvial_client_bench.py            # full run, ~10 minutes
    .venv/bin/python benchmarks/fluvial_client_bench.py --quick    # half the records, 3 reps, ~2 minutes
    .venv/bin/python benchmarks/fluvial_client_bench.py --reps 5 --no-nats --no-profile

Results go to benchmarks/results/fluvial_client.json; cProfile dumps to benchmarks/results/profiles/.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import pstats
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchlib import (
    RESULTS,
    fmt_range,
    fs_type,
    interrupt_on_signals,
    load_average,
    log,
    machine_facts,
    machine_line,
    median,
    package_version,
    print_log_problems,
    print_markdown_table,
    results_dir,
    write_results,
)
from client_bench import CONSUME, PRELUDE, PRODUCE, BenchError, Cluster, run_script

BENCH_DIR = Path(__file__).resolve().parent
MB = 1_000_000
KIB = 1024
DEFAULT_RESULTS = RESULTS / "fluvial_client.json"

PRODUCE_SIDES = ("official/send", "official/send_all", "fluvial/send", "fluvial/send_all")
CONSUME_SIDES = ("official", "fluvial/iter", "fluvial/batch")

# ============================================================================================ scripts

OFFICIAL_SEND_ALL = PRELUDE + """
from fluvio import Fluvio, FluvioAdmin
FluvioAdmin.connect().create_topic(P["topic"])
fluvio = Fluvio.connect()
producer = fluvio.topic_producer(P["topic"])
key, value, n, chunk = os.urandom(P["key_bytes"]), os.urandom(P["value_bytes"]), P["records"], P["chunk"]
records = [(key, value)] * min(n, chunk)
send_all = producer.send_all
w0, s0, c0, t0 = spu_wait(), spu_cpu(), time.process_time(), time.perf_counter()
sent = 0
while sent < n:
    m = min(chunk, n - sent)
    outs = send_all(records if m == len(records) else records[:m])
    sent += m
producer.flush()
last_offset = outs[-1].wait().offset()
t1, c1, s1, w1 = time.perf_counter(), time.process_time(), spu_cpu(), spu_wait()
print(json.dumps({"seconds": t1 - t0, "client_cpu": c1 - c0, "spu_cpu": s1 - s0, "spu_wait": w1 - w0,
                  "last_offset": last_offset}))
"""

# fluvial's client: one script, P["mode"] in send | send_all | iter | batch; P["profile"]: a cProfile
# dump path (the timed window only) or "".
FLUVIAL = PRELUDE + """
import asyncio, cProfile
from fluvial.client.admin import TopicConfig
from fluvial.client.connect import Fluvial
from fluvial.client.consumer import ConsumerConfig, Offset
from fluvial.client.producer import ProducerConfig

prof = cProfile.Profile() if P["profile"] else None

def start():
    w, s, c, t = spu_wait(), spu_cpu(), time.process_time(), time.perf_counter()
    if prof:
        prof.enable()
    return w, s, c, t

def stop(w0, s0, c0, t0):
    if prof:
        prof.disable()
    t1, c1, s1, w1 = time.perf_counter(), time.process_time(), spu_cpu(), spu_wait()
    return {"seconds": t1 - t0, "client_cpu": c1 - c0, "spu_cpu": s1 - s0, "spu_wait": w1 - w0}

async def produce(client):
    async with await client.admin() as admin:
        await admin.create_topic(P["topic"], TopicConfig(partitions=1))
    producer = await client.topic_producer(P["topic"], ProducerConfig())
    key, value, n, chunk = os.urandom(P["key_bytes"]), os.urandom(P["value_bytes"]), P["records"], P["chunk"]
    if P["mode"] == "send":
        send = producer.send
        mark = start()
        for _ in range(n - 1):
            await send(key, value)
        last = await send(key, value)
        await producer.flush()
        last_offset = (await last).offset
        out = stop(*mark)
    else:
        values, keys = [value] * min(n, chunk), [key] * min(n, chunk)
        send_all = producer.send_all
        deliveries = []
        mark = start()
        sent = 0
        while sent < n:
            m = min(chunk, n - sent)
            deliveries.append(await send_all(values if m == len(values) else values[:m],
                                             keys if m == len(keys) else keys[:m]))
            sent += m
        for dl in deliveries:
            await dl.offsets()
        out = stop(*mark)
        last_offset = (await deliveries[-1])[-1].offset        # untimed: per-record metadata of the last chunk
    await producer.close()
    out["last_offset"] = last_offset
    return out

async def consume(client):
    n = P["records"]
    consumer = await client.partition_consumer(P["topic"], 0)
    count = value_bytes = bad_offsets = 0
    mark = start()
    stream = await consumer.stream(Offset.beginning(), ConsumerConfig(disable_continuous=True))
    if P["mode"] == "iter":
        async for rec in stream:
            if rec.offset != count:
                bad_offsets += 1
            value_bytes += len(rec.value)
            count += 1
    else:
        next_batch = stream.next_batch
        while batch := await next_batch():
            if [r.offset for r in batch] != list(range(count, count + len(batch))):
                bad_offsets += 1
            value_bytes += sum([len(r.value) for r in batch])
            count += len(batch)
    out = stop(*mark)
    await stream.close()
    out.update(records=count, value_bytes=value_bytes, bad_offsets=bad_offsets)
    return out

async def main():
    client = await Fluvial.connect(P["sc"])
    try:
        return await (produce(client) if P["mode"] in ("send", "send_all") else consume(client))
    finally:
        await client.close()

factory = None
if P["loop"] == "uvloop":
    import uvloop
    factory = uvloop.new_event_loop
with asyncio.Runner(loop_factory=factory) as runner:
    result = runner.run(main())
if prof:
    prof.dump_stats(P["profile"])
print(json.dumps(result))
"""

NATS = """
import asyncio, json, sys, types
P = json.loads(sys.argv[1])
sys.path.insert(0, P["bench_dir"])
from nats_baseline import _jetstream_run
srv = types.SimpleNamespace(url=P["url"], pid=lambda: P["server_pid"])
factory = None
if P["loop"] == "uvloop":
    import uvloop
    factory = uvloop.new_event_loop
with asyncio.Runner(loop_factory=factory) as runner:
    out = runner.run(_jetstream_run(srv, P["records"], P["value_bytes"], P["window"], "file", P["stream"]))
print(json.dumps(out))
"""


# ============================================================================================== cases


class Case:
    def __init__(self, value_bytes: int, records: int, key_bytes: int) -> None:
        self.value_bytes, self.records, self.key_bytes = value_bytes, records, key_bytes
        self.runs: dict[str, list[dict[str, Any]]] = {}

    @property
    def label(self) -> str:
        return f"{self.value_bytes // KIB} KiB" if self.value_bytes >= KIB else f"{self.value_bytes} B"

    def nbytes(self, side: str) -> int:
        per = self.value_bytes if side.startswith("nats") else self.key_bytes + self.value_bytes
        return self.records * per

    def records_s(self, side: str) -> list[float]:
        return [self.records / float(r["seconds"]) for r in self.runs.get(side, [])]

    def mb_s(self, side: str) -> list[float]:
        return [self.nbytes(side) / float(r["seconds"]) / MB for r in self.runs.get(side, [])]

    def paired(self, a: str, b: str) -> list[float]:
        """Per-rep ratio of a's records/s to b's (both measured in the same rep)."""
        return [x / y for x, y in zip(self.records_s(a), self.records_s(b), strict=False)]

    def ratios(self) -> dict[str, tuple[list[float], str]]:
        """name -> (per-rep ratios, target)."""
        big = self.value_bytes >= KIB
        out = {
            "produce fluvial/send ÷ official/send": ("produce/fluvial/send", "produce/official/send", "≥ 0.5"),
            "produce fluvial/send_all ÷ official/send": ("produce/fluvial/send_all", "produce/official/send", "≥ 1"),
            "produce fluvial/send_all ÷ official/send_all": ("produce/fluvial/send_all", "produce/official/send_all",
                                                             "≥ 1"),
            "consume fluvial/iter ÷ official": ("consume/fluvial/iter", "consume/official", "≥ 0.8" if big else ""),
            "consume fluvial/batch ÷ official": ("consume/fluvial/batch", "consume/official", "≥ 0.8" if big else ""),
            "produce fluvial/send_all ÷ NATS JetStream acked (records/s)": ("produce/fluvial/send_all",
                                                                           "nats/jetstream", "≥ 10"),
        }
        return {k: (self.paired(a, b), t) for k, (a, b, t) in out.items() if self.runs.get(a) and self.runs.get(b)}

    def to_json(self) -> dict[str, Any]:
        sides = {}
        for side, runs in self.runs.items():
            sides[side] = {"runs": runs, "records_s": self.records_s(side), "mb_s": self.mb_s(side),
                           "median_records_s": median(self.records_s(side)), "median_mb_s": median(self.mb_s(side))}
        ratios = self.ratios()
        return {"value_bytes": self.value_bytes, "key_bytes": self.key_bytes, "records": self.records,
                "sides": sides,
                "ratios": {k: {"per_rep": v, "median": median(v), "min": min(v), "max": max(v), "target": t}
                           for k, (v, t) in ratios.items()}}


# ========================================================================================== harness


async def _topic_state(sc: str, topic: str, delete: bool) -> tuple[int, int]:
    from fluvial.client.connect import Fluvial
    from fluvial.client.consumer import fetch_offsets

    client = await Fluvial.connect(sc)
    try:
        start, hw = await fetch_offsets(client, topic, 0, 10)
        if delete:
            async with await client.admin() as admin:
                await admin.delete_topic(topic)
    finally:
        await client.close()
    return start, hw


def topic_state(c: Cluster, topic: str, delete: bool = False) -> tuple[int, int]:
    """(log start, high watermark) of partition 0 of `topic`, untimed, in this process."""
    return asyncio.run(_topic_state(f"127.0.0.1:{c.sc_port}", topic, delete))


def delete_topic(c: Cluster, topic: str) -> None:
    async def go() -> None:
        from fluvial.client.admin import Admin

        async with await Admin.connect("127.0.0.1", c.sc_port) as admin:
            await admin.delete_topic(topic)

    asyncio.run(go())


def chunk_records(args: argparse.Namespace, case: Case) -> int:
    return max(1, min(args.chunk, int(args.chunk_mib * 2**20) // (case.key_bytes + case.value_bytes)))


def run_produce(args: argparse.Namespace, c: Cluster, case: Case, side: str, topic: str,
                profile: str = "") -> dict[str, Any]:
    params: dict[str, Any] = {"topic": topic, "records": case.records, "key_bytes": case.key_bytes,
                              "value_bytes": case.value_bytes, "spu_pid": c.spu_pid, "chunk": chunk_records(args, case),
                              "sc": f"127.0.0.1:{c.sc_port}", "loop": args.client_loop, "profile": profile}
    if side == "official/send":
        out = run_script(PRODUCE, params, c.env, args.timeout)
    elif side == "official/send_all":
        out = run_script(OFFICIAL_SEND_ALL, params, c.env, args.timeout)
    else:
        out = run_script(FLUVIAL, {**params, "mode": side.split("/")[1]}, c.env, args.timeout)
    start, hw = topic_state(c, topic)
    if out["last_offset"] != case.records - 1 or (start, hw) != (0, case.records):
        raise BenchError(f"produce {side}: last offset {out['last_offset']}, partition [{start}, {hw}), "
                         f"expected {case.records - 1} and [0, {case.records})\n{c.logs()}")
    return out


def run_consume(args: argparse.Namespace, c: Cluster, case: Case, side: str, topic: str,
                profile: str = "") -> dict[str, Any]:
    params: dict[str, Any] = {"topic": topic, "records": case.records, "key_bytes": case.key_bytes,
                              "value_bytes": case.value_bytes, "spu_pid": c.spu_pid, "delete": False,
                              "sc": f"127.0.0.1:{c.sc_port}", "loop": args.client_loop, "profile": profile}
    if side == "official":
        out = run_script(CONSUME, params, c.env, args.timeout)
    else:
        out = run_script(FLUVIAL, {**params, "mode": side.split("/")[1], "chunk": 0}, c.env, args.timeout)
    if (out["records"] != case.records or out["bad_offsets"]
            or out["value_bytes"] != case.records * case.value_bytes):
        raise BenchError(f"consume {side}: {out}, expected {case.records} records of {case.value_bytes} B")
    return out


def run_nats(args: argparse.Namespace, nats: Any, case: Case, stream: str) -> dict[str, Any]:
    params = {"bench_dir": str(BENCH_DIR), "url": nats.url, "server_pid": nats.pid(), "loop": args.client_loop,
              "records": case.records, "value_bytes": case.value_bytes, "window": args.nats_window,
              "stream": stream}
    return run_script(NATS, params, None, args.timeout)


def one_rep(args: argparse.Namespace, c: Cluster, nats: Any, case: Case, rep: int, warm: bool = False) -> None:
    tag = "w" if warm else str(rep)
    produce: list[str] = list(PRODUCE_SIDES) + (["nats"] if nats is not None and case.value_bytes == 100 else [])
    consume = list(CONSUME_SIDES)
    if rep % 2:
        produce.reverse()
        consume.reverse()
    topics = {s: f"fc{case.value_bytes}-{tag}-{s.replace('/', '-').replace('_', '')}" for s in PRODUCE_SIDES}
    line = []

    def record(side: str, out: dict[str, Any]) -> None:
        if not warm:
            case.runs.setdefault(side, []).append(out)
        line.append(f"{side} {case.records / float(out['seconds']):,.0f}")

    for side in produce:
        if side == "nats":
            record("nats/jetstream", run_nats(args, nats, case, f"FC{case.value_bytes}R{tag.upper()}"))
            continue
        record(f"produce/{side}", run_produce(args, c, case, side, topics[side]))
        if side != "official/send":
            delete_topic(c, topics[side])
    for side in consume:
        record(f"consume/{side}", run_consume(args, c, case, side, topics["official/send"]))
    delete_topic(c, topics["official/send"])
    log(f"  {'warm-up' if warm else f'rep {rep + 1}/{args.reps}'}, {case.label}: " + ", ".join(line) + " records/s")


# ============================================================================================ profile

PROFILE_STEPS = {        # value size -> what runs under cProfile (the 10 KiB consume: where it misses its target)
    100: (("produce", "fluvial/send"), ("produce", "fluvial/send_all"), ("consume", "fluvial/iter"),
          ("consume", "fluvial/batch")),
    10 * KIB: (("consume", "fluvial/iter"), ("consume", "fluvial/batch")),
}


def summarize_cprofile(path: Path, top: int) -> dict[str, Any]:
    st = pstats.Stats(str(path))
    total = st.total_tt                                        # type: ignore[attr-defined]
    rows = []
    for (file, line, func), (_cc, nc, tt, ct, _callers) in st.stats.items():   # type: ignore[attr-defined]
        where = f"{Path(file).name}:{line}" if file != "~" else "built-in"
        rows.append({"function": f"{func} ({where})", "calls": nc, "tottime": tt, "cumtime": ct})
    by_self = sorted(rows, key=lambda r: -r["tottime"])[:top]
    by_cum = sorted(rows, key=lambda r: -r["cumtime"])[:top]
    return {"file": str(path), "total_seconds": total, "self": by_self, "cumulative": by_cum}


def profile_fluvial(args: argparse.Namespace, c: Cluster, case: Case, out_dir: Path) -> list[dict[str, Any]]:
    out_dir.mkdir(parents=True, exist_ok=True)
    res = []
    topic = f"fcprof{case.value_bytes}"
    run_produce(args, c, case, "official/send", topic)     # what the consumers read (as in the reps)
    for op, side in PROFILE_STEPS.get(case.value_bytes, ()):
        path = out_dir / f"fluvial-client-{op}-{side.split('/')[1]}-{case.value_bytes}.prof"
        log(f"profile: {op} {side}, {case.records:,} × {case.label} under cProfile")
        if op == "produce":
            ptopic = f"{topic}-{side.split('/')[1].replace('_', '')}"
            out = run_produce(args, c, case, side, ptopic, profile=str(path))
            delete_topic(c, ptopic)
        else:
            out = run_consume(args, c, case, side, topic, profile=str(path))
        summary = summarize_cprofile(path, args.profile_top)
        summary.update(op=op, side=side, records=case.records, value_bytes=case.value_bytes,
                       seconds_under_profile=out["seconds"])
        res.append(summary)
    delete_topic(c, topic)
    return res


# ============================================================================================= report


def print_tables(machine: dict[str, Any], cases: list[Case]) -> None:
    print()
    print(machine_line(machine))
    print()
    head = ["side", "records/s (median)", "records/s range", "MB/s", "client CPU", "client µs/rec", "SPU CPU",
            "SPU µs/rec"]
    rows = []
    for case in cases:
        for side, runs in case.runs.items():
            rs = case.records_s(side)
            cpu = median([float(r["client_cpu"]) / float(r["seconds"]) for r in runs])
            cus = median([float(r["client_cpu"]) / case.records * 1e6 for r in runs])
            if "spu_cpu" in runs[0]:
                spu = f"{median([float(r['spu_cpu']) / float(r['seconds']) for r in runs]):.0%}"
                sus = f"{median([float(r['spu_cpu']) / case.records * 1e6 for r in runs]):.1f}"
            else:                                      # nats: server_cpu of nats-server
                spu = f"{median([float(r['server_cpu']) / float(r['seconds']) for r in runs]):.0%} (nats-server)"
                sus = f"{median([float(r['server_cpu']) / case.records * 1e6 for r in runs]):.1f}"
            rows.append([f"{side}, {case.records:,} × {case.label}", f"{median(rs):,.0f}",
                         f"{min(rs):,.0f}–{max(rs):,.0f}", f"{median(case.mb_s(side)):,.1f}", f"{cpu:.0%}",
                         f"{cus:.1f}", spu, sus])
    print_markdown_table(head, rows)
    print()
    head = ["ratio (same rep, records/s)", "case", "median", "range", "target", "met"]
    rows = []
    for case in cases:
        for name, (xs, target) in case.ratios().items():
            met = ""
            if target:
                met = "yes" if median(xs) >= float(target.split()[-1]) else "NO"
            rows.append([name, case.label, f"{median(xs):.2f}", fmt_range(xs), target, met])
    print_markdown_table(head, rows)
    print()
    print("MB/s = 10^6 payload bytes (key + value; NATS: value) per second. CPU: CPU seconds ÷ wall seconds of "
          "the timed window\n(client: the whole client process; SPU/nats-server: all threads, /proc, 10 ms ticks).")


def print_profiles(profiles: list[dict[str, Any]], top: int) -> None:
    for p in profiles:
        print()
        print(f"cProfile, fluvial client, {p['op']} {p['side']}, {p['records']:,} × {p['value_bytes']} B: "
              f"{p['seconds_under_profile']:.2f} s under the profiler, {p['total_seconds']:.2f} s profiled")
        print(f"  {'tottime':>8} {'calls':>9}  top self time{'':<47} {'cumtime':>8}  top cumulative")
        for s, cm in zip(p["self"][:top], p["cumulative"][:top], strict=False):
            print(f"  {s['tottime']:8.3f} {s['calls']:9d}  {s['function'][:60]:<60} {cm['cumtime']:8.3f}  "
                  f"{cm['function'][:60]}")


# =============================================================================================== main


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="half the records, 3 reps (~2 minutes)")
    p.add_argument("--reps", type=int, default=None, help="reps (default 7, --quick 3; min 3)")
    p.add_argument("--small-records", type=int, default=None, help="records of the 100 B case (200,000; quick 100,000)")
    p.add_argument("--large-records", type=int, default=None, help="records of the 10 KiB case (20,000; quick 10,000)")
    p.add_argument("--key-bytes", type=int, default=8, help="key size (default %(default)s)")
    p.add_argument("--chunk", type=int, default=20_000, help="records per send_all call, at most (default %(default)s)")
    p.add_argument("--chunk-mib", type=float, default=8,
                   help="key + value MiB per send_all call, at most (default %(default)s: 818 records of 10 KiB; "
                        "fluvial's producer buffer is 64 MiB)")
    p.add_argument("--client-loop", choices=("uvloop", "asyncio"), default="uvloop",
                   help="event loop of fluvial's client and of nats-py (default %(default)s)")
    p.add_argument("--nats", action=argparse.BooleanOptionalAction, default=True,
                   help="NATS JetStream acked publish of the 100 B records (default on)")
    p.add_argument("--nats-window", type=int, default=4096, help="JetStream acks outstanding (default %(default)s)")
    p.add_argument("--profile", action=argparse.BooleanOptionalAction, default=True,
                   help="cProfile fluvial's client on 100 B produce/consume after the reps (default on)")
    p.add_argument("--profile-top", type=int, default=15, help="functions listed per profile")
    p.add_argument("--timeout", type=float, default=300, help="seconds before a client run counts as hung")
    p.add_argument("--dir", default=None, help="parent of the cluster's data dir (default benchmarks/results/)")
    p.add_argument("--allow-tmpfs", action="store_true", help="allow a data dir on tmpfs")
    p.add_argument("--keep", action="store_true", help="keep the cluster's data at the end")
    p.add_argument("--json", default=str(DEFAULT_RESULTS), help="results file (default %(default)s)")
    args = p.parse_args(argv)
    args.reps = max(3, args.reps or (3 if args.quick else 7))
    args.small_records = args.small_records or (100_000 if args.quick else 200_000)
    args.large_records = args.large_records or (10_000 if args.quick else 20_000)
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    parent = results_dir(args.dir, args.allow_tmpfs)
    if parent is None:
        return 2
    interrupt_on_signals()
    work = Path(tempfile.mkdtemp(prefix="fluvial-fcbench-", dir=parent))
    machine = machine_facts(str(work), fs_type(parent), fluvio_client=package_version("fluvio"),
                            uvloop=package_version("uvloop"), nats_py=package_version("nats-py"))
    cases = [Case(100, args.small_records, args.key_bytes), Case(10 * KIB, args.large_records, args.key_bytes)]
    cluster = Cluster(work, "uvloop", set())
    profiles: list[dict[str, Any]] = []
    problems: list[str] = []
    error: BaseException | None = None
    started = time.perf_counter()
    with contextlib.ExitStack() as stack:
        if not args.keep:
            stack.callback(shutil.rmtree, work, True)     # runs last, after nats-server has stopped
        try:
            nats = None
            if args.nats:
                from nats_baseline import NatsServer

                nats = stack.enter_context(NatsServer(work, loop=args.client_loop))
                machine["nats_server"] = nats.version
            cluster.start()
            machine["spu_loop"] = cluster.loop_in_use()
            log(machine_line(machine))
            log(f"cluster: SC 127.0.0.1:{cluster.sc_port}, SPU pid {cluster.spu_pid}; {args.reps} reps; "
                + ", ".join(f"{c.records:,} × {c.label}" for c in cases) + f" (+ {args.key_bytes} B keys)")
            small = [Case(c.value_bytes, max(1, c.records // 10), c.key_bytes) for c in cases]
            for case in small:
                one_rep(args, cluster, nats, case, 0, warm=True)
            for rep in range(args.reps):
                for case in (cases if rep % 2 == 0 else cases[::-1]):
                    one_rep(args, cluster, nats, case, rep)
            if args.profile:
                for case in cases:
                    profiles += profile_fluvial(args, cluster, case, RESULTS / "profiles")
        except (BenchError, KeyboardInterrupt, RuntimeError, OSError) as e:
            error = e
            log(f"stopped: {type(e).__name__}: {e}")
        finally:
            problems = cluster.log_problems()
            cluster.shutdown()
    elapsed = time.perf_counter() - started
    machine["loadavg_end"] = load_average()
    if error is None:
        print_tables(machine, cases)
        print_profiles(profiles, args.profile_top)
    print_log_problems(problems)
    print(f"total time {elapsed:.0f} s")
    payload = {
        "machine": machine,
        "settings": {"reps": args.reps, "quick": args.quick, "key_bytes": args.key_bytes,
                     "send_all_chunk_records": {c.label: chunk_records(args, c) for c in cases},
                     "client_loop": args.client_loop, "nats_window": args.nats_window, "argv": sys.argv[1:],
                     "elapsed_seconds": elapsed, "finished": time.strftime("%Y-%m-%dT%H:%M:%S%z")},
        "error": None if error is None else f"{type(error).__name__}: {error}",
        "server_log_problems": problems,
        "cases": [c.to_json() for c in cases],
        "profiles": profiles,
    }
    write_results(args.json, payload)
    return 0 if error is None else 1


if __name__ == "__main__":
    sys.exit(main())
