"""SmartModules end to end on a real cluster (issue #10, SPU half): inline (AdHoc) modules with the
official client's `ConsumerConfig().smartmodule(path=…)`, produce-side modules through fluvial's protocol
encoder, a runaway module that ends only its own stream while produce and other streams go on, and the
compile cache across an SPU restart. By-name streams need the SC's SmartModule object (not in this half)."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from fluvial.errors import ErrorCode, SmartModuleFailed, SmartModuleRuntimeError, smartmodule_error
from fluvial.protocol import spu as sp
from fluvial.protocol.codec import decode_from, encode
from fluvial.protocol.records import build_batch, decode_records
from fluvial.smartengine import gzip_wasm
from fluvial.transport.client import ClientConnection

from .cluster import Cluster, wait_until

pytestmark = pytest.mark.timeout(300)

MODULES = Path(__file__).resolve().parents[1] / "smartmodules"
SPU = 5001
BUDGET_MS = 1000                      # the runaway module's stream ends after this much CPU in one call


@pytest.fixture(scope="module")
def smcluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    c = Cluster(tmp_path_factory.mktemp("smcluster"), spus=1,
                env={"FLUVIAL_SMARTMODULE_CALL_BUDGET_MS": str(BUDGET_MS)})
    c.start()
    try:
        yield c
    finally:
        c.stop()


def adhoc(name: str, kind: sp.SmartModuleKind | None = None, params: dict[str, str] | None = None,
          lookback: sp.Lookback | None = None) -> sp.SmartModuleInvocation:
    wasm = (MODULES / f"{name}.wasm").read_bytes()
    return sp.SmartModuleInvocation(sp.WasmAdHoc(gzip_wasm(wasm)), kind or sp.KindGeneric(sp.ContextNone()),
                                    sp.SmartModuleExtraParams(params or {}, lookback))


async def produce(port: int, topic: str, values: list[bytes],
                  smartmodules: list[sp.SmartModuleInvocation] | None = None) -> sp.PartitionProduceResponse:
    conn = await ClientConnection.connect("127.0.0.1", port)
    try:
        batch = build_batch([(None, v) for v in values], timestamp_ms=1_700_000_000_000)
        req = sp.ProduceRequest(None, sp.Isolation.READ_UNCOMMITTED, 5000,
                                [sp.TopicProduceData(topic, [sp.PartitionProduceData(0, batch)])], smartmodules or [])
        r = await conn.request(sp.SpuApiKey.PRODUCE, 24, encode(req, 24))
        return decode_from(sp.ProduceResponse, r, 24).responses[0].partitions[0]
    finally:
        await conn.close()


async def stream_frames(port: int, topic: str, smartmodules: list[sp.SmartModuleInvocation], frames: int,
                        offset: int = 0, records: int = 0) -> list[sp.FetchablePartitionResponse]:
    """A raw StreamFetch v24: `frames` frames, or up to an error frame, or until `records` records came;
    acknowledging each."""
    return await asyncio.wait_for(_stream_frames(port, topic, smartmodules, frames, offset, records), 60)


async def _stream_frames(port: int, topic: str, smartmodules: list[sp.SmartModuleInvocation], frames: int,
                         offset: int, records: int) -> list[sp.FetchablePartitionResponse]:
    conn = await ClientConnection.connect("127.0.0.1", port)
    out = []
    try:
        req = sp.StreamFetchRequest(topic, 0, offset, 1_048_890, sp.Isolation.READ_UNCOMMITTED, b"", None, None,
                                    smartmodules, None)
        stream = conn.stream(sp.SpuApiKey.STREAM_FETCH, 24, encode(req, 24))
        async for r in stream:
            frame = decode_from(sp.StreamFetchResponse, r, 24)
            out.append(frame.partition)
            if (not frame.partition.error_code.ok and not frame.partition.records) or len(out) >= frames:
                break
            if records and sum(len(values(f)) for f in out) >= records:
                break
            part = frame.partition     # the official client acks next_filter_offset, else its last offset + 1
            nxt = part.next_filter_offset if part.next_filter_offset > 0 else decode_records(part.records)[-1].offset + 1
            ack = sp.UpdateOffsetsRequest([sp.OffsetUpdate(nxt, frame.stream_id)])
            await conn.request(sp.SpuApiKey.UPDATE_OFFSETS, 0, encode(ack, 0))
        await stream.aclose()
    finally:
        await conn.close()
    return out


def values(part: sp.FetchablePartitionResponse) -> list[bytes]:
    return [r.value for r in decode_records(part.records)] if part.records else []


def test_official_client_adhoc_kinds_params_aggregate_and_chain(smcluster: Cluster) -> None:
    """Each kind inline (`smartmodule(path=…)`), params through init, the aggregate's initial value with
    and without `kind`, and a two-module chain, as the official client 0.21.0 sends them."""
    out = smcluster.client(f"""
        M = {str(MODULES)!r}
        admin = FluvioAdmin.connect()
        admin.create_topic("sm-words")
        admin.create_topic("sm-ints")
        admin.create_topic("sm-arrays")
        f = Fluvio.connect()
        p = f.topic_producer("sm-words")
        for v in ["foo", "bar", "baz", "fooquux"]:
            p.send_string(v)
        p.flush()
        p = f.topic_producer("sm-ints")
        for i in range(1, 11):
            p.send_string(str(i))
        p.flush()
        p = f.topic_producer("sm-arrays")
        p.send_string('["Apple", "Banana", "Cranberry"]')
        p.flush()

        def take(topic, n, *mods):
            cfg = ConsumerConfig()
            for m in mods:
                cfg.smartmodule(**m)
            got = []
            for r in f.partition_consumer(topic, 0).stream_with_config(Offset.beginning(), cfg):
                got.append([r.offset(), r.value_string()])
                if len(got) == n:
                    return got

        res = {{
            "filter": take("sm-words", 2, dict(path=M + "/filter.wasm", kind=SmartModuleKind.Filter)),
            "filter_o": take("sm-words", 2, dict(path=M + "/filter.wasm", params={{"key": "o"}})),
            "map": take("sm-words", 4, dict(path=M + "/map.wasm", kind=SmartModuleKind.Map)),
            "filter_map": take("sm-ints", 5, dict(path=M + "/filter_map.wasm")),
            "array_map": take("sm-arrays", 3, dict(path=M + "/array_map.wasm", kind=SmartModuleKind.ArrayMap)),
            "agg_generic": take("sm-words", 4, dict(path=M + "/aggregate.wasm", aggregate=b"1")),
            "agg_kind": take("sm-words", 4, dict(path=M + "/aggregate.wasm", kind=SmartModuleKind.Aggregate,
                                                 aggregate=b"1")),
            "agg_none": take("sm-words", 4, dict(path=M + "/aggregate.wasm")),
            "chain": take("sm-words", 2, dict(path=M + "/filter.wasm"), dict(path=M + "/map.wasm")),
        }}
        print(json.dumps(res))
    """)
    vals = {k: [v for _o, v in recs] for k, recs in out.items()}
    assert vals["filter"] == ["bar", "baz"]
    assert out["filter"] == [[0, "bar"], [1, "baz"]]              # Fluvio's numbering: base + index
    assert vals["filter_o"] == ["foo", "fooquux"]
    assert vals["map"] == ["FOO", "BAR", "BAZ", "FOOQUUX"]
    assert vals["filter_map"] == ["1", "2", "3", "4", "5"]
    assert vals["array_map"] == ['"Apple"', '"Banana"', '"Cranberry"']
    assert vals["agg_generic"] == vals["agg_kind"] == ["1foo", "1foobar", "1foobarbaz", "1foobarbazfooquux"]
    assert vals["agg_none"] == ["foo", "foobar", "foobarbaz", "foobarbazfooquux"]
    assert vals["chain"] == ["BAR", "BAZ"]


def test_runtime_error_is_6004_with_the_records_before_it_and_the_stream_goes_on(smcluster: Cluster) -> None:
    port = smcluster.spu_public_port(SPU)

    async def scenario() -> list[sp.FetchablePartitionResponse]:
        smcluster.fluvial("topic", "create", "sm-errs")
        assert (await produce(port, "sm-errs", [b"2", b"x", b"4"])).error_code.ok    # one batch: 0..2
        assert (await produce(port, "sm-errs", [b"6", b"8"])).error_code.ok          # 3..4
        return await stream_frames(port, "sm-errs", [adhoc("filter_map")], 2)

    first, second = asyncio.run(scenario())
    assert first.error_code.code is ErrorCode.SMART_MODULE_RUNTIME_ERROR
    err = smartmodule_error(first.error_code)
    assert isinstance(err, SmartModuleRuntimeError)
    assert (err.hint, err.offset, err.kind, err.record_key, err.record_value) == \
        ("invalid digit found in string", 1, 4, None, b"x")
    assert str(err).startswith("SmartModule transform error invalid digit found in string\n\nSmartModule Info: \n"
                               "    Type: FilterMap\n    Offset: 1\n    Key: NULL\n    Value: x")
    assert values(first) == [b"1"]
    assert first.next_filter_offset == 3                     # the rest of the failing batch is skipped
    assert second.error_code.ok and values(second) == [b"3", b"4"]
    assert second.next_filter_offset == 5


def test_runaway_module_ends_its_own_stream_while_produce_and_other_streams_go_on(smcluster: Cluster) -> None:
    port = smcluster.spu_public_port(SPU)

    async def scenario() -> tuple[list[sp.FetchablePartitionResponse], list[bytes], int]:
        smcluster.fluvial("topic", "create", "sm-loop")
        assert (await produce(port, "sm-loop", [b"spin"])).error_code.ok
        runaway = asyncio.ensure_future(stream_frames(port, "sm-loop", [adhoc("loop")], 1))
        await asyncio.sleep(0.2)              # the module is spinning in a worker thread now
        # meanwhile: produce and a plain stream and a SmartModule stream on the same SPU answer
        produced = await produce(port, "sm-loop", [b"more"])
        plain = await stream_frames(port, "sm-loop", [], 9, records=2)
        mapped = await stream_frames(port, "sm-loop", [adhoc("map")], 9, records=2)
        return await runaway, [v for f in plain + mapped for v in values(f)], produced.base_offset

    frames, seen, base = asyncio.run(scenario())
    assert base == 1
    assert seen == [b"spin", b"more", b"SPIN", b"MORE"]
    assert len(frames) == 1 and frames[0].error_code.code is ErrorCode.OTHER
    err = smartmodule_error(frames[0].error_code)
    assert isinstance(err, SmartModuleFailed)
    assert "exceeded its CPU budget of 1 s per call" in err.message and err.message.startswith("SmartModule err ")


def test_trap_and_unbounded_allocation_end_the_stream_with_other(smcluster: Cluster) -> None:
    port = smcluster.spu_public_port(SPU)

    async def scenario() -> tuple[list[sp.FetchablePartitionResponse], list[sp.FetchablePartitionResponse]]:
        smcluster.fluvial("topic", "create", "sm-trap")
        assert (await produce(port, "sm-trap", [b"a", b"b"])).error_code.ok
        assert (await produce(port, "sm-trap", [b"boom"])).error_code.ok
        return (await stream_frames(port, "sm-trap", [adhoc("trap")], 3),
                await stream_frames(port, "sm-trap", [adhoc("grow")], 3))

    trapped, grown = asyncio.run(scenario())
    assert values(trapped[0]) == [b"a", b"b"] and trapped[0].error_code.ok      # records before the trap
    assert trapped[1].error_code.code is ErrorCode.OTHER and "wasm trap" in trapped[1].error_code.payload[0]
    assert len(grown) == 1 and "memory limit of 67108864 bytes" in grown[0].error_code.payload[0]


def test_build_errors_answer_one_frame(smcluster: Cluster) -> None:
    port = smcluster.spu_public_port(SPU)

    async def scenario() -> list[list[sp.FetchablePartitionResponse]]:
        smcluster.fluvial("topic", "create", "sm-build")
        smcluster.fluvial("topic", "create", "sm-build-bad")
        assert (await produce(port, "sm-build", [b"a", b"b"])).error_code.ok
        assert (await produce(port, "sm-build-bad", [b"ok", b"bad"])).error_code.ok
        bad_gzip = sp.SmartModuleInvocation(sp.WasmAdHoc(b"\x1f\x8b\x08\x00broken"), sp.KindFilter(),
                                            sp.SmartModuleExtraParams({}, None))
        unknown = sp.SmartModuleInvocation(sp.WasmPredefined("no-such-module"), sp.KindFilter(),
                                           sp.SmartModuleExtraParams({}, None))
        return [await stream_frames(port, "sm-build", [inv], 1) for inv in (
            unknown, bad_gzip, adhoc("noexport"), adhoc("initfail"), adhoc("grow", params={"grow_in_init": "1"}),
            adhoc("lookback", lookback=sp.Lookback(1, None)))] + \
            [await stream_frames(port, "sm-build-bad", [adhoc("lookback", lookback=sp.Lookback(1, None))], 1)]

    results = asyncio.run(scenario())
    codes = [r[0].error_code.code for r in results]
    assert codes[:5] == [ErrorCode.SMART_MODULE_NOT_FOUND, ErrorCode.SMART_MODULE_INVALID,
                         ErrorCode.SMART_MODULE_CHAIN_INIT_ERROR, ErrorCode.SMART_MODULE_CHAIN_INIT_ERROR,
                         ErrorCode.SMART_MODULE_MEMORY_LIMIT_EXCEEDED]
    assert str(smartmodule_error(results[0][0].error_code)) == "SmartModule no-such-module was not found"
    assert "No valid smartmodule found" in str(smartmodule_error(results[2][0].error_code))
    assert "Missing param key" in str(smartmodule_error(results[3][0].error_code))
    assert results[5][0].error_code.ok and values(results[5][0]) == [b"a"]   # look-back (last 1) saw "b"
    look_back_err = smartmodule_error(results[6][0].error_code)
    assert results[6][0].error_code.code is ErrorCode.SMART_MODULE_LOOK_BACK_ERROR
    assert str(look_back_err) == ("SmartModule look_back error: bad record in look_back\n\nSmartModule Lookback "
                                  "Error: \n    Offset: 1\n    Key: NULL\n    Value: bad")


def test_produce_side_filter_error_and_fully_filtered(smcluster: Cluster) -> None:
    port = smcluster.spu_public_port(SPU)

    async def scenario() -> tuple[list[sp.PartitionProduceResponse], list[sp.FetchablePartitionResponse]]:
        smcluster.fluvial("topic", "create", "sm-produce")
        answers = [await produce(port, "sm-produce", [b"apple", b"kiwi", b"banana"], [adhoc("filter")]),
                   await produce(port, "sm-produce", [b"2", b"x", b"4"], [adhoc("filter_map")]),
                   await produce(port, "sm-produce", [b"kiwi", b"lime"], [adhoc("filter")]),
                   await produce(port, "sm-produce", [b"cherry"], [adhoc("map")])]
        return answers, await stream_frames(port, "sm-produce", [], 9, records=3)

    (kept, rejected, filtered, mapped), frames = asyncio.run(scenario())
    assert kept.error_code.ok and kept.base_offset == 0
    assert rejected.error_code.code is ErrorCode.SMART_MODULE_RUNTIME_ERROR and rejected.base_offset == -1
    assert smartmodule_error(rejected.error_code).offset == 1
    assert filtered.error_code.ok and filtered.base_offset == 0          # Fluvio's "filtered": nothing written
    assert mapped.error_code.ok and mapped.base_offset == 2
    stored = [v for f in frames for v in values(f)]
    assert stored == [b"apple", b"banana", b"CHERRY"]


def test_compile_cache_survives_an_spu_restart(smcluster: Cluster) -> None:
    port = smcluster.spu_public_port(SPU)
    cache = smcluster.data / f"spu-{SPU}" / "smartmodule-cache"

    async def consume() -> list[bytes]:
        return values((await stream_frames(port, "sm-cache", [adhoc("map")], 1))[0])

    smcluster.fluvial("topic", "create", "sm-cache")
    assert asyncio.run(produce(port, "sm-cache", [b"abc"])).error_code.ok
    assert asyncio.run(consume()) == [b"ABC"]
    files = sorted(p.name for p in cache.glob("*.cwasm"))
    assert files
    stamps = {p.name: p.stat().st_mtime_ns for p in cache.glob("*.cwasm")}
    smcluster.kill(f"spu-{SPU}")
    smcluster.restart_spu(SPU)
    smcluster.wait_spus_online([SPU])
    got = wait_until("the restarted SPU serves the stream", lambda: asyncio.run(consume()), smcluster.logs)
    assert got == [b"ABC"]
    assert {p.name: p.stat().st_mtime_ns for p in cache.glob("*.cwasm")} == stamps   # loaded, not rewritten
    assert "smartmodule_cache_disk_hit" in (smcluster.data / "logs" / f"spu-{SPU}.log").read_text()



# ------------------------------------------------------------------------- by name (the SC's objects)

FLUVIO = shutil.which("fluvio", path=str(Path(sys.executable).parent)) or "fluvio"


def test_by_name_created_with_the_fluvio_cli_and_the_official_admin(smcluster: Cluster) -> None:
    """Like the official client's tests: `fluvio smartmodule create` (gzip payload) and
    `FluvioAdmin.create_smartmodule` (raw payload), then consumers by name; an unknown name is 6001 with
    Fluvio's text in the first response."""
    res = subprocess.run([FLUVIO, "smartmodule", "create", "sm-filter-a", "--wasm-file", str(MODULES / "filter.wasm")],
                         capture_output=True, text=True, timeout=60, env=smcluster.env)
    assert res.returncode == 0, res.stderr
    out = smcluster.client(f"""
        admin = FluvioAdmin.connect()
        admin.create_smartmodule("sm-agg", {str(MODULES / "aggregate.wasm")!r}, False)
        admin.create_topic("sm-named")
        f = Fluvio.connect()
        p = f.topic_producer("sm-named")
        for v in ["record-z", "record-b", "record-a", "foo", "a-last"]:
            p.send_string(v)
        p.flush()

        def take(n, **m):
            cfg = ConsumerConfig()
            cfg.smartmodule(**m)
            got = []
            for r in f.partition_consumer("sm-named", 0).stream_with_config(Offset.beginning(), cfg):
                got.append(r.value_string())
                if len(got) == n:
                    return got

        res = {{"filter": take(2, name="sm-filter-a"),
                "params": take(1, name="sm-filter-a", params={{"key": "foo"}}),
                "agg": take(2, name="sm-agg", aggregate=b">")}}
        cfg = ConsumerConfig()
        cfg.smartmodule(name="does_not_exist")
        try:
            next(iter(f.partition_consumer("sm-named", 0).stream_with_config(Offset.beginning(), cfg)))
            res["missing"] = None
        except Exception as e:
            res["missing"] = list(e.args)
        print(json.dumps(res))
    """)
    assert out["filter"] == ["record-a", "a-last"]
    assert out["params"] == ["foo"]
    assert out["agg"] == [">record-z", ">record-zrecord-b"]
    assert out["missing"] == ["SmartModule does_not_exist was not found"]


