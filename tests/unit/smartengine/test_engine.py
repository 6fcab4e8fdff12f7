"""The engine on the committed test modules (tests/smartmodules/src/*.c): each kind, params, aggregate,
chains, look_back, legacy layout, every error, the CPU budget, the memory cap, output deallocation, WASI and
the compile cache. The expected results are the reference's recorded ones (fluvio-smartmodules.md §2.5,
§6.1: what Fluvio's own test modules returned under wasmtime-py), so a misreading shared by the modules
and the host cannot pass."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import pytest

from fluvial.errors import (
    SmartModuleChainInitError,
    SmartModuleFailed,
    SmartModuleInvalid,
    SmartModuleLookBackError,
    SmartModuleMemoryLimitExceeded,
)
from fluvial.protocol import spu as sp
from fluvial.smartengine import ModuleSpec, SmartEngine, abi, gzip_wasm, unpack_wasm

from .conftest import wasm


def records(*values: bytes) -> bytes:
    return abi.encode_records([abi.SmRecord(v, offset_delta=i) for i, v in enumerate(values)])


def run(engine: SmartEngine, name: str, *values: bytes, params: dict[str, str] | None = None,
        base: int = 0, **kw: bytes) -> list[bytes]:
    chain = engine.build_chain([ModuleSpec(wasm(name), abi.Params(params or {}), **kw)])
    return [r.value for r in chain.process(records(*values), base, 0).successes]


WORDS = (b"foo", b"bar", b"baz", b"fooquux")


def test_each_kind_as_the_reference_recorded(engine: SmartEngine) -> None:
    assert run(engine, "filter", *WORDS) == [b"bar", b"baz"]
    assert run(engine, "filter", *WORDS, params={"key": "o"}) == [b"foo", b"fooquux"]
    assert run(engine, "map", *WORDS)[0] == b"FOO"
    assert run(engine, "filter_map", b"1", b"2", b"3", b"4") == [b"1", b"2"]
    assert run(engine, "array_map", b'["a","b"]') == [b'"a"', b'"b"']


def test_filter_map_on_2_x_4_at_base_10_gives_the_recorded_bytes(engine: SmartEngine) -> None:
    """§2.5 "filter_map fed 2,x,4 at base 10 gives rc=1, successes ["1"], error {invalid digit…, 11, 4}",
    checked on the raw call: status and output bytes."""
    chain = engine.build_chain([ModuleSpec(wasm("filter_map"))])
    one = chain.instances[0]
    rc, out = chain._call(one, one.transform, abi.encode_input(records(b"2", b"x", b"4"), 10, 0, 24))
    hint = b"invalid digit found in string"
    assert rc == 1
    assert out == bytes.fromhex("00000001 0e 00 00 00 00 02 31 00 01") + len(hint).to_bytes(2, "big") + hint + \
        bytes.fromhex("000000000000000b 04 00 02 78")


def test_filter_keeps_the_original_record_and_map_the_key(engine: SmartEngine) -> None:
    raw = abi.encode_records([abi.SmRecord(b"bar", key=b"k1", offset_delta=7, timestamp_delta=42)])
    kept = engine.build_chain([ModuleSpec(wasm("filter"))]).process(raw, 0, 0).successes
    assert kept == [abi.SmRecord(b"bar", key=b"k1", offset_delta=7, timestamp_delta=42)]
    mapped = engine.build_chain([ModuleSpec(wasm("map"))]).process(raw, 0, 0).successes
    assert mapped == [abi.SmRecord(b"BAR", key=b"k1", offset_delta=7, timestamp_delta=42)]
    exploded = engine.build_chain([ModuleSpec(wasm("array_map"))]).process(
        abi.encode_records([abi.SmRecord(b"[1]", offset_delta=3)]), 0, 0).successes
    assert exploded == [abi.SmRecord(b"1")]          # new records: deltas 0 (array_map.rs:25-29)


def test_aggregate_keeps_its_accumulator_across_batches(engine: SmartEngine) -> None:
    chain = engine.build_chain([ModuleSpec(wasm("aggregate"), initial_accumulator=b"1")])
    assert [r.value for r in chain.process(records(b"a", b"b"), 0, 0).successes] == [b"1a", b"1ab"]
    assert [r.value for r in chain.process(records(b"c", b"d"), 2, 0).successes] == [b"1abc", b"1abcd"]
    assert run(engine, "aggregate", b"a", b"b") == [b"a", b"ab"]          # no initial value: b""


def test_chain_feeds_each_output_to_the_next_and_stops_at_the_first_error(engine: SmartEngine) -> None:
    chain = engine.build_chain([ModuleSpec(wasm("filter")), ModuleSpec(wasm("map"))])
    assert [r.value for r in chain.process(records(*WORDS), 0, 0).successes] == [b"BAR", b"BAZ"]
    chain = engine.build_chain([ModuleSpec(wasm("filter_map")), ModuleSpec(wasm("map"))])
    out = chain.process(records(b"2", b"x"), 10, 0)
    assert [r.value for r in out.successes] == [b"1"]          # the failing module's partial output (§2.8)
    assert out.error is not None and out.error.offset == 11
    chain = engine.build_chain([ModuleSpec(wasm("map")), ModuleSpec(wasm("filter_map"))])
    out = chain.process(records(b"4", b"y"), 20, 0)            # module 2 sees module 1's records, same base
    assert out.error is not None and (out.error.offset, out.error.record_value) == (21, b"Y")


def test_legacy_module_is_retried_once_at_v21_and_remembered(engine: SmartEngine) -> None:
    chain = engine.build_chain([ModuleSpec(wasm("legacy"))], 24)
    one = chain.instances[0]
    rc, _ = chain._call(one, one.transform, abi.encode_input(records(b"x"), 0, 1_700_000_000_000, 24))
    assert rc == abi.STATUS_DECODING_BASE_INPUT                  # what Fluvio 0.17.3 reports as an error
    assert [r.value for r in chain.process(records(b"abc"), 0, 1_700_000_000_000).successes] == [b"ABC"]
    assert one.version == abi.LEGACY_LAYOUT_VERSION
    assert [r.value for r in chain.process(records(b"d"), 1, 1_700_000_000_000).successes] == [b"D"]
    current = engine.build_chain([ModuleSpec(wasm("map"))], 24)
    current.process(records(b"abc"), 0, 0)
    assert current.instances[0].version == 24


def test_look_back_runs_once_with_the_lookback_records(engine: SmartEngine) -> None:
    spec = ModuleSpec(wasm("lookback"), abi.Params({}, sp.Lookback(2, None)))
    chain = engine.build_chain([spec])
    asked = []
    chain.look_back(lambda lb: asked.append(lb) or records(b"seen"))
    assert asked == [sp.Lookback(2, None)]
    assert [r.value for r in chain.process(records(b"seen", b"new", b"new"), 0, 0).successes] == [b"new"]
    no_param = engine.build_chain([ModuleSpec(wasm("lookback"))])
    assert no_param.look_backs() == []                          # a look_back export without the param: skipped
    failing = engine.build_chain([spec])
    with pytest.raises(SmartModuleLookBackError) as e:
        failing.look_back(lambda lb: abi.encode_records([abi.SmRecord(b"bad", key=b"k", offset_delta=9)]))
    assert str(e.value) == ("SmartModule look_back error: bad record in look_back\n\nSmartModule Lookback Error: "
                            "\n    Offset: 9\n    Key: k\n    Value: bad")


@pytest.mark.parametrize(("module", "params", "error", "text"), [
    ("noexport", {}, SmartModuleChainInitError, "Error initializing No valid smartmodule found SmartModule Chain"),
    ("initfail", {}, SmartModuleChainInitError,
     "Error initializing Missing param key\n\nSmartModule Init Error: \n SmartModule Chain"),
    ("grow", {"grow_in_init": "1"}, SmartModuleMemoryLimitExceeded, "SmartModule memory limit exceeded: requested"),
])
def test_build_errors(engine: SmartEngine, module: str, params: dict[str, str], error: type, text: str) -> None:
    with pytest.raises(error) as e:
        engine.build_chain([ModuleSpec(wasm(module), abi.Params(params))])
    assert str(e.value).startswith(text)
    assert run(engine, "initfail", b"x", params={"key": "k"}) == [b"x"]


def test_a_module_that_does_not_compile_is_6005(engine: SmartEngine) -> None:
    with pytest.raises(SmartModuleChainInitError, match="failed to parse WebAssembly module"):
        engine.build_chain([ModuleSpec(b"\x00asm\x01\x00\x00\x00\xff\xff")])


def test_initial_memory_over_the_cap_is_6008() -> None:
    small = SmartEngine(memory_max_bytes=64 * 1024)      # every test module starts with 2 pages
    try:
        with pytest.raises(SmartModuleMemoryLimitExceeded) as e:
            small.build_chain([ModuleSpec(wasm("map"))])
        assert (e.value.requested, e.value.max) == (131072, 65536)
    finally:
        small.close()


@pytest.mark.parametrize(("payload", "text"), [
    (b"plain text", "not a WebAssembly module"),
    (b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xffgarbage", "invalid gzip: Error -3 while decompressing data"),
    (gzip_wasm(b"\x00asm")[:-6], "invalid gzip: truncated stream"),
    (gzip_wasm(b"text"), "the gzip does not hold a WebAssembly module"),
])
def test_bad_payloads_are_6002(payload: bytes, text: str) -> None:
    with pytest.raises(SmartModuleInvalid, match=text):
        unpack_wasm(payload)


def test_payload_forms() -> None:
    raw = wasm("map")
    assert unpack_wasm(raw) == raw                       # the Python admin's create_smartmodule: raw wasm
    assert unpack_wasm(gzip_wasm(raw)) == raw            # Fluvio's CLI and AdHoc: gzip
    with pytest.raises(SmartModuleInvalid, match="larger than 100 bytes"):
        unpack_wasm(gzip_wasm(raw), max_bytes=100)


def test_trap_negative_status_and_bad_output_are_failures(engine: SmartEngine) -> None:
    chain = engine.build_chain([ModuleSpec(wasm("trap"), name="trap")])
    with pytest.raises(SmartModuleFailed) as e:
        chain.process(records(b"ok", b"boom"), 0, 0)
    assert e.value.message == "SmartModule err trap: wasm trap: wasm `unreachable` instruction executed"
    assert str(e.value) == "Other error: " + e.value.message
    chain = engine.build_chain([ModuleSpec(wasm("map"), name="m")])
    with pytest.raises(SmartModuleFailed, match="failed to decode SmartModule record input"):
        chain.process(b"\x00\x00\x00\x02\x7f", 0, 0)      # the module's -22


def test_runaway_module_is_interrupted_within_its_budget(engine: SmartEngine) -> None:
    chain = engine.build_chain([ModuleSpec(wasm("loop"), name="loop")])
    with pytest.raises(SmartModuleFailed, match=r"loop: exceeded its CPU budget of 0\.3 s per call"):
        chain.process(records(b"x"), 0, 0)
    # the engine (and its ticker) goes on serving other chains
    assert run(engine, "map", b"after") == [b"AFTER"]


def test_unbounded_allocation_stops_at_the_memory_cap(engine: SmartEngine) -> None:
    chain = engine.build_chain([ModuleSpec(wasm("grow"), name="grow")])
    with pytest.raises(SmartModuleFailed, match="grow: reached the memory limit of 67108864 bytes"):
        chain.process(records(b"x"), 0, 0)
    assert max(chain.memory_bytes()) <= 64 * 1024 * 1024


def test_output_buffers_are_deallocated(engine: SmartEngine) -> None:
    """Fluvio leaks each output inside the module (§2.6: 300 calls of 22 KB grew memory 1.1 → 8.4 MB)."""
    chain = engine.build_chain([ModuleSpec(wasm("map"))])
    batch = records(*[b"x" * 200] * 110)                  # ~22 KB of output per call
    chain.process(batch, 0, 0)
    before = chain.memory_bytes()
    for _ in range(300):
        chain.process(batch, 0, 0)
    assert chain.memory_bytes() == before


def test_wasi_module_output_goes_to_the_log(engine: SmartEngine, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="fluvial.smartengine.wasi"):
        assert run(engine, "wasi_map", b"same") == [b"same"]
    assert "line=wasi_map: called" in caplog.text


def test_compile_cache_memory_disk_and_corrupt_files(tmp_path: Path) -> None:
    first = SmartEngine(str(tmp_path))
    try:
        first.build_chain([ModuleSpec(wasm("map"))])
        first.build_chain([ModuleSpec(wasm("map"))])
        assert (first.cache.stats.compiles, first.cache.stats.memory_hits) == (1, 1)
    finally:
        first.close()
    [cached] = list(tmp_path.glob("*.cwasm"))
    second = SmartEngine(str(tmp_path))                    # a restarted SPU: the module comes from disk
    try:
        assert [r.value for r in second.build_chain([ModuleSpec(wasm("map"))]).process(records(b"a"), 0, 0)
                .successes] == [b"A"]
        assert (second.cache.stats.compiles, second.cache.stats.disk_hits) == (0, 1)
    finally:
        second.close()
    data = bytearray(cached.read_bytes())
    data[len(data) // 2] ^= 0xFF                          # one flipped bit in the machine code
    cached.write_bytes(bytes(data))
    third = SmartEngine(str(tmp_path))
    try:
        assert [r.value for r in third.build_chain([ModuleSpec(wasm("map"))]).process(records(b"b"), 0, 0)
                .successes] == [b"B"]
        assert (third.cache.stats.disk_rejected, third.cache.stats.compiles) == (1, 1)
        assert cached.read_bytes() != bytes(data)            # replaced by a good one
    finally:
        third.close()
    cached.write_bytes(b"short")
    fourth = SmartEngine(str(tmp_path))
    try:
        fourth.build_chain([ModuleSpec(wasm("map"))])
        assert (fourth.cache.stats.disk_rejected, fourth.cache.stats.compiles) == (1, 1)
    finally:
        fourth.close()


def test_chains_run_concurrently_in_threads(engine: SmartEngine) -> None:
    """A runaway chain in one thread does not hold up another chain in another thread."""
    import threading

    spinning = engine.build_chain([ModuleSpec(wasm("loop"))])
    errors: list[BaseException] = []
    t = threading.Thread(target=lambda: errors.append(_expect_failure(spinning)))
    t.start()
    time.sleep(0.05)
    assert run(engine, "filter", *WORDS) == [b"bar", b"baz"]
    t.join(timeout=30)
    assert errors and isinstance(errors[0], SmartModuleFailed)


def _expect_failure(chain: object) -> BaseException:
    try:
        chain.process(records(b"x"), 0, 0)   # type: ignore[attr-defined]
    except SmartModuleFailed as e:
        return e
    raise AssertionError("the loop module returned")


def test_run_records_locally_for_smartmodule_test() -> None:
    """What `fluvial smartmodule test` calls: one chain, once, on given records."""
    from fluvial.smartengine import run_records

    out = run_records([ModuleSpec(wasm("filter_map"))], [(None, b"2"), (b"k", b"x"), (None, b"4")], base_offset=10)
    assert [r.value for r in out.successes] == [b"1"]
    assert out.error is not None and (out.error.offset, out.error.record_key) == (11, b"k")
    out = run_records([ModuleSpec(wasm("lookback"), abi.Params({}, sp.Lookback(1, None)))],
                      [(None, b"seen"), (None, b"new")], look_back=[(None, b"seen")])
    assert [r.value for r in out.successes] == [b"new"]
