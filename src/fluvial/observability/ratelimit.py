"""Rate-limited logging (DESIGN.md §5).

* `RateLimitedLog`: a repeated event logs its first occurrence, then one summary line per interval
  with the number of occurrences since the last line — never another burst while the events keep
  coming — the interval doubling up to 60 s. The key is chosen by the caller (event kind + data dir, not
  per partition), so the log volume is bounded however many requests arrive. A key quiet for a whole
  interval starts over (its next occurrence is logged again). Every suppressed occurrence is counted in
  `fluvial_log_suppressed_total{event}`.
* `StateLog`: what a periodic task cannot do (checkpoint, producer snapshot, scrub, retention on a full
  disk) is logged once when it starts failing and once when it works again — not at every pass.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from prometheus_client import Counter

from fluvial import defaults as d

LOG_SUPPRESSED = Counter("fluvial_log_suppressed_total", "Log lines not written by the rate limiter (counted instead)",
                         ["event"])


def event_of(key: str) -> str:
    """Pure: the event kind of a key `kind[:detail...]:/data/dir` (the metric label: no paths)."""
    return key.split(":/", 1)[0]


@dataclass
class _KeyState:
    started: float              # when the current episode began (its first occurrence)
    last_event: float
    summary_due: float
    interval: float
    logged: int = 1             # lines written in this episode's opening burst
    suppressed: int = 0         # occurrences since the last line


class RateLimitedLog:
    def __init__(
        self,
        logger: logging.Logger,
        *,
        burst: int = d.LOG_BURST_LINES,
        interval_seconds: float = d.LOG_SUMMARY_INTERVAL_SECONDS,
        max_interval_seconds: float = d.LOG_SUMMARY_INTERVAL_MAX_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.logger = logger
        self.burst = burst
        self.interval = interval_seconds
        self.max_interval = max_interval_seconds
        self.clock = clock
        self._keys: dict[str, _KeyState] = {}
        self._lock = threading.Lock()

    def log(self, level: int, key: str, msg: str, *args: object) -> bool:
        """Log `msg` unless `key` is over its budget; returns whether the line itself was written."""
        now = self.clock()
        summary: tuple[int, float] | None = None
        with self._lock:
            st = self._keys.get(key)
            if st is not None and now - st.last_event >= st.interval:   # quiet for a whole interval: over
                if st.suppressed:
                    summary = (st.suppressed, now - st.started)
                st = None
            if st is None:
                self._keys[key] = _KeyState(now, now, now + self.interval, self.interval)
                write = True
            else:
                st.last_event = now
                if st.logged < self.burst and st.summary_due - st.interval == st.started:   # opening burst only
                    st.logged += 1
                    write = True
                else:
                    st.suppressed += 1
                    write = False
                    if now >= st.summary_due:
                        summary = (st.suppressed, now - (st.summary_due - st.interval))
                        st.suppressed = 0
                        st.interval = min(st.interval * 2, self.max_interval)
                        st.summary_due = now + st.interval
        if summary is not None:
            self.logger.log(level, "log_summary key=%s count=%d seconds=%.0f", key, summary[0], summary[1])
        if write:
            self.logger.log(level, msg, *args)
        else:
            LOG_SUPPRESSED.labels(event_of(key)).inc()
        return write

    def flush(self) -> None:
        """Write the pending summary of every key (at shutdown)."""
        with self._lock:
            pending = [(k, st.suppressed) for k, st in self._keys.items() if st.suppressed]
            self._keys.clear()
        for key, count in pending:
            self.logger.info("log_summary key=%s count=%d", key, count)

    def warning(self, key: str, msg: str, *args: object) -> bool:
        return self.log(logging.WARNING, key, msg, *args)

    def error(self, key: str, msg: str, *args: object) -> bool:
        return self.log(logging.ERROR, key, msg, *args)

    def info(self, key: str, msg: str, *args: object) -> bool:
        return self.log(logging.INFO, key, msg, *args)


class StateLog:
    """One line when a condition starts (or changes), one when it ends; nothing at the passes between."""

    def __init__(self, logger: logging.Logger) -> None:
        self.logger = logger
        self._states: dict[str, str] = {}
        self._lock = threading.Lock()

    def enter(self, key: str, state: str, level: int, msg: str, *args: object) -> bool:
        with self._lock:
            if self._states.get(key) == state:
                LOG_SUPPRESSED.labels(event_of(key)).inc()
                return False
            self._states[key] = state
        self.logger.log(level, msg, *args)
        return True

    def leave(self, key: str, msg: str, *args: object) -> bool:
        with self._lock:
            if self._states.pop(key, None) is None:
                return False
        self.logger.info(msg, *args)
        return True
