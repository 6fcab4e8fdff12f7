"""Which partition a record goes to — the same mapping as Fluvio's producer
(`SiphashRoundRobinPartitioner`, `reference/fluvio-wire.md` §13.3), so records with the same key land in
the same partition whichever client sent them. Pure."""

from __future__ import annotations

import itertools
import struct

import siphashc

_ZERO_KEY = bytes(16)                 # SipHasher::new(): k0 = k1 = 0
_LEN = struct.Struct("<Q")            # Rust hashes a &[u8] as its length (usize, little-endian) + bytes


def key_hash(key: bytes) -> int:
    """SipHash-2-4 (zero key) of `u64_le(len(key)) || key`."""
    return siphashc.siphash(_ZERO_KEY, _LEN.pack(len(key)) + key)


def partition_for_key(key: bytes, partitions: int) -> int:
    if partitions < 1:
        raise ValueError("a topic has at least one partition")
    return key_hash(key) % partitions


class Partitioner:
    """Keyed records by hash (always: a key's partition never changes); keyless ones round-robin from
    partition 0 (per producer) — over `writable` partitions when some are not (a leader offline or out
    of storage), like Kafka's availability-aware partitioner."""

    def __init__(self) -> None:
        self._next = itertools.count()

    def partition(self, key: bytes | None, partitions: int, writable: list[int] | None = None) -> int:
        if key is None:
            if writable:
                return writable[next(self._next) % len(writable)]
            return next(self._next) % partitions
        return partition_for_key(key, partitions)


def writable_partitions(states: list[bool]) -> list[int] | None:
    """Pure: the partitions to round-robin keyless records over, from each partition's "writable" flag;
    None when all are writable (plain round-robin) or none is (nowhere better to go: keep spreading)."""
    ok = [p for p, w in enumerate(states) if w]
    return None if len(ok) in (0, len(states)) else ok
