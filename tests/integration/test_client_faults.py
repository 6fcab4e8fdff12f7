"""fluvial's client when things break: a lost produce acknowledgement (idempotent producer: no
duplicate; without idempotence: the duplicate it would have made), and a partition leader that goes
away mid-produce and mid-consume (kill -9 and restart): every record delivered once, in order."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from typing import Any

import pytest

from fluvial.client.admin import TopicConfig
from fluvial.client.connect import Fluvial, SpuPool
from fluvial.client.consumer import ConsumerConfig, Offset
from fluvial.client.producer import ProducerConfig
from fluvial.errors import FluvialError
from fluvial.transport.client import ClientConnection

from .cluster import Cluster
from .faultproxy import FaultProxy


class ProxiedPool(SpuPool):
    """Every SPU connection goes through the fault proxy (the network between client and SPU)."""

    def __init__(self, proxy: FaultProxy) -> None:
        super().__init__("fluvial-test", 10)
        self.proxy = proxy

    async def get(self, spu_id: int, host: str, port: int) -> ClientConnection:
        return await super().get(spu_id, "127.0.0.1", self.proxy.port)


async def _read_values(client: Fluvial, topic: str) -> list[bytes]:
    consumer = await client.consumer(topic)
    async with await consumer.stream(Offset.beginning(), ConsumerConfig(disable_continuous=True)) as s:
        return [r.value async for r in s]


def _lost_ack_run(cluster: Cluster, topic: str, idempotent: bool) -> tuple[list[bytes], list[int], int]:
    async def main() -> tuple[list[bytes], list[int], int]:
        client = await Fluvial.connect(f"127.0.0.1:{cluster.sc_port}")
        try:
            async with await client.admin() as admin:
                await admin.create_topic(topic, TopicConfig())
            proxy = FaultProxy("127.0.0.1", cluster.spu_public_port(5001))
            await proxy.start()
            client.spus = ProxiedPool(proxy)
            proxy.lose_produce_answers = 1
            config = ProducerConfig(idempotent=idempotent, linger_seconds=0.01)
            async with await client.topic_producer(topic, config) as producer:
                outs = [await producer.send(None, f"r{i}") for i in range(10)]
                await producer.flush()
                offsets = [(await o).offset for o in outs]
            assert proxy.lost == 1 and proxy.produce_requests == 2          # the first answer was lost, one retry
            await proxy.close()
            return await _read_values(client, topic), offsets, proxy.lost
        finally:
            await client.close()

    return asyncio.run(main())


def test_idempotent_producer_retry_after_lost_ack_writes_once(fresh_cluster: Cluster) -> None:
    values, offsets, _lost = _lost_ack_run(fresh_cluster, "lost-ack", idempotent=True)
    assert values == [f"r{i}".encode() for i in range(10)]
    assert offsets == list(range(10))                   # the retry was acknowledged with the first offsets


def test_without_idempotence_the_same_fault_duplicates(fresh_cluster: Cluster) -> None:
    values, offsets, _lost = _lost_ack_run(fresh_cluster, "lost-ack-plain", idempotent=False)
    assert values == [f"r{i}".encode() for i in range(10)] * 2       # what the idempotent producer prevents
    assert offsets == list(range(10, 20))


def test_leader_killed_and_restarted_mid_produce_and_mid_consume(fresh_cluster: Cluster) -> None:
    cluster = fresh_cluster
    total = 3000

    async def main() -> tuple[list[Any], list[bytes]]:
        client = await Fluvial.connect(f"127.0.0.1:{cluster.sc_port}")
        try:
            async with await client.admin() as admin:
                await admin.create_topic("leader-gone", TopicConfig())
            consumer = await client.consumer("leader-gone")
            stream = await consumer.stream(Offset.beginning())
            received: list[Any] = []

            async def consume() -> None:
                async for r in stream:
                    received.append(r)
                    if len(received) == total:
                        return

            reader = asyncio.ensure_future(consume())
            config = ProducerConfig(linger_seconds=0.005, batch_size_bytes=2048, delivery_timeout_seconds=60)
            async with await client.topic_producer("leader-gone", config) as producer:
                outs = []
                for i in range(total):
                    outs.append(await producer.send(None, f"v{i:05d}"))
                    if i == total // 3:
                        await asyncio.to_thread(cluster.kill, "spu-5001", signal.SIGKILL)
                        down_at = time.monotonic()
                    if i % 50 == 0:
                        await asyncio.sleep(0.005)
                    if i == total // 2:
                        await asyncio.sleep(max(0.0, 1.0 - (time.monotonic() - down_at)))
                        await asyncio.to_thread(cluster.restart_spu, 5001)
                await producer.flush()
                metas = [await o for o in outs]
            await asyncio.wait_for(reader, 60)
            await stream.close()
            return metas, [r.value for r in received]
        finally:
            await client.close()

    metas, consumed = asyncio.run(main())
    assert [m.offset for m in metas] == list(range(total))          # every record once, in order
    assert consumed == [f"v{i:05d}".encode() for i in range(total)]  # the live stream resumed: no gap, no duplicate


def test_live_stream_survives_a_hung_leader(fresh_cluster: Cluster) -> None:
    """SIGSTOP: the SPU keeps its sockets open but answers nothing. The SC marks it offline, the stream
    ends (metadata says its leader is gone) and starts again when the SPU is back: no gap, no duplicate."""
    cluster = fresh_cluster

    async def main() -> list[bytes]:
        client = await Fluvial.connect(f"127.0.0.1:{cluster.sc_port}")
        try:
            async with await client.admin() as admin:
                await admin.create_topic("hung", TopicConfig())
            consumer = await client.consumer("hung")
            stream = await consumer.stream(Offset.beginning())
            received: list[bytes] = []

            async def consume() -> None:
                async for r in stream:
                    received.append(r.value)
                    if len(received) == 200:
                        return

            reader = asyncio.ensure_future(consume())
            async with await client.topic_producer("hung", ProducerConfig(linger_seconds=0.01)) as producer:
                await producer.send_all([f"a{i}".encode() for i in range(100)])
            while len(received) < 100:
                await asyncio.sleep(0.05)
            os.kill(cluster.pid("spu-5001"), signal.SIGSTOP)
            await client.metadata.wait_for(lambda c: c.leader_address("hung", 0) is None, what="the SPU offline")
            await asyncio.sleep(0.5)                       # the stream has ended and waits for a leader
            os.kill(cluster.pid("spu-5001"), signal.SIGCONT)
            async with await client.topic_producer("hung", ProducerConfig(linger_seconds=0.01)) as producer:
                await producer.send_all([f"b{i}".encode() for i in range(100)])
            await asyncio.wait_for(reader, 60)
            await stream.close()
            assert stream.resumes >= 1                    # the stream on the hung SPU was given up, not waited on
            return received
        finally:
            await client.close()

    received = asyncio.run(main())
    assert received == [f"a{i}".encode() for i in range(100)] + [f"b{i}".encode() for i in range(100)]


def test_closing_a_producer_that_cannot_deliver_fails_its_records_instead_of_hanging(fresh_cluster: Cluster) -> None:
    cluster = fresh_cluster

    async def main() -> None:
        client = await Fluvial.connect(f"127.0.0.1:{cluster.sc_port}")
        try:
            async with await client.admin() as admin:
                await admin.create_topic("no-leader", TopicConfig())
            producer = await client.topic_producer("no-leader", ProducerConfig(linger_seconds=0.01))
            await asyncio.to_thread(cluster.kill, "spu-5001")
            out = await producer.send(None, "lost")
            with pytest.raises(FluvialError):
                await producer.flush(timeout=1)            # nobody can take it: the flush times out
            await producer.close(timeout=1)                # gives up after its bound, without raising
            with pytest.raises(FluvialError):
                await asyncio.wait_for(out.wait(), 5)      # the record's handle says so instead of hanging
        finally:
            await client.close()

    asyncio.run(main())
