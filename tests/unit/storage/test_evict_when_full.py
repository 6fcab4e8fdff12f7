"""`--evict-when-full` (issue #9 item 5): while a data dir is FULL the cleaner deletes the data dir's
oldest sealed segments first, across replicas, until it is no longer FULL — logged once per pass and
counted; without the flag retention never deletes what a topic's retention keeps. What statvfs reports
comes from the fault layer."""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path

import pytest

from fluvial.protocol.records import build_batch
from fluvial.storage import DirState, FaultPlan, FaultyFileIO, ReplicaConfig
from fluvial.storage.fileio import FsUsage
from fluvial.storage.manager import StorageManager

MIB = 1 << 20
R = 1 * MIB
CFG = ReplicaConfig(segment_max_bytes=4096)      # default retention: keeps everything


def _fill(m: StorageManager, topic: str, segments: int, mtime0: float) -> None:
    r = m.open_replica(topic, 0, CFG)
    while r.segment_count() <= segments:
        r.append(build_batch([(None, b"x" * 900)]))
    for i, seg in enumerate(r.unverified_sealed()):   # deterministic ages: older topics, older segments
        os.utime(seg.log_path, (mtime0 + i, mtime0 + i))


@pytest.mark.parametrize("evict", [False, True])
def test_eviction_only_with_the_flag_and_oldest_first(tmp_path: Path, evict: bool,
                                                      caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    io = FaultyFileIO(FaultPlan(usage=FsUsage(100 * MIB, 50 * MIB)))
    m = StorageManager(tmp_path, 5001, io=io, reserve_bytes=R, cleaning_interval_seconds=3600,
                       evict_when_full=evict, start=False)
    try:
        now = time.time()
        _fill(m, "old", 3, now - 1000)
        _fill(m, "new", 3, now - 500)
        sizes = {k: r.segment_count() for k, r in m.replicas().items()}
        io.plan.usage = FsUsage(100 * MIB, R // 2)           # the disk is FULL (someone else ate it)
        m.guard.refresh()
        assert m.guard.state is DirState.FULL
        io.plan.usage = FsUsage(100 * MIB, R // 2)
        m.cleaner.run_once()
        counts = {k: r.segment_count() for k, r in m.replicas().items()}
        lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("evicted_when_full")]
        if not evict:
            assert counts == sizes and m.cleaner.evicted_segments == 0 and lines == []
            return
        # statvfs never shows room here, so every sealed segment goes; the active ones stay
        assert counts == {("old", 0): 1, ("new", 0): 1}
        assert m.cleaner.evicted_segments == sum(sizes.values()) - 2 and m.cleaner.evicted_bytes > 0
        assert len(lines) == 1 and "data loss" in lines[0], lines
        assert m.get("old", 0).log_start > 0 and m.get("new", 0).log_start > 0   # type: ignore[union-attr]
    finally:
        m.close()


def test_eviction_stops_as_soon_as_the_dir_leaves_full(tmp_path: Path) -> None:
    io = FaultyFileIO(FaultPlan(usage=FsUsage(100 * MIB, 50 * MIB)))
    m = StorageManager(tmp_path, 5001, io=io, reserve_bytes=R, cleaning_interval_seconds=3600,
                       evict_when_full=True, start=False)
    try:
        now = time.time()
        _fill(m, "old", 3, now - 1000)
        _fill(m, "new", 3, now - 500)
        io.plan.usage = FsUsage(100 * MIB, R // 2)
        m.guard.refresh()
        assert m.guard.state is DirState.FULL
        old = m.get("old", 0)
        assert old is not None
        first_base = old.log_start
        unlink = io.unlink

        def unlink_then_room(path: str) -> None:           # the first eviction frees enough
            unlink(path)
            io.plan.usage = FsUsage(100 * MIB, 10 * R)

        io.unlink = unlink_then_room                         # type: ignore[method-assign]
        m.cleaner.run_once()
        assert m.guard.state is DirState.OK
        assert m.cleaner.evicted_segments == 1 and old.log_start > first_base   # the oldest of all
        assert m.get("new", 0).log_start == 0                                  # type: ignore[union-attr]
    finally:
        m.close()
