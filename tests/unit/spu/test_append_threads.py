"""The SPU's append threads: results and exceptions come back to the awaiting task, calls run off the
event loop (a blocked call does not stop it), a cancelled caller does not break the thread, close joins."""

from __future__ import annotations

import asyncio
import threading

import pytest

from fluvial.spu.server import AppendThreads


@pytest.mark.asyncio
async def test_results_exceptions_and_a_blocked_call_off_the_loop() -> None:
    threads = AppendThreads(2, "test-append")
    try:
        assert await threads.run(lambda x: x * 2, 21) == 42
        assert await threads.run(lambda _: threading.current_thread().name, None) != threading.current_thread().name

        def boom(_: object) -> None:
            raise OSError(5, "EIO")

        with pytest.raises(OSError, match="EIO"):
            await threads.run(boom, None)
        gate = threading.Event()
        blocked = asyncio.ensure_future(threads.run(lambda _: gate.wait(5), None))
        ticks = 0
        for _ in range(5):                       # the loop keeps running while a call blocks its thread
            await asyncio.sleep(0.01)
            ticks += 1
        assert ticks == 5 and not blocked.done()
        assert await threads.run(lambda x: x + 1, 1) == 2      # the other thread still serves
        blocked.cancel()                                       # its caller gives up: nothing breaks
        gate.set()
        await asyncio.sleep(0.05)
        assert await asyncio.gather(*(threads.run(lambda x: x, k) for k in range(50))) == list(range(50))
    finally:
        threads.close()
