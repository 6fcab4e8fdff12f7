"""asyncio server loop for Fluvio-framed protocols (SC public/private, SPU public/private).

Each connection is independent: its frames are read with a size limit checked before allocating and a
deadline for completing a frame once its size arrived (a half-sent frame or a slowloris peer is
disconnected); its requests are handled in order (a producer's batches are appended in the order sent),
except that a handler may start a long-lived stream task (Watch, StreamFetch) that keeps sending
responses with the request's correlation id. Malformed input closes that connection only; every other
connection keeps being served. Log lines about bad peers are rate-limited per kind of problem.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import os
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from fluvial import defaults as d
from fluvial.errors import FluvialError, ProtocolError
from fluvial.observability.ratelimit import RateLimitedLog
from fluvial.protocol.codec import Reader
from fluvial.protocol.frame import RequestHeader, decode_request, encode_response, frame_size

logger = logging.getLogger(__name__)
_bad_peer_log = RateLimitedLog(logger)


class Connection:
    """One accepted connection: serialized frame writes, stream tasks, per-connection state."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, name: str) -> None:
        self.reader = reader
        self.writer = writer
        self.name = name
        self.peer = writer.get_extra_info("peername")
        self._write_lock = asyncio.Lock()
        self._tasks: set[asyncio.Task[None]] = set()
        self.state: dict[str, object] = {}        # handlers keep per-connection data here (stream ids…)
        self.closed = asyncio.Event()
        # drain() then waits for an empty buffer, so os.sendfile never overtakes buffered bytes.
        writer.transport.set_write_buffer_limits(high=0)

    async def send(self, correlation_id: int, body: bytes) -> None:
        """Send one whole response frame."""
        async with self._write_lock:
            self.writer.write(encode_response(correlation_id, body))
            await self.writer.drain()

    async def send_with_file(self, correlation_id: int, head: bytes, fd: int, offset: int, count: int) -> None:
        """Send a response whose tail is `count` bytes of a file, zero-copy where the socket takes them.

        `head` is the body up to the file bytes; the frame size covers both."""
        async with self._write_lock:
            self.writer.write(_frame_head(4 + len(head) + count, correlation_id, head))
            await self.writer.drain()        # limits are (0, 0): returns once the buffer is empty
            if count:
                await _send_file_bytes(self.writer, fd, offset, count)

    def spawn(self, coro: Awaitable[None]) -> asyncio.Task[None]:
        """Run a stream task for this connection; a peer that went away just ends it."""

        async def guarded() -> None:
            try:
                await coro
            except (ConnectionError, OSError) as e:
                logger.debug("stream_ended service=%s peer=%s error=%s", self.name, self.peer, e)
            except FluvialError as e:
                _bad_peer_log.warning(f"{self.name}:stream", "stream_failed service=%s peer=%s error=%s",
                                      self.name, self.peer, e)

        def done(task: asyncio.Task[None]) -> None:
            self._tasks.discard(task)
            if task.cancelled() and inspect.iscoroutine(coro):
                coro.close()         # cancelled before it started: its body (and its finally) never ran

        task = asyncio.ensure_future(guarded())
        self._tasks.add(task)
        task.add_done_callback(done)
        return task

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        self.writer.close()
        with contextlib.suppress(Exception):
            await self.writer.wait_closed()
        self.closed.set()


def _frame_head(size: int, correlation_id: int, head: bytes) -> bytes:
    return size.to_bytes(4, "big", signed=True) + correlation_id.to_bytes(4, "big", signed=True) + head


async def _send_file_bytes(writer: asyncio.StreamWriter, fd: int, offset: int, count: int) -> None:
    """`os.sendfile` straight to the socket while it accepts bytes (uvloop's `loop.sendfile` is not
    implemented, and a transport's fd cannot be watched separately); whatever the socket buffer cannot
    take at once goes through the transport as a copy, with its own flow control."""
    sock = writer.get_extra_info("socket")
    raw = sock.fileno() if sock is not None else -1
    while count > 0 and raw >= 0:
        try:
            sent = os.sendfile(raw, fd, offset, count)
        except (BlockingIOError, InterruptedError):
            break
        if sent == 0:
            break
        offset += sent
        count -= sent
    if count > 0:
        writer.write(os.pread(fd, count, offset))
        await writer.drain()


