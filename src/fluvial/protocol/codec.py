"""Declarative, versioned wire codec (`reference/fluvio-wire.md` §4–5). Pure.

A message is a dataclass whose fields carry their wire type and version range:

    @message
    @dataclass
    class Status:
        name: str = wire(STRING)
        error_code: WireError = wire(ERROR_CODE)
        error_message: str | None = wire(Option(STRING))

`encode(msg, version)` / `decode(Status, buf, version)` walk the fields in order; a field with
`min_version=a` (and `max_version=b`) is on the wire only when a <= version (<= b), otherwise it takes its
default. Nested messages are encoded at the same version (trap T7). Every decoding failure — truncation,
bad bool, bad UTF-8, unknown enum tag, negative length — raises `ProtocolError`, never anything else.
Handlers never call `struct.pack` themselves.
"""

from __future__ import annotations

import dataclasses
import enum
import functools
import struct
from collections.abc import Callable, Mapping, Sequence
from typing import Any, ClassVar, TypeVar

from fluvial.errors import ErrorCode, ProtocolError

T = TypeVar("T")
Buffer = bytes | bytearray | memoryview


class Reader:
    """A cursor over received bytes; every read checks the bytes are there."""

    __slots__ = ("buf", "end", "pos")

    def __init__(self, buf: Buffer, pos: int = 0, end: int | None = None) -> None:
        self.buf = memoryview(buf)
        self.pos = pos
        self.end = len(self.buf) if end is None else end

    def remaining(self) -> int:
        return self.end - self.pos

    def take(self, n: int) -> memoryview:
        if n < 0 or self.pos + n > self.end:
            raise ProtocolError(f"need {n} bytes at {self.pos}, {self.end - self.pos} remain")
        out = self.buf[self.pos:self.pos + n]
        self.pos += n
        return out

    def unpack(self, st: struct.Struct) -> Any:
        if self.pos + st.size > self.end:
            raise ProtocolError(f"need {st.size} bytes at {self.pos}, {self.end - self.pos} remain")
        (value,) = st.unpack_from(self.buf, self.pos)
        self.pos += st.size
        return value


class WireType:
    """How one value is written and read."""

    def encode(self, value: Any, out: bytearray, version: int) -> None:
        raise NotImplementedError

    def decode(self, r: Reader, version: int) -> Any:
        raise NotImplementedError

    def default(self) -> Any:
        return None


class Fixed(WireType):
    def __init__(self, fmt: str, default: Any = 0) -> None:
        self.st = struct.Struct(">" + fmt)
        self._default = default

    def encode(self, value: Any, out: bytearray, version: int) -> None:
        try:
            out += self.st.pack(value)
        except struct.error as e:
            raise ProtocolError(f"cannot encode {value!r} as {self.st.format}: {e}") from e

    def decode(self, r: Reader, version: int) -> Any:
        st, pos = self.st, r.pos          # Reader.unpack inlined: the codec's most frequent call
        if pos + st.size > r.end:
            raise ProtocolError(f"need {st.size} bytes at {pos}, {r.end - pos} remain")
        (value,) = st.unpack_from(r.buf, pos)
        r.pos = pos + st.size
        return value

    def default(self) -> Any:
        return self._default


INT8, UINT8 = Fixed("b"), Fixed("B")
INT16, UINT16 = Fixed("h"), Fixed("H")
INT32, UINT32 = Fixed("i"), Fixed("I")
INT64, UINT64 = Fixed("q"), Fixed("Q")


class _Bool(WireType):
    def encode(self, value: Any, out: bytearray, version: int) -> None:
        out.append(1 if value else 0)

    def decode(self, r: Reader, version: int) -> bool:
        b = r.take(1)[0]
        if b > 1:
            raise ProtocolError(f"not valid bool value {b}")
        return b == 1

    def default(self) -> bool:
        return False


BOOL = _Bool()
_U16 = struct.Struct(">H")
_I16 = struct.Struct(">h")
_U32 = struct.Struct(">I")
_I32 = struct.Struct(">i")
_U64 = struct.Struct(">Q")
MAX_STRING_BYTES = 32767   # trap T1: written as u16, read as i16


