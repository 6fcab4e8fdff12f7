"""A user's view of a full disk: an SPU whose data dir is a real tmpfs (its own mount namespace), fed by
`fluvial produce`. The producer gets one clear line naming the SPU, the data dir and the free bytes;
when the disk grows the same SPU process takes writes again; a producer that keeps retrying delivers
everything once space returns — nothing lost, nothing twice."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from fluvial.client.admin import list_spus

from ..integration.cluster import free_ports, stop_processes
from .test_full_disk import COMMAND_TIMEOUT_SECONDS, Namespaces, namespaces  # noqa: F401 - fixture

FLUVIAL = [sys.executable, "-m", "fluvial.cli.main"]
DISK_MIB = 24


class TinyDiskCluster:
    def __init__(self, ns: Namespaces, root: Path) -> None:
        self.ns = ns
        self.sc_port, spu_port = free_ports(1)
        self.disk = root / "disk"
        self.disk.mkdir()
        self.env = {**os.environ, "FLV_PROFILE_PATH": str(root / "profile")}
        self.logs = root
        self.sc = self._spawn("sc", [*FLUVIAL, "run", "sc", "--data-dir", str(root / "sc"), "--public-addr",
                                     f"127.0.0.1:{self.sc_port}"])
        spu = " ".join([*FLUVIAL, "run", "spu", "--id", "5001", "--data-dir", str(self.disk), "--public-addr",
                        f"127.0.0.1:{spu_port}", "--private-addr", f"127.0.0.1:{spu_port + 1}", "--sc-addr",
                        f"127.0.0.1:{self.sc_port + 1}"])
        self.spu = self._spawn("spu", [*ns.unshare, "sh", "-c",
                                       f"mount -t tmpfs -o size={DISK_MIB}m tmpfs {self.disk} && exec {spu}"])
        self._wait_online()

    def _spawn(self, name: str, argv: list[str]) -> subprocess.Popen[bytes]:
        with open(self.logs / f"{name}.log", "wb") as log:
            return subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, env=self.env)

    def _wait_online(self) -> None:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if any(s.online for s in asyncio.run(list_spus("127.0.0.1", self.sc_port, timeout=2))):
                    return
            except Exception:
                pass
            time.sleep(0.2)
        raise AssertionError(f"SPU not online\n{self.log('spu')}")

    def log(self, name: str) -> str:
        return (self.logs / f"{name}.log").read_text(errors="replace")

    def cli(self, *args: str, input: bytes | None = None, timeout: float = 120) -> subprocess.CompletedProcess[bytes]:
        return subprocess.run([*FLUVIAL, *args, "--cluster", f"127.0.0.1:{self.sc_port}"], input=input, capture_output=True,
                              timeout=timeout, env=self.env)

    def resize(self, size_mib: int) -> None:
        done = subprocess.run([*self.ns.nsenter(self.spu.pid), "mount", "-t", "tmpfs", "-o",
                               f"remount,size={size_mib}m", "tmpfs", str(self.disk)], capture_output=True, text=True,
                              timeout=COMMAND_TIMEOUT_SECONDS)
        assert done.returncode == 0, done.stderr

    def stop(self) -> None:
        stop_processes([self.spu, self.sc])


@pytest.fixture
def tiny(namespaces: Namespaces, tmp_path: Path) -> Iterator[TinyDiskCluster]:  # noqa: F811
    c = TinyDiskCluster(namespaces, tmp_path)
    try:
        yield c
    finally:
        c.stop()


def records(prefix: str, n: int, size: int = 1000) -> bytes:
    return b"".join(f"{prefix}{i:07d}".encode().ljust(size, b".") + b"\n" for i in range(n))


def consumed(tiny: TinyDiskCluster) -> list[bytes]:
    res = tiny.cli("consume", "fill", "-B", "-d", "-O", "raw")
    assert res.returncode == 0, res.stderr
    return res.stdout.splitlines()


def test_full_disk_reported_to_the_producer_then_recovers_without_restart(tiny: TinyDiskCluster) -> None:
    assert tiny.cli("topic", "create", "fill").returncode == 0
    spu_pid = tiny.spu.pid

    full = tiny.cli("produce", "fill", "--delivery-semantic", "at-most-once", input=records("a", 30_000))
    assert full.returncode != 0
    message = full.stderr.decode()
    assert len(message.strip().splitlines()) == 1 and "Traceback" not in message, message
    assert "full" in message and "bytes free" in message and "SPU 5001" in message and str(tiny.disk) in message

    before = consumed(tiny)
    assert len(before) == len(set(before)) and 0 < len(before) < 30_000          # what was acknowledged is there

    tiny.resize(DISK_MIB * 3)                                                   # space returns: no restart
    ok = tiny.cli("produce", "fill", input=records("b", 1000))
    assert ok.returncode == 0, ok.stderr
    after = consumed(tiny)
    assert after[:len(before)] == before and after[len(before):] == records("b", 1000).splitlines()

    # full again; a retrying producer waits, then delivers everything once the disk grows
    tiny.cli("produce", "fill", "--delivery-semantic", "at-most-once", input=records("c", 60_000))
    base = consumed(tiny)
    waiting = subprocess.Popen([*FLUVIAL, "produce", "fill", "--delivery-timeout", "90s", "--cluster",
                                f"127.0.0.1:{tiny.sc_port}"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, env=tiny.env)
    waiting.stdin.write(records("d", 2000))                                     # type: ignore[union-attr]
    waiting.stdin.close()                                                       # type: ignore[union-attr]
    waiting.stdin = None
    time.sleep(2)
    assert waiting.poll() is None                                               # still retrying, not failed
    tiny.resize(DISK_MIB * 6)
    _out, err = waiting.communicate(timeout=120)
    assert waiting.returncode == 0, err
    assert err.decode().count("produce_retrying") <= 1, err                     # one warning per partition per 30 s
    final = consumed(tiny)
    assert final[:len(base)] == base
    assert final[len(base):] == records("d", 2000).splitlines()                # all of them, once, in order
    assert tiny.spu.pid == spu_pid and tiny.spu.poll() is None                  # the same SPU process throughout
    spu_log = tiny.log("spu")
    assert spu_log.count("produce_rejected") < 50                               # bounded logs while full
