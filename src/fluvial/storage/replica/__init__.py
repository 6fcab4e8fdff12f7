"""A replica: the segmented log of one partition on one SPU (`reference/fluvio-storage.md`, DESIGN.md §4).

Synchronous file I/O, thread-safe (a lock per replica). The SPU decides how to call it from its event
loop; the background flusher, cleaner and scrub call it from threads.

One module per concern, combined by `Replica`:

| module | concern |
|---|---|
| `state.py` | the replica state machine's Enum and table; OS error → FULL or FAILED |
| `base.py` | the state every concern shares; read-only properties; `set_hw` |
| `health.py` | the only place the state machine fires: headroom check, data dir transitions, failed writes |
| `snapshots.py` | idempotent producers' snapshot and replay |
| `recovery.py` | `Replica.open`: tail repair, checkpoint, verification; the scrub's marks |
| `roll.py` | roll-over, all or nothing |
| `append.py` | `append`, `append_batches` |
| `read.py` | `read`: whole batches as a `FileSlice` |
| `durability.py` | `sync`: background fsync and the HW checkpoint |
| `retention.py` | `apply_retention` |
| `replication.py` | leader epochs (history + stamping), the follower's verbatim append, truncation |

Failure semantics:
* a batch is validated before anything is written; a bad batch leaves the replica untouched;
* a failed write never leaves a partial batch: the file is cut back to the last good position;
* ENOSPC/EDQUOT (or headroom below the reserve) → state FULL, `StorageFull`; writes resume by themselves
  once the data dir has space again;
* EIO/EROFS/fsync failure/any other OS error → state FAILED, `StorageFailed`; reads of data already
  written continue; a marker file asks for full verification at the next open.

Idempotent producers (batches with `producer_id >= 0`; Fluvio's client sends -1 and takes the plain path,
one int compare): `storage.producers` decides append / duplicate / reject; an exact retry is acknowledged
with its original base offset and not written. The state survives restarts without touching Fluvio's
files: `producers.snapshot` (created before the first such batch is stored, rewritten atomically at each
roll and at close) holds the state below an offset, and open replays the batch headers stored after it.
"""

from __future__ import annotations

import contextlib

from fluvial.errors import StorageFailed
from fluvial.storage.replica.append import AppendResult
from fluvial.storage.replica.durability import ReplicaDurability
from fluvial.storage.replica.read import EMPTY_SLICE, FileSlice, Isolation, ReadResult, ReplicaRead
from fluvial.storage.replica.recovery import ReplicaRecovery
from fluvial.storage.replica.replication import ReplicaReplication
from fluvial.storage.replica.retention import ReplicaRetention
from fluvial.storage.replica.snapshots import stored_headers
from fluvial.storage.replica.state import (
    IO_FAILED,
    IO_TRANSIENT,
    REPLICA_TRANSITIONS,
    SPACE_AVAILABLE,
    SPACE_ERRNOS,
    SPACE_EXHAUSTED,
    ReplicaState,
    classify_os_error,
)


class Replica(ReplicaReplication, ReplicaRecovery, ReplicaDurability, ReplicaRead, ReplicaRetention):
    """Open with `Replica.open(directory, config, ...)`."""

    def close(self) -> None:
        if self.closed:
            return
        with contextlib.suppress(StorageFailed):
            self.sync()
        if self.guard is not None:
            self.guard.remove_listener(self._on_space_transition)
        with self._lock:
            self._snapshot_at_close()
            self.closed = True
            for seg in [*self._sealed, self._active]:
                seg.close()
            self._checkpoint.close()

    def __enter__(self) -> Replica:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


__all__ = [
    "EMPTY_SLICE",
    "IO_FAILED",
    "IO_TRANSIENT",
    "REPLICA_TRANSITIONS",
    "SPACE_AVAILABLE",
    "SPACE_ERRNOS",
    "SPACE_EXHAUSTED",
    "AppendResult",
    "FileSlice",
    "Isolation",
    "ReadResult",
    "Replica",
    "ReplicaState",
    "classify_os_error",
    "stored_headers",
]
