"""Retention of one replica: remove the sealed segments `storage.retention` (pure) says to."""

from __future__ import annotations

import contextlib
import logging

from fluvial.storage.replica.base import ReplicaBase
from fluvial.storage.retention import SegmentStat, segments_to_remove

logger = logging.getLogger("fluvial.storage.replica")


class ReplicaRetention(ReplicaBase):
    def segment_stats(self) -> list[SegmentStat]:
        with self._lock:
            sealed = list(self._sealed)
        return [SegmentStat(s.base, s.size + s.index_bytes(), self.io.mtime(s.log_path)) for s in sealed]

    def apply_retention(self, now: float | None = None) -> int:
        """Remove the sealed segments retention says to; return how many were removed."""
        stats = self.segment_stats()
        with self._lock:
            active_bytes = self._active.size + self._active.index_bytes()
        count = segments_to_remove(stats, active_bytes, max_partition_bytes=self.config.max_partition_bytes,
                                   retention_seconds=self.config.retention_seconds,
                                   now=self._clock() if now is None else now)
        if not count:
            return 0
        freed = self._remove_oldest(count)
        logger.info("retention replica=%s removed_segments=%d freed_bytes=%d log_start=%d", self.name, count,
                    freed, self.log_start)
        return count

    def oldest_sealed_mtime(self) -> float | None:
        """mtime of the oldest sealed segment (None: nothing sealed)."""
        with self._lock:
            oldest = self._sealed[0] if self._sealed else None
        return None if oldest is None else self.io.mtime(oldest.log_path)

    def evict_oldest_sealed(self) -> int:
        """Remove the oldest sealed segment whatever retention says (`--evict-when-full`: DATA LOSS, the
        caller logs and counts it). Returns the bytes freed (0: nothing sealed)."""
        with self._lock:
            if not self._sealed:
                return 0
        return self._remove_oldest(1)

    def _remove_oldest(self, count: int) -> int:
        with self._lock:
            removed = self._sealed[:count]
            self._sealed = self._sealed[count:]
            self._sealed_bases = self._sealed_bases[count:]
            if self._hw < self.log_start:
                self._hw = self.log_start
        freed = 0
        for seg in removed:
            freed += seg.size + seg.index_bytes()
            for path in (seg.log_path, seg.index_path):
                with contextlib.suppress(FileNotFoundError):
                    self.io.unlink(path)
        if self.guard is not None:
            self.guard.charge(-freed)
        return freed
