"""A synchronous facade over the asyncio client, for scripts and REPLs: the client runs on an event loop
in a background thread; every call waits for its answer with a timeout (never forever).

    from fluvial.client.sync import Fluvial, Offset
    with Fluvial.connect() as fluvial:
        producer = fluvial.topic_producer("events")
        producer.send("key", "value")
        producer.flush()
        stream = fluvial.consumer("events").stream(Offset.beginning(), disable_continuous=True)
        values = [record.value for record in stream]
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine, Iterator, Sequence
from typing import Any, TypeVar

from fluvial import defaults as d
from fluvial.errors import ErrorCode, ServerError

from . import connect as aconnect
from . import consumer as aconsumer
from . import producer as aproducer
from .batchcodec import ConsumerRecord
from .consumer import ConsumerConfig, Offset, OffsetStrategy
from .producer import ProducerConfig, RecordMetadata

T = TypeVar("T")

__all__ = ["ConsumerConfig", "ConsumerRecord", "Fluvial", "Offset", "OffsetStrategy", "ProducerConfig",
           "RecordMetadata"]


class _Loop:
    """One event loop in a daemon thread."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="fluvial-client", daemon=True)
        self._thread.start()

    def run(self, coro: Coroutine[Any, Any, T], timeout: float | None) -> T:
        fut = asyncio.run_coroutine_threadsafe(coro, self.loop)
        try:
            return fut.result(timeout)
        except TimeoutError:
            fut.cancel()
            raise ServerError(ErrorCode.REQUEST_TIMED_OUT, f"no answer within {timeout} s") from None

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout=d.CLIENT_LOOP_STOP_SECONDS)


class Fluvial:
    def __init__(self, loop: _Loop, client: aconnect.Fluvial, timeout: float) -> None:
        self._loop = loop
        self._client = client
        self.timeout = timeout

    @classmethod
    def connect(cls, endpoint: str | None = None, *, timeout: float = d.CLIENT_REQUEST_TIMEOUT_SECONDS,
                client_id: str = "fluvial") -> Fluvial:
        loop = _Loop()
        try:
            client = loop.run(aconnect.Fluvial.connect(endpoint, client_id=client_id,
                                                       timeout=min(timeout, d.CLIENT_CONNECT_TIMEOUT_SECONDS)),
                              timeout + d.CLIENT_METADATA_TIMEOUT_SECONDS)
        except BaseException:
            loop.stop()
            raise
        return cls(loop, client, timeout)

    def _run(self, coro: Coroutine[Any, Any, T], timeout: float | None = None) -> T:
        return self._loop.run(coro, self.timeout if timeout is None else timeout)

    def admin(self) -> Admin:
        return Admin(self, self._run(self._client.admin()))

    def topic_producer(self, topic: str, config: ProducerConfig | None = None) -> TopicProducer:
        return TopicProducer(self, self._run(self._client.topic_producer(topic, config)))

    def partition_consumer(self, topic: str, partition: int = 0) -> Consumer:
        return Consumer(self, self._run(self._client.consumer(topic, [partition])))

    def consumer(self, topic: str, partitions: list[int] | None = None) -> Consumer:
        return Consumer(self, self._run(self._client.consumer(topic, partitions)))

    def consumer_offsets(self, consumer_id: str | None = None) -> list[aconsumer.StoredOffset]:
        return self._run(aconsumer.list_consumer_offsets(self._client, consumer_id=consumer_id, timeout=self.timeout))

    def delete_consumer_offset(self, consumer_id: str, topic: str, partition: int) -> None:
        self._run(aconsumer.delete_consumer_offset(self._client, consumer_id, topic, partition, timeout=self.timeout))

    def close(self) -> None:
        try:
            self._run(self._client.close())
        finally:
            self._loop.stop()

    def __enter__(self) -> Fluvial:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class Admin:
    """Every coroutine method of the asyncio `Admin`, called synchronously."""

    def __init__(self, fluvial: Fluvial, admin: Any) -> None:
        self._fluvial = fluvial
        self._admin = admin

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._admin, name)
        if not callable(attr):
            return attr

        def call(*args: Any, **kwargs: Any) -> Any:
            result = attr(*args, **kwargs)
            if asyncio.iscoroutine(result):
                return self._fluvial._run(result, max(self._fluvial.timeout, d.TOPIC_WAIT_SECONDS + 10))
            return result

        return call

    def close(self) -> None:
        self._fluvial._run(self._admin.close())

    def __enter__(self) -> Admin:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class ProduceOutput:
    def __init__(self, fluvial: Fluvial, output: aproducer.ProduceOutput) -> None:
        self._fluvial = fluvial
        self._output = output

    def wait(self, timeout: float | None = None) -> RecordMetadata:
        """The record's partition and offset once acknowledged (raises its delivery error)."""
        return self._fluvial._run(self._output.wait(), timeout or self._fluvial.timeout * 4)


class TopicProducer:
    def __init__(self, fluvial: Fluvial, producer: aproducer.TopicProducer) -> None:
        self._fluvial = fluvial
        self._producer = producer

    def send(self, key: bytes | str | None, value: bytes | str) -> ProduceOutput:
        return ProduceOutput(self._fluvial, self._fluvial._run(self._producer.send(key, value)))

    def send_all(self, values: Sequence[bytes], keys: Sequence[bytes | None] | None = None,
                 timeout: float | None = None) -> list[RecordMetadata]:
        """Send many records and wait until all are acknowledged."""
        async def both() -> list[RecordMetadata]:
            return await (await self._producer.send_all(values, keys))

        return self._fluvial._run(both(), timeout or self._producer.config.delivery_timeout_seconds + 5)

    def flush(self, timeout: float | None = None) -> None:
        self._fluvial._run(self._producer.flush(), timeout or self._producer.config.delivery_timeout_seconds + 5)

    def close(self) -> None:
        self._fluvial._run(self._producer.close(), self._producer.config.delivery_timeout_seconds + 5)

    def __enter__(self) -> TopicProducer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class Consumer:
    def __init__(self, fluvial: Fluvial, consumer: Any) -> None:
        self._fluvial = fluvial
        self._consumer = consumer

    def stream(self, offset: Offset, config: ConsumerConfig | None = None, **options: Any) -> ConsumerStream:
        """A blocking iterator of records; `options` are ConsumerConfig fields (e.g. disable_continuous)."""
        cfg = config or ConsumerConfig(**options)
        return ConsumerStream(self._fluvial, self._fluvial._run(self._consumer.stream(offset, cfg)))


class ConsumerStream:
    def __init__(self, fluvial: Fluvial, stream: aconsumer.ConsumerStream) -> None:
        self._fluvial = fluvial
        self._stream = stream

    def __iter__(self) -> Iterator[ConsumerRecord]:
        while True:
            batch = self.next_batch(timeout=None)
            if not batch:
                return
            yield from batch

    def next_batch(self, timeout: float | None = None) -> list[ConsumerRecord]:
        """The next frame's records ([] at the end of a non-continuous stream). `timeout` None: wait for
        records as long as it takes (a live stream), else raise a timeout error after that many seconds."""
        return self._fluvial._loop.run(self._stream.next_batch(), timeout)

    def offset_commit(self) -> None:
        self._stream.offset_commit()

    def offset_flush(self) -> None:
        self._fluvial._run(self._stream.offset_flush())

    def close(self) -> None:
        self._fluvial._run(self._stream.close())

    def __enter__(self) -> ConsumerStream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
