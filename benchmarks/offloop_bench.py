#!/usr/bin/env python3
"""What moving appends off the event loop costs per produce request (issue #9 item 5).

The SPU used to call `Replica.append_batches` on its event loop (flush policy `os`); it now always
awaits `asyncio.to_thread(replica.append_batches, ...)` so that a stalled disk cannot stop heartbeats.
This measures both ways side by side in one run, one request at a time (the worst case: no overlap),
for a 1 KiB and a 16 KiB batch (Fluvio's default batch size), flush policy `os`, interleaved reps,
median of `--reps`. Prints a table; writes nothing else.

    .venv/bin/python benchmarks/offloop_bench.py [--requests 20000] [--reps 5]
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import tempfile
import time

from benchlib import log, median
from fluvial.protocol.records import build_batch
from fluvial.storage import Replica, ReplicaConfig


async def run(replica: Replica, batch: bytes, n: int, offloop: bool) -> float:
    batches = [batch]
    started = time.perf_counter()
    if offloop:
        for _ in range(n):
            await asyncio.to_thread(replica.append_batches, batches)
    else:
        for _ in range(n):
            replica.append_batches(batches)
            await asyncio.sleep(0)          # the handler yields once either way
    return (time.perf_counter() - started) / n * 1e6


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--requests", type=int, default=20_000)
    p.add_argument("--reps", type=int, default=5)
    args = p.parse_args()
    root = tempfile.mkdtemp(prefix="offloop-")
    try:
        rows = []
        for size in (1024, 16 * 1024):
            batch = build_batch([(None, b"v" * (size - 80))])
            on, off = [], []
            for rep in range(args.reps):
                for offloop, out in ((False, on), (True, off)) if rep % 2 == 0 else ((True, off), (False, on)):
                    with Replica.open(f"{root}/t-{size}-{rep}-{offloop}",
                                      ReplicaConfig(segment_max_bytes=256 * 1024 * 1024)) as r:
                        out.append(asyncio.run(run(r, batch, args.requests, offloop)))
            rows.append((size, median(on), median(off)))
            log(f"batch {size} B: on loop {median(on):.1f} us, off loop {median(off):.1f} us")
        print("| batch | on the event loop (µs/request) | asyncio.to_thread (µs/request) | added |")
        print("| ---: | ---: | ---: | ---: |")
        for size, a, b in rows:
            print(f"| {size} B | {a:.1f} | {b:.1f} | +{b - a:.1f} µs |")
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
