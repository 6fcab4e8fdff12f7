"""fluvial's consumer: offsets, live streams (StreamFetch, acknowledged frame by frame), several
partitions merged, consumer offsets (commit, flush, resume, list, delete).

On leader change, SPU loss or a dropped connection the stream resumes from the last delivered offset + 1
(records before it in a re-read batch are skipped), so a reader sees neither duplicates nor gaps.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from fluvial import defaults as d
from fluvial.errors import ErrorCode, FluvialError, ServerError, retry_rule
from fluvial.protocol import spu as sp
from fluvial.protocol.codec import decode_from, encode
from fluvial.protocol.spu import Isolation
from fluvial.transport.client import ClientConnection

from .batchcodec import ConsumerRecord, decode_frame, decode_transformed_frame, frame_next_offset
from .connect import raise_for
from .health import explain
from .retry import Backoff, WarningGate
from .tasks import stop_tasks

logger = logging.getLogger(__name__)


class OffsetKind(enum.Enum):
    ABSOLUTE = "absolute"
    BEGINNING = "beginning"          # log start + n
    END = "end"                      # high watermark - n


@dataclass(frozen=True)
class Offset:
    kind: OffsetKind
    value: int = 0

    @classmethod
    def absolute(cls, n: int) -> Offset:
        if n < 0:
            raise ServerError(ErrorCode.OTHER, f"absolute offset must be >= 0, got {n}")
        return cls(OffsetKind.ABSOLUTE, n)

    @classmethod
    def beginning(cls) -> Offset:
        return cls(OffsetKind.BEGINNING, 0)

    @classmethod
    def from_beginning(cls, n: int) -> Offset:
        return cls(OffsetKind.BEGINNING, max(0, n))

    @classmethod
    def end(cls) -> Offset:
        return cls(OffsetKind.END, 0)

    @classmethod
    def from_end(cls, n: int) -> Offset:
        return cls(OffsetKind.END, max(0, n))

    def resolve(self, log_start: int, hw: int) -> int:
        """Pure: the absolute offset for a partition whose readable range is [log_start, hw)."""
        if self.kind is OffsetKind.ABSOLUTE:
            return self.value
        if self.kind is OffsetKind.BEGINNING:
            return min(log_start + self.value, hw)
        return max(log_start, hw - self.value)


class OffsetStrategy(enum.Enum):
    NONE = "none"            # no consumer offsets
    MANUAL = "manual"        # commit() + flush() by the caller
    AUTO = "auto"            # commit on every record, flush every few seconds and on close


@dataclass
class ConsumerConfig:
    max_bytes: int = d.STREAM_FETCH_MAX_BYTES
    isolation: Isolation = Isolation.READ_UNCOMMITTED
    disable_continuous: bool = False         # stop at the high watermark seen when the stream started
    end_offset: int | None = None            # stop after this offset (inclusive)
    consumer_id: str | None = None           # consumer offsets: resume from the stored offset + 1
    offset_strategy: OffsetStrategy = OffsetStrategy.NONE
    timeout_seconds: float = d.CLIENT_REQUEST_TIMEOUT_SECONDS
    # SmartModules the SPU runs on the stream, in order (`fluvial.client.smartmodules`: by_name, from_path,
    # transforms_*). Their output is numbered as Fluvio numbers it: a frame's records get base_offset +
    # index, so offsets after a filter are compacted (docs/smartmodules.md), and the stream resumes from
    # the SPU's next_filter_offset.
    smartmodules: tuple[sp.SmartModuleInvocation, ...] = ()


@dataclass
class _Position:
    """Where one partition's stream stands."""

    next_offset: int
    stop_before: int | None = None           # stop when next_offset reaches it
    committed: int = -1                      # last offset the caller committed
    flushed: int = -1                        # last offset stored in the cluster
    session: tuple[ClientConnection, int] | None = None    # (connection, stream id) for offset flushes


