"""asyncio server loop for Fluvio-framed protocols (SC public/private, SPU public/private).

Each connection is independent: its frames are read with a size limit checked before allocating and a
deadline for completing a frame once its size arrived (a half-sent frame or a slowloris peer is
disconnected); its requests are handled in order (a producer's batches are appended in the order sent),
except that a handler may start a long-lived stream task (Watch, StreamFetch) that keeps sending
responses with the request's correlation id. Malformed input closes that connection only; every other
connection keeps being served. Log lines about bad peers are rate-limited per kind of problem.

Bounded per connection (`ConnectionLimits`): a process accepts at most `max_connections` (all its ports
together; more are refused at once and counted); a connection with no request in flight and no open
stream is closed after `idle_timeout_seconds`; writes go out one frame at a time, the next only once the
socket took the previous one, and file bytes in chunks of `CONNECTION_SEND_CHUNK_BYTES` (never a whole
segment in memory); a peer that takes no bytes for `write_timeout_seconds` is disconnected with one log
line.
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
from fluvial.observability import metrics
from fluvial.observability.ratelimit import RateLimitedLog
from fluvial.protocol.codec import Reader
from fluvial.protocol.frame import RequestHeader, decode_request, encode_response, frame_size

logger = logging.getLogger(__name__)
_bad_peer_log = RateLimitedLog(logger)


@dataclass(frozen=True)
class ConnectionLimits:
    """What one server process allows its connections (every port alike)."""

    max_connections: int = d.CONNECTIONS_MAX
    idle_timeout_seconds: float = d.CONNECTION_IDLE_TIMEOUT_SECONDS
    write_timeout_seconds: float = d.CONNECTION_WRITE_TIMEOUT_SECONDS


class ConnectionGate:
    """The per-process connection count, shared by the services of one process."""

    def __init__(self, limits: ConnectionLimits | None = None) -> None:
        self.limits = limits or ConnectionLimits()
        self.open = 0

    def admit(self) -> bool:
        if self.open >= self.limits.max_connections:
            return False
        self.open += 1
        return True

    def release(self) -> None:
        self.open -= 1


class Connection:
    """One accepted connection: serialized frame writes, stream tasks, per-connection state."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, name: str,
                 limits: ConnectionLimits | None = None) -> None:
        self.reader = reader
        self.writer = writer
        self.name = name
        self.limits = limits or ConnectionLimits()
        self.peer = writer.get_extra_info("peername")
        self._write_lock = asyncio.Lock()
        self._tasks: set[asyncio.Task[None]] = set()
        self.state: dict[str, object] = {}        # handlers keep per-connection data here (stream ids…)
        self.closed = asyncio.Event()
        self.last_active = asyncio.get_running_loop().time()    # last request done or stream ended
        # drain() then waits for an empty buffer, so os.sendfile never overtakes buffered bytes and the
        # write backlog of a connection is at most one frame head or one chunk.
        writer.transport.set_write_buffer_limits(high=0)

    @property
    def streaming(self) -> bool:
        return bool(self._tasks)

    def _check_open(self) -> None:
        """A peer that went away: a ConnectionError like any other (uvloop's write on a closed transport
        raises RuntimeError, which would escape the connection's handler)."""
        if self.writer.transport.is_closing():
            raise ConnectionResetError(f"{self.name}: connection to {self.peer} is closed")

    async def send(self, correlation_id: int, body: bytes) -> None:
        """Send one whole response frame."""
        async with self._write_lock:
            self._check_open()
            self.writer.write(encode_response(correlation_id, body))
            if self.writer.transport.get_write_buffer_size():   # else the socket took it all: no drain
                await self._drain()                             # (and no timer) needed

    async def send_with_file(self, correlation_id: int, head: bytes, fd: int, offset: int, count: int) -> None:
        """Send a response whose tail is `count` bytes of a file, zero-copy where the socket takes them.

        `head` is the body up to the file bytes; the frame size covers both. The file bytes go in chunks
        as the socket drains: `os.sendfile` while the socket takes them, else one chunk copied through
        the transport — never more than a chunk in memory, never more than a chunk of file I/O at once."""
        async with self._write_lock:
            self._check_open()
            self.writer.write(_frame_head(4 + len(head) + count, correlation_id, head))
            if self.writer.transport.get_write_buffer_size():
                await self._drain()          # limits are (0, 0): returns once the buffer is empty
            sock = self.writer.get_extra_info("socket")
            raw = sock.fileno() if sock is not None else -1
            while count > 0:
                step = min(count, d.CONNECTION_SEND_CHUNK_BYTES)
                sent = _sendfile_now(raw, fd, offset, step)
                if sent:
                    await asyncio.sleep(0)   # one chunk at a time: other connections and heartbeats go between
                elif raw >= 0:               # the socket is full: wait until it takes bytes again
                    await self._writable(raw)
                    continue
                else:                        # no socket to sendfile to: one chunk through the transport
                    data = os.pread(fd, step, offset)
                    if not data:
                        raise ConnectionAbortedError(f"file ended {count} bytes before the frame's end")
                    self.writer.write(data)
                    sent = len(data)
                    await self._drain()
                offset += sent
                count -= sent

    async def _writable(self, raw: int) -> None:
        """Wait until the socket can take bytes, within the write timeout. The transport owns `raw`, so
        the wait watches a duplicate of it (the loop refuses to watch a transport's own fd): no file
        bytes copied through Python while the peer reads slower than the file goes out."""
        watch = os.dup(raw)
        loop = asyncio.get_running_loop()
        ready: asyncio.Future[None] = loop.create_future()
        try:
            loop.add_writer(watch, lambda: ready.done() or ready.set_result(None))
            try:
                async with asyncio.timeout(self.limits.write_timeout_seconds):
                    await ready
            except TimeoutError:
                self._write_timed_out()
            finally:
                loop.remove_writer(watch)
        finally:
            os.close(watch)

    def _write_timed_out(self) -> None:
        metrics.CONNECTIONS_CLOSED.labels(self.name, "write_timeout").inc()
        _bad_peer_log.warning(f"{self.name}:write_timeout",
                              "write_timeout service=%s peer=%s seconds=%.1f: closing", self.name, self.peer,
                              self.limits.write_timeout_seconds)
        self.writer.transport.abort()
        raise ConnectionAbortedError("peer took no bytes within the write timeout") from None

    async def _drain(self) -> None:
        """Wait until the socket took what was written; a peer that reads nothing for the write timeout
        is disconnected (one log line)."""
        try:
            async with asyncio.timeout(self.limits.write_timeout_seconds):
                await self.writer.drain()
        except TimeoutError:
            self._write_timed_out()

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
            self.last_active = asyncio.get_running_loop().time()
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


