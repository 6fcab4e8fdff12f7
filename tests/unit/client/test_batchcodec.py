"""The producer's fast batch encoder and the consumer's fast decoder agree byte for byte with the
reference codec in `fluvial.protocol.records`."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fluvial.client.batchcodec import (
    ConsumerRecord,
    decode_batch,
    decode_frame,
    encode_batch,
    frame_next_offset,
    records_part,
    restamp,
    varint,
)
from fluvial.errors import ProtocolError
from fluvial.protocol import batch as b
from fluvial.protocol.records import (
    Compression,
    build_batch,
    decode_records,
    encode_records_part,
    encode_varint,
)

values = st.binary(max_size=300) | st.integers(8000, 70_000).map(lambda n: b"v" * n)
keys = st.none() | st.binary(max_size=200)
records = st.lists(st.tuples(keys, values), min_size=1, max_size=40)


@given(st.integers(0, 2**40))
def test_varint_table_matches_encoder(n: int) -> None:
    out = bytearray()
    encode_varint(n, out)
    assert varint(n) == bytes(out)


@settings(max_examples=60, deadline=None)
@given(records)
def test_records_part_matches_reference(recs: list[tuple[bytes | None, bytes]]) -> None:
    ks = [k for k, _v in recs]
    vs = [v for _k, v in recs]
    assert records_part(ks, vs) == encode_records_part(recs)
    if all(k is None for k in ks):
        assert records_part(None, vs) == encode_records_part(recs)


@settings(max_examples=50, deadline=None)
@given(records, st.sampled_from([0, 1, 2, 3, 4]), st.integers(1, 2**41), st.integers(-1, 2**31 - 1))
def test_encode_batch_matches_build_batch(recs: list[tuple[bytes | None, bytes]], codec: int, ts: int, seq: int) -> None:
    ks = [k for k, _v in recs]
    vs = [v for _k, v in recs]
    pid = 7 if seq >= 0 else b.NO_PRODUCER_ID
    ours = encode_batch(ks, vs, timestamp_ms=ts, compression=codec, producer_id=pid, producer_epoch=0 if seq >= 0 else -1,
                        first_sequence=seq)
    ref = build_batch(recs, timestamp_ms=ts, compression=codec, producer_id=pid, producer_epoch=0 if seq >= 0 else -1,
                      first_sequence=seq)
    if codec in (Compression.NONE,):
        assert ours == ref
    b.validate_batch(ours, 1 << 30)
    assert [(r.key, r.value, r.offset, r.timestamp) for r in decode_records(ours)] == \
        [(r.key, r.value, r.offset, r.timestamp) for r in decode_records(ref)]


@settings(max_examples=60, deadline=None)
@given(records, st.sampled_from([0, 1, 2, 3, 4]), st.integers(0, 2**40), st.integers(-1, 2**41), st.integers(0, 9))
def test_decode_batch_matches_reference(recs: list[tuple[bytes | None, bytes]], codec: int, base: int, ts: int,
                                        partition: int) -> None:
    raw = bytearray(build_batch(recs, timestamp_ms=ts, compression=codec))
    raw[0:8] = b.encode_base_offset(base)
    h, got = decode_batch(bytes(raw), partition)
    assert h.base_offset == base
    want = [ConsumerRecord(partition, r.offset, r.key, r.value, r.timestamp) for r in decode_records(bytes(raw))]
    assert got == want


@settings(max_examples=100, deadline=None)
@given(records, st.data())
def test_truncated_or_mutated_batches_raise_protocol_error_only(recs: list[tuple[bytes | None, bytes]],
                                                                data: st.DataObject) -> None:
    raw = bytearray(build_batch(recs, timestamp_ms=5))
    if data.draw(st.booleans()):
        raw = raw[: data.draw(st.integers(0, len(raw) - 1))]
    else:
        at = data.draw(st.integers(b.HEADER_TOTAL_BYTES, len(raw) - 1))
        raw[at] ^= data.draw(st.integers(1, 255))
    with contextlib.suppress(ProtocolError):          # anything else (IndexError, ...) fails the test
        decode_batch(bytes(raw))


def test_empty_batch_is_refused() -> None:
    with pytest.raises(ValueError):
        encode_batch(None, [], timestamp_ms=1)


@given(records, st.integers(0, 2**15 - 1), st.integers(0, 2**31 - 1))
def test_restamp_changes_epoch_and_sequence_and_keeps_a_valid_crc(recs: list[tuple[bytes | None, bytes]], epoch: int,
                                                                  seq: int) -> None:
    ks = [k for k, _v in recs]
    vs = [v for _k, v in recs]
    stamped = restamp(encode_batch(ks, vs, timestamp_ms=9, producer_id=3, producer_epoch=0, first_sequence=77), epoch, seq)
    assert stamped == encode_batch(ks, vs, timestamp_ms=9, producer_id=3, producer_epoch=epoch, first_sequence=seq)
    h = b.validate_batch(stamped, 1 << 30)
    assert (h.producer_id, h.producer_epoch, h.first_sequence) == (3, epoch, seq)
    moved = restamp(stamped, 0, 5, producer_id=2**40)
    assert b.validate_batch(moved, 1 << 30)[9:] == (2**40, 0, 5)


@settings(max_examples=60, deadline=None)
@given(st.lists(records, min_size=1, max_size=5), st.sampled_from([0, 0, 1, 4]), st.integers(0, 2**40), st.data())
def test_decode_frame_reads_consecutive_batches_in_place(batches: list[list[tuple[bytes | None, bytes]]], codec: int,
                                                         base: int, data: st.DataObject) -> None:
    frame = bytearray()
    want = []
    offset = base
    for recs in batches:
        raw = bytearray(build_batch(recs, timestamp_ms=77, compression=codec))
        raw[0:8] = b.encode_base_offset(offset)
        frame += raw
        want += [ConsumerRecord(3, r.offset, r.key, r.value, r.timestamp) for r in decode_records(bytes(raw))]
        offset += len(recs)
    first = data.draw(st.integers(base, offset))
    stop = data.draw(st.none() | st.integers(first, offset))
    got, nxt = decode_frame(bytes(frame), 3, first, stop)
    assert got == [r for r in want if r.offset >= first and (stop is None or r.offset < stop)]
    assert nxt == (offset if stop is None else stop)
    assert frame_next_offset(bytes(frame), first, stop) == nxt


def test_decode_frame_refuses_a_records_part_that_runs_into_the_next_batch() -> None:
    one = bytearray(build_batch([(None, b"abc")], timestamp_ms=1))
    one[b.HEADER_TOTAL_BYTES + 4] = 2 * 40           # the record claims 40 bytes: it would run into the next batch
    with pytest.raises(ProtocolError):
        decode_frame(bytes(one) + build_batch([(None, b"x" * 40)], timestamp_ms=1), 0, 0, None)
