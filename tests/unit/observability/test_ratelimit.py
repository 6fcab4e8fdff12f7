"""Rate-limited logging: bursts, summaries, backoff, per-key independence (fake clock)."""

from __future__ import annotations

import logging

import pytest

from fluvial.observability.ratelimit import RateLimitedLog


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_first_line_then_one_summary_per_interval_never_a_new_burst(caplog: pytest.LogCaptureFixture) -> None:
    """Old code: after every summary line a new burst of 5 identical lines."""
    clock = Clock()
    log = RateLimitedLog(logging.getLogger("rl-test"), interval_seconds=10, max_interval_seconds=60, clock=clock)
    caplog.set_level(logging.INFO, logger="rl-test")
    written = []
    for i in range(1000):                            # one every 10 ms
        clock.now = i / 100
        written.append(log.warning("produce:StorageFull:/data", "full %d", i))
    assert written[0] and not any(written[1:])
    clock.now = 10
    assert not log.warning("produce:StorageFull:/data", "full again")     # a summary, not a new burst
    assert "log_summary key=produce:StorageFull:/data count=1000 seconds=10" in caplog.text
    for _ in range(100):
        assert not log.warning("produce:StorageFull:/data", "x")
    lines = [r for r in caplog.records if r.name == "rl-test"]
    assert len(lines) == 2


def test_full_disk_at_1000_requests_a_second_stays_within_the_line_budget(caplog: pytest.LogCaptureFixture) -> None:
    """Issue #9: <= 10 lines in the first minute, <= 2 a minute after (here: one key, 10 minutes)."""
    clock = Clock()
    log = RateLimitedLog(logging.getLogger("rl-budget"), clock=clock)
    caplog.set_level(logging.INFO, logger="rl-budget")
    per_minute = [0] * 10
    for ms in range(10 * 60 * 1000):                 # one rejected request per millisecond
        clock.now = ms / 1000
        before = len(caplog.records)
        log.warning("produce:StorageFull:/data", "produce_rejected")
        per_minute[ms // 60_000] += len(caplog.records) - before
    assert per_minute[0] <= 10 and max(per_minute[1:]) <= 2, per_minute
    assert sum(per_minute) <= 3 + 2 * 9


def test_keys_are_independent_and_quiet_keys_reset() -> None:
    clock = Clock()
    log = RateLimitedLog(logging.getLogger("rl-test2"), burst=1, interval_seconds=10, clock=clock)
    assert log.info("a", "x") and log.info("b", "x")
    assert not log.info("a", "x")
    clock.now = 100
    assert log.info("a", "x")
