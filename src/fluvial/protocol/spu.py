"""SPU public API messages (`reference/fluvio-wire.md` §10, §12). Pure.

Every message lists its fields in wire order with the versions they are present in; `codec.encode` /
`codec.decode` walk them. Nested messages are encoded at the request's version (trap T7), so the
SmartModule parameters inside a Produce or StreamFetch follow the same gates.

Keys and versions (§6.3, §10). fluvial's SPU advertises what the reference SPU advertises — Produce 0..24,
Fetch 0..24, FetchOffsets 24..24, StreamFetch 0..24 (0..15 to a client that sends an empty
`client_version`), UpdateOffsets 0..0 — and additionally the consumer-offset keys 1006/1007/1008 as
23..24. The reference SPU does not advertise those three; the 0.17.3 client then sends them at its
default, 24, and with 23..24 advertised it negotiates min(24, 24) = 24: the same bytes either way, while
fluvial's own client can see that the SPU supports them. The decoders below accept every version 0..24.

Two Fluvio quirks live here rather than in handlers:
* Produce carries isolation as an i16 "acks" (1 = ReadUncommitted, -1 = ReadCommitted, any negative
  decodes as ReadCommitted) and its `transactional_id` is always on the wire; a negative timeout is a
  decode error. StreamFetch and Fetch carry isolation as a u8 (trap T10).
* A StreamFetch response ends with the RecordSet, so `encode_stream_fetch_header` can produce every byte
  up to and including the RecordSet's i32 length, and the server can `sendfile` the stored batches after it.
"""

from __future__ import annotations

import dataclasses
import enum
from dataclasses import dataclass
from typing import Any, NamedTuple

from fluvial import defaults as d
from fluvial.errors import ProtocolError
from fluvial.protocol.codec import (
    BYTES,
    DURATION,
    ERROR_CODE,
    INT16,
    INT32,
    INT64,
    RECORD_SET,
    RECORD_SET_VIEW,
    STRING,
    UINT32,
    UINT64,
    IntEnum8,
    Map16,
    Option,
    Reader,
    Struct,
    Variants,
    Vec,
    Versioned,
    WireError,
    WireType,
    encode,
    message,
    wire,
)
from fluvial.protocol.frame import ApiVersionKey, ApiVersionsRequest, ApiVersionsResponse


class SpuApiKey(enum.IntEnum):
    """SPU public API keys (`SpuServerApiKey`, u16 in the request header)."""

    PRODUCE = 0
    FETCH = 1
    API_VERSIONS = 18
    FETCH_OFFSETS = 1002
    STREAM_FETCH = 1003
    UPDATE_OFFSETS = 1005
    UPDATE_CONSUMER_OFFSET = 1006
    DELETE_CONSUMER_OFFSET = 1007
    FETCH_CONSUMER_OFFSETS = 1008


# Version gates of the SPU schema (crates/fluvio-spu-schema), named as upstream names them.
PRODUCER_TRANSFORMATION_API = 8        # Produce.smartmodules
WASM_MODULE_API = 11                   # StreamFetch.wasm_module (until 18), next_filter_offset
SMART_MODULE_API = 16                  # StreamFetch.smartmodule / derivedstream (until 18)
CHAIN_SMARTMODULE_API = 18             # StreamFetch.smartmodules
SMARTMODULE_LOOKBACK = 20              # SmartModuleExtraParams.lookback
SMARTMODULE_LOOKBACK_AGE = 21          # Lookback.age
OFFSET_MANAGEMENT_API = 23             # StreamFetch.consumer_id; FetchOffsets.consumer_id (23 only)
CONSUMER_OFFSETS_FILTER_API = 24       # FetchConsumerOffsets.filter_opts
STREAM_FETCH_FALLBACK_VERSION = 17     # what the 0.17.3 client sends when 1003 is not advertised
STREAM_FETCH_LEGACY_MAX_VERSION = 15   # advertised to clients with an empty client_version (<= 0.9.12)
SPU_PLATFORM_VERSION = "0.0.0"         # the reference SPU's platform version (clients do not check it)


