"""fluvial's own SC ⇄ SPU control-plane messages (private ports). Pure, same codec as the public APIs.

Fluvio's internal API (`fluvio-wire.md` §14) is not visible to clients; fluvial designs its own so that
the SPU can report what Fluvio cannot: data-dir space and health, replica states (OK/FULL/FAILED).

    SPU → SC  3000 RegisterSpu            request/response: id and advertised addresses
    SPU → SC  3001 Heartbeat              request/response, every HEARTBEAT_INTERVAL: health, data dirs,
                                          replica offsets and states
    SPU → SC  3002 WatchAssignments       stream: first a full set, then changes — the replicas this
                                          SPU holds (leader, replica set, storage config) and peer SPUs
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

REGISTER_SPU = 3000
HEARTBEAT = 3001
WATCH_ASSIGNMENTS = 3002
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
class ReplicaReport:
    topic: str = wire(STRING)
    partition: int = wire(UINT32)
    is_leader: bool = wire(BOOL)
    hw: int = wire(INT64)
    leo: int = wire(INT64)
    log_start: int = wire(INT64)
    size: int = wire(INT64)
    state: ReplicaStateCode = wire(IntEnum8(ReplicaStateCode))


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
