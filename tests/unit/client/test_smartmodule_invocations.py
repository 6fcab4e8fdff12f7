"""SmartModule invocations as fluvial's client and CLI build them, checked against the bytes the official
client sends (`reference/fluvio-smartmodules.md` §1.5) and fluvio's CLI rules (Generic kind, params,
transforms files and lines with humantime ages)."""

from __future__ import annotations

import gzip
from pathlib import Path

import pytest

from fluvial.cli import smartmodule as cli_sm
from fluvial.cli.common import UsageProblem
from fluvial.client import smartmodules as smi
from fluvial.errors import InvalidConfig
from fluvial.protocol import spu as sp

WASM = b"\x00asm\x01\x00\x00\x00"


def _chain(*invs: sp.SmartModuleInvocation) -> bytes:
    """The `smartmodules` field of a StreamFetch at v24, as the SPU receives it."""
    out = bytearray()
    sp.SMARTMODULES.encode(list(invs), out, 24)
    return bytes(out)


def test_by_name_with_aggregate_matches_the_official_client() -> None:
    """§1.5 row 1: `smartmodule(name="my-sm", aggregate=b"1")` → Generic(Aggregate{"1"})."""
    assert _chain(smi.by_name("my-sm", aggregate_initial=b"1")) == bytes.fromhex(
        "00000001 00 0005") + b"my-sm" + bytes.fromhex("07 01 00000001 31 0000 00")


def test_by_name_with_params_sorted_by_key() -> None:
    """§1.5 row 3: params {"key": "o", "a": "b"} as a map sorted by key."""
    assert _chain(smi.by_name("my-sm", params={"key": "o", "a": "b"})) == (
        bytes.fromhex("00000001 00 0005") + b"my-sm" + bytes.fromhex("07 00 0002 0001") + b"a"
        + bytes.fromhex("0001") + b"b" + bytes.fromhex("0003") + b"key" + bytes.fromhex("0001") + b"o"
        + bytes.fromhex("00"))


def test_from_wasm_gzips_raw_modules_once(tmp_path: Path) -> None:
    inv = smi.from_wasm(WASM)
    assert isinstance(inv.wasm, sp.WasmAdHoc) and gzip.decompress(inv.wasm.payload) == WASM
    already = gzip.compress(WASM)
    assert smi.from_wasm(already).wasm.payload == already
    f = tmp_path / "m.wasm"
    f.write_bytes(WASM)
    assert smi.from_path(f) == inv
    with pytest.raises(InvalidConfig, match="cannot read SmartModule file"):
        smi.from_path(tmp_path / "none.wasm")
    (tmp_path / "t.txt").write_text("text")
    with pytest.raises(InvalidConfig, match="not a WebAssembly module"):
        smi.from_path(tmp_path / "t.txt")


@pytest.mark.parametrize(("pairs", "expected"), [
    ([], {}),
    (["a=b"], {"a": "b"}),
    (["a=b=c", "x="], {"a": "b=c", "x": ""}),
    (["k=1", "k=2"], {"k": "2"}),
])
def test_params(pairs: list[str], expected: dict[str, str]) -> None:
    assert smi.parse_params(pairs) == expected


def test_params_without_equals_use_fluvios_text() -> None:
    with pytest.raises(InvalidConfig, match="invalid KEY=value: no `=` found in `oops`"):
        smi.parse_params(["oops"])


@pytest.mark.parametrize(("text", "seconds"), [
    ("12s", 12), ("7d", 604800), ("1h 30m", 5400), ("1h30m", 5400), ("250ms", 0.25), ("2 weeks", 1209600),
])
def test_humantime_durations(text: str, seconds: float) -> None:
    assert smi.parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["", "12", "5 parsecs", "s", "-1s"])
def test_bad_durations(text: str) -> None:
    with pytest.raises(InvalidConfig):
        smi.parse_duration(text)


TRANSFORMS = """
transforms:
  - uses: infinyon/jolt@0.4.1
    lookback:
      age: 7d
    with:
      spec:
        - operation: shift
          spec: {payload: {device: device}}
  - uses: filter-a
    lookback:
      last: 10
      age: 12s
    with:
      key: o
"""


