"""What replication needs from a replica: leader epochs, the follower's verbatim append, truncation.

* `start_epoch(E)` — this replica leads under epoch E from its LEO on: E is recorded in the epoch
  history (`storage/epochs.py`) and stamped into the `partition_leader_epoch` field of every batch it
  appends (the field is outside the CRC, like the base offset).
* `append_replicated(records)` — a follower appends the leader's batches exactly as the leader stored
  them (same bytes, same offsets, the leader's epoch); idempotent-producer state is *recorded* as the
  leader decided it (`ProducerTable.record`), never decided again.
* `truncate_to(offset)` — cut the log back to `offset` (whole batches; later segments removed, the
  segment holding the cut becomes the active one); the epoch history and the idempotent-producer table
  are rebuilt to the cut, so a resend of a removed batch is appended again, never acknowledged with an
  offset that no longer exists.
* `reset_to(offset)` — a follower behind the leader's log start drops its log and restarts at `offset`.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Sequence

from fluvial.errors import CorruptData
from fluvial.protocol import batch as b
from fluvial.storage.epochs import EpochHistory
from fluvial.storage.producers import ProducerTable
from fluvial.storage.replica.append import AppendResult, ReplicaAppend
from fluvial.storage.replica.state import ReplicaState
from fluvial.storage.segment import Segment

logger = logging.getLogger("fluvial.storage.replica")


class ReplicaReplication(ReplicaAppend):
    _epochs: EpochHistory

    def _load_epochs(self) -> None:
        self._epochs = EpochHistory(self.io, self.directory)
        try:
            self._epochs.load(self._leo)
        except OSError as e:
            logger.warning("epoch_history_unreadable replica=%s error=%r", self.name, e)

    def _store_epochs(self) -> None:
        """Persist the history; a failure is logged (a missing entry only makes a later truncation go
        further back than needed, which is safe)."""
        try:
            self._epochs.store()
        except OSError as e:
            logger.warning("epoch_history_deferred replica=%s error=%r", self.name, e.strerror)

    # -------------------------------------------------------------------------------------- epochs

    @property
    def last_epoch(self) -> int:
        return self._epochs.last_epoch

    def epoch_history(self) -> list[tuple[int, int]]:
        with self._lock:
            return list(self._epochs.entries)

    def epoch_end(self, epoch: int) -> tuple[int, int]:
        """(largest epoch <= `epoch` here, the offset where it ends here)."""
        with self._lock:
            return self._epochs.end_of(epoch, self._leo)

    def start_epoch(self, epoch: int) -> None:
        """Lead under `epoch` from the current LEO on."""
        with self._lock:
            self._stamp_epoch = max(self._stamp_epoch, epoch)
            if self._epochs.add(epoch, self._leo):
                self._store_epochs()
                logger.info("leader_epoch_start replica=%s epoch=%d start_offset=%d", self.name, epoch, self._leo)

    # ------------------------------------------------------------------------------------ follower

    def append_replicated(self, records: bytes | bytearray | memoryview) -> AppendResult:
        """Append the leader's batches verbatim. Each must start at this replica's LEO."""
        views = b.split_batches(records)
        headers = [b.validate_batch(v, self._batch_limit, self._batch_limit_name) for v in views]
        with self._lock:
            first = self._leo
            size = 0
            history_changed = False
            for view, header in zip(views, headers, strict=True):
                if header.base_offset != self._leo:
                    raise CorruptData(self.directory, header.base_offset,
                                      f"leader batch at offset {header.base_offset}, follower LEO {self._leo}",
                                      replica=self.name)
                if header.producer_id >= 0 and not self._has_snapshot and \
                        self._machine.state is not ReplicaState.FAILED:
                    self._guarded("producer snapshot", lambda: self._write_producer_snapshot(self._leo),
                                  cut_to=None)
                self._append_one(view, header, header.leader_epoch)
                size += len(view)
                if header.producer_id >= 0:
                    self._producers.record(header, header.base_offset)
                if header.leader_epoch >= 0 and self._epochs.add(header.leader_epoch, header.base_offset):
                    history_changed = True
            if history_changed:
                self._store_epochs()
            return AppendResult(first, self._leo, self._leo - first, size)

    # ---------------------------------------------------------------------------------- truncation

    def truncate_to(self, offset: int) -> int:
        """Cut the log back to `offset` (rounded down to a batch start). Returns the new LEO."""
        with self._lock:
            if offset >= self._leo:
                return self._leo
            if offset <= self.log_start:
                return self._reset_locked(offset, keep_history=True)
            old_leo = self._leo
            segments = [*self._sealed, self._active]
            keep_index = max(i for i, s in enumerate(segments) if s.base <= offset)
            target = segments[keep_index]
            removed = self._drop_segments(segments[keep_index + 1:])
            pos = target.find_position(offset) if offset < target.end_offset else target.size
            new_leo = _batch_base_at(target, pos) if pos < target.size else min(offset, target.end_offset)
            if target is not self._active:
                # a reader may still hold the sealed segment's handle: it is not closed here (as retention)
                active = Segment.open_active(self.io, self.directory, target.base, self._index_capacity,
                                             self.config.index_max_interval_bytes)
                self._sealed = self._sealed[:keep_index]
                self._sealed_bases = self._sealed_bases[:keep_index]
                self._active = active
            self._cut_active(pos)
            self._active.end_offset = new_leo
            self._leo = new_leo
            self._after_cut(old_leo, removed)
            return self._leo

    def reset_to(self, offset: int) -> int:
        """Drop the whole log; the next batch gets offset `offset` (follower behind the leader's start)."""
        with self._lock:
            return self._reset_locked(offset)

    def _reset_locked(self, offset: int, *, keep_history: bool = False) -> int:
        old_leo = self._leo
        removed = self._drop_segments([*self._sealed, self._active])
        self._sealed, self._sealed_bases = [], []
        self._active = self._guarded("reset", lambda: Segment.create(
            self.io, self.directory, offset, self._index_capacity, self.config.index_max_interval_bytes),
            cut_to=None)  # type: ignore[assignment]
        self._leo = offset
        if not keep_history:      # the batches that arrive next carry their epochs
            self._epochs.entries = []
        self._after_cut(old_leo, removed, reset=True)
        return self._leo

    def _cut_active(self, pos: int) -> None:
        seg = self._active
        writer = seg.writer
        assert writer is not None
        self._guarded("truncate", lambda: self.io.ftruncate(seg.handle.fd, pos), cut_to=None)
        seg.size = pos
        keep = len(writer.entries)
        while keep and writer.entries.positions[keep - 1] >= pos:
            keep -= 1
        self._guarded("index truncate", lambda: writer.truncate_entries(keep), cut_to=None)

    def _drop_segments(self, segments: Sequence[Segment]) -> int:
        freed = 0
        for seg in segments:
            freed += seg.size + seg.index_bytes()
            if seg.writer is not None:      # log handles stay open for readers holding a slice
                seg.writer.handle.close()
            for path in (seg.log_path, seg.index_path):
                with contextlib.suppress(FileNotFoundError):
                    self.io.unlink(path)
        if self.guard is not None and freed:
            self.guard.charge(-freed)
        return len(segments)

    def _after_cut(self, old_leo: int, removed: int, *, reset: bool = False) -> None:
        self._hw = max(self.log_start, min(self._hw, self._leo)) if not reset else self._leo
        self._hw_dirty = True
        self._dir_dirty = True
        if self._epochs.truncate(self._leo) or reset:
            self._store_epochs()
        self._rebuild_producers()
        logger.warning("replica_truncated replica=%s from=%d to=%d removed_segments=%d reset=%s", self.name,
                       old_leo, self._leo, removed, reset)

    def _rebuild_producers(self) -> None:
        """The idempotent producers' table as of the new LEO: from the snapshot when it is not ahead of the
        log, else from every stored header; then a fresh snapshot at the LEO."""
        if not self._has_snapshot:
            return
        self._producers = ProducerTable()
        self._load_producers_from(self.log_start)
        if self._machine.state is not ReplicaState.FAILED:
            try:
                self._write_producer_snapshot(self._leo)
            except OSError as err:
                logger.warning("producer_snapshot_deferred replica=%s offset=%d error=%r", self.name, self._leo,
                               err.strerror)


def _batch_base_at(seg: Segment, pos: int) -> int:
    raw = seg.io.pread(seg.handle.fd, b.HEADER_TOTAL_BYTES, pos)
    return b.decode_header(raw).base_offset
