"""Replica on a real directory: Fluvio's byte format, read semantics, rolling, retention, recovery."""

from __future__ import annotations

import os
import struct
from collections.abc import Sequence
from pathlib import Path

import pytest

from fluvial import defaults as d
from fluvial.errors import ErrorCode, OffsetBeyondEnd, OffsetEvicted
from fluvial.protocol import batch as b
from fluvial.protocol.records import build_batch, decode_records
from fluvial.storage import FileIO, Isolation, Replica, ReplicaConfig, replica_dir
from fluvial.storage.fileio import Buffer
from fluvial.storage.validator import verify_replica_dir


def batch_of(total_bytes: int, tag: int = 0) -> bytes:
    """A one-record batch of exactly `total_bytes` bytes (70 bytes of framing for values of 64..8191)."""
    out = build_batch([(None, bytes([tag % 256]) * (total_bytes - 70))], timestamp_ms=1_700_000_000_000 + tag)
    assert len(out) == total_bytes
    return out


def offsets_in(data: bytes) -> list[int]:
    return [r.offset for one in b.split_batches(data) for r in decode_records(one)]


# --------------------------------------------------------------------------------------- format

def test_on_disk_format_matches_fluvio(tmp_path: Path) -> None:
    path = replica_dir(str(tmp_path), 5001, "orders", 0)
    assert path.endswith("spu-logs-5001/orders-0")
    cfg = ReplicaConfig(segment_max_bytes=20_000)
    batches = [batch_of(1000, i) for i in range(25)]
    with Replica.open(path, cfg) as r:
        for i, one in enumerate(batches):
            assert r.append(one).base_offset == i
        names = sorted(os.listdir(path))
        # 20 batches of 1000 bytes fill the first segment; the 21st rolls.
        assert names == ["00000000000000000000.index", "00000000000000000000.log", "00000000000000000020.index",
                         "00000000000000000020.log", "replication.chk"]
        active_index = Path(path, "00000000000000000020.index").read_bytes()
        assert len(active_index) == r._index_capacity and not any(active_index)   # preallocated, unused
    log0 = Path(path, "00000000000000000000.log").read_bytes()
    expected = b"".join(b.encode_base_offset(i) + one[8:] for i, one in enumerate(batches[:20]))
    assert log0 == expected                                   # wire bytes, server base offset written in
    # Fluvio's sparse rule with 1000-byte batches: entries for the 6th, 12th, 18th batch at 5000, 11000, 17000.
    idx0 = Path(path, "00000000000000000000.index").read_bytes()
    assert [struct.unpack(">II", idx0[i:i + 8]) for i in range(0, len(idx0), 8)] == [
        (5, 5000), (11, 11000), (17, 17000)]                   # sealed: shrunk to used entries
    assert Path(path, "replication.chk").read_bytes() == struct.pack(">q", 25)
    assert verify_replica_dir(path).ok


def test_reopen_reads_fluvio_index_with_zero_slots(tmp_path: Path) -> None:
    cfg = ReplicaConfig(segment_max_bytes=1 << 20)
    with Replica.open(tmp_path / "t-0", cfg) as r:
        for i in range(40):
            r.append(batch_of(1000, i))
    with Replica.open(tmp_path / "t-0", cfg) as r:
        assert (r.log_start, r.hw, r.leo) == (0, 40, 40)
        assert r._active.writer.entries.rels.tolist() == [5, 11, 17, 23, 29, 35]
        assert offsets_in(r.read(33, 1 << 20).slice.read()) == list(range(33, 40))


# ------------------------------------------------------------------------------------------ reads

@pytest.fixture
def three_segments(tmp_path: Path) -> Replica:
    """Offsets 0-9 sealed, 10-19 sealed, 20-24 active; batches of 2 records, 1000 bytes each."""
    cfg = ReplicaConfig(segment_max_bytes=5000, index_max_interval_bytes=1500)
    r = Replica.open(tmp_path / "t-0", cfg)
    for i in range(12):
        recs = [(None, bytes([i]) * 460), (None, bytes([i]) * 461)]
        one = build_batch(recs, timestamp_ms=1)
        r.append(one)
    yield r
    r.close()


