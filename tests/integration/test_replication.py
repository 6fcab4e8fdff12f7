"""Replication, leader election and failover on a real 3-SPU cluster with rf = 3 (issue: "rf > 1 that
really replicates, and a leader that moves"): kill -9 and SIGSTOP of the leader under a ReadCommitted
idempotent producer, an old leader's uncommitted records truncated on its return, a stopped follower
leaving and rejoining the ISR, min-in-sync-replicas refusals — checked with fluvial's client, the official
client and the replica files themselves."""

from __future__ import annotations

import asyncio
import json
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from fluvial import defaults as d
from fluvial.client.admin import Admin, TopicConfig
from fluvial.client.connect import Fluvial
from fluvial.client.consumer import ConsumerConfig, Offset
from fluvial.client.producer import ProducerConfig
from fluvial.errors import ErrorCode
from fluvial.protocol import batch as b
from fluvial.protocol import fluvial_api as fa
from fluvial.protocol.codec import decode_from, encode
from fluvial.protocol.spu import Isolation
from fluvial.storage import Replica
from fluvial.storage.validator import verify_replica_dir
from fluvial.transport.client import ClientConnection

from .cluster import Cluster, free_ports, wait_until

SPUS = [5001, 5002, 5003]
V = d.SPU_API_VERSION


@pytest.fixture
def cluster3(tmp_path: Path) -> Iterator[Cluster]:
    c = Cluster(tmp_path, spus=3)
    c.start()
    try:
        yield c
    finally:
        for spu in SPUS:           # a test may leave an SPU stopped
            c.signal(f"spu-{spu}", signal.SIGCONT)
        c.stop()


async def _details(cluster: Cluster, topic: str) -> list[fa.PartitionDetail]:
    conn = await ClientConnection.connect("127.0.0.1", cluster.sc_port)
    try:
        body = await conn.request(fa.PARTITION_DETAILS, fa.FLUVIAL_API_VERSION,
                                  encode(fa.PartitionDetailsRequest(topic), fa.FLUVIAL_API_VERSION))
        resp = decode_from(fa.PartitionDetailsResponse, body, fa.FLUVIAL_API_VERSION)
        assert resp.error_code.ok, resp.error_code
        return list(resp.partitions)
    finally:
        await conn.close()


def details(cluster: Cluster, topic: str) -> fa.PartitionDetail:
    return asyncio.run(_details(cluster, topic))[0]


def wait_for(what: str, check: Any, cluster: Cluster, timeout: float = 30) -> Any:
    return wait_until(what, check, cluster.logs, timeout)


def create(cluster: Cluster, topic: str) -> int:
    async def main() -> None:
        client = await Fluvial.connect(f"127.0.0.1:{cluster.sc_port}")
        try:
            async with await client.admin() as admin:
                await admin.create_topic(topic, TopicConfig(replication=3))
        finally:
            await client.close()

    asyncio.run(main())
    return wait_for("all three replicas in sync", lambda: (p := details(cluster, topic)) and
                    sum(r.in_sync for r in p.replicas) == 3 and p.leader, cluster)


async def read_all(client: Fluvial, topic: str) -> list[tuple[int, bytes]]:
    consumer = await client.consumer(topic)
    async with await consumer.stream(Offset.beginning(), ConsumerConfig(disable_continuous=True)) as s:
        return [(r.offset, r.value) async for r in s]


def replica_bytes(cluster: Cluster, spu: int, topic: str, upto: int) -> bytes:
    """The stored batch bytes of one replica below offset `upto` (the SPU must be stopped)."""
    path = cluster.data / f"spu-{spu}" / f"spu-logs-{spu}" / f"{topic}-0"
    r = Replica.open(path)
    out = b""
    pos = r.log_start
    try:
        while pos < min(upto, r.leo):
            for one in b.split_batches(r.read(pos, 1 << 20).slice.read()):
                h = b.decode_header(one)
                if h.base_offset >= upto:
                    return out
                out += bytes(one)
                pos = h.next_offset
    finally:
        r.close()
    return out


