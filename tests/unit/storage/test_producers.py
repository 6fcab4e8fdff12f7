"""The idempotent-producer decision table (pure): table-driven cases, a Hypothesis comparison with a
plain model of Kafka's rules, request planning and the snapshot bytes."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fluvial.errors import ErrorCode, OutOfOrderSequence, ProducerFenced, ProtocolError, retry_rule
from fluvial.protocol import batch as b
from fluvial.storage.producers import (
    BatchSeq,
    ProducerEntry,
    ProducerTable,
    Verdict,
    advance,
    decide,
    decode_snapshot,
    encode_snapshot,
    last_sequence,
)

PID = 7
# epoch 1, sequences 0..9 appended as [0..4]@100 and [5..9]@105
ENTRY = ProducerEntry(1, 9, (BatchSeq(0, 4, 100), BatchSeq(5, 9, 105)))


@pytest.mark.parametrize(("entry", "epoch", "first", "count", "verdict", "base", "error"), [
    (None, 0, 0, 5, Verdict.APPEND, -1, None),                     # unknown producer
    (None, 3, 42, 1, Verdict.APPEND, -1, None),                    # unknown producer, any sequence
    (ENTRY, 1, 10, 3, Verdict.APPEND, -1, None),                   # next in sequence
    (ENTRY, 1, 5, 5, Verdict.DUPLICATE, 105, None),                # exact retry of the last batch
    (ENTRY, 1, 0, 5, Verdict.DUPLICATE, 100, None),                # exact retry of an older remembered batch
    (ENTRY, 1, 5, 4, Verdict.DUPLICATE, 105, None),                # inside a remembered run: at its offset
    (ENTRY, 1, 3, 1, Verdict.DUPLICATE, 103, None),
    (ENTRY, 1, 4, 2, Verdict.REJECT, -1, OutOfOrderSequence),      # straddles two runs: not one appended batch
    (ENTRY, 1, 11, 1, Verdict.REJECT, -1, OutOfOrderSequence),     # gap
    (ProducerEntry(1, 9, (BatchSeq(5, 9, 105),)), 1, 3, 1, Verdict.REJECT, -1, OutOfOrderSequence),  # forgotten
    (ENTRY, 0, 10, 1, Verdict.REJECT, -1, ProducerFenced),         # older epoch
    (ENTRY, 2, 0, 1, Verdict.APPEND, -1, None),                    # newer epoch: reset
    (ENTRY, 2, 5, 5, Verdict.APPEND, -1, None),                    # newer epoch: not a duplicate
    (ENTRY, 1, -1, 1, Verdict.REJECT, -1, OutOfOrderSequence),     # negative sequence
    (None, 0, -5, 1, Verdict.REJECT, -1, OutOfOrderSequence),
])
def test_decision_table(entry: ProducerEntry | None, epoch: int, first: int, count: int, verdict: Verdict,
                        base: int, error: type | None) -> None:
    d = decide(entry, PID, epoch, first, count)
    assert d.verdict is verdict
    assert d.base_offset == base
    assert (type(d.error) if d.error else None) is error


def test_errors_are_other_and_fatal() -> None:
    for err in (decide(ENTRY, PID, 1, 20, 1).error, decide(ENTRY, PID, 0, 10, 1).error):
        assert err is not None and err.code is ErrorCode.OTHER
        assert not retry_rule(err.code).retriable
    assert str(decide(ENTRY, PID, 1, 20, 1).error).startswith("OutOfOrderSequence: producer 7 epoch 1")
    assert str(decide(ENTRY, PID, 0, 10, 1).error).startswith("ProducerFenced: producer 7 epoch 0")


def test_sequences_wrap() -> None:
    top = 2**31 - 1
    assert last_sequence(top - 1, 3) == 0
    entry = advance(None, 0, top - 1, 2, 50)
    assert entry.last_sequence == top
    assert decide(entry, PID, 0, 0, 1).verdict is Verdict.APPEND
    assert decide(entry, PID, 0, top - 1, 2).verdict is Verdict.DUPLICATE


def test_advance_remembers_the_last_few_runs() -> None:
    entry = None
    for k in range(8):                       # other producers' batches between: one run per batch
        entry = advance(entry, 0, k * 2, 2, 1000 + k * 3, remembered=5)
    assert entry is not None and [x.first_sequence for x in entry.batches] == [6, 8, 10, 12, 14]
    assert entry.last_sequence == 15
    assert advance(entry, 1, 0, 1, 2000).batches == (BatchSeq(0, 0, 2000),)


def test_a_whole_request_of_many_batches_is_one_run() -> None:
    """The scale benchmark's failure: a request of more batches than the window, appended, its answer
    lost (the SC marked the SPU offline meanwhile), then sent again — every batch is a duplicate at its
    first attempt's offset, not `OutOfOrderSequence … already appended, not remembered`."""
    t = ProducerTable(remembered=5)
    request = [_header(PID, 0, k * 10, 10) for k in range(40)]
    plan = t.plan(request, leo=500)
    assert all(x.verdict is Verdict.APPEND for x in plan)
    for k, h in enumerate(request):
        t.record(h, 500 + k * 10)
    entry = t.get(PID)
    assert entry is not None and entry.batches == (BatchSeq(0, 399, 500),)
    again = t.plan(request, leo=900)
    assert [x.verdict for x in again] == [Verdict.DUPLICATE] * 40
    assert [x.base_offset for x in again] == [500 + k * 10 for k in range(40)]
    assert t.plan([_header(PID, 0, 400, 1)], leo=900)[0].verdict is Verdict.APPEND


