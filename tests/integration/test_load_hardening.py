"""Hardening under load (issue #12), against real processes: what a user or an operator notices —
leaked watchers in the SC's metrics, a server that stays online, log lines counted in its output."""

from __future__ import annotations

import asyncio
import gc
import socket
from pathlib import Path

import pytest

from fluvial import defaults as d
from fluvial.client.admin import TopicConfig
from fluvial.client.connect import Fluvial
from fluvial.client.consumer import Offset
from fluvial.client.producer import ProducerConfig
from fluvial.errors import ErrorCode, RecordTooLarge
from fluvial.protocol import sc as scp
from fluvial.protocol.frame import RequestHeader, encode_request

from .procs import Sc, Spu, running, wait_until

WATCH_CONNECTIONS = 2000


def _watch_frame(label: str) -> bytes:
    body = scp.encode_typed(label, scp.WatchRequest(0, False), d.SC_OBJECT_VERSION)
    return encode_request(RequestHeader(scp.ScApiKey.WATCH, d.SC_OBJECT_VERSION, 1, "watch-test"), body)


def _watchers(sc: Sc) -> float:
    return sum(sc.metric("fluvial_sc_watchers", registry=label) for label in ("Topic", "Partition", "SPU"))


def test_watch_requests_closed_at_once_leave_no_watcher(tmp_path: Path) -> None:
    sc = Sc(tmp_path)
    frames = [_watch_frame(label) for label in ("Topic", "Partition", "SPU")]
    with running(sc):
        held = socket.create_connection(("127.0.0.1", sc.port))      # one stream that stays open: counted
        held.sendall(frames[0])
        wait_until(lambda: _watchers(sc) == 1, "the open Watch stream counted")
        for n in range(WATCH_CONNECTIONS):
            with socket.create_connection(("127.0.0.1", sc.port)) as s:
                s.sendall(frames[n % 3])        # request and FIN together: the stream task may never start
        for n in range(100):                    # and some that read their full sync first
            with socket.create_connection(("127.0.0.1", sc.port)) as s:
                s.sendall(frames[n % 3])
                assert s.recv(4)
        held.close()
        wait_until(lambda: _watchers(sc) == 0, "every watcher unregistered")
        with socket.create_connection(("127.0.0.1", sc.port)) as s:   # the SC still serves Watch
            s.sendall(frames[2])
            assert s.recv(4)


# ------------------------------------------------------------------------------ client close never hangs

STREAMS = 1000
CLOSE_GUARD_SECONDS = 30.0       # a hang guard, far above any close's own timeout


def test_streams_closed_right_after_creation_never_hang(tmp_path: Path) -> None:
    sc = Sc(tmp_path)
    spu = Spu(tmp_path, sc)

    async def main() -> list[dict[str, object]]:
        unhandled: list[dict[str, object]] = []
        asyncio.get_running_loop().set_exception_handler(lambda _loop, ctx: unhandled.append(ctx))
        client = await Fluvial.connect(sc.addr)
        async with await client.admin() as admin:
            await admin.create_topic("close-many", TopicConfig(partitions=2))
        async with await client.topic_producer("close-many") as producer:
            await (await producer.send(None, "one"))
        consumer = await client.consumer("close-many")
        for n in range(STREAMS):
            s = await consumer.stream(Offset.end() if n % 2 else Offset.beginning())
            for _ in range(n % 4):             # closed right away, or after 1-3 loop iterations
                await asyncio.sleep(0)
            async with asyncio.timeout(CLOSE_GUARD_SECONDS):
                await s.close()
        producer = await client.topic_producer("close-many")
        await producer.send(None, "two")
        async with asyncio.timeout(CLOSE_GUARD_SECONDS):
            await producer.close()
            await client.close()
        gc.collect()
        await asyncio.sleep(0)
        return unhandled

    with running(sc, spu):
        assert asyncio.run(main()) == []


# ------------------------------------------------------------------------- records over the size limits


def test_a_record_over_the_limits_is_refused_at_once_and_the_connection_keeps_serving(tmp_path: Path) -> None:
    sc = Sc(tmp_path)
    spu = Spu(tmp_path, sc)

    async def main() -> None:
        client = await Fluvial.connect(sc.addr)
        try:
            async with await client.admin() as admin:
                await admin.create_topic("big", TopicConfig(partitions=1))
            consumer = await client.consumer("big")
            stream = await consumer.stream(Offset.beginning())
            producer = await client.topic_producer("big")
            await (await producer.send(None, "before"))
            conn = client.spus._conns[spu.spu_id]
            for size in (65 * d.MIB, 40 * d.MIB, d.BATCH_MAX_BYTES):
                with pytest.raises(RecordTooLarge) as e:
                    await producer.send(None, b"x" * size)        # refused by send() itself, before any I/O
                assert e.value.code is ErrorCode.MESSAGE_TOO_LARGE and not e.value.retry.retriable
                assert str(size) in str(e.value) and str(e.value.limit) in str(e.value)
            with pytest.raises(RecordTooLarge):
                await producer.send_all([b"small", b"y" * (65 * d.MIB)])
            await (await producer.send(None, "after"))
            fits = await producer.send(None, b"z" * (8 * d.MIB))   # a large record that fits still goes
            await fits
            assert client.spus._conns[spu.spu_id] is conn and not conn.closed
            got = []
            async with asyncio.timeout(CLOSE_GUARD_SECONDS):
                async for r in stream:
                    got.append(r.value[:6])
                    if len(got) == 3:
                        break
            assert got == [b"before", b"after", b"z" * 6]
            await stream.close()
            await producer.close()
            small = await client.topic_producer("big", ProducerConfig(max_batch_bytes=4096))
            out = await small.send_all([b"%04d" % i + b"v" * 996 for i in range(40)])
            assert [m.offset for m in await out] == list(range(3, 43))     # batches cut to fit the limit
            with pytest.raises(RecordTooLarge):
                await small.send(None, b"w" * 4096)
            await small.close()
        finally:
            await client.close()

    with running(sc, spu):
        asyncio.run(main())
