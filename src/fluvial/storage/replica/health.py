"""A replica's health: the only place its state machine fires. The headroom check before a write, the
data dir's transitions, and what an OS error during a write-side action means (cut back, classify,
FULL or FAILED)."""

from __future__ import annotations

import contextlib
import errno as errno_mod
import logging
import os
from collections.abc import Callable
from typing import TypeVar

from fluvial import defaults as d
from fluvial.errors import StorageBusy, StorageFailed, StorageFull, errno_name
from fluvial.observability.ratelimit import RateLimitedLog
from fluvial.statemachine import Transition
from fluvial.storage.replica.base import ReplicaBase
from fluvial.storage.replica.state import (
    IO_FAILED,
    IO_TRANSIENT,
    SPACE_AVAILABLE,
    SPACE_EXHAUSTED,
    ReplicaState,
    classify_os_error,
)
from fluvial.storage.space import DirState

logger = logging.getLogger("fluvial.storage.replica")
T = TypeVar("T")
_transient = RateLimitedLog(logger)


class ReplicaHealth(ReplicaBase):
    """One health model (DESIGN.md §5): with a space guard, a replica is FULL exactly while its data dir
    is FULL (the dir goes FULL on its thresholds or when the kernel refuses a write) and FAILED after a
    persistent error of its own or of its dir. A batch that does not fit the headroom is refused (72)
    and changes nothing. Without a guard, a refused write makes it FULL and the next write that
    succeeds makes it OK."""

    def _failed_error(self) -> StorageFailed:
        return StorageFailed(f"replica {self.name} failed after a persistent I/O error ({self._last_error}); it "
                             f"takes no writes until the SPU restarts and verifies it", replica=self.name,
                             data_dir=self.directory)

    def _refuse_if_failed(self) -> None:
        if self._machine.state is ReplicaState.FAILED:
            raise self._failed_error()

    def refusal(self) -> StorageFull | StorageFailed | None:
        """The error a write would get now, from the replica's and its data dir's state alone (no I/O,
        no lock): lets the SPU answer a FULL or FAILED replica on its event loop, without a thread."""
        if self._machine.state is ReplicaState.FAILED:
            return self._failed_error()
        if self._machine.state is ReplicaState.FULL and self.guard is not None:
            return self.guard.refusal(0, replica=self.name)
        return None

    def _check_writable(self, nbytes: int, *, inodes: int = 0, force_refresh: bool = False) -> None:
        self._refuse_if_failed()
        if self.guard is not None:
            self.guard.check(nbytes, inodes=inodes, replica=self.name, force_refresh=force_refresh)

    def _on_space_transition(self, t: Transition) -> Transition | None:
        """Follow the data dir (quietly: its own line counts the replicas that followed)."""
        return self._follow_dir(t.new)  # type: ignore[arg-type]

    def _follow_dir(self, state: DirState) -> Transition | None:
        if state is DirState.FULL:
            t = self._machine.fire(SPACE_EXHAUSTED, quiet=True, cause="data dir FULL")
            if t is not None and self.guard is not None:
                snap = self.guard.snapshot()
                self._last_error = snap.cause or (f"data dir {snap.data_dir} is FULL: {snap.free_bytes} bytes free, "
                                                  f"writes resume above "
                                                  f"{int(snap.reserve_bytes * d.SPACE_FULL_RELEASE_FACTOR)}")
            return t
        if state is DirState.FAILED:
            t = self._machine.fire(IO_FAILED, quiet=True, cause="data dir FAILED")
            if t is not None:
                self._last_error = (f"data dir {self.guard.data_dir if self.guard else '?'} FAILED after a persistent "
                                    f"I/O error of another replica")
            return t
        return self._machine.fire(SPACE_AVAILABLE, quiet=True, cause=f"data dir {state.name}")

    def _started_full(self, cause: str, err: OSError) -> None:
        """Open found no room (e.g. not even for the first index): start FULL."""
        self._last_error = f"open: {cause}"
        self._machine.fire(SPACE_EXHAUSTED, cause=cause)
        if self.guard is not None:
            self.guard.observe_enospc(err.errno or errno_mod.ENOSPC)

    def _write_succeeded(self) -> None:
        if self.guard is None and self._machine.state is ReplicaState.FULL:   # a write that succeeds proves space
            self._machine.fire(SPACE_AVAILABLE, cause="write succeeded")

    def _guarded(self, during: str, action: Callable[[], T], *, cut_to: int | None) -> T:
        """Run a write-side action; on an OS error restore the last good state and raise a typed error."""
        try:
            return action()
        except OSError as err:
            raise self._recover(err, during, cut_to=cut_to) from err

    def _recover(self, err: OSError, during: str, *, cut_to: int | None) -> StorageFull | StorageFailed | StorageBusy:
        """Cut the active log back to `cut_to` (the last good position) and classify the error."""
        kind = classify_os_error(err, during)
        if cut_to is not None:
            try:
                self.io.ftruncate(self._active.handle.fd, cut_to)
            except OSError as cut_err:
                logger.error("replica_truncate_failed replica=%s error=%r", self.name, cut_err)
                kind = IO_FAILED
        return self._fail(kind, err, during)

    def _fail(self, kind: str, err: OSError, during: str) -> StorageFull | StorageFailed | StorageBusy:
        if kind == IO_TRANSIENT:   # out of descriptors or memory: nothing is wrong with the disk
            _transient.warning(f"storage_transient:{errno_name(err.errno)}:{os.path.dirname(self.directory)}",
                               "storage_transient replica=%s during=%s errno=%s error=%s", self.name, during,
                               errno_name(err.errno), err.strerror)
            return StorageBusy(f"replica {self.name}: {during} refused for now: {err.strerror} "
                               f"({errno_name(err.errno)}); retry", replica=self.name, data_dir=self.directory,
                               errno=err.errno)
        if kind == SPACE_EXHAUSTED:
            full = StorageFull(replica=self.name, data_dir=self.directory, cause=os.strerror(err.errno or 0),
                               threshold_bytes=self.guard.reserve_bytes if self.guard else 0)
            self._last_error = f"{during}: {full}"
            self._machine.fire(SPACE_EXHAUSTED, cause=errno_mod.errorcode.get(err.errno or 0, "?"), during=during)
            if self.guard is not None:   # the whole data dir is FULL: the other replicas follow it
                self.guard.observe_enospc(err.errno or errno_mod.ENOSPC)
            return full
        failed = StorageFailed(f"replica {self.name}: {during} failed: {err.strerror}", replica=self.name,
                               data_dir=self.directory, errno=err.errno)
        self._last_error = str(failed)
        self._machine.fire(IO_FAILED, errno=err.errno, error=err.strerror, during=during)
        if self.guard is not None:
            self.guard.observe_failure(err)
        with contextlib.suppress(OSError):
            fd = self.io.open(os.path.join(self.directory, d.FAILED_MARKER_FILE), os.O_WRONLY | os.O_CREAT)
            self.io.close(fd)
        return failed
