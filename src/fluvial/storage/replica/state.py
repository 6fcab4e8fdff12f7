"""The replica state machine (one Enum, one table) and the classification of OS errors while writing."""

from __future__ import annotations

import enum
import logging

from fluvial.errors import ERRNO_CLASSES, ErrnoClass, errno_class


class ReplicaState(enum.Enum):
    OK = "ok"
    FULL = "full"
    FAILED = "failed"


SPACE_EXHAUSTED = "space_exhausted"
SPACE_AVAILABLE = "space_available"
IO_FAILED = "io_failed"

REPLICA_TRANSITIONS: dict[tuple[ReplicaState, str], ReplicaState] = {
    (ReplicaState.OK, SPACE_EXHAUSTED): ReplicaState.FULL,
    (ReplicaState.FULL, SPACE_AVAILABLE): ReplicaState.OK,
    (ReplicaState.OK, IO_FAILED): ReplicaState.FAILED,
    (ReplicaState.FULL, IO_FAILED): ReplicaState.FAILED,
}

def level_of(state: enum.Enum) -> int:
    """Log level of a replica transition: back to OK is INFO, FULL WARNING, FAILED ERROR."""
    return {ReplicaState.OK: logging.INFO, ReplicaState.FAILED: logging.ERROR}.get(state, logging.WARNING)  # type: ignore[call-overload]


IO_TRANSIENT = "io_transient"          # not an event of the table: nothing changes, the write is refused

# errno values that mean "no space" (the errno table's SPACE class).
SPACE_ERRNOS = frozenset(e for e, c in ERRNO_CLASSES.items() if c is ErrnoClass.SPACE)

_KIND = {ErrnoClass.SPACE: SPACE_EXHAUSTED, ErrnoClass.TRANSIENT: IO_TRANSIENT, ErrnoClass.PERSISTENT: IO_FAILED}


def classify_os_error(err: OSError, during: str) -> str:
    """Pure: SPACE_EXHAUSTED, IO_TRANSIENT or IO_FAILED for an OS error raised while doing `during`, as
    the one errno table in `fluvial.errors` says. A failed fsync is always persistent."""
    return _KIND[errno_class(err.errno, during)]
