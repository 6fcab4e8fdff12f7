"""The bytes between the host and a SmartModule (reference fluvio-smartmodules.md §2). Pure.

Inputs (fluvio-smartmodule 0.8 `input.rs`), encoded at the version passed to the module:

    SmartModuleInput      base_offset i64 | raw_bytes Vec<u8> (i32 count + records) |
                          params (<= 22) | join_record Vec<u8> (16..=22) | base_timestamp i64 (>= 22)
    SmartModuleAggregateInput  the above | accumulator Vec<u8>
    SmartModuleInitInput  params = Map16<String,String> | Option<Lookback> (>= 20)

Outputs (`output.rs`), handed back through `env.copy_records(ptr, len)`:

    SmartModuleOutput     successes Vec<Record> | error Option<SmartModuleTransformRuntimeError>
    SmartModuleAggregateOutput  the above | accumulator Vec<u8> (>= 16)
    SmartModuleInitOutput (init status -2)      error {hint String}
    SmartModuleLookbackOutput (look_back -99)   error {hint, offset i64, record_key Option<RecordData>,
                                                       record_value RecordData}

A Record is `varint len | i8 attributes | varint timestamp_delta | varint offset_delta |
key (u8 0/1 + varint len + bytes) | varint len + value | varint headers`, all varints zigzag.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from dataclasses import dataclass

from fluvial import defaults as d
from fluvial.errors import ProtocolError
from fluvial.protocol import spu as sp
from fluvial.protocol.codec import encode
from fluvial.protocol.records import decode_varint, encode_varint

TIMESTAMP_LAYOUT_VERSION = 22     # SMARTMODULE_TIMESTAMPS_VERSION: base_timestamp from here on
LEGACY_LAYOUT_VERSION = 21        # the last layout without base_timestamp (modules before fluvio 0.10.14)
PARAMS_MAX_VERSION = 22           # params and join_record are in the input up to here
JOIN_MIN_VERSION = 16
AGGREGATE_ACCUMULATOR_MIN_VERSION = 16

_I64 = struct.Struct(">q")
_I32 = struct.Struct(">i")
_U16 = struct.Struct(">H")

# Export names, in Fluvio's detection order (transforms/mod.rs:24-52)
TRANSFORM_EXPORTS = ("filter", "map", "filter_map", "array_map", "aggregate")
INIT_EXPORT = "init"
LOOK_BACK_EXPORT = "look_back"

# Negative statuses (crates/fluvio-smartmodule/src/error.rs): the Display texts Fluvio reports
TRANSFORM_STATUS = {
    -1: "encountered unknown error during SmartModule processing",
    -11: "failed to decode SmartModule base input",
    -22: "failed to decode SmartModule record input",
    -33: "failed to encode SmartModule output",
    -44: "failed to parse SmartModule extra params",
    -55: "undefined right record in Join SmartModule",
}
INIT_STATUS = {
    -1: "encountered unknown error during SmartModule processing",
    -2: "Error during initialization",
    -10: "failed to decode SmartModule init input",
    -11: "failed to encode SmartModule init output",
}
LOOK_BACK_STATUS = {
    -1: "encountered unknown error during SmartModule processing",
    -66: "failed to decode SmartModule look_back input",
    -77: "failed to decode SmartModule look_back record input",
    -88: "failed to encode SmartModule look_back output",
    -99: "Error returned from user look_back function call",
}
STATUS_DECODING_BASE_INPUT = -11
STATUS_INIT_ERROR = -2
STATUS_LOOK_BACK_PROPAGATED = -99


def status_text(table: dict[int, str], rc: int) -> str:
    """Unknown negative statuses read as UnknownError, as Fluvio's `try_from(...).unwrap_or(...)`."""
    return table.get(rc, table[-1])


# -------------------------------------------------------------------------------------------- records


@dataclass(frozen=True, slots=True)
class SmRecord:
    """A record as a module sees it and emits it (deltas relative to its batch)."""

    value: bytes
    key: bytes | None = None
    offset_delta: int = 0
    timestamp_delta: int = 0
    attributes: int = 0
    headers: int = 0


def encode_record(r: SmRecord, out: bytearray) -> None:
    body = bytearray((r.attributes & 0xFF,))
    encode_varint(r.timestamp_delta, body)
    encode_varint(r.offset_delta, body)
    if r.key is None:
        body.append(0)
    else:
        body.append(1)
        encode_varint(len(r.key), body)
        body += r.key
    encode_varint(len(r.value), body)
    body += r.value
    encode_varint(r.headers, body)
    encode_varint(len(body), out)
    out += body


