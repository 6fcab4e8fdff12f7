"""One segment: a `.log` of batches and its sparse `.index` (`reference/fluvio-storage.md` §3–4).

A sealed segment opens without reading its log: its end offset is the next segment's base offset, its
index is loaded on the first read. The active segment owns an `ActiveIndex` and is the only one written.
"""

from __future__ import annotations

import contextlib
import os

from fluvial import defaults as d
from fluvial.errors import CorruptData
from fluvial.storage.fileio import FileHandle, FileIO
from fluvial.storage.index import ActiveIndex, IndexEntries, parse_index
from fluvial.storage.validator import index_name, log_name, walk_batches


class Segment:
    def __init__(self, io: FileIO, directory: str, base: int, *, size: int, end_offset: int) -> None:
        self.io = io
        self.directory = directory
        self.base = base
        self.size = size                    # bytes of whole batches
        self.end_offset = end_offset        # exclusive: LEO for the active segment
        self.log_path = os.path.join(directory, log_name(base))
        self.index_path = os.path.join(directory, index_name(base))
        self.writer: ActiveIndex | None = None
        self.corrupt_at: int | None = None  # first byte found corrupt by the scrub, if any
        self.verified = False
        self._handle: FileHandle | None = None
        self._entries: IndexEntries | None = None

    # ---------------------------------------------------------------------------------- construction

    @classmethod
    def create(cls, io: FileIO, directory: str, base: int, index_capacity: int, interval: int) -> Segment:
        """A new, empty active segment whose index is fully preallocated. On failure nothing is left."""
        seg = cls(io, directory, base, size=0, end_offset=base)
        try:
            seg._handle = FileHandle(io, seg.log_path, os.O_RDWR | os.O_CREAT | os.O_TRUNC)
            with contextlib.suppress(FileNotFoundError):
                io.unlink(seg.index_path)
            seg.writer = ActiveIndex(io, seg.index_path, index_capacity, IndexEntries(), interval)
            seg._entries = seg.writer.entries
            seg.writer.preallocate()
        except OSError:
            seg.discard()
            raise
        seg.verified = True
        return seg

    @classmethod
    def open_active(cls, io: FileIO, directory: str, base: int, index_capacity: int, interval: int) -> Segment:
        seg = cls(io, directory, base, size=0, end_offset=base)
        seg._handle = FileHandle(io, seg.log_path, os.O_RDWR)
        seg.size = io.fsize(seg._handle.fd)
        raw = b""
        with contextlib.suppress(FileNotFoundError):
            raw = io.stat_size(seg.index_path) and _read_all(io, seg.index_path)
        seg.writer = ActiveIndex(io, seg.index_path, index_capacity, parse_index(raw or b"", seg.size), interval)
        seg._entries = seg.writer.entries
        return seg

    @classmethod
    def open_sealed(cls, io: FileIO, directory: str, base: int, end_offset: int) -> Segment:
        size = io.stat_size(os.path.join(directory, log_name(base)))
        return cls(io, directory, base, size=size, end_offset=end_offset)

    def discard(self) -> None:
        """Close and remove the files of a segment that never became part of the log."""
        self.close()
        for path in (self.log_path, self.index_path):
            with contextlib.suppress(OSError):
                self.io.unlink(path)

    # ---------------------------------------------------------------------------------------- access

    @property
    def handle(self) -> FileHandle:
        if self._handle is None:
            self._handle = FileHandle(self.io, self.log_path, os.O_RDONLY)
        return self._handle

    @property
    def entries(self) -> IndexEntries:
        if self._entries is None:
            try:
                raw = _read_all(self.io, self.index_path)
            except FileNotFoundError:
                raw = b""
            self._entries = parse_index(raw, self.size)
        return self._entries

    def index_bytes(self) -> int:
        writer = self.writer          # read once: a roll may unset it meanwhile (size_bytes takes no lock)
        if writer is not None:
            return writer.used_bytes()
        try:
            return self.io.stat_size(self.index_path)
        except FileNotFoundError:
            return 0

    def find_position(self, offset: int) -> int:
        """Byte position of the batch holding `offset` (base <= offset < end_offset)."""
        rel, pos = self.entries.floor_by_offset(offset - self.base)
        for bpos, base, _total, lod in walk_batches(self.io, self.handle.fd, pos, self.size,
                                                    expected_offset=self.base + rel, path=self.log_path,
                                                    chunk_bytes=d.LOOKUP_CHUNK_BYTES):
            if base + lod >= offset:
                return bpos
        raise CorruptData(self.log_path, self.size, f"offset {offset} not found before the end of the segment")

    def boundary_at_or_before(self, start: int, limit: int) -> int:
        """End of the last whole batch that starts at or after `start` and ends at or before `limit`;
        if even the first batch ends after `limit`, the end of that first batch."""
        rel, pos = self.entries.floor_by_position(limit)
        expected: int | None = self.base + rel
        if pos < start:
            pos, expected = start, None
        end = None
        for bpos, _base, total, _lod in walk_batches(self.io, self.handle.fd, pos, self.size,
                                                     expected_offset=expected, path=self.log_path,
                                                     chunk_bytes=d.LOOKUP_CHUNK_BYTES):
            stop = bpos + total
            if stop > limit:
                return end if end is not None else (stop if bpos == start else bpos)
            end = stop
        return end if end is not None else pos

    def close(self) -> None:
        if self.writer is not None:
            self.writer.handle.close()
        if self._handle is not None:
            self._handle.close()


def _read_all(io: FileIO, path: str) -> bytes:
    fd = io.open(path, os.O_RDONLY)
    try:
        return io.pread(fd, io.fsize(fd), 0)
    finally:
        io.close(fd)