# ---------------------------------------------------------------------------------------------- isolation


class Isolation(enum.IntEnum):
    """u8 on the wire of StreamFetch and Fetch; Produce uses `acks` (see `isolation_from_acks`)."""

    READ_UNCOMMITTED = 0
    READ_COMMITTED = 1


ISOLATION = IntEnum8(Isolation)
ACKS_READ_UNCOMMITTED = 1
ACKS_READ_COMMITTED = -1


def isolation_from_acks(acks: int) -> Isolation:
    """Produce's i16 `acks`: any negative value means ReadCommitted (wait for HW), else ReadUncommitted."""
    return Isolation.READ_COMMITTED if acks < 0 else Isolation.READ_UNCOMMITTED


def acks_from_isolation(isolation: Isolation) -> int:
    return ACKS_READ_COMMITTED if isolation is Isolation.READ_COMMITTED else ACKS_READ_UNCOMMITTED


class _Acks(WireType):
    """Produce isolation: i16 acks on the wire, `Isolation` in the message."""

    def encode(self, value: Any, out: bytearray, version: int) -> None:
        INT16.encode(acks_from_isolation(value), out, version)

    def decode(self, r: Reader, version: int) -> Isolation:
        return isolation_from_acks(INT16.decode(r, version))

    def default(self) -> Isolation:
        return Isolation.READ_UNCOMMITTED


class _TimeoutMs(WireType):
    """Produce timeout: i32 milliseconds; negative is a decode error (Rust `Duration` cannot hold it)."""

    def encode(self, value: Any, out: bytearray, version: int) -> None:
        if value < 0:
            raise ProtocolError(f"negative produce timeout {value} ms")
        INT32.encode(value, out, version)

    def decode(self, r: Reader, version: int) -> int:
        value = INT32.decode(r, version)
        if value < 0:
            raise ProtocolError(f"negative produce timeout {value} ms")
        return value


ACKS = _Acks()
TIMEOUT_MS = _TimeoutMs()


# -------------------------------------------------------------------------------------------- ReplicaKey


@message
@dataclass
class ReplicaKey:
    topic: str = wire(STRING)
    partition: int = wire(UINT32)


# --------------------------------------------------------------------------- SmartModuleInvocation (§10.4.1)


@message
@dataclass
class Lookback:
    last: int = wire(UINT64)
    age: float | None = wire(Option(DURATION), min_version=SMARTMODULE_LOOKBACK_AGE)   # seconds


@message
@dataclass
class SmartModuleExtraParams:
    inner: dict[str, str] = wire(Map16(STRING, STRING))
    lookback: Lookback | None = wire(Option(Struct(Lookback)), min_version=SMARTMODULE_LOOKBACK)


# SmartModuleInvocationWasm (enum8)
@message
@dataclass
class WasmAdHoc:
    """Tag 1: a gzip-compressed WASM module sent with the request."""

    payload: bytes = wire(BYTES)


@message
@dataclass
class WasmPredefined:
    """Tag 0: the name of a SmartModule stored on the cluster."""

    name: str = wire(STRING)


SmartModuleInvocationWasm = WasmAdHoc | WasmPredefined
SMARTMODULE_WASM = Variants({1: WasmAdHoc, 0: WasmPredefined})   # AdHoc first: it is upstream's default


# SmartModuleContextData (enum8)
@message
@dataclass
class ContextNone:
    pass


@message
@dataclass
class ContextAggregate:
    accumulator: bytes = wire(BYTES)


@message
@dataclass
class ContextJoin:
    topic: str = wire(STRING)


@message
@dataclass
class ContextJoinStream:
    topic: str = wire(STRING)
    derivedstream: str = wire(STRING)


SmartModuleContextData = ContextNone | ContextAggregate | ContextJoin | ContextJoinStream
SMARTMODULE_CONTEXT = Variants({0: ContextNone, 1: ContextAggregate, 2: ContextJoin, 3: ContextJoinStream})


# SmartModuleKind (enum8). Upstream's min/max_version on variants are not honoured (trap T6).
@message
@dataclass
class KindFilter:
    pass