def test_deleting_a_module_does_not_break_running_streams(smcluster: Cluster) -> None:
    port = smcluster.spu_public_port(SPU)
    smcluster.fluvial("smartmodule", "create", "sm-upper", "--wasm-file", str(MODULES / "map.wasm"))
    smcluster.fluvial("topic", "create", "sm-deleted")
    by_name = sp.SmartModuleInvocation(sp.WasmPredefined("sm-upper"), sp.KindMap(),
                                       sp.SmartModuleExtraParams({}, None))

    async def scenario() -> tuple[list[bytes], list[sp.FetchablePartitionResponse]]:
        assert (await produce(port, "sm-deleted", [b"one"])).error_code.ok
        conn = await ClientConnection.connect("127.0.0.1", port)
        try:
            req = sp.StreamFetchRequest("sm-deleted", 0, 0, 1_048_890, sp.Isolation.READ_UNCOMMITTED, b"", None,
                                        None, [by_name], None)
            stream = conn.stream(sp.SpuApiKey.STREAM_FETCH, 24, encode(req, 24))
            got = []
            frame = decode_from(sp.StreamFetchResponse, await anext(stream), 24)
            got += values(frame.partition)
            smcluster.fluvial("smartmodule", "delete", "sm-upper")
            assert (await produce(port, "sm-deleted", [b"two"])).error_code.ok
            ack = sp.UpdateOffsetsRequest([sp.OffsetUpdate(frame.partition.next_filter_offset, frame.stream_id)])
            await conn.request(sp.SpuApiKey.UPDATE_OFFSETS, 0, encode(ack, 0))
            frame = decode_from(sp.StreamFetchResponse, await asyncio.wait_for(anext(stream), 30), 24)
            got += values(frame.partition)
            await stream.aclose()
        finally:
            await conn.close()
        fresh = await wait_for_6001(port)
        return got, fresh

    async def wait_for_6001(port: int) -> list[sp.FetchablePartitionResponse]:
        for _ in range(100):                  # the SC's delete reaches the SPU's store by its push
            frames = await stream_frames(port, "sm-deleted", [by_name], 1)
            if frames[0].error_code.code is ErrorCode.SMART_MODULE_NOT_FOUND:
                return frames
            await asyncio.sleep(0.1)
        return frames

    got, fresh = asyncio.run(scenario())
    assert got == [b"ONE", b"TWO"]
    assert fresh[0].error_code.code is ErrorCode.SMART_MODULE_NOT_FOUND