def test_batch_size_of_fixture() -> None:
    assert len(build_batch([(None, b"x" * 460), (None, b"x" * 461)], timestamp_ms=1)) == 1000


READS = [
    # start, max_bytes, expected offsets
    (0, 1 << 20, list(range(0, 10))),          # a read never spans two segments
    (3, 1 << 20, list(range(2, 10))),          # starts at the batch holding the offset
    (10, 1 << 20, list(range(10, 20))),
    (19, 1 << 20, [18, 19]),
    (20, 1 << 20, [20, 21, 22, 23]),           # active segment to its end
    (23, 1 << 20, [22, 23]),
    (0, 2500, [0, 1, 2, 3]),                   # whole batches within max_bytes
    (0, 10, [0, 1]),                           # at least one whole batch
    (4, 3000, [4, 5, 6, 7, 8, 9]),
]


@pytest.mark.parametrize(("start", "max_bytes", "expected"), READS)
def test_read_table(three_segments: Replica, start: int, max_bytes: int, expected: list[int]) -> None:
    res = three_segments.read(start, max_bytes)
    assert (res.log_start, res.hw, res.leo) == (0, 24, 24)
    assert offsets_in(res.slice.read()) == expected


def test_read_at_leo_is_empty_beyond_is_error(three_segments: Replica) -> None:
    assert three_segments.read(24).slice.length == 0
    with pytest.raises(OffsetBeyondEnd) as e:
        three_segments.read(25)
    assert str(e.value) == "start offset: 25 is greater than leo: 24"
    assert e.value.code is ErrorCode.OTHER


def test_read_committed_stops_below_hw(three_segments: Replica) -> None:
    r = three_segments
    r.hw_follows_leo = False
    r.set_hw(22)
    assert offsets_in(r.read(20, isolation=Isolation.READ_COMMITTED).slice.read()) == [20, 21]
    assert offsets_in(r.read(20, isolation=Isolation.READ_UNCOMMITTED).slice.read()) == [20, 21, 22, 23]
    assert r.read(22, isolation=Isolation.READ_COMMITTED).slice.length == 0
    r.set_hw(21)   # HW inside a batch: that batch is not served to committed readers
    assert r.read(20, isolation=Isolation.READ_COMMITTED).slice.length == 0
    r.set_hw(1000)
    assert r.hw == 24


def test_retention_evicts_and_reports_next_available(three_segments: Replica) -> None:
    r = three_segments
    cfg = r.config
    object.__setattr__(cfg, "max_partition_bytes", 10_000)   # frozen dataclass; keep the same object
    assert r.apply_retention() == 1
    assert r.log_start == 10
    assert not Path(r.directory, "00000000000000000000.log").exists()
    with pytest.raises(OffsetEvicted) as e:
        r.read(5)
    assert (e.value.offset, e.value.next_available, e.value.code) == (5, 10, ErrorCode.OFFSET_EVICTED)
    assert offsets_in(r.read(10).slice.read())[0] == 10
    object.__setattr__(cfg, "max_partition_bytes", 10)
    assert r.apply_retention() == 1                         # the active segment is never removed
    assert r.log_start == 20 and r.segment_count() == 1


def test_retention_by_age(three_segments: Replica) -> None:
    r = three_segments
    now = os.stat(Path(r.directory, "00000000000000000010.log")).st_mtime
    assert r.apply_retention(now=now + r.config.retention_seconds - 1) == 0
    assert r.apply_retention(now=now + r.config.retention_seconds + 5) == 2
    assert r.log_start == 20


def test_slice_survives_retention(three_segments: Replica) -> None:
    r = three_segments
    held = r.read(0).slice
    object.__setattr__(r.config, "max_partition_bytes", 10)
    r.apply_retention()
    assert offsets_in(held.read()) == list(range(10))       # the reader's file stays open


# ---------------------------------------------------------------------------------------- recovery

def ten_batches(tmp_path: Path) -> tuple[Path, Path]:
    """A replica of ten 1000-byte batches; returns its directory and its one .log file."""
    d = tmp_path / "t-0"
    with Replica.open(d) as r:
        for i in range(10):
            r.append(batch_of(1000, i))
    return d, d / "00000000000000000000.log"


