"""fluvial's own SC ⇄ SPU control-plane messages (private ports). Pure, same codec as the public APIs.

Fluvio's internal API (`fluvio-wire.md` §14) is not visible to clients; fluvial designs its own so that
the SPU can report what Fluvio cannot: data-dir space and health, replica states (OK/FULL/FAILED).

    SPU → SC  3000 RegisterSpu            request/response: id and advertised addresses
    SPU → SC  3001 Heartbeat              request/response, every HEARTBEAT_INTERVAL: health, data dirs,
                                          replica offsets and states
    SPU → SC  3002 WatchAssignments       stream: first a full set, then changes — the replicas this
                                          SPU holds (leader, leader epoch, replica set, in-sync set,
                                          storage config) and peer SPUs
    SPU → SC  3003 WatchSmartModules      stream: first every SmartModule object, then each Create/Delete
    SPU → SC  3004 FetchSmartModule       one SmartModule by name (exact or `group/name@version`): a consume
                                          that names a module created a moment ago need not wait for the push
    SPU → SPU 3100 PeerUpdateConsumerOffset  a consumer-offset commit forwarded to consumer-offset-0's leader
    SPU → SPU 3101 ReplicaFetch           a follower's long-poll fetch from its LEO (the fetch offset is its
                                          LEO report); answered at once with data, else when the leader
                                          appends or its HW moves, else after max_wait
    SPU → SPU 3102 EpochEndOffset         where a leader epoch ends in the leader's log (truncation point)
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from fluvial.protocol.codec import (
    BOOL,
    BYTES,
    ERROR_CODE,
    INT32,
    INT64,
    STRING,
    UINT8,
    UINT16,
    UINT32,
    UINT64,
    IntEnum8,
    Option,
    Struct,
    Variants,
    Vec,
    WireError,
    message,
    wire,
)
from fluvial.protocol.smartmodule import SmartModuleSpec

REGISTER_SPU = 3000
HEARTBEAT = 3001
WATCH_ASSIGNMENTS = 3002
WATCH_SMARTMODULES = 3003
FETCH_SMARTMODULE = 3004
REPLICA_FETCH = 3101
EPOCH_END_OFFSET = 3102
INTERNAL_VERSION = 0


class SpuHealth(enum.IntEnum):
    ONLINE = 0
    DEGRADED = 1       # some data dir is FULL or FAILED


class DirStateCode(enum.IntEnum):
    OK = 0
    LOW = 1
    FULL = 2
    FAILED = 3


class ReplicaStateCode(enum.IntEnum):
    OK = 0
    FULL = 1
    FAILED = 2


@message
@dataclass
class RegisterSpuRequest:
    spu_id: int = wire(INT32)
    public_host: str = wire(STRING)
    public_port: int = wire(UINT16)
    private_host: str = wire(STRING)
    private_port: int = wire(UINT16)
    rack: str | None = wire(Option(STRING))


@message
@dataclass
class RegisterSpuResponse:
    error_code: WireError = wire(ERROR_CODE)
    error_message: str | None = wire(Option(STRING))


@message
@dataclass
class DataDirReport:
    path: str = wire(STRING)
    state: DirStateCode = wire(IntEnum8(DirStateCode))
    free_bytes: int = wire(UINT64)
    total_bytes: int = wire(UINT64)
    reserve_bytes: int = wire(UINT64)


@message
@dataclass
class FollowerReport:
    """A leader's view of one follower: the LEO its last fetch reported, whether it is in sync."""

    spu_id: int = wire(INT32)
    leo: int = wire(INT64, default=-1)
    in_sync: bool = wire(BOOL)


@message
@dataclass
class ReplicaReport:
    topic: str = wire(STRING)
    partition: int = wire(UINT32)
    is_leader: bool = wire(BOOL)
    hw: int = wire(INT64)
    leo: int = wire(INT64)
    log_start: int = wire(INT64)
    size: int = wire(INT64)
    state: ReplicaStateCode = wire(IntEnum8(ReplicaStateCode))
    leader_epoch: int = wire(INT32, default=-1)              # the epoch this replica last learned
    followers: list[FollowerReport] = wire(Vec(Struct(FollowerReport)))   # leaders only


@message
@dataclass
class HeartbeatRequest:
    spu_id: int = wire(INT32)
    health: SpuHealth = wire(IntEnum8(SpuHealth))
    dirs: list[DataDirReport] = wire(Vec(Struct(DataDirReport)))
    replicas: list[ReplicaReport] = wire(Vec(Struct(ReplicaReport)))


@message
@dataclass
class HeartbeatResponse:
    error_code: WireError = wire(ERROR_CODE)


@message
@dataclass
class ReplicaAssignment:
    topic: str = wire(STRING)
    partition: int = wire(UINT32)
    leader: int = wire(INT32)
    replicas: list[int] = wire(Vec(INT32))
    retention_seconds: int | None = wire(Option(UINT32))
    segment_size: int | None = wire(Option(UINT32))
    max_partition_size: int | None = wire(Option(UINT64))
    compression: int = wire(UINT8, default=4)          # topic CompressionAlgorithm (4 = Any)
    deleted: bool = wire(BOOL)
    leader_epoch: int = wire(INT32)                    # bumped by the SC at every leadership change
    isr: list[int] = wire(Vec(INT32))                  # the in-sync set the SC has confirmed (leader included)
    min_in_sync: int = wire(UINT16, default=1)         # ReadCommitted produce is refused below this ISR size