def test_fluvial_cli_consume_and_produce_with_a_module_by_name(smcluster: Cluster) -> None:
    """fluvial's own client (the lead's consume/produce flags) against this SPU half."""
    smcluster.fluvial("smartmodule", "create", "sm-cli-filter", "--wasm-file", str(MODULES / "filter.wasm"))
    smcluster.fluvial("topic", "create", "sm-cli")
    smcluster.fluvial("produce", "sm-cli", input="apple\nkiwi\nbanana\n")
    res = smcluster.fluvial("consume", "sm-cli", "-B", "-d", "--smartmodule", "sm-cli-filter")
    assert res.stdout.split() == ["apple", "banana"]
    smcluster.fluvial("produce", "sm-cli", "--smartmodule-path", str(MODULES / "map.wasm"), input="cherry\n")
    res = smcluster.fluvial("consume", "sm-cli", "-B", "-d")
    assert res.stdout.split() == ["apple", "kiwi", "banana", "CHERRY"]


def test_stream_fetch_v17_single_smartmodule_field(smcluster: Cluster) -> None:
    """StreamFetch 16..17 carries one `smartmodule` instead of the chain (what the 0.17.3 client falls back
    to without StreamFetch advertised); the module then gets the v17 input layout (params and join_record,
    no timestamp)."""
    port = smcluster.spu_public_port(SPU)

    async def scenario() -> sp.FetchablePartitionResponse:
        smcluster.fluvial("topic", "create", "sm-v17")
        assert (await produce(port, "sm-v17", [b"old", b"client"])).error_code.ok
        conn = await ClientConnection.connect("127.0.0.1", port)
        try:
            req = sp.StreamFetchRequest("sm-v17", 0, 0, 1_048_890, sp.Isolation.READ_UNCOMMITTED, b"",
                                        adhoc("map"), None, [], None)
            stream = conn.stream(sp.SpuApiKey.STREAM_FETCH, 17, encode(req, 17))
            frame = decode_from(sp.StreamFetchResponse, await asyncio.wait_for(anext(stream), 30), 17)
            await stream.aclose()
            return frame.partition
        finally:
            await conn.close()

    part = asyncio.run(scenario())
    assert part.error_code.ok and values(part) == [b"OLD", b"CLIENT"] and part.next_filter_offset == 2


