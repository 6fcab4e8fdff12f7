"""The server loop on real sockets: requests in order, streams, zero-copy file tails, bad peers."""

from __future__ import annotations

import asyncio
import os
import socket
import struct
from pathlib import Path

import pytest

from fluvial.protocol.codec import Reader
from fluvial.protocol.frame import RequestHeader, encode_request
from fluvial.transport import server as srv
from fluvial.transport.client import ClientConnection, ConnectionLost

ECHO, STREAM, FILE = 100, 101, 102


async def start_service(tmp_path: Path) -> tuple[srv.Service, asyncio.base_events.Server, int, bytes]:
    blob = os.urandom(3 * 1024 * 1024)
    path = tmp_path / "blob"
    path.write_bytes(blob)
    fd = os.open(path, os.O_RDONLY)

    async def echo(conn: srv.Connection, h: RequestHeader, body: Reader) -> None:
        await conn.send(h.correlation_id, bytes(body.take(body.remaining())))

    async def stream(conn: srv.Connection, h: RequestHeader, body: Reader) -> None:
        count = body.unpack(struct.Struct(">i"))

        async def push() -> None:
            for i in range(count):
                await conn.send(h.correlation_id, struct.pack(">i", i))
        conn.spawn(push())

    async def file_tail(conn: srv.Connection, h: RequestHeader, body: Reader) -> None:
        offset, count = struct.unpack(">ii", bytes(body.take(8)))
        await conn.send_with_file(h.correlation_id, b"HEAD", fd, offset, count)

    service = srv.Service("test", {ECHO: echo, STREAM: stream, FILE: file_tail}, frame_timeout_seconds=0.5)
    server = await srv.start(service, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    return service, server, port, blob


@pytest.mark.asyncio
async def test_requests_streams_and_file_tails(tmp_path: Path) -> None:
    _service, server, port, blob = await start_service(tmp_path)
    try:
        c = await ClientConnection.connect("127.0.0.1", port)
        answers = await asyncio.gather(*(c.request(ECHO, 0, b"x%d" % i, timeout=5) for i in range(50)))
        assert [bytes(a.take(a.remaining())) for a in answers] == [b"x%d" % i for i in range(50)]
        got = []
        async for r in c.stream(STREAM, 0, struct.pack(">i", 5)):
            got.append(r.unpack(struct.Struct(">i")))
            if len(got) == 5:
                break
        assert got == [0, 1, 2, 3, 4]
        for offset, count in [(0, 0), (5, 100), (1000, 2 * 1024 * 1024 + 7)]:
            r = await c.request(FILE, 0, struct.pack(">ii", offset, count), timeout=10)
            assert bytes(r.take(4)) == b"HEAD"
            assert bytes(r.take(r.remaining())) == blob[offset:offset + count]
        await c.close()
    finally:
        server.close()
        await server.wait_closed()


def raw_send(port: int, data: bytes, wait: float = 0.3) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(data)
        s.settimeout(wait)
        try:
            return s.recv(100)
        except TimeoutError:
            return b"<open>"


BAD_INPUTS = [
    ("random bytes", os.urandom(64)),
    ("2 GiB size prefix", struct.pack(">i", 2**31 - 1) + b"\x00" * 16),
    ("negative size", struct.pack(">i", -5)),
    ("unknown api key", struct.pack(">i", 10) + struct.pack(">HhiH", 9999, 0, 1, 0)),
    ("truncated header", struct.pack(">i", 3) + b"\x00\x01\x00"),
]


@pytest.mark.asyncio
@pytest.mark.parametrize(("name", "data"), BAD_INPUTS, ids=[b[0] for b in BAD_INPUTS])
async def test_bad_peer_is_disconnected_and_others_keep_working(tmp_path: Path, name: str, data: bytes) -> None:
    _service, server, port, _ = await start_service(tmp_path)
    try:
        good = await ClientConnection.connect("127.0.0.1", port)
        answer = await asyncio.to_thread(raw_send, port, data, 2.0)
        assert answer == b"", f"{name}: the server should close the connection, got {answer!r}"
        r = await good.request(ECHO, 0, b"still here", timeout=5)
        assert bytes(r.take(r.remaining())) == b"still here"
        await good.close()
    finally:
        server.close()
        await server.wait_closed()


@pytest.mark.asyncio
async def test_half_sent_frame_times_out_and_idle_connections_are_fine(tmp_path: Path) -> None:
    _service, server, port, _ = await start_service(tmp_path)
    idle = []
    try:
        for _ in range(200):
            idle.append(await asyncio.open_connection("127.0.0.1", port))
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(struct.pack(">i", 1000) + b"\x00" * 10)      # promises 1000 bytes, sends 10
        await writer.drain()
        assert await asyncio.wait_for(reader.read(), 5) == b""     # closed after frame_timeout (0.5 s)
        good = await ClientConnection.connect("127.0.0.1", port)
        r = await good.request(ECHO, 0, b"ok", timeout=5)
        assert bytes(r.take(2)) == b"ok"
        await good.close()
        writer.close()
    finally:
        for _r, w in idle:
            w.close()
        server.close()
        await server.wait_closed()


@pytest.mark.asyncio
async def test_waiters_learn_about_a_lost_connection(tmp_path: Path) -> None:
    service, server, port, _ = await start_service(tmp_path)
    c = await ClientConnection.connect("127.0.0.1", port)
    server.close()
    for conn in list(service.connections):
        await conn.close()
    with pytest.raises(ConnectionLost):
        await c.request(ECHO, 0, b"x", timeout=5)
    await c.close()


def _file_request(offset: int, count: int) -> bytes:
    from fluvial.protocol.codec import encode_into

    head = bytearray()
    encode_into(RequestHeader(FILE, 0, 9, "slow"), head, 0)
    body = bytes(head) + struct.pack(">ii", offset, count)
    return struct.pack(">i", len(body)) + body


def _slow_read(port: int, request: bytes, want: int) -> bytes:
    """A reader with a small receive buffer that takes a few KiB at a time, pausing between reads."""
    import time

    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8192)
        s.settimeout(10)
        s.connect(("127.0.0.1", port))
        s.sendall(request)
        got = bytearray()
        while len(got) < want:
            chunk = s.recv(4096)
            if not chunk:
                break
            got += chunk
            if len(got) % (64 * 1024) < 4096:
                time.sleep(0.002)
        return bytes(got)