Handler = Callable[[Connection, RequestHeader, Reader], Awaitable[None]]


@dataclass
class Service:
    """A protocol served on one port: api key → handler."""

    name: str
    handlers: dict[int, Handler]
    on_connect: Callable[[Connection], Awaitable[None]] | None = None
    on_disconnect: Callable[[Connection], Awaitable[None]] | None = None
    max_frame_bytes: int = d.FRAME_MAX_BYTES
    frame_timeout_seconds: float = d.FRAME_READ_TIMEOUT_SECONDS
    connections: set[Connection] = field(default_factory=set)


async def read_frame(reader: asyncio.StreamReader, max_bytes: int, timeout: float) -> bytes | None:
    """The next frame's payload; None at a clean end of stream between frames."""
    try:
        prefix = await reader.readexactly(4)
    except asyncio.IncompleteReadError as e:
        if e.partial:
            raise ProtocolError("connection closed inside a frame size") from e
        return None
    size = frame_size(prefix, max_bytes)
    try:
        return await asyncio.wait_for(reader.readexactly(size), timeout)
    except asyncio.IncompleteReadError as e:
        raise ProtocolError(f"connection closed after {len(e.partial)} of {size} frame bytes") from e
    except TimeoutError as e:
        raise ProtocolError(f"frame of {size} bytes not completed within {timeout} s") from e


async def serve_connection(service: Service, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    conn = Connection(reader, writer, service.name)
    service.connections.add(conn)
    try:
        if service.on_connect is not None:
            await service.on_connect(conn)
        while True:
            payload = await read_frame(reader, service.max_frame_bytes, service.frame_timeout_seconds)
            if payload is None:
                break
            header, body = decode_request(payload)
            handler = service.handlers.get(header.api_key)
            if handler is None:
                raise ProtocolError(f"unknown api key {header.api_key}")
            await handler(conn, header, body)
    except ProtocolError as e:
        _bad_peer_log.warning(f"{service.name}:protocol", "bad_peer service=%s peer=%s error=%s: closing",
                              service.name, conn.peer, e)
    except FluvialError as e:
        _bad_peer_log.warning(f"{service.name}:request", "request_failed service=%s peer=%s error=%s: closing",
                              service.name, conn.peer, e)
    except (ConnectionError, asyncio.IncompleteReadError):
        pass
    finally:
        service.connections.discard(conn)
        if service.on_disconnect is not None:
            with contextlib.suppress(Exception):
                await service.on_disconnect(conn)
        await conn.close()


async def start(service: Service, host: str, port: int) -> asyncio.base_events.Server:
    return await asyncio.start_server(lambda r, w: serve_connection(service, r, w), host, port,
                                      reuse_address=True, limit=2 ** 16)


class TwoPortServer:
    """Plumbing shared by the SC and the SPU: a public and a private service, background tasks."""

    public: Service
    private: Service

    def __init__(self) -> None:
        self._servers: list[asyncio.base_events.Server] = []
        self._tasks: list[asyncio.Task[None]] = []

    async def _listen(self, public: tuple[str, int], private: tuple[str, int]) -> None:
        self._servers.append(await start(self.public, *public))
        self._servers.append(await start(self.private, *private))

    def _bound_port(self, index: int, configured: int) -> int:
        return self._servers[index].sockets[0].getsockname()[1] if len(self._servers) > index else configured

    @property
    def public_port(self) -> int:
        """The port actually bound (the configured one until started; port 0 picks a free one)."""
        return self._bound_port(0, self.config.public_port)  # type: ignore[attr-defined]

    @property
    def private_port(self) -> int:
        return self._bound_port(1, self.config.private_port)  # type: ignore[attr-defined]

    async def _close_services(self) -> None:
        for t in self._tasks:
            t.cancel()
        for s in self._servers:
            s.close()
        for service in (self.public, self.private):
            for conn in list(service.connections):
                await conn.close()
