"""Reading: whole batches as stored, within one segment, as a `FileSlice` ready for `os.sendfile`."""

from __future__ import annotations

import enum
from bisect import bisect_right
from dataclasses import dataclass
from typing import overload

from fluvial import defaults as d
from fluvial.errors import CorruptData, OffsetBeyondEnd, OffsetEvicted
from fluvial.storage.fileio import FileHandle
from fluvial.storage.replica.base import ReplicaBase
from fluvial.storage.segment import Segment


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


class ReplicaRead(ReplicaBase):
    @overload
    def read(self, start: int, max_bytes: int = ..., isolation: Isolation = ...) -> ReadResult: ...

    @overload
    def read(self, start: int, max_bytes: int = ..., isolation: Isolation = ..., *,
             wait: bool) -> ReadResult | None: ...

    def read(self, start: int, max_bytes: int = d.READ_MAX_BYTES,
             isolation: Isolation = Isolation.READ_UNCOMMITTED, *, wait: bool = True) -> ReadResult | None:
        """Whole batches from the one holding `start`, within one segment, up to `max_bytes` (at least
        one batch), ending below HW (committed) or LEO (uncommitted). `wait=False`: None at once when a
        writer holds the replica (e.g. a write stalled on the disk), so an event loop never blocks."""
        if not self._lock.acquire(blocking=wait):
            return None
        try:
            view = self._view(start, isolation)
        finally:
            self._lock.release()
        if isinstance(view, ReadResult):
            return view
        return self._slice(*view, max_bytes)   # file reads need no lock: bytes below `size` never change

    def _view(self, start: int, isolation: Isolation) -> ReadResult | tuple[Segment, int, int, int, int, int, int]:
        """Under the lock: the offsets, the segment holding `start` and its size (or an empty result)."""
        leo, hw, log_start = self._leo, self._hw, self.log_start
        if start > leo:
            raise OffsetBeyondEnd(start, leo)
        if start < log_start:
            raise OffsetEvicted(start, log_start)
        upper = hw if isolation is Isolation.READ_COMMITTED else leo
        if start >= upper:
            return ReadResult(log_start, hw, leo, EMPTY_SLICE)
        seg = self._segment_for(start)
        return seg, start, seg.size, upper, log_start, hw, leo

    def _slice(self, seg: Segment, start: int, size: int, upper: int, log_start: int, hw: int, leo: int,
               max_bytes: int) -> ReadResult:
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
