"""SC public API: Create, Delete, List, Watch, Update and their object envelope
(`reference/fluvio-wire.md` §8, §9.1). Pure.

Every request body of these APIs, and every List/Watch response body, is a TypeBuffer (§8.1):
`label: String` + `u32` length + the inner message encoded at the request's version. The inner message
depends on the label ("Topic", "Partition", "SPU", "SmartModule", "TableFormat"), so the generic Rust containers (`Metadata<S>`,
`MetadataUpdate<S>`, `CreateRequest<S>`, ...) are one message class per label, built by `_object_type`
from the label's spec, status and delete-key types and kept in `OBJECT_TYPES`.

Servers and clients never handle the envelope themselves:

    label, req = decode_typed_request(api_key, body, version)     # SC side
    body = encode_typed("Topic", TOPIC.metadata_update(epoch=1, all=[...]), version)
    label, resp = decode_typed_response(ScApiKey.WATCH, body, version)   # client side

Create, Delete and Update answer a plain `Status` (no envelope): `codec.encode(Status(...), version)`.
Only the TypeBuffer encoding (version >= 11) exists here; older versions and versions above 19 are
refused with ProtocolError, as are unknown labels.
"""

from __future__ import annotations

import dataclasses
import enum
from dataclasses import dataclass
from typing import Any

from fluvial.errors import ProtocolError
from fluvial.protocol.codec import (
    BOOL,
    BYTES,
    ERROR_CODE,
    INT64,
    STRING,
    UINT32,
    IntEnum8,
    Option,
    Struct,
    Variants,
    Vec,
    WireError,
    WireType,
    decode,
    encode,
    message,
    wire,
)
from fluvial.protocol.metadata import (
    PartitionSpec,
    PartitionStatus,
    SpuSpec,
    SpuStatus,
    TableFormatSpec,
    TableFormatStatus,
    TopicSpec,
    TopicStatus,
)
from fluvial.protocol.smartmodule import SmartModuleSpec, SmartModuleStatus


class ScApiKey(enum.IntEnum):
    """SC public API keys (`AdminPublicApiKey`, u16)."""

    CREATE = 1001
    DELETE = 1002
    LIST = 1003
    WATCH = 1004
    UPDATE = 1006


DYN_OBJ_VERSION = 11       # first version with the TypeBuffer envelope
COMMON_VERSION = 19        # the SC object version of Fluvio v0.17.3

# Versions this codec serves, per key, for the SC's ApiVersions answer: the reference ranges (§6.3)
# clamped to the envelope encoding (a client of 0.17.3 sends 19 for all of them).
SC_API_VERSIONS: dict[ScApiKey, tuple[int, int]] = {
    ScApiKey.CREATE: (DYN_OBJ_VERSION, COMMON_VERSION),
    ScApiKey.DELETE: (DYN_OBJ_VERSION, COMMON_VERSION),
    ScApiKey.LIST: (15, COMMON_VERSION),
    ScApiKey.WATCH: (15, COMMON_VERSION),
    ScApiKey.UPDATE: (DYN_OBJ_VERSION, COMMON_VERSION),
}

# ------------------------------------------------------------------------------- label-free messages


@message
@dataclass
class TypeBuffer:
    """The object envelope: label + (u32 length + inner bytes), which is exactly `Bytes`."""

    label: str = wire(STRING)
    payload: bytes = wire(BYTES)


@message
@dataclass
class Status:
    """Response of Create, Delete and Update."""

    name: str = wire(STRING)
    error_code: WireError = wire(ERROR_CODE)
    error_message: str | None = wire(Option(STRING))


@message
@dataclass
class ListRequest:
    name_filters: list[str] = wire(Vec(STRING))   # empty: all; else objects whose name contains one
    summary: bool = wire(BOOL, min_version=10)
    system: bool = wire(BOOL, min_version=13)     # reference SC: only objects whose `system` equals this


@message
@dataclass
class WatchRequest:
    epoch: int = wire(INT64)                      # always 0, ignored
    summary: bool = wire(BOOL, min_version=10)


