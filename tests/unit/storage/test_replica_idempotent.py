"""Idempotent appends on a real replica directory: exact retries are acknowledged with their original base
offset and never written twice — also after a clean reopen, after a kill -9 with a torn tail, and when the
last batch sits in a sealed segment; out-of-order and fenced batches write nothing."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from fluvial import defaults as d
from fluvial.errors import OutOfOrderSequence, ProducerFenced
from fluvial.protocol import batch as b
from fluvial.protocol.records import build_batch, decode_records
from fluvial.storage import Replica, ReplicaConfig
from fluvial.storage.producers import decode_snapshot, encode_snapshot
from fluvial.storage.validator import verify_replica_dir

PID = 42


def pbatch(first: int, count: int = 2, *, pid: int = PID, epoch: int = 0, size: int = 100) -> bytes:
    recs = [(None, bytes([first % 256]) * size) for _ in range(count)]
    return build_batch(recs, timestamp_ms=1_700_000_000_000, producer_id=pid, producer_epoch=epoch,
                       first_sequence=first)


def plain(size: int = 100) -> bytes:
    return build_batch([(None, b"x" * size)], timestamp_ms=1_700_000_000_000)


def log_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.glob("*.log"))


def abandon(r: Replica) -> None:
    """What kill -9 leaves: nothing synced, nothing closed cleanly, no snapshot written at close."""
    for seg in [*r._sealed, r._active]:
        seg.close()
    r._checkpoint.close()
    r.closed = True


def test_exact_retry_is_acknowledged_not_written(tmp_path: Path) -> None:
    with Replica.open(tmp_path / "t-0") as r:
        assert r.append(pbatch(0)).base_offset == 0
        assert r.append(plain()).base_offset == 2
        second = r.append(pbatch(2))
        assert (second.base_offset, second.records, second.duplicate_batches) == (3, 2, 0)
        size, leo = log_bytes(tmp_path / "t-0"), r.leo
        again = r.append(pbatch(2))
        assert (again.base_offset, again.leo, again.records, again.bytes, again.duplicate_batches) == (3, 5, 0, 0, 1)
        assert r.append_batches([pbatch(0)]).base_offset == 0     # an older remembered batch too
        assert (log_bytes(tmp_path / "t-0"), r.leo) == (size, leo)
        assert r.producer_state(PID) == (0, 3)
    assert verify_replica_dir(tmp_path / "t-0").ok


def test_out_of_order_and_fenced_batches_write_nothing(tmp_path: Path) -> None:
    with Replica.open(tmp_path / "t-0") as r:
        r.append(pbatch(0, epoch=1))
        r.append(pbatch(2, epoch=1))
        size = log_bytes(tmp_path / "t-0")
        for bad, err in [(pbatch(5, epoch=1), OutOfOrderSequence),      # gap
                         (pbatch(4, epoch=0), ProducerFenced)]:         # older epoch
            with pytest.raises(err):
                r.append(bad)
        # sequences 1..2 lie in the remembered run 0..3 (two batches back to back): already written there
        assert r.append(pbatch(1, epoch=1)).base_offset == 1
        with pytest.raises(OutOfOrderSequence):                         # all or nothing within a request
            r.append_batches([plain(), pbatch(4, epoch=1), pbatch(9, epoch=1)])
        assert (r.leo, log_bytes(tmp_path / "t-0")) == (4, size)
        assert r.append(pbatch(0, epoch=2)).base_offset == 4            # newer epoch: state reset
        assert r.producer_state(PID) == (2, 1)
        with pytest.raises(ProducerFenced):
            r.append(pbatch(4, epoch=1))


def test_partially_written_request_retried(tmp_path: Path) -> None:
    """A retry whose first batch made it and second did not: the first is acknowledged, the second written."""
    with Replica.open(tmp_path / "t-0") as r:
        r.append(pbatch(0))
        res = r.append_batches([pbatch(0), pbatch(2)])
        assert (res.base_offset, res.leo, res.records, res.duplicate_batches) == (0, 4, 2, 1)


def test_official_client_batches_leave_no_snapshot(tmp_path: Path) -> None:
    with Replica.open(tmp_path / "t-0") as r:
        for _ in range(3):
            r.append(plain())
    assert not (tmp_path / "t-0" / d.PRODUCER_SNAPSHOT_FILE).exists()
    with Replica.open(tmp_path / "t-0") as r:
        assert r.leo == 3 and r.append(plain()).base_offset == 3     # two identical plain batches: both stored


def test_retry_after_clean_reopen(tmp_path: Path) -> None:
    with Replica.open(tmp_path / "t-0") as r:
        for k in range(4):
            r.append(pbatch(2 * k))
    with Replica.open(tmp_path / "t-0") as r:
        assert r.append(pbatch(6)).base_offset == 6 and r.leo == 8
        assert r.append(pbatch(4)).base_offset == 4
        assert r.append(pbatch(8)).base_offset == 8


@pytest.mark.parametrize("torn", [b"", b"\x00" * 7, None])
def test_retry_after_kill_9_with_torn_tail(tmp_path: Path, torn: bytes | None) -> None:
    path = tmp_path / "t-0"
    r = Replica.open(path)
    for k in range(3):
        r.append(pbatch(2 * k))
    r.append(plain())
    last = r.append(pbatch(6))
    abandon(r)
    with open(path / "00000000000000000000.log", "ab") as f:
        f.write(pbatch(8)[:40] if torn is None else torn)       # a batch cut short by the crash
    with Replica.open(path) as r:
        assert r.leo == 9
        again = r.append(pbatch(6))
        assert (again.base_offset, again.duplicate_batches, r.leo) == (last.base_offset, 1, 9)
        assert r.append(pbatch(8)).base_offset == 9              # the torn batch's retry is new
    assert verify_replica_dir(path).ok


def test_retry_of_a_batch_in_a_sealed_segment_after_kill_9(tmp_path: Path) -> None:
    path = tmp_path / "t-0"
    cfg = ReplicaConfig(segment_max_bytes=2000)
    r = Replica.open(path, cfg)
    r.append(pbatch(0, size=300))
    acked = r.append(pbatch(2, size=300))
    for _ in range(8):
        r.append(plain(300))                                     # rolls: producer 42's batches are sealed
    assert r.active_base > acked.leo
    offset, entries = decode_snapshot((path / d.PRODUCER_SNAPSHOT_FILE).read_bytes())
    assert offset == r.active_base and entries[PID].last_sequence == 3     # written at the last roll
    abandon(r)
    with Replica.open(path, cfg) as r:
        assert r.append(pbatch(2, size=300)).base_offset == acked.base_offset
        assert r.append(pbatch(4, size=300)).base_offset == r.leo - 2


def test_stale_snapshot_replays_sealed_segments(tmp_path: Path) -> None:
    """A roll whose snapshot write failed leaves the previous one: open replays from its offset, across
    sealed segments, and still knows the producer."""
    path = tmp_path / "t-0"
    cfg = ReplicaConfig(segment_max_bytes=2000)
    r = Replica.open(path, cfg)
    r.append(plain(300))
    r.append(pbatch(0, size=300))
    early = (path / d.PRODUCER_SNAPSHOT_FILE).read_bytes()      # written at the first idempotent batch
    acked = r.append(pbatch(2, size=300))
    for _ in range(8):
        r.append(plain(300))
    abandon(r)
    (path / d.PRODUCER_SNAPSHOT_FILE).write_bytes(early)
    with Replica.open(path, cfg) as r:
        assert r.append(pbatch(2, size=300)).base_offset == acked.base_offset
        assert r.append(pbatch(0, size=300)).base_offset == 1


@pytest.mark.parametrize("damage", ["corrupt", "ahead"])
def test_bad_snapshot_falls_back_to_the_active_segment(tmp_path: Path, damage: str) -> None:
    path = tmp_path / "t-0"
    r = Replica.open(path)
    r.append(pbatch(0))
    acked = r.append(pbatch(2))
    abandon(r)
    snap = path / d.PRODUCER_SNAPSHOT_FILE
    if damage == "corrupt":
        snap.write_bytes(snap.read_bytes()[:-3])
    else:
        snap.write_bytes(encode_snapshot(10_000, []))
    with Replica.open(path) as r:
        assert r.append(pbatch(2)).base_offset == acked.base_offset
        assert r.producer_state(PID) == (0, 3)


def test_stored_bytes_are_the_produced_batches(tmp_path: Path) -> None:
    """The .log keeps Fluvio's format: producer fields as sent, base offset written in."""
    with Replica.open(tmp_path / "t-0") as r:
        r.append(plain())
        r.append(pbatch(0, count=3))
        data = r.read(0).slice.read()
    _one, two = b.split_batches(data)
    h = b.decode_header(two)
    assert (h.base_offset, h.producer_id, h.producer_epoch, h.first_sequence) == (1, PID, 0, 0)
    assert [x.offset for x in decode_records(two)] == [1, 2, 3]
    assert bytes(two[8:]) == pbatch(0, count=3)[8:]
    assert not [n for n in os.listdir(tmp_path / "t-0") if n.endswith(".tmp")]
