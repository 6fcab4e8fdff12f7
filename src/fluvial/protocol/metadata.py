"""SC metadata objects: SPU, Topic and Partition specs and statuses (`reference/fluvio-wire.md` §9). Pure.

Every field lists its wire type and the object version it appeared in (`#[fluvio(min_version = N)]` of
`crates/fluvio-controlplane-metadata@v0.17.3`). Objects are encoded at the version of the request that
carries them (trap T7).

Enums:
* payload-free Rust enums are Python `IntEnum`s (`IntEnum8`); a tag the 0.17.3 client does not know fails
  its whole decode (trap T5), so never add members;
* Rust enums with payloads are `Variants`. A variant whose payload struct has no version-gated field is
  that struct itself (`TopicReplicaParam` is `ReplicaSpec::Computed`); a variant wrapping a struct with
  gated fields holds it in one `config` field (`RemoteMirror(config=RemoteMirrorConfig(...))`), because
  `Variants` does not gate the variant's own fields while the nested struct is gated like any struct.
* Variant `min_version`s are ignored by the reference derive (trap T6): e.g. `PartitionResolution.
  OUT_OF_STORAGE` and `ReplicaSpec::Mirror` decode at any version.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from fluvial.protocol.codec import (
    BOOL,
    DURATION,
    INT32,
    INT64,
    STRING,
    UINT16,
    UINT32,
    UINT64,
    IntEnum8,
    Map16,
    Option,
    Struct,
    Variants,
    Vec,
    message,
    wire,
)

# ------------------------------------------------------------------------------------------------- SPU


class SpuType(enum.IntEnum):
    MANAGED = 0
    CUSTOM = 1


class EncryptionType(enum.IntEnum):
    """`EncryptionEnum` of an SPU endpoint."""

    PLAINTEXT = 0
    SSL = 1


class SpuResolution(enum.IntEnum):
    """`SpuStatusResolution`; the Rust default is INIT."""

    ONLINE = 0
    OFFLINE = 1
    INIT = 2


@message
@dataclass
class IngressAddr:
    hostname: str | None = wire(Option(STRING))
    ip: str | None = wire(Option(STRING))


@message
@dataclass
class IngressPort:
    """An SPU's public address: the client dials `ingress[0].hostname` (else `.ip`) `:port`."""

    port: int = wire(UINT16)
    ingress: list[IngressAddr] = wire(Vec(Struct(IngressAddr)))
    encryption: EncryptionType = wire(IntEnum8(EncryptionType))


@message
@dataclass
class Endpoint:
    port: int = wire(UINT16)
    host: str = wire(STRING)
    encryption: EncryptionType = wire(IntEnum8(EncryptionType))


@message
@dataclass
class SpuSpec:
    id: int = wire(INT32)
    spu_type: SpuType = wire(IntEnum8(SpuType))
    public_endpoint: IngressPort = wire(Struct(IngressPort))
    private_endpoint: Endpoint = wire(Struct(Endpoint))
    rack: str | None = wire(Option(STRING))
    public_endpoint_local: Endpoint | None = wire(Option(Struct(Endpoint)), min_version=1)


@message
@dataclass
class SpuStatus:
    resolution: SpuResolution = wire(IntEnum8(SpuResolution), default=SpuResolution.INIT)


# ---------------------------------------------------------------------------------- shared by topics


class CompressionAlgorithm(enum.IntEnum):
    """Topic compression setting. Not the batch attribute codes (§11.2); the Rust default is ANY."""

    NONE = 0
    GZIP = 1
    SNAPPY = 2
    LZ4 = 3
    ANY = 4
    ZSTD = 5


@message
@dataclass
class SegmentBasedPolicy:
    """`CleanupPolicy::Segment` (tag 0): retention time of sealed segments."""

    time_in_seconds: int = wire(UINT32)


CLEANUP_POLICY = Variants({0: SegmentBasedPolicy})


@message
@dataclass
class TopicStorageConfig:
    segment_size: int | None = wire(Option(UINT32))
    max_partition_size: int | None = wire(Option(UINT64))


@message
@dataclass
class Bounds:
    count: int = wire(UINT64)
    age: float | None = wire(Option(DURATION))    # seconds


@message
@dataclass
class Transform:
    uses: str = wire(STRING)
    with_: dict[str, str] = wire(Map16(STRING, STRING))   # Rust `with`


@message
@dataclass
class Filter:
    transform: Transform = wire(Struct(Transform))


@message
@dataclass
class Deduplication:
    bounds: Bounds = wire(Struct(Bounds))
    filter: Filter = wire(Struct(Filter))


