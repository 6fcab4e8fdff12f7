#!/usr/bin/env python3
"""SmartModule benchmarks (issue #10): what a filter costs on the stream, and what the compile cache saves.

1. filter throughput — a one-SPU fluvial cluster holds N records (100 B and 1 KiB values, every other one
   containing an 'a'); a raw StreamFetch v24 from offset 0 reads them all, acknowledging every frame as the
   official client does, (a) plain and (b) through `tests/smartmodules/filter.wasm` sent inline (AdHoc).
   Records/s = N input records / time from the request to the frame that covers offset N - 1; the SPU's
   CPU seconds are read from /proc around each read. Plain and filtered runs alternate (ABBA) per rep.
2. compile cache — `SmartEngine` in this process on the committed test modules: a cold compile
   (`wasmtime.Module`), a hit in memory, a hit on disk (a new engine on the same cache dir, as after an SPU
   restart: checksum + `Module.deserialize`), and a chain build (instantiate + init) per stream.

    .venv/bin/python benchmarks/smartmodule_bench.py            # ~1-2 minutes
    .venv/bin/python benchmarks/smartmodule_bench.py --quick    # fewer records and reps

Results go to `benchmarks/results/smartmodule.json`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchlib import (
    RESULTS,
    interrupt_on_signals,
    log,
    machine_facts,
    median,
    print_markdown_table,
    proc_cpu_seconds,
)
from benchlib import write_results as save
from client_bench import Cluster

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from fluvial.protocol import batch as b  # noqa: E402
from fluvial.protocol import spu as sp  # noqa: E402
from fluvial.protocol.codec import decode_from, encode  # noqa: E402
from fluvial.protocol.records import build_batch  # noqa: E402
from fluvial.smartengine import ModuleSpec, SmartEngine, gzip_wasm  # noqa: E402
from fluvial.transport.client import ClientConnection  # noqa: E402

MODULES = REPO / "tests" / "smartmodules"
VERSION = 24


async def fill(port: int, topic: str, count: int, size: int) -> None:
    conn = await ClientConnection.connect("127.0.0.1", port)
    try:
        per_batch = max(1, (256 * 1024) // size)
        for start in range(0, count, per_batch):
            n = min(per_batch, count - start)
            values = [((b"a" if (start + i) % 2 == 0 else b"b") * size) for i in range(n)]
            batch = build_batch([(None, v) for v in values], timestamp_ms=int(time.time() * 1000))
            req = sp.ProduceRequest(None, sp.Isolation.READ_UNCOMMITTED, 10_000,
                                    [sp.TopicProduceData(topic, [sp.PartitionProduceData(0, batch)])], [])
            r = await conn.request(sp.SpuApiKey.PRODUCE, VERSION, encode(req, VERSION))
            part = decode_from(sp.ProduceResponse, r, VERSION).responses[0].partitions[0]
            assert part.error_code.ok, part.error_code
    finally:
        await conn.close()


async def read_all(port: int, topic: str, count: int, modules: list[sp.SmartModuleInvocation]) -> tuple[float, int]:
    """Seconds from the request to the frame covering offset count - 1, and the records received."""
    conn = await ClientConnection.connect("127.0.0.1", port)
    got = 0
    try:
        started = time.perf_counter()
        req = sp.StreamFetchRequest(topic, 0, 0, 1_048_890, sp.Isolation.READ_UNCOMMITTED, b"", None, None,
                                    modules, None)
        stream = conn.stream(sp.SpuApiKey.STREAM_FETCH, VERSION, encode(req, VERSION))
        async for r in stream:
            frame = decode_from(sp.StreamFetchResponse, r, VERSION)
            part = frame.partition
            assert part.error_code.ok, part.error_code
            n, last = frame_counts(part.records)
            got += n
            nxt = part.next_filter_offset if part.next_filter_offset > 0 else last + 1
            if nxt >= count:
                break
            ack = sp.UpdateOffsetsRequest([sp.OffsetUpdate(nxt, frame.stream_id)])
            conn.send_now(sp.SpuApiKey.UPDATE_OFFSETS, 0, encode(ack, 0))
        elapsed = time.perf_counter() - started
        await stream.aclose()
    finally:
        await conn.close()
    return elapsed, got


def frame_counts(records: bytes) -> tuple[int, int]:
    """Records in a frame and its last offset, from the batch headers (uncompressed: the i32 count after
    the header), so the client side costs little next to the SPU's work."""
    n, last = 0, -1
    for one in b.split_batches(records):
        h = b.decode_header(one)
        n += int.from_bytes(one[b.HEADER_TOTAL_BYTES:b.HEADER_TOTAL_BYTES + 4], "big")
        last = h.base_offset + h.last_offset_delta
    return n, last


def filter_invocation() -> sp.SmartModuleInvocation:
    payload = gzip_wasm((MODULES / "filter.wasm").read_bytes())
    return sp.SmartModuleInvocation(sp.WasmAdHoc(payload), sp.KindFilter(), sp.SmartModuleExtraParams({}, None))


