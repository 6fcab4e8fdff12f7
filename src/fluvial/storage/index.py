"""Sparse offset index of one segment (`reference/fluvio-storage.md` §4).

Entry: u32 relative offset | u32 file position, big-endian. A position of 0 never appears in a valid
entry (the first batch of a segment never gets one), so the first zero slot ends the used entries of a
preallocated active index.

The look-ups are pure functions over two parallel arrays; `ActiveIndex` adds the file writes.
"""

from __future__ import annotations

import logging
import os
import struct
import sys
from array import array
from bisect import bisect_right

from fluvial import defaults as d
from fluvial.storage.fileio import FileHandle, FileIO

logger = logging.getLogger(__name__)

_ENTRY = struct.Struct(">II")


class IndexEntries:
    """Parallel arrays of relative offsets and positions, both strictly increasing."""

    __slots__ = ("positions", "rels")

    def __init__(self, rels: array | None = None, positions: array | None = None) -> None:
        self.rels = rels if rels is not None else array("I")
        self.positions = positions if positions is not None else array("I")

    def __len__(self) -> int:
        return len(self.rels)

    def add(self, rel: int, position: int) -> None:
        self.rels.append(rel)
        self.positions.append(position)

    def truncate(self, count: int) -> None:
        del self.rels[count:]
        del self.positions[count:]

    def floor_by_offset(self, rel: int) -> tuple[int, int]:
        """(rel, position) of the greatest entry with relative offset <= `rel`, else (0, 0)."""
        i = bisect_right(self.rels, rel)
        if i == 0:
            return 0, 0
        return self.rels[i - 1], self.positions[i - 1]

    def floor_by_position(self, position: int) -> tuple[int, int]:
        """(rel, position) of the greatest entry at or before byte `position`, else (0, 0)."""
        i = bisect_right(self.positions, position)
        if i == 0:
            return 0, 0
        return self.rels[i - 1], self.positions[i - 1]


def parse_index(raw: bytes, log_size: int) -> IndexEntries:
    """Pure: entries of an index file's bytes, stopping at the first zero slot or any entry that is
    not strictly increasing or points past the log (a torn or stale tail is ignored, never trusted)."""
    count = len(raw) // d.INDEX_ENTRY_BYTES
    flat = array("I")
    flat.frombytes(raw[: count * d.INDEX_ENTRY_BYTES])
    if sys.byteorder == "little":
        flat.byteswap()
    rels = flat[0::2]
    positions = flat[1::2]
    try:
        used = positions.index(0)
    except ValueError:
        used = len(positions)
    good = 0
    prev_rel = -1
    prev_pos = 0
    for i in range(used):
        r, p = rels[i], positions[i]
        if r <= prev_rel or p <= prev_pos or p >= log_size:
            break
        prev_rel, prev_pos = r, p
        good = i + 1
    return IndexEntries(rels[:good], positions[:good])


def encode_entry(rel: int, position: int) -> bytes:
    return _ENTRY.pack(rel, position)


def index_capacity_bytes(segment_max_bytes: int, interval_bytes: int) -> int:
    """Pure: preallocation of an active index sized from the segment size.

    Entries are at least `interval_bytes` of log apart, so a segment can need at most
    segment_max / interval + 1 of them; capped at Fluvio's `index_max_bytes`."""
    entries = segment_max_bytes // max(1, interval_bytes) + 2
    return min(d.INDEX_MAX_BYTES, entries * d.INDEX_ENTRY_BYTES)


def index_initial_bytes(capacity_bytes: int) -> int:
    """Pure: what a new active index preallocates: a small first step, never more than its capacity."""
    return min(capacity_bytes, d.INDEX_PREALLOC_INITIAL_BYTES)


def index_growth_target(allocated_bytes: int, needed_bytes: int, capacity_bytes: int) -> int:
    """Pure: the size an active index grows to so that `needed_bytes` fit: its allocation doubled
    (from the initial step) until they do, capped at its capacity."""
    target = max(allocated_bytes, index_initial_bytes(capacity_bytes))
    while target < needed_bytes and target < capacity_bytes:
        target *= 2
    return min(target, capacity_bytes)


