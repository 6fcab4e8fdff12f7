"""Durability: the background fsync of what was written since the last sync (logs, directory, the HW
checkpoint). A failed fsync is never retried: the replica goes FAILED."""

from __future__ import annotations

import logging

from fluvial.errors import errno_name
from fluvial.observability.ratelimit import StateLog
from fluvial.storage.replica.health import ReplicaHealth
from fluvial.storage.replica.state import IO_FAILED, ReplicaState, classify_os_error

logger = logging.getLogger("fluvial.storage.replica")
periodic = StateLog(logger)   # what a periodic task cannot write: once per state, not per pass


class ReplicaDurability(ReplicaHealth):
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
            key = f"checkpoint:{self.name}"
            try:
                self._checkpoint.store(hw)
                self._checkpoint.sync()
            except OSError as err:
                with self._lock:
                    self._hw_dirty = True
                    if classify_os_error(err, "checkpoint") == IO_FAILED:
                        raise self._fail(IO_FAILED, err, "checkpoint") from err
                    periodic.enter(key, errno_name(err.errno), logging.WARNING,
                                   "checkpoint_deferred replica=%s error=%r (logged once until it succeeds)",
                                   self.name, err.strerror)
            else:
                periodic.leave(key, "checkpoint_resumed replica=%s hw=%d", self.name, hw)
