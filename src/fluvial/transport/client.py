"""asyncio client connection: correlation-id multiplexer with request/response calls and streams.

Every call has a timeout (the official client can block forever; this one never does). A response whose
correlation id has no waiter is dropped, as Fluvio does. When the connection ends, every waiter and
stream learns it (`ConnectionLost`).

Frames are received by a buffered protocol straight into a buffer of the frame's announced size (checked
against the limit before anything is allocated): one copy from the kernel, where a stream reader makes
three — it matters for 1 MiB StreamFetch frames.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
from collections.abc import AsyncIterator

from fluvial import defaults as d
from fluvial.errors import ErrorCode, FluvialError, ProtocolError
from fluvial.protocol.codec import Reader
from fluvial.protocol.frame import RequestHeader, decode_response, encode_request, frame_size

logger = logging.getLogger(__name__)

DEFAULT_CALL_TIMEOUT_SECONDS = 30.0
_PREFIX_BYTES = 4


class ConnectionLost(FluvialError):
    """The connection closed (or failed) before the answer arrived. Retried like an offline SPU: refresh
    metadata, then try again (the retry table in `fluvial.errors`)."""

    code = ErrorCode.SPU_OFFLINE


class RequestTimeout(FluvialError):
    """No answer within the call's timeout."""

    code = ErrorCode.REQUEST_TIMED_OUT


_CLOSED = object()


class _FrameProtocol(asyncio.BufferedProtocol):
    """Size prefix, then exactly that many bytes, received in place; each whole frame goes to `deliver`."""

    def __init__(self, conn: ClientConnection, max_frame_bytes: int, frame_timeout: float) -> None:
        self.conn = conn
        self.max_frame = max_frame_bytes
        self.frame_timeout = frame_timeout
        self.transport: asyncio.Transport | None = None
        self._prefix = bytearray(_PREFIX_BYTES)
        self._frame: bytearray | None = None
        self._got = 0
        self._frames = 0                     # frames started: a stalled one is recognized by its number
        self._can_write = asyncio.Event()
        self._can_write.set()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def get_buffer(self, sizehint: int) -> memoryview:
        if self._frame is None:
            return memoryview(self._prefix)[self._got:]
        return memoryview(self._frame)[self._got:]

    def buffer_updated(self, nbytes: int) -> None:
        self._got += nbytes
        if self._frame is None:
            if self._got < _PREFIX_BYTES:
                return
            try:
                size = frame_size(bytes(self._prefix), self.max_frame)
            except ProtocolError as e:
                self._fail(e)
                return
            self._frame, self._got = bytearray(size), 0
            self._frames += 1
            if size:
                asyncio.get_running_loop().call_later(self.frame_timeout, self._check_stalled, self._frames)
                return
        if self._got == len(self._frame):
            payload, self._frame, self._got = self._frame, None, 0
            self.conn._deliver(payload)

    def _check_stalled(self, number: int) -> None:
        if self._frame is not None and self._frames == number:
            self._fail(ProtocolError(f"frame of {len(self._frame)} bytes not completed within {self.frame_timeout} s"))

    def _fail(self, e: Exception) -> None:
        logger.debug("client_connection_lost error=%s", e)
        if self.transport is not None:
            self.transport.abort()

    def eof_received(self) -> bool:
        return False                         # close the transport: connection_lost follows

    def connection_lost(self, exc: Exception | None) -> None:
        self._can_write.set()
        self.conn._lost()

    def pause_writing(self) -> None:
        self._can_write.clear()

    def resume_writing(self) -> None:
        self._can_write.set()

    async def drain(self) -> None:
        await self._can_write.wait()