def test_official_client_decodes_6004_and_other(smcluster: Cluster) -> None:
    """The official client reads fluvial's 6004 payload (RecordData key/value) and shows Fluvio's text;
    a trap reaches it as `Other("SmartModule err …")`."""
    out = smcluster.client(f"""
        M = {str(MODULES)!r}
        FluvioAdmin.connect().create_topic("sm-official-errors")
        f = Fluvio.connect()
        p = f.topic_producer("sm-official-errors")
        for v in ["2", "ten", "boom"]:
            p.send_string(v)
        p.flush()

        def first_error(path):
            cfg = ConsumerConfig()
            cfg.smartmodule(path=path)
            got = []
            try:
                for r in f.partition_consumer("sm-official-errors", 0).stream_with_config(Offset.beginning(), cfg):
                    got.append(r.value_string())
            except Exception as e:
                return [got, str(e)]

        print(json.dumps({{"runtime": first_error(M + "/filter_map.wasm"), "trap": first_error(M + "/trap.wasm")}}))
    """)
    got, text = out["runtime"]      # send_string stores an empty key (Some(b"")), not None: "Key: "
    assert text == ("SmartModule transform error invalid digit found in string\n\nSmartModule Info: \n"
                    "    Type: FilterMap\n    Offset: 1\n    Key: \n    Value: ten")
    got, text = out["trap"]
    assert got == []                # the three records are one batch: the trap fails the whole call
    assert text.startswith("Other error: SmartModule err adhoc: wasm trap: wasm `unreachable` instruction executed")


