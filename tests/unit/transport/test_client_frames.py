"""The client side of framing against a misbehaving server: an absurd size prefix, a frame that stalls
half way, a server that closes — each ends the connection with `ConnectionLost` for every waiter, fast,
instead of allocating or hanging."""

from __future__ import annotations

import asyncio
import struct
import time
from collections.abc import Awaitable, Callable

import pytest

from fluvial import defaults as d
from fluvial.transport.client import ClientConnection, ConnectionLost

Answer = Callable[[asyncio.StreamWriter, int], Awaitable[None]]


async def _with_server(answer: Answer, body: Callable[[ClientConnection], Awaitable[None]]) -> None:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        size = struct.unpack(">i", await reader.readexactly(4))[0]
        request = await reader.readexactly(size)
        correlation = struct.unpack_from(">i", request, 4)[0]
        await answer(writer, correlation)

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    conn = await ClientConnection.connect("127.0.0.1", port, timeout=5)
    try:
        await body(conn)
    finally:
        await conn.close()
        server.close()


async def _expect_lost(conn: ClientConnection) -> None:
    started = time.monotonic()
    with pytest.raises(ConnectionLost):
        await conn.request(18, 0, b"", timeout=20)
    assert time.monotonic() - started < 10
    assert conn.closed


def test_absurd_size_prefix_closes_without_allocating() -> None:
    async def answer(writer: asyncio.StreamWriter, correlation: int) -> None:
        writer.write(struct.pack(">i", 2**31 - 1))            # 2 GiB announced
        await writer.drain()
        await asyncio.sleep(30)

    asyncio.run(_with_server(answer, _expect_lost))


def test_negative_size_prefix_closes() -> None:
    async def answer(writer: asyncio.StreamWriter, correlation: int) -> None:
        writer.write(struct.pack(">i", -5))
        await writer.drain()
        await asyncio.sleep(30)

    asyncio.run(_with_server(answer, _expect_lost))


def test_stalled_frame_is_given_up(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(d, "FRAME_READ_TIMEOUT_SECONDS", 0.3)

    async def answer(writer: asyncio.StreamWriter, correlation: int) -> None:
        writer.write(struct.pack(">ii", 100, correlation) + b"half")     # 8 of 100 bytes, then nothing
        await writer.drain()
        await asyncio.sleep(30)

    asyncio.run(_with_server(answer, _expect_lost))


def test_server_closing_mid_frame_fails_waiters() -> None:
    async def answer(writer: asyncio.StreamWriter, correlation: int) -> None:
        writer.write(struct.pack(">ii", 100, correlation))
        await writer.drain()
        writer.close()

    asyncio.run(_with_server(answer, _expect_lost))


def test_frames_split_across_reads_and_several_in_one_read() -> None:
    async def answer(writer: asyncio.StreamWriter, correlation: int) -> None:
        one = struct.pack(">ii", 4 + 3, correlation) + b"abc"
        other = struct.pack(">ii", 4 + 2, 999) + b"zz"                # no waiter: dropped
        data = other + one
        for i in range(0, len(data), 3):                                 # dribbled in 3-byte pieces
            writer.write(data[i:i + 3])
            await writer.drain()
            await asyncio.sleep(0.001)

    async def body(conn: ClientConnection) -> None:
        r = await conn.request(18, 0, b"", timeout=5)
        assert bytes(r.take(r.remaining())) == b"abc"

    asyncio.run(_with_server(answer, body))
