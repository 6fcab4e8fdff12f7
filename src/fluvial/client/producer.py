"""fluvial's producer: records are accumulated per partition into batches (by size and linger),
compressed per batch, sent by one sender per partition (one produce request in flight, so order holds),
retried per the one retry table inside a delivery timeout, and acknowledged through delivery handles.

Idempotence: the producer takes a producer id from the SC (fluvial-only API) and numbers its records per
partition; the SPU remembers the last sequences and acknowledges an exact retry without writing it again,
so a retry after a lost acknowledgement never duplicates a record. Against a server without that API
(a Fluvio SC) the producer runs without an id, as the official client does.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import enum
import logging
import math
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from fluvial import defaults as d
from fluvial.errors import ErrorCode, FluvialError, InvalidConfig, ProducerClosed, RecordTooLarge, ServerError
from fluvial.protocol import batch as b
from fluvial.protocol import metadata as md
from fluvial.protocol import spu as sp
from fluvial.protocol.records import Compression
from fluvial.protocol.spu import Isolation

from .batchcodec import encode_batch, restamp
from .health import explain
from .metadata import MetadataCache
from .partitioner import Partitioner, partition_for_key, writable_partitions
from .retry import RetryState, WarningGate
from .tasks import stop_tasks

logger = logging.getLogger(__name__)

_SEQUENCE_MODULO = 1 << 31
_EPOCH_MAX = (1 << 15) - 1              # producer epochs are i16


class DeliverySemantic(enum.Enum):
    AT_LEAST_ONCE = "at-least-once"      # retry per the retry table until acknowledged or timed out
    AT_MOST_ONCE = "at-most-once"        # one attempt: an error fails the record, never a second write

    @classmethod
    def parse(cls, text: str) -> DeliverySemantic:
        """Every spelling Fluvio's `DeliverySemantic::from_str` accepts (`producer/config.rs:233-243`
        of v0.17.3), exactly those: at_most_once, at-most-once, AtMostOnce, atMostOnce, atmostonce (and
        the same for at-least-once)."""
        for member, words in _SEMANTIC_SPELLINGS.items():
            if text in words:
                return member
        raise InvalidConfig(f"unrecognized delivery semantic: {text}. Supported: at_most_once (AtMostOnce), "
                            f"at_least_once (AtLeastOnce)")


_SEMANTIC_SPELLINGS = {
    DeliverySemantic.AT_MOST_ONCE: ("at_most_once", "at-most-once", "AtMostOnce", "atMostOnce", "atmostonce"),
    DeliverySemantic.AT_LEAST_ONCE: ("at_least_once", "at-least-once", "AtLeastOnce", "atLeastOnce", "atleastonce"),
}

# Fluvio's `determine_producer_compression_algo` (`producer/mod.rs:584-624` of v0.17.3): a topic with a
# fixed compression decides it; the producer may only repeat it. How Fluvio names a topic's fixed setting.
_TOPIC_COMPRESSION_TEXT = {md.CompressionAlgorithm.NONE: "no compression", md.CompressionAlgorithm.GZIP: "gzip",
                           md.CompressionAlgorithm.SNAPPY: "snappy", md.CompressionAlgorithm.LZ4: "lz4",
                           md.CompressionAlgorithm.ZSTD: "zstd"}


def producer_compression(topic_setting: md.CompressionAlgorithm, asked: str | None) -> str:
    """The compression a producer uses on a topic: the producer's choice when the topic allows any (none
    if it made none), else the topic's; InvalidConfig when the producer asked for a different one (with
    the text the Rust client's error chain displays: `FluvioError::Producer(InvalidConfiguration(..))`)."""
    if topic_setting is md.CompressionAlgorithm.ANY:
        return (asked or "none").lower()
    fixed = topic_setting.name.lower()
    if asked is not None and asked.lower() != fixed:
        raise InvalidConfig(f"Producer error: Invalid configuration in producer: Compression in the producer "
                            f"({asked.lower()}) does not match with topic level compression "
                            f"({_TOPIC_COMPRESSION_TEXT[topic_setting]})")
    return fixed


