"""Space guard: free-space headroom of one data dir, with hysteresis (DESIGN.md §5).

Free space is read with statvfs at most once per poll interval (and at every roll); between polls the
bytes written are subtracted from the cached value, so the hot path makes no syscall per batch and a
small disk cannot overshoot its reserve.

State machine of a data dir (one table):

    OK   -> LOW   free < 2R           (warn, run retention now)
    LOW  -> FULL  free < R            (writes rejected with PartitionFull)
    FULL -> LOW   free > 1.5R
    LOW  -> OK    free > 2.5R
    any  -> FAILED persistent I/O error (left only by restart + verification)

A drop or a rise across several thresholds in one reading goes straight to the final state.
"""

from __future__ import annotations

import enum
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from fluvial import defaults as d
from fluvial.errors import StorageFailed, StorageFull
from fluvial.statemachine import Listener, StateMachine
from fluvial.storage.fileio import OS_IO, FileIO

logger = logging.getLogger(__name__)


class DirState(enum.Enum):
    OK = "ok"
    LOW = "low"
    FULL = "full"
    FAILED = "failed"


class Band(enum.Enum):
    """Where free space stands relative to the reserve R."""

    CRITICAL = "critical"     # free < R
    LOW = "low"               # R <= free <= 1.5R
    RECOVERING = "recovering" # 1.5R < free < 2R
    TIGHT = "tight"           # 2R <= free <= 2.5R
    AMPLE = "ample"           # free > 2.5R


IO_FAILED = "io_failed"
ENOSPC = "enospc"          # the kernel refused a write for space, whatever statvfs says

DIR_TRANSITIONS: dict[tuple[DirState, str], DirState] = {
    (DirState.OK, Band.CRITICAL.value): DirState.FULL,
    (DirState.OK, Band.LOW.value): DirState.LOW,
    (DirState.OK, Band.RECOVERING.value): DirState.LOW,
    (DirState.LOW, Band.CRITICAL.value): DirState.FULL,
    (DirState.LOW, Band.AMPLE.value): DirState.OK,
    (DirState.FULL, Band.RECOVERING.value): DirState.LOW,
    (DirState.FULL, Band.TIGHT.value): DirState.LOW,
    (DirState.FULL, Band.AMPLE.value): DirState.OK,
    (DirState.OK, ENOSPC): DirState.FULL,
    (DirState.LOW, ENOSPC): DirState.FULL,
    (DirState.OK, IO_FAILED): DirState.FAILED,
    (DirState.LOW, IO_FAILED): DirState.FAILED,
    (DirState.FULL, IO_FAILED): DirState.FAILED,
}


def band(free: int, reserve: int) -> Band:
    """Pure: the band of `free` bytes for reserve R."""
    if free < reserve * d.SPACE_FULL_FACTOR:
        return Band.CRITICAL
    if free <= reserve * d.SPACE_FULL_RELEASE_FACTOR:
        return Band.LOW
    if free < reserve * d.SPACE_LOW_FACTOR:
        return Band.RECOVERING
    if free <= reserve * d.SPACE_OK_RELEASE_FACTOR:
        return Band.TIGHT
    return Band.AMPLE


def band_floor(b: Band, reserve: int) -> float:
    """Pure: the free-space value at or below which a reading may have left band `b` downwards."""
    if b is Band.CRITICAL:
        return float("-inf")
    return reserve * {Band.LOW: d.SPACE_FULL_FACTOR, Band.RECOVERING: d.SPACE_FULL_RELEASE_FACTOR,
                      Band.TIGHT: d.SPACE_LOW_FACTOR, Band.AMPLE: d.SPACE_OK_RELEASE_FACTOR}[b]


def reserve_for(total_bytes: int) -> int:
    """Pure: default reserve R for a filesystem of `total_bytes`: 5 %, clamped to [1 MiB, 1 GiB]."""
    r = int(total_bytes * d.SPACE_RESERVE_FRACTION)
    return max(d.SPACE_RESERVE_MIN_BYTES, min(d.SPACE_RESERVE_MAX_BYTES, r))


