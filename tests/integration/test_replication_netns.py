"""A leader cut off by the network (issue: replication, test 5). The leader SPU runs in its own network
namespace, linked to the others by a veth pair that the test creates (as root) and removes; a producer
runs *inside* that namespace, next to the leader. When the link goes down the leader's SC lease runs out:
from then on the inside producer gets only refusals, leadership moves, the outside producer continues, and
nothing the isolated leader accepted after its lease is ever acknowledged or read."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from fluvial import defaults as d
from fluvial.client.admin import Admin, TopicConfig
from fluvial.client.connect import Fluvial
from fluvial.client.consumer import ConsumerConfig, Offset
from fluvial.client.producer import ProducerConfig
from fluvial.protocol.spu import Isolation

from .cluster import FLUVIAL, free_ports, wait_until

LEASE_MARGIN_SECONDS = 0.5          # scheduling slack on 2 busy cores, on top of the lease itself
INSIDE_SECONDS = 9.0


def ip(*args: str, check: bool = True) -> None:
    subprocess.run(["ip", *args], check=check, capture_output=True, timeout=30)


class Net:
    """One namespace and a veth pair: ROOT_IP on the host side, NS_IP inside."""

    def __init__(self) -> None:
        tag = f"{os.getpid() % 10000}{random.randrange(100)}"
        self.ns = f"flv{tag}"
        self.root_if, self.ns_if = f"fva{tag}", f"fvb{tag}"
        octet = random.randrange(1, 250)
        self.root_ip, self.ns_ip = f"10.201.{octet}.1", f"10.201.{octet}.2"

    def up(self) -> None:
        ip("netns", "add", self.ns)
        ip("link", "add", self.root_if, "type", "veth", "peer", "name", self.ns_if)
        ip("link", "set", self.ns_if, "netns", self.ns)
        ip("addr", "add", f"{self.root_ip}/24", "dev", self.root_if)
        ip("link", "set", self.root_if, "up")
        ip("netns", "exec", self.ns, "ip", "addr", "add", f"{self.ns_ip}/24", "dev", self.ns_if)
        ip("netns", "exec", self.ns, "ip", "link", "set", self.ns_if, "up")
        ip("netns", "exec", self.ns, "ip", "link", "set", "lo", "up")

    def cut(self) -> None:
        ip("link", "set", self.root_if, "down")

    def heal(self) -> None:
        ip("link", "set", self.root_if, "up")

    def down(self) -> None:
        ip("link", "del", self.root_if, check=False)
        ip("netns", "del", self.ns, check=False)


class IsolatedCluster:
    """SC and SPUs 5001, 5002 on the host; SPU 5003 inside the namespace."""

    def __init__(self, root: Path, net: Net) -> None:
        self.root, self.net = root, net
        self.sc_port, self.base = free_ports(3)
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        (root / "logs").mkdir(parents=True)

    def port(self, spu: int) -> int:
        return self.base + d.SPU_PORT_STRIDE * (spu - d.SPU_BASE_ID)

    def _start(self, name: str, args: list[str], prefix: list[str] | None = None) -> None:
        log = open(self.root / "logs" / f"{name}.log", "ab")  # noqa: SIM115 - the child owns it
        self.procs[name] = subprocess.Popen([*(prefix or []), *FLUVIAL, *args], stdout=log, stderr=log,
                                            stdin=subprocess.DEVNULL, start_new_session=True)

    def start(self) -> None:
        self._start("sc", ["run", "sc", "--data-dir", str(self.root / "sc"), "--public-addr",
                           f"0.0.0.0:{self.sc_port}"])
        for spu in (5001, 5002):
            p = self.port(spu)
            self._start(f"spu-{spu}", ["run", "spu", "--id", str(spu), "--data-dir", str(self.root / f"spu-{spu}"),
                                       "--public-addr", f"127.0.0.1:{p}", "--private-addr",
                                       f"{self.net.root_ip}:{p + 1}", "--sc-addr", f"127.0.0.1:{self.sc_port + 1}"])
        p = self.port(5003)
        self._start("spu-5003", ["run", "spu", "--id", "5003", "--data-dir", str(self.root / "spu-5003"),
                                 "--public-addr", f"{self.net.ns_ip}:{p}", "--private-addr",
                                 f"{self.net.ns_ip}:{p + 1}", "--sc-addr", f"{self.net.root_ip}:{self.sc_port + 1}"],
                    prefix=["ip", "netns", "exec", self.net.ns])

    def stop(self) -> None:
        for proc in self.procs.values():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(10)

    def logs(self) -> str:
        return "\n".join(f"== {f.name}\n" + "\n".join(f.read_text(errors="replace").splitlines()[-25:])
                         for f in sorted((self.root / "logs").glob("*.log")))


@pytest.fixture
def isolated(tmp_path: Path) -> Iterator[IsolatedCluster]:
    net = Net()
    net.up()
    c = IsolatedCluster(tmp_path, net)
    try:
        c.start()
        yield c
    finally:
        c.stop()
        net.down()


INSIDE = """
import asyncio, json, sys, time
from fluvial.protocol import spu as sp
from fluvial.protocol.codec import decode_from, encode
from fluvial.protocol.records import build_batch
from fluvial.transport.client import ClientConnection

