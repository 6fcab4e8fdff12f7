"""StorageManager: layout, background fsync per policy, retention triggered by low space, scrub."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from fluvial.protocol.records import build_batch
from fluvial.storage import FileIO, FlushPolicy, ReplicaConfig
from fluvial.storage.manager import StorageManager, parse_replica_name
from fluvial.storage.space import DirState


class CountingIO(FileIO):
    """Real file I/O that counts fsyncs."""

    def __init__(self) -> None:
        self.syncs = 0

    def fdatasync(self, fd: int) -> None:
        self.syncs += 1
        super().fdatasync(fd)


def wait_for(cond, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(0.02)
    return cond()


@pytest.mark.parametrize(
    ("name", "expected"),
    [("orders-0", ("orders", 0)), ("my-topic-12", ("my-topic", 12)), ("orders", None), ("-3", None),
     ("orders-x", None), ("consumer-offset-0", ("consumer-offset", 0))],
)
def test_parse_replica_name(name: str, expected: tuple[str, int] | None) -> None:
    assert parse_replica_name(name) == expected


def test_layout_and_background_fsync(tmp_path: Path) -> None:
    io = CountingIO()
    m = StorageManager(tmp_path, 5001, io=io)
    try:
        r = m.open_replica("orders", 0, ReplicaConfig(flush=FlushPolicy.parse("fsync-interval:50")))
        assert r.directory == str(tmp_path / "spu-logs-5001" / "orders-0")
        r.append(build_batch([(None, b"x")], timestamp_ms=1))
        before = io.syncs
        assert wait_for(lambda: io.syncs > before), "the flusher never fsynced"
        assert m.stored_replicas() == [("orders", 0)]
    finally:
        m.close()
    assert (tmp_path / "spu-logs-5001" / "orders-0" / "replication.chk").read_bytes() == (1).to_bytes(8, "big")


def _fill(r, segments: int) -> None:
    one = build_batch([(None, b"y" * 900)], timestamp_ms=1)
    while r.segment_count() <= segments:
        r.append(one)


def test_cleaner_runs_at_once_when_space_is_short(tmp_path: Path) -> None:
    st = os.statvfs(tmp_path)
    free = st.f_bavail * st.f_frsize
    # A reserve that puts the real filesystem in the LOW band (free ≈ 1.8 R).
    m = StorageManager(tmp_path, 5001, reserve_bytes=int(free / 1.8), cleaning_interval_seconds=3600)
    try:
        assert m.guard.state is DirState.LOW
        m.open_replica("t", 0, ReplicaConfig(segment_max_bytes=4096, max_partition_bytes=8192))
        assert wait_for(lambda: m.cleaner.passes >= 1), "no retention pass although the dir is LOW"
    finally:
        m.close()


def test_full_transition_triggers_retention(tmp_path: Path) -> None:
    m = StorageManager(tmp_path, 5001, reserve_bytes=1, cleaning_interval_seconds=3600)
    try:
        cfg = ReplicaConfig(segment_max_bytes=4096, max_partition_bytes=8192)
        r = m.open_replica("t", 0, cfg)
        _fill(r, 6)
        assert r.log_start == 0
        passes = m.cleaner.passes
        m.guard.observe_enospc()                      # what a real ENOSPC does
        assert m.guard.state is DirState.FULL
        assert wait_for(lambda: m.cleaner.passes > passes)
        assert r.log_start > 0 and r.size_bytes() <= 8192 + 4096 + r._index_capacity
    finally:
        m.close()


def test_scrub_verifies_sealed_segments_and_marks_corruption(tmp_path: Path) -> None:
    found = []
    m = StorageManager(tmp_path, 5001, scrub_interval_seconds=0.05,
                       on_corruption=lambda r, base, pos, reason: found.append((base, pos)))
    try:
        r = m.open_replica("t", 0, ReplicaConfig(segment_max_bytes=4096))
        _fill(r, 3)
        log = Path(r.directory, "00000000000000000000.log")
        data = bytearray(log.read_bytes())
        data[100] ^= 0xFF
        log.write_bytes(bytes(data))
        assert wait_for(lambda: found)
        assert found[0] == (0, 0)
        assert wait_for(lambda: not r.unverified_sealed())
    finally:
        m.close()
