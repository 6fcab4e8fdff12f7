"""Single server processes for tests that need their own flags, their log output or their metrics:
`fluvial run sc` / `fluvial run spu` on free ports, stderr to a file, `--metrics-addr` scraped over HTTP."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

from .cluster import free_ports

T = TypeVar("T")
FLUVIAL = [sys.executable, "-m", "fluvial.cli.main"]
START_TIMEOUT_SECONDS = 30.0


def free_port() -> int:
    """A free port below the ephemeral range (see cluster.LISTEN_PORTS)."""
    return free_ports(0)[0]


def free_pair() -> int:
    """A port p with p + 1 free too (public and private)."""
    return free_ports(0)[0]


def wait_until(check: Callable[[], T], what: str, timeout: float = 20.0) -> T:
    """A hang guard for the test side: `check()` until truthy, failing after `timeout` s."""
    deadline = time.monotonic() + timeout
    while True:
        with contextlib.suppress(Exception):
            value = check()
            if value:
                return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout} s")
        time.sleep(0.05)


class Proc:
    def __init__(self, name: str, args: list[str], root: Path) -> None:
        self.name = name
        self.args = args
        self.log_path = root / f"{name}.log"
        self.metrics_port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    ready_line = ""                              # logged once the process listens

    def start(self) -> Proc:
        started = self.count(self.ready_line) if self.ready_line else 0
        log = open(self.log_path, "ab")  # noqa: SIM115 - the child owns it
        self.proc = subprocess.Popen([*FLUVIAL, *self.args, "--metrics-addr", f"127.0.0.1:{self.metrics_port}"],
                                     stdout=log, stderr=log, stdin=subprocess.DEVNULL)
        log.close()
        wait_until(lambda: self.metrics_text(), f"{self.name} metrics endpoint", START_TIMEOUT_SECONDS)
        if self.ready_line:
            wait_until(lambda: self.count(self.ready_line) > started, f"{self.name} listening", START_TIMEOUT_SECONDS)
        return self

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def count(self, pattern: str) -> int:
        return len(re.findall(pattern, self.log()))

    def metrics_text(self) -> str:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=5) as r:
            return str(r.read().decode())

    def metric(self, name: str, **labels: str) -> float:
        """One sample's value (0 when absent)."""
        want = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))     # the exposition sorts them
        line = f"{name}{{{want}}} " if want else f"{name} "
        for row in self.metrics_text().splitlines():
            if row.startswith(line):
                return float(row.split()[-1])
        return 0.0

    def rss_peak_bytes(self) -> int:
        """VmHWM: the most resident memory the process ever had."""
        for row in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if row.startswith("VmHWM:"):
                return int(row.split()[1]) * 1024
        raise AssertionError("no VmHWM")

    def signal(self, sig: int) -> None:
        assert self.proc is not None
        os.kill(self.proc.pid, sig)

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            self.proc.send_signal(signal.SIGCONT)
            self.proc.terminate()
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)


class Sc(Proc):
    ready_line = "sc_started"

    def __init__(self, root: Path, *extra: str) -> None:
        self.port = free_pair()
        super().__init__("sc", ["run", "sc", "--data-dir", str(root / "sc"), "--public-addr",
                                f"127.0.0.1:{self.port}", *extra], root)

    @property
    def addr(self) -> str:
        return f"127.0.0.1:{self.port}"


class Spu(Proc):
    ready_line = "spu_started"

    def __init__(self, root: Path, sc: Sc, *extra: str, spu_id: int = 5001) -> None:
        self.spu_id = spu_id
        self.port = free_pair()
        self.sc = sc
        super().__init__(f"spu-{spu_id}", [
            "run", "spu", "--id", str(spu_id), "--data-dir", str(root / f"spu-{spu_id}"), "--public-addr",
            f"127.0.0.1:{self.port}", "--sc-addr", f"127.0.0.1:{sc.port + 1}", *extra], root)

    def start(self) -> Spu:
        super().start()
        self.wait_online()
        return self

    def online(self) -> bool:
        from fluvial.client.admin import list_spus

        spus = asyncio.run(list_spus("127.0.0.1", self.sc.port, timeout=5))
        return any(s.id == self.spu_id and s.online for s in spus)

    def wait_online(self, timeout: float = START_TIMEOUT_SECONDS) -> None:
        wait_until(self.online, f"SPU {self.spu_id} online", timeout)


@contextlib.contextmanager
def running(*procs: Proc) -> Iterator[None]:
    """Start in order, stop in reverse order (also when a start fails)."""
    started: list[Proc] = []
    try:
        for p in procs:
            started.append(p)
            p.start()
        yield
    finally:
        for p in reversed(started):
            p.stop()
