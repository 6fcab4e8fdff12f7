"""`Fluvial`: a connection to a cluster — the SC connection, the metadata kept current by Watch streams,
and a pool of multiplexed SPU connections. Every call has a timeout."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from fluvial import defaults as d
from fluvial.errors import (
    ErrorCode,
    FluvialError,
    InvalidConfig,
    ServerError,
    is_smartmodule_code,
    smartmodule_error,
)
from fluvial.protocol.codec import Reader, WireError, decode_from, encode
from fluvial.transport.client import ClientConnection

from .metadata import MetadataWatcher

logger = logging.getLogger(__name__)

DEFAULT_ENDPOINT = f"127.0.0.1:{d.SC_PUBLIC_PORT}"


def parse_endpoint(text: str) -> tuple[str, int]:
    """HOST:PORT (or [IPv6]:PORT) -> (host, port); InvalidConfig when malformed."""
    host, sep, port = text.strip().rpartition(":")
    host = host.strip("[]")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise InvalidConfig(f"invalid cluster address {text!r}: expected HOST:PORT")
    return host, int(port)


def raise_for(err: WireError, *, topic: str = "", partition: int = -1) -> None:
    """Raise the typed error for a non-OK wire error code."""
    if err.ok:
        return
    message = str(err.payload[0]) if err.code is ErrorCode.OTHER and err.payload else err.describe()
    if is_smartmodule_code(err.code, message):
        raise smartmodule_error(err)
    raise ServerError(err.code, message, topic=topic, partition=partition)


class SpuPool:
    """One multiplexed connection per SPU, opened on first use and re-opened after it closes."""

    def __init__(self, client_id: str, timeout: float) -> None:
        self._client_id = client_id
        self._timeout = timeout
        self._conns: dict[int, ClientConnection] = {}
        self._connecting: dict[int, asyncio.Future[ClientConnection]] = {}

    async def get(self, spu_id: int, host: str, port: int) -> ClientConnection:
        """The SPU's connection; every caller waiting for a new one is answered in the same loop turn (so
        the producer's partitions that waited for it still share their first request)."""
        conn = self._conns.get(spu_id)
        if conn is not None and not conn.closed:
            return conn
        pending = self._connecting.get(spu_id)
        if pending is None:
            pending = self._connecting[spu_id] = asyncio.ensure_future(self._connect(spu_id, host, port))
            pending.add_done_callback(lambda f: f.cancelled() or f.exception())   # retrieved even if all left
        return await asyncio.shield(pending)        # one caller giving up does not stop it for the others

    async def _connect(self, spu_id: int, host: str, port: int) -> ClientConnection:
        try:
            conn = await ClientConnection.connect(host, port, client_id=self._client_id, timeout=self._timeout)
            self._conns[spu_id] = conn
            return conn
        finally:
            self._connecting.pop(spu_id, None)

    def forget(self, spu_id: int, conn: ClientConnection) -> None:
        if self._conns.get(spu_id) is conn:
            del self._conns[spu_id]

    async def close(self) -> None:
        conns, self._conns = list(self._conns.values()), {}
        for c in conns:
            await c.close()


class Fluvial:
    """asyncio client of a fluvial (or Fluvio) cluster. Use `await Fluvial.connect(...)`."""

    def __init__(self, host: str, port: int, *, client_id: str, timeout: float) -> None:
        self.host = host
        self.port = port
        self.client_id = client_id
        self.timeout = timeout
        self.metadata = MetadataWatcher(self._connect_sc, timeout=max(timeout, d.CLIENT_METADATA_TIMEOUT_SECONDS))
        self.spus = SpuPool(client_id, timeout)
        self._sc: ClientConnection | None = None
        self._sc_lock = asyncio.Lock()

    @classmethod
    async def connect(cls, endpoint: str | None = None, *, profile_path: Any = None, client_id: str = "fluvial",
                      timeout: float = d.CLIENT_CONNECT_TIMEOUT_SECONDS) -> Fluvial:
        """Connect to `endpoint` (HOST:PORT), else the current Fluvio profile, else 127.0.0.1:9003."""
        if endpoint is None:
            from .profile import current_endpoint
            endpoint = current_endpoint(profile_path) or DEFAULT_ENDPOINT
        host, port = parse_endpoint(endpoint)
        self = cls(host, port, client_id=client_id, timeout=timeout)
        try:
            await self.sc()
            await self.metadata.start()
        except BaseException:
            await self.close()
            raise
        return self

    async def _connect_sc(self) -> ClientConnection:
        return await ClientConnection.connect(self.host, self.port, client_id=self.client_id, timeout=self.timeout)

    async def sc(self) -> ClientConnection:
        """The SC connection for request/response calls (re-opened after it closes)."""
        async with self._sc_lock:
            if self._sc is None or self._sc.closed:
                self._sc = await self._connect_sc()
            return self._sc

    async def sc_call(self, api_key: int, version: int, request: Any, response_cls: type,
                      timeout: float | None = None) -> Any:
        conn = await self.sc()
        r: Reader = await conn.request(api_key, version, encode(request, version), timeout=timeout or d.CLIENT_REQUEST_TIMEOUT_SECONDS)
        return decode_from(response_cls, r, version)

    async def leader_connection(self, topic: str, partition: int, *,
                                timeout: float | None = None) -> tuple[int, ClientConnection]:
        """The SPU id and connection of the partition's current online leader (waits for metadata)."""
        view, spu = await self.metadata.leader(topic, partition, timeout=timeout)
        conn = await self.spus.get(spu.id, spu.host, spu.port)
        return view.leader, conn

    async def spu_call(self, spu_id: int, conn: ClientConnection, request: Any, response_cls: type,
                       timeout: float | None = None) -> Any:
        version = d.SPU_API_VERSION if request.MAX_VERSION >= d.SPU_API_VERSION else request.MAX_VERSION
        try:
            r = await conn.request(request.API_KEY, version, encode(request, version),
                                   timeout=timeout or d.CLIENT_REQUEST_TIMEOUT_SECONDS)
        except FluvialError:
            self.spus.forget(spu_id, conn)
            raise
        return decode_from(response_cls, r, version)

    async def admin(self) -> Any:
        """An `Admin` on its own SC connection (close it, or use `async with`)."""
        from .admin import Admin
        return await Admin.connect(self.host, self.port, timeout=self.timeout)

    async def topic_producer(self, topic: str, config: Any = None) -> Any:
        from .producer import TopicProducer
        return await TopicProducer.create(self, topic, config)

    async def partition_consumer(self, topic: str, partition: int = 0) -> Any:
        return await self.consumer(topic, [partition])

    async def consumer(self, topic: str, partitions: list[int] | None = None) -> Any:
        """A consumer of `partitions` of `topic` (default: all of them)."""
        from .consumer import TopicConsumer
        count = await self.metadata.topic_partitions(topic)
        chosen = sorted(set(partitions)) if partitions else list(range(count))
        missing = [p for p in chosen if not 0 <= p < count]
        if missing:
            raise ServerError(ErrorCode.TOPIC_NOT_FOUND,
                              f"topic {topic} has {count} partition(s): no partition {missing[0]}")
        return TopicConsumer(self, topic, chosen)

    async def close(self) -> None:
        await self.metadata.close()
        await self.spus.close()
        if self._sc is not None:
            await self._sc.close()

    async def __aenter__(self) -> Fluvial:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()
