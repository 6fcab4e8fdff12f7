"""Table-driven tests of storage's pure cores: index look-ups, retention, space bands, state tables."""

from __future__ import annotations

import errno
from array import array

import pytest

from fluvial import defaults as d
from fluvial.errors import InvalidConfig
from fluvial.storage.config import FlushKind, FlushPolicy, ReplicaConfig
from fluvial.storage.index import (
    IndexEntries,
    encode_entry,
    index_capacity_bytes,
    index_growth_target,
    index_initial_bytes,
    parse_index,
)
from fluvial.storage.replica import (
    IO_FAILED,
    REPLICA_TRANSITIONS,
    SPACE_AVAILABLE,
    SPACE_EXHAUSTED,
    ReplicaState,
    classify_os_error,
)
from fluvial.storage.retention import SegmentStat, segments_to_remove
from fluvial.storage.space import DIR_TRANSITIONS, Band, DirState, band, reserve_for
from fluvial.storage.validator import segment_bases

MiB = 1 << 20

# ------------------------------------------------------------------------------------------- index

ENTRIES = IndexEntries(array("I", [6, 12, 18]), array("I", [5000, 11000, 17000]))


@pytest.mark.parametrize(
    ("rel", "expected"),
    [(0, (0, 0)), (5, (0, 0)), (6, (6, 5000)), (11, (6, 5000)), (12, (12, 11000)), (18, (18, 17000)),
     (10**6, (18, 17000))],
)
def test_floor_by_offset(rel: int, expected: tuple[int, int]) -> None:
    assert ENTRIES.floor_by_offset(rel) == expected


@pytest.mark.parametrize(
    ("pos", "expected"),
    [(0, (0, 0)), (4999, (0, 0)), (5000, (6, 5000)), (16999, (12, 11000)), (10**9, (18, 17000))],
)
def test_floor_by_position(pos: int, expected: tuple[int, int]) -> None:
    assert ENTRIES.floor_by_position(pos) == expected


def _raw(*pairs: tuple[int, int], zeros: int = 0) -> bytes:
    return b"".join(encode_entry(r, p) for r, p in pairs) + bytes(8 * zeros)


@pytest.mark.parametrize(
    ("name", "raw", "log_size", "expected"),
    [
        ("empty file", b"", 100, []),
        ("all zero slots", bytes(80), 100, []),
        ("used then zero", _raw((6, 5000), (12, 11000), zeros=5), 20000, [(6, 5000), (12, 11000)]),
        ("full, no zero slot", _raw((6, 5000), (12, 11000)), 20000, [(6, 5000), (12, 11000)]),
        ("entry past the log is dropped", _raw((6, 5000), (12, 11000)), 11000, [(6, 5000)]),
        ("non-increasing tail dropped", _raw((6, 5000), (5, 6000), (12, 11000)), 20000, [(6, 5000)]),
        ("torn last entry ignored", _raw((6, 5000))[:8] + b"\x00\x00\x00\x0c", 20000, [(6, 5000)]),
    ],
)
def test_parse_index(name: str, raw: bytes, log_size: int, expected: list[tuple[int, int]]) -> None:
    e = parse_index(raw, log_size)
    assert list(zip(e.rels, e.positions, strict=True)) == expected