async def fetch_offsets(client: Any, topic: str, partition: int, timeout: float) -> tuple[int, int]:
    """(log start, high watermark) from the partition's leader."""
    spu_id, conn = await client.leader_connection(topic, partition, timeout=timeout)
    req = sp.FetchOffsetsRequest([sp.FetchOffsetTopic(topic, [sp.FetchOffsetPartition(partition)])], None)
    resp = await client.spu_call(spu_id, conn, req, sp.FetchOffsetsResponse, timeout=timeout)
    p = resp.topics[0].partitions[0]
    raise_for(p.error_code, topic=topic, partition=partition)
    return p.start_offset, p.last_stable_offset


async def _retrying(what: Any, timeout: float) -> Any:
    """Run `what()` until it works, retrying retriable errors (with back-off) inside `timeout`."""
    deadline = time.monotonic() + timeout
    backoff = Backoff()
    attempt = 0
    while True:
        try:
            return await what()
        except FluvialError as e:
            attempt += 1
            wait = backoff.delay(attempt)
            if not e.retry.retriable or time.monotonic() + wait > deadline:
                raise
            await asyncio.sleep(wait)


class TopicConsumer:
    """Streams of some partitions of one topic (one partition, or several merged)."""

    def __init__(self, client: Any, topic: str, partitions: list[int]) -> None:
        self.client = client
        self.topic = topic
        self.partitions = partitions

    async def stream(self, offset: Offset, config: ConsumerConfig | None = None) -> ConsumerStream:
        s = ConsumerStream(self.client, self.topic, self.partitions, config or ConsumerConfig())
        await s.start(offset)
        return s


@dataclass
class _Shared:
    queue: asyncio.Queue[list[ConsumerRecord] | BaseException | None]
    running: int = 0
    tasks: list[asyncio.Task[None]] = field(default_factory=list)