@dataclass
class ProducerConfig:
    batch_size_bytes: int = d.PRODUCER_BATCH_BYTES
    linger_seconds: float = d.PRODUCER_LINGER_SECONDS
    compression: str | None = None                  # none | gzip | snappy | lz4 | zstd; None: the topic's
    isolation: Isolation = Isolation.READ_UNCOMMITTED   # ReadUncommitted = acks from the leader
    delivery_timeout_seconds: float = d.DELIVERY_TIMEOUT_SECONDS
    request_timeout_seconds: float = d.CLIENT_REQUEST_TIMEOUT_SECONDS
    max_buffer_bytes: int = d.PRODUCER_BUFFER_BYTES
    max_request_bytes: int = d.PRODUCER_REQUEST_MAX_BYTES
    max_batch_bytes: int = d.BATCH_MAX_BYTES          # larger records/batches are refused locally, never sent
    idempotent: bool = True
    delivery_semantic: DeliverySemantic = DeliverySemantic.AT_LEAST_ONCE
    # SmartModules the SPU applies before writing (`fluvial.client.smartmodules`). The SPU writes their
    # output as a new batch, so such a producer is not idempotent (no producer id), and a batch filtered
    # to nothing is acknowledged without a write.
    smartmodules: tuple[sp.SmartModuleInvocation, ...] = ()
    partition: int | None = None           # every record to this partition (Fluvio's SpecificPartitioner)

    def batch_limit(self) -> int:
        """The largest batch this producer sends: its max batch size, within the frame limit."""
        return min(self.max_batch_bytes, d.FRAME_MAX_BYTES - d.PRODUCE_REQUEST_HEADROOM_BYTES)

    def compression_code(self) -> int:
        try:
            return Compression.NAMES[(self.compression or "none").lower()]
        except KeyError:
            raise ServerError(ErrorCode.COMPRESSION_ERROR,
                              f"unknown compression {self.compression!r} (none, gzip, snappy, lz4, zstd)") from None


@dataclass(frozen=True)
class RecordMetadata:
    partition: int
    offset: int


class _Batch:
    """Records of one partition on their way: open (accumulating), then sealed (encoded), then done."""

    __slots__ = (
        "bytes",
        "count",
        "created",
        "first_sequence",
        "future",
        "keys",
        "partition",
        "payload",
        "retry",
        "timestamp_ms",
        "values",
    )

    def __init__(self, partition: int, loop: asyncio.AbstractEventLoop) -> None:
        self.keys: list[bytes | None] | None = None
        self.values: list[bytes] = []
        self.partition = partition
        self.bytes = 0
        self.created = time.monotonic()
        self.timestamp_ms = int(time.time() * 1000)
        self.payload = b""
        self.first_sequence = -1
        self.count = 0
        self.future: asyncio.Future[int] = loop.create_future()    # base offset
        self.future.add_done_callback(_observed)
        self.retry: RetryState | None = None


@dataclass(eq=False)
class _RequestGroup:
    """Partitions' batches bound for one SPU connection, gathered in one loop turn for one request."""

    conn: Any
    parts: list[tuple[int, list[_Batch], asyncio.Future[list[sp.PartitionProduceResponse]]]] = \
        field(default_factory=list)
    bytes: int = 0
    sent: bool = False


def _observed(fut: asyncio.Future[int]) -> None:
    """A delivery failure reaches whoever awaits the record's handle; one nobody awaits is not an
    "exception never retrieved" for asyncio to print."""
    if not fut.cancelled():
        fut.exception()


class ProduceOutput:
    """The delivery handle of one record: `await out` (or `await out.wait()`) gives its RecordMetadata."""

    __slots__ = ("_batch", "_index")

    def __init__(self, batch: _Batch, index: int) -> None:
        self._batch = batch
        self._index = index

    async def wait(self) -> RecordMetadata:
        base = await asyncio.shield(self._batch.future)
        return RecordMetadata(self._batch.partition, base + self._index)

    def __await__(self) -> Any:
        return self.wait().__await__()