class _String(WireType):
    def encode(self, value: Any, out: bytearray, version: int) -> None:
        raw = value.encode() if isinstance(value, str) else bytes(value)
        if len(raw) > MAX_STRING_BYTES:
            raise ProtocolError(f"string of {len(raw)} bytes exceeds {MAX_STRING_BYTES}")
        out += _U16.pack(len(raw))
        out += raw

    def decode(self, r: Reader, version: int) -> str:
        n = r.unpack(_I16)
        if n <= 0:
            return ""
        try:
            return str(r.take(n), "utf-8")
        except UnicodeDecodeError as e:
            raise ProtocolError(f"string is not valid UTF-8: {e}") from e

    def default(self) -> str:
        return ""


STRING = _String()


class _Bytes(WireType):
    """`Vec<u8>` / `ByteBuf`: u32 length + raw bytes."""

    def encode(self, value: Any, out: bytearray, version: int) -> None:
        out += _U32.pack(len(value))
        out += value

    def decode(self, r: Reader, version: int) -> bytes:
        n = r.unpack(_I32)
        if n < 1:
            return b""
        return bytes(r.take(n))

    def default(self) -> bytes:
        return b""


BYTES = _Bytes()


class Option(WireType):
    def __init__(self, inner: WireType) -> None:
        self.inner = inner

    def encode(self, value: Any, out: bytearray, version: int) -> None:
        if value is None:
            out.append(0)
        else:
            out.append(1)
            self.inner.encode(value, out, version)

    def decode(self, r: Reader, version: int) -> Any:
        if BOOL.decode(r, version):
            return self.inner.decode(r, version)
        return None


class Vec(WireType):
    def __init__(self, inner: WireType) -> None:
        self.inner = inner

    def encode(self, value: Any, out: bytearray, version: int) -> None:
        out += _U32.pack(len(value))
        for item in value:
            self.inner.encode(item, out, version)

    def decode(self, r: Reader, version: int) -> list[Any]:
        n = r.unpack(_I32)
        if n < 1:
            return []
        if n > r.remaining():   # every element takes at least one byte... or zero: bound anyway
            raise ProtocolError(f"vector of {n} elements cannot fit in {r.remaining()} bytes")
        return [self.inner.decode(r, version) for _ in range(n)]

    def default(self) -> list[Any]:
        return []


class Map16(WireType):
    """u16 count + (key, value) pairs in ascending key order (trap T4)."""

    def __init__(self, key: WireType, value: WireType) -> None:
        self.key = key
        self.value = value

    def encode(self, value: Any, out: bytearray, version: int) -> None:
        out += _U16.pack(len(value))
        for k in sorted(value):
            self.key.encode(k, out, version)
            self.value.encode(value[k], out, version)

    def decode(self, r: Reader, version: int) -> dict[Any, Any]:
        n = r.unpack(_U16)
        out = {}
        for _ in range(n):
            k = self.key.decode(r, version)
            out[k] = self.value.decode(r, version)
        return out

    def default(self) -> dict[Any, Any]:
        return {}


class Duration(WireType):
    """u64 seconds + u32 nanoseconds, as a float of seconds."""

    def encode(self, value: Any, out: bytearray, version: int) -> None:
        try:
            secs = int(value)
            out += struct.pack(">QI", secs, round((value - secs) * 1e9))
        except (struct.error, OverflowError, ValueError) as e:   # negative, > u64, inf or nan
            raise ProtocolError(f"cannot encode duration {value!r}: {e}") from e

    def decode(self, r: Reader, version: int) -> float:
        secs = r.unpack(_U64)
        nanos = r.unpack(_U32)
        return secs + nanos / 1e9

    def default(self) -> float:
        return 0.0


DURATION = Duration()


class IntEnum8(WireType):
    """A payload-free enum: u8 (or another fixed int) tag; an unknown tag fails the decode (trap T5)."""

    def __init__(self, enum_cls: type[enum.IntEnum], tag: Fixed = UINT8) -> None:
        self.enum_cls = enum_cls
        self.tag = tag

    def encode(self, value: Any, out: bytearray, version: int) -> None:
        self.tag.encode(int(value), out, version)

    def decode(self, r: Reader, version: int) -> enum.IntEnum:
        raw = self.tag.decode(r, version)
        try:
            return self.enum_cls(raw)
        except ValueError:
            raise ProtocolError(f"Unknown {self.enum_cls.__name__} type {raw}") from None

    def default(self) -> enum.IntEnum:
        return next(iter(self.enum_cls))


