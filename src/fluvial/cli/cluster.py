"""`fluvial cluster start|shutdown|delete|status`: a local cluster of separate processes.

`start` launches the SC and N SPUs (`fluvial run …`), waits until every SPU is online, and merges a
`fluvial` profile into the Fluvio profile file so that `fluvial` and the official client find it."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import typer
from rich.console import Console

from fluvial import defaults as d
from fluvial.cli import profile
from fluvial.cli.common import fail, out, render_table
from fluvial.cli.spu import app as spu_app  # piped output never wraps table rows

app = typer.Typer(no_args_is_help=True, help="Start and stop a local cluster.")
app.add_typer(spu_app, name="spu", help="SPU operations (`fluvio cluster spu …`; also `fluvial spu …`).")
err = Console(stderr=True, soft_wrap=True)

DEFAULT_DATA_DIR = Path(os.environ.get("FLUVIAL_DATA_DIR", Path.home() / ".fluvial"))
START_TIMEOUT_SECONDS = 60.0


def _fail(message: str, code: int = 1) -> None:
    fail(message, code)


def _fluvial_cmd() -> list[str]:
    return [sys.executable, "-m", "fluvial.cli.main"]


def _spu_ports(spu_id: int, base: int) -> tuple[int, int]:
    public = base + d.SPU_PORT_STRIDE * (spu_id - d.SPU_BASE_ID)
    return public, public + 1


def _launch(name: str, args: list[str], data_dir: Path) -> subprocess.Popen[bytes]:
    (data_dir / "logs").mkdir(parents=True, exist_ok=True)
    (data_dir / "run").mkdir(parents=True, exist_ok=True)
    log = open(data_dir / "logs" / f"{name}.log", "ab")  # noqa: SIM115 - the child owns it
    proc = subprocess.Popen([*_fluvial_cmd(), *args], stdout=log, stderr=log, stdin=subprocess.DEVNULL,
                            start_new_session=True)
    (data_dir / "run" / f"{name}.pid").write_text(str(proc.pid))
    return proc


async def _online_spus(sc_port: int) -> dict[int, bool]:
    from fluvial.client.admin import list_spus

    return {s.id: s.online for s in await list_spus("127.0.0.1", sc_port, timeout=2)}


def _wait_online(sc_port: int, spu_ids: list[int], procs: list[subprocess.Popen[bytes]]) -> None:
    deadline = time.monotonic() + START_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        for p in procs:
            if p.poll() is not None:
                _fail(f"a cluster process exited with code {p.returncode}; see the logs directory")
        try:
            online = asyncio.run(_online_spus(sc_port))
            if all(online.get(i) for i in spu_ids):
                return
        except Exception:
            pass
        time.sleep(0.2)
    _fail(f"SPUs {spu_ids} did not come online within {START_TIMEOUT_SECONDS:.0f} s")


@app.command("start")
def start(
    spu: int = typer.Option(3, "--spu", help="Number of SPUs."),
    data_dir: Path = typer.Option(DEFAULT_DATA_DIR, "--data-dir"),
    sc_port: int = typer.Option(d.SC_PUBLIC_PORT, "--sc-port"),
    spu_base_port: int = typer.Option(d.SPU_BASE_PUBLIC_PORT, "--spu-base-port"),
    profile_path: Path | None = typer.Option(None, "--profile", help="Fluvio profile file to update."),
    foreground: bool = typer.Option(False, "--foreground", help="Stay attached; Ctrl-C stops the cluster."),
    sc_data_dir: Path | None = typer.Option(None, "--sc-data-dir", help="The SC's metadata here (default "
                                            "DATA_DIR/sc): another filesystem than the SPUs' data."),
    local: bool = typer.Option(False, "--local", help="fluvio's local installation: what fluvial always starts."),
    k8: bool = typer.Option(False, "--k8", hidden=True),
    local_k8: bool = typer.Option(False, "--local-k8", hidden=True),
) -> None:
    """Start an SC and SPUs as separate processes; wait until every SPU is online."""
    if k8 or local_k8:          # fluvio's IntallationTypeOpt (cluster/start/mod.rs:197-215)
        _fail("fluvial starts local clusters only (--local); there is no Kubernetes installation")
    if spu < 1:
        _fail("--spu must be at least 1")
    data_dir = data_dir.expanduser().resolve()
    sc_dir = sc_data_dir.expanduser().resolve() if sc_data_dir is not None else data_dir / "sc"
    procs = [_launch("sc", ["run", "sc", "--data-dir", str(sc_dir),
                            "--public-addr", f"127.0.0.1:{sc_port}"], data_dir)]
    ids = [d.SPU_BASE_ID + n for n in range(spu)]
    for spu_id in ids:
        public, private = _spu_ports(spu_id, spu_base_port)
        procs.append(_launch(f"spu-{spu_id}", ["run", "spu", "--id", str(spu_id),
                                               "--data-dir", str(data_dir / f"spu-{spu_id}"),
                                               "--public-addr", f"127.0.0.1:{public}",
                                               "--private-addr", f"127.0.0.1:{private}",
                                               "--sc-addr", f"127.0.0.1:{sc_port + 1}"], data_dir))
    _wait_online(sc_port, ids, procs)
    path = profile.write_profile(f"127.0.0.1:{sc_port}", profile_path)
    out.print(f"fluvial cluster started: SC 127.0.0.1:{sc_port}, {spu} SPU(s), data in {data_dir}, "
              f"profile 'fluvial' in {path}", highlight=False)
    if foreground:
        _stay(procs, data_dir)


def _stay(procs: list[subprocess.Popen[bytes]], data_dir: Path) -> None:
    stopping = False

    def stop(_sig: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    while not stopping and all(p.poll() is None for p in procs):
        time.sleep(0.2)
    _stop_all(data_dir)


def _pids(data_dir: Path) -> dict[str, int]:
    run = data_dir / "run"
    out_: dict[str, int] = {}
    if run.is_dir():
        for f in run.glob("*.pid"):
            try:
                out_[f.stem] = int(f.read_text())
            except ValueError:
                continue
    return out_


def _alive(pid: int) -> bool:
    """Running (a zombie waiting for its parent to reap it has already stopped)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat.rpartition(")")[2].split()[0] != "Z"


