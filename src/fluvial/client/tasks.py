"""Stopping the client's background tasks within a bound: cancel, wait at most a timeout, and make sure
every outcome is retrieved (no "exception was never retrieved" at exit), even from a task that is slow to
end — a close never hangs on one."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable

logger = logging.getLogger(__name__)


def _retrieve(task: asyncio.Future[object]) -> None:
    if not task.cancelled():
        task.exception()


async def stop_tasks(tasks: Iterable[asyncio.Future[object]], timeout: float, what: str) -> None:
    """Cancel `tasks` and wait for them at most `timeout` seconds (those still running then end on their
    own; their outcome is retrieved when they do)."""
    tasks = list(tasks)
    pending = [t for t in tasks if not t.done()]
    for t in tasks:
        t.add_done_callback(_retrieve)
    for t in pending:
        t.cancel()
    if not pending:
        return
    _done, late = await asyncio.wait(pending, timeout=timeout)
    if late:
        logger.warning("close_timed_out what=%s tasks=%d timeout=%.1fs", what, len(late), timeout)
