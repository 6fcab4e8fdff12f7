"""fluvial's own client against a real cluster, and interop with the official client both ways: same
partitions for the same keys, same offsets, same timestamps."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import pytest

from fluvial.client.admin import TopicConfig
from fluvial.client.connect import Fluvial
from fluvial.client.consumer import (
    ConsumerConfig,
    Offset,
    OffsetStrategy,
    delete_consumer_offset,
    list_consumer_offsets,
)
from fluvial.client.partitioner import partition_for_key
from fluvial.client.producer import ProducerConfig
from fluvial.errors import ErrorCode, FluvialError
from fluvial.transport.client import ConnectionLost

from .cluster import Cluster

T = TypeVar("T")


def run(cluster: Cluster, main: Callable[[Fluvial], Awaitable[T]], timeout: float = 120) -> T:
    async def wrapper() -> T:
        client = await Fluvial.connect(f"127.0.0.1:{cluster.sc_port}")
        try:
            return await asyncio.wait_for(main(client), timeout)
        finally:
            await client.close()

    return asyncio.run(wrapper())


async def create(client: Fluvial, name: str, **config: Any) -> None:
    async with await client.admin() as admin:
        await admin.create_topic(name, TopicConfig(**config))


async def read_all(client: Fluvial, topic: str, partitions: list[int] | None = None,
                   offset: Offset | None = None, **config: Any) -> list[Any]:
    consumer = await client.consumer(topic, partitions)
    async with await consumer.stream(offset or Offset.beginning(), ConsumerConfig(disable_continuous=True, **config)) as s:
        return [r async for r in s]


def test_produce_and_consume_keyed_single_sends_and_batch_call(cluster: Cluster) -> None:
    async def main(client: Fluvial) -> None:
        await create(client, "cl-rt", partitions=3)
        async with await client.topic_producer("cl-rt") as producer:
            assert producer.producer_id >= 0                       # idempotent by default on fluvial
            singles = [await producer.send(f"key{i % 7}", f"single-{i}") for i in range(700)]
            batch = await producer.send_all([f"batch-{i}".encode() for i in range(9000)])
            await producer.flush()
            metas = [await o for o in singles]
            batch_metas = await batch
        for i, m in enumerate(metas):
            assert m.partition == partition_for_key(f"key{i % 7}".encode(), 3)
        assert sorted(m.partition for m in batch_metas[:3]) == [0, 1, 2]          # round robin
        records = await read_all(client, "cl-rt")
        by_pos = {(r.partition, r.offset): r for r in records}
        assert len(by_pos) == len(records) == 9700
        for i, m in enumerate(metas):
            assert by_pos[(m.partition, m.offset)].value == f"single-{i}".encode()
            assert by_pos[(m.partition, m.offset)].key == f"key{i % 7}".encode()
        for i, m in enumerate(batch_metas):
            assert by_pos[(m.partition, m.offset)].value == f"batch-{i}".encode()
        for p in range(3):
            offsets = sorted(r.offset for r in records if r.partition == p)
            assert offsets == list(range(len(offsets)))                              # contiguous
        assert all(r.timestamp > 1_600_000_000_000 for r in records)

    run(cluster, main)


@pytest.mark.parametrize("codec", ["gzip", "snappy", "lz4", "zstd"])
def test_compressed_batches_read_back_by_both_clients(cluster: Cluster, codec: str) -> None:
    topic = f"cl-{codec}"

    async def main(client: Fluvial) -> list[Any]:
        await create(client, topic)
        async with await client.topic_producer(topic, ProducerConfig(compression=codec)) as producer:
            await producer.send_all([f"{codec}-{i}".encode() * 5 for i in range(2000)])
        return await read_all(client, topic)

    ours = run(cluster, main)
    assert [r.value for r in ours] == [f"{codec}-{i}".encode() * 5 for i in range(2000)]
    theirs = cluster.client(f"""
        c = Fluvio.connect().partition_consumer("{topic}", 0)
        out = []
        for r in c.stream(Offset.beginning()):
            out.append(r.value_string())
            if len(out) == 2000:
                break
        print(json.dumps(out))
    """)
    assert theirs == [r.value.decode() for r in ours]


def test_official_client_reads_what_fluvial_produced(cluster: Cluster) -> None:
    async def main(client: Fluvial) -> list[Any]:
        await create(client, "cl-to-official", partitions=2)
        async with await client.topic_producer("cl-to-official") as producer:
            outs = [await producer.send(f"k{i}", f"v{i}") for i in range(50)]
            await producer.flush()
            metas = [await o for o in outs]
        return [(m.partition, m.offset) for m in metas]

    ours = run(cluster, main)
    theirs = cluster.client("""
        c = Fluvio.connect()
        out = []
        for p in (0, 1):
            n = 0
            cons = c.partition_consumer("cl-to-official", p)
            for r in cons.stream(Offset.beginning()):
                out.append([p, r.offset(), r.key_string(), r.value_string(), r.timestamp()])
                n += 1
                if len(out) == 50 or (p == 0 and n == OFFSETS0):
                    break
        print(json.dumps(out))
    """.replace("OFFSETS0", str(sum(1 for p, _o in ours if p == 0))))
    seen = {(p, o): (k, v, ts) for p, o, k, v, ts in theirs}
    for i, (p, o) in enumerate(ours):
        assert seen[(p, o)][:2] == (f"k{i}", f"v{i}")
        assert p == partition_for_key(f"k{i}".encode(), 2)

    async def timestamps(client: Fluvial) -> dict[tuple[int, int], int]:
        return {(r.partition, r.offset): r.timestamp for r in await read_all(client, "cl-to-official")}

    ts = run(cluster, timestamps)
    assert {k: v[2] for k, v in seen.items()} == ts


def test_fluvial_reads_what_the_official_client_produced(cluster: Cluster) -> None:
    run(cluster, lambda client: create(client, "cl-from-official", partitions=3))
    theirs = cluster.client("""
        p = Fluvio.connect().topic_producer("cl-from-official")
        outs = [p.send(f"key-{i}".encode(), f"value-{i}".encode()) for i in range(60)]
        p.flush()
        metas = [o.wait() for o in outs]              # wait() hands the metadata out once
        print(json.dumps([[m.partition_id(), m.offset()] for m in metas]))
    """)
    official_view = cluster.client("""
        c = Fluvio.connect()
        out = {}
        for p in range(3):
            for r in c.partition_consumer("cl-from-official", p).stream(Offset.beginning()):
                out[f"{p}/{r.offset()}"] = r.timestamp()
                if r.offset() + 1 == COUNTS[p]:
                    break
        print(json.dumps(out))
    """.replace("COUNTS", repr([sum(1 for p, _o in theirs if p == q) for q in range(3)])))

    records = run(cluster, lambda client: read_all(client, "cl-from-official"))
    by_pos = {(r.partition, r.offset): r for r in records}
    assert len(records) == 60
    for i, (p, o) in enumerate(theirs):
        r = by_pos[(p, o)]
        assert (r.key, r.value) == (f"key-{i}".encode(), f"value-{i}".encode())
        assert p == partition_for_key(f"key-{i}".encode(), 3)          # same mapping as the official producer
        assert official_view[f"{p}/{o}"] == r.timestamp


def test_offsets_from_end_absolute_and_end_offset(cluster: Cluster) -> None:
    async def main(client: Fluvial) -> None:
        await create(client, "cl-offsets")
        async with await client.topic_producer("cl-offsets") as producer:
            await producer.send_all([str(i).encode() for i in range(100)])
        tail = await read_all(client, "cl-offsets", offset=Offset.from_end(3))
        assert [r.offset for r in tail] == [97, 98, 99]
        head = await read_all(client, "cl-offsets", offset=Offset.from_beginning(95))
        assert [r.offset for r in head] == [95, 96, 97, 98, 99]
        window = await read_all(client, "cl-offsets", offset=Offset.absolute(10), end_offset=12)
        assert [r.value for r in window] == [b"10", b"11", b"12"]
        small = await read_all(client, "cl-offsets", max_bytes=200)          # many tiny frames
        assert [r.offset for r in small] == list(range(100))
        assert await read_all(client, "cl-offsets", offset=Offset.end()) == []

    run(cluster, main)


def test_live_stream_receives_new_records_across_partitions(cluster: Cluster) -> None:
    async def main(client: Fluvial) -> None:
        await create(client, "cl-live", partitions=2)
        consumer = await client.consumer("cl-live")
        stream = await consumer.stream(Offset.end())
        got: list[Any] = []

        async def collect() -> None:
            async for r in stream:
                got.append(r)
                if len(got) == 40:
                    return

        reader = asyncio.ensure_future(collect())
        await asyncio.sleep(0.3)
        async with await client.topic_producer("cl-live", ProducerConfig(linger_seconds=0.01)) as producer:
            for i in range(40):
                await producer.send(None, f"live-{i}")
        await asyncio.wait_for(reader, 30)
        await stream.close()
        assert sorted(r.value for r in got) == sorted(f"live-{i}".encode() for i in range(40))
        assert {r.partition for r in got} == {0, 1}

    run(cluster, main)


def test_consumer_offsets_commit_flush_resume_list_delete(cluster: Cluster) -> None:
    async def main(client: Fluvial) -> None:
        await create(client, "cl-cons")
        async with await client.topic_producer("cl-cons") as producer:
            await producer.send_all([f"r{i}".encode() for i in range(20)])
        consumer = await client.partition_consumer("cl-cons", 0)
        cfg = ConsumerConfig(consumer_id="reader-1", offset_strategy=OffsetStrategy.MANUAL)
        async with await consumer.stream(Offset.beginning(), cfg) as s:
            seen = []
            async for r in s:
                seen.append(r.offset)
                if r.offset == 6:
                    break
            s.offset_commit()
            await s.offset_flush()
        stored = await list_consumer_offsets(client, consumer_id="reader-1")
        assert [(o.topic, o.partition, o.offset) for o in stored] == [("cl-cons", 0, 6)]
        async with await consumer.stream(Offset.beginning(), cfg) as s:             # resumes after 6
            first = await s.__anext__()
            assert first.offset == 7
        await delete_consumer_offset(client, "reader-1", "cl-cons", 0)
        assert await list_consumer_offsets(client, consumer_id="reader-1") == []

    run(cluster, main)


def test_typed_errors_and_timeouts(cluster: Cluster) -> None:
    async def main(client: Fluvial) -> None:
        with pytest.raises(FluvialError) as e:
            await client.topic_producer("no-such-topic")
        assert e.value.code is ErrorCode.TOPIC_NOT_FOUND
        await create(client, "cl-errors")
        with pytest.raises(FluvialError) as e:
            await client.consumer("cl-errors", [4])
        assert "no partition 4" in str(e.value)
        async with await client.topic_producer("cl-errors", ProducerConfig(batch_size_bytes=64 * 1024 * 1024)) as producer:
            with pytest.raises(FluvialError) as e:                           # refused locally, at once
                await producer.send(None, b"x" * (40 * 1024 * 1024))
            assert e.value.code is ErrorCode.MESSAGE_TOO_LARGE                 # fatal: not retried

    run(cluster, main)
    started = time.monotonic()
    with pytest.raises(ConnectionLost):
        asyncio.run(Fluvial.connect("127.0.0.1:1", timeout=2))
    assert time.monotonic() - started < 10


def test_backpressure_bounds_buffered_bytes(cluster: Cluster) -> None:
    limit = 64 * 1024

    async def main(client: Fluvial) -> None:
        await create(client, "cl-backpressure")
        config = ProducerConfig(max_buffer_bytes=limit, batch_size_bytes=8 * 1024, linger_seconds=0.05)
        peak = 0
        async with await client.topic_producer("cl-backpressure", config) as producer:
            outs = []
            for i in range(3000):
                outs.append(await producer.send(None, f"{i:06d}".encode().ljust(1000, b"-")))
                peak = max(peak, producer._buffered)
            big = await producer.send_all([b"y" * 1000] * 2000)        # larger than the buffer: waits, then goes
            await producer.flush()
            assert [(await o).offset for o in outs] == list(range(3000))
            assert [m.offset for m in await big] == list(range(3000, 5000))
        assert peak <= limit + 1100                                     # one record over at most

    run(cluster, main)


def test_a_given_up_batch_restarts_sequences_and_a_used_up_epoch_takes_a_new_producer_id(cluster: Cluster) -> None:
    async def main(client: Fluvial) -> None:
        await create(client, "cl-epochs")
        # a local limit above the SPU's (32 MiB per batch): the SPU refuses the 40 MiB batch, fatally
        config = ProducerConfig(batch_size_bytes=64 * 1024 * 1024, linger_seconds=0.01,
                                max_batch_bytes=64 * 1024 * 1024)
        async with await client.topic_producer("cl-epochs", config) as producer:
            await (await producer.send(None, b"first"))
            first_id = producer.producer_id
            too_big = await producer.send(None, b"x" * (40 * 1024 * 1024))
            with pytest.raises(FluvialError):
                await too_big                                  # fatal: given up, epoch 0 -> 1
            assert producer._parts[0].epoch == 1 and producer.producer_id == first_id
            assert (await (await producer.send(None, b"second"))).offset == 1
            producer._parts[0].epoch = (1 << 15) - 1            # as if 32,766 batches had been given up
            too_big = await producer.send(None, b"y" * (40 * 1024 * 1024))
            with pytest.raises(FluvialError):
                await too_big
            assert producer.producer_id != first_id            # the epoch is used up: a new id
            outs = [await producer.send(None, f"after-{i}") for i in range(10)]
            assert [(await o).offset for o in outs] == list(range(2, 12))
        assert [r.value for r in await read_all(client, "cl-epochs")] == \
            [b"first", b"second"] + [f"after-{i}".encode() for i in range(10)]

    run(cluster, main)
