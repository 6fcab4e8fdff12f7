"""All replicas of one SPU data dir: one space guard, and the flusher, cleaner and scrub threads.

This is what an SPU holds: `StorageManager(data_dir, spu_id)` keeps replicas under
`<data_dir>/spu-logs-<spu_id>/<topic>-<partition>/`, runs the flush policy's background fsync, runs
retention every `CLEANING_INTERVAL_SECONDS` and at once when the data dir runs LOW, and scrubs sealed
segments at low priority.
"""

from __future__ import annotations

import logging
import os
import shutil
from collections.abc import Callable
from pathlib import Path

from fluvial import defaults as d
from fluvial.errors import ErrnoClass, errno_class, errno_name
from fluvial.statemachine import Listener
from fluvial.storage.background import Cleaner, Flusher, Scrub, SpacePoller
from fluvial.storage.config import ReplicaConfig
from fluvial.storage.fileio import OS_IO, FileIO
from fluvial.storage.replica import Replica
from fluvial.storage.space import DirState, SpaceGuard

logger = logging.getLogger(__name__)


def parse_replica_name(name: str) -> tuple[str, int] | None:
    """Pure: `<topic>-<partition>` → (topic, partition); topics may contain dashes."""
    topic, sep, part = name.rpartition("-")
    if not sep or not topic or not part.isdigit():
        return None
    return topic, int(part)


class StorageManager:
    def __init__(
        self,
        data_dir: str | Path,
        spu_id: int,
        *,
        io: FileIO = OS_IO,
        reserve_bytes: int | None = None,
        poll_interval_seconds: float = d.SPACE_POLL_INTERVAL_SECONDS,
        cleaning_interval_seconds: float = d.CLEANING_INTERVAL_SECONDS,
        scrub_interval_seconds: float = d.SCRUB_IDLE_SECONDS,
        on_corruption: Callable[[Replica, int, int, str], None] | None = None,
        evict_when_full: bool = False,
        start: bool = True,
    ) -> None:
        self.io = io
        self.base_dir = os.path.join(str(data_dir), f"{d.SPU_LOGS_DIR_PREFIX}{spu_id}")
        self.guard = SpaceGuard(self.base_dir, io=io, reserve_bytes=reserve_bytes,
                                poll_interval_seconds=poll_interval_seconds)
        self.base_dir_error: OSError | None = None
        self.ensure_base_dir()
        self.flusher = Flusher()
        self.cleaner = Cleaner(cleaning_interval_seconds, guard=self.guard, evict_when_full=evict_when_full)
        self.scrub = Scrub(scrub_interval_seconds, on_corruption=on_corruption)
        self.poller = SpacePoller(self.guard, poll_interval_seconds, before_poll=self.ensure_base_dir)
        self.guard.add_listener(self.cleaner.on_space_transition)
        self._replicas: dict[tuple[str, int], Replica] = {}
        self._listeners: list[Listener] = []
        if start:
            for task in (self.flusher, self.cleaner, self.scrub, self.poller):
                task.start()

    def ensure_base_dir(self) -> bool:
        """Create `spu-logs-N` if it is missing. A disk that cannot take it does not stop the SPU: no
        space → the data dir is FULL (held, retried at every poll); a persistent error → FAILED; a
        transient one (EMFILE, ...) → retried at the next poll."""
        try:
            self.io.makedirs(self.base_dir)
        except OSError as err:
            first = self.base_dir_error is None
            self.base_dir_error = err
            kind = errno_class(err.errno, "mkdir")
            if kind is ErrnoClass.SPACE:
                if self.guard.state is not DirState.FULL:
                    self.guard.observe_enospc(err.errno or 0)
            elif kind is ErrnoClass.PERSISTENT:
                self.guard.observe_failure(err)
            if first:
                logger.error("data_dir_unavailable dir=%s errno=%s error=%s state=%s", self.base_dir,
                             errno_name(err.errno), err.strerror, self.guard.state.name)
            return False
        if self.base_dir_error is not None:
            self.base_dir_error = None
            logger.info("data_dir_created dir=%s", self.base_dir)
            self.guard.refresh()
        return True

    def add_replica_listener(self, listener: Listener) -> None:
        """Receive every replica state transition (the SPU logs it once and reports it)."""
        self._listeners.append(listener)
        for r in self._replicas.values():
            r.add_listener(listener)

    def replica_path(self, topic: str, partition: int) -> str:
        return os.path.join(self.base_dir, f"{topic}-{partition}")

    def stored_replicas(self) -> list[tuple[str, int]]:
        """Replica directories already on disk."""
        out = []
        if not os.path.isdir(self.base_dir):
            return out
        for name in sorted(self.io.listdir(self.base_dir)):
            key = parse_replica_name(name)
            if key is not None and os.path.isdir(os.path.join(self.base_dir, name)):
                out.append(key)
        return out

    def open_replica(self, topic: str, partition: int, config: ReplicaConfig | None = None) -> Replica:
        key = (topic, partition)
        if key in self._replicas:
            return self._replicas[key]
        replica = Replica.open(self.replica_path(topic, partition), config, io=self.io, guard=self.guard,
                               name=f"{topic}-{partition}")
        for listener in self._listeners:
            replica.add_listener(listener)
        self._replicas[key] = replica
        for task in (self.flusher, self.cleaner, self.scrub):
            task.add(replica)
        if self.guard.state in (DirState.LOW, DirState.FULL):
            self.cleaner.trigger()   # space is short already: run retention now, not in 10 s
        return replica

    def get(self, topic: str, partition: int) -> Replica | None:
        return self._replicas.get((topic, partition))

    def replicas(self) -> dict[tuple[str, int], Replica]:
        return dict(self._replicas)

    def close_replica(self, topic: str, partition: int) -> None:
        replica = self._replicas.pop((topic, partition), None)
        if replica is not None:
            for task in (self.flusher, self.cleaner, self.scrub):
                task.remove(replica)
            replica.close()

    def delete_replica(self, topic: str, partition: int) -> None:
        """Close a replica and remove its directory."""
        self.close_replica(topic, partition)
        shutil.rmtree(self.replica_path(topic, partition), ignore_errors=True)
        self.guard.refresh()

    def close(self) -> None:
        for task in (self.flusher, self.cleaner, self.scrub, self.poller):
            task.stop()
        for key in list(self._replicas):
            self.close_replica(*key)