def test_fluvial_client_numbering_typed_errors_and_chains(smcluster: Cluster) -> None:
    """fluvial's own client: output numbered as Fluvio numbers it (base + index), a runtime error raised as
    SmartModuleRuntimeError after the records before it were handed over, an unknown name as
    SmartModuleNotFound, a transforms chain by name; the CLI prints the same texts."""
    from fluvial.client import smartmodules as smi
    from fluvial.client.connect import Fluvial
    from fluvial.client.consumer import ConsumerConfig, Offset
    from fluvial.errors import SmartModuleNotFound

    smcluster.fluvial("smartmodule", "create", "sm-lib-filter", "--wasm-file", str(MODULES / "filter.wasm"))
    smcluster.fluvial("smartmodule", "create", "sm-lib-half", "--wasm-file", str(MODULES / "filter_map.wasm"))
    smcluster.fluvial("topic", "create", "sm-lib")
    smcluster.fluvial("produce", "sm-lib", input="foo\nbar\nfooquux\nbaz\n")
    smcluster.fluvial("topic", "create", "sm-lib-ints")
    smcluster.fluvial("produce", "sm-lib-ints", input="2\n4\nx\n6\n")

    async def drain(topic: str, chain: tuple[sp.SmartModuleInvocation, ...]) -> tuple[list[tuple[int, bytes]], object]:
        client = await Fluvial.connect(f"127.0.0.1:{smcluster.sc_port}")
        got: list[tuple[int, bytes]] = []
        error: object = None
        try:
            consumer = await client.consumer(topic, [0])
            stream = await consumer.stream(Offset.beginning(), ConsumerConfig(disable_continuous=True,
                                                                              smartmodules=chain))
            try:
                async for r in stream:
                    got.append((r.offset, r.value))
            except Exception as e:
                error = e
            finally:
                await stream.close()
        finally:
            await client.close()
        return got, error

    got, error = asyncio.run(drain("sm-lib", (smi.by_name("sm-lib-filter", params={"key": "o"}),)))
    assert got == [(0, b"foo"), (1, b"fooquux")] and error is None      # real offsets 0 and 2: compacted
    got, error = asyncio.run(drain("sm-lib", (smi.by_name("no-such-module"),)))
    assert got == [] and isinstance(error, SmartModuleNotFound)
    assert str(error) == "SmartModule no-such-module was not found"
    got, error = asyncio.run(drain("sm-lib-ints", (smi.by_name("sm-lib-half"),)))
    assert [v for _, v in got] == [b"1", b"2"]
    assert isinstance(error, SmartModuleRuntimeError) and error.offset == 2 and error.record_value == b"x"
    chain = tuple(smi.transforms_from_lines(['{"uses": "sm-lib-filter", "with": {"key": "o"}}',
                                             '{"uses": "sm-lib-filter", "with": {"key": "q"}}']))
    got, error = asyncio.run(drain("sm-lib", chain))
    assert [v for _, v in got] == [b"fooquux"] and error is None
    res = smcluster.fluvial("consume", "sm-lib", "-B", "-d", "--smartmodule", "nope", check=False)
    assert res.returncode == 1 and "SmartModule nope was not found" in res.stderr
    res = smcluster.fluvial("consume", "sm-lib", "-B", "-d", "--transforms-line",
                            '{"uses": "sm-lib-filter", "with": {"key": "ba"}}')
    assert res.stdout.split() == ["bar", "baz"]