HOST, PORT, TOPIC, SECONDS = sys.argv[1], int(sys.argv[2]), sys.argv[3], float(sys.argv[4])
V = 24

async def main():
    conn = await ClientConnection.connect(HOST, PORT)
    out, k, end = [], 0, time.time() + SECONDS
    while time.time() < end:
        sent = time.time()
        req = sp.ProduceRequest(None, sp.Isolation.READ_UNCOMMITTED, 1000, [sp.TopicProduceData(
            TOPIC, [sp.PartitionProduceData(0, build_batch([(None, f"in-{k}".encode())]))])])
        try:
            body = await conn.request(sp.SpuApiKey.PRODUCE, V, encode(req, V), timeout=3)
            code = decode_from(sp.ProduceResponse, body, V).responses[0].partitions[0].error_code.code
        except Exception as e:
            code = f"{type(e).__name__}"
        out.append([k, sent, time.time(), code])
        k += 1
        await asyncio.sleep(0.02)
    print(json.dumps(out))

asyncio.run(main())
"""


def test_cut_off_leader_refuses_after_its_lease_and_leadership_moves(isolated: IsolatedCluster) -> None:
    c = isolated
    sc = f"127.0.0.1:{c.sc_port}"

    async def admin_call(call):  # type: ignore[no-untyped-def]
        async with await Admin.connect("127.0.0.1", c.sc_port, timeout=15) as admin:
            return await call(admin)

    async def details() -> object:
        return (await admin_call(lambda a: a.partition_details("iso")))[0]

    def wait(what: str, check, timeout: float = 30):  # type: ignore[no-untyped-def]
        return wait_until(what, check, c.logs, timeout)

    wait("the SC", lambda: asyncio.run(admin_call(lambda a: a.list_spus())) and
         all(s.online for s in asyncio.run(admin_call(lambda a: a.list_spus()))) and
         len(asyncio.run(admin_call(lambda a: a.list_spus()))) == 3)
    asyncio.run(admin_call(lambda a: a.create_topic("iso", TopicConfig(replication=3))))
    wait("all in sync", lambda: all(r.in_sync for r in asyncio.run(details()).replicas))
    if asyncio.run(details()).leader != 5003:
        asyncio.run(admin_call(lambda a: a.elect_leader("iso", 0, 5003)))
    wait("5003 leads", lambda: asyncio.run(details()).leader == 5003)

    inside = subprocess.Popen(["ip", "netns", "exec", c.net.ns, sys.executable, "-c", textwrap.dedent(INSIDE),
                               c.net.ns_ip, str(c.port(5003)), "iso", str(INSIDE_SECONDS)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    async def outside() -> tuple[list[int], float]:
        client = await Fluvial.connect(sc)
        try:
            config = ProducerConfig(linger_seconds=0.01, isolation=Isolation.READ_COMMITTED, idempotent=True,
                                    request_timeout_seconds=3, delivery_timeout_seconds=40)
            async with await client.topic_producer("iso", config) as producer:
                outs, cut_at, k = [], 0.0, 0
                started = time.monotonic()
                while time.monotonic() - started < INSIDE_SECONDS:
                    outs.append(await producer.send(None, f"out-{k}"))
                    k += 1
                    if not cut_at and time.monotonic() - started > 2.0:
                        cut_at = time.time()
                        await asyncio.to_thread(c.net.cut)
                    await asyncio.sleep(0.01)
                await producer.flush()
                return [(await o).offset for o in outs], cut_at
        finally:
            await client.close()

    offsets, cut_at = asyncio.run(outside())
    stdout, stderr = inside.communicate(timeout=60)
    assert inside.returncode == 0, stderr
    answers = json.loads(stdout.strip().splitlines()[-1])
    moved = asyncio.run(details())
    assert moved.leader != 5003, "leadership did not move"
    # the inside producer: accepted before the cut, only refusals once the lease is over
    fenced_after = cut_at + d.LEADER_LEASE_SECONDS + LEASE_MARGIN_SECONDS
    before = [a for a in answers if a[2] < cut_at]
    late = [a for a in answers if a[1] > fenced_after]
    assert before and all(a[3] == 0 for a in before)
    assert late and all(a[3] != 0 for a in late), [a for a in late if a[3] == 0][:5]
    # heal: the old leader comes back as a follower, truncates what nobody committed, catches up
    c.net.heal()
    wait("5003 back in sync", lambda: all(r.in_sync for r in asyncio.run(details()).replicas), timeout=40)

    async def read() -> list[bytes]:
        client = await Fluvial.connect(sc)
        try:
            consumer = await client.consumer("iso")
            async with await consumer.stream(Offset.beginning(), ConsumerConfig(disable_continuous=True)) as s:
                return [r.value async for r in s]
        finally:
            await client.close()

    values = asyncio.run(read())
    out_values = [v for v in values if v.startswith(b"out-")]
    assert out_values == [f"out-{k}".encode() for k in range(len(offsets))]      # every one, once, in order
    assert sorted(offsets) == sorted(set(offsets))
    late_values = {f"in-{a[0]}".encode() for a in late}
    assert not late_values & set(values)              # nothing accepted after the lease is ever read