class BatchOutput:
    """The delivery handle of a `send_all` call: `await out` gives one RecordMetadata per record, in order."""

    def __init__(self, parts: list[tuple[list[int], _Batch, int]]) -> None:
        self._parts = parts            # (record indexes, batch, first index inside the batch)

    async def wait(self) -> list[RecordMetadata]:
        total = sum(len(idx) for idx, _b, _s in self._parts)
        out: list[RecordMetadata | None] = [None] * total
        for idx, batch, start in self._parts:
            base = await asyncio.shield(batch.future)
            for j, i in enumerate(idx):
                out[i] = RecordMetadata(batch.partition, base + start + j)
        return out  # type: ignore[return-value]

    async def offsets(self) -> None:
        """Wait for delivery without building per-record results (the cheap path)."""
        for _idx, batch, _s in self._parts:
            await asyncio.shield(batch.future)

    def __await__(self) -> Any:
        return self.wait().__await__()


@dataclass
class _PartitionState:
    open: _Batch | None = None
    sealed: deque[_Batch] = field(default_factory=deque)
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    sender: asyncio.Task[None] | None = None
    next_sequence: int = 0
    epoch: int = 0                  # this partition's producer epoch: bumped when a batch is given up


class TopicProducer:
    def __init__(self, client: Any, topic: str, config: ProducerConfig, partitions: int,
                 producer_id: int, producer_epoch: int) -> None:
        self.client = client
        self.topic = topic
        self.config = config
        self.partitions = partitions
        self.producer_id = producer_id
        self.producer_epoch = producer_epoch
        self._codec = config.compression_code()
        self._batch_limit = config.batch_limit()
        self._loop = asyncio.get_running_loop()
        self._parts: dict[int, _PartitionState] = {}
        self._partitioner = Partitioner()
        self._buffered = 0
        self._space = asyncio.Event()                 # set whenever buffered bytes are released
        self._unfinished: set[asyncio.Future[int]] = set()
        self._warnings = WarningGate()
        self._metadata_epoch = -1
        self._writable: list[int] | None = None        # keyless records avoid the others (None: all fine)
        self._closed = False
        self._in_flight: dict[int, tuple[int, asyncio.Future[Any]]] = {}   # partition -> (SPU, its answer)
        self._moved: set[int] = set()
        self._groups: dict[int, _RequestGroup] = {}      # SPU -> the request gathering in this loop turn
        self._group_tasks: set[asyncio.Task[None]] = set()
        client.metadata.listeners.append(self._leaders_moved)

    @classmethod
    async def create(cls, client: Any, topic: str, config: ProducerConfig | None = None) -> TopicProducer:
        config = config or ProducerConfig()
        partitions = await client.metadata.topic_partitions(topic)
        meta = client.metadata.cache.topic(topic)
        setting = meta.spec.compression_type if meta is not None else md.CompressionAlgorithm.ANY
        config = dataclasses.replace(config, compression=producer_compression(setting, config.compression))
        config.compression_code()                      # an unknown name fails here, before any record
        if config.partition is not None and not 0 <= config.partition < partitions:
            raise InvalidConfig(f"partition: {config.partition} not found")     # Fluvio's PartitionNotFound
        idempotent = config.idempotent and not config.smartmodules
        pid, epoch = (await allocate_producer_id(client)) if idempotent else (b.NO_PRODUCER_ID, -1)
        return cls(client, topic, config, partitions, pid, epoch)

    # ------------------------------------------------------------------------------------ accumulate

    def _state(self, partition: int) -> _PartitionState:
        st = self._parts.get(partition)
        if st is None:
            st = self._parts[partition] = _PartitionState(epoch=self.producer_epoch)
            st.sender = asyncio.ensure_future(self._send_loop(partition, st))
        return st

    def _partition_count(self) -> int:
        """The topic's partition count, looked up again only when metadata changed."""
        cache = self.client.metadata.cache
        if cache.epoch != self._metadata_epoch:
            n = cache.partition_count(self.topic)
            if n:
                self.partitions = n
            self._metadata_epoch = cache.epoch
            self._writable = writable_partitions([_writable(cache, self.topic, p) for p in range(self.partitions)])
        return self.partitions

    async def send(self, key: bytes | str | None, value: bytes | str) -> ProduceOutput:
        """Queue one record; returns its delivery handle. Waits while the buffer is full."""
        if self._closed:
            raise ProducerClosed("producer is closed")
        k = key.encode() if isinstance(key, str) else key
        v = value.encode() if isinstance(value, str) else value
        size = len(v) + (len(k) if k is not None else 0) + d.PRODUCER_RECORD_OVERHEAD_BYTES
        self._check_record(size - d.PRODUCER_RECORD_OVERHEAD_BYTES)
        if self._buffered + size > self.config.max_buffer_bytes:
            await self._wait_space(size)
        n = self._partition_count()
        p = self.config.partition if self.config.partition is not None else \
            self._partitioner.partition(k, n, self._writable) if n > 1 else 0
        st = self._state(p)
        if st.open is not None and st.open.bytes + size + b.HEADER_TOTAL_BYTES > self._batch_limit:
            self._seal(st)                   # the open batch and this record would not fit one batch
        batch = st.open
        if batch is None:
            batch = st.open = _Batch(p, self._loop)
            self._loop.call_later(self.config.linger_seconds, self._linger, p, batch)
        if k is not None and batch.keys is None:
            batch.keys = [None] * len(batch.values)
        if batch.keys is not None:
            batch.keys.append(k)
        index = len(batch.values)
        batch.values.append(v)
        batch.bytes += size
        self._buffered += size
        if batch.bytes >= self.config.batch_size_bytes:
            self._seal(st)
            await asyncio.sleep(0)           # let the sender start on it while the caller keeps producing
        return ProduceOutput(batch, index)

    async def send_all(self, values: Sequence[bytes], keys: Sequence[bytes | None] | None = None) -> BatchOutput:
        """Queue many records in one call (the fast path); returns one handle for all of them.

        Keyless records go round-robin over the partitions, keyed ones by Fluvio's key hash."""
        if self._closed:
            raise ProducerClosed("producer is closed")
        if values and max(map(len, values)) + (max(map(len, filter(None, keys)), default=0) if keys else 0) \
                + b.HEADER_TOTAL_BYTES + d.PRODUCER_RECORD_OVERHEAD_BYTES > self._batch_limit:
            for j, v in enumerate(values):     # one may be too large: refuse at the first, as send would
                k = keys[j] if keys is not None else None
                self._check_record(len(v) + (len(k) if k is not None else 0))
        n = self._partition_count()
        groups = self._group(values, keys, n)
        parts: list[tuple[list[int], _Batch, int]] = []
        unyielded = 0                     # bytes sealed since the senders last had a turn
        for p, (idx, ks, vs) in groups.items():
            size = sum(map(len, vs)) + (sum(map(len, filter(None, ks))) if ks else 0) \
                + d.PRODUCER_RECORD_OVERHEAD_BYTES * len(vs)
            if self._buffered + size > self.config.max_buffer_bytes:
                await self._wait_space(min(size, self.config.max_buffer_bytes))
            # sealed a slice at a time, the loop run between slices: a partition's sender sends (and
            # hears back) while the rest is still being encoded, instead of after the whole call
            per_record = max(1, size // max(1, len(vs)))
            n = max(1, d.PRODUCER_SEND_ALL_SLICE_BYTES // per_record)
            for lo in range(0, len(vs), n):
                hi = min(len(vs), lo + n)
                parts.extend(self._add_many(p, idx[lo:hi], ks[lo:hi] if ks is not None else None, vs[lo:hi],
                                            per_record * (hi - lo)))
                unyielded += per_record * (hi - lo)
                if unyielded >= d.PRODUCER_SEND_ALL_SLICE_BYTES:
                    unyielded = 0            # the senders go (one request per SPU for all the partitions
                    await asyncio.sleep(0)   # sealed meanwhile) while the caller prepares the next slice
        if unyielded:
            await asyncio.sleep(0)
        return BatchOutput(parts)

    def _check_record(self, key_value_bytes: int) -> None:
        """Refuse at once, before any I/O, a record that cannot fit one batch: Fluvio's `RecordTooLarge`
        (`producer/memory_batch.rs:59-66` of v0.17.3: the size of a batch holding only this record against
        the max request size, which is fluvial's max batch size)."""
        size = key_value_bytes + b.HEADER_TOTAL_BYTES + d.PRODUCER_RECORD_OVERHEAD_BYTES
        if size > self._batch_limit:
            raise RecordTooLarge.request(size, self._batch_limit)

    def _group(self, values: Sequence[bytes], keys: Sequence[bytes | None] | None,
               n: int) -> dict[int, tuple[list[int], list[bytes | None] | None, list[bytes]]]:
        count = len(values)
        if self.config.partition is not None:
            return {self.config.partition: (list(range(count)), list(keys) if keys is not None else None,
                                            list(values))}
        if (keys is None or all(k is None for k in keys)) and self._writable is None:
            start = self._partitioner.partition(None, n)
            for _ in range(min(count, n) - 1):                 # advance the round-robin as single sends would
                self._partitioner.partition(None, n)
            if n == 1:
                return {start: (list(range(count)), None, list(values))}
            out: dict[int, tuple[list[int], list[bytes | None] | None, list[bytes]]] = {}
            for j in range(min(n, count)):
                p = (start + j) % n
                idx = list(range(j, count, n))
                out[p] = (idx, None, list(values[j::n]))
            return out
        if n == 1:
            return {0: (list(range(count)), list(keys) if keys is not None else None, list(values))}
        keys = keys if keys is not None else [None] * count
        grouped: dict[int, tuple[list[int], list[bytes | None] | None, list[bytes]]] = {}
        for i, (k, v) in enumerate(zip(keys, values, strict=True)):
            p = self._partitioner.partition(None, n, self._writable) if k is None else partition_for_key(k, n)
            g = grouped.get(p)
            if g is None:
                g = grouped[p] = ([], [], [])
            g[0].append(i)
            g[1].append(k)  # type: ignore[union-attr]
            g[2].append(v)
        return grouped

    def _add_many(self, p: int, idx: list[int], ks: list[bytes | None] | None, vs: list[bytes],
                  size: int) -> list[tuple[list[int], _Batch, int]]:
        """Cut the records into batches of about batch_size_bytes and seal them (an open batch first)."""
        st = self._state(p)
        if st.open is not None:
            self._seal(st)
        out = []
        per_record = max(1, size // max(1, len(vs)))
        step = max(1, -(-self.config.batch_size_bytes // per_record))     # fill a batch to at least its size
        step = min(step, max(1, (self._batch_limit - b.HEADER_TOTAL_BYTES) // per_record))   # within the limit
        for lo in range(0, len(vs), step):
            batch = _Batch(p, self._loop)
            batch.values = vs[lo:lo + step]
            batch.keys = ks[lo:lo + step] if ks is not None else None
            batch.bytes = per_record * len(batch.values)
            self._buffered += batch.bytes
            st.open = batch
            self._seal(st)
            out.append((idx[lo:lo + step], batch, 0))
        return out

    def _linger(self, partition: int, batch: _Batch) -> None:
        st = self._parts.get(partition)
        if st is not None and st.open is batch:
            self._seal(st)

    def _seal(self, st: _PartitionState) -> None:
        batch = st.open
        assert batch is not None
        st.open = None
        batch.count = len(batch.values)
        if self.producer_id != b.NO_PRODUCER_ID:
            batch.first_sequence = st.next_sequence
            st.next_sequence = (st.next_sequence + batch.count) % _SEQUENCE_MODULO
        batch.payload = encode_batch(batch.keys, batch.values, timestamp_ms=batch.timestamp_ms,
                                     compression=self._codec, producer_id=self.producer_id,
                                     producer_epoch=st.epoch, first_sequence=batch.first_sequence)
        batch.keys = None
        batch.values = []
        if len(batch.payload) > self._batch_limit:          # e.g. records that compress badly
            if batch.first_sequence >= 0:
                st.next_sequence = batch.first_sequence      # never sent: no gap for the next batch
            batch.future.set_exception(RecordTooLarge(len(batch.payload), self._batch_limit, "encoded batch"))
            self._release(batch)
            return
        self._unfinished.add(batch.future)
        batch.future.add_done_callback(self._unfinished.discard)
        st.sealed.append(batch)
        st.wake.set()

    async def _wait_space(self, size: int) -> None:
        """Backpressure: wait until `size` more bytes fit in the buffer (or nothing is buffered)."""
        for st in self._parts.values():
            if st.open is not None:
                self._seal(st)            # what waits for linger would otherwise hold the buffer
        while self._buffered and self._buffered + size > self.config.max_buffer_bytes:
            self._space.clear()
            await self._space.wait()

    def _release(self, batch: _Batch) -> None:
        self._buffered -= batch.bytes
        batch.payload = b""
        self._space.set()

    # ------------------------------------------------------------------------------------------ send

    async def _send_loop(self, partition: int, st: _PartitionState) -> None:
        while True:
            await st.wake.wait()
            st.wake.clear()
            while st.sealed:
                request = self._take(st)
                await self._deliver(partition, st, request)

    def _take(self, st: _PartitionState) -> list[_Batch]:
        out = [st.sealed.popleft()]
        total = len(out[0].payload)
        while st.sealed and total + len(st.sealed[0].payload) <= self.config.max_request_bytes:
            nxt = st.sealed.popleft()
            total += len(nxt.payload)
            out.append(nxt)
        return out

    async def _deliver(self, partition: int, st: _PartitionState, batches: list[_Batch]) -> None:
        """Send until every batch is acknowledged or has failed; retried batches go back to the front."""
        try:
            results = await self._produce(partition, batches)
        except FluvialError as e:
            results = [e] * len(batches)
        retry: list[_Batch] = []
        failure: FluvialError | None = None
        for batch, res in zip(batches, results, strict=True):
            if isinstance(res, int):
                if not batch.future.done():
                    batch.future.set_result(res)
                self._release(batch)
                continue
            if failure is None:
                failure = res
            retry.append(batch)
        if not retry:
            return
        assert failure is not None
        wait = self._retry_wait(partition, retry, failure)
        if wait is None and failure.retry.new_leader_only and await self._leader_moved(partition, retry, failure):
            wait = 0.0                                 # a persistent error of that replica: go to the new leader
        if wait is None:
            failure = await explain(self.client, self.topic, partition, failure)
            await self._restart_sequences(st)          # before anyone hears of the failure and sends more
            for batch in retry:
                if not batch.future.done():
                    batch.future.set_exception(failure)
                self._release(batch)
            return
        st.sealed.extendleft(reversed(retry))
        await asyncio.sleep(wait)
        if failure.retry.refresh_metadata:
            remaining = min(batch.retry.started + batch.retry.deadline_seconds for batch in retry if batch.retry) \
                - time.monotonic()
            with contextlib.suppress(FluvialError):      # the next attempt reports what is wrong
                await self.client.metadata.leader(self.topic, partition, timeout=max(0.01, remaining))
        st.wake.set()

    async def _leader_moved(self, partition: int, batches: list[_Batch], failure: FluvialError) -> bool:
        """A persistent storage error (56) of the leader: refresh metadata once; True when it shows another
        leader (within the delivery timeout), so the batches continue there; False: fail them at once."""
        failed_spu = getattr(failure, "spu_id", -1)
        deadline = min((b.retry.started + b.retry.deadline_seconds for b in batches if b.retry), default=math.inf)
        wait = min(d.STORAGE_ERROR_NEW_LEADER_WAIT_SECONDS, deadline - time.monotonic())
        if failed_spu < 0 or wait <= 0:
            return False
        try:
            await self.client.metadata.leader(self.topic, partition, timeout=wait, not_spu=[failed_spu])
        except FluvialError:
            return False
        logger.warning("produce_leader_changed topic=%s partition=%d failed_spu=%d error=%s", self.topic, partition,
                       failed_spu, failure)
        return True

    async def _restart_sequences(self, st: _PartitionState) -> None:
        """A batch was given up: its sequences never reached the log (or nobody knows), so the batches
        after it would be refused as a gap. Bump this partition's epoch and number what waits from 0 —
        the SPU starts a new sequence for the new epoch, and no later batch can be mistaken for a retry.
        When the epoch (i16) is used up, take a new producer id instead (any epoch is new for it)."""
        if self.producer_id == b.NO_PRODUCER_ID:
            return
        if st.epoch >= _EPOCH_MAX:
            pid, epoch = await allocate_producer_id(self.client)
            if pid != b.NO_PRODUCER_ID:
                self.producer_id, st.epoch = pid, epoch
            else:
                st.epoch = 0
        else:
            st.epoch += 1
        st.next_sequence = 0
        for batch in st.sealed:
            batch.first_sequence = st.next_sequence
            st.next_sequence = (st.next_sequence + batch.count) % _SEQUENCE_MODULO
            batch.payload = restamp(batch.payload, st.epoch, batch.first_sequence, self.producer_id)

    def _retry_wait(self, partition: int, batches: list[_Batch], failure: FluvialError) -> float | None:
        if self.config.delivery_semantic is DeliverySemantic.AT_MOST_ONCE:
            return None
        now = time.monotonic()
        waits = []
        for batch in batches:
            if batch.retry is None:
                batch.retry = RetryState(batch.created, self.config.delivery_timeout_seconds)
            wait = batch.retry.next_wait(failure.code, now)
            if wait is None:
                return None
            waits.append(wait)
        if self._warnings.allow(partition, now):
            logger.warning("produce_retrying topic=%s partition=%d error=%s", self.topic, partition, failure)
        return max(waits)

    def _leaders_moved(self, cache: MetadataCache) -> None:
        """A metadata listener: a request in flight to an SPU that no longer leads its partition (or went
        offline) is abandoned at once and retried on the new leader — a stopped or cut-off leader would
        otherwise hold it for the whole request timeout. Idempotent batches are never written twice."""
        for partition, (spu_id, call) in list(self._in_flight.items()):
            found = cache.leader_address(self.topic, partition)
            if (found is None or found[1].id != spu_id) and not call.done():
                self._moved.add(partition)
                call.cancel()

    async def _produce(self, partition: int, batches: list[_Batch]) -> list[int | FluvialError]:
        """One partition's batches, in the next produce request to its leader: the partitions whose
        senders go in the same loop turn share one request per SPU (`_RequestGroup`)."""
        spu_id, conn = await self.client.leader_connection(self.topic, partition,
                                                          timeout=self.config.request_timeout_seconds)
        call: asyncio.Future[list[sp.PartitionProduceResponse]] = self._loop.create_future()
        self._join_group(spu_id, conn, partition, batches, call)
        self._in_flight[partition] = (spu_id, call)
        try:
            entries = await call
        except asyncio.CancelledError:
            if partition not in self._moved or (task := asyncio.current_task()) is None or task.cancelling():
                raise
            raise ServerError(ErrorCode.NOT_LEADER_FOR_PARTITION, f"SPU {spu_id} no longer leads",
                              topic=self.topic, partition=partition) from None
        finally:
            self._in_flight.pop(partition, None)
            self._moved.discard(partition)
        out: list[int | FluvialError] = []
        for e in entries:
            if e.error_code.ok:
                out.append(e.base_offset)
            else:
                out.append(_produce_error(e.error_code, self.topic, partition, spu_id))
        return out

    def _join_group(self, spu_id: int, conn: Any, partition: int, batches: list[_Batch],
                    call: asyncio.Future[list[sp.PartitionProduceResponse]]) -> None:
        """Add a partition's batches to the request gathering for its SPU in this loop turn (sent at the
        end of the turn, or at once when they would take it past max_request_bytes)."""
        size = sum(len(batch.payload) for batch in batches)
        group = self._groups.get(spu_id)
        if group is not None and (group.conn is not conn or group.bytes + size > self.config.max_request_bytes):
            self._send_group(spu_id, group)
            group = None
        if group is None:
            group = self._groups[spu_id] = _RequestGroup(conn)
            self._loop.call_soon(self._send_group, spu_id, group)
        group.parts.append((partition, batches, call))
        group.bytes += size

    def _send_group(self, spu_id: int, group: _RequestGroup) -> None:
        if self._groups.get(spu_id) is group:
            del self._groups[spu_id]
        if group.sent:
            return
        group.sent = True
        task = asyncio.ensure_future(self._request_group(spu_id, group))
        self._group_tasks.add(task)
        task.add_done_callback(self._group_tasks.discard)

    async def _request_group(self, spu_id: int, group: _RequestGroup) -> None:
        """One ProduceRequest for every partition of the group, an entry per batch (each batch's answer is
        its own base offset); each partition hears back its own entries."""
        parts = [(p, batches, call) for p, batches, call in group.parts if not call.done()]
        if not parts:
            return
        data = [sp.PartitionProduceData(p, batch.payload) for p, batches, _ in parts for batch in batches]
        timeout_ms = int(self.config.request_timeout_seconds * 1000)
        request = sp.ProduceRequest(None, self.config.isolation, timeout_ms, [sp.TopicProduceData(self.topic, data)],
                                    list(self.config.smartmodules))
        try:
            resp = await self.client.spu_call(spu_id, group.conn, request, sp.ProduceResponse,
                                              timeout=self.config.request_timeout_seconds + 1)
            entries = [e for t in resp.responses for e in t.partitions]
            if len(entries) != len(data):
                raise ServerError(ErrorCode.OTHER, f"produce answered {len(entries)} entries for {len(data)} batches")
        except BaseException as e:
            for _, _, call in parts:
                if not call.done():
                    call.set_exception(e if isinstance(e, Exception) else ProducerClosed("producer closed"))
            if not isinstance(e, Exception):
                raise
            return
        at = 0
        for _, batches, call in parts:
            if not call.done():                    # a partition whose leader moved no longer waits
                call.set_result(entries[at:at + len(batches)])
            at += len(batches)

    # ----------------------------------------------------------------------------------- lifecycle

    async def flush(self, timeout: float | None = None) -> None:
        """Seal every open batch and wait until everything sent so far is acknowledged (or failed)."""
        for st in self._parts.values():
            if st.open is not None:
                self._seal(st)
        waiters = list(self._unfinished)
        if not waiters:
            return
        done = asyncio.gather(*(asyncio.shield(f) for f in waiters), return_exceptions=True)
        try:
            async with asyncio.timeout(timeout or self.config.delivery_timeout_seconds + 1):
                await done
        except TimeoutError:
            raise ServerError(ErrorCode.REQUEST_TIMED_OUT, "flush timed out") from None

    async def close(self, timeout: float | None = None) -> None:
        """Deliver what is queued (waiting at most `timeout`, default the delivery timeout), then stop;
        records still undelivered then fail with `ProducerClosed` — their handles never hang."""
        if self._closed:
            return
        try:
            await self.flush(timeout)
        except FluvialError as e:
            logger.warning("producer_closed_undelivered topic=%s records=%d error=%s", self.topic,
                           len(self._unfinished), e)
        finally:
            self._closed = True
            with contextlib.suppress(ValueError):
                self.client.metadata.listeners.remove(self._leaders_moved)
            senders = [st.sender for st in self._parts.values() if st.sender is not None]
            await stop_tasks(senders + list(self._group_tasks), d.CLIENT_CLOSE_TIMEOUT_SECONDS,
                             f"producer of {self.topic}")
            for fut in list(self._unfinished):          # queued or in flight: nobody waits forever
                if not fut.done():
                    fut.set_exception(ProducerClosed("producer closed before delivery"))

    async def __aenter__(self) -> TopicProducer:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


def _writable(cache: MetadataCache, topic: str, partition: int) -> bool:
    """Whether metadata shows the partition taking writes: an online leader, not out of storage."""
    found = cache.leader_address(topic, partition)
    return found is not None and found[0].resolution is md.PartitionResolution.ONLINE


def _produce_error(err: Any, topic: str, partition: int, spu_id: int = -1) -> ServerError:
    if err.code is ErrorCode.OTHER and err.payload:
        message = str(err.payload[0])
    elif err.code is ErrorCode.PARTITION_FULL:
        message = "the partition's storage is full"
    else:
        message = err.code.name
    return ServerError(err.code, message, topic=topic, partition=partition, spu_id=spu_id)


async def allocate_producer_id(client: Any) -> tuple[int, int]:
    """A fresh producer id and epoch from the SC (fluvial-only API); (-1, -1) from a server without it."""
    from fluvial.protocol import fluvial_api as fa
    try:
        resp = await client.sc_call(fa.ALLOCATE_PRODUCER_ID, 0, fa.AllocateProducerIdRequest(client.client_id),
                                    fa.AllocateProducerIdResponse, timeout=client.timeout)
    except FluvialError as e:
        logger.info("producer_id_unavailable error=%s (producing without idempotence)", e)
        return b.NO_PRODUCER_ID, -1
    if not resp.error_code.ok:
        return b.NO_PRODUCER_ID, -1
    return resp.producer_id, resp.producer_epoch