def test_transforms_file_like_upstreams_full_yaml() -> None:
    """Like `crates/fluvio-smartengine/testdata/transformation/full.yaml`: maps/lists under `with` are passed
    on as JSON text, plain strings as they are; lookback ages are humantime."""
    first, second = smi.transforms_from_yaml(TRANSFORMS)
    assert first.wasm == sp.WasmPredefined("infinyon/jolt@0.4.1")
    assert first.kind == sp.KindGeneric(sp.ContextNone())
    assert first.params.inner == {"spec": '[{"operation":"shift","spec":{"payload":{"device":"device"}}}]'}
    assert first.params.lookback == sp.Lookback(0, 604800)
    assert second.params == sp.SmartModuleExtraParams({"key": "o"}, sp.Lookback(10, 12))
    assert smi.transforms_from_yaml("") == [] and smi.transforms_from_yaml("transforms: []") == []


def test_transforms_lines_are_json_steps() -> None:
    chain = smi.transforms_from_lines(['{"uses":"a"}', '{"uses":"b","with":{"k":"v"},"lookback":{"last":1}}'])
    assert [c.wasm for c in chain] == [sp.WasmPredefined("a"), sp.WasmPredefined("b")]
    assert chain[1].params == sp.SmartModuleExtraParams({"k": "v"}, sp.Lookback(1, None))


@pytest.mark.parametrize(("doc", "reason"), [
    ("transforms: [{with: {}}]", "needs `uses"),
    ("transforms: [{uses: a, what: 1}]", "unknown transform field"),
    ("transforms: [{uses: a, with: {n: 3}}]", "expected str, string, sequence or map"),
    ("transforms: [{uses: a, lookback: {last: -1}}]", "non-negative"),
    ("transforms: [{uses: a, lookback: {age: soon}}]", "invalid duration"),
    ("transforms: {uses: a}", "expected `transforms"),
    ("transforms: [a", "unable to read transformation config"),
])
def test_bad_transforms(doc: str, reason: str) -> None:
    with pytest.raises(InvalidConfig, match=reason):
        smi.transforms_from_yaml(doc)


def test_bad_transform_line() -> None:
    with pytest.raises(InvalidConfig, match="unable to parse `transform` argument"):
        smi.transforms_from_lines(["{not json"])


# ------------------------------------------------------------------------------- CLI flag rules

def test_cli_flags_build_one_chain(tmp_path: Path) -> None:
    f = tmp_path / "m.wasm"
    f.write_bytes(WASM)
    (t := tmp_path / "t.yaml").write_text("transforms:\n  - uses: x\n  - uses: y\n")
    assert cli_sm.invocations(None, None, None, None, None, None) == ()
    assert cli_sm.invocations("n", None, "0", ["a=b"], None, None) == (
        smi.by_name("n", params={"a": "b"}, aggregate_initial=b"0"),)
    assert cli_sm.invocations(None, f, None, None, None, None) == (smi.from_path(f),)
    assert [c.wasm for c in cli_sm.invocations(None, None, None, None, t, None)] == [
        sp.WasmPredefined("x"), sp.WasmPredefined("y")]
    assert len(cli_sm.invocations(None, None, None, None, None, ['{"uses":"z"}'])) == 1


@pytest.mark.parametrize(("args", "reason"), [      # clap's groups in consume/mod.rs:173-221 (usage errors, exit 2)
    (("n", "PATH", None, None, None, None),
     "the argument '--smartmodule <SMARTMODULE>' cannot be used with '--smartmodule-path <SMARTMODULE_PATH>'"),
    ((None, None, "0", None, None, None), "required by --aggregate-initial"),
    ((None, None, None, ["a=b"], None, None), "required by --params"),
    (("n", None, None, None, "T", None),
     "the argument '--transforms <TRANSFORMS>' cannot be used with '--smartmodule <SMARTMODULE>'"),
    ((None, None, None, None, "T", ['{"uses":"z"}']),
     "the argument '--transforms-line <TRANSFORMS_LINE>' cannot be used with '--transforms <TRANSFORMS>'"),
])
def test_cli_flag_conflicts(args: tuple[object, ...], reason: str, tmp_path: Path) -> None:
    real = tuple(tmp_path / "x" if a in ("PATH", "T") else a for a in args)
    with pytest.raises(UsageProblem) as e:
        cli_sm.invocations(*real)  # type: ignore[arg-type]
    assert reason in str(e.value)
