"""Hardening under load (issue #12), against real processes: what a user or an operator notices —
leaked watchers in the SC's metrics, a server that stays online, log lines counted in its output."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import re
import signal
import socket
import time
from pathlib import Path

import pytest

from fluvial import defaults as d
from fluvial.client.admin import TopicConfig
from fluvial.client.connect import Fluvial
from fluvial.client.consumer import ConsumerConfig, Offset
from fluvial.client.producer import ProducerConfig
from fluvial.errors import ErrorCode, RecordTooLarge
from fluvial.protocol import sc as scp
from fluvial.protocol import spu as sp
from fluvial.protocol.codec import encode
from fluvial.protocol.frame import API_VERSIONS_KEY, RequestHeader, encode_request

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
                assert e.value.size > size      # the batch it would make (Fluvio's `RecordTooLarge` size)
                assert str(e.value.size) in str(e.value) and str(e.value.limit) in str(e.value)
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


# ------------------------------------------------------------- one StreamFetch cannot take an SPU down

PARTITION_MIB = 48
WRITE_TIMEOUT_SECONDS = 2.0


def _stream_fetch_frame(topic: str, max_bytes: int) -> bytes:
    v = d.SPU_API_VERSION
    req = sp.StreamFetchRequest(topic, 0, 0, max_bytes, sp.Isolation.READ_UNCOMMITTED, b"", None, None, [], None)
    return encode_request(RequestHeader(sp.SpuApiKey.STREAM_FETCH, v, 1, "stalled-reader"), encode(req, v))


def test_huge_max_bytes_to_a_stalled_reader_keeps_the_spu_bounded_and_online(tmp_path: Path) -> None:
    sc = Sc(tmp_path)
    spu = Spu(tmp_path, sc, "--write-timeout", str(WRITE_TIMEOUT_SECONDS))

    async def fill() -> None:
        async with await Fluvial.connect(sc.addr) as client:
            async with await client.admin() as admin:
                await admin.create_topic("huge", TopicConfig(partitions=1))
            async with await client.topic_producer("huge") as producer:
                for i in range(PARTITION_MIB):
                    await producer.send(None, bytes([i]) * (d.MIB - 100))
                await producer.flush()

    async def read_all() -> int:
        async with await Fluvial.connect(sc.addr) as client:
            consumer = await client.consumer("huge")
            async with await consumer.stream(Offset.beginning(), ConsumerConfig(disable_continuous=True)) as s:
                return sum([1 async for _r in s])

    with running(sc, spu):
        asyncio.run(fill())
        peak_before = spu.rss_peak_bytes()
        stalled = socket.socket()
        stalled.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        stalled.connect(("127.0.0.1", spu.port))
        stalled.sendall(_stream_fetch_frame("huge", 2**31 - 1))     # ... and never reads
        wait_until(lambda: spu.count("write_timeout") == 1, "the stalled reader disconnected")
        grown = spu.rss_peak_bytes() - peak_before
        assert grown < 16 * d.MIB, f"SPU peak RSS grew by {grown / d.MIB:.1f} MiB"
        assert spu.online()                                          # heartbeats went on all along
        assert spu.metric("fluvial_connections_closed_total", service="spu-public", reason="write_timeout") == 1
        stalled.settimeout(CLOSE_GUARD_SECONDS)
        with contextlib.suppress(ConnectionResetError):              # what was in flight, then the end
            while stalled.recv(1 << 20):
                pass
        stalled.close()
        assert asyncio.run(read_all()) == PARTITION_MIB              # and it serves everyone else
        assert spu.count("write_timeout") == 1 and spu.count("Traceback") == 0


# ---------------------------------------------------------------------------------- connection limits


def _ended(s: socket.socket) -> bool:
    """Whether the server closed `s` (blocks up to the socket's timeout for the answer)."""
    try:
        while True:
            if not s.recv(1 << 16):
                return True
    except ConnectionResetError:
        return True


def _watching(sc: Sc, label: str = "SPU") -> socket.socket:
    s = socket.create_connection(("127.0.0.1", sc.port))
    s.sendall(_watch_frame(label))
    assert s.recv(4)                            # served: its full sync arrives
    return s


def test_connections_over_the_process_limit_are_refused_at_once(tmp_path: Path) -> None:
    sc = Sc(tmp_path, "--max-connections", "3")
    with running(sc):
        held = [_watching(sc) for _ in range(3)]
        extra = socket.create_connection(("127.0.0.1", sc.port))
        extra.settimeout(CLOSE_GUARD_SECONDS)
        assert _ended(extra)
        assert sc.metric("fluvial_connections_refused_total", service="sc-public") == 1
        assert sc.metric("fluvial_connections_open", service="sc-public") == 3
        held.pop().close()
        wait_until(lambda: sc.metric("fluvial_connections_open", service="sc-public") == 2, "a slot freed")
        held.append(_watching(sc))              # a freed slot is taken again
        for s in held:
            s.close()
        assert sc.count("connection_refused") == 1


def test_idle_connections_are_closed_and_streams_are_not(tmp_path: Path) -> None:
    sc = Sc(tmp_path, "--idle-timeout", "1")
    with running(sc):
        streaming = _watching(sc)
        silent = socket.create_connection(("127.0.0.1", sc.port))                  # never asks anything
        asked = socket.create_connection(("127.0.0.1", sc.port))                   # asks once, then idles
        asked.sendall(encode_request(RequestHeader(API_VERSIONS_KEY, 0, 1, "idle-test"), b""))
        for s in (silent, asked):
            s.settimeout(CLOSE_GUARD_SECONDS)
            assert _ended(s)
        # the Watch stream is not idle: still open (nothing to read, no end) after both were closed
        streaming.setblocking(False)
        with contextlib.suppress(BlockingIOError):
            while streaming.recv(1 << 16):
                pass
        with pytest.raises(BlockingIOError):
            streaming.recv(1)
        assert sc.metric("fluvial_connections_closed_total", reason="idle", service="sc-public") == 2
        streaming.close()


# ---------------------------------------------------------------------------------------- log noise


def test_log_lines_one_per_outage_no_traceback_and_producer_ids_at_debug(tmp_path: Path) -> None:
    sc = Sc(tmp_path)
    spu = Spu(tmp_path, sc)

    async def producers(n: int) -> None:
        async with await Fluvial.connect(sc.addr) as client:
            async with await client.admin() as admin:
                await admin.create_topic("quiet", TopicConfig(partitions=1))
            for _ in range(n):
                await (await client.topic_producer("quiet")).close()

    with running(sc, spu):
        asyncio.run(producers(20))
        assert sc.count("producer_id_allocated") == 0                 # DEBUG now; counted instead
        assert sc.metric("fluvial_sc_producer_ids_allocated_total") == 20
        # one heartbeat fails (the SC hangs longer than the heartbeat timeout), then the SC comes back
        sc.signal(signal.SIGSTOP)
        wait_until(lambda: spu.count("sc_link_down") == 1, "the SPU noticed the hung SC", CLOSE_GUARD_SECONDS)
        sc.signal(signal.SIGCONT)
        wait_until(lambda: spu.count("sc_link_up") == 1, "the SPU back with the SC", CLOSE_GUARD_SECONDS)
        # an outage long enough for several reconnect attempts
        sc.stop()
        wait_until(lambda: spu.count("sc_link_down") == 2, "the SPU noticed the SC gone", CLOSE_GUARD_SECONDS)
        time.sleep(3.0)                         # an outage of several reconnect attempts (0.1 s, 0.2 s, ...)
        sc.start()
        spu.wait_online()
        wait_until(lambda: spu.count("sc_link_up") == 2, "the SPU back after the outage", CLOSE_GUARD_SECONDS)
        log = spu.log()
        assert spu.count("sc_link_down") == 2 and spu.count("sc_link_up") == 2, log
        assert re.search(r"sc_link_up .*outage_seconds=\d", log), log
        assert "Traceback" not in log and "never retrieved" not in log, log
