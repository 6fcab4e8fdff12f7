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
    """Keyed records by hash; keyless ones round-robin from partition 0 (per producer)."""

    def __init__(self) -> None:
        self._next = itertools.count()

    def partition(self, key: bytes | None, partitions: int) -> int:
        if key is None:
            return next(self._next) % partitions
        return partition_for_key(key, partitions)
