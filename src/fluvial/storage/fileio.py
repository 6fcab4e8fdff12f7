"""The one door storage uses to reach the disk, so that tests can inject real OS errors.

`FileIO` is the real thing: thin wrappers over `os`. `FaultyFileIO` is the same with a `FaultPlan` that
raises genuine `OSError`s (ENOSPC after N bytes, EIO on fsync/read/write, slow writes) at the point the
kernel would. Everything else in `fluvial.storage` receives one of these; nothing calls `os` directly
for file contents.
"""

from __future__ import annotations

import contextlib
import errno
import os
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple

Buffer = bytes | bytearray | memoryview


class FsUsage(NamedTuple):
    total_bytes: int
    free_bytes: int
    total_inodes: int = 0      # 0: the filesystem has no inode limit
    free_inodes: int = 0


class FileIO:
    """Real file I/O. Short writes are completed here; errors surface as `OSError`."""

    def open(self, path: str, flags: int, mode: int = 0o644) -> int:
        return os.open(path, flags | os.O_CLOEXEC, mode)

    def close(self, fd: int) -> None:
        os.close(fd)

    def pwritev(self, fd: int, buffers: Sequence[Buffer], offset: int) -> None:
        """Write all buffers at `offset`; loops over short writes."""
        total = sum(map(len, buffers))
        done = os.pwritev(fd, buffers, offset)
        if done == total:
            return
        data = b"".join(bytes(x) for x in buffers)
        while done < total:
            done += os.pwrite(fd, data[done:], offset + done)

    def pwrite(self, fd: int, data: Buffer, offset: int) -> None:
        self.pwritev(fd, (data,), offset)

    def pread(self, fd: int, size: int, offset: int) -> bytes:
        return os.pread(fd, size, offset)

    def fsync(self, fd: int) -> None:
        os.fsync(fd)

    def fdatasync(self, fd: int) -> None:
        os.fdatasync(fd)

    def ftruncate(self, fd: int, size: int) -> None:
        os.ftruncate(fd, size)

    def fallocate(self, fd: int, offset: int, length: int) -> None:
        """Reserve blocks. Raises ENOSPC when the filesystem cannot give them."""
        os.posix_fallocate(fd, offset, length)

    def fsize(self, fd: int) -> int:
        return os.fstat(fd).st_size

    def stat_size(self, path: str) -> int:
        return os.stat(path).st_size

    def mtime(self, path: str) -> float:
        return os.stat(path).st_mtime

    def unlink(self, path: str) -> None:
        os.unlink(path)

    def listdir(self, path: str) -> list[str]:
        return os.listdir(path)

    def makedirs(self, path: str) -> None:
        os.makedirs(path, exist_ok=True)

    def fsync_dir(self, path: str) -> None:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    def usage(self, path: str) -> FsUsage:
        st = os.statvfs(path)
        return FsUsage(st.f_blocks * st.f_frsize, st.f_bavail * st.f_frsize, st.f_files, st.f_favail)


@dataclass
class FaultPlan:
    """What `FaultyFileIO` should break. Tests change it while storage runs."""

    enospc_after_bytes: int | None = None     # writes beyond this many bytes fail with ENOSPC (partially written)
    enospc_errno: int = errno.ENOSPC          # or errno.EDQUOT
    eio_on_write: bool = False
    eio_on_fsync: bool = False
    eio_on_read: bool = False
    erofs_on_write: bool = False
    fail_fallocate: int | None = None         # errno to raise from fallocate
    fail_write: int | None = None             # errno to raise from every write (nothing written)
    fail_fsync_dir: int | None = None         # errno to raise from directory fsyncs only
    fail_makedirs: int | None = None          # errno to raise from makedirs (nothing created)
    write_delay_seconds: float = 0.0
    usage: FsUsage | None = None              # what statvfs reports (None: the real filesystem's answer)


