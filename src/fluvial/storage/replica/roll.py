"""Roll-over: the new segment first (complete, its index preallocated), then the old one is sealed.
All or nothing (DESIGN.md §4)."""

from __future__ import annotations

import logging

from fluvial import defaults as d
from fluvial.errors import StorageFailed
from fluvial.storage.replica.snapshots import ProducerSnapshots
from fluvial.storage.replica.state import IO_FAILED
from fluvial.storage.segment import Segment

logger = logging.getLogger("fluvial.storage.replica")


class ReplicaRoll(ProducerSnapshots):
    def _roll(self, batch_bytes: int) -> None:
        """New segment first (complete, preallocated, its directory entry durable under
        fsync-every-batch), then seal the old one. Anything that fails before the swap leaves the old
        segment active and untouched (writable, or the replica FAILED with 56 after a failed fsync)."""
        self._check_writable(self._index_initial + batch_bytes, inodes=d.SPACE_INODES_PER_ROLL, force_refresh=True)
        old = self._active
        writer = old.writer
        if writer is None:   # the active segment always has its index writer; never serve a write without it
            raise StorageFailed(f"replica {self.name}: active segment {old.base} has no index writer",
                                replica=self.name, data_dir=self.directory)
        new = self._guarded("roll", lambda: Segment.create(self.io, self.directory, self._leo, self._index_capacity,
                                                           self.config.index_max_interval_bytes), cut_to=None)
        if self.guard is not None:
            self.guard.charge(self._index_initial, inodes=d.SPACE_INODES_PER_ROLL)
        if self._every_batch:
            try:
                self.io.fsync_dir(self.directory)
            except OSError as err:   # never retried: FAILED; the old segment stays active, the new one goes
                new.discard()
                if self.guard is not None:
                    self.guard.charge(-self._index_initial, inodes=-d.SPACE_INODES_PER_ROLL)
                raise self._fail(IO_FAILED, err, "fsync") from err
        try:
            writer.shrink()
        except OSError as e:  # the unshrunk index is still valid: zero slots end it
            logger.warning("index_shrink_failed replica=%s file=%s error=%r", self.name, writer.path, e)
        old.writer = None
        if not self._every_batch:
            self._unsynced.append(old.handle)
            self._dir_dirty = True
        old.verified = False
        self._sealed.append(old)
        self._sealed_bases.append(old.base)
        self._active = new
        logger.info("segment_roll replica=%s sealed_base=%d new_base=%d", self.name, old.base, new.base)
        if self._has_snapshot:   # producers whose last batch is now sealed stay known after a restart
            self._snapshot_after_roll(new.base)