class ConsumerStream:
    """Async iterator of `ConsumerRecord`s over one or more partitions of a topic."""

    def __init__(self, client: Any, topic: str, partitions: list[int], config: ConsumerConfig) -> None:
        self.client = client
        self.topic = topic
        self.partitions = partitions
        self.config = config
        self.positions: dict[int, _Position] = {}
        self._shared = _Shared(asyncio.Queue(maxsize=d.CONSUMER_QUEUE_FRAMES * max(1, len(partitions))))
        self._buffer: list[ConsumerRecord] = []
        self._at = 0
        self._returned: dict[int, int] = {}      # partition -> last offset handed to the caller
        self.resumes = 0                         # streams started again after a broken one (any partition)
        self._warnings = WarningGate()
        self._serving: dict[int, int] = {}       # partition -> the SPU its current stream reads from
        self._last_flush = time.monotonic()
        self._closed = False

    async def start(self, offset: Offset) -> None:
        stored = await self._stored_offsets() if self.config.consumer_id else {}
        timeout = self.config.timeout_seconds
        for p in self.partitions:
            start, hw = await _retrying(lambda p=p: fetch_offsets(self.client, self.topic, p, timeout), timeout)
            first = stored[p] + 1 if p in stored else offset.resolve(start, hw)
            stop = hw if self.config.disable_continuous else None
            if self.config.end_offset is not None:
                stop = self.config.end_offset + 1 if stop is None else min(stop, self.config.end_offset + 1)
            self.positions[p] = _Position(first, stop, stored.get(p, -1), stored.get(p, -1))
        # every position first, then the streams: one that ends early must not end the whole stream
        live = [(p, pos) for p, pos in self.positions.items() if pos.stop_before is None or pos.next_offset < pos.stop_before]
        self._shared.running = len(live)
        for p, pos in live:
            self._shared.tasks.append(asyncio.ensure_future(self._run_partition(p, pos)))
        if not self._shared.running:
            self._shared.queue.put_nowait(None)

    # --------------------------------------------------------------------------------- iteration

    def __aiter__(self) -> AsyncIterator[ConsumerRecord]:
        return self

    async def __anext__(self) -> ConsumerRecord:
        while self._at >= len(self._buffer):
            frame = await self._next_frame()
            if not frame:
                raise StopAsyncIteration
            self._buffer, self._at = frame, 0
        rec = self._buffer[self._at]
        self._at += 1
        self._returned[rec.partition] = rec.offset
        if self.config.offset_strategy is OffsetStrategy.AUTO:
            self.positions[rec.partition].committed = rec.offset
        return rec

    async def next_batch(self) -> list[ConsumerRecord]:
        """The records of the next frame (fewer Python calls than iterating one by one); [] at the end."""
        if self._at < len(self._buffer):
            out, self._buffer, self._at = self._buffer[self._at:], [], 0
            self._handed(out)
            return out
        frame = await self._next_frame()
        self._handed(frame)
        return frame

    async def _next_frame(self) -> list[ConsumerRecord]:
        """The next frame from the partitions' streams; [] at the end (which stays the end)."""
        await self._maybe_auto_flush()
        item = await self._shared.queue.get()
        if item is None:
            self._shared.queue.put_nowait(None)
            return []
        if isinstance(item, BaseException):
            raise item
        return item

    def _handed(self, records: list[ConsumerRecord]) -> None:
        """Records of one frame (one partition) went to the caller."""
        if records:
            last = records[-1]
            self._returned[last.partition] = last.offset
            if self.config.offset_strategy is OffsetStrategy.AUTO:
                self.positions[last.partition].committed = last.offset

    # ------------------------------------------------------------------------------- per partition

    async def _run_partition(self, partition: int, pos: _Position) -> None:
        q = self._shared.queue
        try:
            await self._follow(partition, pos)
        except asyncio.CancelledError:
            raise
        except BaseException as e:
            await q.put(e)
            return
        self._shared.running -= 1
        if self._shared.running == 0:
            await q.put(None)

    async def _follow(self, partition: int, pos: _Position) -> None:
        """Stream `partition` from pos.next_offset; reconnect on retriable errors until the stop offset."""
        backoff = Backoff()
        attempt = 0
        while pos.stop_before is None or pos.next_offset < pos.stop_before:
            try:
                await self._stream_once(partition, pos)
                return
            except FluvialError as e:
                rule = retry_rule(e.code)
                if rule.new_leader_only and await self._leader_moved(partition, e):
                    continue                          # a persistent error of that replica: read the new leader
                if not rule.retriable:
                    if e.code in (ErrorCode.STORAGE_ERROR, ErrorCode.PARTITION_FULL):
                        raise await explain(self.client, self.topic, partition, e) from e
                    raise
                attempt += 1
                self.resumes += 1
                now = time.monotonic()
                if self._warnings.allow(partition, now):
                    logger.warning("consume_resuming topic=%s partition=%d offset=%d error=%s", self.topic,
                                   partition, pos.next_offset, e)
                await asyncio.sleep(backoff.delay(attempt))
                if rule.refresh_metadata:
                    with contextlib.suppress(FluvialError):
                        await self.client.metadata.leader(self.topic, partition, timeout=self.config.timeout_seconds)

    async def _leader_moved(self, partition: int, e: FluvialError) -> bool:
        """Corrupt data or a FAILED replica (56) never heals by retrying the same SPU: refresh metadata
        once and continue only if another SPU now leads the partition."""
        failed_spu = self._serving.get(partition, -1)
        if failed_spu < 0:
            return False
        try:
            await self.client.metadata.leader(self.topic, partition, not_spu=[failed_spu],
                                              timeout=d.STORAGE_ERROR_NEW_LEADER_WAIT_SECONDS)
        except FluvialError:
            return False
        logger.warning("consume_leader_changed topic=%s partition=%d failed_spu=%d error=%s", self.topic, partition,
                       failed_spu, e)
        return True

    async def _stream_once(self, partition: int, pos: _Position) -> None:
        """One StreamFetch on the current leader, until the stop offset; a retriable error when the stream
        breaks or metadata shows the leader gone (a hung SPU never answers: the SC marks it offline)."""
        cfg = self.config
        spu_id, conn = await self.client.leader_connection(self.topic, partition, timeout=cfg.timeout_seconds)
        self._serving[partition] = spu_id
        reading = asyncio.ensure_future(self._read_stream(partition, pos, conn))
        watchdog = asyncio.ensure_future(self.client.metadata.leader_gone(self.topic, partition, spu_id))
        try:
            await asyncio.wait((reading, watchdog), return_when=asyncio.FIRST_COMPLETED)
        finally:
            for t in (reading, watchdog):
                t.cancel()
            await asyncio.gather(reading, watchdog, return_exceptions=True)
        if reading.done() and not reading.cancelled():
            reading.result()
            return
        raise ServerError(ErrorCode.SPU_OFFLINE, f"SPU {spu_id} no longer leads", topic=self.topic, partition=partition)

    async def _read_stream(self, partition: int, pos: _Position, conn: ClientConnection) -> None:
        cfg = self.config
        version = d.SPU_API_VERSION
        req = sp.StreamFetchRequest(self.topic, partition, pos.next_offset, cfg.max_bytes, cfg.isolation, b"", None,
                                    None, list(cfg.smartmodules), cfg.consumer_id)
        stream = conn.stream(sp.SpuApiKey.STREAM_FETCH, version, encode(req, version))
        try:
            async for r in stream:
                frame = decode_from(sp.StreamFetchResponse, r, version)
                part = frame.partition
                if cfg.smartmodules:
                    await self._transformed_frame(conn, frame, pos)
                    if pos.stop_before is not None and pos.next_offset >= pos.stop_before:
                        return
                    continue
                if not part.error_code.ok:
                    raise_for(part.error_code, topic=self.topic, partition=partition)
                pos.session = (conn, frame.stream_id)
                if part.records:         # acknowledged first: the SPU reads the next frame while this one decodes
                    self._ack(conn, frame.stream_id, frame_next_offset(part.records, pos.next_offset, pos.stop_before))
                records, next_offset = self._decode(partition, pos, part.records)
                if records:
                    await self._shared.queue.put(records)
                pos.next_offset = next_offset        # only once handed over: a cancelled put loses nothing
                if pos.stop_before is not None and pos.next_offset >= pos.stop_before:
                    return
        finally:
            await stream.aclose()

    async def _transformed_frame(self, conn: ClientConnection, frame: sp.StreamFetchResponse, pos: _Position) -> None:
        """A frame of SmartModule output: records numbered base + index (Fluvio's numbering), the stream
        continuing from next_filter_offset. A runtime error (6004) comes with the records before it: those
        are handed over first, then the error ends the stream."""
        part = frame.partition
        records: list[ConsumerRecord] = []
        next_offset = pos.next_offset
        if part.records:
            records, last = decode_transformed_frame(part.records, part.partition_index)
            next_offset = part.next_filter_offset if part.next_filter_offset > 0 else last
        elif part.next_filter_offset > 0:
            next_offset = part.next_filter_offset
        if part.records or part.next_filter_offset > 0:
            self._ack(conn, frame.stream_id, next_offset)
        pos.session = (conn, frame.stream_id)
        if records:
            await self._shared.queue.put(records)
        pos.next_offset = max(pos.next_offset, next_offset)
        if not part.error_code.ok:
            raise_for(part.error_code, topic=self.topic, partition=part.partition_index)

    def _decode(self, partition: int, pos: _Position, data: bytes) -> tuple[list[ConsumerRecord], int]:
        """The records of a frame from pos.next_offset (before pos.stop_before), and the next offset."""
        return decode_frame(data, partition, pos.next_offset, pos.stop_before)

    def _ack(self, conn: ClientConnection, stream_id: int, next_offset: int) -> None:
        """Tell the SPU the frame arrived (it sends the next one only then), right now: the SPU reads the
        next frame while this one is decoded. A lost connection shows up on the stream itself."""
        req = sp.UpdateOffsetsRequest([sp.OffsetUpdate(next_offset, stream_id)])
        with contextlib.suppress(FluvialError):
            conn.send_now(sp.SpuApiKey.UPDATE_OFFSETS, 0, encode(req, 0))

    # ---------------------------------------------------------------------------- consumer offsets

    def offset_commit(self) -> None:
        """Mark everything returned so far as consumed (stored by the next flush)."""
        for p, offset in self._returned.items():
            self.positions[p].committed = offset

    async def offset_flush(self) -> None:
        """Store every committed offset in the cluster (UpdateConsumerOffset on the stream's session)."""
        if not self.config.consumer_id:
            raise ServerError(ErrorCode.OFFSET_MANAGEMENT_DISABLED, "consumer offsets need a consumer id")
        for p, pos in self.positions.items():
            if pos.committed <= pos.flushed or pos.session is None:
                continue
            conn, stream_id = pos.session
            req = sp.UpdateConsumerOffsetRequest(pos.committed, stream_id)
            r = await conn.request(req.API_KEY, d.SPU_API_VERSION, encode(req, d.SPU_API_VERSION),
                                   timeout=self.config.timeout_seconds)
            resp = decode_from(sp.UpdateConsumerOffsetResponse, r, d.SPU_API_VERSION)
            raise_for(resp.error_code, topic=self.topic, partition=p)
            pos.flushed = pos.committed
        self._last_flush = time.monotonic()

    async def _maybe_auto_flush(self) -> None:
        if (self.config.offset_strategy is OffsetStrategy.AUTO
                and time.monotonic() - self._last_flush >= d.CONSUMER_AUTO_COMMIT_SECONDS):
            with contextlib.suppress(FluvialError):
                await self.offset_flush()

    async def _stored_offsets(self) -> dict[int, int]:
        found = await list_consumer_offsets(self.client, timeout=self.config.timeout_seconds,
                                            consumer_id=self.config.consumer_id, topic=self.topic)
        return {o.partition: o.offset for o in found if o.partition in self.partitions}

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self.config.offset_strategy is OffsetStrategy.AUTO:
            with contextlib.suppress(FluvialError):
                await self.offset_flush()
        await stop_tasks(self._shared.tasks, d.CLIENT_CLOSE_TIMEOUT_SECONDS, f"consumer stream of {self.topic}")

    async def __aenter__(self) -> ConsumerStream:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