def test_runs_never_cross_the_sequence_wrap() -> None:
    top = 2**31 - 1
    entry = advance(None, 0, top - 3, 2, 10)
    entry = advance(entry, 0, top - 1, 2, 12)               # back to back: one run up to the top
    entry = advance(entry, 0, 0, 2, 14)                     # wrapped: a new run
    assert entry.batches == (BatchSeq(top - 3, top, 10), BatchSeq(0, 1, 14))
    assert decide(entry, PID, 0, top - 1, 2).base_offset == 12
    assert decide(entry, PID, 0, 0, 2).base_offset == 14


def _header(pid: int, epoch: int, first: int, count: int) -> b.BatchHeader:
    return b.BatchHeader(0, b.HEADER_BYTES, -1, b.MAGIC, 0, 0, count - 1, 0, 0, pid, epoch, first)


def test_plan_sees_earlier_batches_of_the_same_request() -> None:
    t = ProducerTable()
    plan = t.plan([_header(PID, 0, 0, 2), _header(-1, -1, -1, 3), _header(PID, 0, 2, 1), _header(PID, 0, 0, 2)],
                  leo=10)
    assert [x.verdict for x in plan] == [Verdict.APPEND, Verdict.APPEND, Verdict.APPEND, Verdict.DUPLICATE]
    assert plan[3].base_offset == 10
    assert len(t) == 0                                   # planning changes nothing
    with pytest.raises(OutOfOrderSequence):
        t.plan([_header(PID, 0, 0, 2), _header(PID, 0, 5, 1)], leo=0)


def test_table_forgets_the_least_recently_seen() -> None:
    t = ProducerTable(max_producers=2)
    t.record(_header(1, 0, 0, 1), 0)
    t.record(_header(2, 0, 0, 1), 1)
    t.record(_header(1, 0, 1, 1), 2)        # 1 is now the most recent
    t.record(_header(3, 0, 0, 1), 3)
    assert sorted(t.entries) == [1, 3]


def test_snapshot_roundtrip_and_damage() -> None:
    entries = {5: ENTRY, 9: ProducerEntry(0, 0, (BatchSeq(0, 0, 3),))}
    raw = encode_snapshot(123, entries.items())
    assert decode_snapshot(raw) == (123, entries)
    assert decode_snapshot(encode_snapshot(0, [])) == (0, {})
    for cut in (0, 1, len(raw) // 2, len(raw) - 1):
        with pytest.raises(ProtocolError):
            decode_snapshot(raw[:cut])
    flipped = bytearray(raw)
    flipped[-1] ^= 0xFF
    with pytest.raises(ProtocolError):
        decode_snapshot(bytes(flipped))


# ------------------------------------------------------------------------- Hypothesis: against a model


class Model:
    """The rules written the obvious way: full history per producer and epoch, back-to-back batches
    (consecutive sequences at consecutive offsets) merged into runs."""

    def __init__(self, remembered: int = 5) -> None:
        self.remembered = remembered
        self.producers: dict[int, tuple[int, list[tuple[int, int, int]]]] = {}   # pid -> (epoch, batches)

    def step(self, pid: int, epoch: int, first: int, count: int, leo: int) -> tuple[str, int]:
        last = first + count - 1
        known = self.producers.get(pid)
        if first < 0:
            return "reject", -1
        if known is None or epoch > known[0]:
            self.producers[pid] = (epoch, [(first, last, leo)])
            return "append", leo
        cur_epoch, batches = known
        if epoch < cur_epoch:
            return "reject", -1
        for f, la, base in batches[-self.remembered:]:
            if f <= first <= last <= la:
                return "duplicate", base + (first - f)
        if first == batches[-1][1] + 1:
            f, la, base = batches[-1]
            if leo == base + (la - f + 1):
                batches[-1] = (f, last, base)
            else:
                batches.append((first, last, leo))
            return "append", leo
        return "reject", -1


batch_st = st.tuples(st.integers(0, 2), st.integers(0, 2), st.integers(-1, 30), st.integers(1, 4))


@settings(max_examples=300, deadline=None)
@given(st.lists(batch_st, max_size=40), st.booleans())
def test_table_agrees_with_model(steps: list[tuple[int, int, int, int]], follow: bool) -> None:
    model, table = Model(), ProducerTable()
    leo = 0
    for pid, epoch, first, count in steps:
        if follow and (e := table.get(pid)) is not None and first % 3:
            first = e.last_sequence + 1          # mostly in order, so appends happen
        h = _header(pid, epoch, first, count)
        try:
            (decision,) = table.plan([h], leo)
        except (OutOfOrderSequence, ProducerFenced):
            got = ("reject", -1)
        else:
            if decision.verdict is Verdict.APPEND:
                table.record(h, leo)
                got = ("append", leo)
            else:
                got = ("duplicate", decision.base_offset)
        assert got == model.step(pid, epoch, first, count, leo)
        if got[0] == "append":
            leo += count
