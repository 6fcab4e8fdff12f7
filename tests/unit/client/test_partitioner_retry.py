"""Key → partition mapping (Fluvio's table) and the retry policy (fake clock, fixed randomness)."""

from __future__ import annotations

import pytest

from fluvial.client.partitioner import Partitioner, key_hash, partition_for_key, writable_partitions
from fluvial.client.retry import Backoff, RetryState, WarningGate
from fluvial.errors import ErrorCode

# reference/fluvio-wire.md §13.3: SipHash-2-4 of len_le64 || key, and the partition for n = 1..8.
FLUVIO_TABLE = [
    (b"", 0xE849E8BB6FFE2567, [0, 1, 2, 3, 4, 5, 3, 7]),
    (b"k0", 0x2C90E85BC64B6D8E, [0, 0, 0, 2, 0, 0, 2, 6]),
    (b"k1", 0x4FA27AA049690C21, [0, 1, 2, 1, 1, 5, 4, 1]),
    (b"k2", 0x6DEE159B143CE3FB, [0, 1, 1, 3, 1, 1, 3, 3]),
    (b"k3", 0x9B12C1975E89416C, [0, 0, 0, 0, 1, 0, 5, 4]),
    (b"k4", 0xA79590A36D53547A, [0, 0, 1, 2, 1, 4, 5, 2]),
    (b"k5", 0xC5229ECB26ABCB3D, [0, 1, 0, 1, 0, 3, 4, 5]),
]


@pytest.mark.parametrize(("key", "digest", "partitions"), FLUVIO_TABLE, ids=[k.decode() or "empty" for k, *_ in FLUVIO_TABLE])
def test_same_partition_as_fluvio(key: bytes, digest: int, partitions: list[int]) -> None:
    assert key_hash(key) == digest
    assert [partition_for_key(key, n) for n in range(1, 9)] == partitions


def test_keyless_records_round_robin() -> None:
    p = Partitioner()
    assert [p.partition(None, 3) for _ in range(7)] == [0, 1, 2, 0, 1, 2, 0]
    assert p.partition(b"k0", 3) == 0


class FixedRandom:
    def __init__(self, value: float) -> None:
        self.value = value

    def __call__(self) -> float:
        return self.value


@pytest.mark.parametrize(
    ("attempt", "rng", "expected"),
    [(1, 0.5, 0.02), (2, 0.5, 0.04), (3, 0.5, 0.08), (20, 0.5, 1.0), (1, 0.0, 0.016), (1, 1.0, 0.024),
     (30, 1.0, 1.2)],
)
def test_backoff_is_capped_exponential_with_jitter(attempt: int, rng: float, expected: float) -> None:
    assert Backoff(rng=FixedRandom(rng)).delay(attempt) == pytest.approx(expected)


@pytest.mark.parametrize(
    ("code", "retried"),
    [(ErrorCode.NOT_LEADER_FOR_PARTITION, True), (ErrorCode.PARTITION_FULL, True), (ErrorCode.SPU_OFFLINE, True),
     (ErrorCode.REQUEST_TIMED_OUT, True), (ErrorCode.MESSAGE_TOO_LARGE, False), (ErrorCode.TOPIC_NOT_FOUND, False),
     (ErrorCode.TOPIC_INVALID_CONFIGURATION, False), (ErrorCode.PERMISSION_DENIED, False)],
)
def test_only_retriable_codes_are_retried(code: ErrorCode, retried: bool) -> None:
    state = RetryState(started=0.0, backoff=Backoff(rng=FixedRandom(0.5)))
    assert (state.next_wait(code, now=0.0) is not None) == retried


def test_retries_stop_at_the_delivery_deadline() -> None:
    state = RetryState(started=100.0, deadline_seconds=10.0, backoff=Backoff(rng=FixedRandom(0.5)))
    now, waits = 100.0, []
    while (w := state.next_wait(ErrorCode.PARTITION_FULL, now)) is not None:
        waits.append(w)
        now += w
    assert now <= 110.0 and sum(waits) == pytest.approx(now - 100.0)
    assert max(waits) <= 1.2 and len(waits) >= 8


def test_one_warning_per_partition_per_interval() -> None:
    gate = WarningGate(30)
    assert gate.allow(("t", 0), 0) and gate.allow(("t", 1), 1)
    assert not gate.allow(("t", 0), 29.9)
    assert gate.allow(("t", 0), 30.0)


@pytest.mark.parametrize("states, expected", [
    ([True, True, True], None),            # all writable: plain round-robin
    ([False, False], None),                # none: keep spreading (every send retries anyway)
    ([True, False, True], [0, 2]),
    ([False, True, False], [1]),
])
def test_writable_partitions(states: list[bool], expected: list[int] | None) -> None:
    assert writable_partitions(states) == expected


def test_keyless_records_avoid_unwritable_partitions_keyed_ones_do_not() -> None:
    p = Partitioner()
    assert [p.partition(None, 3, [0, 2]) for _ in range(4)] == [0, 2, 0, 2]
    key = b"k7"
    assert p.partition(key, 3, [0, 2]) == partition_for_key(key, 3)
    assert [p.partition(None, 3) for _ in range(3)] == [1, 2, 0]     # the count goes on


def test_not_enough_replicas_is_retried_by_its_text() -> None:
    from fluvial.errors import NOT_ENOUGH_REPLICAS_TEXT, ServerError, retry_rule

    text = f"{NOT_ENOUGH_REPLICAS_TEXT} for t-0: 1 in sync [5002], min-in-sync-replicas 2"
    assert retry_rule(ErrorCode.OTHER, text).retriable and retry_rule(ErrorCode.OTHER, text).refresh_metadata
    assert ServerError(ErrorCode.OTHER, text, topic="t", partition=0).retry.retriable
    assert not retry_rule(ErrorCode.OTHER, "OutOfOrderSequence: ...").retriable
    assert not ServerError(ErrorCode.OTHER, "anything else").retry.retriable