def produce_through_failover(cluster: Cluster, topic: str, fault: Any, total: int = 3000,
                             request_timeout: float = d.CLIENT_REQUEST_TIMEOUT_SECONDS) -> list[int]:
    """fluvial's idempotent ReadCommitted producer sends `total` records; `fault()` runs a third of the way."""
    async def main() -> list[int]:
        client = await Fluvial.connect(f"127.0.0.1:{cluster.sc_port}")
        try:
            config = ProducerConfig(linger_seconds=0.005, batch_size_bytes=2048, delivery_timeout_seconds=600,
                                    isolation=Isolation.READ_COMMITTED, idempotent=True,
                                    request_timeout_seconds=request_timeout)
            async with await client.topic_producer(topic, config) as producer:
                outs = []
                for i in range(total):
                    outs.append(await producer.send(None, f"v{i:05d}"))
                    if i == total // 3:
                        await asyncio.to_thread(fault)
                    if i % 50 == 0:
                        await asyncio.sleep(0.005)
                await producer.flush()
                return [(await o).offset for o in outs]
        finally:
            await client.close()

    return asyncio.run(main())


def check_all_read_once(cluster: Cluster, topic: str, total: int) -> None:
    async def main() -> list[tuple[int, bytes]]:
        client = await Fluvial.connect(f"127.0.0.1:{cluster.sc_port}")
        try:
            return await read_all(client, topic)
        finally:
            await client.close()

    got = asyncio.run(main())
    assert [o for o, _ in got] == list(range(total))
    assert [v for _, v in got] == [f"v{i:05d}".encode() for i in range(total)]


# ------------------------------------------------------------------------------------------- tests


def test_kill_leader_under_committed_idempotent_producer(cluster3: Cluster) -> None:
    topic = "failover-kill"
    old = create(cluster3, topic)
    offsets = produce_through_failover(cluster3, topic, lambda: cluster3.kill(f"spu-{old}", signal.SIGKILL))
    assert offsets == list(range(3000))                      # every record acknowledged once, contiguous
    new = details(cluster3, topic)
    assert new.leader != old and new.leader_epoch == 1
    check_all_read_once(cluster3, topic, 3000)
    # the official client reads the same records from the new leader, and its producer works there
    out = cluster3.client(f"""
        f = Fluvio.connect()
        c = f.partition_consumer("{topic}", 0)
        vals = [r.value_string() for _, r in zip(range(3000), c.stream(Offset.beginning()))]
        p = f.topic_producer("{topic}")
        p.send_string("official")
        p.flush()
        last = [r.value_string() for _, r in zip(range(1), c.stream(Offset.absolute(3000)))]
        print(json.dumps({{"vals": vals, "last": last}}))
    """)
    assert out["vals"] == [f"v{i:05d}" for i in range(3000)]
    assert out["last"] == ["official"]


@pytest.mark.timeout(150)       # hang guard: a request stuck on the stopped leader would wait 600 s
def test_stopped_leader_fenced_then_truncated_and_rejoins(cluster3: Cluster) -> None:
    topic = "failover-stop"
    old = create(cluster3, topic)
    # The producer's request to the stopped leader is abandoned as soon as metadata shows the new leader
    # (not at its 600 s request timeout).
    offsets = produce_through_failover(cluster3, topic, lambda: cluster3.signal(f"spu-{old}", signal.SIGSTOP),
                                       request_timeout=600)
    assert offsets == list(range(3000))
    new = details(cluster3, topic)
    assert new.leader != old
    cluster3.signal(f"spu-{old}", signal.SIGCONT)

    async def produce_to_old() -> ErrorCode:
        """Right after SIGCONT, before it learns anything: the old leader's lease has expired."""
        from fluvial.protocol import spu as sp
        from fluvial.protocol.records import build_batch

        conn = await ClientConnection.connect("127.0.0.1", cluster3.spu_public_port(old))
        try:
            req = sp.ProduceRequest(None, Isolation.READ_UNCOMMITTED, 5000, [sp.TopicProduceData(
                topic, [sp.PartitionProduceData(0, build_batch([(None, b"stale")]))])])
            body = await conn.request(sp.SpuApiKey.PRODUCE, V, encode(req, V))
            resp = decode_from(sp.ProduceResponse, body, V)
            return ErrorCode(resp.responses[0].partitions[0].error_code.code)
        finally:
            await conn.close()

    assert asyncio.run(produce_to_old()) is ErrorCode.NOT_LEADER_FOR_PARTITION
    # it rejoins as a follower and catches up
    wait_for("old leader back in sync", lambda: all(r.in_sync for r in details(cluster3, topic).replicas),
             cluster3)
    check_all_read_once(cluster3, topic, 3000)
    leader = details(cluster3, topic).leader
    hw = details(cluster3, topic).hw
    cluster3.stop()
    reference = replica_bytes(cluster3, leader, topic, hw)
    assert len(b.split_batches(reference)) > 0
    for spu in SPUS:
        assert replica_bytes(cluster3, spu, topic, hw) == reference, f"SPU {spu} diverges below HW {hw}"
        path = cluster3.data / f"spu-{spu}" / f"spu-logs-{spu}" / f"{topic}-0"
        assert not verify_replica_dir(str(path)).problems
    res = cluster3.fluvial("storage", "verify", str(cluster3.data / f"spu-{old}" / f"spu-logs-{old}" / f"{topic}-0"),
                           check=False)
    assert res.returncode == 0, res.stdout + res.stderr


