"""Periodic tasks that cannot write log once per state, not at every pass (issue #9 item 2): the HW
checkpoint on a full disk (the flusher runs every second per replica), and a background task whose
work keeps failing (here the scrub on a disk whose reads fail). Faults through the file layer."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from fluvial.protocol.records import build_batch
from fluvial.storage import FaultPlan, FaultyFileIO, Replica, ReplicaConfig
from fluvial.storage.background import Scrub


def _lines(caplog: pytest.LogCaptureFixture, word: str) -> int:
    return sum(r.getMessage().startswith(word + " ") for r in caplog.get_records("call"))


def test_checkpoint_deferred_is_logged_once_per_state(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    io = FaultyFileIO()
    with Replica.open(tmp_path / "t-0", io=io) as r:
        r.append(build_batch([(None, b"x" * 100)]))
        io.plan.enospc_after_bytes = io.bytes_written            # the checkpoint write gets ENOSPC
        for _ in range(50):                                      # 50 flusher passes while full
            r.sync()
        assert _lines(caplog, "checkpoint_deferred") == 1
        io.plan = FaultPlan()
        r.sync()
        r.sync()
        assert _lines(caplog, "checkpoint_resumed") == 1
        io.plan.enospc_after_bytes = io.bytes_written
        r.set_hw(r.hw)                                           # nothing new: no checkpoint to write
        r.sync()
        assert _lines(caplog, "checkpoint_deferred") == 1


def test_a_failing_background_task_logs_once_until_it_works(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    io = FaultyFileIO()
    r = Replica.open(tmp_path / "t-0", ReplicaConfig(segment_max_bytes=4096), io=io)
    try:
        while r.segment_count() < 3:
            r.append(build_batch([(None, b"z" * 900)]))
        scrub = Scrub(interval_seconds=3600, rate_bytes_per_second=1 << 40)
        scrub.add(r)
        io.plan.eio_on_read = True
        for _ in range(30):
            scrub.run_once()
        assert _lines(caplog, "storage-scrub_failing") == 1
        io.plan = FaultPlan()
        scrub.run_once()
        scrub.run_once()
        assert _lines(caplog, "storage-scrub_resumed") == 1
        assert not r.unverified_sealed()
    finally:
        r.close()
