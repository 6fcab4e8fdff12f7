"""SmartModule objects on a real cluster: Create/List/Delete/Watch through fluvial's CLI (also under the
`fluvio` name), fluvial's admin and the official client's `FluvioAdmin`; the SC's push to the SPU and the
SPU asking on a miss; unknown object types answered, not dropped.

Texts from fluvio v0.17.3: `crates/fluvio-cli/src/client/smartmodule/create.rs:83` ("smartmodule \"NAME\" has
been created."), `delete.rs:46` ("smartmodule \"NAME\" deleted"), `list.rs:84` ("no smartmodules"),
`list.rs:95` (header SMARTMODULE, SIZE; bytesize's decimal units)."""

from __future__ import annotations

import asyncio
import gzip
import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from fluvial.client.admin import Admin
from fluvial.errors import AdminError, ErrorCode
from fluvial.protocol import sc as scp
from fluvial.protocol import smartmodule as sm
from fluvial.protocol.codec import decode, encode
from fluvial.transport.client import ClientConnection

from .cluster import Cluster

pytestmark = pytest.mark.timeout(300)

# The smallest valid module (magic + version) plus a custom section to give it a size.
WASM = b"\x00asm\x01\x00\x00\x00" + b"\x00\x0b\x04note" + b"x" * 6
FLUVIO = shutil.which("fluvio", path=str(Path(os.sys.executable).parent)) or "fluvio"


def _run(cluster: Cluster, argv: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, timeout=60, env=cluster.env)


def test_cli_create_list_delete_and_the_fluvio_alias(cluster: Cluster, tmp_path: Path) -> None:
    f = tmp_path / "mod.wasm"
    f.write_bytes(WASM)
    res = cluster.fluvial("smartmodule", "create", "cli-sm", "--wasm-file", str(f))
    assert res.stdout.strip() == 'smartmodule "cli-sm" has been created.'
    # `fluvio` is the same CLI: a script written for Fluvio's CLI runs unchanged
    res = _run(cluster, [FLUVIO, "smartmodule", "create", "cli-sm-2", "--wasm-file", str(f)])
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == 'smartmodule "cli-sm-2" has been created.'
    listing = cluster.fluvial("sm", "list").stdout.splitlines()
    assert listing[0].split() == ["SMARTMODULE", "SIZE"]
    rows = {line.split()[0]: line.split(maxsplit=1)[1] for line in listing[1:]}
    size = len(sm.gzip_wasm(WASM))          # the CLI stores the gzip, as Fluvio's does
    assert rows["cli-sm"] == f"{size} B" and rows["cli-sm-2"] == f"{size} B"
    doc = json.loads(cluster.fluvial("sm", "list", "-O", "json", "--filter", "cli-sm").stdout)
    assert [d["name"] for d in doc] == ["cli-sm"]
    assert cluster.fluvial("sm", "delete", "cli-sm", "cli-sm-2").stdout.splitlines() == [
        'smartmodule "cli-sm" deleted', 'smartmodule "cli-sm-2" deleted']
    assert "cli-sm" not in cluster.fluvial("sm", "list").stdout
    missing = cluster.fluvial("sm", "delete", "cli-sm", check=False)
    assert missing.returncode == 1 and "not found" in missing.stderr
    both = cluster.fluvial("sm", "delete", "-c", "nope-1", "nope-2", check=False)
    assert both.returncode == 1
    assert 'smart module "nope-1" delete failed with:' in both.stdout
    assert "Failed deleting smart module(s). Check previous errors." in both.stderr


def test_cli_refuses_bad_names_and_files_before_sending(cluster: Cluster, tmp_path: Path) -> None:
    f = tmp_path / "mod.wasm"
    f.write_bytes(WASM)
    bad = cluster.fluvial("sm", "create", "Bad_Name", "--wasm-file", str(f), check=False)
    assert bad.returncode == 1 and "Invalid name for SmartModule Bad_Name" in bad.stderr
    notwasm = tmp_path / "x.txt"
    notwasm.write_text("hello")
    res = cluster.fluvial("sm", "create", "txt", "--wasm-file", str(notwasm), check=False)
    assert res.returncode == 1 and "not a WebAssembly module" in res.stderr
    gone = cluster.fluvial("sm", "create", "gone", "--wasm-file", str(tmp_path / "none.wasm"), check=False)
    assert gone.returncode == 1 and "No such file or directory" in gone.stderr


def test_official_admin_raw_upload_list_watch_delete(cluster: Cluster, tmp_path: Path) -> None:
    """The Python admin uploads raw wasm (Fluvio's own SC stores it and its SPU then fails to gunzip it):
    fluvial accepts both forms."""
    f = tmp_path / "raw.wasm"
    f.write_bytes(WASM)
    out = cluster.client(f"""
        admin = FluvioAdmin.connect()
        admin.create_smartmodule("py-sm", {str(f)!r}, False)
        names = sorted(m.name() for m in admin.list_smartmodules([]))
        watch = admin.watch_smartmodule()
        first = next(watch)
        initial = sorted(m.name() for m in first.all())
        admin.delete_smartmodule("py-sm")
        after = sorted(m.name() for m in admin.list_smartmodules([]))
        try:
            admin.delete_smartmodule("py-sm")
            again = None
        except Exception as e:
            again = str(e)
        print(json.dumps({{"names": names, "initial": initial, "after": after, "again": again}}))
    """)
    assert "py-sm" in out["names"] and "py-sm" in out["initial"]
    assert "py-sm" not in out["after"]
    assert out["again"] == "SmartModule not found"          # the official client's text for 6001 on delete


