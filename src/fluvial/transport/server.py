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
import collections
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

    def __init__(self, receiver: FrameReceiver, name: str, limits: ConnectionLimits | None = None) -> None:
        self.receiver = receiver
        self.transport: asyncio.Transport = receiver.transport   # type: ignore[assignment]
        self.name = name
        self.limits = limits or ConnectionLimits()
        self.peer = self.transport.get_extra_info("peername")
        self._write_lock = asyncio.Lock()
        self._tasks: set[asyncio.Task[None]] = set()
        self.state: dict[str, object] = {}        # handlers keep per-connection data here (stream ids…)
        self.closed = asyncio.Event()
        self.last_active = asyncio.get_running_loop().time()    # last request done or stream ended
        # drain() then waits for an empty buffer, so os.sendfile never overtakes buffered bytes and the
        # write backlog of a connection is at most one frame head or one chunk.
        self.transport.set_write_buffer_limits(high=0)

    @property
    def streaming(self) -> bool:
        return bool(self._tasks)

    def _check_open(self) -> None:
        """A peer that went away: a ConnectionError like any other (uvloop's write on a closed transport
        raises RuntimeError, which would escape the connection's handler)."""
        if self.transport.is_closing():
            raise ConnectionResetError(f"{self.name}: connection to {self.peer} is closed")

    async def send(self, correlation_id: int, body: bytes) -> None:
        """Send one whole response frame."""
        async with self._write_lock:
            self._check_open()
            self.transport.write(encode_response(correlation_id, body))
            if self.transport.get_write_buffer_size():   # else the socket took it all: no drain
                await self._drain()                             # (and no timer) needed

    async def send_with_file(self, correlation_id: int, head: bytes, fd: int, offset: int, count: int) -> None:
        """Send a response whose tail is `count` bytes of a file, zero-copy where the socket takes them.

        `head` is the body up to the file bytes; the frame size covers both. The file bytes go in chunks
        as the socket drains: `os.sendfile` while the socket takes them, else one chunk copied through
        the transport — never more than a chunk in memory, never more than a chunk of file I/O at once."""
        async with self._write_lock:
            self._check_open()
            self.transport.write(_frame_head(4 + len(head) + count, correlation_id, head))
            if self.transport.get_write_buffer_size():
                await self._drain()          # limits are (0, 0): returns once the buffer is empty
            sock = self.transport.get_extra_info("socket")
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
                    self.transport.write(data)
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
        self.transport.abort()
        raise ConnectionAbortedError("peer took no bytes within the write timeout") from None

    async def _drain(self) -> None:
        """Wait until the socket took what was written; a peer that reads nothing for the write timeout
        is disconnected (one log line)."""
        try:
            async with asyncio.timeout(self.limits.write_timeout_seconds):
                await self.receiver.drain()
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
        self.transport.close()
        with contextlib.suppress(Exception):
            await self.receiver.lost
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


