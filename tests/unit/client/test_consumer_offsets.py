"""Offset resolution (pure) for every kind, table-driven, and the consumer's decode skipping what lies
before the resume point."""

from __future__ import annotations

import pytest

from fluvial.client.batchcodec import encode_batch
from fluvial.client.consumer import ConsumerConfig, ConsumerStream, Offset, _Position
from fluvial.errors import ServerError
from fluvial.protocol import batch as b


@pytest.mark.parametrize(("offset", "log_start", "hw", "want"), [
    (Offset.beginning(), 0, 10, 0),
    (Offset.beginning(), 4, 10, 4),
    (Offset.from_beginning(3), 4, 10, 7),
    (Offset.from_beginning(30), 4, 10, 10),        # clamped to the end
    (Offset.end(), 0, 10, 10),
    (Offset.from_end(3), 0, 10, 7),
    (Offset.from_end(30), 4, 10, 4),               # clamped to the log start
    (Offset.absolute(5), 0, 10, 5),
    (Offset.absolute(50), 0, 10, 50),              # the server answers "beyond the end"
    (Offset.beginning(), 0, 0, 0),
    (Offset.from_end(1), 0, 0, 0),
])
def test_offset_resolution(offset: Offset, log_start: int, hw: int, want: int) -> None:
    assert offset.resolve(log_start, hw) == want


def test_negative_absolute_offset_is_refused() -> None:
    with pytest.raises(ServerError):
        Offset.absolute(-1)


def next_offset_before(_next: int, pos: _Position) -> int:
    return pos.next_offset               # decoding alone does not move the position


def _frame(base: int, values: list[bytes]) -> bytes:
    raw = bytearray(encode_batch(None, values, timestamp_ms=1000))
    raw[0:8] = b.encode_base_offset(base)
    return bytes(raw)


@pytest.mark.parametrize(("next_offset", "stop", "want_offsets", "want_next"), [
    (10, None, [10, 11, 12, 13, 14, 15], 16),
    (12, None, [12, 13, 14, 15], 16),               # resume inside a batch: no duplicates
    (10, 13, [10, 11, 12], 13),                     # --end 12
    (14, 15, [14], 15),
])
def test_decode_skips_before_resume_point_and_after_end(next_offset: int, stop: int | None,
                                                        want_offsets: list[int], want_next: int) -> None:
    s = ConsumerStream(None, "t", [0], ConsumerConfig())
    pos = _Position(next_offset, stop)
    data = _frame(10, [b"a", b"b", b"c"]) + _frame(13, [b"d", b"e", b"f"])
    got, next_offset = s._decode(0, pos, data)
    assert [r.offset for r in got] == want_offsets
    assert next_offset == want_next
    assert pos.next_offset == next_offset_before(next_offset, pos)
    assert all(r.timestamp == 1000 and r.partition == 0 for r in got)