@message
@dataclass
class KindMap:
    pass


@message
@dataclass
class KindArrayMap:
    pass


@message
@dataclass
class KindAggregate:
    accumulator: bytes = wire(BYTES)


@message
@dataclass
class KindFilterMap:
    pass


@message
@dataclass
class KindJoin:
    topic: str = wire(STRING)


@message
@dataclass
class KindJoinStream:
    topic: str = wire(STRING)
    derivedstream: str = wire(STRING)


@message
@dataclass
class KindGeneric:
    context: SmartModuleContextData = wire(SMARTMODULE_CONTEXT)


SmartModuleKind = (KindFilter | KindMap | KindArrayMap | KindAggregate | KindFilterMap | KindJoin
                   | KindJoinStream | KindGeneric)
SMARTMODULE_KIND = Variants({0: KindFilter, 1: KindMap, 2: KindArrayMap, 3: KindAggregate, 4: KindFilterMap,
                             5: KindJoin, 6: KindJoinStream, 7: KindGeneric})


@message
@dataclass
class SmartModuleInvocation:
    wasm: SmartModuleInvocationWasm = wire(SMARTMODULE_WASM)
    kind: SmartModuleKind = wire(SMARTMODULE_KIND)
    params: SmartModuleExtraParams = wire(Struct(SmartModuleExtraParams))


@message
@dataclass
class DerivedStreamInvocation:
    stream: str = wire(STRING)
    params: SmartModuleExtraParams = wire(Struct(SmartModuleExtraParams))


SMARTMODULES = Vec(Struct(SmartModuleInvocation))


# ------------------------------------------------------------------------------------------- Produce (0)


@message
@dataclass
class PartitionProduceData:
    partition_index: int = wire(UINT32)
    records: bytes | memoryview = wire(RECORD_SET_VIEW)   # raw batches (decoded: a view into the frame)


@message
@dataclass
class TopicProduceData:
    name: str = wire(STRING)
    partitions: list[PartitionProduceData] = wire(Vec(Struct(PartitionProduceData)))


@message
@dataclass
class ProduceRequest(Versioned):
    API_KEY = SpuApiKey.PRODUCE
    MIN_VERSION = 0
    MAX_VERSION = d.SPU_API_VERSION

    transactional_id: str | None = wire(Option(STRING))   # always present: upstream's min_version 3 is not honoured
    isolation: Isolation = wire(ACKS)
    timeout_ms: int = wire(TIMEOUT_MS)
    topics: list[TopicProduceData] = wire(Vec(Struct(TopicProduceData)))
    smartmodules: list[SmartModuleInvocation] = wire(SMARTMODULES, min_version=PRODUCER_TRANSFORMATION_API)


@message
@dataclass
class PartitionProduceResponse:
    partition_index: int = wire(UINT32)
    error_code: WireError = wire(ERROR_CODE)
    base_offset: int = wire(INT64)
    log_append_time_ms: int = wire(INT64, min_version=2)
    log_start_offset: int = wire(INT64, min_version=5)


@message
@dataclass
class TopicProduceResponse:
    name: str = wire(STRING)
    partitions: list[PartitionProduceResponse] = wire(Vec(Struct(PartitionProduceResponse)))


@message
@dataclass
class ProduceResponse:
    responses: list[TopicProduceResponse] = wire(Vec(Struct(TopicProduceResponse)))
    throttle_time_ms: int = wire(INT32, min_version=1)


# ------------------------------------------------------------------------- Fetch (1), not used by clients


@message
@dataclass
class FetchPartition:
    partition_index: int = wire(UINT32)
    current_leader_epoch: int = wire(INT32, min_version=9)
    fetch_offset: int = wire(INT64)
    log_start_offset: int = wire(INT64, min_version=5)
    max_bytes: int = wire(INT32)


@message
@dataclass
class FetchableTopic:
    name: str = wire(STRING)
    fetch_partitions: list[FetchPartition] = wire(Vec(Struct(FetchPartition)))


