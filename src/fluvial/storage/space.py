"""Space guard: free-space headroom of one data dir, with hysteresis (DESIGN.md §5).

Free space is read with statvfs at most once per poll interval (and at every roll); between polls the
bytes written are subtracted from the cached value, so the hot path makes no syscall per batch and a
small disk cannot overshoot its reserve. Free inodes (`f_favail`) count like free bytes, with their own
reserve; the worse of the two decides.

State machine of a data dir (one table):

    OK   -> LOW   free < 2R           (warn, run retention now)
    LOW  -> FULL  free < 1.25R        (every write rejected with PartitionFull)
    FULL -> LOW   free > 1.5R
    LOW  -> OK    free > 2.5R
    any  -> FULL  the kernel refused a write (ENOSPC/EDQUOT) whatever statvfs says: held FULL for a
                  back-off (1 s doubling to 60 s) before statvfs is trusted again; released at once
                  when free bytes or free inodes grow
    any  -> FAILED persistent I/O error (left only by restart + verification)

A write must always leave R free: a batch that does not fit is refused (72) without any state change,
so mixed batch sizes near the threshold cannot flap. A drop or a rise across several thresholds in one
reading goes straight to the final state. Reading, accounting and firing the machine happen under one
lock, so the poller thread and the writers never act on each other's stale reading.
"""

from __future__ import annotations

import enum
import errno as errno_mod
import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from fluvial import defaults as d
from fluvial.errors import StorageFailed, StorageFull, errno_name
from fluvial.statemachine import Listener, StateMachine
from fluvial.storage.fileio import OS_IO, FileIO, FsUsage

logger = logging.getLogger(__name__)


class DirState(enum.Enum):
    OK = "ok"
    LOW = "low"
    FULL = "full"
    FAILED = "failed"


class Band(enum.Enum):
    """Where free space stands relative to the reserve R."""

    CRITICAL = "critical"     # free < 1.25R (SPACE_FULL_FACTOR)
    LOW = "low"               # 1.25R <= free <= 1.5R
    RECOVERING = "recovering" # 1.5R < free < 2R (a band name: reached filling up as well as emptying)
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
    """Pure: the band of `free` bytes (or inodes) for reserve R."""
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


def inode_reserve_for(total_inodes: int) -> int:
    """Pure: the inode reserve of a filesystem with `total_inodes` (0: no inode limit, no reserve)."""
    if total_inodes <= 0:
        return 0
    r = int(total_inodes * d.SPACE_RESERVE_INODES_FRACTION)
    return max(d.SPACE_RESERVE_INODES_MIN, min(d.SPACE_RESERVE_INODES_MAX, r))


def existing_ancestor(path: str) -> str:
    """`path`, or its nearest existing parent (statvfs of a data dir that could not be created yet)."""
    while not os.path.exists(path):
        parent = os.path.dirname(path)
        if parent == path:
            break
        path = parent
    return path


_BAND_ORDER = (Band.CRITICAL, Band.LOW, Band.RECOVERING, Band.TIGHT, Band.AMPLE)


def worse(a: Band, b: Band) -> Band:
    """Pure: the band nearer to CRITICAL."""
    return a if _BAND_ORDER.index(a) <= _BAND_ORDER.index(b) else b


def space_band(free_bytes: int, reserve_bytes: int, free_inodes: int, reserve_inodes: int) -> Band:
    """Pure: the band of a data dir: the worse of its bytes and (when limited) its inodes."""
    b = band(free_bytes, reserve_bytes)
    return b if reserve_inodes <= 0 else worse(b, band(free_inodes, reserve_inodes))


def next_hold_seconds(current: float) -> float:
    """Pure: the kernel-FULL hold after `current` (doubling, capped)."""
    return min(current * 2, d.SPACE_KERNEL_FULL_HOLD_MAX_SECONDS)


@dataclass(frozen=True)
class KernelFullHold:
    """The kernel refused a write (`errno`) while statvfs showed this much room: FULL until `until`
    unless free bytes or free inodes grow beyond these."""

    until: float
    seconds: float
    errno: int
    free_bytes: int
    free_inodes: int