def test_uncommitted_records_of_a_returning_leader_are_truncated(cluster3: Cluster) -> None:
    topic = "truncate"
    # A longer offline timeout, so that the stopped followers stay in the ISR (and electable) while the
    # leader alone takes records: those are never committed.
    cluster3.kill("sc")
    cluster3.restart_sc("--spu-offline-after", "10")
    cluster3.wait_spus_online(SPUS)
    old = create(cluster3, topic)
    followers = [s for s in SPUS if s != old]

    async def phase(values: list[str], isolation: Isolation) -> list[int]:
        client = await Fluvial.connect(f"127.0.0.1:{cluster3.sc_port}")
        try:
            config = ProducerConfig(linger_seconds=0, isolation=isolation, delivery_timeout_seconds=30)
            async with await client.topic_producer(topic, config) as producer:
                outs = [await producer.send(None, v) for v in values]
                await producer.flush()
                return [(await o).offset for o in outs]
        finally:
            await client.close()

    assert asyncio.run(phase(["c0", "c1", "c2"], Isolation.READ_COMMITTED)) == [0, 1, 2]
    for f in followers:
        cluster3.signal(f"spu-{f}", signal.SIGSTOP)
    try:
        time.sleep(d.REPLICA_FETCH_MAX_WAIT_SECONDS * 2)   # their pending fetches are answered, empty
        # acknowledged by the leader alone (ReadUncommitted, like Kafka's acks=1): never reach a follower
        assert asyncio.run(phase(["u0", "u1"], Isolation.READ_UNCOMMITTED)) == [3, 4]
        cluster3.kill(f"spu-{old}", signal.SIGKILL)
    finally:
        for f in followers:
            cluster3.signal(f"spu-{f}", signal.SIGCONT)
    p = wait_for("a follower elected", lambda: (p := details(cluster3, topic)).leader in followers and p, cluster3)
    assert p.leader_epoch == 1
    assert asyncio.run(phase(["n0"], Isolation.READ_COMMITTED)) == [3]      # the leader-only records are gone
    cluster3.restart_spu(old)
    wait_for("old leader back in sync", lambda: all(r.in_sync for r in details(cluster3, topic).replicas),
             cluster3, timeout=40)

    async def read() -> list[tuple[int, bytes]]:
        client = await Fluvial.connect(f"127.0.0.1:{cluster3.sc_port}")
        try:
            return await read_all(client, topic)
        finally:
            await client.close()

    assert asyncio.run(read()) == [(0, b"c0"), (1, b"c1"), (2, b"c2"), (3, b"n0")]
    log = (cluster3.data / "logs" / f"spu-{old}.log").read_text()
    assert "replica_truncated replica=truncate-0 from=5 to=3" in log


