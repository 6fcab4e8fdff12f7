"""A replica: the segmented log of one partition on one SPU (`reference/fluvio-storage.md`, DESIGN.md §4).

Synchronous file I/O, thread-safe (a lock per replica). The SPU decides how to call it from its event
loop; the background flusher, cleaner and scrub call it from threads.

Failure semantics:
* a batch is validated before anything is written; a bad batch leaves the replica untouched;
* a failed write never leaves a partial batch: the file is cut back to the last good position;
* ENOSPC/EDQUOT (or headroom below the reserve) → state FULL, `StorageFull`; writes resume by themselves
  once the data dir has space again;
* EIO/EROFS/fsync failure/any other OS error → state FAILED, `StorageFailed`; reads of data already
  written continue; a marker file asks for full verification at the next open.

Idempotent producers (batches with `producer_id >= 0`; Fluvio's client sends -1 and takes the plain path,
one int compare): `storage.producers` decides append / duplicate / reject; an exact retry is acknowledged
with its original base offset and not written. The state survives restarts without touching Fluvio's
files: `producers.snapshot` (created before the first such batch is stored, rewritten atomically at each
roll and at close) holds the state below an offset, and open replays the batch headers stored after it.
"""

from __future__ import annotations

import contextlib
import enum
import errno as errno_mod
import itertools
import logging
import os
import threading
import time
from bisect import bisect_right
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from fluvial import defaults as d
from fluvial.errors import (
    CorruptData,
    OffsetBeyondEnd,
    OffsetEvicted,
    ProtocolError,
    StorageFailed,
    StorageFull,
)
from fluvial.protocol import batch as b
from fluvial.statemachine import Listener, StateMachine, Transition
from fluvial.storage.checkpoint import Checkpoint
from fluvial.storage.config import FlushKind, ReplicaConfig
from fluvial.storage.fileio import OS_IO, FileHandle, FileIO
from fluvial.storage.index import index_capacity_bytes
from fluvial.storage.producers import ProducerTable, Verdict, decode_snapshot, encode_snapshot
from fluvial.storage.retention import SegmentStat, segments_to_remove
from fluvial.storage.segment import Segment
from fluvial.storage.space import DirState, SpaceGuard
from fluvial.storage.validator import segment_bases, verify_segment, walk_batches

logger = logging.getLogger(__name__)


class ReplicaState(enum.Enum):
    OK = "ok"
    FULL = "full"
    FAILED = "failed"


SPACE_EXHAUSTED = "space_exhausted"
SPACE_AVAILABLE = "space_available"
IO_FAILED = "io_failed"

REPLICA_TRANSITIONS: dict[tuple[ReplicaState, str], ReplicaState] = {
    (ReplicaState.OK, SPACE_EXHAUSTED): ReplicaState.FULL,
    (ReplicaState.FULL, SPACE_AVAILABLE): ReplicaState.OK,
    (ReplicaState.OK, IO_FAILED): ReplicaState.FAILED,
    (ReplicaState.FULL, IO_FAILED): ReplicaState.FAILED,
}

# errno values that mean "no space": transient. Anything else while writing is persistent.
SPACE_ERRNOS = frozenset({errno_mod.ENOSPC, errno_mod.EDQUOT})


def classify_os_error(err: OSError, during: str) -> str:
    """Pure: SPACE_EXHAUSTED or IO_FAILED for an OS error raised while doing `during`.
    A failed fsync is always persistent: its pages may be gone, so it is never retried."""
    if during != "fsync" and err.errno in SPACE_ERRNOS:
        return SPACE_EXHAUSTED
    return IO_FAILED


def stored_headers(io: FileIO, fd: int, start: int, end: int, path: str = "") -> Iterator[b.BatchHeader]:
    """The headers of the batches stored in [start, end), read in chunks (bodies are skipped over)."""
    buf = b""
    buf_at = pos = start
    while pos < end:
        rel = pos - buf_at
        if rel + b.HEADER_TOTAL_BYTES > len(buf):
            buf = io.pread(fd, min(max(d.SCAN_CHUNK_BYTES, b.HEADER_TOTAL_BYTES), end - pos), pos)
            buf_at, rel = pos, 0
            if len(buf) < b.HEADER_TOTAL_BYTES:
                raise CorruptData(path, pos, f"truncated batch header ({end - pos} bytes left)")
        h = b.decode_header(buf, rel)
        if h.batch_len < b.HEADER_BYTES or h.magic != b.MAGIC:
            raise CorruptData(path, pos, f"no batch header here (batch_len {h.batch_len}, magic {h.magic})")
        yield h
        pos += h.total_bytes