def _level(state: enum.Enum) -> int:
    """OK: INFO; LOW, FULL: WARNING; FAILED: ERROR (DESIGN.md §5, issue #9)."""
    return {DirState.OK: logging.INFO, DirState.FAILED: logging.ERROR}.get(state, logging.WARNING)  # type: ignore[call-overload]


@dataclass(frozen=True)
class SpaceSnapshot:
    data_dir: str
    state: DirState
    free_bytes: int
    total_bytes: int
    reserve_bytes: int
    free_inodes: int = 0
    total_inodes: int = 0
    reserve_inodes: int = 0
    cause: str = ""          # why FULL, when the kernel said so


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
        self._lock = threading.RLock()   # statvfs reading, accounting and firing the machine: one at a time
        self._machine = StateMachine("data_dir", self.data_dir, DIR_TRANSITIONS, DirState.OK, _level)
        self.total_bytes = 0
        self.free_bytes = 0
        self.reserve_bytes = reserve_bytes or 0
        self.total_inodes = 0
        self.free_inodes = 0
        self.reserve_inodes = 0
        self._last_poll = float("-inf")
        self._floor = float("inf")              # free bytes at or below which the band may have dropped
        self._inode_floor = float("-inf")
        self._hold: KernelFullHold | None = None
        self._hold_seconds = d.SPACE_KERNEL_FULL_HOLD_MIN_SECONDS
        self.refresh()

    # ---------------------------------------------------------------------------------------- state

    @property
    def state(self) -> DirState:
        return self._machine.state  # type: ignore[return-value]

    def add_listener(self, listener: Listener) -> None:
        self._machine.add_listener(listener)

    @property
    def hold(self) -> KernelFullHold | None:
        return self._hold

    def snapshot(self) -> SpaceSnapshot:
        with self._lock:
            return SpaceSnapshot(self.data_dir, self.state, self.free_bytes, self.total_bytes, self.reserve_bytes,
                                 self.free_inodes, self.total_inodes, self.reserve_inodes, self._cause())

    def _cause(self) -> str:
        h = self._hold
        if h is None:
            return ""
        return (f"the kernel refused a write ({errno_name(h.errno)}) although statvfs shows {h.free_bytes} bytes "
                f"and {h.free_inodes} inodes free; statvfs trusted again in {h.seconds:g} s unless space grows")

    def refresh(self) -> None:
        """Read statvfs now and move the state machine accordingly."""
        with self._lock:
            usage = self._io.usage(existing_ancestor(self.data_dir))
            now = self._clock()
            self._last_poll = now
            self._store(usage)
            hold = self._hold
            if hold is not None:
                if usage.free_bytes > hold.free_bytes or usage.free_inodes > hold.free_inodes:
                    self._hold = None                                   # space grew: believe statvfs
                    self._hold_seconds = d.SPACE_KERNEL_FULL_HOLD_MIN_SECONDS
                elif now < hold.until:
                    return                                              # still held FULL
                else:
                    self._hold = None                                   # back-off over: trust statvfs
            self._evaluate()

    def _store(self, usage: FsUsage) -> None:
        self.total_bytes = usage.total_bytes
        self.free_bytes = usage.free_bytes
        self.total_inodes = usage.total_inodes
        self.free_inodes = usage.free_inodes
        if self._fixed_reserve is None:
            self.reserve_bytes = reserve_for(usage.total_bytes)
        self.reserve_inodes = inode_reserve_for(usage.total_inodes)

    def _evaluate(self) -> None:
        """Under the lock: fire the band of the current reading (the table ignores a band that changes
        nothing, so a stale cache can never keep the dir FULL)."""
        if self._hold is not None:
            return
        current = space_band(self.free_bytes, self.reserve_bytes, self.free_inodes, self.reserve_inodes)
        self._floor = band_floor(band(self.free_bytes, self.reserve_bytes), self.reserve_bytes)
        self._inode_floor = (band_floor(band(self.free_inodes, self.reserve_inodes), self.reserve_inodes)
                             if self.reserve_inodes else float("-inf"))
        extra = {"free_inodes": self.free_inodes, "reserve_inodes": self.reserve_inodes} if self.reserve_inodes else {}
        self._machine.fire(current.value, free_bytes=self.free_bytes, reserve_bytes=self.reserve_bytes, **extra)

    def _maybe_refresh(self, force: bool) -> None:
        if force or self._clock() - self._last_poll >= self._poll_interval:
            self.refresh()

    # ------------------------------------------------------------------------------------- hot path

    def check(self, nbytes: int, *, inodes: int = 0, replica: str = "", force_refresh: bool = False) -> None:
        """Raise unless `nbytes` (and `inodes` new files) can be written while keeping the reserve free.
        Writes nothing and changes no state."""
        self._maybe_refresh(force_refresh)
        refused = self.refusal(nbytes, inodes=inodes, replica=replica)
        if refused is not None:
            raise refused

    def refusal(self, nbytes: int, *, inodes: int = 0, replica: str = "") -> StorageFull | StorageFailed | None:
        """The error a write of `nbytes` gets from what the guard knows now (no statvfs), or None."""
        with self._lock:
            state = self._machine.state
            free, reserve = self.free_bytes, self.reserve_bytes
            inodes_short = self.reserve_inodes > 0 and self.free_inodes - inodes < self.reserve_inodes
            cause = self._cause()
        if state is DirState.FAILED:
            return StorageFailed(f"data dir {self.data_dir} had a persistent I/O error; restart to verify it",
                                 replica=replica, data_dir=self.data_dir)
        threshold = int(reserve * d.SPACE_REJECT_FACTOR) + nbytes
        if state is DirState.FULL:   # writes resume once free space is above the release threshold
            threshold = max(threshold, int(reserve * d.SPACE_FULL_RELEASE_FACTOR))
        if state is DirState.FULL and cause:
            return StorageFull(replica=replica, data_dir=self.data_dir, free_bytes=free, threshold_bytes=threshold,
                               cause=cause)
        if state is DirState.FULL or free < threshold:
            return StorageFull(replica=replica, data_dir=self.data_dir, free_bytes=free, threshold_bytes=threshold)
        if inodes_short:
            return StorageFull(replica=replica, data_dir=self.data_dir, free_bytes=free, threshold_bytes=threshold,
                               cause=f"{self.free_inodes} inodes free, a new segment needs {inodes} beyond the "
                                     f"reserve of {self.reserve_inodes}")
        return None

    def charge(self, nbytes: int, *, inodes: int = 0) -> None:
        """Account for bytes (and files) just written (or, negative, just freed) between polls."""
        with self._lock:
            self.free_bytes -= nbytes
            self.free_inodes -= inodes
            # only a drop out of the band can change state
            if (nbytes > 0 and self.free_bytes <= self._floor) or (inodes > 0 and self.free_inodes <= self._inode_floor):
                self._evaluate()

    def observe_enospc(self, err_no: int = errno_mod.ENOSPC) -> None:
        """The kernel said the disk is full, whatever statvfs says: FULL, and statvfs is not trusted for a
        back-off that doubles with every refusal until free bytes or free inodes grow."""
        with self._lock:
            now = self._clock()
            try:
                usage = self._io.usage(existing_ancestor(self.data_dir))
            except OSError:
                usage = FsUsage(self.total_bytes, 0, self.total_inodes, 0)
            self._store(usage)
            self._last_poll = now
            seconds = self._hold_seconds
            self._hold = KernelFullHold(now + seconds, seconds, err_no, usage.free_bytes, usage.free_inodes)
            self._hold_seconds = next_hold_seconds(seconds)
            self._machine.fire(ENOSPC, errno=errno_name(err_no), free_bytes=usage.free_bytes,
                               free_inodes=usage.free_inodes, hold_seconds=f"{seconds:g}")

    def remove_listener(self, listener: Listener) -> None:
        self._machine.remove_listener(listener)

    def observe_failure(self, err: OSError) -> None:
        with self._lock:
            self._machine.fire(IO_FAILED, errno=errno_name(err.errno), error=err.strerror)
