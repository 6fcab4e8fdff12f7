"""The client's view of the cluster: topics, partitions and SPUs, kept current by SC Watch streams.

`MetadataCache` is pure: it applies Watch updates (a full sync, then changes) and answers questions.
`MetadataWatcher` is the I/O edge: one Watch stream per object type on the SC connection, restarted
with back-off when the SC goes away (the cache keeps its last view meanwhile), and waiters woken on
every change — no polling.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from fluvial import defaults as d
from fluvial.errors import ErrorCode, FluvialError, ServerError
from fluvial.protocol import metadata as md
from fluvial.protocol import sc as scp
from fluvial.transport.client import ClientConnection, ConnectionLost

from .tasks import stop_tasks

logger = logging.getLogger(__name__)

LABELS = ("Topic", "Partition", "SPU")


@dataclass(frozen=True)
class PartitionView:
    """Where a partition lives now."""

    topic: str
    partition: int
    leader: int                       # SPU id
    replicas: tuple[int, ...]
    resolution: md.PartitionResolution
    hw: int
    leo: int
    compression: md.CompressionAlgorithm


@dataclass(frozen=True)
class SpuView:
    id: int
    host: str
    port: int
    online: bool


def public_host(spec: md.SpuSpec) -> str:
    """The host a client dials for an SPU: its first ingress address's hostname, else its IP ("" if none)."""
    ingress = spec.public_endpoint.ingress
    return (ingress[0].hostname or ingress[0].ip or "") if ingress else ""


def split_partition_key(key: str) -> tuple[str, int]:
    topic, _, part = key.rpartition("-")
    if not topic or not part.isdigit():
        raise ValueError(f"not a partition key: {key!r}")
    return topic, int(part)


class MetadataCache:
    """Pure: objects by label and name, updated by Watch messages; `epoch` counts applied updates."""

    def __init__(self) -> None:
        self.objects: dict[str, dict[str, Any]] = {label: {} for label in LABELS}
        self.synced: set[str] = set()
        self.epoch = 0

    def apply(self, label: str, update: Any, *, full_sync: bool = False) -> None:
        """A Watch response: the first of a stream (`full_sync`, even when empty) or one with `all`
        replaces the view; `changes` patch it."""
        store = self.objects[label]
        if full_sync or update.all or label not in self.synced:
            store.clear()
            for m in update.all:
                store[m.name] = m
            self.synced.add(label)
        for change in update.changes:
            if change.header is scp.MsgType.DELETE:
                store.pop(change.content.name, None)
            else:
                store[change.content.name] = change.content
        self.epoch += 1

    def topic(self, name: str) -> Any | None:
        return self.objects["Topic"].get(name)

    def partition_count(self, topic: str) -> int:
        meta = self.topic(topic)
        if meta is None:
            return 0
        n = len(meta.status.replica_map)
        if n:
            return n
        replicas = meta.spec.replicas
        return int(getattr(replicas, "partitions", 0) or len(getattr(replicas, "maps", []) or []))

    def partition(self, topic: str, partition: int) -> PartitionView | None:
        m = self.objects["Partition"].get(f"{topic}-{partition}")
        if m is None:
            return None
        return PartitionView(topic, partition, m.spec.leader, tuple(m.spec.replicas), m.status.resolution,
                             m.status.leader.hw, m.status.leader.leo, m.spec.compression_type)

    def partitions(self, topic: str) -> list[PartitionView]:
        out = []
        for name in self.objects["Partition"]:
            t, p = split_partition_key(name)
            if t == topic:
                view = self.partition(t, p)
                assert view is not None
                out.append(view)
        return sorted(out, key=lambda v: v.partition)

    def spu(self, spu_id: int) -> SpuView | None:
        for m in self.objects["SPU"].values():
            if m.spec.id == spu_id:
                return SpuView(spu_id, public_host(m.spec) or "127.0.0.1", m.spec.public_endpoint.port,
                               m.status.resolution is md.SpuResolution.ONLINE)
        return None

    def leader_address(self, topic: str, partition: int) -> tuple[PartitionView, SpuView] | None:
        """The partition and its leader SPU, when both are known and the SPU is online."""
        view = self.partition(topic, partition)
        if view is None or view.leader < 0:
            return None
        spu = self.spu(view.leader)
        if spu is None or not spu.online:
            return None
        return view, spu