def test_watch_sends_changes_not_full_syncs(cluster: Cluster) -> None:
    async def main() -> list[tuple[int, list[tuple[bool, str]], list[str]]]:
        got = []
        async with await Admin.connect("127.0.0.1", cluster.sc_port) as admin:
            watch = admin.watch_smartmodules()
            got.append(await anext(watch))
            await admin.create_smartmodule("watched", WASM)
            got.append(await anext(watch))
            await admin.delete_smartmodule("watched")
            got.append(await anext(watch))
            await watch.aclose()
        return [(e, [(d, i.name) for d, i in ch], [i.name for i in full]) for e, ch, full in got]

    first, created, deleted = asyncio.run(main())
    assert "watched" not in first[2]
    assert created[1] == [(False, "watched")] and created[2] == []
    assert deleted[1] == [(True, "watched")] and deleted[2] == []


def test_packages_qualified_names_and_summary(cluster: Cluster) -> None:
    """A module with package metadata is stored as name-group-version and found as group/name@version."""
    async def main() -> tuple[object, ...]:
        async with await Admin.connect("127.0.0.1", cluster.sc_port) as admin:
            pkg = sm.SmartModuleMetadata(sm.SmartModulePackage("upper", "acme", "1.2.0", "0.1.0"), {})
            spec = sm.SmartModuleSpec(pkg, None, sm.SmartModuleWasm(sm.WasmFormat.BINARY, gzip.compress(WASM)))
            req = scp.SMARTMODULE.create_request(name="ignored", dry_run=False, timeout_ms=None, spec=spec)
            r = await admin._call(scp.ScApiKey.CREATE, "SmartModule", req, None)
            status = decode(scp.Status, r.take(r.remaining()), 19)
            listed = await admin.list_smartmodules(["acme/upper@1.2.0"])
            none = await admin.list_smartmodules(["acme/upper@9.9.9"])
            bad_pkg = sm.SmartModuleSpec(sm.SmartModuleMetadata(sm.SmartModulePackage("", "", "1.0.0", "0.1.0"), {}),
                                         None, sm.SmartModuleWasm(sm.WasmFormat.BINARY, WASM))
            r = await admin._call(scp.ScApiKey.CREATE, "SmartModule", scp.SMARTMODULE.create_request(
                name="x", dry_run=False, timeout_ms=None, spec=bad_pkg), None)
            bad = decode(scp.Status, r.take(r.remaining()), 19)
            await admin.delete_smartmodule("acme/upper@1.2.0")
            gone = await admin.list_smartmodules()
            return status, listed, none, bad, gone

    status, listed, none, bad, gone = asyncio.run(main())
    assert status.name == "upper-acme-1.2.0" and status.error_code.ok
    assert [(m.name, m.fqdn, m.wasm_bytes) for m in listed] == [
        ("upper-acme-1.2.0", "acme/upper@1.2.0", len(gzip.compress(WASM)))]
    assert none == []
    assert bad.error_code.code is ErrorCode.SMART_MODULE_ERROR and bad.error_message == "invalid SmartModule package"
    assert all(m.name != "upper-acme-1.2.0" for m in gone)


def test_create_refuses_what_is_not_wasm(cluster: Cluster) -> None:
    async def main() -> scp.Status:
        async with await Admin.connect("127.0.0.1", cluster.sc_port) as admin:
            spec = sm.SmartModuleSpec(None, None, sm.SmartModuleWasm(sm.WasmFormat.BINARY, b"\x1f\x8bnot gzip"))
            r = await admin._call(scp.ScApiKey.CREATE, "SmartModule", scp.SMARTMODULE.create_request(
                name="broken", dry_run=False, timeout_ms=None, spec=spec), None)
            return decode(scp.Status, r.take(r.remaining()), 19)

    status = asyncio.run(main())
    assert status.error_code.code is ErrorCode.SMART_MODULE_INVALID
    assert "invalid gzip" in (status.error_message or "")
    with pytest.raises(AdminError):
        async def again() -> None:
            async with await Admin.connect("127.0.0.1", cluster.sc_port) as admin:
                await admin.delete_smartmodule("broken")          # nothing was stored
        asyncio.run(again())


