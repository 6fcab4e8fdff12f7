"""Opening a replica: list its segments, repair the active segment's torn tail (CRC from the last
trustworthy index entry), load the HW checkpoint, verify every sealed segment after a FAILED run, and
rebuild the idempotent producers' state. Opens even with no free space (then FULL)."""

from __future__ import annotations

import itertools
import logging
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Self

from fluvial import defaults as d
from fluvial.errors import CorruptData
from fluvial.protocol import batch as b
from fluvial.storage.checkpoint import Checkpoint
from fluvial.storage.config import ReplicaConfig
from fluvial.storage.fileio import OS_IO, FileIO
from fluvial.storage.replica.snapshots import ProducerSnapshots
from fluvial.storage.replica.state import SPACE_ERRNOS
from fluvial.storage.segment import Segment
from fluvial.storage.space import DirState, SpaceGuard
from fluvial.storage.validator import segment_bases, verify_segment, walk_batches

logger = logging.getLogger("fluvial.storage.replica")


class ReplicaRecovery(ProducerSnapshots):
    @classmethod
    def open(
        cls,
        directory: str | Path,
        config: ReplicaConfig | None = None,
        *,
        io: FileIO = OS_IO,
        guard: SpaceGuard | None = None,
        name: str | None = None,
        clock: Callable[[], float] = time.time,
    ) -> Self:
        directory = str(directory)
        self = cls(directory, config or ReplicaConfig(), io, guard, name or os.path.basename(directory), clock)
        io.makedirs(directory)
        marker = os.path.join(directory, d.FAILED_MARKER_FILE)
        verify_all = os.path.exists(marker)
        bases = segment_bases(io.listdir(directory))
        cap, interval = self._index_capacity, self.config.index_max_interval_bytes
        if not bases:
            self._active = self._create_first_segment(cap, interval)
        else:
            for base, nxt in itertools.pairwise(bases):
                self._sealed.append(Segment.open_sealed(io, directory, base, nxt))
            self._sealed_bases = [s.base for s in self._sealed]
            self._active = Segment.open_active(io, directory, bases[-1], cap, interval)
            self._recover_active_tail()
        self._leo = self._active.end_offset
        self._checkpoint = Checkpoint(io, os.path.join(directory, d.CHECKPOINT_FILE))
        stored = self._checkpoint.load()
        self._hw = self._leo if stored is None else max(self.log_start, min(stored, self._leo))
        if guard is not None:
            guard.add_listener(self._on_space_transition)
            if guard.state is not DirState.OK:
                self._follow_dir(guard.state)
        if verify_all:
            self._verify_all_sealed()
            io.unlink(marker)
        self._load_producers()
        self._load_epochs()
        logger.info("replica_open replica=%s dir=%s segments=%d log_start=%d hw=%d leo=%d state=%s", self.name,
                    directory, len(self._sealed) + 1, self.log_start, self._hw, self._leo, self.state.name)
        return self

    def _create_first_segment(self, cap: int, interval: int) -> Segment:
        try:
            seg = Segment.create(self.io, self.directory, 0, cap, interval)
        except OSError as e:
            if e.errno not in SPACE_ERRNOS:
                raise
            refused = e
        else:
            if self.guard is not None:
                self.guard.charge(self._index_initial)  # the index's first step, as a roll does
            return seg
        # No room even for an index: start anyway, FULL; the index is preallocated before the first write.
        seg = Segment.create(self.io, self.directory, 0, 0, interval)
        seg.writer.capacity_bytes = cap  # type: ignore[union-attr]
        seg.writer.preallocated = False  # type: ignore[union-attr]
        self._started_full("no space for the first index", refused)
        return seg

    def _recover_active_tail(self) -> None:
        """CRC-check the active segment from its last trustworthy index entry; cut a torn/corrupt tail."""
        seg = self._active
        writer = seg.writer
        assert writer is not None
        entries = writer.entries
        keep = len(entries)
        start, expected = 0, seg.base
        while keep:
            rel, pos = entries.rels[keep - 1], entries.positions[keep - 1]
            raw = self.io.pread(seg.handle.fd, b.HEADER_TOTAL_BYTES, pos)
            if len(raw) == b.HEADER_TOTAL_BYTES:
                h = b.decode_header(raw)
                if h.base_offset == seg.base + rel and h.magic == b.MAGIC and h.batch_len >= b.HEADER_BYTES:
                    start, expected = pos, seg.base + rel
                    break
            keep -= 1
        good_end, leo = start, expected
        try:
            for pos, base, total, lod in walk_batches(self.io, seg.handle.fd, start, seg.size,
                                                      expected_offset=expected, check_crc=True, path=seg.log_path):
                good_end, leo = pos + total, base + lod + 1
        except CorruptData as e:
            logger.warning("replica_tail_repair replica=%s file=%s position=%d reason=%r truncated_bytes=%d",
                           self.name, e.path, e.position, e.reason, seg.size - good_end)
        if good_end < seg.size:
            self.io.ftruncate(seg.handle.fd, good_end)
            seg.size = good_end
        while keep and entries.positions[keep - 1] >= good_end:
            keep -= 1
        if keep < len(entries):
            writer.truncate_entries(keep)
        seg.end_offset = leo

    def _verify_all_sealed(self) -> None:
        for seg in self._sealed:
            report = verify_segment(self.io, self.directory, seg.base)
            seg.verified = True
            if report.problems:
                first = report.problems[0]
                seg.corrupt_at = first.position
                logger.error("replica_corrupt replica=%s file=%s position=%d reason=%r", self.name,
                             first.path, first.position, first.reason)

    # ---------------------------------------------------------------------- verification (the scrub)

    def mark_corrupt(self, base: int, position: int, reason: str) -> None:
        """The scrub found a sealed segment corrupt: never serve bytes at or after `position`."""
        with self._lock:
            for seg in self._sealed:
                if seg.base == base:
                    seg.corrupt_at = position if seg.corrupt_at is None else min(seg.corrupt_at, position)
        logger.error("replica_corrupt replica=%s segment=%d position=%d reason=%r", self.name, base, position, reason)

    def unverified_sealed(self) -> list[Segment]:
        with self._lock:
            return [s for s in self._sealed if not s.verified]
