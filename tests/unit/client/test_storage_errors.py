"""Error classes end to end (issue #9 item 3), against an in-process SC and SPU on real sockets whose
disk is the fault-injectable file layer: a FAILED replica (56) makes fluvial's producer fail at once —
one produce request, the cause from the replica-health API — instead of retrying it for the whole
delivery timeout; the consumer does not retry a corrupt segment forever; the one table says so."""

from __future__ import annotations

import asyncio
import errno
from pathlib import Path

import pytest
from prometheus_client import REGISTRY

from fluvial.client.admin import Admin, TopicConfig
from fluvial.client.connect import Fluvial
from fluvial.client.consumer import Offset
from fluvial.client.producer import ProducerConfig
from fluvial.errors import (
    ERRNO_CLASSES,
    ErrnoClass,
    ErrorCode,
    FluvialError,
    StorageFailed,
    errno_class,
    retry_rule,
)
from fluvial.sc.server import ScConfig, ScServer
from fluvial.spu.server import SpuConfig, SpuServer
from fluvial.storage import FaultyFileIO

HANG_GUARD_SECONDS = 60.0


@pytest.mark.parametrize(
    ("number", "during", "expected"),
    [(errno.ENOSPC, "write", ErrnoClass.SPACE), (errno.EDQUOT, "roll", ErrnoClass.SPACE),
     (errno.EMFILE, "write", ErrnoClass.TRANSIENT), (errno.ENFILE, "roll", ErrnoClass.TRANSIENT),
     (errno.ENOMEM, "write", ErrnoClass.TRANSIENT), (errno.EAGAIN, "write", ErrnoClass.TRANSIENT),
     (errno.EIO, "write", ErrnoClass.PERSISTENT), (errno.EROFS, "write", ErrnoClass.PERSISTENT),
     (errno.ENOSPC, "fsync", ErrnoClass.PERSISTENT), (errno.EMFILE, "fsync", ErrnoClass.PERSISTENT),
     (12345, "write", ErrnoClass.PERSISTENT)],
)
def test_the_one_errno_table(number: int, during: str, expected: ErrnoClass) -> None:
    assert errno_class(number, during) is expected
    assert set(ERRNO_CLASSES.values()) == {ErrnoClass.SPACE, ErrnoClass.TRANSIENT}   # the rest: persistent


def test_storage_error_is_not_retried_as_transient() -> None:
    rule = retry_rule(ErrorCode.STORAGE_ERROR)
    assert not rule.retriable and rule.refresh_metadata and rule.new_leader_only
    full = retry_rule(ErrorCode.PARTITION_FULL)
    assert full.retriable and not full.new_leader_only                 # 72: waited out in the delivery timeout
    assert retry_rule(ErrorCode.REQUEST_TIMED_OUT).retriable           # StorageBusy (EMFILE, ...)


def _errors_56() -> float:
    return REGISTRY.get_sample_value("fluvial_produce_errors_total", {"code": "STORAGE_ERROR"}) or 0.0


class InProcessCluster:
    """An SC and one SPU (its file layer: `io`) in this event loop, a topic, and fluvial's client."""

    def __init__(self, root: Path, io: FaultyFileIO) -> None:
        self.root = root
        self.io = io

    async def __aenter__(self) -> InProcessCluster:
        self.sc = ScServer(ScConfig(str(self.root / "sc"), public_port=0, private_port=0))
        await self.sc.start()
        self.spu = SpuServer(SpuConfig(5001, str(self.root / "spu"), public_port=0, private_port=0,
                                       sc_port=self.sc.private_port, io=self.io))
        await self.spu.start()
        admin = await Admin.connect("127.0.0.1", self.sc.public_port)
        try:
            await admin.create_topic("t", TopicConfig(partitions=1, replication=1, segment_size=4096))
        finally:
            await admin.close()
        self.client = await Fluvial.connect(f"127.0.0.1:{self.sc.public_port}")
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.client.close()
        await self.spu.stop()
        await self.sc.stop()


