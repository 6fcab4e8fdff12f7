"""fluvial-only public API keys: called only by fluvial's own client and CLI. Pure, same codec as the rest.

These keys are never advertised in ApiVersions (the official client must not see them); a server that
does not know one closes the connection, so a caller learns "not a fluvial server" at once.

    client → SC   4000 AllocateProducerId   a producer id unique across SC restarts, epoch 0
    client → SPU  4100 ReplicaHealth        the SPU's data dirs (space, reserve, thresholds, state) and its
                                            replicas (state, HW, LEO, data dir, last error)

The health shapes reuse the heartbeat's `DataDirReport` / `ReplicaReport` (internal.py) and add only
what a person diagnosing a node needs beyond what the SC needs.
"""

from __future__ import annotations

from dataclasses import dataclass

from fluvial.protocol.codec import (
    ERROR_CODE,
    INT16,
    INT32,
    INT64,
    STRING,
    UINT64,
    Option,
    Struct,
    Vec,
    WireError,
    message,
    wire,
)
from fluvial.protocol.internal import DataDirReport, ReplicaReport
from fluvial.protocol.spu import ReplicaKey

ALLOCATE_PRODUCER_ID = 4000      # SC public port
REPLICA_HEALTH = 4100            # SPU public port
FLUVIAL_API_VERSION = 0


# ------------------------------------------------------------------------------------- producer ids


@message
@dataclass
class AllocateProducerIdRequest:
    client_id: str = wire(STRING)


@message
@dataclass
class AllocateProducerIdResponse:
    error_code: WireError = wire(ERROR_CODE)
    producer_id: int = wire(INT64, default=-1)
    producer_epoch: int = wire(INT16)


# ----------------------------------------------------------------------------------- replica health


@message
@dataclass
class ReplicaHealthRequest:
    replicas: list[ReplicaKey] = wire(Vec(Struct(ReplicaKey)))     # empty: every replica of the SPU


@message
@dataclass
class DataDirHealth:
    """A data dir as the heartbeat reports it, plus the space guard's thresholds (DESIGN.md §5)."""

    report: DataDirReport = wire(Struct(DataDirReport))    # path, state, free, total, reserve R (writes leave R; FULL below 1.25R)
    low_bytes: int = wire(UINT64)                          # OK → LOW below this (2R)
    full_release_bytes: int = wire(UINT64)                 # FULL → LOW above this (1.5R)
    ok_release_bytes: int = wire(UINT64)                   # LOW → OK above this (2.5R)


@message
@dataclass
class ReplicaHealth:
    """A replica as the heartbeat reports it, plus where it lives and why it is not OK."""

    report: ReplicaReport = wire(Struct(ReplicaReport))    # topic, partition, leader?, hw, leo, start, size, state
    data_dir: str = wire(STRING)
    last_error: str | None = wire(Option(STRING))          # set while the replica is FULL or FAILED


@message
@dataclass
class ReplicaHealthResponse:
    error_code: WireError = wire(ERROR_CODE)
    spu_id: int = wire(INT32)
    data_dirs: list[DataDirHealth] = wire(Vec(Struct(DataDirHealth)))
    replicas: list[ReplicaHealth] = wire(Vec(Struct(ReplicaHealth)))