def throughput(args: argparse.Namespace, work: Path) -> list[dict[str, Any]]:
    cluster = Cluster(work, "uvloop", set())
    rows = []
    try:
        cluster.start()
        port = cluster.spu_port
        for size, count in ((100, args.records), (1024, args.records // 4)):
            topic = f"smb-{size}"
            res = cluster.fluvial("topic", "create", topic)
            if res.returncode != 0:
                raise RuntimeError(res.stderr)
            asyncio.run(fill(port, topic, count, size))
            log(f"{count} records of {size} B in {topic}")
            asyncio.run(read_all(port, topic, count, [filter_invocation()]))     # warm: compile + cache
            runs: dict[str, list[tuple[float, float, int]]] = {"plain": [], "filter": []}
            for rep in range(args.reps):
                order = ["plain", "filter"] if rep % 2 == 0 else ["filter", "plain"]
                for side in order:
                    cpu0 = proc_cpu_seconds(cluster.spu_pid)
                    secs, got = asyncio.run(read_all(port, topic, count, [filter_invocation()] if side == "filter"
                                                     else []))
                    runs[side].append((secs, proc_cpu_seconds(cluster.spu_pid) - cpu0, got))
            for side in ("plain", "filter"):
                secs = median([s for s, _c, _g in runs[side]])
                cpu = median([c for _s, c, _g in runs[side]])
                got = runs[side][0][2]
                rows.append({"size": size, "records": count, "side": side, "seconds": secs,
                             "records_per_s": count / secs, "spu_cpu_s": cpu, "spu_cpu_us_per_record": cpu / count * 1e6,
                             "records_out": got, "runs": runs[side]})
                log(f"{size} B {side}: {count / secs:,.0f} records/s in, {got} out, SPU CPU {cpu:.2f} s")
    finally:
        cluster.shutdown()
    return rows


def cache(args: argparse.Namespace) -> list[dict[str, Any]]:
    rows = []
    for name in ("filter", "filter_map", "array_map"):
        wasm = (MODULES / f"{name}.wasm").read_bytes()
        cold, mem, disk, build = [], [], [], []
        for _ in range(args.reps * 3):
            with tempfile.TemporaryDirectory() as tmp:
                first = SmartEngine(tmp)
                try:
                    t = time.perf_counter()
                    first.compile(wasm)
                    cold.append(time.perf_counter() - t)
                    t = time.perf_counter()
                    first.compile(wasm)
                    mem.append(time.perf_counter() - t)
                    t = time.perf_counter()
                    first.build_chain([ModuleSpec(wasm)]).close()
                    build.append(time.perf_counter() - t)
                finally:
                    first.close()
                second = SmartEngine(tmp)
                try:
                    t = time.perf_counter()
                    second.compile(wasm)
                    disk.append(time.perf_counter() - t)
                    assert second.cache.stats.disk_hits == 1
                finally:
                    second.close()
        row = {"module": name, "wasm_bytes": len(wasm), "cold_ms": median(cold) * 1e3, "memory_hit_ms": median(mem) * 1e3,
               "disk_hit_ms": median(disk) * 1e3, "chain_build_ms": median(build) * 1e3}
        rows.append(row)
        log(f"{name}: cold {row['cold_ms']:.2f} ms, memory {row['memory_hit_ms']:.4f} ms, disk "
            f"{row['disk_hit_ms']:.2f} ms, chain build (cached) {row['chain_build_ms']:.2f} ms")
    return rows


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true")
    p.add_argument("--records", type=int, default=200_000)
    p.add_argument("--reps", type=int, default=3)
    args = p.parse_args()
    if args.quick:
        args.records, args.reps = 40_000, 2
    interrupt_on_signals()
    work = Path(tempfile.mkdtemp(prefix="smartmodule-bench-", dir=RESULTS if RESULTS.exists() else None))
    try:
        cache_rows = cache(args)
        rows = throughput(args, work)
    finally:
        with contextlib.suppress(OSError):
            shutil.rmtree(work)
    print("\nfilter throughput (input records/s; every other record passes)")
    print_markdown_table(["value", "plain records/s", "filter records/s", "filter / plain", "SPU CPU µs/record plain",
                          "SPU CPU µs/record filter"],
                         [[f"{size} B", f"{plain['records_per_s']:,.0f}", f"{filt['records_per_s']:,.0f}",
                           f"{filt['records_per_s'] / plain['records_per_s']:.2f}", f"{plain['spu_cpu_us_per_record']:.2f}",
                           f"{filt['spu_cpu_us_per_record']:.2f}"]
                          for size in (100, 1024)
                          for plain in [r for r in rows if r["size"] == size and r["side"] == "plain"]
                          for filt in [r for r in rows if r["size"] == size and r["side"] == "filter"]])
    print("\ncompile cache (median ms)")
    print_markdown_table(["module", "wasm bytes", "cold compile", "memory hit", "disk hit", "chain build"],
                         [[r["module"], r["wasm_bytes"], f"{r['cold_ms']:.2f}", f"{r['memory_hit_ms']:.4f}",
                           f"{r['disk_hit_ms']:.2f}", f"{r['chain_build_ms']:.2f}"] for r in cache_rows])
    save(RESULTS / "smartmodule.json", {"machine": machine_facts(str(work), "n/a"), "throughput": rows,
                                        "cache": cache_rows, "args": vars(args)})


if __name__ == "__main__":
    main()
