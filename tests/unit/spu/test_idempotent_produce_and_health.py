"""An in-process SPU on real sockets: an idempotent producer's retried batch gets the original base offset
in the produce response (and is stored once); ReplicaHealth reports the data dir and the replicas."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio
from prometheus_client import REGISTRY

from fluvial.errors import ErrorCode
from fluvial.protocol import fluvial_api as fa
from fluvial.protocol import internal as i
from fluvial.protocol import spu as sp
from fluvial.protocol.codec import decode_from, encode
from fluvial.protocol.records import build_batch
from fluvial.spu.server import SpuConfig, SpuServer
from fluvial.transport.client import ClientConnection

SPU_ID = 5001
V = 24


async def _spu(tmp_path: Path, reserve_bytes: int | None = None) -> SpuServer:
    cfg = SpuConfig(SPU_ID, str(tmp_path), public_port=0, private_port=0, sc_port=1, reserve_bytes=reserve_bytes)
    server = SpuServer(cfg)
    await server.start()
    server.registry.apply([i.ReplicaAssignment("t", p, SPU_ID, [SPU_ID]) for p in (0, 1)], full=True)
    return server


@pytest_asyncio.fixture
async def spu(tmp_path: Path) -> AsyncIterator[SpuServer]:
    server = await _spu(tmp_path)
    yield server
    await server.stop()


async def _produce(conn: ClientConnection, *batches: bytes, partition: int = 0) -> sp.PartitionProduceResponse:
    req = sp.ProduceRequest(None, sp.Isolation.READ_UNCOMMITTED, 5000,
                            [sp.TopicProduceData("t", [sp.PartitionProduceData(partition, b"".join(batches))])])
    r = await conn.request(sp.SpuApiKey.PRODUCE, V, encode(req, V), timeout=5)
    return decode_from(sp.ProduceResponse, r, V).responses[0].partitions[0]


async def _health(conn: ClientConnection, *keys: tuple[str, int]) -> fa.ReplicaHealthResponse:
    req = fa.ReplicaHealthRequest([sp.ReplicaKey(t, p) for t, p in keys])
    r = await conn.request(fa.REPLICA_HEALTH, fa.FLUVIAL_API_VERSION, encode(req, fa.FLUVIAL_API_VERSION), timeout=5)
    return decode_from(fa.ReplicaHealthResponse, r, fa.FLUVIAL_API_VERSION)


def _batch(first: int, *, pid: int = 9, epoch: int = 0, count: int = 2) -> bytes:
    return build_batch([(None, b"v%d" % k) for k in range(count)], timestamp_ms=1_700_000_000_000, producer_id=pid,
                       producer_epoch=epoch, first_sequence=first)


def _duplicates() -> float:
    return REGISTRY.get_sample_value("fluvial_produce_duplicate_batches_total") or 0.0


@pytest.mark.asyncio
async def test_retry_gets_the_original_base_offset(spu: SpuServer) -> None:
    conn = await ClientConnection.connect("127.0.0.1", spu.public_port)
    try:
        assert (await _produce(conn, build_batch([(None, b"plain")]))).base_offset == 0
        first = await _produce(conn, _batch(0))
        assert first.error_code.ok and first.base_offset == 1
        before = _duplicates()
        retry = await _produce(conn, _batch(0))
        assert retry.error_code.ok and retry.base_offset == 1
        assert _duplicates() == before + 1
        assert (await _produce(conn, _batch(2))).base_offset == 3
        gap = await _produce(conn, _batch(9))
        assert gap.error_code.code is ErrorCode.OTHER and gap.base_offset == -1
        assert gap.error_code.payload[0].startswith("OutOfOrderSequence:")
        fenced = await _produce(conn, _batch(4, epoch=-1))
        assert fenced.error_code.payload[0].startswith("ProducerFenced:")
        assert spu.registry.get("t", 0).replica.leo == 5          # type: ignore[union-attr]
    finally:
        await conn.close()


@pytest.mark.asyncio
async def test_health_reports_dir_and_replicas(spu: SpuServer) -> None:
    conn = await ClientConnection.connect("127.0.0.1", spu.public_port)
    try:
        await _produce(conn, _batch(0, count=3), partition=1)
        everything = await _health(conn)
        one = await _health(conn, ("t", 1), ("missing", 0))
    finally:
        await conn.close()
    assert everything.error_code.ok and everything.spu_id == SPU_ID
    (dd,) = everything.data_dirs
    guard = spu.storage.guard
    assert dd.report.path == spu.storage.base_dir and dd.report.state is i.DirStateCode.OK
    assert dd.report.reserve_bytes == guard.reserve_bytes and dd.report.total_bytes == guard.total_bytes > 0
    assert dd.low_bytes == 2 * guard.reserve_bytes and dd.ok_release_bytes == int(2.5 * guard.reserve_bytes)
    assert [(x.report.topic, x.report.partition) for x in everything.replicas] == [("t", 0), ("t", 1)]
    (r1,) = one.replicas
    assert (r1.report.hw, r1.report.leo, r1.report.is_leader, r1.report.state) == (3, 3, True, i.ReplicaStateCode.OK)
    assert r1.data_dir == spu.storage.base_dir and r1.last_error is None


@pytest.mark.asyncio
async def test_health_of_a_full_data_dir(tmp_path: Path) -> None:
    spu = await _spu(tmp_path, reserve_bytes=1 << 60)       # a reserve no disk has: FULL from the start
    conn = await ClientConnection.connect("127.0.0.1", spu.public_port)
    try:
        rejected = await _produce(conn, _batch(0))
        assert rejected.error_code.code is ErrorCode.PARTITION_FULL
        health = await _health(conn, ("t", 0))
    finally:
        await conn.close()
        await spu.stop()
    assert health.data_dirs[0].report.state is i.DirStateCode.FULL
    assert health.data_dirs[0].report.reserve_bytes == 1 << 60
    (r,) = health.replicas
    assert r.report.state is i.ReplicaStateCode.FULL
    assert r.last_error is not None and "full" in r.last_error


async def _produce_entries(conn: ClientConnection, entries: list[tuple[int, bytes]]) -> list[sp.PartitionProduceResponse]:
    """One request with an entry per (partition, batches), in order: fluvial's client sends one per batch."""
    req = sp.ProduceRequest(None, sp.Isolation.READ_UNCOMMITTED, 5000,
                            [sp.TopicProduceData("t", [sp.PartitionProduceData(p, raw) for p, raw in entries])])
    r = await conn.request(sp.SpuApiKey.PRODUCE, V, encode(req, V), timeout=5)
    return decode_from(sp.ProduceResponse, r, V).responses[0].partitions


