"""The SPU process: public API for clients (ApiVersions, Produce, FetchOffsets, StreamFetch,
UpdateOffsets), the control link to the SC, and the storage manager for its data dir."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import itertools
import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from fluvial import defaults as d
from fluvial.errors import NOT_ENOUGH_REPLICAS_TEXT, ErrorCode, FluvialError, UnknownCompression
from fluvial.observability import metrics
from fluvial.observability.ratelimit import RateLimitedLog
from fluvial.protocol import batch as b
from fluvial.protocol import fluvial_api as fa
from fluvial.protocol import internal as i
from fluvial.protocol import spu as sp
from fluvial.protocol.codec import OK, Reader, WireError, decode_from, encode
from fluvial.protocol.frame import API_VERSIONS_KEY, ApiVersionsRequest, ApiVersionsResponse, RequestHeader
from fluvial.protocol.metadata import CompressionAlgorithm
from fluvial.spu.control import ControlLink
from fluvial.spu.follower import Followers
from fluvial.spu.leader import LeaderService
from fluvial.spu.offsets import ConsumerOffsets, NotOffsetLeader
from fluvial.spu.replicas import LocalReplica, ReplicaRegistry
from fluvial.spu.smartmodules import SmartModuleStore
from fluvial.spu.smartstream import SmartStreams
from fluvial.storage.fileio import OS_IO, FileIO
from fluvial.storage.manager import StorageManager
from fluvial.storage.replica import Isolation as StorageIsolation
from fluvial.storage.replica import Replica
from fluvial.storage.replica.append import AppendResult
from fluvial.storage.space import SpaceSnapshot
from fluvial.transport import server as srv
from fluvial.transport.client import ClientConnection

logger = logging.getLogger(__name__)
_errors = RateLimitedLog(logger)
T = TypeVar("T")
R = TypeVar("R")

# topic CompressionAlgorithm → the batch attribute code it requires (None: any)
_TOPIC_CODEC = {CompressionAlgorithm.ANY: None, CompressionAlgorithm.NONE: 0, CompressionAlgorithm.GZIP: 1,
                CompressionAlgorithm.SNAPPY: 2, CompressionAlgorithm.LZ4: 3, CompressionAlgorithm.ZSTD: 4}


@dataclass
class SpuConfig:
    spu_id: int
    data_dir: str
    public_host: str = "127.0.0.1"
    public_port: int = d.SPU_BASE_PUBLIC_PORT
    private_host: str = "127.0.0.1"
    private_port: int = d.SPU_BASE_PUBLIC_PORT + 1
    sc_host: str = "127.0.0.1"
    sc_port: int = d.SC_PRIVATE_PORT
    flush: str | None = None
    reserve_bytes: int | None = None
    replica_lag_seconds: float = d.REPLICA_LAG_SECONDS
    lease_seconds: float = d.LEADER_LEASE_SECONDS
    limits: srv.ConnectionLimits = field(default_factory=srv.ConnectionLimits)
    io: FileIO = field(default=OS_IO, repr=False)   # the file layer (tests pass a FaultyFileIO)
    evict_when_full: bool = False                   # while FULL, delete the data dir's oldest sealed segments
    smartmodule_call_budget_seconds: float = d.SMARTMODULE_CALL_BUDGET_SECONDS
    smartmodule_memory_max_bytes: int = d.SMARTMODULE_MEMORY_MAX_BYTES


@functools.lru_cache(maxsize=16)
def _required_codec(topic_compression: int) -> int | None:
    """The batch compression code a topic's setting requires (None: any)."""
    try:
        return _TOPIC_CODEC.get(CompressionAlgorithm(topic_compression))
    except ValueError:
        return None


@dataclass
class _AppendJob:
    """One partition's batches of a produce request, for the append thread."""

    topic: str
    partition: int
    local: LocalReplica
    batches: list[memoryview]
    slots: list[tuple[int, int, int]] = field(default_factory=list)   # (topic, entry) in the response, batches