@message
@dataclass
class ForgottenTopic:
    name: str = wire(STRING, min_version=7)
    forgotten_partition_indexes: list[int] = wire(Vec(INT32), min_version=7)


@message
@dataclass
class FetchRequest(Versioned):
    API_KEY = SpuApiKey.FETCH
    MIN_VERSION = 0
    MAX_VERSION = d.SPU_API_VERSION

    max_wait: int = wire(INT32)
    min_bytes: int = wire(INT32)
    max_bytes: int = wire(INT32, min_version=3)
    isolation_level: Isolation = wire(ISOLATION, min_version=4)
    topics: list[FetchableTopic] = wire(Vec(Struct(FetchableTopic)))
    forgotten: list[ForgottenTopic] = wire(Vec(Struct(ForgottenTopic)), min_version=7)


@message
@dataclass
class AbortedTransaction:
    producer_id: int = wire(INT64)
    first_offset: int = wire(INT64)


@message
@dataclass
class FetchablePartitionResponse:
    partition_index: int = wire(UINT32)
    error_code: WireError = wire(ERROR_CODE)
    high_watermark: int = wire(INT64)
    next_filter_offset: int = wire(INT64, min_version=WASM_MODULE_API)
    log_start_offset: int = wire(INT64)
    aborted: list[AbortedTransaction] | None = wire(Option(Vec(Struct(AbortedTransaction))))
    records: bytes = wire(RECORD_SET)          # must stay the last field: see encode_stream_fetch_header


@message
@dataclass
class FetchableTopicResponse:
    name: str = wire(STRING)
    partitions: list[FetchablePartitionResponse] = wire(Vec(Struct(FetchablePartitionResponse)))


@message
@dataclass
class FetchResponse:
    throttle_time_ms: int = wire(INT32)
    error_code: WireError = wire(ERROR_CODE)
    session_id: int = wire(INT32)
    topics: list[FetchableTopicResponse] = wire(Vec(Struct(FetchableTopicResponse)))


# ------------------------------------------------------------------------------------ FetchOffsets (1002)


@message
@dataclass
class FetchOffsetPartition:
    partition_index: int = wire(UINT32)


@message
@dataclass
class FetchOffsetTopic:
    name: str = wire(STRING)
    partitions: list[FetchOffsetPartition] = wire(Vec(Struct(FetchOffsetPartition)))


@message
@dataclass
class FetchOffsetsRequest(Versioned):
    API_KEY = SpuApiKey.FETCH_OFFSETS
    MIN_VERSION = d.SPU_API_VERSION
    MAX_VERSION = d.SPU_API_VERSION

    topics: list[FetchOffsetTopic] = wire(Vec(Struct(FetchOffsetTopic)))
    consumer_id: str | None = wire(Option(STRING), min_version=OFFSET_MANAGEMENT_API,
                                   max_version=OFFSET_MANAGEMENT_API)   # deprecated upstream


@message
@dataclass
class FetchOffsetPartitionResponse:
    error_code: WireError = wire(ERROR_CODE)
    partition_index: int = wire(UINT32)
    start_offset: int = wire(INT64)            # log start offset
    last_stable_offset: int = wire(INT64)      # the reference SPU sends the HW here


@message
@dataclass
class FetchOffsetTopicResponse:
    name: str = wire(STRING)
    partitions: list[FetchOffsetPartitionResponse] = wire(Vec(Struct(FetchOffsetPartitionResponse)))


@message
@dataclass
class FetchOffsetsResponse:
    topics: list[FetchOffsetTopicResponse] = wire(Vec(Struct(FetchOffsetTopicResponse)))


# ------------------------------------------------------------------------------------- StreamFetch (1003)


