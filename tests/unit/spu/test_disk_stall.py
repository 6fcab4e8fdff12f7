"""A disk that stalls for 10 s must not stop an SPU's heartbeats (issue #9 item 5): appends run off the
event loop for every flush policy (old code: only fsync-every-batch did, so with the default `os`
policy one stalled write froze the loop and the SC marked the SPU offline after 2 s of silence).

The SC runs in this thread's event loop, the SPU in a thread with its own loop (so that a blocked SPU
loop cannot also block the SC); the disk stall comes from the fault-injectable file layer."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

from fluvial import defaults as d
from fluvial.client.admin import Admin, TopicConfig
from fluvial.errors import ErrorCode
from fluvial.protocol import metadata as md
from fluvial.protocol import spu as sp
from fluvial.protocol.codec import decode_from, encode
from fluvial.protocol.records import build_batch
from fluvial.sc.server import ScConfig, ScServer
from fluvial.spu.server import SpuConfig, SpuServer
from fluvial.storage import FaultyFileIO
from fluvial.transport.client import ClientConnection

STALL_SECONDS = 10.0
V = 24


class SpuThread:
    def __init__(self, config: SpuConfig) -> None:
        self.config = config
        self.server: SpuServer | None = None
        self.started = threading.Event()
        self._stop: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self.thread = threading.Thread(target=lambda: asyncio.run(self._main()), daemon=True)

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        self.server = SpuServer(self.config)
        await self.server.start()
        self.started.set()
        await self._stop.wait()
        await self.server.stop()

    def start(self) -> SpuServer:
        self.thread.start()
        assert self.started.wait(30)
        assert self.server is not None
        return self.server

    def stop(self) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self.thread.join(timeout=60)


def produce_body(value: bytes) -> bytes:
    req = sp.ProduceRequest(None, sp.Isolation.READ_UNCOMMITTED, 60_000,
                            [sp.TopicProduceData("t", [sp.PartitionProduceData(0, build_batch([(None, value)]))])])
    return encode(req, V)


def test_spu_keeps_heartbeating_while_its_disk_stalls(tmp_path: Path) -> None:
    io = FaultyFileIO()

    async def main() -> tuple[list[bool], int, ErrorCode]:
        sc = ScServer(ScConfig(str(tmp_path / "sc"), public_port=0, private_port=0))
        await sc.start()
        spu_thread = SpuThread(SpuConfig(5001, str(tmp_path / "spu"), public_port=0, private_port=0,
                                         sc_port=sc.private_port, io=io))
        spu = spu_thread.start()
        try:
            admin = await Admin.connect("127.0.0.1", sc.public_port)
            try:
                await admin.create_topic("t", TopicConfig(partitions=1, replication=1))
            finally:
                await admin.close()
            conn = await ClientConnection.connect("127.0.0.1", spu.public_port, timeout=10)
            try:
                r = await conn.request(sp.SpuApiKey.PRODUCE, V, produce_body(b"before"), timeout=30)
                assert decode_from(sp.ProduceResponse, r, V).responses[0].partitions[0].error_code.ok
                io.plan.write_delay_seconds = STALL_SECONDS           # every write now hangs 10 s
                stalled = asyncio.ensure_future(
                    conn.request(sp.SpuApiKey.PRODUCE, V, produce_body(b"stalled"), timeout=4 * STALL_SECONDS))
                await asyncio.sleep(0.5)
                assert not stalled.done()
                io.plan.write_delay_seconds = 0.0                     # later writes are fast; this one hangs
                beats_before = spu.control.heartbeats_sent if spu.control else 0
                online: list[bool] = []
                while not stalled.done():
                    online.append(any(m.spec.id == 5001 and m.status.resolution is md.SpuResolution.ONLINE
                                      for m in sc.spus.values()))
                    await asyncio.sleep(0.25)
                beats = (spu.control.heartbeats_sent if spu.control else 0) - beats_before
                resp = decode_from(sp.ProduceResponse, await stalled, V)
                return online, beats, resp.responses[0].partitions[0].error_code.code
            finally:
                await conn.close()
        finally:
            spu_thread.stop()
            await sc.stop()

    online, beats, code = asyncio.run(main())
    assert code == ErrorCode.NONE                                     # the stalled write completed
    assert len(online) >= 20 and all(online), online                   # never offline while stalled
    assert beats >= (STALL_SECONDS - 1) / d.HEARTBEAT_INTERVAL_SECONDS / 2, beats


def test_failed_roll_answers_56_on_the_same_connection(tmp_path: Path) -> None:
    """fsync-every-batch, a directory fsync that fails during a roll: every produce from then on is
    answered StorageError (56) on the same connection. Old code: the second one hit an `assert` in the
    replica and the SPU dropped the connection with a traceback."""
    import errno

    from fluvial.protocol import internal as i
    from fluvial.storage import FaultPlan

    io = FaultyFileIO()

    async def main() -> list[ErrorCode]:
        spu = SpuServer(SpuConfig(5001, str(tmp_path), public_port=0, private_port=0, sc_port=1, io=io,
                                  flush="fsync-every-batch"))
        await spu.start()
        spu.registry.apply([i.ReplicaAssignment("t", 0, 5001, [5001], segment_size=4096)], full=True)
        conn = await ClientConnection.connect("127.0.0.1", spu.public_port, timeout=10)
        codes = []
        try:
            replica = spu.registry.get("t", 0).replica       # type: ignore[union-attr]
            while replica.segment_count() == 1:               # fill the first segment up to the roll
                r = await conn.request(sp.SpuApiKey.PRODUCE, V, produce_body(b"." * 900), timeout=30)
                assert decode_from(sp.ProduceResponse, r, V).responses[0].partitions[0].error_code.ok
            while replica._active.size + 1000 <= 4096:
                r = await conn.request(sp.SpuApiKey.PRODUCE, V, produce_body(b"." * 900), timeout=30)
                assert decode_from(sp.ProduceResponse, r, V).responses[0].partitions[0].error_code.ok
            io.plan = FaultPlan(fail_fsync_dir=errno.EIO)
            for _ in range(3):
                r = await conn.request(sp.SpuApiKey.PRODUCE, V, produce_body(b"." * 900), timeout=30)
                codes.append(decode_from(sp.ProduceResponse, r, V).responses[0].partitions[0].error_code.code)
            assert not conn.closed
        finally:
            await conn.close()
            await spu.stop()
        return codes

    assert asyncio.run(main()) == [ErrorCode.STORAGE_ERROR] * 3
