"""The synchronous facade against a real cluster: admin, produce, consume, consumer offsets, timeouts."""

from __future__ import annotations

import time

import pytest

from fluvial.client.admin import TopicConfig
from fluvial.client.sync import ConsumerConfig, Fluvial, Offset, OffsetStrategy
from fluvial.errors import FluvialError

from .cluster import Cluster


def test_sync_facade_round_trip(cluster: Cluster) -> None:
    with Fluvial.connect(f"127.0.0.1:{cluster.sc_port}") as fluvial:
        with fluvial.admin() as admin:
            admin.create_topic("sync-rt", TopicConfig(partitions=2))
            assert [t.name for t in admin.list_topics(["sync-rt"])] == ["sync-rt"]
        with fluvial.topic_producer("sync-rt") as producer:
            first = producer.send("a", "one")
            metas = producer.send_all([b"two", b"three"], [b"a", b"a"])
            producer.flush()
            assert first.wait().offset == 0 and [m.offset for m in metas] == [1, 2]
        partition = first.wait().partition
        with fluvial.partition_consumer("sync-rt", partition).stream(Offset.beginning(), disable_continuous=True) as s:
            assert [r.value for r in s] == [b"one", b"two", b"three"]
        cfg = ConsumerConfig(consumer_id="sync-reader", offset_strategy=OffsetStrategy.MANUAL, disable_continuous=True)
        with fluvial.partition_consumer("sync-rt", partition).stream(Offset.beginning(), cfg) as s:
            assert [r.offset for r in s.next_batch(timeout=10)] == [0, 1, 2]
            s.offset_commit()
            s.offset_flush()
        assert [(o.topic, o.offset) for o in fluvial.consumer_offsets("sync-reader")] == [("sync-rt", 2)]
        fluvial.delete_consumer_offset("sync-reader", "sync-rt", partition)
        assert fluvial.consumer_offsets("sync-reader") == []
        live = fluvial.partition_consumer("sync-rt", partition).stream(Offset.end())
        started = time.monotonic()
        with pytest.raises(FluvialError):
            live.next_batch(timeout=0.5)                         # nothing new: a timeout, not a hang
        assert time.monotonic() - started < 10
        live.close()