@pytest.mark.parametrize(
    ("segment", "interval", "expected"),
    [(d.GIB, 4096, (d.GIB // 4096 + 2) * 8), (MiB, 4096, (256 + 2) * 8), (16 * d.GIB - 1, 4096, d.INDEX_MAX_BYTES),
     (1024, 4096, 16)],
)
def test_index_capacity_scales_with_segment(segment: int, interval: int, expected: int) -> None:
    assert index_capacity_bytes(segment, interval) == expected


KiB = 1024


@pytest.mark.parametrize(
    ("allocated", "needed", "capacity", "expected"),
    [(0, 8, 2 * MiB, 16 * KiB),                     # the first step
     (16 * KiB, 16 * KiB + 8, 2 * MiB, 32 * KiB),   # one doubling
     (32 * KiB, 200 * KiB, 2 * MiB, 256 * KiB),     # as many doublings as needed
     (MiB, 3 * MiB, 2 * MiB, 2 * MiB),              # never past the capacity
     (0, 8, 48, 48),                                # a small segment's whole index at once
     (64 * KiB, 8, 2 * MiB, 64 * KiB)],             # never shrinks
)
def test_index_growth_target(allocated: int, needed: int, capacity: int, expected: int) -> None:
    assert index_growth_target(allocated, needed, capacity) == expected


def test_index_first_step_is_small_and_bounded_by_capacity() -> None:
    assert index_initial_bytes(index_capacity_bytes(d.GIB, 4096)) == d.INDEX_PREALLOC_INITIAL_BYTES
    assert index_initial_bytes(48) == 48


def test_segment_names() -> None:
    names = ["00000000000000001234.log", "00000000000000000000.log", "00000000000000000000.index",
             "replication.chk", "0000000000000000000.log", "x0000000000000000000.log", "00000000000000000099.log.tmp"]
    assert segment_bases(names) == [0, 1234]


# --------------------------------------------------------------------------------------- retention

def seg(base: int, size: int, mtime: float) -> SegmentStat:
    return SegmentStat(base, size, mtime)


RETENTION_TABLE = [
    # name, sealed, active bytes, max partition, retention s, now, expected count
    ("nothing sealed", [], 10**9, 100, 10, 1000, 0),
    ("within limits", [seg(0, 100, 990), seg(10, 100, 995)], 50, 1000, 100, 1000, 0),
    ("size: oldest until it fits", [seg(0, 100, 999), seg(10, 100, 999), seg(20, 100, 999)], 50, 200, 10**6, 1000, 2),
    ("size: active alone too big keeps active", [seg(0, 100, 999)], 500, 200, 10**6, 1000, 1),
    ("age: strictly older", [seg(0, 1, 800), seg(1, 1, 900), seg(2, 1, 950)], 1, 10**9, 100, 1000, 1),
    ("age: exactly at limit kept", [seg(0, 1, 900)], 1, 10**9, 100, 1000, 0),
    ("age: only a prefix even if a later one is older", [seg(0, 1, 999), seg(1, 1, 0)], 1, 10**9, 100, 1000, 0),
    ("size then age", [seg(0, 100, 999), seg(1, 100, 100), seg(2, 100, 999)], 0, 250, 500, 1000, 2),
    ("age stops at a young segment", [seg(0, 100, 999), seg(1, 100, 999), seg(2, 100, 100)], 0, 250, 500, 1000, 1),
    ("size then age continue", [seg(0, 100, 100), seg(1, 100, 100), seg(2, 100, 999)], 0, 250, 500, 1000, 2),
]


@pytest.mark.parametrize(("name", "sealed", "active", "max_bytes", "ret", "now", "expected"), RETENTION_TABLE,
                         ids=[r[0] for r in RETENTION_TABLE])
def test_retention(name: str, sealed: list[SegmentStat], active: int, max_bytes: int, ret: int, now: int,
                   expected: int) -> None:
    assert segments_to_remove(sealed, active, max_partition_bytes=max_bytes, retention_seconds=ret,
                              now=now) == expected


# ------------------------------------------------------------------------------------------- space

R = 1000


@pytest.mark.parametrize(
    ("free", "expected"),
    [(0, Band.CRITICAL), (1249, Band.CRITICAL), (1250, Band.LOW), (1500, Band.LOW), (1501, Band.RECOVERING),
     (1999, Band.RECOVERING), (2000, Band.TIGHT), (2500, Band.TIGHT), (2501, Band.AMPLE)],
)
def test_band(free: int, expected: Band) -> None:
    assert band(free, R) is expected


@pytest.mark.parametrize(
    ("total", "expected"),
    [(16 * MiB, MiB), (100 * MiB, 5 * MiB), (10 * d.GIB, 512 * MiB), (10 * 1024 * d.GIB, d.GIB), (0, MiB)],
)
def test_reserve_scales_and_clamps(total: int, expected: int) -> None:
    assert reserve_for(total) == expected


def _walk(start: DirState, frees: list[int]) -> list[DirState]:
    state, out = start, []
    for f in frees:
        state = DIR_TRANSITIONS.get((state, band(f, R).value), state)
        out.append(state)
    return out


@pytest.mark.parametrize(
    ("name", "frees", "expected"),
    [
        ("OK→LOW below 2R", [1999], [DirState.LOW]),
        ("LOW→FULL below 1.25R", [1999, 1249], [DirState.LOW, DirState.FULL]),
        ("LOW holds at 1.25R", [1999, 1250], [DirState.LOW, DirState.LOW]),
        ("OK→FULL straight", [10], [DirState.FULL]),
        ("FULL holds up to 1.5R", [999, 1200, 1500], [DirState.FULL] * 3),
        ("FULL→LOW above 1.5R", [999, 1501], [DirState.FULL, DirState.LOW]),
        ("LOW holds up to 2.5R", [999, 1600, 2500], [DirState.FULL, DirState.LOW, DirState.LOW]),
        ("LOW→OK above 2.5R", [1999, 2501], [DirState.LOW, DirState.OK]),
        ("FULL→OK straight", [999, 10**6], [DirState.FULL, DirState.OK]),
        ("no flapping around 1.25R", [1249, 1251, 1249, 1251], [DirState.FULL] * 4),
        ("OK holds at 2R", [2000, 2400], [DirState.OK, DirState.OK]),
    ],
)
def test_dir_hysteresis(name: str, frees: list[int], expected: list[DirState]) -> None:
    assert _walk(DirState.OK, frees) == expected


def test_failed_dir_is_terminal() -> None:
    for st in DirState:
        if st is not DirState.FAILED:
            assert DIR_TRANSITIONS[(st, "io_failed")] is DirState.FAILED
    assert not [k for k in DIR_TRANSITIONS if k[0] is DirState.FAILED]


# ----------------------------------------------------------------------------------- replica state

@pytest.mark.parametrize(
    ("state", "event", "expected"),
    [
        (ReplicaState.OK, SPACE_EXHAUSTED, ReplicaState.FULL),
        (ReplicaState.FULL, SPACE_AVAILABLE, ReplicaState.OK),
        (ReplicaState.OK, IO_FAILED, ReplicaState.FAILED),
        (ReplicaState.FULL, IO_FAILED, ReplicaState.FAILED),
        (ReplicaState.OK, SPACE_AVAILABLE, ReplicaState.OK),
        (ReplicaState.FULL, SPACE_EXHAUSTED, ReplicaState.FULL),
        (ReplicaState.FAILED, SPACE_AVAILABLE, ReplicaState.FAILED),
        (ReplicaState.FAILED, SPACE_EXHAUSTED, ReplicaState.FAILED),
    ],
)
def test_replica_transitions(state: ReplicaState, event: str, expected: ReplicaState) -> None:
    assert REPLICA_TRANSITIONS.get((state, event), state) is expected


@pytest.mark.parametrize(
    ("err", "during", "expected"),
    [
        (errno.ENOSPC, "write", SPACE_EXHAUSTED),
        (errno.EDQUOT, "write", SPACE_EXHAUSTED),
        (errno.ENOSPC, "roll", SPACE_EXHAUSTED),
        (errno.ENOSPC, "preallocate", SPACE_EXHAUSTED),
        (errno.ENOSPC, "checkpoint", SPACE_EXHAUSTED),
        (errno.ENOSPC, "fsync", IO_FAILED),     # a failed fsync is always persistent, whatever the errno
        (errno.EDQUOT, "fsync", IO_FAILED),
        (errno.EIO, "checkpoint", IO_FAILED),
        (errno.EROFS, "roll", IO_FAILED),
        (errno.EIO, "write", IO_FAILED),
        (errno.EROFS, "write", IO_FAILED),
        (errno.EIO, "fsync", IO_FAILED),
        (errno.EBADF, "write", IO_FAILED),
    ],
)
def test_classify_os_error(err: int, during: str, expected: str) -> None:
    assert classify_os_error(OSError(err, "x"), during) == expected


# ------------------------------------------------------------------------------------------ config

@pytest.mark.parametrize(
    ("text", "kind", "interval"),
    [("os", FlushKind.OS, 1.0), ("fsync-every-batch", FlushKind.FSYNC_EVERY_BATCH, 1.0),
     ("fsync-interval:250", FlushKind.FSYNC_INTERVAL, 0.25), (" os ", FlushKind.OS, 1.0)],
)
def test_flush_policy_parse(text: str, kind: FlushKind, interval: float) -> None:
    p = FlushPolicy.parse(text)
    assert (p.kind, p.interval_seconds) == (kind, interval)
    assert FlushPolicy.parse(str(p)) == p


@pytest.mark.parametrize("text", ["", "fsync", "fsync-interval:", "fsync-interval:0", "fsync-interval:-5",
                                  "fsync-interval:abc", "OS"])
def test_flush_policy_rejects(text: str) -> None:
    with pytest.raises(InvalidConfig):
        FlushPolicy.parse(text)


@pytest.mark.parametrize(
    "kwargs",
    [{"segment_max_bytes": 1023}, {"segment_max_bytes": 1 << 32}, {"index_max_interval_bytes": 0},
     {"max_partition_bytes": 2047}, {"retention_seconds": -1}, {"batch_max_bytes": 0}],
)
def test_replica_config_rejects(kwargs: dict) -> None:
    with pytest.raises(InvalidConfig):
        ReplicaConfig(**kwargs)


def test_batch_limit_is_the_smaller() -> None:
    assert ReplicaConfig(segment_max_bytes=4096).batch_limit == (4096, "segment size")
    assert ReplicaConfig().batch_limit == (d.BATCH_MAX_BYTES, "max batch size")


@pytest.mark.parametrize("free", [*range(0, 3000, 7), 999, 1000, 1500, 1501, 1999, 2000, 2500, 2501])
def test_band_floor_is_where_the_band_can_change(free: int) -> None:
    """Any reading above a band's floor is in that band or a higher one, so charge() (which only
    lowers free space) needs to re-evaluate only at or below the floor."""
    from fluvial.storage.space import band_floor

    order = list(Band)
    current = band(free, R)
    floor = band_floor(current, R)
    start = 0 if floor == float("-inf") else int(floor) + 1
    assert all(order.index(band(x, R)) >= order.index(current) for x in range(start, 3 * R))
