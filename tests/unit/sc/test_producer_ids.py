"""Producer ids: a durable SQLite counter, and the SC's fluvial-only AllocateProducerId on its public port."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

import pytest

from fluvial.protocol import fluvial_api as fa
from fluvial.protocol.codec import decode_from, encode
from fluvial.protocol.frame import API_VERSIONS_KEY, ApiVersionsRequest, ApiVersionsResponse
from fluvial.sc.server import ScConfig, ScServer
from fluvial.sc.store import PRODUCER_ID_COUNTER, SqliteBackend, open_backend
from fluvial.transport.client import ClientConnection


def test_counter_survives_reopen_and_is_unique_across_threads(tmp_path: Path) -> None:
    b = open_backend(None, tmp_path)
    assert [b.increment(PRODUCER_ID_COUNTER) for _ in range(3)] == [0, 1, 2]
    assert b.increment("other") == 0                       # counters are independent
    b.close()
    again = SqliteBackend(tmp_path / "metadata.db")
    assert again.increment(PRODUCER_ID_COUNTER) == 3
    got: list[int] = []

    def take() -> None:
        for _ in range(50):
            got.append(again.increment(PRODUCER_ID_COUNTER))

    threads = [threading.Thread(target=take) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(got) == list(range(4, 204))
    assert again.load() == {}                              # counters are not metadata objects
    again.close()


async def _allocate(port: int, client_id: str = "test") -> fa.AllocateProducerIdResponse:
    conn = await ClientConnection.connect("127.0.0.1", port)
    try:
        body = encode(fa.AllocateProducerIdRequest(client_id), fa.FLUVIAL_API_VERSION)
        r = await conn.request(fa.ALLOCATE_PRODUCER_ID, fa.FLUVIAL_API_VERSION, body, timeout=5)
        return decode_from(fa.AllocateProducerIdResponse, r, fa.FLUVIAL_API_VERSION)
    finally:
        await conn.close()


async def _start(data: Path) -> ScServer:
    sc = ScServer(ScConfig(str(data), public_port=0, private_port=0))
    await sc.start()
    return sc


@pytest.mark.asyncio
async def test_sc_allocates_increasing_ids_across_restarts(tmp_path: Path) -> None:
    sc = await _start(tmp_path)
    try:
        first = [await _allocate(sc.public_port) for _ in range(3)]
        together = await asyncio.gather(*(_allocate(sc.public_port) for _ in range(5)))
        conn = await ClientConnection.connect("127.0.0.1", sc.public_port)
        r = await conn.request(API_VERSIONS_KEY, 0, encode(ApiVersionsRequest(), 0), timeout=5)
        advertised = {k.api_key for k in decode_from(ApiVersionsResponse, r, 0).api_keys}
        await conn.close()
    finally:
        await sc.stop()
    assert all(x.error_code.ok and x.producer_epoch == 0 for x in [*first, *together])
    ids = [x.producer_id for x in first]
    assert ids == sorted(ids) and ids[0] >= 0
    assert len({x.producer_id for x in [*first, *together]}) == 8
    assert fa.ALLOCATE_PRODUCER_ID not in advertised
    sc = await _start(tmp_path)
    try:
        after = await _allocate(sc.public_port)
    finally:
        await sc.stop()
    assert after.producer_id > max(x.producer_id for x in [*first, *together])
