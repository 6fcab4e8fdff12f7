"""Traffic moves off a full disk (issue: disk exhaustion, item 4, with replication). Three SPUs, each on a
real tmpfs of its own (its own mount namespace):

* rf = 3 whose leader's tmpfs is smaller than the others': when the leader's disk fills, the SC elects a
  healthy in-sync follower before the followers fill; fluvial's committed idempotent producer continues,
  and every acknowledged record is read exactly once, in order.
* a keyless producer on a 3-partition topic (rf = 1) with one SPU full: no error; its records go to the
  partitions whose leaders can write (the full one is `OutOfStorage`)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from fluvial import defaults as d
from fluvial.client.admin import Admin, TopicConfig
from fluvial.client.connect import Fluvial
from fluvial.client.consumer import ConsumerConfig, Offset
from fluvial.client.producer import ProducerConfig
from fluvial.protocol import metadata as md
from fluvial.protocol.spu import Isolation

from ..integration.cluster import free_ports, wait_until
from .test_full_disk import Namespaces, namespaces  # noqa: F401 - fixture

FLUVIAL = [sys.executable, "-m", "fluvial.cli.main"]
SPUS = (5001, 5002, 5003)


class TmpfsCluster:
    """An SC and three SPUs, SPU N on a tmpfs of `sizes[N]` MiB in its own mount namespace."""

    def __init__(self, ns: Namespaces, root: Path, sizes: dict[int, int]) -> None:
        self.root = root
        self.sc_port, self.base = free_ports(3)
        self.procs: list[subprocess.Popen[bytes]] = []
        self._spawn("sc", [*FLUVIAL, "run", "sc", "--data-dir", str(root / "sc"), "--public-addr",
                           f"127.0.0.1:{self.sc_port}"])
        for spu, mib in sizes.items():
            disk = root / f"disk-{spu}"
            disk.mkdir()
            port = self.base + d.SPU_PORT_STRIDE * (spu - d.SPU_BASE_ID)
            cmd = " ".join([*FLUVIAL, "run", "spu", "--id", str(spu), "--data-dir", str(disk), "--public-addr",
                            f"127.0.0.1:{port}", "--private-addr", f"127.0.0.1:{port + 1}", "--sc-addr",
                            f"127.0.0.1:{self.sc_port + 1}"])
            self._spawn(f"spu-{spu}", [*ns.unshare, "sh", "-c",
                                       f"mount -t tmpfs -o size={mib}m tmpfs {disk} && exec {cmd}"])

    def _spawn(self, name: str, argv: list[str]) -> None:
        with open(self.root / f"{name}.log", "wb") as log:
            self.procs.append(subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, start_new_session=True))

    def logs(self) -> str:
        return "\n".join(f"== {f.name}\n" + "\n".join(f.read_text(errors="replace").splitlines()[-20:])
                         for f in sorted(self.root.glob("*.log")))

    async def admin(self, call: Any) -> Any:
        async with await Admin.connect("127.0.0.1", self.sc_port, timeout=15) as admin:
            return await call(admin)

    def wait(self, what: str, check: Any, timeout: float = 40) -> Any:
        return wait_until(what, check, self.logs, timeout)

    def stop(self) -> None:
        for p in self.procs:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(p.pid, signal.SIGTERM)
        for p in self.procs:
            try:
                p.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)


@pytest.fixture
def small_leader_disk(namespaces: Namespaces, tmp_path: Path) -> Iterator[TmpfsCluster]:  # noqa: F811
    c = TmpfsCluster(namespaces, tmp_path, {5001: 16, 5002: 64, 5003: 64})
    try:
        c.wait("three SPUs online", lambda: len([s for s in asyncio.run(c.admin(lambda a: a.list_spus()))
                                                 if s.online]) == 3)
        yield c
    finally:
        c.stop()


def test_full_leader_hands_over_before_the_followers_fill(small_leader_disk: TmpfsCluster) -> None:
    c = small_leader_disk
    config = TopicConfig(replication=3, segment_size=1 * d.MIB, max_partition_size=1 * d.GIB)
    asyncio.run(c.admin(lambda a: a.create_topic("df", config)))

    def details() -> Any:
        return asyncio.run(c.admin(lambda a: a.partition_details("df")))[0]

    c.wait("all in sync", lambda: all(r.in_sync for r in details().replicas))
    if details().leader != 5001:
        asyncio.run(c.admin(lambda a: a.elect_leader("df", 0, 5001)))
    c.wait("the small disk leads", lambda: details().leader == 5001)
    total, value = 6000, b"x" * 4096          # ~24 MiB: more than 5001's 16 MiB, less than the others' 64

    async def produce() -> list[int]:
        client = await Fluvial.connect(f"127.0.0.1:{c.sc_port}")
        try:
            cfg = ProducerConfig(isolation=Isolation.READ_COMMITTED, delivery_timeout_seconds=90, linger_seconds=0.01)
            async with await client.topic_producer("df", cfg) as producer:
                outs = [await producer.send(None, value + i.to_bytes(4, "big")) for i in range(total)]
                await producer.flush()
                return [(await o).offset for o in outs]
        finally:
            await client.close()

    offsets = asyncio.run(produce())
    assert offsets == list(range(total))
    after = details()
    assert after.leader != 5001
    full = next(r for r in after.replicas if r.spu_id == 5001)
    assert not full.in_sync and full.state in ("full", "unknown", "failed")
    others = [r for r in after.replicas if r.spu_id != 5001]
    assert all(r.state == "ok" for r in others)

    async def read() -> list[tuple[int, bytes]]:
        client = await Fluvial.connect(f"127.0.0.1:{c.sc_port}")
        try:
            consumer = await client.consumer("df")
            async with await consumer.stream(Offset.beginning(), ConsumerConfig(disable_continuous=True)) as s:
                return [(r.offset, r.value[-4:]) async for r in s]
        finally:
            await client.close()

    got = asyncio.run(read())
    assert [o for o, _ in got] == list(range(total))
    assert [int.from_bytes(v, "big") for _, v in got] == list(range(total))
    sc_log = (c.root / "sc.log").read_text()
    assert "leader_elected partition=df-0" in sc_log and "was=5001" in sc_log
    # what an operator sees, from the SC: 5001 DEGRADED with its reason, and the FULL alert
    status = subprocess.run([*FLUVIAL, "cluster", "status", "--sc-port", str(c.sc_port)], capture_output=True,
                            text=True, timeout=60)
    assert status.returncode == 0, status.stderr
    rows = [line for line in status.stdout.splitlines() if line.startswith("spu 5001")]
    assert len(rows) == 1, status.stdout
    row = rows[0]
    assert "degraded" in row and "full" in row
    assert "critical FluvialDataDirFull spu 5001" in status.stdout
    described = subprocess.run([*FLUVIAL, "spu", "describe", "5001", "--cluster", f"127.0.0.1:{c.sc_port}"],
                               capture_output=True, text=True, timeout=60)
    assert "state:    degraded" in described.stdout and "FULL" in described.stdout, described.stdout
    listed = subprocess.run([*FLUVIAL, "spu", "list", "--cluster", f"127.0.0.1:{c.sc_port}"], capture_output=True,
                            text=True, timeout=60)
    assert "Online" in next(line for line in listed.stdout.splitlines() if line.startswith("5001"))  # fluvio's values


def test_keyless_records_go_around_a_full_spu(small_leader_disk: TmpfsCluster) -> None:
    c = small_leader_disk
    config = TopicConfig(partitions=3, replication=1, segment_size=1 * d.MIB, max_partition_size=1 * d.GIB)
    asyncio.run(c.admin(lambda a: a.create_topic("kl", config)))
    parts = asyncio.run(c.admin(lambda a: a.list_partitions()))
    on_small = next(p.partition for p in parts if p.topic == "kl" and p.leader == 5001)
    elsewhere = {p.partition for p in parts if p.topic == "kl" and p.leader != 5001}
    assert elsewhere

    async def fill() -> None:
        """Fill SPU 5001's disk through its own partition until it refuses (72)."""
        client = await Fluvial.connect(f"127.0.0.1:{c.sc_port}")
        try:
            cfg = ProducerConfig(delivery_timeout_seconds=2, linger_seconds=0.005)
            from fluvial.client.partitioner import partition_for_key
            key = next(f"k{i}".encode() for i in range(1000) if partition_for_key(f"k{i}".encode(), 3) == on_small)
            async with await client.topic_producer("kl", cfg) as producer:
                with contextlib.suppress(Exception):
                    for _ in range(10_000):
                        await (await producer.send(key, b"f" * 8192))
        finally:
            await client.close()

    asyncio.run(fill())
    c.wait("5001's partitions out of storage", lambda: all(
        p.resolution is md.PartitionResolution.OUT_OF_STORAGE
        for p in asyncio.run(c.admin(lambda a: a.list_partitions())) if p.topic == "kl" and p.leader == 5001))

    async def keyless() -> list[tuple[int, int]]:
        client = await Fluvial.connect(f"127.0.0.1:{c.sc_port}")
        try:
            cfg = ProducerConfig(delivery_timeout_seconds=20, linger_seconds=0.005)
            async with await client.topic_producer("kl", cfg) as producer:
                outs = [await producer.send(None, f"r{i}") for i in range(300)]
                await producer.flush()
                return [((m := await o).partition, m.offset) for o in outs]
        finally:
            await client.close()

    placed = asyncio.run(keyless())
    assert len(placed) == 300                                    # every record delivered, none refused
    assert {p for p, _ in placed} == elsewhere             # only partitions whose leader can write