def test_unknown_object_types_get_answers(cluster: Cluster) -> None:
    """Create/Delete of a label the SC holds none of get an error Status; List an empty list; the connection
    keeps serving."""
    async def main() -> tuple[object, ...]:
        conn = await ClientConnection.connect("127.0.0.1", cluster.sc_port, client_id="t", timeout=5)
        try:
            inner = encode(scp.SMARTMODULE.create_request(name="c1", dry_run=False, timeout_ms=None,
                                                          spec=sm.SmartModuleSpec()), 19)
            r = await conn.request(scp.ScApiKey.CREATE, 19, encode(scp.TypeBuffer("ManagedConnector", inner), 19))
            created = decode(scp.Status, r.take(r.remaining()), 19)
            r = await conn.request(scp.ScApiKey.LIST, 19, encode(scp.TypeBuffer(
                "DerivedStream", encode(scp.ListRequest([], False, False), 19)), 19))
            listed = decode(scp.TypeBuffer, r.take(r.remaining()), 19)
            r = await conn.request(scp.ScApiKey.LIST, 19, scp.encode_typed("Topic", scp.ListRequest([], False, False), 19))
            still = scp.decode_typed_response(scp.ScApiKey.LIST, r.take(r.remaining()), 19)
            return created, listed, still
        finally:
            await conn.close()

    created, listed, (label, _topics) = asyncio.run(main())
    assert created.name == "c1" and created.error_code.code is ErrorCode.INVALID_CREATE_REQUEST
    assert "ManagedConnector" in (created.error_message or "")
    assert listed.label == "DerivedStream" and listed.payload == bytes(4)
    assert label == "Topic"


def _rest(r: object) -> bytes:
    return r.take(r.remaining())  # type: ignore[attr-defined]


def test_sc_pushes_modules_to_spus_and_answers_a_miss(cluster: Cluster) -> None:
    """What an SPU gets on the SC's private port: every object then each Create/Delete (3003), and one
    module by name (3004) for a consume that names a module not pushed yet."""
    from fluvial.protocol import internal as i

    async def main() -> tuple[object, ...]:
        async with await Admin.connect("127.0.0.1", cluster.sc_port) as admin:
            await admin.create_smartmodule("pushed", WASM)
        conn = await ClientConnection.connect("127.0.0.1", cluster.sc_port + 1, client_id="t", timeout=5)
        try:
            r = await conn.request(i.FETCH_SMARTMODULE, 0, encode(i.FetchSmartModuleRequest("pushed"), 0))
            found = decode(i.FetchSmartModuleResponse, r.take(r.remaining()), 0)
            r = await conn.request(i.FETCH_SMARTMODULE, 0, encode(i.FetchSmartModuleRequest("absent"), 0))
            absent = decode(i.FetchSmartModuleResponse, r.take(r.remaining()), 0)
            stream = conn.stream(i.WATCH_SMARTMODULES, 0, encode(i.WatchSmartModulesRequest(0), 0))
            full = decode(i.SmartModulesUpdate, _rest(await anext(stream)), 0)
            async with await Admin.connect("127.0.0.1", cluster.sc_port) as admin:
                await admin.delete_smartmodule("pushed")
            change = decode(i.SmartModulesUpdate, _rest(await anext(stream)), 0)
            await stream.aclose()
            return found, absent, full, change
        finally:
            await conn.close()

    found, absent, full, change = asyncio.run(main())
    assert found.found is not None and found.found.name == "pushed"
    assert sm.raw_wasm(found.found.spec.wasm.payload, 1 << 20) == WASM
    assert absent.found is None
    assert full.full and "pushed" in [c.name for c in full.changes]
    assert not change.full and [(c.name, c.spec) for c in change.changes] == [("pushed", None)]


def test_cli_watch_prints_the_list_after_each_change(cluster: Cluster, tmp_path: Path) -> None:
    """fluvio's `smartmodule watch` (`watch.rs`): a blank line and the list again on every event."""
    import select
    import sys
    import time

    f = tmp_path / "mod.wasm"
    f.write_bytes(WASM)
    proc = subprocess.Popen([sys.executable, "-m", "fluvial.cli.main", "sm", "watch"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env=cluster.env)
    lines: list[str] = []
    pending = bytearray()

    def read_some(wait: float) -> None:       # raw reads: a buffered reader would hide lines from select
        assert proc.stdout is not None
        if select.select([proc.stdout], [], [], wait)[0]:
            pending.extend(os.read(proc.stdout.fileno(), 65536))
            *done, rest = pending.split(b"\n")
            lines.extend(x.decode() for x in done)
            pending[:] = rest

    def a_list_shown() -> bool:        # a whole list after the blank line: the header and rows, or "none"
        return any(x == "no smartmodules" or x.startswith("SMARTMODULE") for x in lines)

    def read_until(done: object) -> None:
        deadline = time.monotonic() + 30
        while not done() and time.monotonic() < deadline:  # type: ignore[operator]
            read_some(0.5)
        assert done(), lines  # type: ignore[operator]

    try:
        read_until(a_list_shown)                                    # the initial set
        lines.clear()
        cluster.fluvial("sm", "create", "watched-cli", "--wasm-file", str(f))
        read_until(lambda: any(x.startswith("watched-cli") for x in lines))
        assert lines[0] == ""
        read_some(0.5)
        lines.clear()
        cluster.fluvial("sm", "delete", "watched-cli")
        read_until(a_list_shown)
        read_some(0.5)
        assert not any(x.startswith("watched-cli") for x in lines)
    finally:
        proc.terminate()
        proc.wait(timeout=10)