class FrameReceiver(asyncio.BufferedProtocol):
    """A connection's bytes, received in place. Small frames are cut out of one receive buffer (as many
    per read as arrived); a frame larger than that buffer is received straight into a buffer of its own
    size (checked against the limit before it is allocated). Whole frames queue for the connection's
    loop (`next_frame`); reading pauses while SERVER_READ_AHEAD_BYTES of them wait. A frame that did not
    arrive whole in one read gets one timer: completed within the service's frame timeout, or the
    connection is closed (time spent paused by the read-ahead does not count)."""

    def __init__(self, service: Service) -> None:
        self.service = service
        self.transport: asyncio.Transport | None = None
        loop = asyncio.get_running_loop()
        self._loop = loop
        self._buf = bytearray(d.SERVER_RECEIVE_BUFFER_BYTES)
        self._start = self._end = 0          # unparsed bytes: _buf[_start:_end]
        self._big: bytearray | None = None   # a frame larger than _buf, being received in place
        self._big_got = 0
        self._frames: collections.deque[bytes | bytearray] = collections.deque()
        self._queued = 0
        self._paused = False
        self._waiter: asyncio.Future[None] | None = None
        self._error: Exception | None = None           # raised by next_frame after the queued frames
        self._eof = False
        self._timer: asyncio.TimerHandle | None = None
        self._completed = 0                            # frames completed: a timer knows its frame by it
        self._can_write = asyncio.Event()
        self._can_write.set()
        self._lost = False
        self.lost: asyncio.Future[None] = loop.create_future()
        self.task: asyncio.Task[None] | None = None

    # ------------------------------------------------------------------------------------ receiving

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.task = asyncio.ensure_future(serve_connection(self.service, self))

    def get_buffer(self, sizehint: int) -> memoryview:
        if self._big is not None:
            return memoryview(self._big)[self._big_got:]
        if self._end == len(self._buf):      # the unparsed tail (less than a buffer) moves to the front
            n = self._end - self._start
            self._buf[:n] = self._buf[self._start:self._end]
            self._start, self._end = 0, n
        return memoryview(self._buf)[self._end:]

    def buffer_updated(self, nbytes: int) -> None:
        if self._error is not None:           # after a protocol error nothing more is read as frames
            self._start = self._end = 0
            self._big = None
            return
        if self._big is None:
            self._end += nbytes
            self._parse()
            return
        self._big_got += nbytes
        if self._big_got == len(self._big):
            frame, self._big = self._big, None
            self._frame_done(frame)

    def _parse(self) -> None:
        buf = self._buf
        while self._end - self._start >= 4:
            at = self._start
            try:
                size = frame_size(bytes(buf[at:at + 4]), self.service.max_frame_bytes)
            except ProtocolError as e:
                self._fail(e)
                return
            have = self._end - at - 4
            if have >= size:
                self._start = at + 4 + size
                self._frame_done(bytes(memoryview(buf)[at + 4:at + 4 + size]))
                continue
            if 4 + size > len(buf):          # its own buffer, received in place from here on
                big = bytearray(size)
                big[:have] = memoryview(buf)[at + 4:self._end]
                self._big, self._big_got = big, have
                self._start = self._end = 0
            if self._timer is None:
                self._timer = self._loop.call_later(self.service.frame_timeout_seconds, self._stalled,
                                                    self._completed, size)
            return
        if self._start == self._end:
            self._start = self._end = 0

    def _frame_done(self, frame: bytes | bytearray) -> None:
        self._completed += 1
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._frames.append(frame)
        self._queued += len(frame)
        if self._queued >= d.SERVER_READ_AHEAD_BYTES and not self._paused and self.transport is not None:
            self._paused = True
            self.transport.pause_reading()
        self._wake()

    def _stalled(self, completed: int, size: int) -> None:
        self._timer = None
        if self._completed != completed or self._error is not None:
            return
        if self._paused:                     # we stopped reading, not the peer: wait again
            self._timer = self._loop.call_later(self.service.frame_timeout_seconds, self._stalled, completed, size)
            return
        self._fail(ProtocolError(f"frame of {size} bytes not completed within {self.service.frame_timeout_seconds} s"))

    def _in_frame(self) -> bool:
        return self._big is not None or self._end > self._start

    def _fail(self, e: Exception) -> None:
        """A protocol error: read nothing more; the loop reports it after the frames before it."""
        if self._error is None:
            self._error = e
        self._big = None
        self._start = self._end = 0
        if self.transport is not None and not self._lost:
            self.transport.pause_reading()
            self._paused = True
        self._wake()

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    def eof_received(self) -> bool:
        if self._error is None and self._in_frame():
            if self._big is not None:
                self._error = ProtocolError(f"connection closed after {self._big_got} of {len(self._big)} frame bytes")
            elif self._end - self._start < 4:
                self._error = ProtocolError("connection closed inside a frame size")
            else:
                size = int.from_bytes(self._buf[self._start:self._start + 4], "big", signed=True)
                self._error = ProtocolError(f"connection closed after {self._end - self._start - 4} of {size} "
                                            f"frame bytes")
        self._eof = True
        self._wake()
        return True     # half-closed: the frames that arrived before are still answered, then the loop closes

    def connection_lost(self, exc: Exception | None) -> None:
        self._lost = True
        self._eof = True
        if exc is not None and self._error is None:
            self._error = ConnectionResetError(str(exc))
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._can_write.set()
        if not self.lost.done():
            self.lost.set_result(None)
        self._wake()

    async def next_frame(self, conn: Connection) -> bytes | bytearray | None:
        """The next whole frame; None at a clean end of stream between frames. Waiting for a frame to
        begin ends with `IdleTimeout` once the connection was idle (no stream) for its limit."""
        while True:
            if self._frames:
                frame = self._frames.popleft()
                self._queued -= len(frame)
                if self._paused and self._error is None and self._queued < d.SERVER_READ_AHEAD_BYTES \
                        and not self._lost and self.transport is not None:
                    self._paused = False
                    self.transport.resume_reading()
                return frame
            if self._error is not None:
                raise self._error
            if self._eof:
                return None
            waiter = self._waiter = self._loop.create_future()
            if self._timer is not None:       # a frame has begun: its timer watches it
                await waiter
                continue
            idle = conn.limits.idle_timeout_seconds
            deadline = (self._loop.time() if conn.streaming else conn.last_active) + idle
            if deadline <= self._loop.time():
                raise IdleTimeout()
            timer = self._loop.call_at(deadline, self._wake)
            try:
                await waiter
            finally:
                timer.cancel()

    # ------------------------------------------------------------------------------------ writing

    def pause_writing(self) -> None:
        self._can_write.clear()

    def resume_writing(self) -> None:
        self._can_write.set()

    async def drain(self) -> None:
        """Until the socket took what was written (write limits are 0); ConnectionResetError once lost."""
        if self._lost:
            raise ConnectionResetError("connection lost")
        await self._can_write.wait()
        if self._lost:
            raise ConnectionResetError("connection lost")


async def serve_connection(service: Service, receiver: FrameReceiver) -> None:
    gate = service.gate
    transport = receiver.transport
    assert transport is not None
    if not gate.admit():
        metrics.CONNECTIONS_REFUSED.labels(service.name).inc()
        _bad_peer_log.warning(f"{service.name}:refused", "connection_refused service=%s peer=%s limit=%d",
                              service.name, transport.get_extra_info("peername"), gate.limits.max_connections)
        transport.abort()
        return
    metrics.CONNECTIONS_OPEN.labels(service.name).inc()
    try:
        await _serve_admitted(service, receiver, gate.limits)
    finally:
        gate.release()
        metrics.CONNECTIONS_OPEN.labels(service.name).dec()


async def _serve_admitted(service: Service, receiver: FrameReceiver, limits: ConnectionLimits) -> None:
    conn = Connection(receiver, service.name, limits)
    service.connections.add(conn)
    loop = asyncio.get_running_loop()
    try:
        if service.on_connect is not None:
            await service.on_connect(conn)
        while True:
            payload = await receiver.next_frame(conn)
            if payload is None:
                break
            header, body = decode_request(payload)
            handler = service.handlers.get(header.api_key)
            if handler is None:
                raise ProtocolError(f"unknown api key {header.api_key}")
            metrics.count_request(service.name, header.api_key)
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
    return await asyncio.get_running_loop().create_server(lambda: FrameReceiver(service), host, port,
                                                          reuse_address=True)


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
