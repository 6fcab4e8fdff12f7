"""One read through a chain → what the SPU sends (smartengine/batching.py; reference §3.2/§3.3). Pure: the
chain is a Python function here."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fluvial.errors import SmartModuleFailed
from fluvial.protocol import batch as b
from fluvial.protocol.records import build_batch, decode_records
from fluvial.smartengine import abi
from fluvial.smartengine.batching import InputBatch, input_batches, run_batches

TS = 1_700_000_000_000


def stored(*batches: tuple[int, list[bytes]], ts_step: int = 1000) -> bytes:
    return b"".join(build_batch([(None, v) for v in values], base_offset=base, timestamp_ms=TS + base * ts_step)
                    for base, values in batches)


@dataclass
class Keep:
    """A filter on `needle`; "err" values are module errors; counts its calls."""

    needle: bytes = b"a"
    calls: list[int] = field(default_factory=list)
    fail_at: int | None = None

    def __call__(self, one: InputBatch) -> abi.ModuleOutput:
        self.calls.append(one.start)
        if self.fail_at is not None and one.base_offset == self.fail_at:
            raise SmartModuleFailed("m: wasm trap: unreachable")
        recs, _ = abi.decode_records(one.raw)
        out = []
        for r in recs:
            if r.value == b"err":
                return abi.ModuleOutput(out, abi.TransformError("bad", one.base_offset + r.offset_delta, 0, None,
                                                                r.value))
            if self.needle in r.value:
                out.append(r)
        return abi.ModuleOutput(out)


def assert_well_formed(batch: bytes) -> b.BatchHeader:
    """Framing and CRC as any consumer checks them (storage's record-count check does not apply: the span
    covers the filtered input, so count <= last_offset_delta + 1 for filters, as in Fluvio)."""
    h = b.decode_header(batch)
    assert h.batch_len == len(batch) - b.PREAMBLE_BYTES and h.magic == b.MAGIC
    assert h.crc == b.batch_crc(batch)
    return h


def out_values(batch: bytes | None) -> list[bytes]:
    return [r.value for r in decode_records(batch)] if batch else []


def test_base_is_the_first_contributing_batch_and_the_span_covers_the_input() -> None:
    data = stored((0, [b"x", b"y"]), (2, [b"a1", b"z", b"a2"]), (5, [b"q"]))
    step = run_batches(input_batches(data, 0), Keep(), 1 << 20)
    h = b.decode_header(step.batch)
    assert (h.base_offset, h.last_offset_delta) == (2, 3)          # offsets 2..5
    assert step.next_offset == 6 == h.base_offset + h.last_offset_delta + 1
    assert [r.offset for r in decode_records(step.batch)] == [2, 3]  # clients number base + index
    assert out_values(step.batch) == [b"a1", b"a2"]
    assert_well_formed(step.batch)


def test_fluvio_numbering_record_a_at_25_arrives_as_0() -> None:
    letters = [f"record-{chr(c)}".encode() for c in range(ord("z"), ord("a") - 1, -1)]
    step = run_batches(input_batches(stored((0, letters)), 0), Keep(b"record-a"), 1 << 20)
    assert [(r.offset, r.value) for r in decode_records(step.batch)] == [(0, b"record-a")]
    assert step.next_offset == 26


def test_nothing_out_and_no_error_sends_nothing_and_moves_on() -> None:
    step = run_batches(input_batches(stored((0, [b"x"]), (1, [b"y"])), 0), Keep(), 1 << 20)
    assert (step.batch, step.error, step.consumed) == (None, None, 2)


def test_max_bytes_carries_the_batch_that_did_not_fit_instead_of_running_it_twice() -> None:
    data = stored((0, [b"a" * 100]), (1, [b"a" * 100]), (2, [b"a" * 100]))
    keep = Keep()
    step = run_batches(input_batches(data, 0), keep, 150)
    assert out_values(step.batch) == [b"a" * 100] and step.next_offset == 1
    assert step.carry is not None and step.carry.start == 1
    again = run_batches(input_batches(data, step.next_offset), keep, 150, step.carry)
    assert out_values(again.batch) == [b"a" * 100] and again.next_offset == 2
    assert keep.calls == [0, 1, 2]                      # batch 1 ran once; batch 2 then waits in the carry


def test_at_least_one_batch_even_when_it_alone_exceeds_max_bytes() -> None:
    """fluvio#1887: Fluvio drops and skips it (an empty answer); fluvial sends it."""
    step = run_batches(input_batches(stored((0, [b"a" * 1000, b"a" * 1000])), 0), Keep(), 10)
    assert len(out_values(step.batch)) == 2 and step.next_offset == 2