def test_stopped_follower_leaves_isr_and_min_in_sync_refuses(cluster3: Cluster) -> None:
    topic = "isr"
    leader = create(cluster3, topic)
    f1, f2 = [s for s in SPUS if s != leader]

    async def send(value: str) -> int:
        client = await Fluvial.connect(f"127.0.0.1:{cluster3.sc_port}")
        try:
            config = ProducerConfig(linger_seconds=0, isolation=Isolation.READ_COMMITTED,
                                    delivery_timeout_seconds=30)
            async with await client.topic_producer(topic, config) as producer:
                return (await (await producer.send(None, value))).offset
        finally:
            await client.close()

    async def refused(value: str) -> str:
        from fluvial.protocol import spu as sp
        from fluvial.protocol.records import build_batch

        conn = await ClientConnection.connect("127.0.0.1", cluster3.spu_public_port(leader))
        try:
            req = sp.ProduceRequest(None, Isolation.READ_COMMITTED, 5000, [sp.TopicProduceData(
                topic, [sp.PartitionProduceData(0, build_batch([(None, value.encode())]))])])
            body = await conn.request(sp.SpuApiKey.PRODUCE, V, encode(req, V))
            err = decode_from(sp.ProduceResponse, body, V).responses[0].partitions[0].error_code
            return f"{ErrorCode(err.code).name}: {err.describe()}"
        finally:
            await conn.close()

    assert asyncio.run(send("a")) == 0
    cluster3.signal(f"spu-{f1}", signal.SIGSTOP)
    try:
        assert asyncio.run(send("b")) == 1          # waits out the lag / offline, then the ISR is 2 >= min 2
        assert sum(r.in_sync for r in details(cluster3, topic).replicas) == 2
        cluster3.signal(f"spu-{f2}", signal.SIGSTOP)
        try:
            wait_for("ISR of the leader alone", lambda: sum(r.in_sync for r in details(cluster3, topic).replicas)
                     == 1, cluster3)
            text = asyncio.run(refused("c"))
            assert text.startswith("OTHER") and "min-in-sync-replicas 2" in text, text
        finally:
            cluster3.signal(f"spu-{f2}", signal.SIGCONT)
    finally:
        cluster3.signal(f"spu-{f1}", signal.SIGCONT)
    wait_for("both followers back in sync", lambda: all(r.in_sync for r in details(cluster3, topic).replicas),
             cluster3)
    assert asyncio.run(send("d")) == 2


def test_cli_settings_describe_elect_and_move(tmp_path: Path) -> None:
    """`topic create --min-in-sync-replicas`, `partition list` LRS and follower offsets, `partition
    describe`, leadership back only through `partition elect-leader`, `partition move` onto a 4th SPU."""
    c = Cluster(tmp_path, spus=4)
    c.start()
    try:
        c.fluvial("topic", "create", "cli", "-r", "3", "--min-in-sync-replicas", "3")
        bad = c.fluvial("topic", "create", "cli-bad", "-r", "2", "--min-in-sync-replicas", "3", check=False)
        assert bad.returncode == 1 and "min-in-sync-replicas 3" in bad.stderr
        c.fluvial("produce", "cli", "--isolation", "ReadCommitted", input="a\nb\nc\n")
        p = wait_for("all in sync at HW 3", lambda: (p := details(c, "cli")) and p.hw == 3 and
                     sum(r.in_sync for r in p.replicas) == 3 and p, c)
        assert p.min_in_sync == 3
        row = wait_for("follower offsets listed", lambda: next(
            (r for r in json.loads(c.fluvial("partition", "list", "-O", "json").stdout)
             if r["name"] == "cli-0" and r["status"]["lsr"] == 2), None), c)
        assert sorted(f["leo"] for f in row["status"]["replicas"]) == [3, 3]
        table = c.fluvial("partition", "describe", "cli").stdout
        assert "(leader)" in table and "EPOCH" in table
        preferred = p.replicas[0].spu_id
        assert p.leader == preferred
        c.kill(f"spu-{preferred}")
        moved = wait_for("new leader", lambda: (q := details(c, "cli")).leader != preferred and q, c)
        # min-in-sync 3 with one SPU gone: committed produce is refused with a clear text
        res = c.fluvial("produce", "cli", "--isolation", "ReadCommitted", "--delivery-timeout", "2s",
                        input="x\n", check=False)
        assert res.returncode == 1 and "min-in-sync-replicas 3" in res.stderr, res.stderr
        c.restart_spu(preferred)
        wait_for("preferred replica back in sync", lambda: all(r.in_sync for r in details(c, "cli").replicas), c)
        assert details(c, "cli").leader == moved.leader            # no flapping back by itself
        c.fluvial("partition", "elect-leader", "--topic", "cli")
        back = wait_for("preferred leader", lambda: (q := details(c, "cli")).leader == preferred and q, c)
        assert back.leader_epoch == moved.leader_epoch + 1
        spare = next(s for s in [5001, 5002, 5003, 5004] if s not in [r.spu_id for r in back.replicas])
        target = [spare, *[r.spu_id for r in back.replicas if r.spu_id != preferred]]
        c.fluvial("partition", "move", "--topic", "cli", "--replicas", ",".join(map(str, target)))
        done = wait_for("move done", lambda: (q := details(c, "cli")) and [r.spu_id for r in q.replicas]
                        == target and all(r.in_sync for r in q.replicas) and q, c)
        assert done.leader == spare and done.hw == 3
        consumed = c.fluvial("consume", "cli", "-B", "-d").stdout.split()
        assert consumed == ["a", "b", "c"]
    finally:
        c.stop()


