"""Record batches: golden bytes from the official client, CRC-32C, validation table, varints, records."""

from __future__ import annotations

import contextlib
import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fluvial.errors import (
    BatchTooLarge,
    EmptyBatch,
    ErrorCode,
    InvalidBatch,
    ProtocolError,
    UnknownCompression,
)
from fluvial.protocol import batch as b
from fluvial.protocol.records import (
    Compression,
    build_batch,
    decode_records,
    decode_varint,
    encode_varint,
)

# Captured send_string("hello-fluvio") batch (fluvio-wire.md §11.6; golden vector 6).
SEND_STRING_BATCH = bytes.fromhex(
    "0000000000000000" "00000045" "ffffffff" "02" "daa7017c" "0000" "00000000"
    "000001a216b3353d" "000001a216b3353d" "ffffffffffffffff" "ffff" "ffffffff" "00000001"
    "2600000001001868656c6c6f2d666c7576696f00"
)
# Reference test vector of batch.rs (last_offset_delta left at -1: an empty batch by its header).
REFERENCE_EMPTY = bytes.fromhex(
    "0000000000000000" "0000003c" "ffffffff" "02" "554a8968" "0000" "ffffffff" "0000016a29be3e1b"
    "0000016a29be3e1b" "ffffffffffffffff" "ffff" "ffffffff" "00000001" "1400000000087465737400"
)


def test_crc32c_check_value() -> None:
    assert b.crc32c(b"123456789") == 0xE3069283


def test_golden_batch_is_inside_the_produce_request(golden: list[dict]) -> None:
    produce = next(g for g in golden if g["role"] == "SPU" and g["api_key"] == 0)
    assert SEND_STRING_BATCH.hex() in produce["request_body_hex"]
    fetched = next(g for g in golden if g["role"] == "SPU" and g["api_key"] == 1003)
    assert SEND_STRING_BATCH.hex() in fetched["response_frame_hex"]


def test_golden_batch_validates_and_decodes() -> None:
    h = b.validate_batch(SEND_STRING_BATCH, 1 << 20)
    assert h.crc == 0xDAA7017C == b.batch_crc(SEND_STRING_BATCH)
    assert (h.batch_len, h.last_offset_delta, h.producer_id, h.compression) == (69, 0, -1, 0)
    assert h.total_bytes == len(SEND_STRING_BATCH) == 81
    recs = decode_records(SEND_STRING_BATCH)
    assert [(r.key, r.value, r.offset, r.timestamp) for r in recs] == [(b"", b"hello-fluvio", 0, 0x1A216B3353D)]


def test_reference_vector_crc_and_empty() -> None:
    assert b.batch_crc(REFERENCE_EMPTY) == 0x554A8968 == 1430948200
    with pytest.raises(EmptyBatch) as e:
        b.validate_batch(REFERENCE_EMPTY, 1 << 20)
    assert e.value.code is ErrorCode.OTHER


def test_build_batch_reproduces_captured_keyed_batch() -> None:
    """Three keyed records as captured from the official client (fluvio-wire.md §11.6)."""
    captured = bytes.fromhex(
        "0000000000000002" "00000055" "ffffffff" "02" "ed8e23d7" "0000" "00000002"
        "000001a216b4255c" "000001a216b4255c" "ffffffffffffffff" "ffff" "ffffffff" "00000003"
        "1600000001046b3004763000" "1600000201046b3304763300" "1600000401046b3504763500"
    )
    built = build_batch([(b"k0", b"v0"), (b"k3", b"v3"), (b"k5", b"v5")], base_offset=2, timestamp_ms=0x1A216B4255C)
    assert built == captured


def _with(batch: bytes, at: int, fmt: str, value: int, fix_crc: bool = True) -> bytes:
    buf = bytearray(batch)
    struct.pack_into(fmt, buf, at, value)
    if fix_crc:
        struct.pack_into(">I", buf, 17, b.batch_crc(buf))
    return bytes(buf)


GOOD = build_batch([(None, b"a" * 100), (b"k", b"b")], timestamp_ms=1)

