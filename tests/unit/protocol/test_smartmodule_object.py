"""The SmartModule SC object and its names (`reference/fluvio-smartmodules.md` §5.1, §5.3): golden bytes of
the official client's Create, qualified-name matching (upstream `SmartModulePackageKey`), payload forms."""

from __future__ import annotations

import contextlib
import gzip

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fluvial.protocol import sc
from fluvial.protocol import smartmodule as sm
from fluvial.protocol.codec import decode, encode

WASM = b"\x00asm\x01\x00\x00\x00"


def test_official_python_create_bytes() -> None:
    """§5.3: `FluvioAdmin.create_smartmodule("sm-probe", path, False)` as traced (raw wasm payload)."""
    payload = WASM + bytes(0x114CF - len(WASM))
    inner = (bytes.fromhex("0008") + b"sm-probe" + bytes.fromhex("00 00") + bytes.fromhex("00 00")
             + bytes.fromhex("00 000114cf") + payload)
    body = bytes.fromhex("000b") + b"SmartModule" + len(inner).to_bytes(4, "big") + inner
    assert len(inner) == 0x114E2                             # the captured buffer length
    label, req = sc.decode_typed_request(sc.ScApiKey.CREATE, body, 19)
    assert (label, req.name, req.dry_run, req.timeout_ms) == ("SmartModule", "sm-probe", False, None)
    assert req.spec == sm.SmartModuleSpec(None, None, sm.SmartModuleWasm(sm.WasmFormat.BINARY, payload))
    assert sc.encode_typed("SmartModule", req, 19) == body


def test_list_request_bytes_of_the_python_admin() -> None:
    """§5.3: List body `000b"SmartModule" 00000006 | 00000000 00 00`."""
    body = bytes.fromhex("000b") + b"SmartModule" + bytes.fromhex("00000006 00000000 00 00")
    label, req = sc.decode_typed_request(sc.ScApiKey.LIST, body, 19)
    assert (label, req) == ("SmartModule", sc.ListRequest([], False, False))


def test_package_encoding_and_visibility_gate() -> None:
    pkg = sm.SmartModulePackage("upper", "acme", "1.2.0", "0.1.0", "desc", None, sm.SmartModuleVisibility.PUBLIC, None)
    meta = sm.SmartModuleMetadata(pkg, {"key": sm.SmartModuleParam("which letter", True)})
    spec = sm.SmartModuleSpec(meta, None, sm.SmartModuleWasm(sm.WasmFormat.BINARY, b"x"))
    at19 = encode(spec, 19)
    assert at19.startswith(bytes.fromhex("01 0005") + b"upper" + bytes.fromhex("0004") + b"acme")
    assert decode(sm.SmartModuleSpec, at19, 19) == spec
    at18 = encode(spec, 18)                    # visibility is v19+: one byte shorter, decoded as private
    assert len(at18) == len(at19) - 1
    assert decode(sm.SmartModuleSpec, at18, 18).meta.package.visibility is sm.SmartModuleVisibility.PRIVATE


def test_summary_drops_the_payload() -> None:
    spec = sm.SmartModuleSpec(None, None, sm.SmartModuleWasm(sm.WasmFormat.BINARY, b"abcdef"))
    assert spec.summarized() == sm.SmartModuleSpec(None, sm.SmartModuleWasmSummary(6), sm.SmartModuleWasm())


# ------------------------------------------------------------------------------------------ names

@pytest.mark.parametrize(("text", "key"), [
    ("filter", sm.PackageKey("filter")),
    ("acme/filter", sm.PackageKey("filter", "acme")),
    ("acme/filter@0.1.0", sm.PackageKey("filter", "acme", "0.1.0")),
    ("filter@0.1.0", sm.PackageKey("filter@0.1.0")),           # no group: the whole text is the name
])
def test_parse_qualified_names(text: str, key: sm.PackageKey) -> None:
    assert sm.PackageKey.parse(text) == key


def _with_pkg(name: str, group: str, version: str) -> sm.SmartModuleSpec:
    return sm.SmartModuleSpec(sm.SmartModuleMetadata(sm.SmartModulePackage(name, group, version, "0.1.0"), {}))


OBJECTS = {
    "plain": sm.SmartModuleSpec(),
    "upper-acme-1.0.0": _with_pkg("upper", "acme", "1.0.0"),
    "upper-acme-2.0.0": _with_pkg("upper", "acme", "2.0.0"),
    "lower-other-1.0.0": _with_pkg("lower", "other", "1.0.0"),
}


@pytest.mark.parametrize(("name", "found"), [
    ("plain", "plain"),
    ("upper-acme-2.0.0", "upper-acme-2.0.0"),        # the store key itself
    ("acme/upper@2.0.0", "upper-acme-2.0.0"),
    ("acme/upper@1.0.0", "upper-acme-1.0.0"),
    ("acme/upper", "upper-acme-1.0.0"),              # any version: the first key in order
    ("upper", "upper-acme-1.0.0"),                   # a package name matches without group/version
    ("other/upper", None),
    ("acme/upper@3.0.0", None),
    ("nothing", None),
])
def test_find_matches_like_upstream(name: str, found: str | None) -> None:
    hit = sm.find(name, OBJECTS)
    assert (hit[0] if hit else None) == found


def test_store_ids() -> None:
    assert sm.PackageKey.parse("acme/upper@1.0.0").store_id() == "upper-acme-1.0.0"
    assert _with_pkg("upper", "acme", "1.0.0").store_id("ignored") == "upper-acme-1.0.0"
    assert sm.SmartModuleSpec().store_id("given") == "given"


# ---------------------------------------------------------------------------------------- payload

def test_payload_forms() -> None:
    assert sm.payload_kind(WASM) == "wasm" and sm.payload_kind(gzip.compress(WASM)) == "gzip"
    assert sm.raw_wasm(WASM, 100) == WASM
    assert sm.raw_wasm(gzip.compress(WASM), 100) == WASM
    assert sm.raw_wasm(sm.gzip_wasm(WASM), 100) == WASM
    # deterministic, like the client's gzip header `1f 8b 08 00 00000000 ..` (§1.2): no name, mtime 0
    assert sm.gzip_wasm(WASM)[:8] == bytes.fromhex("1f8b0800 00000000")


@pytest.mark.parametrize(("payload", "reason"), [
    (b"", "not a WebAssembly module"),
    (b"hello world", "not a WebAssembly module"),
    (b"\x1f\x8bgarbage", "invalid gzip"),
    (gzip.compress(WASM)[:-6], "truncated"),
    (gzip.compress(b"not wasm inside"), "does not hold a WebAssembly module"),
    (WASM + bytes(200), "larger than 100 bytes"),
    (gzip.compress(WASM + bytes(10_000_000)), "larger than 100 bytes"),   # a gzip bomb stops at the cap
])
def test_bad_payloads_are_refused(payload: bytes, reason: str) -> None:
    with pytest.raises(sm.PayloadError, match=reason):
        sm.raw_wasm(payload, 100)


@given(st.binary(max_size=64))
def test_raw_wasm_never_raises_anything_else(data: bytes) -> None:
    for payload in (data, b"\x1f\x8b" + data, gzip.compress(data)):
        with contextlib.suppress(sm.PayloadError):
            assert sm.raw_wasm(payload, 1000)[:4] == sm.WASM_MAGIC