@message
@dataclass
class StreamFetchRequest(Versioned):
    API_KEY = SpuApiKey.STREAM_FETCH
    MIN_VERSION = 0
    MAX_VERSION = d.SPU_API_VERSION

    topic: str = wire(STRING)
    partition: int = wire(UINT32)
    fetch_offset: int = wire(INT64)            # absolute offset to start from
    max_bytes: int = wire(INT32)               # the 0.17.3 client sends 1 048 890 by default
    isolation: Isolation = wire(ISOLATION)
    wasm_module: bytes = wire(BYTES, min_version=WASM_MODULE_API, max_version=CHAIN_SMARTMODULE_API)
    smartmodule: SmartModuleInvocation | None = wire(Option(Struct(SmartModuleInvocation)),
                                                     min_version=SMART_MODULE_API,
                                                     max_version=CHAIN_SMARTMODULE_API)
    derivedstream: DerivedStreamInvocation | None = wire(Option(Struct(DerivedStreamInvocation)),
                                                         min_version=SMART_MODULE_API,
                                                         max_version=CHAIN_SMARTMODULE_API)
    smartmodules: list[SmartModuleInvocation] = wire(SMARTMODULES, min_version=CHAIN_SMARTMODULE_API)
    consumer_id: str | None = wire(Option(STRING), min_version=OFFSET_MANAGEMENT_API)


@message
@dataclass
class StreamFetchResponse:
    """One frame of the stream. `partition.records` is the last field on the wire."""

    topic: str = wire(STRING)
    stream_id: int = wire(UINT32)
    partition: FetchablePartitionResponse = wire(Struct(FetchablePartitionResponse))


assert FetchablePartitionResponse.WIRE_FIELDS[-1][0] == "records"   # type: ignore[attr-defined]
assert StreamFetchResponse.WIRE_FIELDS[-1][0] == "partition"          # type: ignore[attr-defined]
_RECORD_SET_LENGTH_BYTES = 4


def encode_stream_fetch_header(response: StreamFetchResponse, records_len: int, version: int) -> bytes:
    """Every byte of `response` at `version` up to and including the RecordSet's i32 length, for a
    RecordSet of `records_len` bytes that the caller sends next (e.g. with `os.sendfile`).

    `response.partition.records` is ignored. `header + records == encode(response with those records)`.
    """
    if records_len < 0:
        raise ProtocolError(f"negative RecordSet length {records_len}")
    empty = dataclasses.replace(response, partition=dataclasses.replace(response.partition, records=b""))
    out = bytearray(encode(empty, version)[:-_RECORD_SET_LENGTH_BYTES])
    INT32.encode(records_len, out, version)
    return bytes(out)


# ----------------------------------------------------------------------------------- UpdateOffsets (1005)


@message
@dataclass
class OffsetUpdate:
    offset: int = wire(INT64)
    session_id: int = wire(UINT32)             # the StreamFetch stream_id


@message
@dataclass
class UpdateOffsetsRequest(Versioned):
    API_KEY = SpuApiKey.UPDATE_OFFSETS
    MIN_VERSION = 0
    MAX_VERSION = 0

    offsets: list[OffsetUpdate] = wire(Vec(Struct(OffsetUpdate)))


@message
@dataclass
class OffsetUpdateStatus:
    session_id: int = wire(UINT32)
    error: WireError = wire(ERROR_CODE)


@message
@dataclass
class UpdateOffsetsResponse:
    status: list[OffsetUpdateStatus] = wire(Vec(Struct(OffsetUpdateStatus)))


# --------------------------------------------------------------------- consumer offsets (1006, 1007, 1008)


@message
@dataclass
class UpdateConsumerOffsetRequest(Versioned):
    API_KEY = SpuApiKey.UPDATE_CONSUMER_OFFSET
    MIN_VERSION = OFFSET_MANAGEMENT_API
    MAX_VERSION = d.SPU_API_VERSION

    offset: int = wire(INT64)                  # offset of the last consumed record
    session_id: int = wire(UINT32)             # the StreamFetch stream_id


@message
@dataclass
class UpdateConsumerOffsetResponse:
    offset: int = wire(INT64)
    error_code: WireError = wire(ERROR_CODE)


@message
@dataclass
class DeleteConsumerOffsetRequest(Versioned):
    API_KEY = SpuApiKey.DELETE_CONSUMER_OFFSET
    MIN_VERSION = OFFSET_MANAGEMENT_API
    MAX_VERSION = d.SPU_API_VERSION

    replica_id: ReplicaKey = wire(Struct(ReplicaKey))
    consumer_id: str = wire(STRING)