def _sendfile_now(sock_fd: int, fd: int, offset: int, count: int) -> int:
    """`os.sendfile` straight to the socket (uvloop's `loop.sendfile` is not implemented, and a
    transport's fd cannot be watched separately); 0 when the socket takes nothing now."""
    if sock_fd < 0:
        return 0
    try:
        return os.sendfile(sock_fd, fd, offset, count)
    except (BlockingIOError, InterruptedError):
        return 0


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
    gate: ConnectionGate = field(default_factory=ConnectionGate)     # shared by the services of a process


class IdleTimeout(Exception):
    """No request in flight and no open stream for the idle timeout."""


async def read_frame(reader: asyncio.StreamReader, max_bytes: int, timeout: float,
                     conn: Connection | None = None) -> bytes | None:
    """The next frame's payload; None at a clean end of stream between frames. With `conn`, waiting for
    a frame to begin ends with `IdleTimeout` once the connection was idle (no stream) for its limit."""
    try:
        prefix = await (reader.readexactly(4) if conn is None else _await_request(reader, conn))
    except asyncio.IncompleteReadError as e:
        if e.partial:
            raise ProtocolError("connection closed inside a frame size") from e
        return None
    size = frame_size(prefix, max_bytes)
    try:
        async with asyncio.timeout(timeout):
            return await reader.readexactly(size)
    except asyncio.IncompleteReadError as e:
        raise ProtocolError(f"connection closed after {len(e.partial)} of {size} frame bytes") from e
    except TimeoutError as e:
        raise ProtocolError(f"frame of {size} bytes not completed within {timeout} s") from e


async def _await_request(reader: asyncio.StreamReader, conn: Connection) -> bytes:
    """The next frame's size prefix. One timer per idle period: on expiry, a connection that has an open
    stream or was active since waits another period (readexactly keeps partial bytes when cancelled)."""
    idle = conn.limits.idle_timeout_seconds
    loop = asyncio.get_running_loop()
    while True:
        deadline = (loop.time() if conn.streaming else conn.last_active) + idle
        if deadline <= loop.time():
            raise IdleTimeout()
        try:
            async with asyncio.timeout_at(deadline):
                return await reader.readexactly(4)
        except TimeoutError:
            continue


async def serve_connection(service: Service, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    gate = service.gate
    if not gate.admit():
        metrics.CONNECTIONS_REFUSED.labels(service.name).inc()
        _bad_peer_log.warning(f"{service.name}:refused", "connection_refused service=%s peer=%s limit=%d",
                              service.name, writer.get_extra_info("peername"), gate.limits.max_connections)
        writer.transport.abort()
        return
    metrics.CONNECTIONS_OPEN.labels(service.name).inc()
    try:
        await _serve_admitted(service, reader, writer, gate.limits)
    finally:
        gate.release()
        metrics.CONNECTIONS_OPEN.labels(service.name).dec()


async def _serve_admitted(service: Service, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                          limits: ConnectionLimits) -> None:
    conn = Connection(reader, writer, service.name, limits)
    service.connections.add(conn)
    loop = asyncio.get_running_loop()
    try:
        if service.on_connect is not None:
            await service.on_connect(conn)
        while True:
            payload = await read_frame(reader, service.max_frame_bytes, service.frame_timeout_seconds, conn)
            if payload is None:
                break
            header, body = decode_request(payload)
            handler = service.handlers.get(header.api_key)
            if handler is None:
                raise ProtocolError(f"unknown api key {header.api_key}")
            await handler(conn, header, body)
            conn.last_active = loop.time()
    except IdleTimeout:
        metrics.CONNECTIONS_CLOSED.labels(service.name, "idle").inc()
        logger.debug("connection_idle service=%s peer=%s seconds=%.1f: closing", service.name, conn.peer,
                     limits.idle_timeout_seconds)
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
        gate = ConnectionGate(self.config.limits)   # type: ignore[attr-defined]
        self.public.gate = self.private.gate = gate                   # one count for the whole process
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