def test_second_process_with_a_live_spus_id_is_refused(tmp_path: Path) -> None:
    """Registration is fenced: a second process registering with the id of a live SPU does not take over
    its SC session and partitions; once the first is gone it may."""
    c = Cluster(tmp_path, spus=1)
    c.start()
    try:
        c.fluvial("topic", "create", "fenced")
        c.fluvial("produce", "fenced", input="one\n")
        first = c.spu_public_port(5001)
        from fluvial.cli.cluster import _launch

        other = free_ports(0)[0]            # a checked-free pair, not a guess beside the cluster's
        _launch("spu-5001-twin", ["run", "spu", "--id", "5001", "--data-dir", str(c.data / "twin"),
                                  "--public-addr", f"127.0.0.1:{other}", "--private-addr", f"127.0.0.1:{other + 1}",
                                  "--sc-addr", f"127.0.0.1:{c.sc_port + 1}"], c.data)
        sc_log = c.data / "logs" / "sc.log"
        wait_for("the twin refused", lambda: "spu_registration_refused spu=5001" in sc_log.read_text(), c)
        spus = json.loads(c.fluvial("spu", "list", "-O", "json").stdout)
        assert [s["spec"]["publicEndpoint"]["port"] for s in spus if s["spec"]["spuId"] == 5001] == [first]
        assert c.fluvial("consume", "fenced", "-B", "-d").stdout.split() == ["one"]
        c.kill("spu-5001")                     # the first goes away: the twin may now register
        wait_for("the twin registered", lambda: any(
            s["spec"]["spuId"] == 5001 and s["spec"]["publicEndpoint"]["port"] == other
            for s in json.loads(c.fluvial("spu", "list", "-O", "json").stdout)), c)
    finally:
        c.kill("spu-5001-twin")
        c.stop()


def test_sc_restart_moves_no_leader(cluster3: Cluster) -> None:
    """A restarted SC knows no SPU until each registers again; it must not hand every partition to the
    first one that does (found by `make soak-load`): leaders and epochs stay as they were."""
    async def create() -> None:
        async with await Admin.connect("127.0.0.1", cluster3.sc_port, timeout=15) as admin:
            await admin.create_topic("restart", TopicConfig(partitions=3, replication=3))

    asyncio.run(create())
    wait_for("all in sync", lambda: all(all(r.in_sync for r in p.replicas)
                                        for p in asyncio.run(_details(cluster3, "restart"))), cluster3)
    before = {p.partition: (p.leader, p.leader_epoch) for p in asyncio.run(_details(cluster3, "restart"))}
    assert len({leader for leader, _ in before.values()}) > 1        # leaders spread over the SPUs
    cluster3.kill("sc")
    cluster3.restart_sc()
    cluster3.wait_spus_online(list(SPUS))
    sc_log = cluster3.data / "logs" / "sc.log"
    wait_for("elections resumed", lambda: "elections_resumed" in sc_log.read_text(), cluster3)
    after = {p.partition: (p.leader, p.leader_epoch) for p in asyncio.run(_details(cluster3, "restart"))}
    assert after == before
    assert "leader_elected" not in sc_log.read_text().split("sc_started")[-1]