@message
@dataclass
class PeerSpu:
    spu_id: int = wire(INT32)
    public_host: str = wire(STRING)
    public_port: int = wire(UINT16)
    private_host: str = wire(STRING)
    private_port: int = wire(UINT16)
    online: bool = wire(BOOL)


@message
@dataclass
class WatchAssignmentsRequest:
    spu_id: int = wire(INT32)


@message
@dataclass
class AssignmentUpdate:
    epoch: int = wire(INT64)
    full: bool = wire(BOOL)                # True: replaces everything the SPU holds
    replicas: list[ReplicaAssignment] = wire(Vec(Struct(ReplicaAssignment)))
    spus: list[PeerSpu] = wire(Vec(Struct(PeerSpu)))


# ------------------------------------------------------------------------------------ SmartModules


@message
@dataclass
class WatchSmartModulesRequest:
    spu_id: int = wire(INT32)


@message
@dataclass
class SmartModuleChange:
    name: str = wire(STRING)                                         # the store key
    spec: SmartModuleSpec | None = wire(Option(Struct(SmartModuleSpec)))   # None: deleted


@message
@dataclass
class SmartModulesUpdate:
    full: bool = wire(BOOL)                # True: every object the SC holds (the first message)
    changes: list[SmartModuleChange] = wire(Vec(Struct(SmartModuleChange)))


@message
@dataclass
class FetchSmartModuleRequest:
    name: str = wire(STRING)


@message
@dataclass
class FetchSmartModuleResponse:
    found: SmartModuleChange | None = wire(Option(Struct(SmartModuleChange)))


# ------------------------------------------------------------------------ consumer-offset records (§14.4)
# Records of topic `consumer-offset` partition 0: key None, value = enum8 Entry.


@message
@dataclass
class OffsetKey:
    topic: str = wire(STRING)
    partition: int = wire(UINT32)
    consumer_id: str = wire(STRING)


@message
@dataclass
class OffsetValue:
    offset: int = wire(INT64)
    modified_time: int = wire(UINT64)       # unix seconds


@message
@dataclass
class RecordUpdated:
    key: bytes = wire(BYTES)
    value: bytes = wire(BYTES)


@message
@dataclass
class RecordDeleted:
    key: bytes = wire(BYTES)


@message
@dataclass
class Checkpoint:
    pass


OFFSET_ENTRY = Variants({0: RecordUpdated, 1: RecordDeleted, 2: Checkpoint})


@message
@dataclass
class OffsetEntry:
    entry: RecordUpdated | RecordDeleted | Checkpoint = wire(OFFSET_ENTRY)


# SPU -> SPU (private port): a stream's SPU forwards a consumer-offset commit to the leader of
# consumer-offset-0.
PEER_UPDATE_CONSUMER_OFFSET = 3100


@message
@dataclass
class PeerUpdateConsumerOffsetRequest:
    topic: str = wire(STRING)
    partition: int = wire(UINT32)
    consumer_id: str = wire(STRING)
    offset: int = wire(INT64)


@message
@dataclass
class PeerUpdateConsumerOffsetResponse:
    error_code: WireError = wire(ERROR_CODE)


PEER_DELETE_TOPIC_OFFSETS = 3110      # SC -> the SPU leading consumer-offset-0: a topic was deleted


@message
@dataclass
class DeleteTopicOffsetsRequest:
    topic: str = wire(STRING)


@message
@dataclass
class DeleteTopicOffsetsResponse:
    error_code: WireError = wire(ERROR_CODE)


# ------------------------------------------------------------------------------- replication (SPU → SPU)


@message
@dataclass
class ReplicaFetchRequest:
    topic: str = wire(STRING)
    partition: int = wire(UINT32)
    follower_id: int = wire(INT32)
    leader_epoch: int = wire(INT32)        # the follower's view; a mismatch is refused (fencing)
    fetch_offset: int = wire(INT64)        # the follower's LEO
    hw: int = wire(INT64)                  # the HW the follower knows: a higher one is answered at once
    max_bytes: int = wire(UINT32)          # 0 while the follower cannot write (its disk is FULL)
    max_wait_ms: int = wire(UINT32)
    state: ReplicaStateCode = wire(IntEnum8(ReplicaStateCode))   # FULL/FAILED: out of the ISR at once


@message
@dataclass
class ReplicaFetchResponse:
    error_code: WireError = wire(ERROR_CODE)
    leader_epoch: int = wire(INT32)
    hw: int = wire(INT64)
    leo: int = wire(INT64)
    log_start: int = wire(INT64)
    records: bytes = wire(BYTES)           # whole batches from fetch_offset, exactly as stored


@message
@dataclass
class EpochEndOffsetRequest:
    topic: str = wire(STRING)
    partition: int = wire(UINT32)
    follower_id: int = wire(INT32)
    leader_epoch: int = wire(INT32)        # the follower's view of the current epoch
    epoch: int = wire(INT32)               # the last epoch in the follower's log


@message
@dataclass
class EpochEndOffsetResponse:
    error_code: WireError = wire(ERROR_CODE)
    epoch: int = wire(INT32, default=-1)   # the largest epoch <= the asked one in the leader's history
    end_offset: int = wire(INT64, default=-1)   # where that epoch ends in the leader's log
    log_start: int = wire(INT64)