VALIDATION_TABLE = [
    ("too large", GOOD, 50, BatchTooLarge, ErrorCode.MESSAGE_TOO_LARGE),
    ("short header", GOOD[:40], 1 << 20, InvalidBatch, ErrorCode.OTHER),
    ("batch_len mismatch", _with(GOOD, 8, ">i", 5000), 1 << 20, InvalidBatch, ErrorCode.OTHER),
    ("bad magic", _with(GOOD, 16, ">b", 1), 1 << 20, InvalidBatch, ErrorCode.OTHER),
    ("empty", _with(GOOD, 23, ">i", -1), 1 << 20, EmptyBatch, ErrorCode.OTHER),
    ("compression 5", _with(GOOD, 21, ">h", 5), 1 << 20, UnknownCompression, ErrorCode.COMPRESSION_ERROR),
    ("compression 7", _with(GOOD, 21, ">h", 7), 1 << 20, UnknownCompression, ErrorCode.COMPRESSION_ERROR),
    ("count mismatch", _with(GOOD, 57, ">I", 7), 1 << 20, InvalidBatch, ErrorCode.OTHER),
    ("bad crc", _with(GOOD, 17, ">I", 0xDEADBEEF, fix_crc=False), 1 << 20, InvalidBatch, ErrorCode.OTHER),
    ("flipped record byte", GOOD[:-3] + bytes([GOOD[-3] ^ 1]) + GOOD[-2:], 1 << 20, InvalidBatch, ErrorCode.OTHER),
]


@pytest.mark.parametrize(("name", "batch", "limit", "exc", "code"), VALIDATION_TABLE, ids=[r[0] for r in VALIDATION_TABLE])
def test_validation_table(name: str, batch: bytes, limit: int, exc: type, code: ErrorCode) -> None:
    with pytest.raises(exc) as e:
        b.validate_batch(batch, limit)
    assert e.value.code is code
    assert str(e.value)


def test_crc_does_not_cover_base_offset() -> None:
    moved = b.encode_base_offset(12345) + GOOD[8:]
    assert b.validate_batch(moved, 1 << 20).base_offset == 12345


@pytest.mark.parametrize(
    ("n", "encoded"),
    [(0, "00"), (-1, "01"), (1, "02"), (4, "08"), (7, "0e"), (10, "14"), (63, "7e"), (8191, "fe7f"),
     (-134217729, "8180808001")],
)
def test_varint_reference_vectors(n: int, encoded: str) -> None:
    out = bytearray()
    encode_varint(n, out)
    assert out.hex() == encoded
    assert decode_varint(bytes(out), 0) == (n, len(out))


@given(st.integers(min_value=-(2**31), max_value=2**31 - 1))
def test_varint_roundtrip(n: int) -> None:
    out = bytearray()
    encode_varint(n, out)
    assert decode_varint(bytes(out), 0) == (n, len(out))


@pytest.mark.parametrize("codec", [Compression.NONE, Compression.GZIP, Compression.SNAPPY, Compression.LZ4, Compression.ZSTD])
def test_compressed_batches_roundtrip(codec: int) -> None:
    recs = [(b"key-%d" % i, b"value %d " % i * 20) for i in range(50)]
    batch = build_batch(recs, compression=codec, timestamp_ms=1_700_000_000_000)
    h = b.validate_batch(batch, 1 << 20)
    assert h.compression == codec
    assert [(r.key, r.value) for r in decode_records(batch)] == recs


@given(st.lists(st.tuples(st.one_of(st.none(), st.binary(max_size=40)), st.binary(max_size=300)), min_size=1, max_size=20))
def test_build_decode_roundtrip(recs: list[tuple[bytes | None, bytes]]) -> None:
    batch = build_batch(recs, base_offset=7, timestamp_ms=5)
    b.validate_batch(batch, 1 << 20)
    out = decode_records(batch)
    assert [(r.key, r.value) for r in out] == recs
    assert [r.offset for r in out] == list(range(7, 7 + len(recs)))


@given(st.binary(max_size=300))
def test_garbage_raises_only_typed_errors(data: bytes) -> None:
    with contextlib.suppress(InvalidBatch, UnknownCompression, BatchTooLarge):
        b.validate_batch(data, 1 << 20)
    with contextlib.suppress(ProtocolError):
        b.split_batches(data)
    with contextlib.suppress(ProtocolError, UnknownCompression):
        decode_records(data)


def test_split_batches_strict() -> None:
    two = GOOD + SEND_STRING_BATCH
    assert [len(x) for x in b.split_batches(two)] == [len(GOOD), len(SEND_STRING_BATCH)]
    with pytest.raises(ProtocolError):
        b.split_batches(two[:-1])


@given(st.integers(-(1 << 15), (1 << 15) - 1))
def test_compression_of_reads_the_attributes_as_the_header_decode_does(attributes: int) -> None:
    raw = _with(GOOD, 21, ">h", attributes)
    assert b.compression_of(raw) == b.compression_of(memoryview(raw)) == b.decode_header(raw).compression
