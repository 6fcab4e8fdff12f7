"""The replica state machine (one Enum, one table) and the classification of OS errors while writing."""

from __future__ import annotations

import enum
import errno as errno_mod


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

# errno values that mean "no space": transient. Anything else while writing is persistent.
SPACE_ERRNOS = frozenset({errno_mod.ENOSPC, errno_mod.EDQUOT})


def classify_os_error(err: OSError, during: str) -> str:
    """Pure: SPACE_EXHAUSTED or IO_FAILED for an OS error raised while doing `during`.
    A failed fsync is always persistent: its pages may be gone, so it is never retried."""
    if during != "fsync" and err.errno in SPACE_ERRNOS:
        return SPACE_EXHAUSTED
    return IO_FAILED