class MsgType(enum.IntEnum):
    UPDATE = 0
    DELETE = 1


@message
@dataclass
class AddPartition:
    """`UpdateTopicAction::AddPartition` (tag 0)."""

    count: int = wire(UINT32)


@message
@dataclass
class AddMirror:
    """`UpdateTopicAction::AddMirror` (tag 1)."""

    remote_cluster: str = wire(STRING)
    home_to_mirror: bool = wire(BOOL)


UPDATE_TOPIC_ACTION = Variants({0: AddPartition, 1: AddMirror})


@message
@dataclass
class TopicUpdateRequest:
    key: str = wire(STRING)                       # topic name
    action: AddPartition | AddMirror = wire(UPDATE_TOPIC_ACTION)


# ----------------------------------------------------------------------------- per-label containers


@dataclass(frozen=True)
class ObjectType:
    """One label's spec and status and the generic containers instantiated for them."""

    label: str
    spec: type
    status: type
    metadata: type             # Metadata<S>: name, spec, status
    change: type               # Message<Metadata<S>>: header MsgType, content
    metadata_update: type      # MetadataUpdate<S>: epoch, changes, all   (Watch response)
    list_response: type        # ListResponse<S>: objects = Vec<Metadata<S>>
    create_request: type       # CreateRequest<S>: name, dry_run, timeout_ms (v7), spec
    delete_request: type       # DeleteRequest<S>: key, force (v13)
    update_request: type | None

    def request_class(self, key: ScApiKey) -> type:
        cls = {
            ScApiKey.CREATE: self.create_request,
            ScApiKey.DELETE: self.delete_request,
            ScApiKey.LIST: ListRequest,
            ScApiKey.WATCH: WatchRequest,
            ScApiKey.UPDATE: self.update_request,
        }[key]
        if cls is None:
            raise ProtocolError(f"{self.label} objects cannot be updated")
        return cls

    def response_class(self, key: ScApiKey) -> type:
        if key is ScApiKey.LIST:
            return self.list_response
        if key is ScApiKey.WATCH:
            return self.metadata_update
        raise ProtocolError(f"the response of api {int(key)} is a Status, not a {self.label} object")

    def classes(self) -> frozenset[type]:
        """Every message `encode_typed` accepts for this label."""
        both = {self.metadata_update, self.list_response, self.create_request, self.delete_request,
                ListRequest, WatchRequest}
        return frozenset(both if self.update_request is None else both | {self.update_request})


def _message_class(name: str, fields: list[tuple[str, WireType, dict[str, Any]]]) -> type:
    cls = dataclasses.make_dataclass(name, [(f, Any, wire(t, **kw)) for f, t, kw in fields])
    cls.__module__ = __name__
    return message(cls)


def _object_type(label: str, prefix: str, spec: type, status: type, delete_key: WireType,
                 update_request: type | None = None) -> ObjectType:
    metadata = _message_class(f"{prefix}Metadata", [
        ("name", STRING, {}),
        ("spec", Struct(spec), {}),
        ("status", Struct(status), {}),
    ])
    change = _message_class(f"{prefix}Change", [
        ("header", IntEnum8(MsgType), {}),
        ("content", Struct(metadata), {}),
    ])
    return ObjectType(
        label=label, spec=spec, status=status, metadata=metadata, change=change,
        metadata_update=_message_class(f"{prefix}MetadataUpdate", [
            ("epoch", INT64, {}),
            ("changes", Vec(Struct(change)), {}),
            ("all", Vec(Struct(metadata)), {}),
        ]),
        list_response=_message_class(f"{prefix}ListResponse", [
            ("objects", Vec(Struct(metadata)), {}),
        ]),
        create_request=_message_class(f"{prefix}CreateRequest", [
            ("name", STRING, {}),
            ("dry_run", BOOL, {}),
            ("timeout_ms", Option(UINT32), {"min_version": 7}),    # ignored by the reference SC
            ("spec", Struct(spec), {}),
        ]),
        delete_request=_message_class(f"{prefix}DeleteRequest", [
            ("key", delete_key, {}),
            ("force", BOOL, {"min_version": 13}),
        ]),
        update_request=update_request,
    )


