"""The SPU side of SmartModules that needs no server: look-back reads over a real replica (Last and Age,
across segments) and invocation resolution (store, AdHoc, 6001/6002, the aggregate's initial value)."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from fluvial.errors import SmartModuleInvalid, SmartModuleNotFound
from fluvial.protocol import spu as sp
from fluvial.protocol.records import build_batch
from fluvial.smartengine import abi, gzip_wasm
from fluvial.spu.smartstream import SmartStreams, initial_accumulator, read_look_back
from fluvial.storage.config import ReplicaConfig
from fluvial.storage.replica import Replica

MODULES = Path(__file__).resolve().parents[2] / "smartmodules"


@pytest.fixture
def replica(tmp_path: Path) -> Replica:
    """Offsets 0..5 in three batches, 10 min / 1 min / now old, over more than one segment."""
    now = int(time.time() * 1000)
    r = Replica.open(tmp_path / "t-0", ReplicaConfig(segment_max_bytes=1024))
    for values, age_ms in (([b"a", b"b"], 600_000), ([b"c", b"d"], 60_000), ([b"e", b"f"], 0)):
        r.append(build_batch([(None, v * 300) for v in values], timestamp_ms=now - age_ms))
    return r


def looked_back(replica: Replica, lookback: sp.Lookback) -> list[tuple[bytes, int]]:
    records, _ = abi.decode_records(read_look_back(replica, lookback))
    return [(r.value[:1], r.offset_delta) for r in records]


def test_last_n(replica: Replica) -> None:
    assert replica.hw == 6
    assert looked_back(replica, sp.Lookback(3, None)) == [(b"d", 3), (b"e", 4), (b"f", 5)]
    assert looked_back(replica, sp.Lookback(100, None))[0] == (b"a", 0)
    assert looked_back(replica, sp.Lookback(0, None)) == []


def test_age_walks_back_by_timestamp_and_last_narrows_it(replica: Replica) -> None:
    assert looked_back(replica, sp.Lookback(0, 120.0)) == [(b"c", 2), (b"d", 3), (b"e", 4), (b"f", 5)]
    assert looked_back(replica, sp.Lookback(1, 120.0)) == [(b"f", 5)]
    assert looked_back(replica, sp.Lookback(0, 1.0)) == [(b"e", 4), (b"f", 5)]


def test_look_back_records_carry_real_timestamps(replica: Replica) -> None:
    records, _ = abi.decode_records(read_look_back(replica, sp.Lookback(1, None)))
    assert abs(records[0].timestamp_delta - time.time() * 1000) < 600_000


def test_resolve_by_name_adhoc_and_errors() -> None:
    class Store:
        async def lookup(self, name: str) -> bytes | None:
            return {"raw": (MODULES / "map.wasm").read_bytes(), "bad": b"nonsense"}.get(name)

    streams = SmartStreams(None, Store(), "/nonexistent")   # type: ignore[arg-type]
    raw = (MODULES / "map.wasm").read_bytes()
    params = sp.SmartModuleExtraParams({"k": "v"}, sp.Lookback(2, None))
    specs = asyncio.run(streams.resolve([
        sp.SmartModuleInvocation(sp.WasmPredefined("raw"), sp.KindAggregate(b"1"), params),
        sp.SmartModuleInvocation(sp.WasmAdHoc(gzip_wasm(raw)), sp.KindGeneric(sp.ContextNone()), params)]))
    assert [s.wasm for s in specs] == [raw, raw]
    assert [s.initial_accumulator for s in specs] == [b"1", b""]
    assert specs[0].params == abi.Params({"k": "v"}, sp.Lookback(2, None)) and specs[0].name == "raw"
    with pytest.raises(SmartModuleNotFound, match="SmartModule missing was not found"):
        asyncio.run(streams.resolve([sp.SmartModuleInvocation(sp.WasmPredefined("missing"), sp.KindFilter(),
                                                              params)]))
    with pytest.raises(SmartModuleInvalid):
        asyncio.run(streams.resolve([sp.SmartModuleInvocation(sp.WasmPredefined("bad"), sp.KindFilter(), params)]))


@pytest.mark.parametrize(("kind", "acc"), [
    (sp.KindAggregate(b"x"), b"x"), (sp.KindGeneric(sp.ContextAggregate(b"y")), b"y"),
    (sp.KindGeneric(sp.ContextNone()), b""), (sp.KindFilter(), b""), (sp.KindJoin("t"), b""),
])
def test_initial_accumulator(kind: object, acc: bytes) -> None:
    assert initial_accumulator(kind) == acc