class Isolation(enum.Enum):
    READ_UNCOMMITTED = 0    # up to LEO
    READ_COMMITTED = 1      # up to HW


@dataclass(frozen=True)
class FileSlice:
    """Whole batches, as stored, ready to be sent (`os.sendfile(sock, slice.fd, position, length)`)."""

    handle: FileHandle | None
    position: int
    length: int

    @property
    def fd(self) -> int:
        assert self.handle is not None
        return self.handle.fd

    def read(self) -> bytes:
        if not self.length:
            return b""
        assert self.handle is not None
        data = self.handle.io.pread(self.handle.fd, self.length, self.position)
        if len(data) != self.length:
            raise CorruptData(self.handle.path, self.position + len(data), "file shorter than its recorded size")
        return data


EMPTY_SLICE = FileSlice(None, 0, 0)


@dataclass(frozen=True)
class ReadResult:
    log_start: int
    hw: int
    leo: int
    slice: FileSlice


@dataclass(frozen=True)
class AppendResult:
    base_offset: int             # of the first batch (for an exact retry: what the first attempt was given)
    leo: int
    records: int = 0             # records written by this call
    bytes: int = 0               # batch bytes written by this call
    duplicate_batches: int = 0   # exact retries of an idempotent producer's batches: acknowledged, not written


