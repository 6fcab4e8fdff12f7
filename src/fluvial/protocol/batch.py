"""Record batch header: layout, CRC-32C and validation (`reference/fluvio-wire.md` §11). Pure.

A batch on the wire and on disk:

    base_offset i64 | batch_len i32 | leader_epoch i32 | magic i8 | crc u32 | attributes i16 |
    last_offset_delta i32 | first_timestamp i64 | max_time_stamp i64 | producer_id i64 |
    producer_epoch i16 | first_sequence i32 | [schema_id u32] | records

The CRC-32C covers bytes 21.. (attributes to the end); it does not cover base_offset, so the server can
write the assigned base offset into a batch without recomputing it.
"""

from __future__ import annotations

import struct
from typing import NamedTuple

import crc32c as _crc32c

from fluvial.errors import BatchTooLarge, EmptyBatch, InvalidBatch, ProtocolError, UnknownCompression

PREAMBLE_BYTES = 12            # base_offset + batch_len
HEADER_BYTES = 45              # bytes counted by batch_len before the records
HEADER_TOTAL_BYTES = 57        # PREAMBLE_BYTES + HEADER_BYTES
CRC_START = 21                 # CRC covers [21, end)
MAGIC = 2
ATTR_COMPRESSION_MASK = 0x07
ATTR_SCHEMA_ID = 0x10
MAX_COMPRESSION_CODE = 4       # 0 none, 1 gzip, 2 snappy, 3 lz4, 4 zstd
NO_PRODUCER_ID = -1

_HEADER = struct.Struct(">qiibIhiqqqhi")
_BASE_OFFSET = struct.Struct(">q")
_PREAMBLE_EPOCH = struct.Struct(">qii")
_PREAMBLE = struct.Struct(">qi")
_LAST_DELTA = struct.Struct(">i")
_U32 = struct.Struct(">I")
assert _HEADER.size == HEADER_TOTAL_BYTES


class BatchHeader(NamedTuple):
    base_offset: int
    batch_len: int
    leader_epoch: int
    magic: int
    crc: int
    attributes: int
    last_offset_delta: int
    first_timestamp: int
    max_timestamp: int
    producer_id: int
    producer_epoch: int
    first_sequence: int

    @property
    def total_bytes(self) -> int:
        return PREAMBLE_BYTES + self.batch_len

    @property
    def record_count(self) -> int:
        return self.last_offset_delta + 1

    @property
    def next_offset(self) -> int:
        return self.base_offset + self.last_offset_delta + 1

    @property
    def compression(self) -> int:
        return self.attributes & ATTR_COMPRESSION_MASK


def decode_header(buf: bytes | bytearray | memoryview, pos: int = 0) -> BatchHeader:
    """Decode the 57-byte header at `pos`. Raises ProtocolError when fewer bytes remain."""
    if len(buf) - pos < HEADER_TOTAL_BYTES:
        raise ProtocolError(f"record batch header needs {HEADER_TOTAL_BYTES} bytes, {len(buf) - pos} remain")
    return BatchHeader._make(_HEADER.unpack_from(buf, pos))


_ATTRIBUTES_LOW_BYTE = 22      # the attributes (i16, big-endian) sit at bytes 21-22 of the header


def compression_of(buf: bytes | bytearray | memoryview) -> int:
    """The compression code of a whole batch (at least HEADER_TOTAL_BYTES long), without decoding its header."""
    return buf[_ATTRIBUTES_LOW_BYTE] & ATTR_COMPRESSION_MASK


def encode_header(h: BatchHeader) -> bytes:
    return _HEADER.pack(*h)


def decode_preamble(buf: bytes | bytearray | memoryview, pos: int = 0) -> tuple[int, int]:
    """(base_offset, batch_len) at `pos`."""
    return _PREAMBLE.unpack_from(buf, pos)


def decode_last_offset_delta(buf: bytes | bytearray | memoryview, pos: int = 0) -> int:
    """`last_offset_delta` of the batch starting at `pos` (header must be present)."""
    return _LAST_DELTA.unpack_from(buf, pos + 23)[0]


def encode_base_offset(base_offset: int) -> bytes:
    """The first 8 bytes of a batch, carrying the server-assigned base offset."""
    return _BASE_OFFSET.pack(base_offset)


def encode_preamble_epoch(base_offset: int, batch_len: int, leader_epoch: int) -> bytes:
    """The first 16 header bytes: base offset, batch length, partition leader epoch (none in the CRC)."""
    return _PREAMBLE_EPOCH.pack(base_offset, batch_len, leader_epoch)


def crc32c(data: bytes | bytearray | memoryview) -> int:
    return _crc32c.crc32c(data)


def batch_crc(batch: bytes | bytearray | memoryview) -> int:
    """CRC-32C the batch should carry: over bytes 21..end."""
    return _crc32c.crc32c(memoryview(batch)[CRC_START:])


def validate_batch(batch: bytes | bytearray | memoryview, max_bytes: int, limit_name: str = "max batch size") -> BatchHeader:
    """Check one whole produced batch; return its header or raise a typed error.

    Order: size (cheap) → framing → magic → records present → compression bits → CRC (reads all bytes).
    """
    size = len(batch)
    if size > max_bytes:
        raise BatchTooLarge(size, max_bytes, limit_name)
    if size < HEADER_TOTAL_BYTES:
        raise InvalidBatch(f"{size} bytes is shorter than the {HEADER_TOTAL_BYTES}-byte batch header")
    h = decode_header(batch)
    if h.batch_len != size - PREAMBLE_BYTES:
        raise InvalidBatch(f"batch_len {h.batch_len} does not match the {size - PREAMBLE_BYTES} bytes that follow it")
    if h.magic != MAGIC:
        raise InvalidBatch(f"magic {h.magic}, expected {MAGIC}")
    if h.last_offset_delta < 0:
        raise EmptyBatch()
    if h.compression > MAX_COMPRESSION_CODE:
        raise UnknownCompression(h.compression)
    records_at = HEADER_TOTAL_BYTES + (4 if h.attributes & ATTR_SCHEMA_ID else 0)
    if h.compression == 0:
        if size < records_at + 4:
            raise InvalidBatch("uncompressed batch has no record count")
        count = _U32.unpack_from(batch, records_at)[0]
        if count != h.record_count:
            raise InvalidBatch(f"record count {count} does not match last_offset_delta {h.last_offset_delta}")
    actual = batch_crc(batch)
    if actual != h.crc:
        raise InvalidBatch(f"CRC-32C mismatch: header says {h.crc:#010x}, bytes give {actual:#010x}")
    return h


def split_batches(buf: bytes | bytearray | memoryview) -> list[memoryview]:
    """Split concatenated batches (a RecordSet body) into views, strictly: a cut batch raises ProtocolError."""
    view = memoryview(buf)
    out: list[memoryview] = []
    pos = 0
    end = len(view)
    while pos < end:
        if end - pos < PREAMBLE_BYTES:
            raise ProtocolError(f"truncated batch preamble at byte {pos}")
        _, batch_len = _PREAMBLE.unpack_from(view, pos)
        if batch_len < HEADER_BYTES:
            raise ProtocolError(f"batch_len {batch_len} at byte {pos} is shorter than the batch header")
        stop = pos + PREAMBLE_BYTES + batch_len
        if stop > end:
            raise ProtocolError(f"batch at byte {pos} needs {stop - pos} bytes, {end - pos} remain")
        out.append(view[pos:stop])
        pos = stop
    return out