class MetadataWatcher:
    """Keeps a `MetadataCache` current from the SC's Watch streams."""

    def __init__(self, connect: Callable[[], Any], *, timeout: float = d.CLIENT_METADATA_TIMEOUT_SECONDS) -> None:
        self._connect = connect                # async () -> ClientConnection
        self.cache = MetadataCache()
        self.timeout = timeout
        self._changed = asyncio.Condition()
        self._tasks: list[asyncio.Task[None]] = []
        self._conn: ClientConnection | None = None
        self._closed = False
        self.listeners: list[Callable[[MetadataCache], None]] = []   # called after every applied update

    async def start(self) -> None:
        self._tasks = [asyncio.ensure_future(self._run())]
        await self.wait_for(lambda c: len(c.synced) == len(LABELS), what="the cluster's metadata")

    async def _run(self) -> None:
        delay = d.RECONNECT_BACKOFF_MIN_SECONDS
        while not self._closed:
            try:
                self._conn = await self._connect()
                streams = [asyncio.ensure_future(self._watch(self._conn, label)) for label in LABELS]
                delay = d.RECONNECT_BACKOFF_MIN_SECONDS
                try:
                    done, _ = await asyncio.wait(streams, return_when=asyncio.FIRST_EXCEPTION)
                    for t in done:
                        t.result()
                finally:
                    for t in streams:
                        t.cancel()
                    await asyncio.gather(*streams, return_exceptions=True)
                    await self._conn.close()
            except asyncio.CancelledError:
                raise
            except FluvialError as e:
                logger.debug("metadata_watch_lost error=%s retry_in=%.2f", e, delay)
            await asyncio.sleep(delay)
            delay = min(d.RECONNECT_BACKOFF_MAX_SECONDS, delay * 2)

    async def _watch(self, conn: ClientConnection, label: str) -> None:
        body = scp.encode_typed(label, scp.WatchRequest(0, False), d.SC_OBJECT_VERSION)
        first = True
        async for r in conn.stream(scp.ScApiKey.WATCH, d.SC_OBJECT_VERSION, body):
            _label, update = scp.decode_typed_response(scp.ScApiKey.WATCH, r.take(r.remaining()),
                                                       d.SC_OBJECT_VERSION)
            self.cache.apply(label, update, full_sync=first)
            first = False
            for listener in list(self.listeners):
                listener(self.cache)
            async with self._changed:
                self._changed.notify_all()
        raise ConnectionLost("watch stream ended")

    async def wait_for(self, ready: Callable[[MetadataCache], Any], *, what: str,
                       timeout: float | None = None) -> Any:
        """Wait until `ready(cache)` is truthy (re-checked on every metadata change); return its value."""
        limit = self.timeout if timeout is None else timeout     # math.inf: wait as long as it takes

        async def check() -> Any:
            async with self._changed:
                while True:
                    value = ready(self.cache)
                    if value:
                        return value
                    await self._changed.wait()

        try:
            # asyncio.timeout, not wait_for: on 3.11 wait_for swallows a cancellation that arrives as the
            # inner wait just finished (CPython gh-86296), and a closing consumer then hangs.
            async with asyncio.timeout(None if limit == math.inf else limit):
                return await check()
        except TimeoutError:
            raise ServerError(ErrorCode.REQUEST_TIMED_OUT, f"timed out after {limit} s waiting for {what}") from None

    async def topic_partitions(self, topic: str) -> int:
        """The partition count of `topic`; `TopicNotFound`-style error when the synced view lacks it."""
        n = self.cache.partition_count(topic)
        if n:
            return n
        if self.cache.topic(topic) is None and "Topic" in self.cache.synced:
            raise ServerError(ErrorCode.TOPIC_NOT_FOUND, f"Topic not found: {topic}")
        return int(await self.wait_for(lambda c: c.partition_count(topic), what=f"partitions of topic {topic}"))

    async def leader(self, topic: str, partition: int, *, timeout: float | None = None,
                     not_spu: Iterable[int] = ()) -> tuple[PartitionView, SpuView]:
        """The partition's online leader; waits for metadata to show one (not one of `not_spu`)."""
        avoid = set(not_spu)

        def ready(c: MetadataCache) -> tuple[PartitionView, SpuView] | None:
            found = c.leader_address(topic, partition)
            if found is None or found[1].id in avoid:
                return None
            return found

        return await self.wait_for(ready, what=f"an online leader of {topic}/{partition}", timeout=timeout)

    async def leader_gone(self, topic: str, partition: int, spu_id: int) -> None:
        """Return once metadata shows `spu_id` no longer leading the partition, or offline."""
        def gone(c: MetadataCache) -> bool:
            found = c.leader_address(topic, partition)
            return found is None or found[1].id != spu_id

        await self.wait_for(gone, what=f"a leader change of {topic}/{partition}", timeout=math.inf)

    async def close(self) -> None:
        self._closed = True
        await stop_tasks(self._tasks, d.CLIENT_CLOSE_TIMEOUT_SECONDS, "metadata watcher")
        if self._conn is not None:
            await self._conn.close()
