"""The append path: validate the batch → headroom check → (roll) → write → advance LEO → maybe index
entry → flush per the flush policy. A failed write is cut back (`health`); idempotent producers'
batches are planned first (append / duplicate / reject) and exact retries acknowledged, not written."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

from fluvial import defaults as d
from fluvial.errors import StorageFailed
from fluvial.protocol import batch as b
from fluvial.storage.producers import Verdict
from fluvial.storage.replica.roll import ReplicaRoll
from fluvial.storage.replica.state import ReplicaState

logger = logging.getLogger("fluvial.storage.replica")


@dataclass(frozen=True)
class AppendResult:
    base_offset: int             # of the first batch (for an exact retry: what the first attempt was given)
    leo: int
    records: int = 0             # records written by this call
    bytes: int = 0               # batch bytes written by this call
    duplicate_batches: int = 0   # exact retries of an idempotent producer's batches: acknowledged, not written


class ReplicaAppend(ReplicaRoll):
    def append(self, batch: bytes | bytearray | memoryview) -> AppendResult:
        """Validate and append one batch; its base offset is the current LEO."""
        view = memoryview(batch)
        header = b.validate_batch(view, self._batch_limit, self._batch_limit_name)
        if header.producer_id >= 0:
            return self._append_idempotent([view], [header])
        with self._lock:
            base = self._leo
            self._append_one(view, header, self._stamp_epoch)
            return AppendResult(base, self._leo, self._leo - base, len(view))

    def append_batches(self, batches: Sequence[bytes | bytearray | memoryview]) -> AppendResult:
        """Append a record set: every batch is validated (and, for idempotent producers, its sequence
        checked) before any is written."""
        views = [memoryview(x) for x in batches]
        headers = [b.validate_batch(v, self._batch_limit, self._batch_limit_name) for v in views]
        for header in headers:
            if header.producer_id >= 0:
                return self._append_idempotent(views, headers)
        with self._lock:
            first = self._leo
            size = 0
            for view, header in zip(views, headers, strict=True):
                self._append_one(view, header, self._stamp_epoch)
                size += len(view)
            return AppendResult(first, self._leo, self._leo - first, size)

    def _append_idempotent(self, views: Sequence[memoryview], headers: Sequence[b.BatchHeader]) -> AppendResult:
        """Append what is new, acknowledge exact retries with their original base offset, reject the rest
        (OutOfOrderSequence, ProducerFenced) before writing anything."""
        with self._lock:
            decisions = self._producers.plan(headers, self._leo)
            if not self._has_snapshot and self._machine.state is not ReplicaState.FAILED:
                # from now on, open must rebuild the producers' state
                self._guarded("producer snapshot", lambda: self._write_producer_snapshot(self._leo), cut_to=None)
            leo_before = self._leo
            first: int | None = None
            size = duplicates = 0
            for view, header, decision in zip(views, headers, decisions, strict=True):
                if decision.verdict is Verdict.DUPLICATE:
                    base = decision.base_offset
                    duplicates += 1
                    logger.debug("produce_duplicate replica=%s producer_id=%d epoch=%d first_sequence=%d "
                                 "base_offset=%d", self.name, header.producer_id, header.producer_epoch,
                                 header.first_sequence, base)
                else:
                    base = self._leo
                    self._append_one(view, header, self._stamp_epoch)
                    size += len(view)
                    if header.producer_id >= 0:
                        self._producers.record(header, base)
                if first is None:
                    first = base
            assert first is not None
            return AppendResult(first, self._leo, self._leo - leo_before, size, duplicates)

    def _append_one(self, view: memoryview, header: b.BatchHeader, epoch: int = -1) -> None:
        """Write one validated batch at the LEO: its base offset and, when `epoch` >= 0, the leader epoch
        are written into its header (both outside the CRC)."""
        n = len(view)
        self._refuse_if_failed()
        writer = self._active.writer
        if writer is None:   # cannot happen: a roll either completes or leaves the old segment active
            raise StorageFailed(f"replica {self.name}: active segment has no index writer", replica=self.name,
                                data_dir=self.directory)
        prealloc = writer.reserve_bytes()        # the index's first or next step, usually 0
        self._check_writable(n + prealloc)
        if prealloc:
            self._guarded("preallocate", writer.preallocate, cut_to=None)
            if self.guard is not None:
                self.guard.charge(prealloc)
        if self._active.size + n > self.config.segment_max_bytes:
            self._roll(n)
        seg = self._active
        writer = seg.writer
        if writer is None:
            raise StorageFailed(f"replica {self.name}: active segment has no index writer", replica=self.name,
                                data_dir=self.directory)
        base = self._leo
        pos = seg.size
        rel = base - seg.base
        if writer.pending() >= d.INDEX_FLUSH_ENTRIES:
            self._guarded("index write", writer.flush_entries, cut_to=None)
        fd = seg.handle.fd
        during = "write"
        try:
            if epoch >= 0:
                self.io.pwritev(fd, (b.encode_preamble_epoch(base, header.batch_len, epoch), view[16:]), pos)
            else:
                self.io.pwritev(fd, (b.encode_base_offset(base), view[8:]), pos)
            if self._every_batch:
                during = "fsync"
                self.io.fdatasync(fd)
        except OSError as err:
            raise self._recover(err, during, cut_to=pos) from err
        seg.size = pos + n
        writer.commit(rel, pos, n)
        self._leo = base + header.last_offset_delta + 1
        seg.end_offset = self._leo
        if self.guard is not None:
            self.guard.charge(n)
        if self.hw_follows_leo:
            self._hw = self._leo
            self._hw_dirty = True
        self._write_succeeded()
