"""Background storage work, each a small daemon thread: flusher (fsync policy), cleaner (retention) and
scrub (low-priority CRC verification of sealed segments).

Each thread waits on an Event with a timeout, so `trigger()` runs a pass at once (the space guard
triggers the cleaner when a data dir goes LOW) and `stop()` ends it promptly.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from fluvial import defaults as d
from fluvial.errors import FluvialError
from fluvial.observability.ratelimit import StateLog
from fluvial.statemachine import Transition
from fluvial.storage.config import FlushKind
from fluvial.storage.replica import Replica
from fluvial.storage.space import DirState, SpaceGuard
from fluvial.storage.validator import verify_segment

logger = logging.getLogger(__name__)
_periodic = StateLog(logger)


class _Periodic:
    name = "storage-task"

    def __init__(self, interval_seconds: float) -> None:
        self.interval_seconds = interval_seconds
        self._replicas: dict[str, Replica] = {}
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.passes = 0

    def add(self, replica: Replica) -> None:
        with self._lock:
            self._replicas[replica.directory] = replica

    def remove(self, replica: Replica) -> None:
        with self._lock:
            self._replicas.pop(replica.directory, None)

    def replicas(self) -> list[Replica]:
        with self._lock:
            return [r for r in self._replicas.values() if not r.closed]

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name=self.name, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=30)

    def trigger(self) -> None:
        self._wake.set()

    def _loop(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(self.interval_seconds)
            self._wake.clear()
            if self._stop.is_set():
                break
            self.run_once()

    def run_once(self) -> None:
        for replica in self.replicas():
            key = f"{self.name}:{replica.name}"
            try:
                self.work(replica)
            except (FluvialError, OSError) as e:   # once per kind of failure, not at every pass
                _periodic.enter(key, type(e).__name__, logging.WARNING,
                                "%s_failing replica=%s error=%s (logged once until it works again)", self.name,
                                replica.name, e)
            else:
                _periodic.leave(key, "%s_resumed replica=%s", self.name, replica.name)
        self.passes += 1

    def work(self, replica: Replica) -> None:
        raise NotImplementedError


class Flusher(_Periodic):
    """fsyncs every replica whose policy is not fsync-every-batch (`os`: each second;
    `fsync-interval:MS`: at that interval — the thread runs at the shortest interval registered)."""

    name = "storage-flusher"

    def __init__(self, interval_seconds: float = d.BACKGROUND_FSYNC_INTERVAL_SECONDS) -> None:
        super().__init__(interval_seconds)
        self._due: dict[str, float] = {}

    def add(self, replica: Replica) -> None:
        super().add(replica)
        if replica.config.flush.kind is not FlushKind.FSYNC_EVERY_BATCH:
            self.interval_seconds = min(self.interval_seconds, replica.config.flush.interval_seconds)

    def work(self, replica: Replica) -> None:
        now = time.monotonic()
        if now >= self._due.get(replica.directory, 0.0):
            self._due[replica.directory] = now + replica.config.flush.interval_seconds
            replica.sync()


class Cleaner(_Periodic):
    """Runs retention on every replica periodically, and at once when a data dir runs LOW. Retention
    never deletes what a topic's retention keeps — unless `evict_when_full` (the SPU's
    `--evict-when-full`): then, while the data dir is FULL, the oldest sealed segments of the whole data
    dir go first (DATA LOSS: logged, counted in `evicted_segments` / `evicted_bytes`)."""

    name = "storage-cleaner"

    def __init__(self, interval_seconds: float = d.CLEANING_INTERVAL_SECONDS, *, guard: SpaceGuard | None = None,
                 evict_when_full: bool = False) -> None:
        super().__init__(interval_seconds)
        self.guard = guard
        self.evict_when_full = evict_when_full
        self.evicted_segments = 0
        self.evicted_bytes = 0

    def on_space_transition(self, t: Transition) -> None:
        if t.new in (DirState.LOW, DirState.FULL):
            self.trigger()

    def work(self, replica: Replica) -> None:
        replica.apply_retention()

    def run_once(self) -> None:
        super().run_once()
        if self.evict_when_full and self.guard is not None and self.guard.state is DirState.FULL:
            self.evict_while_full(self.guard)

    def evict_while_full(self, guard: SpaceGuard) -> None:
        """Remove the data dir's oldest sealed segments, one at a time, until it is no longer FULL."""
        segments = freed = 0
        touched: set[str] = set()
        while guard.state is DirState.FULL and not self._stop.is_set():
            aged = [(m, r) for r in self.replicas() if (m := r.oldest_sealed_mtime()) is not None]
            if not aged:
                break
            _mtime, replica = min(aged, key=lambda x: x[0])
            freed += replica.evict_oldest_sealed()
            segments += 1
            touched.add(replica.name)
            guard.refresh()
        if segments:
            self.evicted_segments += segments
            self.evicted_bytes += freed
            logger.warning("evicted_when_full data_dir=%s segments=%d freed_bytes=%d replicas=%s state=%s "
                           "(data loss: --evict-when-full)", guard.data_dir, segments, freed,
                           ",".join(sorted(touched)), guard.state.name)


class Scrub(_Periodic):
    """Verifies the CRC of every sealed segment once, reading at most `rate_bytes_per_second`."""

    name = "storage-scrub"

    def __init__(self, interval_seconds: float = d.SCRUB_IDLE_SECONDS,
                 rate_bytes_per_second: int = d.SCRUB_RATE_BYTES_PER_SECOND,
                 on_corruption: Callable[[Replica, int, int, str], None] | None = None) -> None:
        super().__init__(interval_seconds)
        self.rate_bytes_per_second = rate_bytes_per_second
        self.on_corruption = on_corruption
        self.verified_bytes = 0

    def work(self, replica: Replica) -> None:
        for seg in replica.unverified_sealed():
            if self._stop.is_set():
                return
            started = time.monotonic()
            report = verify_segment(replica.io, replica.directory, seg.base)
            seg.verified = True
            self.verified_bytes += report.bytes
            for problem in report.problems[:1]:
                replica.mark_corrupt(seg.base, problem.position, problem.reason)
                if self.on_corruption is not None:
                    self.on_corruption(replica, seg.base, problem.position, problem.reason)
            # Low priority: sleep long enough that this pass averages the configured rate.
            budget = report.bytes / max(1, self.rate_bytes_per_second)
            self._stop.wait(max(0.0, budget - (time.monotonic() - started)))


class SpacePoller(_Periodic):
    """Reads statvfs for a data dir every poll interval, so its state (and every FULL replica in it)
    recovers as soon as space returns, even while no producer is writing."""

    name = "storage-space"

    def __init__(self, guard: SpaceGuard, interval_seconds: float = d.SPACE_POLL_INTERVAL_SECONDS,
                 before_poll: Callable[[], object] | None = None) -> None:
        super().__init__(interval_seconds)
        self.guard = guard
        self.before_poll = before_poll

    def run_once(self) -> None:
        key = f"{self.name}:{self.guard.data_dir}"
        if self.before_poll is not None:
            self.before_poll()
        try:
            self.guard.refresh()
        except OSError as e:
            _periodic.enter(key, type(e).__name__, logging.WARNING, "%s_failing data_dir=%s error=%s", self.name,
                            self.guard.data_dir, e)
        else:
            _periodic.leave(key, "%s_resumed data_dir=%s", self.name, self.guard.data_dir)
        self.passes += 1
