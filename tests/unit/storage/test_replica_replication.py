"""Replication on real replica directories: the leader stamps its epoch, a follower appends the leader's
bytes verbatim, truncation cuts whole batches (also across segments) and rebuilds the epoch history and
the idempotent producers' table, a reset restarts the log at the leader's start."""

from __future__ import annotations

from pathlib import Path

import pytest

from fluvial import defaults as d
from fluvial.errors import CorruptData, OffsetEvicted
from fluvial.protocol import batch as b
from fluvial.protocol.records import build_batch
from fluvial.storage import Replica, ReplicaConfig
from fluvial.storage.epochs import epoch_end, parse, render, truncation_point
from fluvial.storage.producers import Verdict
from fluvial.storage.validator import verify_replica_dir


def plain(tag: int, size: int = 100) -> bytes:
    return build_batch([(None, bytes([tag % 256]) * size)], timestamp_ms=1_700_000_000_000 + tag)


def pbatch(first: int, count: int = 2, pid: int = 7) -> bytes:
    return build_batch([(None, b"p" * 50)] * count, timestamp_ms=1_700_000_000_000, producer_id=pid,
                       producer_epoch=0, first_sequence=first)


def all_bytes(r: Replica, upto: int | None = None) -> bytes:
    out = b""
    pos = r.log_start
    end = r.leo if upto is None else upto
    while pos < end:
        res = r.read(pos, 1 << 20)
        data = res.slice.read()
        if not data:
            break
        for one in b.split_batches(data):
            h = b.decode_header(one)
            if h.base_offset >= end:
                return out
            out += bytes(one)
            pos = h.next_offset
    return out


def small(segment_bytes: int = 2048) -> ReplicaConfig:
    return ReplicaConfig(segment_max_bytes=segment_bytes)


# ---------------------------------------------------------------------------------------- pure


@pytest.mark.parametrize("history, epoch, leo, expected", [
    ([], 0, 10, (-1, 10)),
    ([(0, 0)], 0, 10, (0, 10)),
    ([(0, 0), (2, 5)], 0, 10, (0, 5)),
    ([(0, 0), (2, 5)], 1, 10, (0, 5)),            # epoch 1 unknown here: the largest below it is 0
    ([(0, 0), (2, 5)], 2, 10, (2, 10)),
    ([(0, 0), (2, 5)], 7, 10, (2, 10)),
    ([(3, 4)], 1, 10, (-1, 4)),                   # nothing at or below: the first epoch's start
])
def test_epoch_end_table(history: list[tuple[int, int]], epoch: int, leo: int, expected: tuple[int, int]) -> None:
    assert epoch_end(history, epoch, leo) == expected


@pytest.mark.parametrize("leo, mine, leader, expected", [
    (10, 10, 10, 10), (10, 10, 6, 6), (6, 6, 10, 6), (10, 8, 9, 8), (0, 0, 5, 0),
])
def test_truncation_point_table(leo: int, mine: int, leader: int, expected: int) -> None:
    assert truncation_point(leo, mine, leader) == expected


def test_history_file_round_trip_and_garbage() -> None:
    h = [(0, 0), (1, 17), (4, 90)]
    assert parse(render(h).decode()) == h
    assert parse("0 0\n1 17\nbroken\n4 90\n") == [(0, 0), (1, 17)]
    assert parse("0 0\n0 5\n") == [(0, 0)]          # epochs must grow
    assert parse("") == []


# -------------------------------------------------------------------------------- leader/follower


def test_follower_bytes_equal_leader_and_epochs_are_stamped(tmp_path: Path) -> None:
    leader = Replica.open(tmp_path / "l", small())
    follower = Replica.open(tmp_path / "f", small())
    leader.start_epoch(0)
    for i in range(10):
        leader.append(plain(i))
    leader.start_epoch(3)
    for i in range(10, 30):
        leader.append(plain(i))
    assert leader.epoch_history() == [(0, 0), (3, 10)]
    while follower.leo < leader.leo:
        data = leader.read(follower.leo, 700).slice.read()
        follower.append_replicated(data)
    assert all_bytes(follower) == all_bytes(leader)
    assert follower.epoch_history() == [(0, 0), (3, 10)]
    epochs = {b.decode_header(one).leader_epoch for one in b.split_batches(all_bytes(follower))}
    assert epochs == {0, 3}
    assert follower.segment_count() > 1
    follower.close()
    leader.close()
    assert not verify_replica_dir(str(tmp_path / "f")).problems


