"""Framing, request/response headers and ApiVersions (`reference/fluvio-wire.md` §2, §3, §6). Pure.

Frame: i32 size + payload. Request payload: header (u16 api_key, i16 api_version, i32 correlation_id,
String client_id) + body at api_version. Response payload: i32 correlation_id + body at the request's
version (there is no key, version or error in a response header).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from fluvial import defaults as d
from fluvial.errors import ProtocolError
from fluvial.protocol.codec import (
    ERROR_CODE,
    INT16,
    INT32,
    STRING,
    UINT16,
    Reader,
    Struct,
    Vec,
    WireError,
    decode_from,
    encode_into,
    message,
    wire,
)

SIZE = struct.Struct(">i")
_CORRELATION = struct.Struct(">i")
API_VERSIONS_KEY = 18


def frame_size(prefix: bytes, max_bytes: int = d.FRAME_MAX_BYTES) -> int:
    """The payload size announced by a 4-byte prefix; refuses negative and oversized frames before
    anything is allocated for them."""
    (size,) = SIZE.unpack(prefix)
    if size < 0:
        raise ProtocolError(f"negative frame size {size}")
    if size > max_bytes:
        raise ProtocolError(f"frame of {size} bytes exceeds the {max_bytes}-byte limit")
    return size


def frame(payload: bytes | bytearray) -> bytes:
    return SIZE.pack(len(payload)) + bytes(payload)


@message
@dataclass
class RequestHeader:
    api_key: int = wire(UINT16)           # u16 here, i16 inside ApiVersionKey (trap T11)
    api_version: int = wire(INT16)
    correlation_id: int = wire(INT32)
    client_id: str = wire(STRING)


def decode_request(payload: bytes | bytearray | memoryview) -> tuple[RequestHeader, Reader]:
    """Split a request payload into its header and a reader positioned at the body."""
    r = Reader(payload)
    return decode_from(RequestHeader, r, 0), r


def encode_request(header: RequestHeader, body: bytes) -> bytes:
    out = bytearray()
    encode_into(header, out, 0)
    out += body
    return frame(out)


def encode_response(correlation_id: int, body: bytes) -> bytes:
    return SIZE.pack(4 + len(body)) + _CORRELATION.pack(correlation_id) + body


def decode_response(payload: bytes | bytearray | memoryview) -> tuple[int, Reader]:
    r = Reader(payload)
    return r.unpack(_CORRELATION), r


# ------------------------------------------------------------------------------------------ ApiVersions


@message
@dataclass
class ApiVersionsRequest:
    client_version: str = wire(STRING, min_version=1)
    client_os: str = wire(STRING, min_version=1)
    client_arch: str = wire(STRING, min_version=1)


@message
@dataclass
class ApiVersionKey:
    api_key: int = wire(INT16)
    min_version: int = wire(INT16)
    max_version: int = wire(INT16)


@message
@dataclass
class ApiVersionsResponse:
    error_code: WireError = wire(ERROR_CODE)
    api_keys: list[ApiVersionKey] = wire(Vec(Struct(ApiVersionKey)))
    platform_version: str = wire(STRING)
