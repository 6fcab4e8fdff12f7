"""The state every concern of a replica shares: its segments, offsets, locks and configuration, and the
read-only properties. Each concern (recovery, producer snapshots, health, append, roll, read, durability,
retention) is a class in its own module over this one; `Replica` combines them."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable

from fluvial import defaults as d
from fluvial.statemachine import Listener, StateMachine
from fluvial.storage.checkpoint import Checkpoint
from fluvial.storage.config import FlushKind, ReplicaConfig
from fluvial.storage.fileio import FileHandle, FileIO
from fluvial.storage.index import index_capacity_bytes, index_initial_bytes
from fluvial.storage.producers import ProducerTable
from fluvial.storage.replica.state import REPLICA_TRANSITIONS, ReplicaState, level_of
from fluvial.storage.segment import Segment
from fluvial.storage.space import SpaceGuard


class ReplicaBase:
    def __init__(self, directory: str, config: ReplicaConfig, io: FileIO, guard: SpaceGuard | None,
                 name: str, clock: Callable[[], float]) -> None:
        self.directory = directory
        self.config = config
        self.io = io
        self.guard = guard
        self.name = name
        self._clock = clock
        self._lock = threading.RLock()
        self._machine = StateMachine("replica", name, REPLICA_TRANSITIONS, ReplicaState.OK, level_of)
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
        self._index_initial = index_initial_bytes(self._index_capacity)   # what a new segment's index takes
        self._batch_limit, self._batch_limit_name = config.batch_limit
        self._every_batch = config.flush.kind is FlushKind.FSYNC_EVERY_BATCH
        self.hw_follows_leo = True                # False once the replica has followers: HW set by caller
        self._stamp_epoch = -1                    # the leader epoch written into appended batches (-1: none)
        self.closed = False
        self._last_error: str | None = None       # why the replica is FULL or FAILED
        self._producers = ProducerTable()         # idempotent producers (producer_id >= 0)
        self._snapshot_path = os.path.join(directory, d.PRODUCER_SNAPSHOT_FILE)
        self._has_snapshot = False                # no snapshot file: no idempotent batch was ever stored

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
        """Fluvio's replica size: sealed logs + their indexes + active log + used active index. Takes no
        lock (the heartbeat reads it on the event loop while a write may be stalled on the disk): a
        value at most one write or roll old."""
        active, sealed = self._active, list(self._sealed)
        return active.size + active.index_bytes() + sum(seg.size + seg.index_bytes() for seg in sealed)

    def set_hw(self, hw: int) -> None:
        """Set the high watermark (replication); clamped to [log start, LEO]."""
        with self._lock:
            hw = max(self.log_start, min(hw, self._leo))
            if hw != self._hw:
                self._hw = hw
                self._hw_dirty = True
