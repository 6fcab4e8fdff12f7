"""The SC's metadata on a full filesystem (issue: disk exhaustion, item 5): the SC's data dir is a real
tmpfs in its own mount namespace, filled to the last byte. SPUs still register and heartbeat (liveness
lives in memory), a topic create is refused with a clear text instead of a dropped connection, `cluster
status` shows the alert — and once space returns the same SC process takes the change and writes what it
kept in memory."""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from fluvial.client.admin import Admin, TopicConfig
from fluvial.errors import AdminError

from ..integration.cluster import free_ports, stop_processes
from .test_full_disk import COMMAND_TIMEOUT_SECONDS, Namespaces, namespaces  # noqa: F401 - fixture

FLUVIAL = [sys.executable, "-m", "fluvial.cli.main"]


def test_spus_register_while_the_sc_disk_is_full(namespaces: Namespaces, tmp_path: Path) -> None:  # noqa: F811
    ns = namespaces
    sc_port, base = free_ports(2)
    sc_dir = tmp_path / "sc"
    sc_dir.mkdir()
    logs = tmp_path / "logs"
    logs.mkdir()
    procs: list[subprocess.Popen[bytes]] = []

    def spawn(name: str, argv: list[str]) -> subprocess.Popen[bytes]:
        with open(logs / f"{name}.log", "wb") as log:
            p = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT)
        procs.append(p)
        return p

    def spu(spu_id: int) -> None:
        port = base + 10 * (spu_id - 5001)
        spawn(f"spu-{spu_id}", [*FLUVIAL, "run", "spu", "--id", str(spu_id), "--data-dir", str(tmp_path / f"spu-{spu_id}"),
                                "--public-addr", f"127.0.0.1:{port}", "--private-addr", f"127.0.0.1:{port + 1}",
                                "--sc-addr", f"127.0.0.1:{sc_port + 1}"])

    def in_sc_ns(*argv: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*ns.nsenter(sc.pid), *argv], capture_output=True, text=True,
                              timeout=COMMAND_TIMEOUT_SECONDS)

    async def admin(call: Any) -> Any:
        async with await Admin.connect("127.0.0.1", sc_port, timeout=15) as a:
            return await call(a)

    def online() -> set[int]:
        with contextlib.suppress(Exception):
            return {s.id for s in asyncio.run(admin(lambda a: a.list_spus())) if s.online}
        return set()

    def wait(what: str, check: Any, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if check():
                return
            time.sleep(0.2)
        raise AssertionError(f"timed out waiting for {what}\n" + "\n".join(
            f"== {f.name}\n{f.read_text(errors='replace')[-3000:]}" for f in sorted(logs.glob("*.log"))))

    sc_cmd = " ".join([*FLUVIAL, "run", "sc", "--data-dir", str(sc_dir), "--public-addr", f"127.0.0.1:{sc_port}"])
    sc = spawn("sc", [*ns.unshare, "sh", "-c", f"mount -t tmpfs -o size=4m tmpfs {sc_dir} && exec {sc_cmd}"])
    try:
        spu(5001)
        wait("SPU 5001 online", lambda: 5001 in online())
        asyncio.run(admin(lambda a: a.create_topic("before", TopicConfig())))
        filled = in_sc_ns("sh", "-c", f"dd if=/dev/zero of={sc_dir}/filler bs=64k 2>/dev/null; "
                                      f"df -k {sc_dir} | tail -1")
        assert " 0 " in filled.stdout or "100%" in filled.stdout, filled.stdout
        spu(5002)                                        # registers, heartbeats: all in memory
        wait("SPU 5002 online on a full SC disk", lambda: online() == {5001, 5002})
        try:
            asyncio.run(admin(lambda a: a.create_topic("during", TopicConfig())))
        except AdminError as e:
            assert "the SC cannot write its metadata" in str(e)
        else:
            raise AssertionError("a create on a full metadata disk succeeded")
        status = subprocess.run([*FLUVIAL, "cluster", "status", "--sc-port", str(sc_port)], capture_output=True,
                                text=True, timeout=60)
        assert "FluvialMetadataUnwritable" in status.stdout, status.stdout
        in_sc_ns("rm", "-f", str(sc_dir / "filler"))
        asyncio.run(admin(lambda a: a.create_topic("after", TopicConfig())))      # the same SC process
        names = {t.name for t in asyncio.run(admin(lambda a: a.list_topics()))}
        assert names == {"before", "after"}
        wait("the kept writes flushed", lambda: "metadata_write_recovered" in (logs / "sc.log").read_text())
        assert sc.poll() is None
        assert (logs / "sc.log").read_text().count("metadata_write_failed") == 1     # one line per outage
    finally:
        stop_processes(procs)