# ------------------------------------------------------------------------------------------ messages


def wire(wtype: WireType, *, min_version: int = 0, max_version: int | None = None,
         default: Any = dataclasses.MISSING) -> Any:
    """Declare a message field: its wire type and the versions it is present in."""
    meta = {"wire": wtype, "min": min_version, "max": max_version}
    if default is not dataclasses.MISSING:
        if isinstance(default, list | dict):
            return dataclasses.field(default_factory=lambda v=default: type(v)(v), metadata=meta)
        return dataclasses.field(default=default, metadata=meta)
    d = wtype.default()
    if isinstance(d, list | dict):
        return dataclasses.field(default_factory=type(d), metadata=meta)
    if dataclasses.is_dataclass(d):   # a nested message (Struct / Variants): a fresh one per instance
        return dataclasses.field(default_factory=wtype.default, metadata=meta)
    return dataclasses.field(default=d, metadata=meta)


M = TypeVar("M")


def message(cls: type[M]) -> type[M]:
    """Collect the wire fields of a dataclass (after @dataclass) in declaration order."""
    fields = []
    for f in dataclasses.fields(cls):  # type: ignore[arg-type]
        if "wire" in f.metadata:
            fields.append((f.name, f.metadata["wire"], f.metadata["min"], f.metadata["max"]))
    cls.WIRE_FIELDS = tuple(fields)  # type: ignore[attr-defined]
    return cls


@functools.lru_cache(maxsize=4096)
def _fields_at(cls: type, version: int) -> tuple[tuple[str, WireType], ...]:
    """The wire fields of `cls` present at `version`, in order: worked out once per (message, version)
    instead of on every encode and decode (bounded: versions come from the peer)."""
    return tuple((name, wtype) for name, wtype, lo, hi in cls.WIRE_FIELDS  # type: ignore[attr-defined]
                 if version >= lo and (hi is None or version <= hi))


def encode_into(msg: Any, out: bytearray, version: int) -> None:
    for name, wtype in _fields_at(type(msg), version):
        wtype.encode(getattr(msg, name), out, version)


def decode_from(cls: type[M], r: Reader, version: int) -> M:
    return cls(**{name: wtype.decode(r, version) for name, wtype in _fields_at(cls, version)})


def encode(msg: Any, version: int) -> bytes:
    out = bytearray()
    encode_into(msg, out, version)
    return bytes(out)


def decode(cls: type[M], buf: Buffer, version: int, *, exact: bool = True) -> M:
    """Decode one message; with `exact`, bytes left over are a ProtocolError."""
    r = Reader(buf)
    try:
        msg = decode_from(cls, r, version)
    except (ValueError, TypeError, OverflowError) as e:   # a value the message's own checks refuse
        raise ProtocolError(f"cannot decode {cls.__name__}: {e}") from e
    if exact and r.remaining():
        raise ProtocolError(f"{r.remaining()} bytes left after {cls.__name__}")
    return msg


class Struct(WireType):
    """A nested message."""

    def __init__(self, cls: type) -> None:
        self.cls = cls

    def encode(self, value: Any, out: bytearray, version: int) -> None:
        encode_into(value, out, version)

    def decode(self, r: Reader, version: int) -> Any:
        return decode_from(self.cls, r, version)

    def default(self) -> Any:
        return self.cls()


class Variants(WireType):
    """A Rust enum with payloads: tag, then the variant's fields (no version gating inside variants)."""

    def __init__(self, variants: Mapping[int, type], tag: Fixed = UINT8) -> None:
        self.by_tag = dict(variants)
        self.by_cls = {cls: t for t, cls in variants.items()}
        self.tag = tag

    def encode(self, value: Any, out: bytearray, version: int) -> None:
        try:
            t = self.by_cls[type(value)]
        except KeyError:
            raise ProtocolError(f"{type(value).__name__} is not a variant of this enum") from None
        self.tag.encode(t, out, version)
        for name, wtype, _lo, _hi in value.WIRE_FIELDS:
            wtype.encode(getattr(value, name), out, version)

    def decode(self, r: Reader, version: int) -> Any:
        t = self.tag.decode(r, version)
        cls = self.by_tag.get(t)
        if cls is None:
            raise ProtocolError(f"Unknown variant tag {t}")
        return cls(**{name: wtype.decode(r, version) for name, wtype, _lo, _hi in cls.WIRE_FIELDS})

    def default(self) -> Any:
        return next(iter(self.by_tag.values()))()