# --------------------------------------------------------------------------------- partition mirrors


@message
@dataclass
class RemotePartitionConfig:
    home_cluster: str = wire(STRING)
    home_spu_key: str = wire(STRING)
    home_spu_id: int = wire(INT32)
    home_spu_endpoint: str = wire(STRING)
    target: bool = wire(BOOL, min_version=18)


@message
@dataclass
class HomePartitionConfig:
    remote_cluster: str = wire(STRING)
    remote_replica: str = wire(STRING)
    source: bool = wire(BOOL, min_version=18)


@message
@dataclass
class PartitionMirrorRemote:
    """`PartitionMirrorConfig::Remote` (tag 0)."""

    config: RemotePartitionConfig = wire(Struct(RemotePartitionConfig))


@message
@dataclass
class PartitionMirrorHome:
    """`PartitionMirrorConfig::Home` (tag 1)."""

    config: HomePartitionConfig = wire(Struct(HomePartitionConfig))


PARTITION_MIRROR_CONFIG = Variants({0: PartitionMirrorRemote, 1: PartitionMirrorHome})
PartitionMirrorConfig = PartitionMirrorRemote | PartitionMirrorHome

# ---------------------------------------------------------------------------------------------- Topic


@message
@dataclass
class PartitionMap:
    id: int = wire(UINT32)
    replicas: list[int] = wire(Vec(INT32))
    mirror: PartitionMirrorConfig | None = wire(Option(PARTITION_MIRROR_CONFIG), min_version=14)


@message
@dataclass
class PartitionMaps:
    """`ReplicaSpec::Assigned` (tag 0): explicit replica assignment per partition."""

    maps: list[PartitionMap] = wire(Vec(Struct(PartitionMap)))


@message
@dataclass
class TopicReplicaParam:
    """`ReplicaSpec::Computed` (tag 1): the SC places the replicas."""

    partitions: int = wire(UINT32)
    replication_factor: int = wire(UINT32)
    ignore_rack_assignment: bool = wire(BOOL)


@message
@dataclass
class SpuMirrorConfig:
    id: int = wire(INT32)
    key: str = wire(STRING)
    endpoint: str = wire(STRING)


@message
@dataclass
class RemoteMirrorConfig:
    home_cluster: str = wire(STRING)
    home_spus: list[SpuMirrorConfig] = wire(Vec(Struct(SpuMirrorConfig)))
    target: bool = wire(BOOL, min_version=18)


@message
@dataclass
class HomeMirrorConfig:
    """Rust `HomeMirrorConfig(HomeMirrorInner)`: a newtype, same bytes as the inner struct."""

    partitions: list[HomePartitionConfig] = wire(Vec(Struct(HomePartitionConfig)))
    source: bool = wire(BOOL, min_version=18)


@message
@dataclass
class RemoteMirror:
    """`MirrorConfig::Remote` (tag 0)."""

    config: RemoteMirrorConfig = wire(Struct(RemoteMirrorConfig))


@message
@dataclass
class HomeMirror:
    """`MirrorConfig::Home` (tag 1)."""

    config: HomeMirrorConfig = wire(Struct(HomeMirrorConfig))


MIRROR_CONFIG = Variants({0: RemoteMirror, 1: HomeMirror})
MirrorConfig = RemoteMirror | HomeMirror


@message
@dataclass
class MirrorReplicas:
    """`ReplicaSpec::Mirror` (tag 2; "min_version 14" on the variant is ignored, trap T6)."""

    config: MirrorConfig = wire(MIRROR_CONFIG)


REPLICA_SPEC = Variants({0: PartitionMaps, 1: TopicReplicaParam, 2: MirrorReplicas})
ReplicaSpec = PartitionMaps | TopicReplicaParam | MirrorReplicas


@message
@dataclass
class TopicSpec:
    replicas: ReplicaSpec = wire(REPLICA_SPEC)     # default: Computed{0, 0, false}
    cleanup_policy: SegmentBasedPolicy | None = wire(Option(CLEANUP_POLICY), min_version=3)
    storage: TopicStorageConfig | None = wire(Option(Struct(TopicStorageConfig)), min_version=4)
    compression_type: CompressionAlgorithm = wire(IntEnum8(CompressionAlgorithm), min_version=6,
                                                  default=CompressionAlgorithm.ANY)
    deduplication: Deduplication | None = wire(Option(Struct(Deduplication)), min_version=12)
    system: bool = wire(BOOL, min_version=13)


class TopicResolution(enum.IntEnum):
    INIT = 0
    PENDING = 1
    INSUFFICIENT_RESOURCES = 2
    INVALID_CONFIG = 3
    PROVISIONED = 4
    DELETING = 5