@pytest.mark.asyncio
async def test_entries_of_one_partition_are_one_run_with_each_entrys_base_offset(spu: SpuServer) -> None:
    """Back-to-back entries of a partition are appended as one run: each entry's answer is the base offset of
    its own first batch (a retried request with new batches behind the old: the old ones' first offsets);
    an entry of another partition between them is answered for what it is, and an invalid batch fails its
    own entry and the ones after it (order), not the ones before."""
    conn = await ClientConnection.connect("127.0.0.1", spu.public_port)
    try:
        out = await _produce_entries(conn, [(0, _batch(0)), (0, _batch(2, count=3) + _batch(5)), (1, _batch(0, pid=7)),
                                            (0, _batch(7))])
        assert [(r.partition_index, r.error_code.ok, r.base_offset) for r in out] == [
            (0, True, 0), (0, True, 2), (1, True, 0), (0, True, 7)]
        before = _duplicates()
        retry = await _produce_entries(conn, [(0, _batch(2, count=3)), (0, _batch(5)), (0, _batch(7)), (0, _batch(9))])
        assert [(r.error_code.ok, r.base_offset) for r in retry] == [(True, 2), (True, 5), (True, 7), (True, 9)]
        assert _duplicates() == before + 3
        corrupt = bytearray(_batch(11))
        corrupt[-1] ^= 0xFF                                   # its CRC no longer matches
        bad = await _produce_entries(conn, [(0, _batch(11)), (0, bytes(corrupt)), (0, _batch(13))])
        assert [(r.error_code.ok, r.base_offset) for r in bad] == [(True, 11), (False, -1), (False, -1)]
        assert spu.registry.get("t", 0).replica.leo == 13        # type: ignore[union-attr]
        again = await _produce_entries(conn, [(0, _batch(11)), (0, _batch(13))])   # the client's retry
        assert [(r.error_code.ok, r.base_offset) for r in again] == [(True, 11), (True, 13)]
    finally:
        await conn.close()


@pytest.mark.asyncio
async def test_entries_that_do_not_fit_together_go_in_as_far_as_they_fit(tmp_path: Path) -> None:
    """Near the reserve, a request's entries of one partition that do not fit the headroom together are
    appended one by one as far as they fit (each all or none); after the first refused, none (order)."""
    from fluvial.storage import FaultPlan, FaultyFileIO
    from fluvial.storage.fileio import FsUsage

    kib = 1024
    io = FaultyFileIO(FaultPlan(usage=FsUsage(100 * 1024 * kib, 64 * kib + 350 * kib)))
    cfg = SpuConfig(SPU_ID, str(tmp_path), public_port=0, private_port=0, sc_port=1, reserve_bytes=64 * kib, io=io)
    server = SpuServer(cfg)
    await server.start()
    server.registry.apply([i.ReplicaAssignment("t", 0, SPU_ID, [SPU_ID])], full=True)
    conn = await ClientConnection.connect("127.0.0.1", server.public_port)
    try:
        big = [build_batch([(None, bytes([k]) * (100 * kib - 100))], timestamp_ms=1) for k in range(5)]
        out = await _produce_entries(conn, [(0, one) for one in big])
        assert [(r.error_code.ok, r.base_offset) for r in out[:3]] == [(True, 0), (True, 1), (True, 2)]
        assert [r.error_code.code for r in out[3:]] == [ErrorCode.PARTITION_FULL] * 2
        assert server.registry.get("t", 0).replica.leo == 3       # type: ignore[union-attr]
    finally:
        await conn.close()
        await server.stop()