@pytest.mark.parametrize("cut", [1, 12, 56, 57, 500, 999])
def test_torn_tail_is_truncated_on_open(tmp_path: Path, cut: int) -> None:
    d, log = ten_batches(tmp_path)
    with open(log, "ab") as f:
        f.write(batch_of(1000, 99)[:cut])
    with Replica.open(d) as r:
        assert r.leo == 10 and os.path.getsize(log) == 10_000
        assert r.append(batch_of(1000, 10)).base_offset == 10
    assert verify_replica_dir(d).ok


def test_corrupt_tail_crc_is_truncated_on_open(tmp_path: Path) -> None:
    d, log = ten_batches(tmp_path)
    data = bytearray(log.read_bytes())
    data[8500] ^= 0xFF                                        # inside batch 8 (8000..8999)
    log.write_bytes(bytes(data))
    with Replica.open(d) as r:
        assert r.leo == 8 and os.path.getsize(log) == 8000
    assert verify_replica_dir(d).ok


def test_checkpoint_clamped_and_wrong_length(tmp_path: Path) -> None:
    d = tmp_path / "t-0"
    with Replica.open(d) as r:
        for i in range(5):
            r.append(batch_of(1000, i))
    (d / "replication.chk").write_bytes(struct.pack(">q", 1000))
    with Replica.open(d) as r:
        assert r.hw == 5
    (d / "replication.chk").write_bytes(b"\x00\x01")
    with Replica.open(d) as r:
        assert r.hw == r.leo == 5


def test_corrupt_sealed_segment_found_by_verifier_and_never_served(tmp_path: Path) -> None:
    d = tmp_path / "t-0"
    cfg = ReplicaConfig(segment_max_bytes=5000)
    with Replica.open(d, cfg) as r:
        for i in range(12):
            r.append(batch_of(1000, i))
    log = d / "00000000000000000000.log"
    data = bytearray(log.read_bytes())
    data[3100] ^= 0x01                                        # batch 3
    log.write_bytes(bytes(data))
    report = verify_replica_dir(d)
    assert not report.ok
    problem = report.all_problems()[0]
    assert problem.path == str(log) and problem.position == 3000 and "CRC" in problem.reason
    with Replica.open(d, cfg) as r:                           # sealed segments open without a scan
        assert r.leo == 12
        r.mark_corrupt(0, problem.position, problem.reason)
        assert offsets_in(r.read(0).slice.read()) == [0, 1, 2]
        with pytest.raises(Exception, match="corrupt data"):
            r.read(3)


def test_full_without_a_guard_does_not_flap(tmp_path: Path) -> None:
    """Each rejected retry must not log FULL→OK→FULL: one transition in, one out on the first success."""
    from fluvial.errors import StorageFull
    from fluvial.storage import FaultPlan, FaultyFileIO, ReplicaState

    io = FaultyFileIO(FaultPlan())
    with Replica.open(tmp_path / "t-0", io=io) as r:
        r.append(batch_of(1000, 0))
        io.plan.enospc_after_bytes = io.bytes_written + 500
        for _ in range(50):
            with pytest.raises(StorageFull):
                r.append(batch_of(1000, 1))
        assert r.state is ReplicaState.FULL and r._machine.transitions == 1
        io.plan.enospc_after_bytes = None
        assert r.append(batch_of(1000, 1)).base_offset == 1
        assert r.state is ReplicaState.OK and r._machine.transitions == 2


def allocated(path: Path) -> int:
    return os.stat(path).st_blocks * 512


