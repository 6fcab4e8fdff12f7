"""Replica storage: Fluvio's segmented log format with fluvial's failure semantics. Files only."""

from fluvial.storage.config import FlushKind, FlushPolicy, ReplicaConfig
from fluvial.storage.fileio import OS_IO, FaultPlan, FaultyFileIO, FileIO
from fluvial.storage.replica import AppendResult, FileSlice, Isolation, ReadResult, Replica, ReplicaState
from fluvial.storage.space import DirState, SpaceGuard


def replica_dir(log_base_dir: str, spu_id: int, topic: str, partition: int) -> str:
    """`<log_base_dir>/spu-logs-<id>/<topic>-<partition>` (Fluvio's layout)."""
    import os

    from fluvial import defaults

    return os.path.join(log_base_dir, f"{defaults.SPU_LOGS_DIR_PREFIX}{spu_id}", f"{topic}-{partition}")


__all__ = [
    "OS_IO",
    "AppendResult",
    "DirState",
    "FaultPlan",
    "FaultyFileIO",
    "FileIO",
    "FileSlice",
    "FlushKind",
    "FlushPolicy",
    "Isolation",
    "ReadResult",
    "Replica",
    "ReplicaConfig",
    "ReplicaState",
    "SpaceGuard",
    "replica_dir",
]
