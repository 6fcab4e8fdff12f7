"""The SPU's copy of the SC's SmartModule objects: full set then changes, qualified names, and one ask of
the SC on a miss (a consume started right after Create returned)."""

from __future__ import annotations

import pytest

from fluvial.protocol import internal as i
from fluvial.protocol import smartmodule as sm
from fluvial.spu.smartmodules import SmartModuleStore


def _spec(payload: bytes, pkg: tuple[str, str, str] | None = None) -> sm.SmartModuleSpec:
    meta = sm.SmartModuleMetadata(sm.SmartModulePackage(*pkg, "0.1.0"), {}) if pkg else None
    return sm.SmartModuleSpec(meta, None, sm.SmartModuleWasm(sm.WasmFormat.BINARY, payload))


@pytest.mark.asyncio
async def test_full_set_then_changes() -> None:
    store = SmartModuleStore()
    store.apply(i.SmartModulesUpdate(True, [i.SmartModuleChange("a", _spec(b"A")),
                                            i.SmartModuleChange("up-acme-1.0.0", _spec(b"U", ("up", "acme", "1.0.0")))]))
    assert await store.lookup("a") == b"A"
    assert await store.lookup("acme/up@1.0.0") == b"U"
    store.apply(i.SmartModulesUpdate(False, [i.SmartModuleChange("a", None), i.SmartModuleChange("b", _spec(b"B"))]))
    assert (await store.lookup("a"), await store.lookup("b")) == (None, b"B")
    store.apply(i.SmartModulesUpdate(True, []))                 # a new session's full set replaces everything
    assert store.names() == []


@pytest.mark.asyncio
async def test_a_miss_asks_the_sc_once_and_keeps_the_answer() -> None:
    asked: list[str] = []

    async def fetch(name: str) -> i.SmartModuleChange | None:
        asked.append(name)
        return i.SmartModuleChange("fresh", _spec(b"F")) if name == "fresh" else None

    store = SmartModuleStore(fetch)
    assert await store.lookup("fresh") == b"F"
    assert await store.lookup("fresh") == b"F"
    assert await store.lookup("absent") is None
    assert asked == ["fresh", "absent"]