class Lazy(WireType):
    """A wire type resolved on first use (for recursive or later-defined messages)."""

    def __init__(self, make: Callable[[], WireType]) -> None:
        self._make = make
        self._t: WireType | None = None

    def _get(self) -> WireType:
        if self._t is None:
            self._t = self._make()
        return self._t

    def encode(self, value: Any, out: bytearray, version: int) -> None:
        self._get().encode(value, out, version)

    def decode(self, r: Reader, version: int) -> Any:
        return self._get().decode(r, version)

    def default(self) -> Any:
        return self._get().default()


class _RecordData(WireType):
    """`RecordData`: zigzag varint length + bytes (a record's key or value outside a batch)."""

    def encode(self, value: Any, out: bytearray, version: int) -> None:
        v = (len(value) << 1) & 0xFFFFFFFFFFFFFFFF
        while v & ~0x7F:
            out.append((v & 0x7F) | 0x80)
            v >>= 7
        out.append(v)
        out += value

    def decode(self, r: Reader, version: int) -> bytes:
        num = shift = 0
        for _ in range(10):
            byte = r.take(1)[0]
            num |= (byte & 0x7F) << shift
            if not byte & 0x80:
                n = (num >> 1) ^ -(num & 1)
                if n < 0:
                    raise ProtocolError(f"negative RecordData length {n}")
                return bytes(r.take(n))
            shift += 7
        raise ProtocolError("varint longer than 10 bytes")

    def default(self) -> bytes:
        return b""


RECORD_DATA = _RecordData()


# ----------------------------------------------------------------------------------------- ErrorCode

# Payload layouts after the i16 tag (reference §12). Codes not listed carry no payload.
ERROR_PAYLOADS: dict[ErrorCode, tuple[tuple[str, WireType], ...]] = {
    ErrorCode.OTHER: (("message", STRING),),
    ErrorCode.REQUEST_TIMED_OUT: (("timeout_ms", UINT64), ("kind", UINT8)),
    ErrorCode.OFFSET_EVICTED: (("offset", INT64), ("next_available", INT64)),
    ErrorCode.PARTITION_FULL: (("topic", STRING), ("partition", UINT32)),
    ErrorCode.OFFSET_FLUSH_REQUEST_ERROR: (("message", STRING),),
    ErrorCode.SMART_MODULE_NOT_FOUND: (("name", STRING),),
    ErrorCode.SMART_MODULE_INVALID: (("error", STRING), ("name", Option(STRING))),
    ErrorCode.SMART_MODULE_INVALID_EXPORTS: (("error", STRING), ("kind", STRING)),
    # SmartModuleTransformRuntimeError: key and value are RecordData (varint length), the key an Option
    ErrorCode.SMART_MODULE_RUNTIME_ERROR: (("hint", STRING), ("offset", INT64), ("kind", UINT8),
                                           ("record_key", Option(RECORD_DATA)), ("record_value", RECORD_DATA)),
    ErrorCode.SMART_MODULE_CHAIN_INIT_ERROR: (("message", STRING),),
    ErrorCode.SMART_MODULE_INIT_ERROR: (("hint", STRING),),
    ErrorCode.SMART_MODULE_LOOK_BACK_ERROR: (("message", STRING),),
    ErrorCode.SMART_MODULE_MEMORY_LIMIT_EXCEEDED: (("requested", UINT64), ("max", UINT64)),
    ErrorCode.DERIVED_STREAM_NOT_FOUND: (("message", STRING),),
    ErrorCode.DERIVED_STREAM_INVALID: (("message", STRING),),
    ErrorCode.DEDUPLICATION_SMART_MODULE_NAME_INVALID: (("message", STRING),),
    ErrorCode.SYSTEM_SPEC_DELETION_ATTEMPT: (("kind", STRING), ("name", STRING)),
    ErrorCode.SYSTEM_SPEC_UPDATING_ATTEMPT: (("kind", STRING), ("name", STRING)),
}