def encode_records(records: Sequence[SmRecord]) -> bytes:
    """`Vec<Record>`: i32 count + records (the records section of a batch, and a module's raw_bytes)."""
    out = bytearray(_I32.pack(len(records)))
    for r in records:
        encode_record(r, out)
    return bytes(out)


def decode_record(buf: bytes | memoryview, pos: int) -> tuple[SmRecord, int]:
    length, pos = decode_varint(buf, pos)
    stop = pos + length
    if length < 3 or stop > len(buf):
        raise ProtocolError(f"record of {length} bytes does not fit")
    attributes = buf[pos]
    ts, pos = decode_varint(buf, pos + 1)
    od, pos = decode_varint(buf, pos)
    if pos >= stop:
        raise ProtocolError("truncated record key")
    flag = buf[pos]
    pos += 1
    key = None
    if flag == 1:
        klen, pos = decode_varint(buf, pos)
        if klen < 0 or pos + klen > stop:
            raise ProtocolError("record key out of bounds")
        key = bytes(buf[pos:pos + klen])
        pos += klen
    elif flag != 0:
        raise ProtocolError(f"bad key option byte {flag}")
    vlen, pos = decode_varint(buf, pos)
    if vlen < 0 or pos + vlen > stop:
        raise ProtocolError("record value out of bounds")
    value = bytes(buf[pos:pos + vlen])
    pos += vlen
    headers, pos = decode_varint(buf, pos)
    if pos != stop:
        raise ProtocolError("record length does not match its fields")
    return SmRecord(value, key, od, ts, attributes - 256 if attributes > 127 else attributes, headers), pos


def decode_records(buf: bytes | memoryview, pos: int = 0) -> tuple[list[SmRecord], int]:
    """`Vec<Record>` at `pos`: (records, position after them)."""
    if len(buf) - pos < 4:
        raise ProtocolError("can't read i32 record count")
    (n,) = _I32.unpack_from(buf, pos)
    pos += 4
    out = []
    for _ in range(max(n, 0)):
        r, pos = decode_record(buf, pos)
        out.append(r)
    return out, pos


def record_positions(raw: bytes | memoryview) -> list[int]:
    """Byte position of each record in a records section (i32 count + records), plus the end."""
    if len(raw) < 4:
        raise ProtocolError("can't read i32 record count")
    (n,) = _I32.unpack_from(raw, 0)
    pos = 4
    out = []
    for _ in range(max(n, 0)):
        out.append(pos)
        length, pos = decode_varint(raw, pos)
        pos += length
        if length < 0 or pos > len(raw):
            raise ProtocolError("record length out of bounds")
    out.append(pos)
    return out


# --------------------------------------------------------------------------------------------- inputs


@dataclass(frozen=True)
class Params:
    """SmartModuleExtraParams: the invocation's key/value params and its look-back."""

    inner: dict[str, str]
    lookback: sp.Lookback | None = None


def encode_params(params: Params, version: int) -> bytes:
    return encode(sp.SmartModuleExtraParams(dict(params.inner), params.lookback), version)


def encode_input(raw_records: bytes | memoryview, base_offset: int, base_timestamp: int, version: int,
                 params: Params | None = None) -> bytes:
    """SmartModuleInput at `version` (v24: base | raw | timestamp; v22: also params and join; v21: no
    timestamp)."""
    out = bytearray(_I64.pack(base_offset))
    out += _I32.pack(len(raw_records))
    out += raw_records
    if version <= PARAMS_MAX_VERSION:
        out += encode_params(params or Params({}), version)
        if version >= JOIN_MIN_VERSION:
            out += _I32.pack(0)
    if version >= TIMESTAMP_LAYOUT_VERSION:
        out += _I64.pack(base_timestamp)
    return bytes(out)


def encode_aggregate_input(raw_records: bytes | memoryview, base_offset: int, base_timestamp: int, version: int,
                           accumulator: bytes, params: Params | None = None) -> bytes:
    return encode_input(raw_records, base_offset, base_timestamp, version, params) + _I32.pack(len(accumulator)) \
        + accumulator


def encode_init_input(params: Params, version: int) -> bytes:
    return encode_params(params, version)


# -------------------------------------------------------------------------------------------- outputs