class Replica:
    """Open with `Replica.open(directory, config, ...)`."""

    def __init__(self, directory: str, config: ReplicaConfig, io: FileIO, guard: SpaceGuard | None,
                 name: str, clock: Callable[[], float]) -> None:
        self.directory = directory
        self.config = config
        self.io = io
        self.guard = guard
        self.name = name
        self._clock = clock
        self._lock = threading.RLock()
        self._machine = StateMachine("replica", name, REPLICA_TRANSITIONS, ReplicaState.OK)
        self._sealed: list[Segment] = []
        self._sealed_bases: list[int] = []
        self._active: Segment
        self._checkpoint: Checkpoint
        self._hw = 0
        self._leo = 0
        self._hw_dirty = False
        self._unsynced: list[FileHandle] = []     # sealed logs written since their last fsync
        self._dir_dirty = False
        self._index_capacity = index_capacity_bytes(config.segment_max_bytes, config.index_max_interval_bytes)
        self._batch_limit, self._batch_limit_name = config.batch_limit
        self._every_batch = config.flush.kind is FlushKind.FSYNC_EVERY_BATCH
        self.hw_follows_leo = True                # False once the replica has followers: HW set by caller
        self.closed = False
        self._last_error: str | None = None       # why the replica is FULL or FAILED
        self._producers = ProducerTable()         # idempotent producers (producer_id >= 0)
        self._snapshot_path = os.path.join(directory, d.PRODUCER_SNAPSHOT_FILE)
        self._has_snapshot = False                # no snapshot file: no idempotent batch was ever stored

    # ============================================================================================ open

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
    ) -> Replica:
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
        if verify_all:
            self._verify_all_sealed()
            io.unlink(marker)
        self._load_producers()
        logger.info("replica_open replica=%s dir=%s segments=%d log_start=%d hw=%d leo=%d", self.name,
                    directory, len(self._sealed) + 1, self.log_start, self._hw, self._leo)
        return self

    def _create_first_segment(self, cap: int, interval: int) -> Segment:
        try:
            seg = Segment.create(self.io, self.directory, 0, cap, interval)
        except OSError as e:
            if e.errno not in SPACE_ERRNOS:
                raise
        else:
            if self.guard is not None:
                self.guard.charge(cap)  # the preallocated index, as a roll does
            return seg
        # No room even for an index: start anyway, FULL; the index is preallocated before the first write.
        seg = Segment.create(self.io, self.directory, 0, 0, interval)
        seg.writer.capacity_bytes = cap  # type: ignore[union-attr]
        seg.writer.preallocated = False  # type: ignore[union-attr]
        self._machine.fire(SPACE_EXHAUSTED, cause="no space for the first index")
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

    def _load_producers(self) -> None:
        """Rebuild the idempotent producers' state: the snapshot (state below its offset), then the batch
        headers stored after it. No snapshot file: no idempotent batch was ever stored, nothing to read."""
        raw = self._read_snapshot()
        if raw is None:
            return
        self._has_snapshot = True
        start = self._active.base
        try:
            offset, entries = decode_snapshot(raw)
        except ProtocolError as e:
            logger.warning("producer_snapshot_unreadable replica=%s error=%s replay_from=%d", self.name, e, start)
        else:
            if offset <= self._leo:
                self._producers.entries = entries
                start = offset
            else:   # the log lost batches the snapshot had seen: trust only what is stored
                logger.warning("producer_snapshot_ahead replica=%s snapshot_offset=%d leo=%d replay_from=%d",
                               self.name, offset, self._leo, start)
        start = max(start, self.log_start)
        try:
            self._replay_producers(start)
        except CorruptData as e:
            logger.warning("producer_replay_stopped replica=%s file=%s position=%d reason=%r", self.name, e.path,
                           e.position, e.reason)
        logger.info("producers_loaded replica=%s producers=%d replayed_from=%d leo=%d", self.name,
                    len(self._producers), start, self._leo)

    def _read_snapshot(self) -> bytes | None:
        try:
            fd = self.io.open(self._snapshot_path, os.O_RDONLY)
        except FileNotFoundError:
            return None
        try:
            return self.io.pread(fd, self.io.fsize(fd), 0)
        finally:
            self.io.close(fd)

    def _replay_producers(self, start: int) -> None:
        """Record every idempotent batch stored at or after offset `start`."""
        for seg in [*self._sealed, self._active]:
            if seg.end_offset <= start or not seg.size:
                continue
            pos = seg.find_position(start) if seg.base < start else 0
            end = seg.size if seg.corrupt_at is None else min(seg.size, seg.corrupt_at)
            for h in stored_headers(self.io, seg.handle.fd, pos, end, seg.log_path):
                if h.producer_id >= 0 and h.base_offset >= start:
                    self._producers.record(h, h.base_offset)

    def _write_producer_snapshot(self, offset: int) -> None:
        """Atomically replace the snapshot with the state as of `offset`: temp file, fdatasync, rename,
        directory fsync. Raises OSError (a failed attempt leaves the previous snapshot in place)."""
        data = encode_snapshot(offset, self._producers.entries.items())
        tmp = self._snapshot_path + ".tmp"
        try:
            fd = self.io.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
            try:
                self.io.pwrite(fd, data, 0)
                self.io.fdatasync(fd)
            finally:
                self.io.close(fd)
            os.replace(tmp, self._snapshot_path)
            self.io.fsync_dir(self.directory)
        except OSError:
            with contextlib.suppress(OSError):
                self.io.unlink(tmp)
            raise
        self._has_snapshot = True
        if self.guard is not None:
            self.guard.charge(len(data))
        logger.debug("producer_snapshot replica=%s offset=%d producers=%d bytes=%d", self.name, offset,
                     len(self._producers), len(data))

    def _snapshot_after_roll(self, offset: int) -> None:
        """Best effort at a roll: on no space the previous snapshot stays valid (open replays from its
        offset, across the sealed segment); any other error is a persistent disk failure."""
        try:
            self._write_producer_snapshot(offset)
        except OSError as err:
            if classify_os_error(err, "snapshot") == IO_FAILED:
                raise self._fail(IO_FAILED, err, "producer snapshot") from err
            logger.warning("producer_snapshot_deferred replica=%s offset=%d error=%r", self.name, offset,
                           err.strerror)

    def _verify_all_sealed(self) -> None:
        for seg in self._sealed:
            report = verify_segment(self.io, self.directory, seg.base)
            seg.verified = True
            if report.problems:
                first = report.problems[0]
                seg.corrupt_at = first.position
                logger.error("replica_corrupt replica=%s file=%s position=%d reason=%r", self.name,
                             first.path, first.position, first.reason)

    # ====================================================================================== properties

    @property
    def state(self) -> ReplicaState:
        return self._machine.state  # type: ignore[return-value]

    @property
    def last_error(self) -> str | None:
        """Why the replica is FULL or FAILED (None while it is OK)."""
        return None if self._machine.state is ReplicaState.OK else self._last_error

    def producer_state(self, producer_id: int) -> tuple[int, int] | None:
        """(epoch, last sequence) of an idempotent producer, if this replica knows it."""
        with self._lock:
            entry = self._producers.get(producer_id)
        return None if entry is None else (entry.epoch, entry.last_sequence)

    def add_listener(self, listener: Listener) -> None:
        self._machine.add_listener(listener)

    @property
    def leo(self) -> int:
        return self._leo

    @property
    def hw(self) -> int:
        return self._hw

    @property
    def log_start(self) -> int:
        return self._sealed[0].base if self._sealed else self._active.base

    @property
    def active_base(self) -> int:
        return self._active.base

    def segment_count(self) -> int:
        return len(self._sealed) + 1

    def size_bytes(self) -> int:
        """Fluvio's replica size: sealed logs + their indexes + active log + used active index."""
        with self._lock:
            total = self._active.size + self._active.index_bytes()
            for seg in self._sealed:
                total += seg.size + seg.index_bytes()
            return total

    def set_hw(self, hw: int) -> None:
        """Set the high watermark (replication); clamped to [log start, LEO]."""
        with self._lock:
            hw = max(self.log_start, min(hw, self._leo))
            if hw != self._hw:
                self._hw = hw
                self._hw_dirty = True

    # ========================================================================================= append

    def append(self, batch: bytes | bytearray | memoryview) -> AppendResult:
        """Validate and append one batch; its base offset is the current LEO."""
        view = memoryview(batch)
        header = b.validate_batch(view, self._batch_limit, self._batch_limit_name)
        if header.producer_id >= 0:
            return self._append_idempotent([view], [header])
        with self._lock:
            base = self._leo
            self._append_one(view, header)
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
                self._append_one(view, header)
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
                    self._append_one(view, header)
                    size += len(view)
                    if header.producer_id >= 0:
                        self._producers.record(header, base)
                if first is None:
                    first = base
            assert first is not None
            return AppendResult(first, self._leo, self._leo - leo_before, size, duplicates)

    def _check_writable(self, nbytes: int, *, force_refresh: bool = False) -> None:
        state = self._machine.state
        if state is ReplicaState.FAILED:
            raise StorageFailed(f"replica {self.name} failed after a persistent I/O error; it takes no writes "
                                f"until the SPU restarts and verifies it", replica=self.name, data_dir=self.directory)
        if self.guard is not None:
            try:
                self.guard.check(nbytes, replica=self.name, force_refresh=force_refresh)
            except StorageFull as e:
                self._last_error = str(e)
                self._machine.fire(SPACE_EXHAUSTED, cause="headroom", free_bytes=e.free_bytes,
                                   threshold_bytes=e.threshold_bytes)
                raise
            except StorageFailed as e:
                self._last_error = str(e)
                self._machine.fire(IO_FAILED, cause="data dir failed")
                raise
        if state is ReplicaState.FULL and self.guard is not None:
            self._machine.fire(SPACE_AVAILABLE, cause="space guard has room")

    def _on_space_transition(self, t: Transition) -> None:
        """The data dir left FULL: a FULL replica takes writes again, without waiting for one to try."""
        if t.new in (DirState.OK, DirState.LOW) and self._machine.state is ReplicaState.FULL:
            self._machine.fire(SPACE_AVAILABLE, cause=f"data dir {t.new.name}")

    def _append_one(self, view: memoryview, header: b.BatchHeader) -> None:
        n = len(view)
        writer = self._active.writer
        assert writer is not None
        prealloc = 0 if writer.preallocated else writer.capacity_bytes
        self._check_writable(n + prealloc)
        if prealloc:
            self._guarded("preallocate", writer.preallocate, cut_to=None)
            if self.guard is not None:
                self.guard.charge(prealloc)
        if self._active.size + n > self.config.segment_max_bytes:
            self._roll(n)
        seg = self._active
        writer = seg.writer
        assert writer is not None
        base = self._leo
        pos = seg.size
        rel = base - seg.base
        if writer.pending() >= d.INDEX_FLUSH_ENTRIES:
            self._guarded("index write", writer.flush_entries, cut_to=None)
        fd = seg.handle.fd
        during = "write"
        try:
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
        if self._machine.state is ReplicaState.FULL:   # no guard: a write that succeeds proves space
            self._machine.fire(SPACE_AVAILABLE, cause="write succeeded")

    def _guarded(self, during: str, action: Callable[[], object], *, cut_to: int | None) -> object:
        """Run a write-side action; on an OS error restore the last good state and raise a typed error."""
        try:
            return action()
        except OSError as err:
            raise self._recover(err, during, cut_to=cut_to) from err

    def _recover(self, err: OSError, during: str, *, cut_to: int | None) -> StorageFull | StorageFailed:
        """Cut the active log back to `cut_to` (the last good position) and classify the error."""
        kind = classify_os_error(err, during)
        if cut_to is not None:
            try:
                self.io.ftruncate(self._active.handle.fd, cut_to)
            except OSError as cut_err:
                logger.error("replica_truncate_failed replica=%s error=%r", self.name, cut_err)
                kind = IO_FAILED
        return self._fail(kind, err, during)

    def _fail(self, kind: str, err: OSError, during: str) -> StorageFull | StorageFailed:
        if kind == SPACE_EXHAUSTED:
            full = StorageFull(replica=self.name, data_dir=self.directory, cause=os.strerror(err.errno or 0),
                               threshold_bytes=self.guard.reserve_bytes if self.guard else 0)
            self._last_error = f"{during}: {full}"
            if self.guard is not None:
                self.guard.observe_enospc()
            self._machine.fire(SPACE_EXHAUSTED, cause=errno_mod.errorcode.get(err.errno or 0, "?"), during=during)
            return full
        failed = StorageFailed(f"replica {self.name}: {during} failed: {err.strerror}", replica=self.name,
                               data_dir=self.directory, errno=err.errno)
        self._last_error = str(failed)
        if self.guard is not None:
            self.guard.observe_failure(err)
        self._machine.fire(IO_FAILED, errno=err.errno, error=err.strerror, during=during)
        with contextlib.suppress(OSError):
            fd = self.io.open(os.path.join(self.directory, d.FAILED_MARKER_FILE), os.O_WRONLY | os.O_CREAT)
            self.io.close(fd)
        return failed

    # =========================================================================================== roll

    def _roll(self, batch_bytes: int) -> None:
        """New segment first (complete, preallocated), then seal the old one. All or nothing."""
        self._check_writable(self._index_capacity + batch_bytes, force_refresh=True)
        old = self._active
        new = self._guarded("roll", lambda: Segment.create(self.io, self.directory, self._leo, self._index_capacity,
                                                           self.config.index_max_interval_bytes), cut_to=None)
        assert isinstance(new, Segment)
        if self.guard is not None:
            self.guard.charge(self._index_capacity)
        writer = old.writer
        assert writer is not None
        try:
            writer.shrink()
        except OSError as e:  # the unshrunk index is still valid: zero slots end it
            logger.warning("index_shrink_failed replica=%s file=%s error=%r", self.name, writer.path, e)
        old.writer = None
        if self._every_batch:
            self._guarded("fsync", lambda: self.io.fsync_dir(self.directory), cut_to=None)
        else:
            self._unsynced.append(old.handle)
            self._dir_dirty = True
        old.verified = False
        self._sealed.append(old)
        self._sealed_bases.append(old.base)
        self._active = new
        logger.info("segment_roll replica=%s sealed_base=%d new_base=%d", self.name, old.base, new.base)
        if self._has_snapshot:   # producers whose last batch is now sealed stay known after a restart
            self._snapshot_after_roll(new.base)

    # =========================================================================================== read

    def read(self, start: int, max_bytes: int = d.READ_MAX_BYTES,
             isolation: Isolation = Isolation.READ_UNCOMMITTED) -> ReadResult:
        """Whole batches from the one holding `start`, within one segment, up to `max_bytes` (at least
        one batch), ending below HW (committed) or LEO (uncommitted)."""
        with self._lock:
            leo, hw, log_start = self._leo, self._hw, self.log_start
            if start > leo:
                raise OffsetBeyondEnd(start, leo)
            if start < log_start:
                raise OffsetEvicted(start, log_start)
            upper = hw if isolation is Isolation.READ_COMMITTED else leo
            if start >= upper:
                return ReadResult(log_start, hw, leo, EMPTY_SLICE)
            seg = self._segment_for(start)
            size = seg.size
        pos = seg.find_position(start)
        end = size if upper >= seg.end_offset else seg.find_position(upper)
        if seg.corrupt_at is not None:
            if pos >= seg.corrupt_at:
                raise CorruptData(seg.log_path, seg.corrupt_at, "segment failed verification here", replica=self.name)
            end = min(end, seg.corrupt_at)
        if end - pos > max_bytes:
            end = seg.boundary_at_or_before(pos, pos + max_bytes)
        return ReadResult(log_start, hw, leo, FileSlice(seg.handle, pos, end - pos))

    def _segment_for(self, offset: int) -> Segment:
        if offset >= self._active.base:
            return self._active
        i = bisect_right(self._sealed_bases, offset) - 1
        seg = self._sealed[i]
        while seg.end_offset <= offset:  # empty segments left by an interrupted roll
            i += 1
            seg = self._sealed[i] if i < len(self._sealed) else self._active
        return seg

    # ========================================================================= durability & retention

    def sync(self) -> None:
        """fsync what was written since the last sync: logs, directory, the HW checkpoint."""
        with self._lock:
            if self.closed or self._machine.state is ReplicaState.FAILED:
                return  # never retry an fsync: a FAILED replica's unsynced pages are not trusted
            writer = self._active.writer
            if writer is not None and writer.pending():
                self._guarded("index write", writer.flush_entries, cut_to=None)
            handles = [*self._unsynced, self._active.handle]
            self._unsynced = []
            dir_dirty, self._dir_dirty = self._dir_dirty, False
            hw, hw_dirty = self._hw, self._hw_dirty
            self._hw_dirty = False
        try:
            for h in handles:
                self.io.fdatasync(h.fd)
            if dir_dirty:
                self.io.fsync_dir(self.directory)
        except OSError as err:
            with self._lock:
                raise self._fail(IO_FAILED, err, "fsync") from err
        if hw_dirty:
            try:
                self._checkpoint.store(hw)
                self._checkpoint.sync()
            except OSError as err:
                with self._lock:
                    self._hw_dirty = True
                    if classify_os_error(err, "checkpoint") == IO_FAILED:
                        raise self._fail(IO_FAILED, err, "checkpoint") from err
                    logger.warning("checkpoint_deferred replica=%s error=%r", self.name, err.strerror)

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
        logger.info("retention replica=%s removed_segments=%d freed_bytes=%d log_start=%d", self.name, count,
                    freed, self.log_start)
        if self.guard is not None:
            self.guard.charge(-freed)
        return count

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

    # ========================================================================================== close

    def close(self) -> None:
        if self.closed:
            return
        with contextlib.suppress(StorageFailed):
            self.sync()
        if self.guard is not None:
            self.guard.remove_listener(self._on_space_transition)
        with self._lock:
            if self._has_snapshot and self._machine.state is not ReplicaState.FAILED:
                try:   # the next open replays nothing
                    self._write_producer_snapshot(self._leo)
                except OSError as err:
                    logger.warning("producer_snapshot_deferred replica=%s offset=%d error=%r", self.name,
                                   self._leo, err.strerror)
            self.closed = True
            for seg in [*self._sealed, self._active]:
                seg.close()
            self._checkpoint.close()

    def __enter__(self) -> Replica:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
