"""`replication.chk`: the high watermark, 8 bytes big-endian, at offset 0 (`fluvio-storage.md` §10)."""

from __future__ import annotations

import os
import struct

from fluvial.storage.fileio import FileHandle, FileIO

_HW = struct.Struct(">q")


class Checkpoint:
    def __init__(self, io: FileIO, path: str) -> None:
        self.io = io
        self.path = path
        self.handle = FileHandle(io, path, os.O_RDWR | os.O_CREAT)

    def load(self) -> int | None:
        """The stored HW, or None when the file is new or not exactly 8 bytes."""
        raw = self.io.pread(self.handle.fd, _HW.size + 1, 0)
        if len(raw) != _HW.size:
            return None
        return _HW.unpack(raw)[0]

    def store(self, hw: int) -> None:
        self.io.pwrite(self.handle.fd, _HW.pack(hw), 0)

    def sync(self) -> None:
        self.io.fdatasync(self.handle.fd)

    def close(self) -> None:
        self.handle.close()
