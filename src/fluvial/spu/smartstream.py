"""SmartModules in the SPU (reference fluvio-smartmodules.md §3, §4): a StreamFetch with `smartmodules`,
and a Produce with `smartmodules`.

Stream: resolve each invocation (Predefined → the SPU's SmartModule store; AdHoc → its gzip), build the
chain and run `look_back` (errors 6001/6002/6005/6007/6008 answer one frame and end the stream), then per
read: stored batches → chain → one output batch (smartengine.batching), sent with `next_filter_offset`;
wait for the consumer's UpdateOffsets and resume from the offset it acknowledges. A record the module
rejects is sent as 6004 with the records before it, and the stream goes on; a trap, a negative status, the
CPU budget or the memory cap sends `Other("SmartModule err …")` and ends this stream only. The chain (and
its aggregate accumulator) lives as long as the stream; a module deleted from the store meanwhile does not
affect it.

Every wasm call runs in this module's own thread pool (SMARTMODULE_WORKERS_MAX at once), never on the
event loop.
"""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import logging
import os
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from fluvial import defaults as d
from fluvial.errors import ErrorCode, FluvialError, SmartModuleError, SmartModuleFailed, SmartModuleNotFound
from fluvial.observability.ratelimit import RateLimitedLog
from fluvial.protocol import batch as b
from fluvial.protocol import spu as sp
from fluvial.protocol.codec import OK, WireError, encode
from fluvial.protocol.records import decode_records
from fluvial.smartengine import abi
from fluvial.smartengine.batching import InputBatch, Step, input_batches, renumber, run_batches
from fluvial.smartengine.engine import Chain, ModuleSpec, SmartEngine, unpack_wasm
from fluvial.spu.replicas import ReplicaRegistry
from fluvial.spu.smartmodules import SmartModuleStore
from fluvial.storage.replica import Isolation as StorageIsolation
from fluvial.storage.replica import Replica

logger = logging.getLogger(__name__)
_events = RateLimitedLog(logger)     # a client repeating a bad request cannot flood the log
T = TypeVar("T")


def initial_accumulator(kind: Any) -> bytes:
    """Aggregate{acc} or Generic(Aggregate{acc}) give acc; any other kind b"" (§3.1)."""
    if isinstance(kind, sp.KindAggregate):
        return kind.accumulator
    if isinstance(kind, sp.KindGeneric) and isinstance(kind.context, sp.ContextAggregate):
        return kind.context.accumulator
    return b""


