#!/usr/bin/env python3
"""Topic creation latency on a local 3-SPU cluster: N sequential `create_topic` calls (1 partition, rf = 1
and rf = 3 alternating), each timed from the request to the SC's answer (which comes once every partition
is online, i.e. its leader confirmed the assignment), against an SC round trip that does nothing (an
ApiVersions request on the same kind of connection) in the same run. Then the topics are deleted.

    .venv/bin/python benchmarks/topic_create_bench.py              # 500 creates (~1 minute)
    .venv/bin/python benchmarks/topic_create_bench.py --topics 100

Results go to benchmarks/results/topic_create.json.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchlib import (
    RESULTS,
    interrupt_on_signals,
    log,
    machine_facts,
    machine_line,
    print_markdown_table,
    write_results,
)
from fluvial.client.admin import Admin, TopicConfig
from fluvial.protocol.codec import encode
from fluvial.protocol.frame import API_VERSIONS_KEY, ApiVersionsRequest
from replication_bench import LocalCluster, percentile


async def run(sc_port: int, topics: int) -> dict[str, list[float]]:
    out: dict[str, list[float]] = {"rf1": [], "rf3": [], "noop": []}
    async with await Admin.connect("127.0.0.1", sc_port, timeout=30) as admin:
        for n in range(topics):
            rf = 1 if n % 2 == 0 else 3
            t0 = time.perf_counter()
            await admin.create_topic(f"t{n}", TopicConfig(replication=rf))
            out[f"rf{rf}"].append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            await admin._conn.request(API_VERSIONS_KEY, 0, encode(ApiVersionsRequest(), 0))
            out["noop"].append(time.perf_counter() - t0)
        for n in range(topics):
            await admin.delete_topic(f"t{n}")
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--topics", type=int, default=500)
    args = ap.parse_args()
    interrupt_on_signals()
    root = Path(tempfile.mkdtemp(prefix="fluvial-create-"))
    machine = machine_facts(str(root), "tmp")
    print(machine_line(machine))
    cluster = LocalCluster(root)
    cluster.start()
    try:
        log(f"{args.topics} creates")
        got = asyncio.run(run(cluster.sc_port, args.topics))
    finally:
        cluster.stop()
        shutil.rmtree(root, ignore_errors=True)
    rows = [[k, len(v), f"{percentile(v, 0.5) * 1000:.1f}", f"{percentile(v, 0.99) * 1000:.1f}",
             f"{max(v) * 1000:.1f}"] for k, v in got.items()]
    print_markdown_table(["call", "n", "p50 ms", "p99 ms", "max ms"], rows)
    write_results(RESULTS / "topic_create.json", {"machine": machine, "latency_seconds": got})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
