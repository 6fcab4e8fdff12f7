"""A ReadCommitted produce whose entries of one partition only partly fit the leader's headroom: the entries
written are answered OK once the follower has them, the refused ones keep their 72 — never turned into
OK by the wait for the HW (found by `test_full_disk_failover` in CI: a refused batch acknowledged, the next
request then an OutOfOrderSequence gap). An in-process SC and two SPUs on real sockets; the leader's data
dir reports little free space through the fault-injectable file layer."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from fluvial.client.admin import Admin, TopicConfig
from fluvial.errors import AdminError, ErrorCode
from fluvial.protocol import spu as sp
from fluvial.protocol.codec import decode_from, encode
from fluvial.protocol.records import build_batch
from fluvial.sc.server import ScConfig, ScServer
from fluvial.spu.server import SpuConfig, SpuServer
from fluvial.storage import FaultPlan, FaultyFileIO
from fluvial.storage.fileio import FsUsage
from fluvial.transport.client import ClientConnection

KIB = 1024


@pytest.mark.asyncio
async def test_refused_entries_keep_their_error_while_the_written_ones_wait_for_the_follower(tmp_path: Path) -> None:
    sc = ScServer(ScConfig(str(tmp_path / "sc"), public_port=0, private_port=0))
    await sc.start()
    small = FaultyFileIO(FaultPlan(usage=FsUsage(100 * 1024 * KIB, 64 * KIB + 350 * KIB)))
    leader = SpuServer(SpuConfig(5001, str(tmp_path / "a"), public_port=0, private_port=0, sc_port=sc.private_port,
                                 reserve_bytes=64 * KIB, io=small))
    follower = SpuServer(SpuConfig(5002, str(tmp_path / "b"), public_port=0, private_port=0, sc_port=sc.private_port))
    await leader.start()
    await follower.start()
    conn = None
    try:
        async with asyncio.timeout(60):
            admin = await Admin.connect("127.0.0.1", sc.public_port)
            try:
                while True:                          # once both SPUs have registered
                    try:
                        await admin.create_topic("c", TopicConfig(partitions=1, replication=2,
                                                                  replica_assignment=((0, (5001, 5002)),)))
                        break
                    except AdminError:
                        await asyncio.sleep(0.1)
                while True:
                    details = (await admin.partition_details("c"))[0]
                    if details.leader == 5001 and all(r.in_sync for r in details.replicas) \
                            and leader.control is not None and leader.control.lease_valid():
                        break
                    await asyncio.sleep(0.1)
            finally:
                await admin.close()
            conn = await ClientConnection.connect("127.0.0.1", leader.public_port)
            big = [build_batch([(None, bytes([k]) * (100 * KIB - 100))], timestamp_ms=1) for k in range(5)]
            req = sp.ProduceRequest(None, sp.Isolation.READ_COMMITTED, 20_000,
                                    [sp.TopicProduceData("c", [sp.PartitionProduceData(0, one) for one in big])])
            r = await conn.request(sp.SpuApiKey.PRODUCE, 24, encode(req, 24), timeout=30)
            out = decode_from(sp.ProduceResponse, r, 24).responses[0].partitions
            assert [(e.error_code.ok, e.base_offset) for e in out[:3]] == [(True, 0), (True, 1), (True, 2)]
            assert [e.error_code.code for e in out[3:]] == [ErrorCode.PARTITION_FULL] * 2
            assert leader.registry.get("c", 0).replica.hw == 3          # type: ignore[union-attr]
    finally:
        if conn is not None:
            await conn.close()
        await follower.stop()
        await leader.stop()
        await sc.stop()
