"""Rate-limited logging (DESIGN.md §5): a repeated event logs a short burst, then one summary line per
interval with the number suppressed, the interval doubling up to a cap. The key is chosen by the caller
(event kind + data dir, not per partition), so the log volume is bounded however many requests arrive.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from fluvial import defaults as d


@dataclass
class _KeyState:
    window_start: float
    interval: float
    logged: int = 0
    suppressed: int = 0


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
        """Log `msg` unless `key` is over its budget; returns whether a line was written."""
        now = self.clock()
        summary = None
        with self._lock:
            st = self._keys.get(key)
            if st is None:
                st = self._keys[key] = _KeyState(now, self.interval)
            if now - st.window_start >= st.interval:
                if st.suppressed:
                    summary = st.suppressed
                    st.interval = min(st.interval * 2, self.max_interval)
                else:
                    st.interval = self.interval
                st.window_start, st.logged, st.suppressed = now, 0, 0
            if st.logged < self.burst:
                st.logged += 1
                write = True
            else:
                st.suppressed += 1
                write = False
        if summary is not None:
            self.logger.log(level, "log_suppressed key=%s count=%d", key, summary)
        if write:
            self.logger.log(level, msg, *args)
        return write

    def warning(self, key: str, msg: str, *args: object) -> bool:
        return self.log(logging.WARNING, key, msg, *args)

    def info(self, key: str, msg: str, *args: object) -> bool:
        return self.log(logging.INFO, key, msg, *args)