class AppendThreads:
    """The SPU's append threads: a call goes to a free one through a SimpleQueue and its result comes back
    with one `call_soon_threadsafe` — about half the cost of `run_in_executor` (no concurrent Future, no
    chained callbacks) on the path every produce request takes."""

    def __init__(self, count: int, name: str) -> None:
        self._queue: queue.SimpleQueue[tuple[asyncio.AbstractEventLoop, asyncio.Future[Any], Callable[[Any], Any],
                                             Any] | None] = queue.SimpleQueue()
        self._threads = [threading.Thread(target=self._work, name=f"{name}-{k}", daemon=True) for k in range(count)]
        for t in self._threads:
            t.start()

    async def run(self, fn: Callable[[T], R], arg: T) -> R:
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[R] = loop.create_future()
        self._queue.put((loop, fut, fn, arg))
        return await fut

    def _work(self) -> None:
        while (item := self._queue.get()) is not None:
            loop, fut, fn, arg = item
            try:
                result, error = fn(arg), None
            except BaseException as e:   # handed to the caller, whatever it is
                result, error = None, e
            with contextlib.suppress(RuntimeError):          # the loop closed meanwhile: nobody waits
                loop.call_soon_threadsafe(_settle, fut, result, error)

    def close(self) -> None:
        for _ in self._threads:
            self._queue.put(None)
        for t in self._threads:
            t.join()


def _settle(fut: asyncio.Future[Any], result: Any, error: BaseException | None) -> None:
    if fut.done():                       # the caller was cancelled meanwhile
        return
    if error is not None:
        fut.set_exception(error)
    else:
        fut.set_result(result)


class NotLeaderAnymore(Exception):
    """An append written after this SPU's lease ran out: never acknowledged here."""


# a job's outcome: the whole run's result or error, or (after a headroom refusal of a run of several
# entries) each entry's own
_Outcome = AppendResult | Exception | list[AppendResult | Exception]


def _append_all(jobs: list[_AppendJob]) -> list[_Outcome]:
    """In an append thread: each job's append, its result or the exception it raised. A run of several
    entries that is refused (it does not fit the headroom whole, one entry's batch is invalid or out of
    sequence) goes again entry by entry, each all or none, none after the first refused: a filling disk
    takes what fits and a bad entry fails alone, as when every entry was its own run."""
    out: list[_Outcome] = []
    for job in jobs:
        replica = job.local.replica
        try:
            out.append(replica.append_batches(job.batches))
        except FluvialError as e:
            if len(job.slots) == 1:
                out.append(e)
                continue
            entries: list[AppendResult | Exception] = []
            at = 0
            for _, _, count in job.slots:
                if entries and isinstance(entries[-1], Exception):
                    entries.append(entries[-1])           # after a refused entry: none (order)
                    continue
                try:
                    entries.append(replica.append_batches(job.batches[at:at + count]))
                except Exception as err:
                    entries.append(err)
                at += count
            out.append(entries)
        except Exception as e:   # answered per partition on the loop
            out.append(e)
    return out


@dataclass
class StreamSession:
    """One StreamFetch: one outstanding frame until the consumer acknowledges it (UpdateOffsets)."""

    stream_id: int
    topic: str = ""
    partition: int = 0
    consumer_id: str | None = None
    acked: asyncio.Event = field(default_factory=asyncio.Event)
    ack_offset: int = -1

    def ack(self, offset: int) -> None:
        self.ack_offset = offset
        self.acked.set()