class ActiveIndex:
    """The writable index of the active segment: preallocated with fallocate, written with pwrite
    (never through an mmap of a sparse file: that dies with SIGBUS on a full tmpfs).

    The allocation starts small (`index_initial_bytes`) and grows in doubling steps up to
    `capacity_bytes` (sized from the segment size) ahead of the entries: the append path asks
    `reserve_bytes()` before each write, passes it through the space guard's headroom check with the
    batch, and calls `preallocate()`. So 1,000 idle partitions hold 16 KiB of index each, not 2 MiB."""

    def __init__(self, io: FileIO, path: str, capacity_bytes: int, entries: IndexEntries, interval_bytes: int) -> None:
        self.io = io
        self.path = path
        self.capacity_bytes = capacity_bytes
        self.entries = entries
        self.interval_bytes = interval_bytes
        self.accumulated = 0
        self.handle = FileHandle(io, path, os.O_RDWR | os.O_CREAT)
        self.allocated_bytes = io.fsize(self.handle.fd)      # fallocate'd (or written) so far
        self.preallocated = self.allocated_bytes >= index_initial_bytes(capacity_bytes)
        self._full_logged = False
        self._on_disk = len(entries)          # entries [0, _on_disk) are in the file

    def reserve_bytes(self, entries: int = 1) -> int:
        """Bytes the next append (adding up to `entries` entries) must fallocate before it writes: the
        first step if none was taken (e.g. after starting with no space), or the next step once the
        entries plus one flush group could reach past the allocation; 0 when none is due."""
        if not self.preallocated:
            return max(0, index_initial_bytes(self.capacity_bytes) - self.allocated_bytes)
        needed = (len(self.entries) + d.INDEX_FLUSH_ENTRIES + entries) * d.INDEX_ENTRY_BYTES
        if needed <= self.allocated_bytes or self.allocated_bytes >= self.capacity_bytes:
            return 0
        return index_growth_target(self.allocated_bytes, needed, self.capacity_bytes) - self.allocated_bytes

    def preallocate(self, entries: int = 1) -> None:
        """Take the step `reserve_bytes(entries)` names. Raises OSError (ENOSPC) when the disk cannot give it."""
        n = self.reserve_bytes(entries)
        if n > 0:
            self.io.fallocate(self.handle.fd, self.allocated_bytes, n)
            self.allocated_bytes += n
        self.preallocated = True

    def entry_due(self) -> bool:
        """Fluvio's sparse rule: the batch after `interval` accumulated bytes gets an entry."""
        return self.accumulated >= self.interval_bytes

    def commit(self, rel: int, position: int, batch_bytes: int) -> None:
        """Record a batch whose bytes are written. Its entry, if due, reaches the file with the next
        `flush_entries` (the index is a hint: recovery never trusts it without checking the log)."""
        if self.accumulated >= self.interval_bytes:
            if (len(self.entries) + 1) * d.INDEX_ENTRY_BYTES <= self.capacity_bytes:
                self.entries.add(rel, position)
            elif not self._full_logged:
                self._full_logged = True
                logger.warning("index_full path=%s entries=%d: further entries dropped", self.path, len(self.entries))
            self.accumulated = 0
        else:
            self.accumulated += batch_bytes

    def pending(self) -> int:
        """Entries recorded in memory but not yet written to the file."""
        return len(self.entries) - self._on_disk

    def flush_entries(self) -> None:
        """Write the pending entries with one pwrite."""
        first, last = self._on_disk, len(self.entries)
        if first >= last:
            return
        rels, positions = self.entries.rels, self.entries.positions
        buf = b"".join(encode_entry(rels[i], positions[i]) for i in range(first, last))
        self.io.pwrite(self.handle.fd, buf, first * d.INDEX_ENTRY_BYTES)
        self._on_disk = last

    def used_bytes(self) -> int:
        return len(self.entries) * d.INDEX_ENTRY_BYTES

    def shrink(self) -> None:
        """At seal time: write what is pending, cut the file to its used entries."""
        self.flush_entries()
        self.io.ftruncate(self.handle.fd, self.used_bytes())
        self.allocated_bytes = self.used_bytes()

    def truncate_entries(self, count: int) -> None:
        """Forget entries past `count` and zero their slots on disk so a reopen does not see them."""
        if count >= len(self.entries):
            return
        if count < self._on_disk:
            start = count * d.INDEX_ENTRY_BYTES
            self.io.pwrite(self.handle.fd, bytes(self._on_disk * d.INDEX_ENTRY_BYTES - start), start)
            self._on_disk = count
        self.entries.truncate(count)
