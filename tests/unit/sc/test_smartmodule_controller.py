"""The SC's SmartModule rules (Create/Delete/List) over a real SQLite store: what is stored under which
key, what survives a restart, what is refused with which code."""

from __future__ import annotations

import gzip
from pathlib import Path

import pytest

from fluvial.errors import ErrorCode
from fluvial.protocol import sc as scp
from fluvial.protocol import smartmodule as sm
from fluvial.protocol.codec import decode, encode
from fluvial.sc.smartmodules import SmartModuleController
from fluvial.sc.store import LabelStore, ObjectCodec, SqliteBackend

WASM = b"\x00asm\x01\x00\x00\x00"
CODEC = ObjectCodec(lambda m: encode(m, 19), lambda b: decode(scp.SMARTMODULE.metadata, b, 19))


def _ctl(path: Path) -> tuple[SmartModuleController, SqliteBackend]:
    backend = SqliteBackend(path / "m.db")
    store = LabelStore("SmartModule", backend, CODEC)
    store.load(backend.load().get("SmartModule", {}))
    return SmartModuleController(store), backend


def _spec(payload: bytes, pkg: tuple[str, str, str] | None = None) -> sm.SmartModuleSpec:
    meta = sm.SmartModuleMetadata(sm.SmartModulePackage(*pkg, "0.1.0"), {}) if pkg else None
    return sm.SmartModuleSpec(meta, None, sm.SmartModuleWasm(sm.WasmFormat.BINARY, payload))


@pytest.mark.parametrize(("name", "spec", "code", "key"), [
    ("raw", _spec(WASM), ErrorCode.NONE, "raw"),
    ("gz", _spec(gzip.compress(WASM)), ErrorCode.NONE, "gz"),
    ("pkg", _spec(WASM, ("up", "acme", "1.0.0")), ErrorCode.NONE, "up-acme-1.0.0"),
    ("Bad_Name", _spec(WASM), ErrorCode.SMART_MODULE_ERROR, "Bad_Name"),
    ("nopkg", _spec(WASM, ("", "acme", "1.0.0")), ErrorCode.SMART_MODULE_ERROR, "nopkg"),
    ("text", _spec(b"hello"), ErrorCode.SMART_MODULE_INVALID, "text"),
    ("badgz", _spec(b"\x1f\x8b\x08junk"), ErrorCode.SMART_MODULE_INVALID, "badgz"),
])
def test_create(tmp_path: Path, name: str, spec: sm.SmartModuleSpec, code: ErrorCode, key: str) -> None:
    ctl, backend = _ctl(tmp_path)
    status = ctl.create(name, spec, dry_run=False)
    assert (status.error_code.code, status.name) == (code, key)
    assert (key in ctl.objects()) == (code is ErrorCode.NONE)
    backend.close()


def test_dry_run_stores_nothing_and_objects_survive_restart(tmp_path: Path) -> None:
    ctl, backend = _ctl(tmp_path)
    assert ctl.create("dry", _spec(WASM), dry_run=True).error_code.ok
    assert ctl.objects() == {}
    assert ctl.create("kept", _spec(gzip.compress(WASM)), dry_run=False).error_code.ok
    assert ctl.create("kept", _spec(WASM), dry_run=False).error_code.ok          # Create replaces, as Fluvio's apply
    backend.close()
    again, backend = _ctl(tmp_path)
    assert again.objects() == {"kept": _spec(WASM)}
    backend.close()


def test_delete_and_list(tmp_path: Path) -> None:
    ctl, backend = _ctl(tmp_path)
    ctl.create("a", _spec(WASM), False)
    ctl.create("x", _spec(WASM + b"\x00", ("up", "acme", "1.0.0")), False)
    listed = ctl.listing([], summary=True)
    assert [(m.name, m.spec.summary.wasm_length, m.spec.wasm.payload) for m in listed] == [
        ("a", len(WASM), b""), ("up-acme-1.0.0", len(WASM) + 1, b"")]
    assert [m.name for m in ctl.listing(["acme/up"], summary=False)] == ["up-acme-1.0.0"]
    assert ctl.listing(["acme/up"], summary=False)[0].spec.wasm.payload == WASM + b"\x00"
    missing = ctl.delete("nothing")
    assert missing.error_code.code is ErrorCode.SMART_MODULE_NOT_FOUND and missing.error_code.payload == ("nothing",)
    assert ctl.delete("acme/up@1.0.0").error_code.ok
    assert ctl.delete("a").error_code.ok
    assert ctl.objects() == {}
    backend.close()