@message
@dataclass
class TopicStatus:
    resolution: TopicResolution = wire(IntEnum8(TopicResolution))
    replica_map: dict[int, list[int]] = wire(Map16(UINT32, Vec(INT32)))      # partition -> SPU ids
    mirror_map: dict[int, PartitionMirrorConfig] = wire(Map16(UINT32, PARTITION_MIRROR_CONFIG),
                                                        min_version=14)
    reason: str = wire(STRING)


# ------------------------------------------------------------------------------------------ Partition


@message
@dataclass
class PartitionSpec:
    """Object key `"<topic>-<partition>"`. The client routes produce and fetch to `leader`."""

    leader: int = wire(INT32)
    replicas: list[int] = wire(Vec(INT32))                 # leader first
    cleanup_policy: SegmentBasedPolicy | None = wire(Option(CLEANUP_POLICY), min_version=4)  # v4, not v3
    storage: TopicStorageConfig | None = wire(Option(Struct(TopicStorageConfig)), min_version=4)
    compression_type: CompressionAlgorithm = wire(IntEnum8(CompressionAlgorithm), min_version=6,
                                                  default=CompressionAlgorithm.ANY)
    deduplication: Deduplication | None = wire(Option(Struct(Deduplication)), min_version=12)
    system: bool = wire(BOOL, min_version=13)
    mirror: PartitionMirrorConfig | None = wire(Option(PARTITION_MIRROR_CONFIG), min_version=14)


class PartitionResolution(enum.IntEnum):
    OFFLINE = 0
    ONLINE = 1
    LEADER_OFFLINE = 2
    ELECTION_LEADER_FOUND = 3
    OUT_OF_STORAGE = 4     # since v0.17.3: send only to clients at object version >= 19 (T6)


PARTITION_SIZE_ERROR = -1
PARTITION_SIZE_NOT_SUPPORTED = -2


@message
@dataclass
class ReplicaStatus:
    spu: int = wire(INT32, default=-1)
    hw: int = wire(INT64, default=-1)
    leo: int = wire(INT64, default=-1)


@message
@dataclass
class PartitionStatus:
    resolution: PartitionResolution = wire(IntEnum8(PartitionResolution))
    leader: ReplicaStatus = wire(Struct(ReplicaStatus))
    lsr: int = wire(UINT32)            # followers whose LEO equals the leader's
    replicas: list[ReplicaStatus] = wire(Vec(Struct(ReplicaStatus)))    # followers only
    size: int = wire(INT64, min_version=5, default=PARTITION_SIZE_NOT_SUPPORTED)   # bytes
    is_being_deleted: bool = wire(BOOL)
    base_offset: int = wire(INT64, min_version=16)


# ---------------------------------------------------------------------------------------- TableFormat
# `crates/fluvio-controlplane-metadata/src/tableformat/{spec,status}.rs` of v0.17.3: no version-gated
# fields; payload-free enums are u8 tags.


class DataFormat(enum.IntEnum):
    JSON = 0


class TableFormatAlignment(enum.IntEnum):
    LEFT = 0
    RIGHT = 1
    CENTER = 2


class Color(enum.IntEnum):
    BLUE = 0
    YELLOW = 1
    GREEN = 2


@message
@dataclass
class TableFormatColumnConfig:
    header_label: str | None = wire(Option(STRING))
    width: str | None = wire(Option(STRING))
    alignment: TableFormatAlignment | None = wire(Option(IntEnum8(TableFormatAlignment)))
    key_path: str = wire(STRING)
    format: str | None = wire(Option(STRING))
    display: bool | None = wire(Option(BOOL))
    primary_key: bool | None = wire(Option(BOOL))
    header_bg_color: Color | None = wire(Option(IntEnum8(Color)))
    header_text_color: Color | None = wire(Option(IntEnum8(Color)))


@message
@dataclass
class TableFormatSpec:
    name: str = wire(STRING)
    input_format: DataFormat | None = wire(Option(IntEnum8(DataFormat)))
    columns: list[TableFormatColumnConfig] | None = wire(Option(Vec(Struct(TableFormatColumnConfig))))
    smartmodule: str | None = wire(Option(STRING))


class TableFormatResolution(enum.IntEnum):
    INIT = 0
    INVALID = 1
    RUNNING = 2
    PENDING = 3
    FAILED = 4


@message
@dataclass
class TableFormatStatus:
    resolution: TableFormatResolution = wire(IntEnum8(TableFormatResolution), default=TableFormatResolution.INIT)
    reason: str | None = wire(Option(STRING))
