"""A real local cluster for tests: `fluvial cluster start` processes on free ports, and the official
`fluvio` client run in subprocesses with a timeout (it has none of its own)."""

from __future__ import annotations

import contextlib
import json
import os
import random
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

from fluvial import defaults as d

FLUVIAL = [sys.executable, "-m", "fluvial.cli.main"]
CLIENT_TIMEOUT_SECONDS = 60


def _port_free(port: int) -> bool:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


# Test servers listen below the kernel's ephemeral range (ip_local_port_range, 32768-60999 here): a port
# checked free there can be taken by any outgoing connection before the server binds it.
LISTEN_PORTS = (10000, 32700)


def free_ports(spus: int) -> tuple[int, int]:
    """(sc_port, spu_base_port) with sc, sc+1 and base+10k, base+10k+1 free for k < spus."""
    rng = random.Random()
    low, high = LISTEN_PORTS
    middle = (low + high) // 2
    for _ in range(200):
        sc = rng.randrange(low, middle, 2)
        base = rng.randrange(middle, high - d.SPU_PORT_STRIDE * max(spus, 1), 10)
        ports = [sc, sc + 1] + [base + d.SPU_PORT_STRIDE * k + j for k in range(spus) for j in (0, 1)]
        if all(_port_free(p) for p in ports):
            return sc, base
    raise RuntimeError("no free ports found")


def wait_until(what: str, check: Any, logs: Any, timeout: float = 30) -> Any:
    """Poll `check()` (exceptions count as not yet) until it returns something truthy; fail with `what` and
    `logs()` after `timeout` seconds — a hang guard, not a timing assertion."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(Exception):
            got = check()
            if got:
                return got
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}\n{logs()}")


def stop_processes(procs: list[subprocess.Popen[bytes]], grace: float = 15) -> None:
    """SIGTERM every process, wait up to `grace` seconds each, then SIGKILL what is left."""
    for p in procs:
        with contextlib.suppress(ProcessLookupError):
            p.terminate()
    for p in procs:
        try:
            p.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            p.kill()


class Cluster:
    def __init__(self, root: Path, spus: int = 1, env: dict[str, str] | None = None) -> None:
        self.root = root
        self.spus = spus
        self.sc_port, self.spu_base = free_ports(spus)
        self.profile = root / "fluvio-profile"
        self.env = {**os.environ, "FLV_PROFILE_PATH": str(self.profile), "FLV_SOCKET_WAIT": "10",
                    "FLV_METADATA_TIMEOUT": "10000", "FLV_TOPIC_WAIT": "5", **(env or {})}
        self.data = root / "data"

    def fluvial(self, *args: str, timeout: float = 90, check: bool = True,
                input: str | None = None) -> subprocess.CompletedProcess[str]:
        res = subprocess.run([*FLUVIAL, *args], capture_output=True, text=True, timeout=timeout, env=self.env,
                             input=input)
        if check and res.returncode != 0:
            raise AssertionError(f"fluvial {' '.join(args)} failed ({res.returncode}):\n{res.stdout}\n{res.stderr}\n"
                                 f"{self.logs()}")
        return res

    def start(self) -> None:
        self.fluvial("cluster", "start", "--spu", str(self.spus), "--data-dir", str(self.data), "--sc-port",
                     str(self.sc_port), "--spu-base-port", str(self.spu_base), "--profile", str(self.profile))

    def stop(self) -> None:
        self.fluvial("cluster", "shutdown", "--data-dir", str(self.data), check=False)

    def logs(self) -> str:
        out = []
        for f in sorted((self.data / "logs").glob("*.log")) if (self.data / "logs").exists() else []:
            out.append(f"== {f.name}\n" + "\n".join(f.read_text(errors="replace").splitlines()[-30:]))
        return "\n".join(out)

    def pid(self, name: str) -> int:
        return int((self.data / "run" / f"{name}.pid").read_text())

    def kill(self, name: str, sig: int = signal.SIGKILL) -> None:
        pid = self.pid(name)
        os.kill(pid, sig)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                return
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, os.WNOHANG)
            time.sleep(0.05)

    def signal(self, name: str, sig: int) -> None:
        """Send a signal and return at once (SIGSTOP / SIGCONT); a process already gone is ignored."""
        with contextlib.suppress(ProcessLookupError, FileNotFoundError):
            os.kill(self.pid(name), sig)

    def spu_public_port(self, spu_id: int) -> int:
        return self.spu_base + d.SPU_PORT_STRIDE * (spu_id - d.SPU_BASE_ID)

    def restart_sc(self, *extra: str) -> None:
        from fluvial.cli.cluster import _launch

        _launch("sc", ["run", "sc", "--data-dir", str(self.data / "sc"), "--public-addr",
                       f"127.0.0.1:{self.sc_port}", *extra], self.data)

    def restart_spu(self, spu_id: int, *extra: str) -> None:
        from fluvial.cli.cluster import _launch

        public = self.spu_public_port(spu_id)
        _launch(f"spu-{spu_id}", ["run", "spu", "--id", str(spu_id), "--data-dir", str(self.data / f"spu-{spu_id}"),
                                  "--public-addr", f"127.0.0.1:{public}", "--private-addr",
                                  f"127.0.0.1:{public + 1}", "--sc-addr", f"127.0.0.1:{self.sc_port + 1}", *extra],
                self.data)

    def wait_spus_online(self, ids: list[int], timeout: float = 30) -> None:
        import asyncio

        from fluvial.client.admin import list_spus

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                online = {s.id for s in asyncio.run(list_spus("127.0.0.1", self.sc_port, timeout=2)) if s.online}
                if set(ids) <= online:
                    return
            except Exception:
                pass
            time.sleep(0.2)
        raise AssertionError(f"SPUs {ids} not online within {timeout} s\n{self.logs()}")

    def client_process(self, script: str) -> subprocess.Popen[str]:
        """Start `script` with the official client in the background (stdout piped)."""
        code = "import json, fluvio\nfrom fluvio import *\n" + textwrap.dedent(script)
        return subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True, env=self.env)

    def client(self, script: str, timeout: float = CLIENT_TIMEOUT_SECONDS) -> object:
        """Run `script` with the official client; it must print one JSON document as its last line."""
        code = "import json, fluvio\nfrom fluvio import *\n" + textwrap.dedent(script)
        res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=timeout,
                             env=self.env)
        if res.returncode != 0:
            raise AssertionError(f"client script failed ({res.returncode}):\n{res.stdout}\n{res.stderr}\n"
                                 f"{self.logs()}")
        return json.loads(res.stdout.strip().splitlines()[-1])
