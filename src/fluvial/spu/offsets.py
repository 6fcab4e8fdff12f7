"""Committed consumer offsets, kept as records of `consumer-offset` partition 0 on its leader SPU
(`reference/fluvio-wire.md` §10.6, §14.4): an append-only log of updates and deletes, replayed into a map
when the leader opens it, so offsets survive restarts."""

from __future__ import annotations

import time
from dataclasses import dataclass

from fluvial import defaults as d
from fluvial.errors import FluvialError
from fluvial.protocol import batch as b
from fluvial.protocol import internal as i
from fluvial.protocol.codec import decode, encode
from fluvial.protocol.records import build_batch, decode_records
from fluvial.spu.replicas import LocalReplica, ReplicaRegistry
from fluvial.storage.replica import Replica


class NotOffsetLeader(FluvialError):
    """This SPU does not lead `consumer-offset-0`."""


@dataclass(frozen=True)
class StoredOffset:
    topic: str
    partition: int
    consumer_id: str
    offset: int
    modified_time: int


class ConsumerOffsets:
    def __init__(self, registry: ReplicaRegistry) -> None:
        self.registry = registry
        self._map: dict[tuple[str, int, str], StoredOffset] = {}
        self._loaded: Replica | None = None
        self._replayed_to = 0

    def _leader(self) -> LocalReplica:
        local = self.registry.leader(d.CONSUMER_OFFSET_TOPIC, 0)
        if local is None:
            raise NotOffsetLeader(f"this SPU does not lead {d.CONSUMER_OFFSET_TOPIC}-0")
        if self._loaded is not local.replica:
            self._map.clear()
            self._loaded = local.replica
            self._replayed_to = local.replica.log_start
        self._replay(local.replica)
        return local

    def _replay(self, replica: Replica) -> None:
        offset = max(self._replayed_to, replica.log_start)
        while offset < replica.leo:
            data = replica.read(offset, 1 << 20).slice.read()
            if not data:
                break
            for one in b.split_batches(data):
                for rec in decode_records(one):
                    if rec.offset >= offset:
                        self._apply(decode(i.OffsetEntry, rec.value, 0).entry)
                offset = b.decode_header(one).next_offset
        self._replayed_to = offset

    def _apply(self, entry: object) -> None:
        if isinstance(entry, i.RecordUpdated):
            k = decode(i.OffsetKey, entry.key, 0)
            v = decode(i.OffsetValue, entry.value, 0)
            self._map[(k.topic, k.partition, k.consumer_id)] = StoredOffset(k.topic, k.partition, k.consumer_id,
                                                                            v.offset, v.modified_time)
        elif isinstance(entry, i.RecordDeleted):
            k = decode(i.OffsetKey, entry.key, 0)
            self._map.pop((k.topic, k.partition, k.consumer_id), None)

    def _append(self, local: LocalReplica, entry: object) -> None:
        value = encode(i.OffsetEntry(entry), 0)
        local.replica.append(build_batch([(None, value)], timestamp_ms=int(time.time() * 1000)))
        local.notify_appended()
        self._replay(local.replica)

    def update(self, topic: str, partition: int, consumer_id: str, offset: int) -> None:
        local = self._leader()
        key = encode(i.OffsetKey(topic, partition, consumer_id), 0)
        self._append(local, i.RecordUpdated(key, encode(i.OffsetValue(offset, int(time.time())), 0)))

    def delete(self, topic: str, partition: int, consumer_id: str) -> None:
        local = self._leader()
        if (topic, partition, consumer_id) in self._map:
            self._append(local, i.RecordDeleted(encode(i.OffsetKey(topic, partition, consumer_id), 0)))

    def delete_topic(self, topic: str) -> None:
        """Every consumer's offsets of `topic` (its partitions are gone)."""
        local = self._leader()
        for s in [s for s in self._map.values() if s.topic == topic]:
            self._append(local, i.RecordDeleted(encode(i.OffsetKey(s.topic, s.partition, s.consumer_id), 0)))

    def fetch(self, topic: str | None, partition: int | None, consumer_id: str | None) -> list[StoredOffset]:
        self._leader()
        return [s for s in self._map.values()
                if (topic is None or (s.topic == topic and s.partition == partition))
                and (consumer_id is None or s.consumer_id == consumer_id)]