class SpuServer(srv.TwoPortServer):
    def __init__(self, config: SpuConfig) -> None:
        super().__init__()
        self.config = config
        self.storage = StorageManager(config.data_dir, config.spu_id, io=config.io, reserve_bytes=config.reserve_bytes,
                                      evict_when_full=config.evict_when_full)
        self.registry = ReplicaRegistry(config.spu_id, self.storage, config.flush, config.replica_lag_seconds)
        self.storage.guard.add_listener(metrics.count_transition)
        self.storage.add_replica_listener(metrics.count_transition)
        self.public = srv.Service("spu-public", {
            API_VERSIONS_KEY: self._api_versions,
            sp.SpuApiKey.PRODUCE: self._produce,
            sp.SpuApiKey.FETCH_OFFSETS: self._fetch_offsets,
            sp.SpuApiKey.STREAM_FETCH: self._stream_fetch,
            sp.SpuApiKey.UPDATE_OFFSETS: self._update_offsets,
            sp.SpuApiKey.UPDATE_CONSUMER_OFFSET: self._update_consumer_offset,
            sp.SpuApiKey.DELETE_CONSUMER_OFFSET: self._delete_consumer_offset,
            sp.SpuApiKey.FETCH_CONSUMER_OFFSETS: self._fetch_consumer_offsets,
            fa.REPLICA_HEALTH: self._replica_health,        # fluvial-only: never advertised
        })
        self.leaders = LeaderService(self.registry, self._report_soon)
        self.private = srv.Service("spu-private", {
            API_VERSIONS_KEY: self._api_versions,
            i.PEER_UPDATE_CONSUMER_OFFSET: self._peer_update_consumer_offset,
            i.PEER_DELETE_TOPIC_OFFSETS: self._peer_delete_topic_offsets,
            **self.leaders.handlers(),
        }, on_disconnect=self.leaders.peer_disconnected)
        self.offsets = ConsumerOffsets(self.registry)
        self.smartmodules = SmartModuleStore()   # filled by the SC's pushes (control link)
        self.smartstreams = SmartStreams(self.registry, self.smartmodules, config.data_dir,
                                         call_budget_seconds=config.smartmodule_call_budget_seconds,
                                         memory_max_bytes=config.smartmodule_memory_max_bytes)
        self.peers: dict[int, i.PeerSpu] = {}
        self.control: ControlLink | None = None
        self.followers = Followers(self.registry, lambda: self.peers)
        self.registry.on_role = self.followers.on_role
        self.registry.on_removed = self.followers.on_removed
        # appends leave the loop here (a stalled disk must not stop it), apart from the reads' threads
        self._appends = AppendThreads(d.SPU_APPEND_THREADS, "spu-append")

    async def start(self) -> None:
        cfg = self.config
        await self._listen((cfg.public_host, cfg.public_port), (cfg.private_host, cfg.private_port))
        register = i.RegisterSpuRequest(cfg.spu_id, cfg.public_host, self.public_port, cfg.private_host,
                                        self.private_port, None)
        self.control = ControlLink(register, cfg.sc_host, cfg.sc_port, self.registry, self._set_peers,
                                   lease_seconds=cfg.lease_seconds, smartmodules=self.smartmodules)
        self._tasks.append(asyncio.ensure_future(self.control.run()))
        self._tasks.append(asyncio.ensure_future(self.leaders.isr_checks()))
        logger.info("spu_started id=%d public=%s:%d private=%s:%d sc=%s:%d data_dir=%s", cfg.spu_id,
                    cfg.public_host, self.public_port, cfg.private_host, self.private_port, cfg.sc_host,
                    cfg.sc_port, self.storage.base_dir)

    def _report_soon(self) -> None:
        if self.control is not None:
            self.control.report_soon()

    def _set_peers(self, peers: list[i.PeerSpu]) -> None:
        self.peers = {p.spu_id: p for p in peers}

    async def stop(self) -> None:
        await self.followers.close()
        await self._close_services()
        self.smartstreams.close()
        self._appends.close()
        self.storage.close()

    # ===================================================================================== handlers

    async def _api_versions(self, conn: srv.Connection, h: RequestHeader, body: Reader) -> None:
        req = decode_from(ApiVersionsRequest, body, h.api_version)
        resp = ApiVersionsResponse(OK, sp.spu_api_keys(req.client_version), sp.SPU_PLATFORM_VERSION)
        await conn.send(h.correlation_id, encode(resp, h.api_version))

    async def _produce(self, conn: srv.Connection, h: RequestHeader, body: Reader) -> None:
        """Appends happen here, in request order: every partition's checks on the loop, then all of the
        request's appends in one trip to an append thread, then the answers; a ReadCommitted answer waits
        for the HW in its own task, so later requests on the connection are not held behind it."""
        req = decode_from(sp.ProduceRequest, body, h.api_version)
        committed = req.isolation is sp.Isolation.READ_COMMITTED
        answers: list[list[sp.PartitionProduceResponse | None]] = []
        jobs: list[_AppendJob] = []
        for topic in req.topics:
            parts: list[sp.PartitionProduceResponse | None] = []
            for p in topic.partitions:
                if req.smartmodules:   # applied before the write (smartstream.py); may answer instead
                    p, answer = await self.smartstreams.transform_produce(topic.name, p, req.smartmodules,
                                                                          h.api_version)
                    if answer is not None:
                        parts.append(answer)
                        continue
                last = jobs[-1] if jobs else None
                if last is not None and last.partition == p.partition_index and not req.smartmodules \
                        and last.slots[-1][:2] == (len(answers), len(parts) - 1):
                    # the next entry of the partition just taken (fluvial's client sends one per batch, for
                    # each batch's offset): checked already in this loop turn; one append run with it
                    more = self._entry_batches(last.topic, last.local, p)
                    if isinstance(more, list):
                        last.slots.append((len(answers), len(parts), len(more)))
                        last.batches += more
                        parts.append(None)
                    else:
                        parts.append(more)
                    continue
                job = self._prepare_append(topic.name, p, committed)
                if isinstance(job, _AppendJob):
                    job.slots.append((len(answers), len(parts), len(job.batches)))
                    jobs.append(job)
                    parts.append(None)
                else:
                    parts.append(job)
            answers.append(parts)
        waits: list[tuple[sp.PartitionProduceResponse, LocalReplica, int]] = []
        if jobs:
            # off the event loop for every flush policy: a stalled disk must not stop heartbeats
            outcomes = await self._appends.run(_append_all, jobs)
            for job, outcome in zip(jobs, outcomes, strict=True):
                for resp, upto in self._finish_append(job, outcome, committed, answers):
                    if upto > job.local.replica.hw:
                        waits.append((resp, job.local, upto))
        answer = sp.ProduceResponse([sp.TopicProduceResponse(topic.name, parts)  # type: ignore[arg-type]
                                     for topic, parts in zip(req.topics, answers, strict=True)], 0)
        if not waits:
            await conn.send(h.correlation_id, encode(answer, h.api_version))
            return
        deadline = time.monotonic() + max(0, req.timeout_ms) / 1000

        async def when_committed() -> None:
            for resp, local, upto in waits:
                resp.error_code = await self._committed(local, upto, deadline)
            await conn.send(h.correlation_id, encode(answer, h.api_version))

        conn.spawn(when_committed())

    async def _committed(self, local: LocalReplica, upto: int, deadline: float) -> WireError:
        """Wait until the HW covers `upto` (the LEO right after the append): OK, RequestTimedOut at the
        request's timeout, or NotLeader when leadership moved meanwhile (the record may or may not survive:
        the client retries, the idempotent producer without a duplicate)."""
        while local.replica.hw < upto:
            if not local.is_leader(self.config.spu_id) or self.registry.get(local.topic, local.partition) is not local:
                return WireError(ErrorCode.NOT_LEADER_FOR_PARTITION)
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return WireError(ErrorCode.REQUEST_TIMED_OUT)
            changed = local.appended
            try:
                async with asyncio.timeout(remaining):
                    await changed.wait()
            except TimeoutError:
                continue
        return OK

    def _refusal(self, local: LocalReplica | None, committed: bool) -> WireError | None:
        """Why this SPU must not take a write for the partition now (None: it may)."""
        if local is None:
            return WireError(ErrorCode.NOT_LEADER_FOR_PARTITION)
        if local.replicated and (self.control is None or not self.control.lease_valid()):
            # the SC may already have elected another leader: never acknowledge beside it
            _errors.warning("produce:lease", "produce_refused reason=lease_expired replica=%s-%d", local.topic,
                            local.partition)
            return WireError(ErrorCode.NOT_LEADER_FOR_PARTITION)
        if committed and local.leader_state is not None:
            # the smaller of the leader's own view and the set the SC confirmed
            isr = local.leader_state.isr
            confirmed = [r for r in local.assignment.isr if r == self.config.spu_id or r in isr]
            isr = confirmed if len(confirmed) < len(isr) else isr
            need = local.assignment.min_in_sync
            if len(isr) < need:
                return WireError.of(ErrorCode.OTHER, f"{NOT_ENOUGH_REPLICAS_TEXT} for {local.topic}-"
                                    f"{local.partition}: {len(isr)} in sync {isr}, min-in-sync-replicas {need}")
        return None

    def _prepare_append(self, topic: str, p: sp.PartitionProduceData,
                        committed: bool) -> _AppendJob | sp.PartitionProduceResponse:
        """On the loop, no I/O: the answer when the partition takes no write here, else what to append."""
        local = self.registry.leader(topic, p.partition_index)
        refused = self._refusal(local, committed)
        if refused is not None:
            log_start = local.replica.log_start if local is not None else -1
            return sp.PartitionProduceResponse(p.partition_index, refused, -1, -1, log_start)
        assert local is not None
        batches = self._entry_batches(topic, local, p)
        if not isinstance(batches, list):
            return batches
        full = local.replica.refusal()   # FULL or FAILED: answered here, no thread hop, no I/O
        if full is not None:
            return self._append_failed(topic, p.partition_index, local.replica, full)
        return _AppendJob(topic, p.partition_index, local, batches)

    def _entry_batches(self, topic: str, local: LocalReplica,
                       p: sp.PartitionProduceData) -> list[memoryview] | sp.PartitionProduceResponse:
        """An entry's batches, or its answer when it has none or they are refused (framing, compression).
        For a partition already taken in this loop turn, this is the whole check."""
        try:
            batches = b.split_batches(p.records)
            if not batches:
                return sp.PartitionProduceResponse(p.partition_index, OK, 0, -1, local.replica.log_start)
            self._check_compression(local, batches)
        except Exception as e:
            return self._append_failed(topic, p.partition_index, local.replica, e)
        return batches

    def _finish_append(self, job: _AppendJob, outcome: _Outcome, committed: bool,
                       answers: list[list[sp.PartitionProduceResponse | None]]
                       ) -> list[tuple[sp.PartitionProduceResponse, int]]:
        """On the loop again: the answer of each of the job's entries into `answers`. Returns, for a
        ReadCommitted request, the entries written (only those: a refused entry keeps its error) with the
        LEO the HW must reach before they are answered OK."""
        local, replica = job.local, job.local.replica
        if local.replicated and not isinstance(outcome, Exception) and \
                (self.control is None or not self.control.lease_valid()):
            # the lease ran out while the append waited for the disk: written, but never acknowledged here
            # (it is not committed, and a truncation as follower removes it)
            outcome = NotLeaderAnymore()
        per_entry = outcome if isinstance(outcome, list) else [outcome] * len(job.slots)
        written = [r for r in per_entry if isinstance(r, AppendResult)]
        for r in {id(r): r for r in written}.values():
            if r.records:
                metrics.PRODUCED_RECORDS.inc(r.records)
                metrics.PRODUCED_BYTES.inc(r.bytes)
            if r.duplicate_batches:
                metrics.PRODUCE_DUPLICATES.inc(r.duplicate_batches)
        if any(r.records for r in written):
            local.update_hw()
            local.notify_appended()
        failed: dict[int, sp.PartitionProduceResponse] = {}
        pending: list[tuple[sp.PartitionProduceResponse, int]] = []
        first = 0
        for (t, e, count), r in zip(job.slots, per_entry, strict=True):
            if isinstance(r, NotLeaderAnymore):
                answers[t][e] = sp.PartitionProduceResponse(job.partition, WireError(ErrorCode.NOT_LEADER_FOR_PARTITION),
                                                            -1, -1, replica.log_start)
            elif isinstance(r, Exception):
                if id(r) not in failed:           # one log line and one count per error, not per entry
                    failed[id(r)] = self._append_failed(job.topic, job.partition, replica, r)
                answers[t][e] = failed[id(r)]
            else:                                 # the base offset of the entry's first batch
                base = r.bases[first] if r is outcome else r.base_offset
                resp = answers[t][e] = sp.PartitionProduceResponse(job.partition, OK, base, -1, replica.log_start)
                if committed:
                    pending.append((resp, r.leo))
            first += count
        return pending

    @staticmethod
    def _append_failed(topic: str, partition: int, replica: Replica, e: Exception) -> sp.PartitionProduceResponse:
        if isinstance(e, FluvialError):
            _errors.warning(f"produce:{type(e).__name__}:{replica.directory.rsplit('/', 1)[0]}",
                            "produce_rejected replica=%s-%d error=%s", topic, partition, e)
            metrics.PRODUCE_ERRORS.labels(e.code.name).inc()
            return sp.PartitionProduceResponse(partition, WireError.from_exception(e), -1, -1, replica.log_start)
        # a bug must not drop the connection: answer 56 and say so once
        _errors.log(logging.ERROR, f"produce:internal:{type(e).__name__}",
                    "produce_internal_error replica=%s-%d error=%r", topic, partition, e)
        metrics.PRODUCE_ERRORS.labels(ErrorCode.STORAGE_ERROR.name).inc()
        return sp.PartitionProduceResponse(partition, WireError(ErrorCode.STORAGE_ERROR), -1, -1, replica.log_start)

    @staticmethod
    def _check_compression(local: LocalReplica, batches: list[memoryview]) -> None:
        wanted = _required_codec(local.assignment.compression)
        for one in batches:
            if len(one) < b.HEADER_TOTAL_BYTES:
                continue   # validation reports it precisely
            codec = b.compression_of(one)
            if codec > b.MAX_COMPRESSION_CODE or (wanted is not None and codec != wanted):
                raise UnknownCompression(codec)

    # ============================================================================ replica health

    async def _replica_health(self, conn: srv.Connection, h: RequestHeader, body: Reader) -> None:
        req = decode_from(fa.ReplicaHealthRequest, body, fa.FLUVIAL_API_VERSION)
        await conn.send(h.correlation_id, encode(self.replica_health(req), fa.FLUVIAL_API_VERSION))

    def replica_health(self, req: fa.ReplicaHealthRequest) -> fa.ReplicaHealthResponse:
        """The data dir and the asked-for replicas (every replica when none is asked for); a replica asked
        for that this SPU does not hold is left out."""
        stored = self.storage.replicas()
        keys = [(k.topic, k.partition) for k in req.replicas] if req.replicas else sorted(stored)
        replicas = [self._replica_health_entry(t, p, stored[(t, p)]) for t, p in keys if (t, p) in stored]
        return fa.ReplicaHealthResponse(OK, self.config.spu_id, [_data_dir_health(self.storage.guard.snapshot())],
                                        replicas)

    def _replica_health_entry(self, topic: str, partition: int, r: Replica) -> fa.ReplicaHealth:
        local = self.registry.get(topic, partition)
        leader = local is not None and local.is_leader(self.config.spu_id)
        report = i.ReplicaReport(topic, partition, leader, r.hw, r.leo, r.log_start, r.size_bytes(),
                                 i.ReplicaStateCode[r.state.name])
        return fa.ReplicaHealth(report, self.storage.base_dir, r.last_error)

    async def _fetch_offsets(self, conn: srv.Connection, h: RequestHeader, body: Reader) -> None:
        req = decode_from(sp.FetchOffsetsRequest, body, h.api_version)
        topics = []
        for t in req.topics:
            parts = []
            for p in t.partitions:
                local = self.registry.leader(t.name, p.partition_index)
                if local is None:
                    parts.append(sp.FetchOffsetPartitionResponse(WireError(ErrorCode.PARTITION_NOT_LEADER),
                                                                  p.partition_index, 0, 0))
                else:
                    r = local.replica
                    parts.append(sp.FetchOffsetPartitionResponse(OK, p.partition_index, r.log_start, r.hw))
            topics.append(sp.FetchOffsetTopicResponse(t.name, parts))
        await conn.send(h.correlation_id, encode(sp.FetchOffsetsResponse(topics), h.api_version))

    async def _stream_fetch(self, conn: srv.Connection, h: RequestHeader, body: Reader) -> None:
        req = decode_from(sp.StreamFetchRequest, body, h.api_version)
        if not req.smartmodules and req.smartmodule is not None:   # v16-17 carry one module, not a chain
            req.smartmodules = [req.smartmodule]
        if self.registry.leader(req.topic, req.partition) is None:
            await self._stream_error(conn, h, req, 0, WireError(ErrorCode.NOT_LEADER_FOR_PARTITION))
            return
        ids = conn.state.setdefault("stream_ids", itertools.count(1))
        sessions: dict[int, StreamSession] = conn.state.setdefault("streams", {})  # type: ignore[assignment]
        session = StreamSession(next(ids), req.topic, req.partition, req.consumer_id)  # type: ignore[call-overload]
        sessions[session.stream_id] = session

        async def push() -> None:
            try:
                if req.smartmodules:
                    await self.smartstreams.push_loop(conn, h, req, session)
                else:
                    await self._push_loop(conn, h, req, session)
            finally:
                sessions.pop(session.stream_id, None)

        conn.spawn(push())

    async def _push_loop(self, conn: srv.Connection, h: RequestHeader, req: sp.StreamFetchRequest,
                         session: StreamSession) -> None:
        offset = req.fetch_offset
        isolation = (StorageIsolation.READ_COMMITTED if req.isolation is sp.Isolation.READ_COMMITTED
                     else StorageIsolation.READ_UNCOMMITTED)
        max_bytes = min(max(1, req.max_bytes), d.STREAM_FETCH_FRAME_MAX_BYTES)   # a frame the client can take
        while True:
            local = self.registry.leader(req.topic, req.partition)
            if local is None:
                code = ErrorCode.TOPIC_DELETED if self.registry.get(req.topic, req.partition) is None \
                    else ErrorCode.NOT_LEADER_FOR_PARTITION
                await self._stream_error(conn, h, req, session.stream_id, WireError(code))
                return
            appended = local.appended          # taken before reading: no lost wake-up
            try:   # on the loop unless a write holds the replica (a stalled disk): then in a thread
                res = local.replica.read(offset, max_bytes, isolation, wait=False) \
                    or await asyncio.to_thread(local.replica.read, offset, max_bytes, isolation)
            except FluvialError as e:
                await self._stream_error(conn, h, req, session.stream_id, WireError.from_exception(e))
                return
            if res.slice.length == 0:
                await appended.wait()
                continue
            frame = sp.StreamFetchResponse(req.topic, session.stream_id, sp.FetchablePartitionResponse(
                req.partition, OK, res.hw, 0, res.log_start, None, b""))
            head = sp.encode_stream_fetch_header(frame, res.slice.length, h.api_version)
            await conn.send_with_file(h.correlation_id, head, res.slice.fd, res.slice.position, res.slice.length)
            session.acked.clear()
            await session.acked.wait()         # one outstanding frame until UpdateOffsets
            offset = max(session.ack_offset, 0)

    async def _stream_error(self, conn: srv.Connection, h: RequestHeader, req: sp.StreamFetchRequest,
                            stream_id: int, err: WireError) -> None:
        frame = sp.StreamFetchResponse(req.topic, stream_id, sp.FetchablePartitionResponse(
            req.partition, err, -1, 0, -1, None, b""))
        await conn.send(h.correlation_id, encode(frame, h.api_version))

    async def _update_offsets(self, conn: srv.Connection, h: RequestHeader, body: Reader) -> None:
        req = decode_from(sp.UpdateOffsetsRequest, body, h.api_version)
        sessions: dict[int, StreamSession] = conn.state.get("streams", {})  # type: ignore[assignment]
        out = []
        for u in req.offsets:
            session = sessions.get(u.session_id)
            if session is None:
                out.append(sp.OffsetUpdateStatus(u.session_id, WireError(ErrorCode.FETCH_SESSION_NOT_FOUND)))
            else:
                session.ack(u.offset)
                out.append(sp.OffsetUpdateStatus(u.session_id, OK))
        await conn.send(h.correlation_id, encode(sp.UpdateOffsetsResponse(out), h.api_version))


    # ============================================================================ consumer offsets

    async def _update_consumer_offset(self, conn: srv.Connection, h: RequestHeader, body: Reader) -> None:
        req = decode_from(sp.UpdateConsumerOffsetRequest, body, h.api_version)
        sessions: dict[int, StreamSession] = conn.state.get("streams", {})  # type: ignore[assignment]
        session = sessions.get(req.session_id)
        if session is None:
            err = WireError(ErrorCode.FETCH_SESSION_NOT_FOUND)
        elif not session.consumer_id:
            err = WireError.of(ErrorCode.OTHER, "stream without consumer id")
        else:
            err = await self._commit_offset(session.topic, session.partition, session.consumer_id, req.offset)
        await conn.send(h.correlation_id, encode(sp.UpdateConsumerOffsetResponse(req.offset, err), h.api_version))

    async def _commit_offset(self, topic: str, partition: int, consumer_id: str, offset: int) -> WireError:
        """Store locally when this SPU leads consumer-offset-0, else forward to the SPU that does."""
        if self.registry.leader(d.CONSUMER_OFFSET_TOPIC, 0) is not None:
            try:
                self.offsets.update(topic, partition, consumer_id, offset)
            except FluvialError as e:
                return WireError.from_exception(e)
            return OK
        leader = self.registry.leaders.get((d.CONSUMER_OFFSET_TOPIC, 0))
        peer = self.peers.get(leader) if leader is not None else None
        if peer is None:
            return WireError(ErrorCode.PARTITION_NOT_LEADER)
        try:
            conn = await ClientConnection.connect(peer.private_host, peer.private_port, timeout=5)
            try:
                body = encode(i.PeerUpdateConsumerOffsetRequest(topic, partition, consumer_id, offset), 0)
                r = await conn.request(i.PEER_UPDATE_CONSUMER_OFFSET, 0, body, timeout=10)
                return decode_from(i.PeerUpdateConsumerOffsetResponse, r, 0).error_code
            finally:
                await conn.close()
        except FluvialError as e:
            return WireError.of(ErrorCode.OFFSET_FLUSH_REQUEST_ERROR, str(e))

    async def _peer_update_consumer_offset(self, conn: srv.Connection, h: RequestHeader, body: Reader) -> None:
        req = decode_from(i.PeerUpdateConsumerOffsetRequest, body, 0)
        try:
            self.offsets.update(req.topic, req.partition, req.consumer_id, req.offset)
            err = OK
        except NotOffsetLeader:
            err = WireError(ErrorCode.PARTITION_NOT_LEADER)
        except FluvialError as e:
            err = WireError.from_exception(e)
        await conn.send(h.correlation_id, encode(i.PeerUpdateConsumerOffsetResponse(err), 0))

    async def _peer_delete_topic_offsets(self, conn: srv.Connection, h: RequestHeader, body: Reader) -> None:
        """The SC deleted a topic: its stored consumer offsets go too."""
        req = decode_from(i.DeleteTopicOffsetsRequest, body, 0)
        try:
            self.offsets.delete_topic(req.topic)
            err = OK
        except NotOffsetLeader:
            err = WireError(ErrorCode.PARTITION_NOT_LEADER)
        except FluvialError as e:
            err = WireError.from_exception(e)
        await conn.send(h.correlation_id, encode(i.DeleteTopicOffsetsResponse(err), 0))

    async def _delete_consumer_offset(self, conn: srv.Connection, h: RequestHeader, body: Reader) -> None:
        req = decode_from(sp.DeleteConsumerOffsetRequest, body, h.api_version)
        try:
            self.offsets.delete(req.replica_id.topic, req.replica_id.partition, req.consumer_id)
            err = OK
        except NotOffsetLeader:
            err = WireError(ErrorCode.PARTITION_NOT_LEADER)
        except FluvialError as e:
            err = WireError.from_exception(e)
        await conn.send(h.correlation_id, encode(sp.DeleteConsumerOffsetResponse(err), h.api_version))

    async def _fetch_consumer_offsets(self, conn: srv.Connection, h: RequestHeader, body: Reader) -> None:
        req = decode_from(sp.FetchConsumerOffsetsRequest, body, h.api_version)
        f = req.filter_opts
        topic = f.replica_id.topic if f is not None and f.replica_id is not None else None
        partition = f.replica_id.partition if f is not None and f.replica_id is not None else None
        consumer = f.consumer_id if f is not None else None
        try:
            found = self.offsets.fetch(topic, partition, consumer)
            consumers = [sp.ConsumerOffset(s.consumer_id, sp.ReplicaKey(s.topic, s.partition), s.offset,
                                           s.modified_time) for s in found]
            resp = sp.FetchConsumerOffsetsResponse(OK, consumers)
        except NotOffsetLeader:
            resp = sp.FetchConsumerOffsetsResponse(WireError(ErrorCode.PARTITION_NOT_LEADER), [])
        await conn.send(h.correlation_id, encode(resp, h.api_version))


def _data_dir_health(snap: SpaceSnapshot) -> fa.DataDirHealth:
    """Pure: a space guard snapshot as the health API reports it (thresholds per DESIGN.md §5)."""
    r = snap.reserve_bytes
    report = i.DataDirReport(snap.data_dir, i.DirStateCode[snap.state.name], max(0, snap.free_bytes),
                             snap.total_bytes, r)
    return fa.DataDirHealth(report, int(r * d.SPACE_LOW_FACTOR), int(r * d.SPACE_FULL_RELEASE_FACTOR),
                            int(r * d.SPACE_OK_RELEASE_FACTOR))


__all__ = ["SpuConfig", "SpuServer"]

