"""A replica's health: the only place its state machine fires. The headroom check before a write, the
data dir's transitions, and what an OS error during a write-side action means (cut back, classify,
FULL or FAILED)."""

from __future__ import annotations

import contextlib
import errno as errno_mod
import logging
import os
from collections.abc import Callable

from fluvial import defaults as d
from fluvial.errors import StorageFailed, StorageFull
from fluvial.statemachine import Transition
from fluvial.storage.replica.base import ReplicaBase
from fluvial.storage.replica.state import (
    IO_FAILED,
    SPACE_AVAILABLE,
    SPACE_EXHAUSTED,
    ReplicaState,
    classify_os_error,
)
from fluvial.storage.space import DirState

logger = logging.getLogger("fluvial.storage.replica")


class ReplicaHealth(ReplicaBase):
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

    def _started_full(self, cause: str) -> None:
        """Open found no room (e.g. not even for the first index): start FULL."""
        self._machine.fire(SPACE_EXHAUSTED, cause=cause)

    def _write_succeeded(self) -> None:
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
