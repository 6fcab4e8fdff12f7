"""The log budget of a full disk, counted from a real SPU process's output (issue #9 item 2).

An SC and one SPU whose data dir is a real 16 MiB tmpfs in its own mount namespace. The disk is filled
through produce requests until they are refused (72), then produce requests are fired at it for 20 s at
over 1,000 requests/s (several connections, many requests in flight). The SPU's whole output over the
episode — the fill, the FULL transition, every rejection — must stay within the budget (<= 10 lines in
the first minute), and every rejected request must be counted in its metrics. (The budget after the first
minute, <= 2 lines a minute, is checked on the rate limiter with a simulated clock.) Old code: after
every summary line a new burst of 5 identical `produce_rejected` lines, the interval capped at 600 s.
"""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from fluvial.client.admin import Admin, TopicConfig, list_spus
from fluvial.errors import ErrorCode
from fluvial.protocol import spu as sp
from fluvial.protocol.codec import decode_from, encode
from fluvial.protocol.records import build_batch
from fluvial.transport.client import ClientConnection

from ..integration.cluster import free_ports, stop_processes
from .test_full_disk import Namespaces, namespaces  # noqa: F401 - fixture

FLUVIAL = [sys.executable, "-m", "fluvial.cli.main"]
DISK_MIB = 16
BURST_SECONDS = 20.0
MIN_RATE = 1000                    # requests per second
CONNECTIONS = 4
IN_FLIGHT = 32                     # per connection
LINE_BUDGET_FIRST_MINUTE = 10
V = 24
HANG_GUARD_SECONDS = 90.0


class TmpfsSpu:
    def __init__(self, ns: Namespaces, root: Path) -> None:
        self.sc_port, self.spu_port = free_ports(1)
        self.metrics_port = free_ports(0)[0]
        self.disk = root / "disk"
        self.disk.mkdir()
        self.logs = root
        env = {**os.environ, "FLV_PROFILE_PATH": str(root / "profile")}
        self.sc = self._spawn("sc", [*FLUVIAL, "run", "sc", "--data-dir", str(root / "sc"), "--public-addr",
                                     f"127.0.0.1:{self.sc_port}"], env)
        spu = " ".join([*FLUVIAL, "run", "spu", "--id", "5001", "--data-dir", str(self.disk), "--public-addr",
                        f"127.0.0.1:{self.spu_port}", "--private-addr", f"127.0.0.1:{self.spu_port + 1}",
                        "--sc-addr", f"127.0.0.1:{self.sc_port + 1}", "--metrics-addr",
                        f"127.0.0.1:{self.metrics_port}"])
        self.spu = self._spawn("spu", [*ns.unshare, "sh", "-c",
                                       f"mount -t tmpfs -o size={DISK_MIB}m tmpfs {self.disk} && exec {spu}"], env)

    def _spawn(self, name: str, argv: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
        with open(self.logs / f"{name}.log", "wb") as log:
            return subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, env=env)

    def log_lines(self, name: str = "spu") -> list[str]:
        return (self.logs / f"{name}.log").read_text(errors="replace").splitlines()

    def metric(self, name: str, labels: str) -> float:
        text = urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=10).read().decode()
        m = re.search(rf"^{re.escape(name)}\{{{re.escape(labels)}\}} (\S+)$", text, re.M)
        return float(m[1]) if m else 0.0

    def stop(self) -> None:
        stop_processes([self.spu, self.sc])


@pytest.fixture
def tmpfs_spu(namespaces: Namespaces, tmp_path: Path) -> Iterator[TmpfsSpu]:  # noqa: F811
    c = TmpfsSpu(namespaces, tmp_path)
    try:
        yield c
    finally:
        c.stop()


async def wait_online(c: TmpfsSpu) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if any(s.online for s in await list_spus("127.0.0.1", c.sc_port, timeout=2)):
                return
        except Exception:
            pass
        await asyncio.sleep(0.2)
    raise AssertionError("SPU not online:\n" + "\n".join(c.log_lines()))


def produce_body(batch: bytes) -> bytes:
    req = sp.ProduceRequest(None, sp.Isolation.READ_UNCOMMITTED, 5000,
                            [sp.TopicProduceData("full", [sp.PartitionProduceData(0, batch)])])
    return encode(req, V)


async def produce(conn: ClientConnection, body: bytes) -> ErrorCode:
    r = await conn.request(sp.SpuApiKey.PRODUCE, V, body, timeout=30)
    return decode_from(sp.ProduceResponse, r, V).responses[0].partitions[0].error_code.code


async def scenario(c: TmpfsSpu) -> dict[str, float]:
    await wait_online(c)
    admin = await Admin.connect("127.0.0.1", c.sc_port)
    try:
        await admin.create_topic("full", TopicConfig(partitions=1, replication=1))
    finally:
        await admin.close()
    conns = [await ClientConnection.connect("127.0.0.1", c.spu_port, timeout=10) for _ in range(CONNECTIONS)]
    try:
        start_line = len(c.log_lines())
        big = produce_body(build_batch([(None, os.urandom(64 * 1024))]))
        acked = rejected = 0
        while True:                                       # fill the disk until the SPU refuses
            code = await produce(conns[0], big)
            if code == ErrorCode.PARTITION_FULL:
                rejected += 1
                break
            assert code == ErrorCode.NONE, code
            acked += 1
        small = produce_body(build_batch([(None, b"x" * 100)]))
        codes: dict[ErrorCode, int] = {}
        stop_at = time.monotonic() + BURST_SECONDS
        started = time.monotonic()

        async def fire(conn: ClientConnection) -> None:
            while time.monotonic() < stop_at:
                code = await produce(conn, small)
                codes[code] = codes.get(code, 0) + 1

        await asyncio.gather(*(fire(conn) for conn in conns for _ in range(IN_FLIGHT)))
        elapsed = time.monotonic() - started
        await asyncio.sleep(0.5)                          # let the SPU's output reach its log file
        lines = c.log_lines()[start_line:]
        requests = sum(codes.values())
        return {"acked": acked, "rejected": rejected + codes.get(ErrorCode.PARTITION_FULL, 0),
                "other": requests - codes.get(ErrorCode.PARTITION_FULL, 0), "requests": requests,
                "rate": requests / elapsed, "lines": len(lines), "lines_text": "\n".join(lines)}  # type: ignore[dict-item]
    finally:
        for conn in conns:
            await conn.close()


def test_full_disk_under_1000_requests_a_second_stays_within_the_log_budget(tmpfs_spu: TmpfsSpu) -> None:
    out = asyncio.run(asyncio.wait_for(scenario(tmpfs_spu), HANG_GUARD_SECONDS))
    print(f"log budget: {out['requests']:.0f} requests in {BURST_SECONDS:.0f} s ({out['rate']:.0f}/s), "
          f"{out['rejected']:.0f} rejected, {out['lines']:.0f} SPU log lines:\n{out['lines_text']}")
    assert out["acked"] > 50 and out["other"] == 0, out                 # the disk filled; then only 72
    assert out["rate"] >= MIN_RATE, out["rate"]
    assert out["lines"] <= LINE_BUDGET_FIRST_MINUTE, out["lines_text"]
    assert "state_change machine=data_dir" in out["lines_text"] and "to=FULL" in out["lines_text"]
    assert out["lines_text"].count("produce_rejected") == 1, out["lines_text"]      # the first; then summaries
    assert tmpfs_spu.metric("fluvial_produce_errors_total", 'code="PARTITION_FULL"') == out["rejected"]
    assert tmpfs_spu.metric("fluvial_log_suppressed_total", 'event="produce:StorageFull"') == out["rejected"] - 1
