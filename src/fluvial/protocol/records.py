"""Records inside a batch, and building/reading whole batches (`reference/fluvio-wire.md` §11.3). Pure.

Record: varint length | i8 attributes | varint timestamp_delta | varint offset_delta |
        key (00 = None, 01 + varint len + bytes) | varint len + value | varint header count (0).
Records part of a batch: u32 record count + records; compressed batches hold the compressed form of
exactly those bytes (count included).
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import cramjam

from fluvial.errors import ProtocolError, UnknownCompression
from fluvial.protocol import batch as b


class Compression:
    NONE = 0
    GZIP = 1
    SNAPPY = 2
    LZ4 = 3
    ZSTD = 4

    NAMES = {"none": NONE, "gzip": GZIP, "snappy": SNAPPY, "lz4": LZ4, "zstd": ZSTD}


def compress(code: int, data: bytes) -> bytes:
    if code == Compression.NONE:
        return data
    if code == Compression.GZIP:
        return bytes(cramjam.gzip.compress(data))
    if code == Compression.SNAPPY:
        return bytes(cramjam.snappy.compress(data))          # framed format, as Fluvio's FrameEncoder
    if code == Compression.LZ4:
        return bytes(cramjam.lz4.compress(data))             # LZ4 frame format
    if code == Compression.ZSTD:
        return bytes(cramjam.zstd.compress(data, level=1))
    raise UnknownCompression(code)


def decompress(code: int, data: bytes | memoryview) -> bytes:
    try:
        if code == Compression.NONE:
            return bytes(data)
        if code == Compression.GZIP:
            return bytes(cramjam.gzip.decompress(bytes(data)))
        if code == Compression.SNAPPY:
            return bytes(cramjam.snappy.decompress(bytes(data)))
        if code == Compression.LZ4:
            return bytes(cramjam.lz4.decompress(bytes(data)))
        if code == Compression.ZSTD:
            return bytes(cramjam.zstd.decompress(bytes(data)))
    except cramjam.DecompressionError as e:
        raise ProtocolError(f"cannot decompress batch (codec {code}): {e}") from e
    raise UnknownCompression(code)


# ---------------------------------------------------------------------------------------------- varint


def encode_varint(n: int, out: bytearray) -> None:
    v = ((n << 1) ^ (n >> 63)) & 0xFFFFFFFFFFFFFFFF
    while v & ~0x7F:
        out.append((v & 0x7F) | 0x80)
        v >>= 7
    out.append(v)


def decode_varint(buf: bytes | memoryview, pos: int) -> tuple[int, int]:
    """(value, new position). Raises ProtocolError on truncation or more than 10 bytes."""
    shift = 0
    num = 0
    end = len(buf)
    for _ in range(10):
        if pos >= end:
            raise ProtocolError("truncated varint")
        byte = buf[pos]
        pos += 1
        num |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return (num >> 1) ^ -(num & 1), pos
        shift += 7
    raise ProtocolError("varint longer than 10 bytes")


# --------------------------------------------------------------------------------------------- records


@dataclass(frozen=True)
class Record:
    key: bytes | None
    value: bytes
    offset: int = -1
    timestamp: int = -1


def encode_record(out: bytearray, offset_delta: int, key: bytes | None, value: bytes, timestamp_delta: int = 0) -> None:
    body = bytearray(b"\x00")                # attributes
    encode_varint(timestamp_delta, body)
    encode_varint(offset_delta, body)
    if key is None:
        body.append(0)
    else:
        body.append(1)
        encode_varint(len(key), body)
        body += key
    encode_varint(len(value), body)
    body += value
    body.append(0)                           # header count
    encode_varint(len(body), out)
    out += body


def encode_records_part(records: Sequence[tuple[bytes | None, bytes]]) -> bytes:
    out = bytearray(struct.pack(">I", len(records)))
    for i, (key, value) in enumerate(records):
        encode_record(out, i, key, value)
    return bytes(out)


def build_batch(
    records: Sequence[tuple[bytes | None, bytes]],
    *,
    base_offset: int = 0,
    timestamp_ms: int = -1,
    compression: int = Compression.NONE,
    producer_id: int = b.NO_PRODUCER_ID,
    producer_epoch: int = -1,
    first_sequence: int = -1,
) -> bytes:
    """Encode a whole batch with a correct batch_len and CRC-32C."""
    if not records:
        raise ValueError("a batch needs at least one record")
    raw = encode_records_part(records)
    body = compress(compression, raw)
    header = b.BatchHeader(
        base_offset=base_offset,
        batch_len=b.HEADER_BYTES + len(body),
        leader_epoch=-1,
        magic=b.MAGIC,
        crc=0,
        attributes=compression,
        last_offset_delta=len(records) - 1,
        first_timestamp=timestamp_ms,
        max_timestamp=timestamp_ms,
        producer_id=producer_id,
        producer_epoch=producer_epoch,
        first_sequence=first_sequence,
    )
    buf = bytearray(b.encode_header(header))
    buf += body
    crc = b.batch_crc(buf)
    struct.pack_into(">I", buf, 17, crc)
    return bytes(buf)


def decode_records(batch: bytes | memoryview) -> list[Record]:
    """Records of one whole batch, with absolute offsets and timestamps."""
    view = memoryview(batch)
    h = b.decode_header(view)
    records_at = b.HEADER_TOTAL_BYTES + (4 if h.attributes & b.ATTR_SCHEMA_ID else 0)
    end = b.PREAMBLE_BYTES + h.batch_len
    if end > len(view):
        raise ProtocolError("truncated batch")
    raw = decompress(h.compression, view[records_at:end])
    if len(raw) < 4:
        raise ProtocolError("records part has no count")
    (count,) = struct.unpack_from(">I", raw, 0)
    pos = 4
    out: list[Record] = []
    for i in range(count):
        length, pos = decode_varint(raw, pos)
        stop = pos + length
        if length < 0 or stop > len(raw):
            raise ProtocolError("record length out of bounds")
        pos += 1                              # attributes
        ts_delta, pos = decode_varint(raw, pos)
        _offset_delta, pos = decode_varint(raw, pos)
        if pos >= stop:
            raise ProtocolError("truncated record key")
        flag = raw[pos]
        pos += 1
        key: bytes | None = None
        if flag == 1:
            klen, pos = decode_varint(raw, pos)
            key = bytes(raw[pos:pos + klen])
            pos += klen
        elif flag != 0:
            raise ProtocolError(f"bad key option byte {flag}")
        vlen, pos = decode_varint(raw, pos)
        value = bytes(raw[pos:pos + vlen])
        pos += vlen
        _headers, pos = decode_varint(raw, pos)
        if pos != stop:
            raise ProtocolError("record length does not match its fields")
        ts = h.first_timestamp + ts_delta if h.first_timestamp > 0 else -1
        out.append(Record(key=key, value=value, offset=h.base_offset + i, timestamp=ts))
    return out


def iter_stored_records(batches: Iterable[bytes | memoryview]) -> Iterable[Record]:
    for one in batches:
        yield from decode_records(one)