def test_module_error_mid_read_sends_the_records_before_it() -> None:
    data = stored((0, [b"a0"]), (1, [b"a1", b"err", b"a3"]), (4, [b"a4"]))
    keep = Keep()
    step = run_batches(input_batches(data, 0), keep, 1 << 20)
    assert out_values(step.batch) == [b"a0", b"a1"]       # with the failing batch's successes before it
    assert step.error is not None and step.error.offset == 2
    assert step.next_offset == 4                        # the rest of the failing batch is skipped
    assert keep.calls == [0, 1]


def test_module_error_without_records_skips_only_the_failing_batch() -> None:
    step = run_batches(input_batches(stored((0, [b"err"]), (1, [b"a"])), 0), Keep(), 1 << 20)
    assert step.batch is None and step.error is not None and step.next_offset == 1


def test_a_read_starting_inside_a_batch_gives_the_module_only_the_records_from_there() -> None:
    [one] = input_batches(stored((0, [b"a0", b"a1", b"a2", b"a3"])), 2)
    assert (one.base_offset, one.start) == (0, 2)
    recs, _ = abi.decode_records(one.raw)
    assert [(r.value, r.offset_delta) for r in recs] == [(b"a2", 2), (b"a3", 3)]   # own deltas kept
    step = run_batches([one], Keep(), 1 << 20)
    assert b.decode_header(step.batch).base_offset == 2 and step.next_offset == 4
    assert input_batches(stored((0, [b"a"]), (1, [b"b"])), 1)[0].start == 1


def test_real_timestamps_are_kept() -> None:
    data = stored((0, [b"x"]), (1, [b"a"]), (2, [b"ab"]))
    step = run_batches(input_batches(data, 0), Keep(), 1 << 20)
    h = b.decode_header(step.batch)
    assert h.first_timestamp == TS + 1000 and h.max_timestamp == TS + 2000
    assert [r.timestamp for r in decode_records(step.batch)] == [TS + 1000, TS + 2000]


def test_a_failure_after_some_output_comes_after_that_output() -> None:
    data = stored((0, [b"a"]), (1, [b"a"]))
    step = run_batches(input_batches(data, 0), Keep(fail_at=1), 1 << 20)
    assert out_values(step.batch) == [b"a"] and step.failure is not None and step.next_offset == 1
    with pytest.raises(SmartModuleFailed):
        run_batches(input_batches(data, 0), Keep(fail_at=0), 1 << 20)


def test_compression_of_the_first_contributing_batch_is_kept() -> None:
    data = build_batch([(None, b"a")], base_offset=0, compression=1) + build_batch([(None, b"a")], base_offset=1)
    step = run_batches(input_batches(data, 0), Keep(), 1 << 20)
    assert b.decode_header(step.batch).compression == 1 and out_values(step.batch) == [b"a", b"a"]


values_st = st.lists(st.lists(st.sampled_from([b"a", b"b", b"ab", b"err", b"a" * 50]), min_size=1, max_size=5),
                     min_size=1, max_size=8)


@settings(max_examples=150, deadline=None)
@given(values_st, st.integers(1, 400), st.integers(0, 3))
def test_a_consumer_following_next_offsets_gets_every_output_once_in_order(batches: list[list[bytes]],
                                                                           max_bytes: int, start: int) -> None:
    """The ack loop: resume from next_filter_offset (records) or the consumed end (nothing): every kept
    record exactly once, in order; every error reported; every frame a valid batch spanning its input."""
    layout, base = [], 0
    for vals in batches:
        layout.append((base, vals))
        base += len(vals)
    end = base
    start = min(start, end - 1)
    data = stored(*layout)
    expected, errors = [], []
    for b0, vals in layout:
        for i, v in enumerate(vals):
            if b0 + i < start:
                continue
            if v == b"err":
                errors.append(b0 + i)
                break
            if b"a" in v:
                expected.append(v)
    got, seen_errors, offset, carry, steps = [], [], start, None, 0
    while offset < end:
        steps += 1
        assert steps <= 2 * end + 2
        step = run_batches(input_batches(data, offset), Keep(), max_bytes, carry)
        carry = step.carry
        if step.error is not None:
            seen_errors.append(step.error.offset)
        if step.batch is not None:
            h = assert_well_formed(step.batch)
            assert h.base_offset >= offset
            assert step.next_offset == h.base_offset + h.last_offset_delta + 1
            got.extend(out_values(step.batch))
            assert step.next_offset > offset
            offset = step.next_offset
        else:
            assert step.consumed > offset
            offset = step.consumed
    assert got == expected
    assert seen_errors == errors