@dataclass(frozen=True)
class TransformError:
    """SmartModuleTransformRuntimeError as a module reports it (offset = base_offset + offset_delta)."""

    hint: str
    offset: int
    kind: int
    record_key: bytes | None
    record_value: bytes


class ModuleOutput:
    """A module's output. The successes stay as the module encoded them (`raw`: i32 count + records, a
    valid records section for the next module and for an output batch) and are decoded only on demand."""

    __slots__ = ("_successes", "accumulator", "error", "raw")

    def __init__(self, successes: list[SmRecord] | None = None, error: TransformError | None = None,
                 accumulator: bytes | None = None, *, raw: bytes | None = None) -> None:
        self.raw = encode_records(successes or []) if raw is None else raw
        self._successes = successes
        self.error = error
        self.accumulator = accumulator      # aggregate only

    @property
    def count(self) -> int:
        return max(_I32.unpack_from(self.raw, 0)[0], 0)

    @property
    def successes(self) -> list[SmRecord]:
        if self._successes is None:
            self._successes = decode_records(self.raw)[0]
        return self._successes

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ModuleOutput) and (self.successes, self.error, self.accumulator) == \
            (other.successes, other.error, other.accumulator)

    def __repr__(self) -> str:
        return f"ModuleOutput(successes={self.successes!r}, error={self.error!r}, accumulator={self.accumulator!r})"


class _Cursor:
    __slots__ = ("buf", "pos")

    def __init__(self, buf: bytes | memoryview, pos: int = 0) -> None:
        self.buf = buf
        self.pos = pos

    def take(self, n: int) -> bytes:
        if n < 0 or self.pos + n > len(self.buf):
            raise ProtocolError(f"need {n} bytes at {self.pos} of {len(self.buf)}")
        out = bytes(self.buf[self.pos:self.pos + n])
        self.pos += n
        return out

    def u8(self) -> int:
        return self.take(1)[0]

    def i64(self) -> int:
        return _I64.unpack(self.take(8))[0]

    def i32(self) -> int:
        return _I32.unpack(self.take(4))[0]

    def string(self) -> str:
        n = _U16.unpack(self.take(2))[0]
        text = self.take(n).decode("utf-8", errors="replace")
        return text[:d.SMARTMODULE_HINT_MAX_CHARS]

    def record_data(self) -> bytes:
        n, self.pos = decode_varint(self.buf, self.pos)
        return self.take(n)

    def option(self) -> bool:
        flag = self.u8()
        if flag > 1:
            raise ProtocolError(f"not valid bool value {flag}")
        return flag == 1


def decode_output(buf: bytes | memoryview, version: int, aggregate: bool = False) -> ModuleOutput:
    """SmartModuleOutput (or the aggregate output) at `version`. Empty bytes — a module that never called
    copy_records — fail, as in Fluvio ("can't read i32")."""
    positions = record_positions(buf)
    pos = positions[-1]
    c = _Cursor(buf, pos)
    error = None
    if c.option():
        hint = c.string()
        offset = c.i64()
        kind = c.u8()
        key = c.record_data() if c.option() else None
        error = TransformError(hint, offset, kind, key, c.record_data())
    accumulator = None
    if aggregate and version >= AGGREGATE_ACCUMULATOR_MIN_VERSION:
        n = c.i32()
        accumulator = c.take(n) if n > 0 else b""
    return ModuleOutput(None, error, accumulator, raw=bytes(buf[:pos]))


def decode_init_error(buf: bytes | memoryview) -> str:
    """SmartModuleInitOutput: the hint."""
    return _Cursor(buf).string()


@dataclass(frozen=True)
class LookBackError:
    hint: str
    offset: int
    record_key: bytes | None
    record_value: bytes

    def __str__(self) -> str:   # SmartModuleLookbackRuntimeError's Display
        key = "NULL" if self.record_key is None else _text(self.record_key)
        return (f"{self.hint}\n\nSmartModule Lookback Error: \n    Offset: {self.offset}\n    Key: {key}\n"
                f"    Value: {_text(self.record_value)}")


def decode_look_back_error(buf: bytes | memoryview) -> LookBackError:
    c = _Cursor(buf)
    hint = c.string()
    offset = c.i64()
    key = c.record_data() if c.option() else None
    return LookBackError(hint, offset, key, c.record_data())


def _text(data: bytes) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return f"Binary: {len(data)} bytes"