class SmartStreams:
    def __init__(self, registry: ReplicaRegistry, store: SmartModuleStore, data_dir: str, *,
                 call_budget_seconds: float = d.SMARTMODULE_CALL_BUDGET_SECONDS,
                 memory_max_bytes: int = d.SMARTMODULE_MEMORY_MAX_BYTES,
                 workers: int = d.SMARTMODULE_WORKERS_MAX) -> None:
        self.registry = registry
        self.store = store
        self.cache_dir = os.path.join(data_dir, d.SMARTMODULE_CACHE_DIR)
        self.call_budget_seconds = call_budget_seconds
        self.memory_max_bytes = memory_max_bytes
        self.workers = workers
        self._engine: SmartEngine | None = None
        self._pool: ThreadPoolExecutor | None = None

    @property
    def engine(self) -> SmartEngine:
        """Created at first use: an SPU that never sees a SmartModule runs no ticker thread."""
        if self._engine is None:
            self._engine = SmartEngine(self.cache_dir, call_budget_seconds=self.call_budget_seconds,
                                       memory_max_bytes=self.memory_max_bytes)
        return self._engine

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        if self._pool is None:
            self._pool = ThreadPoolExecutor(self.workers, thread_name_prefix="smartmodule")
        return await asyncio.get_running_loop().run_in_executor(self._pool, fn, *args)

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
        if self._engine is not None:
            self._engine.close()

    # ------------------------------------------------------------------------------------ building

    async def resolve(self, invocations: Sequence[sp.SmartModuleInvocation]) -> list[ModuleSpec]:
        """Invocations → raw wasm + params: 6001 for an unknown name, 6002 for a payload that is not wasm."""
        specs = []
        for inv in invocations:
            if isinstance(inv.wasm, sp.WasmPredefined):
                name = inv.wasm.name
                payload = await self.store.lookup(name)
                if payload is None:
                    raise SmartModuleNotFound(name)
            else:
                name, payload = "adhoc", inv.wasm.payload
            wasm = unpack_wasm(payload, name if isinstance(inv.wasm, sp.WasmPredefined) else None)
            params = abi.Params(dict(inv.params.inner), inv.params.lookback)
            specs.append(ModuleSpec(wasm, params, initial_accumulator(inv.kind), name))
        return specs

    async def build(self, invocations: Sequence[sp.SmartModuleInvocation], version: int,
                    replica: Replica | None) -> Chain:
        specs = await self.resolve(invocations)
        return await self.run(_build_and_look_back, self.engine, specs, version, replica)

    # -------------------------------------------------------------------------------------- stream

    async def push_loop(self, conn: Any, h: Any, req: sp.StreamFetchRequest, session: Any) -> None:
        """The SmartModule StreamFetch: the counterpart of SpuServer._push_loop."""
        local = self.registry.leader(req.topic, req.partition)
        try:
            chain = await self.build(req.smartmodules, h.api_version, local.replica if local else None)
        except SmartModuleError as e:
            _events.info(f"smartmodule:refused:{type(e).__name__}", "smartmodule_stream_refused topic=%s "
                         "partition=%d error=%s", req.topic, req.partition, str(e).splitlines()[0])
            await _send_error(conn, h, req, session.stream_id, WireError.from_exception(e))
            return
        try:
            await self._stream(conn, h, req, session, chain)
        finally:
            chain.close()

    async def _stream(self, conn: Any, h: Any, req: sp.StreamFetchRequest, session: Any, chain: Chain) -> None:
        offset = req.fetch_offset
        isolation = (StorageIsolation.READ_COMMITTED if req.isolation is sp.Isolation.READ_COMMITTED
                     else StorageIsolation.READ_UNCOMMITTED)
        max_bytes = min(max(1, req.max_bytes), d.STREAM_FETCH_FRAME_MAX_BYTES)
        carry = None
        while True:
            local = self.registry.leader(req.topic, req.partition)
            if local is None:
                code = ErrorCode.TOPIC_DELETED if self.registry.get(req.topic, req.partition) is None \
                    else ErrorCode.NOT_LEADER_FOR_PARTITION
                await _send_error(conn, h, req, session.stream_id, WireError(code))
                return
            appended = local.appended          # taken before reading: no lost wake-up
            replica = local.replica
            read_bytes = d.SMARTMODULE_STREAM_READ_MAX_BYTES
            try:
                res = replica.read(offset, read_bytes, isolation, wait=False) \
                    or await asyncio.to_thread(replica.read, offset, read_bytes, isolation)
                if res.slice.length == 0:
                    await appended.wait()
                    continue
                step = await self.run(_step, chain, res.slice, offset, max_bytes, carry)
            except FluvialError as e:        # SmartModuleFailed, or a storage error
                if isinstance(e, SmartModuleFailed):
                    _events.info("smartmodule:failed", "smartmodule_stream_failed topic=%s partition=%d stream=%d "
                                 "error=%s", req.topic, req.partition, session.stream_id, e.message)
                await _send_error(conn, h, req, session.stream_id, WireError.from_exception(e))
                return
            carry = step.carry
            if step.batch is None and step.error is None:
                offset = step.consumed           # nothing for the consumer here: read on, no ack to wait for
                continue
            if step.batch is not None and len(step.batch) > d.STREAM_FETCH_FRAME_MAX_BYTES:
                err = SmartModuleFailed(f"output of {len(step.batch)} bytes for one stored batch exceeds the "
                                        f"frame limit of {d.STREAM_FETCH_FRAME_MAX_BYTES} bytes")
                await _send_error(conn, h, req, session.stream_id, WireError.from_exception(err))
                return
            error = OK if step.error is None else WireError.of(
                ErrorCode.SMART_MODULE_RUNTIME_ERROR, step.error.hint, step.error.offset, step.error.kind,
                step.error.record_key, step.error.record_value)
            frame = sp.StreamFetchResponse(req.topic, session.stream_id, sp.FetchablePartitionResponse(
                req.partition, error, res.hw, step.next_offset, res.log_start, None, step.batch or b""))
            session.acked.clear()
            await conn.send(h.correlation_id, encode(frame, h.api_version))
            await session.acked.wait()         # one outstanding frame until UpdateOffsets
            offset = max(session.ack_offset, 0)
            if step.failure is not None:       # the module failed after these records: now the failure
                await _send_error(conn, h, req, session.stream_id, WireError.from_exception(step.failure))
                return

    # ------------------------------------------------------------------------------------- produce

    async def transform_produce(self, topic: str, p: sp.PartitionProduceData,
                                invocations: Sequence[sp.SmartModuleInvocation],
                                version: int) -> tuple[sp.PartitionProduceData, sp.PartitionProduceResponse | None]:
        """Produce-side SmartModules (§4), before the write: the partition's records replaced by the chain's
        output (one batch), or an answer instead of the write — the module error (6004, nothing written),
        a build error, or OK with nothing written when everything was filtered out. A partition this SPU
        does not lead is left as it is (the write path refuses it)."""
        local = self.registry.leader(topic, p.partition_index)
        if local is None or not p.records:
            return p, None
        log_start = local.replica.log_start
        try:
            chain = await self.build(invocations, version, local.replica)
            try:
                step = await self.run(_produce_step, chain, bytes(p.records))
            finally:
                chain.close()
        except FluvialError as e:
            _events.info(f"smartmodule:produce:{type(e).__name__}", "smartmodule_produce_refused topic=%s "
                         "partition=%d error=%s", topic, p.partition_index, str(e).splitlines()[0])
            return p, sp.PartitionProduceResponse(p.partition_index, WireError.from_exception(e), -1, -1, log_start)
        if step.error is not None:
            err = step.error
            wire = WireError.of(ErrorCode.SMART_MODULE_RUNTIME_ERROR, err.hint, err.offset, err.kind, err.record_key,
                                err.record_value)
            return p, sp.PartitionProduceResponse(p.partition_index, wire, -1, -1, log_start)
        if step.batch is None:                  # Fluvio's PartitionWriteResult::filtered
            return p, sp.PartitionProduceResponse(p.partition_index, OK, 0, -1, log_start)
        return sp.PartitionProduceData(p.partition_index, step.batch), None