def test_create_warns_when_partition_sizes_exceed_a_disk(small_leader_disk: TmpfsCluster) -> None:
    c = small_leader_disk
    cluster = ["--cluster", f"127.0.0.1:{c.sc_port}"]
    c.wait("data dirs reported", lambda: all(s.dirs for s in asyncio.run(c.admin(lambda a: a.cluster_health())).spus))
    fits = subprocess.run([*FLUVIAL, "topic", "create", "fits", "-r", "3", "--max-partition-size", "2MiB",
                           "--segment-size", "1MiB", *cluster], capture_output=True, text=True, timeout=60)
    assert fits.returncode == 0 and fits.stderr == ""               # 2 MiB per SPU fits every disk: no warning
    res = subprocess.run([*FLUVIAL, "topic", "create", "big", "-p", "3", "-r", "3", "--segment-size", "1MiB",
                          "--max-partition-size", "10MiB", *cluster], capture_output=True, text=True, timeout=60)
    assert res.returncode == 0 and 'topic "big" created' in res.stdout
    assert "warning: the max partition sizes placed on SPU 5001 add up to 32.0 MiB" in res.stderr, res.stderr
    assert "SPU 5002" not in res.stderr                          # 32 MiB fits its 64 MiB
    status = subprocess.run([*FLUVIAL, "cluster", "status", "--sc-port", str(c.sc_port)], capture_output=True,
                            text=True, timeout=60)
    assert "warning FluvialPartitionSizesExceedDisk spu 5001" in status.stdout, status.stdout
