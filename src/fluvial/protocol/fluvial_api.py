"""fluvial-only public API keys: called only by fluvial's own client and CLI. Pure, same codec as the rest.

These keys are never advertised in ApiVersions (the official client must not see them); a server that
does not know one closes the connection, so a caller learns "not a fluvial server" at once.

    client → SC   4000 AllocateProducerId   a producer id unique across SC restarts, epoch 0
    client → SC   4001 TopicSettings        fluvial-only topic settings (min in-sync replicas, unclean
                                            leader election), kept outside Fluvio's `TopicSpec`
    client → SC   4002 PartitionDetails     leader, leader epoch, replica set, ISR, per-replica LEO and lag
    client → SC   4003 ElectLeader          move leadership to the preferred (or a named) in-sync replica
    client → SC   4004 MovePartition        a new replica set: new followers catch up, then the old go
    client → SC   4005 ClusterHealth        every SPU's state (online / degraded / offline) with its reason and
                                            data dirs, the active alerts, whether the metadata store writes
    client → SPU  4100 ReplicaHealth        the SPU's data dirs (space, reserve, thresholds, state) and its
                                            replicas (state, HW, LEO, data dir, last error)

The health shapes reuse the heartbeat's `DataDirReport` / `ReplicaReport` (internal.py) and add only
what a person diagnosing a node needs beyond what the SC needs.
"""

from __future__ import annotations

from dataclasses import dataclass

from fluvial.protocol.codec import (
    BOOL,
    ERROR_CODE,
    INT16,
    INT32,
    INT64,
    STRING,
    UINT32,
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
TOPIC_SETTINGS = 4001            # SC public port
PARTITION_DETAILS = 4002         # SC public port
ELECT_LEADER = 4003              # SC public port
MOVE_PARTITION = 4004            # SC public port
CLUSTER_HEALTH = 4005            # SC public port
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


# ------------------------------------------------------------------------- replication (SC objects)


@message
@dataclass
class TopicReplicationSettings:
    """fluvial-only per-topic settings, stored by the SC beside the `Topic` object (label FluvialTopic)."""

    min_in_sync: int = wire(INT32, default=-1)          # -1: min(2, replication factor)
    unclean_leader_election: bool = wire(BOOL)


@message
@dataclass
class PartitionReplication:
    """fluvial-only per-partition state kept by the SC (label FluvialPartition)."""

    leader_epoch: int = wire(INT32)
    isr: list[int] = wire(Vec(INT32))                   # confirmed in-sync set, leader first
    target_replicas: list[int] = wire(Vec(INT32))       # a partition move in progress: the set it ends with


@message
@dataclass
class TopicSettingsRequest:
    topic: str = wire(STRING)
    settings: TopicReplicationSettings = wire(Struct(TopicReplicationSettings))


@message
@dataclass
class AdminResponse:
    error_code: WireError = wire(ERROR_CODE)
    message: str | None = wire(Option(STRING))


@message
@dataclass
class PartitionDetailsRequest:
    topic: str | None = wire(Option(STRING))            # None: every non-system topic


@message
@dataclass
class ReplicaDetail:
    spu_id: int = wire(INT32)
    online: bool = wire(BOOL)
    in_sync: bool = wire(BOOL)
    leo: int = wire(INT64, default=-1)
    lag: int = wire(INT64, default=-1)                  # leader LEO − this replica's LEO
    state: str = wire(STRING)                           # ok / full / failed / unknown


@message
@dataclass
class PartitionDetail:
    topic: str = wire(STRING)
    partition: int = wire(UINT32)
    leader: int = wire(INT32)
    leader_epoch: int = wire(INT32)
    resolution: str = wire(STRING)
    hw: int = wire(INT64, default=-1)
    leo: int = wire(INT64, default=-1)
    min_in_sync: int = wire(INT32)
    unclean_leader_election: bool = wire(BOOL)
    replicas: list[ReplicaDetail] = wire(Vec(Struct(ReplicaDetail)))


@message
@dataclass
class PartitionDetailsResponse:
    error_code: WireError = wire(ERROR_CODE)
    partitions: list[PartitionDetail] = wire(Vec(Struct(PartitionDetail)))


@message
@dataclass
class ElectLeaderRequest:
    topic: str = wire(STRING)
    partition: int = wire(UINT32)
    spu_id: int = wire(INT32, default=-1)               # -1: the preferred replica (first of the list)


@message
@dataclass
class MovePartitionRequest:
    topic: str = wire(STRING)
    partition: int = wire(UINT32)
    replicas: list[int] = wire(Vec(INT32))              # the new set, preferred leader first


# ------------------------------------------------------------------------------------- cluster health


@message
@dataclass
class ClusterHealthRequest:
    pass


@message
@dataclass
class SpuHealthDetail:
    spu_id: int = wire(INT32)
    state: str = wire(STRING)                           # online / degraded / offline
    reason: str = wire(STRING)
    address: str = wire(STRING)
    leads: int = wire(UINT32)
    dirs: list[DataDirReport] = wire(Vec(Struct(DataDirReport)))


@message
@dataclass
class AlertEntry:
    severity: str = wire(STRING)
    name: str = wire(STRING)
    subject: str = wire(STRING)
    message: str = wire(STRING)


@message
@dataclass
class ClusterHealthResponse:
    error_code: WireError = wire(ERROR_CODE)
    spus: list[SpuHealthDetail] = wire(Vec(Struct(SpuHealthDetail)))
    alerts: list[AlertEntry] = wire(Vec(Struct(AlertEntry)))
    metadata_error: str | None = wire(Option(STRING))