# ------------------------------------------------------------------------- in the worker threads


def _build_and_look_back(engine: SmartEngine, specs: list[ModuleSpec], version: int,
                         replica: Replica | None) -> Chain:
    chain = engine.build_chain(specs, version)
    try:
        if chain.look_backs():
            chain.look_back(lambda lb: read_look_back(replica, lb) if replica is not None else abi.encode_records([]))
    except BaseException:
        chain.close()
        raise
    return chain


def _step(chain: Chain, file_slice: Any, offset: int, max_bytes: int, carry: Any) -> Step:
    batches = input_batches(file_slice.read(), offset)
    return run_batches(batches, lambda one: _process(chain, one), max_bytes, carry)


def _process(chain: Chain, one: InputBatch) -> abi.ModuleOutput:
    return chain.process(one.raw, one.base_offset, one.first_timestamp)


def _produce_step(chain: Chain, records: bytes) -> Step:
    """All the request's batches through the chain, as one output batch numbered from 0 (the write
    assigns the offsets): its last_offset_delta is its record count - 1, unlike a stream's."""
    step = run_batches(input_batches(records, -1), lambda one: _process(chain, one), 2**62)
    if step.batch is None:
        return step
    return dataclasses.replace(step, batch=renumber(step.batch, 0, step.records - 1))


def read_look_back(replica: Replica, lookback: sp.Lookback) -> bytes:
    """The look-back records (§2.8), committed only, newest SMARTMODULE_LOOKBACK_MAX_BYTES at most, as a
    records section with absolute offset_delta and timestamp_delta (the module's base is 0):
    Last(n) = the last n below the HW; Age = those not older than `age` (among the last n when n > 0)."""
    hw, log_start = replica.hw, replica.log_start
    min_ts = None if lookback.age is None else int(time.time() * 1000 - lookback.age * 1000)
    picked: collections.deque[tuple[int, int, bytes | None, bytes]] = collections.deque()
    size = 0
    if min_ts is None or lookback.last > 0:
        start = min(max(hw - lookback.last, log_start), hw)
        pos = start
        while pos < hw:
            res = replica.read(pos, d.SMARTMODULE_STREAM_READ_MAX_BYTES, StorageIsolation.READ_COMMITTED)
            if res.slice.length == 0:
                break
            for rec in decode_records_all(res.slice.read()):
                if start <= rec.offset < hw and (min_ts is None or rec.timestamp >= min_ts):
                    picked.append((rec.offset, rec.timestamp, rec.key, rec.value))
                    size += len(rec.value) + len(rec.key or b"")
                pos = max(pos, rec.offset + 1)
            while size > d.SMARTMODULE_LOOKBACK_MAX_BYTES and picked:
                old = picked.popleft()
                size -= len(old[3]) + len(old[2] or b"")
    else:
        pos = hw - 1
        while pos >= log_start and size <= d.SMARTMODULE_LOOKBACK_MAX_BYTES:
            res = replica.read(pos, 1, StorageIsolation.READ_COMMITTED)
            if res.slice.length == 0:
                break
            data = res.slice.read()
            first = b.split_batches(data)[0]
            h = b.decode_header(first)
            if h.max_timestamp < min_ts:
                break
            for rec in reversed(decode_records(first)):
                if rec.timestamp >= min_ts and rec.offset < hw:
                    picked.appendleft((rec.offset, rec.timestamp, rec.key, rec.value))
                    size += len(rec.value) + len(rec.key or b"")
            pos = h.base_offset - 1
    return abi.encode_records([abi.SmRecord(v, k, off, max(ts, 0)) for off, ts, k, v in picked])


def decode_records_all(data: bytes) -> list[Any]:
    out = []
    for one in b.split_batches(data):
        out.extend(decode_records(one))
    return out


async def _send_error(conn: Any, h: Any, req: sp.StreamFetchRequest, stream_id: int, err: WireError) -> None:
    """One frame with the error and nothing else (Fluvio's send_back_error); the stream ends."""
    frame = sp.StreamFetchResponse(req.topic, stream_id, sp.FetchablePartitionResponse(
        req.partition, err, -1, 0, -1, None, b""))
    await conn.send(h.correlation_id, encode(frame, h.api_version))