@message
@dataclass
class DeleteConsumerOffsetResponse:
    error_code: WireError = wire(ERROR_CODE)


@message
@dataclass
class FilterOpts:
    replica_id: ReplicaKey | None = wire(Option(Struct(ReplicaKey)))
    consumer_id: str | None = wire(Option(STRING))


@message
@dataclass
class FetchConsumerOffsetsRequest(Versioned):
    API_KEY = SpuApiKey.FETCH_CONSUMER_OFFSETS
    MIN_VERSION = OFFSET_MANAGEMENT_API
    MAX_VERSION = d.SPU_API_VERSION

    filter_opts: FilterOpts | None = wire(Option(Struct(FilterOpts)), min_version=CONSUMER_OFFSETS_FILTER_API)


@message
@dataclass
class ConsumerOffset:
    consumer_id: str = wire(STRING)
    replica_id: ReplicaKey = wire(Struct(ReplicaKey))
    offset: int = wire(INT64)
    modified_time: int = wire(UINT64)          # unix seconds


@message
@dataclass
class FetchConsumerOffsetsResponse:
    error_code: WireError = wire(ERROR_CODE)
    consumers: list[ConsumerOffset] = wire(Vec(Struct(ConsumerOffset)))


# ------------------------------------------------------------------------------------- dispatch and versions


class SpuApi(NamedTuple):
    request: type
    response: type


SPU_APIS: dict[SpuApiKey, SpuApi] = {
    SpuApiKey.API_VERSIONS: SpuApi(ApiVersionsRequest, ApiVersionsResponse),
    SpuApiKey.PRODUCE: SpuApi(ProduceRequest, ProduceResponse),
    SpuApiKey.FETCH: SpuApi(FetchRequest, FetchResponse),
    SpuApiKey.FETCH_OFFSETS: SpuApi(FetchOffsetsRequest, FetchOffsetsResponse),
    SpuApiKey.STREAM_FETCH: SpuApi(StreamFetchRequest, StreamFetchResponse),
    SpuApiKey.UPDATE_OFFSETS: SpuApi(UpdateOffsetsRequest, UpdateOffsetsResponse),
    SpuApiKey.UPDATE_CONSUMER_OFFSET: SpuApi(UpdateConsumerOffsetRequest, UpdateConsumerOffsetResponse),
    SpuApiKey.DELETE_CONSUMER_OFFSET: SpuApi(DeleteConsumerOffsetRequest, DeleteConsumerOffsetResponse),
    SpuApiKey.FETCH_CONSUMER_OFFSETS: SpuApi(FetchConsumerOffsetsRequest, FetchConsumerOffsetsResponse),
}

# Advertised in this order: the reference SPU's five keys first (§6.3), then the consumer-offset keys.
ADVERTISED_REQUESTS: tuple[type, ...] = (
    ProduceRequest, FetchRequest, FetchOffsetsRequest, StreamFetchRequest, UpdateOffsetsRequest,
    UpdateConsumerOffsetRequest, DeleteConsumerOffsetRequest, FetchConsumerOffsetsRequest,
)


def spu_api_keys(client_version: str) -> list[ApiVersionKey]:
    """The key ranges the SPU advertises; StreamFetch tops out at 15 for a client without a version."""
    keys = []
    for req in ADVERTISED_REQUESTS:
        hi = req.MAX_VERSION
        if req is StreamFetchRequest and not client_version:
            hi = STREAM_FETCH_LEGACY_MAX_VERSION
        keys.append(ApiVersionKey(api_key=int(req.API_KEY), min_version=req.MIN_VERSION, max_version=hi))
    return keys


def spu_api_versions_response(client_version: str,
                              platform_version: str = SPU_PLATFORM_VERSION) -> ApiVersionsResponse:
    return ApiVersionsResponse(api_keys=spu_api_keys(client_version), platform_version=platform_version)