# ------------------------------------------------------------------------------ consumer offsets API


@dataclass(frozen=True)
class StoredOffset:
    consumer_id: str
    topic: str
    partition: int
    offset: int
    modified_time: int


async def _offsets_leader(client: Any, timeout: float) -> tuple[int, ClientConnection]:
    return await client.leader_connection(d.CONSUMER_OFFSET_TOPIC, 0, timeout=timeout)


async def list_consumer_offsets(client: Any, *, timeout: float = d.CLIENT_REQUEST_TIMEOUT_SECONDS,
                                consumer_id: str | None = None, topic: str | None = None,
                                partition: int | None = None) -> list[StoredOffset]:
    async def call() -> list[StoredOffset]:
        spu_id, conn = await _offsets_leader(client, timeout)
        replica = sp.ReplicaKey(topic, partition) if topic is not None and partition is not None else None
        req = sp.FetchConsumerOffsetsRequest(sp.FilterOpts(replica, consumer_id))
        resp = await client.spu_call(spu_id, conn, req, sp.FetchConsumerOffsetsResponse, timeout=timeout)
        raise_for(resp.error_code)
        return [StoredOffset(c.consumer_id, c.replica_id.topic, c.replica_id.partition, c.offset, c.modified_time)
                for c in resp.consumers if topic is None or c.replica_id.topic == topic]

    return await _retrying(call, timeout)


async def delete_consumer_offset(client: Any, consumer_id: str, topic: str, partition: int, *,
                                 timeout: float = d.CLIENT_REQUEST_TIMEOUT_SECONDS) -> None:
    async def call() -> None:
        spu_id, conn = await _offsets_leader(client, timeout)
        req = sp.DeleteConsumerOffsetRequest(sp.ReplicaKey(topic, partition), consumer_id)
        resp = await client.spu_call(spu_id, conn, req, sp.DeleteConsumerOffsetResponse, timeout=timeout)
        raise_for(resp.error_code, topic=topic, partition=partition)

    await _retrying(call, timeout)
