"""Retry policy of fluvial's client: which errors to retry (the one table in `fluvial.errors`) and how
long to wait — capped exponential back-off with jitter inside a delivery timeout. Pure: the clock and
the random source are parameters."""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field

from fluvial import defaults as d
from fluvial.errors import ErrorCode, retry_rule


@dataclass
class Backoff:
    initial: float = d.RETRY_BACKOFF_INITIAL_SECONDS
    maximum: float = d.RETRY_BACKOFF_MAX_SECONDS
    multiplier: float = d.RETRY_BACKOFF_MULTIPLIER
    jitter: float = d.RETRY_JITTER_FRACTION
    rng: Callable[[], float] = field(default=random.random)

    def delay(self, attempt: int) -> float:
        """Wait before retry number `attempt` (1-based)."""
        base = min(self.maximum, self.initial * self.multiplier ** max(0, attempt - 1))
        return max(0.0, base * (1 + self.jitter * (2 * self.rng() - 1)))


@dataclass
class RetryState:
    """One record's (or batch's) retries under a delivery deadline."""

    started: float
    deadline_seconds: float = d.DELIVERY_TIMEOUT_SECONDS
    backoff: Backoff = field(default_factory=Backoff)
    attempts: int = 0

    def next_wait(self, code: ErrorCode, now: float) -> float | None:
        """Seconds to wait before retrying after `code`, or None: give up (fatal code, or the wait would
        pass the delivery deadline)."""
        if not retry_rule(code).retriable:
            return None
        self.attempts += 1
        wait = self.backoff.delay(self.attempts)
        if now + wait > self.started + self.deadline_seconds:
            return None
        return wait


class WarningGate:
    """At most one warning per key (partition) per interval."""

    def __init__(self, interval: float = d.RETRY_WARNING_INTERVAL_SECONDS) -> None:
        self.interval = interval
        self._last: dict[object, float] = {}

    def allow(self, key: object, now: float) -> bool:
        last = self._last.get(key)
        if last is not None and now - last < self.interval:
            return False
        self._last[key] = now
        return True