@dataclasses.dataclass(frozen=True)
class WireError:
    """An ErrorCode value as it travels: the tag and its payload fields."""

    code: ErrorCode = ErrorCode.NONE
    payload: tuple[Any, ...] = ()

    @property
    def ok(self) -> bool:
        return self.code is ErrorCode.NONE

    @classmethod
    def of(cls, code: ErrorCode, *payload: Any) -> WireError:
        layout = ERROR_PAYLOADS.get(code, ())
        if len(payload) != len(layout):
            raise ValueError(f"{code.name} takes {len(layout)} payload fields, got {len(payload)}")
        return cls(code, tuple(payload))

    @classmethod
    def from_exception(cls, exc: Any) -> WireError:
        """The wire form of a FluvialError (its code, with the payload that code carries)."""
        from fluvial.errors import OffsetEvicted, SmartModuleError, StorageFull

        code = exc.code
        if isinstance(exc, SmartModuleError) and code in ERROR_PAYLOADS:
            return cls(code, exc.wire_payload())
        if code is ErrorCode.OTHER:
            return cls(code, (str(exc),))
        if isinstance(exc, OffsetEvicted):
            return cls(code, (exc.offset, exc.next_available))
        if isinstance(exc, StorageFull) and code is ErrorCode.PARTITION_FULL:
            topic, _, part = exc.replica.rpartition("-")
            return cls(code, (topic, int(part) if part.isdigit() else 0))
        layout = ERROR_PAYLOADS.get(code, ())
        return cls(code, tuple(t.default() for _n, t in layout))

    def describe(self) -> str:
        return f"{self.code.name}{list(self.payload) if self.payload else ''}"


OK = WireError()


class _ErrorCodeType(WireType):
    def encode(self, value: Any, out: bytearray, version: int) -> None:
        out += _I16.pack(int(value.code))
        for (_name, wtype), item in zip(ERROR_PAYLOADS.get(value.code, ()), value.payload, strict=True):
            wtype.encode(item, out, version)

    def decode(self, r: Reader, version: int) -> WireError:
        raw = r.unpack(_I16)
        try:
            code = ErrorCode(raw)
        except ValueError:
            raise ProtocolError(f"Unknown ErrorCode {raw}") from None
        layout = ERROR_PAYLOADS.get(code, ())
        return WireError(code, tuple(wtype.decode(r, version) for _name, wtype in layout))

    def default(self) -> WireError:
        return OK


ERROR_CODE = _ErrorCodeType()


class RawRecordSet(WireType):
    """RecordSet: i32 total length + concatenated batches, kept as bytes (split and validated by the
    handler that needs to, never copied record by record)."""

    def encode(self, value: Any, out: bytearray, version: int) -> None:
        out += _I32.pack(len(value))
        out += value

    def decode(self, r: Reader, version: int) -> bytes:
        n = r.unpack(_I32)
        if n < 0:
            raise ProtocolError(f"negative RecordSet length {n}")
        return bytes(r.take(n))

    def default(self) -> bytes:
        return b""


RECORD_SET = RawRecordSet()


class RecordSetView(RawRecordSet):
    """A RecordSet decoded as a view into the frame it arrived in (no copy): for a produce request, whose
    batches go from the received frame straight to the log."""

    def decode(self, r: Reader, version: int) -> memoryview:  # type: ignore[override]
        n = r.unpack(_I32)
        if n < 0:
            raise ProtocolError(f"negative RecordSet length {n}")
        return r.take(n)


RECORD_SET_VIEW = RecordSetView()


def all_messages(module_globals: Mapping[str, Any]) -> Sequence[type]:
    """Every message class defined in a module (for round-trip tests)."""
    return [v for v in module_globals.values() if isinstance(v, type) and hasattr(v, "WIRE_FIELDS")]


class Versioned:
    """Marker base: a request message with its api key and supported versions."""

    API_KEY: ClassVar[int]
    MIN_VERSION: ClassVar[int]
    MAX_VERSION: ClassVar[int]