def _level(state: enum.Enum) -> int:
    return logging.INFO if state is DirState.OK else logging.WARNING


@dataclass(frozen=True)
class SpaceSnapshot:
    data_dir: str
    state: DirState
    free_bytes: int
    total_bytes: int
    reserve_bytes: int


class SpaceGuard:
    """Headroom check for every replica stored under one data dir."""

    def __init__(
        self,
        data_dir: str,
        *,
        io: FileIO = OS_IO,
        reserve_bytes: int | None = None,
        poll_interval_seconds: float = d.SPACE_POLL_INTERVAL_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.data_dir = str(data_dir)
        self._io = io
        self._fixed_reserve = reserve_bytes
        self._poll_interval = poll_interval_seconds
        self._clock = clock
        self._lock = threading.Lock()
        self._machine = StateMachine("data_dir", self.data_dir, DIR_TRANSITIONS, DirState.OK, _level)
        self.total_bytes = 0
        self.free_bytes = 0
        self.reserve_bytes = reserve_bytes or 0
        self._last_poll = float("-inf")
        self._band: Band | None = None
        self._floor = float("inf")
        self.refresh()

    # ---------------------------------------------------------------------------------------- state

    @property
    def state(self) -> DirState:
        return self._machine.state  # type: ignore[return-value]

    def add_listener(self, listener: Listener) -> None:
        self._machine.add_listener(listener)

    def snapshot(self) -> SpaceSnapshot:
        return SpaceSnapshot(self.data_dir, self.state, self.free_bytes, self.total_bytes, self.reserve_bytes)

    def refresh(self) -> None:
        """Read statvfs now and move the state machine accordingly."""
        usage = self._io.usage(self.data_dir)
        with self._lock:
            self._last_poll = self._clock()
            self.total_bytes = usage.total_bytes
            self.free_bytes = usage.free_bytes
            if self._fixed_reserve is None:
                self.reserve_bytes = reserve_for(usage.total_bytes)
        self._evaluate()

    def _evaluate(self) -> None:
        current = band(self.free_bytes, self.reserve_bytes)
        self._floor = band_floor(current, self.reserve_bytes)
        if current is self._band:
            return  # same band, same answer from the table: keep the hot path cheap
        self._band = current
        self._machine.fire(current.value, free_bytes=self.free_bytes, reserve_bytes=self.reserve_bytes)

    def _maybe_refresh(self, force: bool) -> None:
        if force or self._clock() - self._last_poll >= self._poll_interval:
            self.refresh()

    # ------------------------------------------------------------------------------------- hot path

    def check(self, nbytes: int, *, replica: str = "", force_refresh: bool = False) -> None:
        """Raise unless `nbytes` can be written while keeping the reserve free. Writes nothing."""
        self._maybe_refresh(force_refresh)
        state = self._machine.state
        if state is DirState.FAILED:
            raise StorageFailed(f"data dir {self.data_dir} had a persistent I/O error; restart to verify it",
                                replica=replica, data_dir=self.data_dir)
        free = self.free_bytes
        if state is DirState.FULL or free - nbytes < self.reserve_bytes:
            raise StorageFull(replica=replica, data_dir=self.data_dir, free_bytes=free,
                              threshold_bytes=self.reserve_bytes + nbytes)

    def charge(self, nbytes: int) -> None:
        """Account for bytes just written (or, negative, just freed) between polls."""
        with self._lock:
            self.free_bytes -= nbytes
        if nbytes > 0 and self.free_bytes <= self._floor:   # only a drop out of the band can change state
            self._evaluate()

    def observe_enospc(self) -> None:
        """The kernel said the disk is full, whatever statvfs said: believe it until the next poll."""
        with self._lock:
            self.free_bytes = 0
            self._last_poll = self._clock()
            self._band = Band.CRITICAL
            self._floor = float("-inf")
        self._machine.fire(ENOSPC, free_bytes=0, reserve_bytes=self.reserve_bytes)

    def remove_listener(self, listener: Listener) -> None:
        self._machine.remove_listener(listener)

    def observe_failure(self, err: OSError) -> None:
        self._machine.fire(IO_FAILED, errno=err.errno, error=err.strerror)