def test_active_index_starts_small_and_grows_in_fallocated_steps(tmp_path: Path) -> None:
    """Default 1 GiB segments: the index's capacity is 2 MiB, but a new partition preallocates only the
    first step (16 KiB) and the index doubles ahead of its entries (allocated blocks, not a sparse
    file); the entries written across the steps are all found again after a reopen."""
    from fluvial import defaults as d

    cfg = ReplicaConfig(index_max_interval_bytes=64)
    idx = Path(tmp_path, "00000000000000000000.index")
    with Replica.open(tmp_path, cfg) as r:
        assert r._index_capacity == d.INDEX_MAX_BYTES
        assert idx.stat().st_size == d.INDEX_PREALLOC_INITIAL_BYTES <= allocated(idx)
        sizes = set()
        for i in range(5000):                        # about one entry per other batch: ~2,500 entries
            r.append(batch_of(200, i))
            sizes.add(idx.stat().st_size)
        assert sorted(sizes) == [d.INDEX_PREALLOC_INITIAL_BYTES, 2 * d.INDEX_PREALLOC_INITIAL_BYTES]
        assert allocated(idx) >= 2 * d.INDEX_PREALLOC_INITIAL_BYTES
        entries = len(r._active.entries)
        assert entries > d.INDEX_PREALLOC_INITIAL_BYTES // d.INDEX_ENTRY_BYTES
    with Replica.open(tmp_path, cfg) as r:
        assert len(r._active.entries) == entries
        assert [offsets_in(r.read(o, 1).slice.read())[0] for o in range(0, 5000, 499)] == list(range(0, 5000, 499))


def test_many_partitions_preallocate_little(tmp_path: Path) -> None:
    """Issue #13: 200 partitions with the default segment size hold 16 KiB of index each before a record
    is written (the whole 2 MiB capacity each would be 400 MiB)."""
    from fluvial import defaults as d

    replicas = [Replica.open(Path(tmp_path, f"t-{p}"), ReplicaConfig()) for p in range(200)]
    try:
        total = sum(allocated(Path(dirpath, f)) for dirpath, _d, files in os.walk(tmp_path) for f in files)
        assert total <= 200 * (d.INDEX_PREALLOC_INITIAL_BYTES + 8 * 1024)
    finally:
        for r in replicas:
            r.close()


class CountingIO(FileIO):
    """Real file I/O that counts the writes of log bytes."""

    def __init__(self) -> None:
        self.pwritevs = 0

    def pwritev(self, fd: int, buffers: Sequence[Buffer], offset: int) -> None:
        self.pwritevs += 1
        super().pwritev(fd, buffers, offset)


@pytest.mark.parametrize(("segment", "count"), [(1 << 20, 25), (20_000, 25), (1 << 22, 3000), (1 << 24, 10_000)])
def test_a_record_set_is_written_as_one_run_with_the_same_bytes_as_batch_by_batch(
        tmp_path: Path, segment: int, count: int) -> None:
    """append_batches writes back-to-back batches with one pwritev (a run crossing a roll or an index step
    goes batch by batch): the files are byte for byte those of appending the batches one at a time."""
    batches = [batch_of(1000, i) for i in range(count)]
    cfg = ReplicaConfig(segment_max_bytes=segment)
    with Replica.open(tmp_path / "one" / "t-0", cfg) as r:
        for one in batches:
            r.append(one)
        r.sync()                                     # pending index entries to the file, as the flusher does
    io = CountingIO()
    with Replica.open(tmp_path / "run" / "t-0", cfg, io=io) as r:
        io.pwritevs = 0
        result = r.append_batches(batches)
        assert (result.base_offset, result.leo, result.records, result.bytes) == (0, count, count, 1000 * count)
        if segment > 1000 * count:
            assert io.pwritevs == -(-count // d.APPEND_RUN_IOV_BATCHES)     # no roll: one write per 500 batches
        seen: list[int] = []
        while len(seen) < count:                     # a read stays within one segment
            seen += offsets_in(r.read(len(seen), 1 << 30).slice.read())
        assert seen == list(range(count))
        r.sync()
    for name in sorted(os.listdir(tmp_path / "one" / "t-0")):
        run, one = Path(tmp_path, "run", "t-0", name).read_bytes(), Path(tmp_path, "one", "t-0", name).read_bytes()
        if name.endswith(".index"):      # a run may preallocate its index step earlier: same entries, zeros after
            n = min(len(run), len(one))
            assert not any(run[n:]) and not any(one[n:]), name
            run, one = run[:n], one[:n]
        assert run == one, name
    assert verify_replica_dir(str(tmp_path / "run" / "t-0")).ok
