"""fluvial's producer sends one produce request per SPU for the partitions whose batches are ready in the
same loop turn (Kafka's clients do the same per broker): 1,000 partitions on one SPU must not cost 1,000
requests per round. Against an in-process SC and SPU on real sockets."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from prometheus_client import REGISTRY

from fluvial.client.admin import Admin, TopicConfig
from fluvial.client.connect import Fluvial
from fluvial.client.consumer import ConsumerConfig, Offset
from fluvial.client.producer import ProducerConfig, partition_for_key
from fluvial.protocol import spu as sp
from fluvial.sc.server import ScConfig, ScServer
from fluvial.spu.server import SpuConfig, SpuServer

PARTITIONS = 24


def _produce_requests() -> float:
    return REGISTRY.get_sample_value("fluvial_requests_total",
                                     {"service": "spu-public", "api_key": str(int(sp.SpuApiKey.PRODUCE))}) or 0.0


@pytest.mark.asyncio
async def test_partitions_ready_together_share_one_request_and_keep_their_offsets(tmp_path: Path) -> None:
    sc = ScServer(ScConfig(str(tmp_path / "sc"), public_port=0, private_port=0))
    await sc.start()
    spu = SpuServer(SpuConfig(5001, str(tmp_path / "spu"), public_port=0, private_port=0, sc_port=sc.private_port))
    await spu.start()
    client = None
    try:
        async with asyncio.timeout(60):
            admin = await Admin.connect("127.0.0.1", sc.public_port)
            try:
                await admin.create_topic("g", TopicConfig(partitions=PARTITIONS, replication=1))
            finally:
                await admin.close()
            client = await Fluvial.connect(f"127.0.0.1:{sc.public_port}")
            producer = await client.topic_producer("g", ProducerConfig(linger_seconds=0.05))
            keys = [b"key-%d" % i for i in range(PARTITIONS * 8)]
            warm = await producer.send_all([b"warm"] * len(keys), keys)   # leaders known, connection open
            await warm
            before = _produce_requests()
            delivery = await producer.send_all([b"v-" + k for k in keys], keys)
            metas = await delivery
            requests = _produce_requests() - before
            assert requests <= 2, requests                      # one per loop turn, not one per partition
            by_partition: dict[int, list[tuple[int, bytes]]] = {}
            for key, meta in zip(keys, metas, strict=True):
                assert meta.partition == partition_for_key(key, PARTITIONS)
                by_partition.setdefault(meta.partition, []).append((meta.offset, key))
            assert len(by_partition) == PARTITIONS
            for p, got in by_partition.items():             # each partition: offsets in send order, after the warm-up's
                first = got[0][0]
                assert [o for o, _ in got] == list(range(first, first + len(got))) and first == len(got)
                consumer = await client.partition_consumer("g", p)
                stream = await consumer.stream(Offset.absolute(first), ConsumerConfig(disable_continuous=True))
                stored = [(r.offset, r.key) async for r in stream]
                assert stored == got
            await producer.close()
    finally:
        if client is not None:
            await client.close()
        await spu.stop()
        await sc.stop()