def test_follower_refuses_a_batch_not_at_its_leo(tmp_path: Path) -> None:
    leader = Replica.open(tmp_path / "l")
    follower = Replica.open(tmp_path / "f")
    for i in range(3):
        leader.append(plain(i))
    with pytest.raises(CorruptData):
        follower.append_replicated(leader.read(1).slice.read())
    assert follower.leo == 0


@pytest.mark.parametrize("cut", [0, 1, 7, 10, 11, 25, 29])
def test_truncate_across_segments_then_append_and_reopen(tmp_path: Path, cut: int) -> None:
    r = Replica.open(tmp_path / "r", small())
    r.start_epoch(0)
    for i in range(10):
        r.append(plain(i))
    r.start_epoch(1)
    for i in range(10, 30):
        r.append(plain(i))
    before = all_bytes(r, cut)
    assert r.truncate_to(cut) == cut
    assert r.leo == cut and r.hw <= cut
    assert all_bytes(r) == before
    assert r.epoch_history() == ([(0, 0), (1, 10)] if cut >= 10 else [(0, 0)])
    r.start_epoch(2)
    r.append(plain(99))
    assert r.leo == cut + 1
    r.close()
    again = Replica.open(tmp_path / "r", small())
    assert again.leo == cut + 1
    assert all_bytes(again, cut) == before
    assert again.epoch_history()[-1] == (2, cut)
    again.close()
    assert not verify_replica_dir(str(tmp_path / "r")).problems


def test_truncation_forgets_removed_idempotent_batches(tmp_path: Path) -> None:
    r = Replica.open(tmp_path / "r")
    r.append(pbatch(0))             # offsets 0-1
    r.append(pbatch(2))             # offsets 2-3
    assert r.append(pbatch(2)).duplicate_batches == 1
    r.truncate_to(2)
    again = r.append(pbatch(2))     # a resend of the removed batch is appended, not acknowledged
    assert again.duplicate_batches == 0 and again.base_offset == 2 and r.leo == 4
    r.close()
    reopened = Replica.open(tmp_path / "r")
    assert reopened._producers.plan([b.decode_header(pbatch(2))], reopened.leo)[0].verdict is Verdict.DUPLICATE
    reopened.close()


def test_follower_records_producer_state_as_the_leader_decided(tmp_path: Path) -> None:
    leader = Replica.open(tmp_path / "l")
    follower = Replica.open(tmp_path / "f")
    leader.append(pbatch(0))
    leader.append(plain(1))
    leader.append(pbatch(2))
    follower.append_replicated(leader.read(0).slice.read())
    assert follower.producer_state(7) == leader.producer_state(7) == (0, 3)
    # now leading: an exact retry is acknowledged with the leader's offset
    res = follower.append(pbatch(2))
    assert res.duplicate_batches == 1 and res.base_offset == 3


def test_reset_restarts_at_the_leaders_log_start(tmp_path: Path) -> None:
    r = Replica.open(tmp_path / "r")
    for i in range(5):
        r.append(plain(i))
    r.reset_to(100)
    assert (r.log_start, r.leo, r.hw) == (100, 100, 100)
    with pytest.raises(OffsetEvicted):
        r.read(3)
    leader = Replica.open(tmp_path / "l")
    leader.reset_to(100)
    leader.append(plain(7))
    r.append_replicated(leader.read(100).slice.read())
    assert r.leo == 101
    r.close()
    assert Replica.open(tmp_path / "r").log_start == 100
    assert sorted(p.name for p in (tmp_path / "r").glob("*.log")) == [f"{100:020d}.log"]
    assert d.EPOCH_HISTORY_FILE
