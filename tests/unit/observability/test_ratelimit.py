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


def test_burst_then_summary_then_backoff(caplog: pytest.LogCaptureFixture) -> None:
    clock = Clock()
    log = RateLimitedLog(logging.getLogger("rl-test"), burst=3, interval_seconds=10, max_interval_seconds=40,
                         clock=clock)
    caplog.set_level(logging.INFO, logger="rl-test")
    written = [log.warning("disk-full:/data", "full %d", i) for i in range(1000)]
    assert written[:3] == [True] * 3 and not any(written[3:])
    clock.now = 10
    assert log.warning("disk-full:/data", "full again")
    assert "log_suppressed key=disk-full:/data count=997" in caplog.text
    for _ in range(100):
        log.warning("disk-full:/data", "x")
    clock.now = 19        # the interval doubled to 20 s: still inside it
    assert not log.warning("disk-full:/data", "x")
    clock.now = 30
    assert log.warning("disk-full:/data", "x")
    lines = [r for r in caplog.records if r.name == "rl-test"]
    assert len(lines) == 3 + 1 + 1 + 3 + 1       # burst, summary, line, burst, summary+line (bounded)


def test_keys_are_independent_and_quiet_keys_reset() -> None:
    clock = Clock()
    log = RateLimitedLog(logging.getLogger("rl-test2"), burst=1, interval_seconds=10, clock=clock)
    assert log.info("a", "x") and log.info("b", "x")
    assert not log.info("a", "x")
    clock.now = 100
    assert log.info("a", "x")
