"""The append path: validate the batch → headroom check → (roll) → write → advance LEO → maybe index
entry → flush per the flush policy. A failed write is cut back (`health`); idempotent producers'
batches are planned first (append / duplicate / reject) and exact retries acknowledged, not written."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
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
    bases: tuple[int, ...] = ()  # every batch's base offset, in the order given (exact retries: their first)


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
            return AppendResult(base, self._leo, self._leo - base, len(view), bases=(base,))

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
            self._append_run(list(zip(views, headers, strict=True)), self._stamp_epoch)
            bases = []
            base = first
            for header in headers:
                bases.append(base)
                base += header.record_count
            return AppendResult(first, self._leo, self._leo - first, sum(map(len, views)), bases=tuple(bases))

    def _append_idempotent(self, views: Sequence[memoryview], headers: Sequence[b.BatchHeader]) -> AppendResult:
        """Append what is new, acknowledge exact retries with their original base offset, reject the rest
        (OutOfOrderSequence, ProducerFenced) before writing anything."""
        with self._lock:
            decisions = self._producers.plan(headers, self._leo)
            if not self._has_snapshot and self._machine.state is not ReplicaState.FAILED:
                # from now on, open must rebuild the producers' state
                self._guarded("producer snapshot", lambda: self._write_producer_snapshot(self._leo), cut_to=None)
            leo_before = self._leo
            bases: list[int] = []
            duplicates = 0
            new: list[tuple[memoryview, b.BatchHeader]] = []
            next_base = self._leo                 # where the run puts the next new batch
            for view, header, decision in zip(views, headers, decisions, strict=True):
                if decision.verdict is Verdict.DUPLICATE:
                    base = decision.base_offset
                    duplicates += 1
                    logger.debug("produce_duplicate replica=%s producer_id=%d epoch=%d first_sequence=%d "
                                 "base_offset=%d", self.name, header.producer_id, header.producer_epoch,
                                 header.first_sequence, base)
                else:
                    base = next_base
                    next_base += header.record_count
                    new.append((view, header))
                bases.append(base)

            def written(header: b.BatchHeader, base: int) -> None:
                if header.producer_id >= 0:
                    self._producers.record(header, base)

            self._append_run(new, self._stamp_epoch, written, self._producers.commit_plan)
            return AppendResult(bases[0], self._leo, self._leo - leo_before, sum(len(v) for v, _ in new), duplicates,
                                tuple(bases))

    def _append_run(self, items: Sequence[tuple[memoryview, b.BatchHeader]], epoch: int,
                    written: Callable[[b.BatchHeader, int], None] | None = None,
                    run_written: Callable[[], None] | None = None) -> None:
        """Write validated batches back to back at the LEO: one headroom check (the index step the run may
        need included), one pwritev per APPEND_RUN_IOV_BATCHES batches, then each batch's bookkeeping and
        `run_written()` (or, without it, `written(header, base)` per batch). A run that must roll the
        segment goes batch by batch instead, `written` after each. A failed write cuts the log back to where the run began: none
        of it is in the log."""
        if not items:
            return
        seg = self._active
        writer = seg.writer
        total = sum(len(v) for v, _ in items)
        if len(items) == 1 or writer is None or seg.size + total > self.config.segment_max_bytes:
            for view, header in items:
                base = self._leo
                self._append_one(view, header, epoch)
                if written is not None:
                    written(header, base)
            return
        self._refuse_if_failed()
        entries = min(len(items), total // max(1, writer.interval_bytes) + 1)     # at most this many added
        prealloc = writer.reserve_bytes(entries)
        self._check_writable(total + prealloc)
        if prealloc:
            self._guarded("preallocate", lambda: writer.preallocate(entries), cut_to=None)
            if self.guard is not None:
                self.guard.charge(prealloc)
        if writer.pending() >= d.INDEX_FLUSH_ENTRIES:
            self._guarded("index write", writer.flush_entries, cut_to=None)
        start = pos = seg.size
        base = self._leo
        placed: list[tuple[int, int]] = []            # (base offset, batch bytes)
        iov: list[bytes | memoryview] = []
        for view, header in items:
            if epoch >= 0:
                iov += (b.encode_preamble_epoch(base, header.batch_len, epoch), view[16:])
            else:
                iov += (b.encode_base_offset(base), view[8:])
            placed.append((base, len(view)))
            base += header.last_offset_delta + 1
        fd = seg.handle.fd
        during = "write"
        try:
            step = 2 * d.APPEND_RUN_IOV_BATCHES
            for lo in range(0, len(iov), step):
                chunk = iov[lo:lo + step]
                self.io.pwritev(fd, chunk, pos)
                pos += sum(map(len, chunk))
            if self._every_batch:
                during = "fsync"
                self.io.fdatasync(fd)
        except OSError as err:
            raise self._recover(err, during, cut_to=start) from err
        position = start
        for (offset, n), (_, header) in zip(placed, items, strict=True):
            writer.commit(offset - seg.base, position, n)
            position += n
            if written is not None and run_written is None:
                written(header, offset)
        if run_written is not None:
            run_written()
        seg.size = pos
        self._leo = base
        seg.end_offset = base
        if self.guard is not None:
            self.guard.charge(total)
        if self.hw_follows_leo:
            self._hw = base
            self._hw_dirty = True
        self._write_succeeded()

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