def test_smartmodule_test_runs_locally_and_from_the_cluster(smcluster: Cluster, tmp_path: Path) -> None:
    """`smartmodule test` (fluvio's BaseTestCmd flags, `crates/fluvio-cli-common/src/smartmodule.rs:26-70`):
    a local file (`--wasm-file`, as `smdk test`), or a transforms chain whose modules come from the cluster."""
    m = str(MODULES)
    res = smcluster.fluvial("sm", "test", "--wasm-file", f"{m}/map.wasm", "--text", "banana", "--key", "k1", "-k", "-v")
    assert res.stdout.splitlines() == ["1 records outputted", "[k1] BANANA"]
    (inp := tmp_path / "in.txt").write_text("a\nbb\nc\n")
    res = smcluster.fluvial("sm", "test", "--wasm-file", f"{m}/aggregate.wasm", "--file", str(inp))
    assert res.stdout.splitlines() == ["a", "abb", "abbc"]
    res = smcluster.fluvial("sm", "test", "--wasm-file", f"{m}/aggregate.wasm", "--file", str(inp), "--raw")
    assert res.stdout == "a\nbb\nc\n\n"
    res = smcluster.fluvial("sm", "test", "--wasm-file", f"{m}/lookback.wasm", "-r", "a", "-r", "b", "-r", "c",
                            "-l", "2", "--file", str(inp))
    assert res.stdout.split() == ["a", "bb"]                 # the look-back saw b and c: c is a duplicate
    res = smcluster.fluvial("sm", "test", "--wasm-file", f"{m}/filter_map.wasm", "--file", str(inp), check=False)
    assert res.returncode == 1 and "invalid digit found in string" in res.stderr and "Offset: 0" in res.stderr
    res = smcluster.fluvial("sm", "test", "--text", "x", check=False)
    assert res.returncode == 2
    smcluster.fluvial("smartmodule", "create", "sm-test-filter", "--wasm-file", f"{m}/filter.wasm")
    res = smcluster.fluvial("sm", "test", "--file", str(inp), "--transforms-line",
                            '{"uses": "sm-test-filter", "with": {"key": "b"}}')
    assert res.stdout.split() == ["bb"]
    res = smcluster.fluvial("sm", "test", "--text", "x", "--transforms-line", '{"uses": "absent"}', check=False)
    assert res.returncode == 1 and res.stderr.strip() == "smartmodule absent not found"