def _stop_all(data_dir: Path) -> int:
    pids = _pids(data_dir)
    # SPUs first, then the SC
    order = sorted(pids, key=lambda n: n == "sc")
    for name in order:
        if _alive(pids[name]):
            os.kill(pids[name], signal.SIGTERM)
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and any(_alive(p) for p in pids.values()):
        time.sleep(0.1)
    for name, pid in pids.items():
        if _alive(pid):
            os.kill(pid, signal.SIGKILL)
        (data_dir / "run" / f"{name}.pid").unlink(missing_ok=True)
    return len(pids)


@app.command("shutdown")
def shutdown(data_dir: Path = typer.Option(DEFAULT_DATA_DIR, "--data-dir")) -> None:
    """Stop every process of the local cluster (data is kept)."""
    n = _stop_all(data_dir.expanduser().resolve())
    out.print(f"stopped {n} process(es)")


@app.command("delete")
def delete(
    data_dir: Path = typer.Option(DEFAULT_DATA_DIR, "--data-dir"),
    force: bool = typer.Option(False, "--force", help="Do not prompt (fluvial never does: accepted for fluvio's "
                                                      "scripts)."),
) -> None:
    """Stop the local cluster and remove its data."""
    data_dir = data_dir.expanduser().resolve()
    _stop_all(data_dir)
    shutil.rmtree(data_dir, ignore_errors=True)
    out.print(f"deleted {data_dir}")


@app.command("status")
def status(
    data_dir: Path = typer.Option(DEFAULT_DATA_DIR, "--data-dir"),
    sc_port: int = typer.Option(d.SC_PUBLIC_PORT, "--sc-port"),
) -> None:
    """SC and SPUs as the SC sees them: online / degraded / offline with the reason, each SPU's data dir and
    free space from its last heartbeat, partitions led, and the SC's active alerts."""
    from fluvial.client.admin import cluster_health

    try:
        health = asyncio.run(cluster_health("127.0.0.1", sc_port, timeout=5))
    except Exception as e:
        _fail(f"cannot reach the SC at 127.0.0.1:{sc_port}: {e}")
    sc_state = "degraded" if health.metadata_error else "online"
    rows = [["sc", sc_state, f"127.0.0.1:{sc_port}", str(data_dir.expanduser() / "sc"), "-", "", "",
             health.metadata_error or ""]]
    for s in health.spus:
        path, free, state = "-", "-", ""
        if s.dirs:
            dr = s.dirs[0]
            path, free, state = dr.path, _size(dr.free_bytes), dr.state.name.lower()
        rows.append([f"spu {s.spu_id}", s.state, s.address, path, free, state, str(s.leads), s.reason])
    out.print(render_table(("NODE", "STATUS", "ADDRESS", "DATA DIR", "FREE", "STATE", "LEADS", "REASON"), rows))
    if health.alerts:
        out.print(f"{len(health.alerts)} active alert(s):", markup=False)
        for a in health.alerts:
            out.print(f"  {a.severity} {a.name} {a.subject}: {a.message}", markup=False)
    else:
        out.print("no active alerts", markup=False)


def _size(n: int) -> str:
    return f"{n / 2**30:.1f} GiB" if n >= 2**30 else f"{n / 2**20:.1f} MiB"
