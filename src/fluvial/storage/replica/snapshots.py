"""Idempotent producers' state across restarts: `producers.snapshot` (the state below an offset, written
atomically) and the replay of the batch headers stored after it (`storage.producers` decides)."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator

from fluvial import defaults as d
from fluvial.errors import CorruptData, ProtocolError, errno_name
from fluvial.observability.ratelimit import StateLog
from fluvial.protocol import batch as b
from fluvial.storage.fileio import FileIO, replace_atomically
from fluvial.storage.producers import decode_snapshot, encode_snapshot
from fluvial.storage.replica.health import ReplicaHealth
from fluvial.storage.replica.state import IO_FAILED, ReplicaState, classify_os_error

logger = logging.getLogger("fluvial.storage.replica")
periodic = StateLog(logger)


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


class ProducerSnapshots(ReplicaHealth):
    def _load_producers(self) -> None:
        """Rebuild the idempotent producers' state: the snapshot (state below its offset), then the batch
        headers stored after it. No snapshot file: no idempotent batch was ever stored, nothing to read."""
        self._load_producers_from(self._active.base)

    def _load_producers_from(self, fallback: int) -> None:
        """As `_load_producers`; a snapshot that is unreadable or ahead of the log replays from `fallback`."""
        raw = self._read_snapshot()
        if raw is None:
            return
        self._has_snapshot = True
        start = fallback
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
        replace_atomically(self.io, self.directory, self._snapshot_path, data)
        self._has_snapshot = True
        if self.guard is not None:
            self.guard.charge(len(data))
        logger.debug("producer_snapshot replica=%s offset=%d producers=%d bytes=%d", self.name, offset,
                     len(self._producers), len(data))

    def _snapshot_after_roll(self, offset: int) -> None:
        """Best effort at a roll: on no space the previous snapshot stays valid (open replays from its
        offset, across the sealed segment); any other error is a persistent disk failure."""
        key = f"producer_snapshot:{self.name}"
        try:
            self._write_producer_snapshot(offset)
        except OSError as err:
            if classify_os_error(err, "snapshot") == IO_FAILED:
                raise self._fail(IO_FAILED, err, "producer snapshot") from err
            periodic.enter(key, errno_name(err.errno), logging.WARNING,
                           "producer_snapshot_deferred replica=%s offset=%d error=%r (logged once until it succeeds)",
                           self.name, offset, err.strerror)
        else:
            periodic.leave(key, "producer_snapshot_resumed replica=%s offset=%d", self.name, offset)

    def _snapshot_at_close(self) -> None:
        """Called under the lock at close: the next open replays nothing."""
        if self._has_snapshot and self._machine.state is not ReplicaState.FAILED:
            try:
                self._write_producer_snapshot(self._leo)
            except OSError as err:
                periodic.enter(f"producer_snapshot:{self.name}", errno_name(err.errno), logging.WARNING,
                               "producer_snapshot_deferred replica=%s offset=%d error=%r", self.name, self._leo,
                               err.strerror)
