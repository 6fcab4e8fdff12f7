"""Retention decisions (`fluvio-storage.md` §8). Pure: no files, no clock.

Size first (oldest sealed segments go until the partition fits `max_partition_bytes`), then age
(sealed segments whose log was last written more than `retention_seconds` ago). The active segment is
never removed, and only a prefix of the sealed segments is ever removed, so offsets stay contiguous
from the log start even if segment mtimes are out of order.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class SegmentStat:
    base_offset: int
    size_bytes: int          # .log + .index
    mtime: float             # seconds since the epoch


def segments_to_remove(
    sealed: Sequence[SegmentStat],
    active_bytes: int,
    *,
    max_partition_bytes: int,
    retention_seconds: float,
    now: float,
) -> int:
    """How many of the oldest sealed segments to remove (they are given oldest first)."""
    total = sum(s.size_bytes for s in sealed) + active_bytes
    count = 0
    while count < len(sealed) and total > max_partition_bytes:
        total -= sealed[count].size_bytes
        count += 1
    while count < len(sealed) and now - sealed[count].mtime > retention_seconds:
        count += 1
    return count
