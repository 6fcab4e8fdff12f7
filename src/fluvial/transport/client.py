"""asyncio client connection: correlation-id multiplexer with request/response calls and streams.

Every call has a timeout (the official client can block forever; this one never does). A response whose
correlation id has no waiter is dropped, as Fluvio does. When the connection ends, every waiter and
stream learns it (`ConnectionLost`).
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
from fluvial.protocol.frame import RequestHeader, decode_response, encode_request
from fluvial.transport.server import read_frame

logger = logging.getLogger(__name__)

DEFAULT_CALL_TIMEOUT_SECONDS = 30.0


class ConnectionLost(FluvialError):
    """The connection closed (or failed) before the answer arrived. Retried like an offline SPU: refresh
    metadata, then try again (the retry table in `fluvial.errors`)."""

    code = ErrorCode.SPU_OFFLINE


class RequestTimeout(FluvialError):
    """No answer within the call's timeout."""

    code = ErrorCode.REQUEST_TIMED_OUT


_CLOSED = object()


class ClientConnection:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, client_id: str,
                 max_frame_bytes: int) -> None:
        self._reader = reader
        self._writer = writer
        self.client_id = client_id
        self._max_frame = max_frame_bytes
        self._ids = itertools.count(1)
        self._waiters: dict[int, asyncio.Future[Reader]] = {}
        self._streams: dict[int, asyncio.Queue[object]] = {}
        self._write_lock = asyncio.Lock()
        self._reader_task = asyncio.ensure_future(self._read_loop())
        self.closed = False

    @classmethod
    async def connect(cls, host: str, port: int, *, client_id: str = "fluvial",
                      timeout: float = DEFAULT_CALL_TIMEOUT_SECONDS,
                      max_frame_bytes: int = d.FRAME_MAX_BYTES) -> ClientConnection:
        try:
            reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), timeout)
        except (OSError, TimeoutError) as e:
            raise ConnectionLost(f"can't connect to {host}:{port}: {e}") from e
        return cls(reader, writer, client_id, max_frame_bytes)

    async def _write(self, api_key: int, version: int, correlation: int, body: bytes) -> None:
        frame = encode_request(RequestHeader(api_key, version, correlation, self.client_id), body)
        async with self._write_lock:
            if self.closed:
                raise ConnectionLost("connection is closed")
            self._writer.write(frame)
            await self._writer.drain()

    async def request(self, api_key: int, version: int, body: bytes,
                      timeout: float = DEFAULT_CALL_TIMEOUT_SECONDS) -> Reader:
        """Send one request; return a reader over the response body."""
        correlation = next(self._ids)
        fut: asyncio.Future[Reader] = asyncio.get_running_loop().create_future()
        self._waiters[correlation] = fut
        try:
            await self._write(api_key, version, correlation, body)
            return await asyncio.wait_for(fut, timeout)
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

    async def _read_loop(self) -> None:
        try:
            while True:
                payload = await read_frame(self._reader, self._max_frame, d.FRAME_READ_TIMEOUT_SECONDS)
                if payload is None:
                    break
                correlation, body = decode_response(payload)
                fut = self._waiters.pop(correlation, None)
                if fut is not None:
                    if not fut.done():
                        fut.set_result(body)
                    continue
                queue = self._streams.get(correlation)
                if queue is not None:
                    queue.put_nowait(body)
        except (ProtocolError, ConnectionError, OSError) as e:
            logger.debug("client_connection_lost error=%s", e)
        finally:
            self._lost()

    def _lost(self) -> None:
        self.closed = True
        for fut in self._waiters.values():
            if not fut.done():
                fut.set_exception(ConnectionLost("connection closed"))
        self._waiters.clear()
        for queue in self._streams.values():
            queue.put_nowait(_CLOSED)

    async def close(self) -> None:
        self.closed = True
        self._writer.close()
        with contextlib.suppress(Exception):
            await self._writer.wait_closed()
        self._reader_task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await self._reader_task
        self._lost()