class ClientConnection:
    def __init__(self, transport: asyncio.Transport, protocol: _FrameProtocol, client_id: str) -> None:
        self._transport = transport
        self._protocol = protocol
        self.client_id = client_id
        self._ids = itertools.count(1)
        self._waiters: dict[int, asyncio.Future[Reader]] = {}
        self._streams: dict[int, asyncio.Queue[object]] = {}
        self._write_lock = asyncio.Lock()
        self.closed = False
        self._lost_reported = False

    @classmethod
    async def connect(cls, host: str, port: int, *, client_id: str = "fluvial",
                      timeout: float = DEFAULT_CALL_TIMEOUT_SECONDS,
                      max_frame_bytes: int = d.FRAME_MAX_BYTES) -> ClientConnection:
        loop = asyncio.get_running_loop()
        holder: list[ClientConnection] = []

        def factory() -> _FrameProtocol:
            protocol = _FrameProtocol(None, max_frame_bytes, d.FRAME_READ_TIMEOUT_SECONDS)  # type: ignore[arg-type]
            holder.append(cls(None, protocol, client_id))  # type: ignore[arg-type]
            protocol.conn = holder[0]
            return protocol

        try:
            async with asyncio.timeout(timeout):        # not wait_for: it can swallow a cancellation (gh-86296)
                transport, _protocol = await loop.create_connection(factory, host, port)
        except (OSError, TimeoutError) as e:
            raise ConnectionLost(f"can't connect to {host}:{port}: {e}") from e
        conn = holder[0]
        conn._transport = transport  # type: ignore[assignment]
        return conn

    def _frame(self, api_key: int, version: int, correlation: int, body: bytes) -> bytes:
        return encode_request(RequestHeader(api_key, version, correlation, self.client_id), body)

    async def _write(self, api_key: int, version: int, correlation: int, body: bytes) -> None:
        data = self._frame(api_key, version, correlation, body)
        async with self._write_lock:
            if self.closed:
                raise ConnectionLost("connection is closed")
            self._transport.write(data)
            await self._protocol.drain()
            if self.closed:
                raise ConnectionLost("connection closed while sending")

    def send_now(self, api_key: int, version: int, body: bytes) -> None:
        """Write a request at once, without waiting for room or for its answer (dropped on arrival): for
        small acknowledgements that must leave before the caller's next step (StreamFetch's UpdateOffsets).
        Frames are written whole, so this never interleaves with a frame written by `request`."""
        if self.closed:
            raise ConnectionLost("connection is closed")
        self._transport.write(self._frame(api_key, version, next(self._ids), body))

    async def request(self, api_key: int, version: int, body: bytes,
                      timeout: float = DEFAULT_CALL_TIMEOUT_SECONDS) -> Reader:
        """Send one request; return a reader over the response body."""
        correlation = next(self._ids)
        fut: asyncio.Future[Reader] = asyncio.get_running_loop().create_future()
        self._waiters[correlation] = fut
        try:
            await self._write(api_key, version, correlation, body)
            async with asyncio.timeout(timeout):
                return await fut
        except TimeoutError as e:
            raise RequestTimeout(f"no answer to api key {api_key} within {timeout} s") from e
        except (ConnectionError, OSError) as e:
            raise ConnectionLost(str(e)) from e
        finally:
            self._waiters.pop(correlation, None)

    async def stream(self, api_key: int, version: int, body: bytes) -> AsyncIterator[Reader]:
        """Send a request whose answers keep coming (Watch, StreamFetch); iterate them."""
        correlation = next(self._ids)
        queue: asyncio.Queue[object] = asyncio.Queue()
        self._streams[correlation] = queue
        try:
            await self._write(api_key, version, correlation, body)
            while True:
                item = await queue.get()
                if item is _CLOSED:
                    raise ConnectionLost("connection closed while streaming")
                assert isinstance(item, Reader)
                yield item
        finally:
            self._streams.pop(correlation, None)

    def _deliver(self, payload: bytearray) -> None:
        try:
            correlation, body = decode_response(payload)
        except ProtocolError as e:
            self._protocol._fail(e)
            return
        fut = self._waiters.pop(correlation, None)
        if fut is not None:
            if not fut.done():
                fut.set_result(body)
            return
        queue = self._streams.get(correlation)
        if queue is not None:
            queue.put_nowait(body)

    def _lost(self) -> None:
        """Every waiter and stream learns that the connection is gone — once (close and the transport's
        connection_lost both get here)."""
        if self._lost_reported:
            return
        self._lost_reported = True
        self.closed = True
        for fut in self._waiters.values():
            if not fut.done():
                fut.set_exception(ConnectionLost("connection closed"))
        self._waiters.clear()
        for queue in self._streams.values():
            queue.put_nowait(_CLOSED)

    async def close(self) -> None:
        if self._transport is not None and not self._transport.is_closing():
            self._transport.close()
        self._lost()
        await asyncio.sleep(0)
        with contextlib.suppress(Exception):
            if self._transport is not None and not self._transport.is_closing():
                self._transport.abort()