@pytest.mark.asyncio
async def test_file_tail_to_a_slow_reader_waits_for_the_socket(tmp_path: Path) -> None:
    """A file frame much larger than the socket buffers, read slowly: the server waits until the socket
    takes bytes again (sendfile, nothing copied through Python) and every byte arrives in order; a
    reader that stops reading is disconnected after the write timeout."""
    _service, server, port, blob = await start_service(tmp_path)
    try:
        offset, count = 12_345, 2 * 1024 * 1024
        data = await asyncio.to_thread(_slow_read, port, _file_request(offset, count), 12 + count)
        assert data[:8] == struct.pack(">ii", 4 + 4 + count, 9) and data[8:12] == b"HEAD"
        assert data[12:] == blob[offset:offset + count]
    finally:
        server.close()
        await server.wait_closed()

    big = tmp_path / "sparse"                                  # more than every socket buffer can hold
    with open(big, "wb") as f:
        f.truncate(64 * 1024 * 1024)
    fd = os.open(big, os.O_RDONLY)

    async def whole_file(conn: srv.Connection, h: RequestHeader, body: Reader) -> None:
        await conn.send_with_file(h.correlation_id, b"HEAD", fd, 0, 64 * 1024 * 1024)

    service = srv.Service("stalled", {FILE: whole_file},
                          gate=srv.ConnectionGate(srv.ConnectionLimits(write_timeout_seconds=0.5)))
    server = await srv.start(service, "127.0.0.1", 0)
    try:
        _reader, writer = await asyncio.open_connection("127.0.0.1", server.sockets[0].getsockname()[1])
        writer.write(_file_request(0, 0))                      # then reads nothing
        await asyncio.sleep(0.2)
        assert len(service.connections) == 1                   # being served: the socket is full
        for _ in range(100):
            await asyncio.sleep(0.05)
            if not service.connections:
                break
        assert not service.connections                         # dropped after the write timeout
        writer.close()
    finally:
        os.close(fd)
        server.close()
        await server.wait_closed()


def _request_frame(api_key: int, correlation: int, body: bytes) -> bytes:
    return encode_request(RequestHeader(api_key, 0, correlation, "t"), body)


@pytest.mark.asyncio
@pytest.mark.parametrize("sizes", [[10, 20, 30], [200_000, 5, 3_000_000], [65_530, 65_536, 7]],
                         ids=["small, one read", "big frames in place", "around the receive buffer"])
async def test_pipelined_frames_of_any_size_are_answered_in_order_even_after_a_half_close(
        tmp_path: Path, sizes: list[int]) -> None:
    """Frames sent back to back in one write (small ones cut from the receive buffer, large ones received
    into their own buffers) are answered in order, byte for byte; the peer may shut its sending side right
    after (answers still come, then the server closes)."""
    _service, server, port, _ = await start_service(tmp_path)
    try:
        bodies = [os.urandom(n) for n in sizes]
        data = b"".join(_request_frame(ECHO, k + 1, body) for k, body in enumerate(bodies))

        def exchange() -> bytes:
            with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
                s.sendall(data)
                s.shutdown(socket.SHUT_WR)
                out = bytearray()
                while chunk := s.recv(1 << 20):
                    out += chunk
                return bytes(out)

        got = await asyncio.to_thread(exchange)
        pos = 0
        for k, body in enumerate(bodies):
            size, correlation = struct.unpack_from(">ii", got, pos)
            assert correlation == k + 1 and got[pos + 8:pos + 4 + size] == body
            pos += 4 + size
        assert pos == len(got)
    finally:
        server.close()
        await server.wait_closed()