def test_failed_replica_makes_the_producer_fail_at_once_with_the_cause(tmp_path: Path) -> None:
    """Old code: 56 was retriable, so the producer re-sent to the FAILED replica until its delivery
    timeout ran out (dozens of requests), and reported no cause."""
    io = FaultyFileIO()

    async def main() -> tuple[BaseException | None, float]:
        async with InProcessCluster(tmp_path, io) as c:
            producer = await c.client.topic_producer("t", ProducerConfig(delivery_timeout_seconds=2 * HANG_GUARD_SECONDS))
            await (await producer.send(None, b"before"))
            before = _errors_56()
            io.plan.eio_on_write = True                 # the disk breaks: the replica goes FAILED
            try:
                await asyncio.wait_for((await producer.send(None, b"after")).wait(), HANG_GUARD_SECONDS)
                failure: BaseException | None = None
            except FluvialError as e:
                failure = e
            await producer.close(timeout=1)
            return failure, _errors_56() - before

    failure, requests_56 = asyncio.run(main())
    assert isinstance(failure, StorageFailed), failure
    assert requests_56 == 1                               # asked once, not retried against a FAILED replica
    text = str(failure)
    assert "SPU 5001" in text and "Input/output error" in text, text     # the cause, from replica health


def test_consumer_does_not_retry_a_corrupt_segment_forever(tmp_path: Path) -> None:
    """The scrub found a sealed segment corrupt: reads there answer 56. Old code resumed the stream
    with back-off forever (56 was retriable); now the consumer gets the error with its details."""

    async def main() -> tuple[list[bytes], BaseException | None, int]:
        async with InProcessCluster(tmp_path, FaultyFileIO()) as c:
            producer = await c.client.topic_producer("t", ProducerConfig(batch_size_bytes=1000))
            for i in range(40):
                await producer.send(None, b"%03d" % i + b"." * 400)
            await producer.flush()
            await producer.close()
            replica = c.spu.storage.get("t", 0)
            assert replica is not None and replica.segment_count() >= 3
            second = replica.unverified_sealed()[1]
            replica.mark_corrupt(second.base, 0, "CRC mismatch (test)")   # what the scrub does
            consumer = await c.client.partition_consumer("t", 0)
            stream = await consumer.stream(Offset.beginning())
            got: list[bytes] = []
            failure: BaseException | None = None
            try:
                async def read() -> None:
                    async for record in stream:
                        got.append(record.value[:3])
                await asyncio.wait_for(read(), HANG_GUARD_SECONDS)
            except FluvialError as e:
                failure = e
            return got, failure, stream.resumes

    got, failure, resumes = asyncio.run(main())
    assert isinstance(failure, FluvialError) and failure.code == ErrorCode.STORAGE_ERROR, failure
    assert "corrupt" in str(failure) or "SPU 5001" in str(failure), failure
    assert resumes == 0
    assert got == [b"%03d" % i for i in range(len(got))] and got        # what precedes the damage was read


def test_a_given_up_72_says_when_writes_resume() -> None:
    """72 given up: SPU, data dir, free bytes and the threshold (a FULL dir takes writes above 1.5 R)."""
    from fluvial.client.health import PartitionHealth, detailed_error
    from fluvial.errors import ServerError, StorageFull
    from fluvial.protocol.internal import DirStateCode, ReplicaStateCode

    h = PartitionHealth(5001, "t", 0, ReplicaStateCode.FULL, "/d/spu-logs-5001", DirStateCode.FULL, 1_200_000,
                        16 << 20, 1 << 20, "data dir FULL", full_release_bytes=1_572_864)
    e = detailed_error(h, ServerError(ErrorCode.PARTITION_FULL, "full", topic="t", partition=0))
    assert isinstance(e, StorageFull) and e.threshold_bytes == 1_572_864
    assert str(e) == ("partition storage is full: 1200000 bytes free in /d/spu-logs-5001 on SPU 5001, "
                      "a write needs 1572864 bytes free")