TOPIC = _object_type("Topic", "Topic", TopicSpec, TopicStatus, STRING, TopicUpdateRequest)
PARTITION = _object_type("Partition", "Partition", PartitionSpec, PartitionStatus, STRING)
SPU = _object_type("SPU", "Spu", SpuSpec, SpuStatus, STRING)
SMARTMODULE = _object_type("SmartModule", "SmartModule", SmartModuleSpec, SmartModuleStatus, STRING)
TABLE_FORMAT = _object_type("TableFormat", "TableFormat", TableFormatSpec, TableFormatStatus, STRING)
OBJECT_TYPES: dict[str, ObjectType] = {o.label: o for o in (TOPIC, PARTITION, SPU, SMARTMODULE, TABLE_FORMAT)}

# ---------------------------------------------------------------------------------------- envelope


class UnknownObjectType(ProtocolError):
    """A well-formed envelope whose label this codec has no object type for. `name` is the leading
    string of the inner request (Create's name, Delete's key), or "" when there is none."""

    def __init__(self, label: str, payload: bytes = b"") -> None:
        super().__init__(f"unknown object type {label!r}")
        self.label = label
        try:
            self.name = decode(_LeadingName, payload, COMMON_VERSION, exact=False).name
        except ProtocolError:
            self.name = ""


@message
@dataclass
class _LeadingName:
    name: str = wire(STRING)


# Containers of a label without objects here: an empty list or watch update encodes the same whatever the
# spec, so a client that knows the label decodes them.
_PLACEHOLDER = _object_type("", "Placeholder", Status, Status, STRING)


def encode_empty_list(label: str, version: int) -> bytes:
    _check_version(version)
    return encode(TypeBuffer(label, encode(_PLACEHOLDER.list_response([]), version)), version)


def encode_empty_update(label: str, version: int) -> bytes:
    _check_version(version)
    return encode(TypeBuffer(label, encode(_PLACEHOLDER.metadata_update(0, [], []), version)), version)


def object_type(label: str) -> ObjectType:
    try:
        return OBJECT_TYPES[label]
    except KeyError:
        raise UnknownObjectType(label) from None


def _api_key(api_key: int) -> ScApiKey:
    try:
        return ScApiKey(api_key)
    except ValueError:
        raise ProtocolError(f"api key {api_key} is not an SC object API") from None


def _check_version(version: int) -> None:
    if not DYN_OBJ_VERSION <= version <= COMMON_VERSION:
        raise ProtocolError(f"SC object API version {version} not supported "
                            f"(only {DYN_OBJ_VERSION}..{COMMON_VERSION})")


def encode_typed(label: str, msg: Any, version: int) -> bytes:
    """An object request or List/Watch response of `label`, wrapped in its TypeBuffer."""
    _check_version(version)
    if type(msg) not in object_type(label).classes():
        raise ProtocolError(f"{type(msg).__name__} is not a {label} object message")
    return encode(TypeBuffer(label, encode(msg, version)), version)


def _decode_typed(body: bytes | bytearray | memoryview, version: int) -> tuple[ObjectType, bytes]:
    _check_version(version)
    envelope = decode(TypeBuffer, body, version)
    if envelope.label not in OBJECT_TYPES:
        raise UnknownObjectType(envelope.label, envelope.payload)
    return OBJECT_TYPES[envelope.label], envelope.payload


def decode_typed_request(api_key: int, body: bytes | bytearray | memoryview,
                         version: int) -> tuple[str, Any]:
    """The label and inner request of a Create/Delete/List/Watch/Update body."""
    key = _api_key(api_key)
    obj, payload = _decode_typed(body, version)
    return obj.label, decode(obj.request_class(key), payload, version)


def decode_typed_response(api_key: int, body: bytes | bytearray | memoryview,
                          version: int) -> tuple[str, Any]:
    """The label and inner response of a List or Watch response body."""
    key = _api_key(api_key)
    obj, payload = _decode_typed(body, version)
    return obj.label, decode(obj.response_class(key), payload, version)