class FaultyFileIO(FileIO):
    """`FileIO` whose calls fail as a sick disk would, per its `FaultPlan`."""

    def __init__(self, plan: FaultPlan | None = None) -> None:
        self.plan = plan or FaultPlan()
        self.bytes_written = 0
        self._lock = threading.Lock()

    def _budget(self, want: int) -> int:
        """How many of `want` bytes may be written before ENOSPC."""
        limit = self.plan.enospc_after_bytes
        if limit is None:
            return want
        return max(0, min(want, limit - self.bytes_written))

    def pwritev(self, fd: int, buffers: Sequence[Buffer], offset: int) -> None:
        plan = self.plan
        if plan.write_delay_seconds:
            time.sleep(plan.write_delay_seconds)
        if plan.eio_on_write:
            raise OSError(errno.EIO, os.strerror(errno.EIO))
        if plan.erofs_on_write:
            raise OSError(errno.EROFS, os.strerror(errno.EROFS))
        if plan.fail_write is not None:
            raise OSError(plan.fail_write, os.strerror(plan.fail_write))
        data = b"".join(bytes(x) for x in buffers)
        with self._lock:
            allowed = self._budget(len(data))
            self.bytes_written += allowed
        if allowed:
            super().pwritev(fd, (data[:allowed],), offset)
        if allowed < len(data):
            raise OSError(plan.enospc_errno, os.strerror(plan.enospc_errno))

    def fallocate(self, fd: int, offset: int, length: int) -> None:
        if self.plan.fail_fallocate is not None:
            raise OSError(self.plan.fail_fallocate, os.strerror(self.plan.fail_fallocate))
        with self._lock:
            if self._budget(length) < length:
                raise OSError(self.plan.enospc_errno, os.strerror(self.plan.enospc_errno))
            self.bytes_written += length
        super().fallocate(fd, offset, length)

    def fsync(self, fd: int) -> None:
        if self.plan.eio_on_fsync:
            raise OSError(errno.EIO, os.strerror(errno.EIO))
        super().fsync(fd)

    def fdatasync(self, fd: int) -> None:
        if self.plan.eio_on_fsync:
            raise OSError(errno.EIO, os.strerror(errno.EIO))
        super().fdatasync(fd)

    def fsync_dir(self, path: str) -> None:
        if self.plan.eio_on_fsync:
            raise OSError(errno.EIO, os.strerror(errno.EIO))
        if self.plan.fail_fsync_dir is not None:
            raise OSError(self.plan.fail_fsync_dir, os.strerror(self.plan.fail_fsync_dir))
        super().fsync_dir(path)

    def makedirs(self, path: str) -> None:
        if self.plan.fail_makedirs is not None and not os.path.isdir(path):
            raise OSError(self.plan.fail_makedirs, os.strerror(self.plan.fail_makedirs), path)
        super().makedirs(path)

    def usage(self, path: str) -> FsUsage:
        if self.plan.usage is not None:
            return self.plan.usage
        return super().usage(path)

    def pread(self, fd: int, size: int, offset: int) -> bytes:
        if self.plan.eio_on_read:
            raise OSError(errno.EIO, os.strerror(errno.EIO))
        return super().pread(fd, size, offset)


OS_IO = FileIO()


def replace_atomically(io: FileIO, directory: str, path: str, data: bytes) -> None:
    """Replace `path` with `data` so that a crash leaves the old or the new file, never a mix: temp file,
    fdatasync, rename, directory fsync. Raises OSError; a failed attempt leaves the previous file."""
    tmp = path + ".tmp"
    try:
        fd = io.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
        try:
            io.pwrite(fd, data, 0)
            io.fdatasync(fd)
        finally:
            io.close(fd)
        os.replace(tmp, path)
        io.fsync_dir(directory)
    except OSError:
        with contextlib.suppress(OSError):
            io.unlink(tmp)
        raise


class FileHandle:
    """An open file descriptor with a reference-counted lifetime.

    Read slices keep the handle they came from, so a segment removed by retention stays readable for a
    reader already holding a slice, and its fd number is never reused under that reader.
    """

    __slots__ = ("__weakref__", "_closed", "fd", "io", "path")

    def __init__(self, io: FileIO, path: str, flags: int, mode: int = 0o644) -> None:
        self.io = io
        self.path = path
        self.fd = io.open(path, flags, mode)
        self._closed = False

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self.io.close(self.fd)

    def __del__(self) -> None:
        with contextlib.suppress(OSError):
            self.close()
