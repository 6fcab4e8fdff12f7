"""Shared helpers of the benchmark scripts: progress logging, medians, machine facts, the results
directory, signal handling, Markdown tables and the results file."""

from __future__ import annotations

import contextlib
import json
import os
import platform
import signal
import statistics
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results"     # default parent of the data dirs, and of the results files
KIB = 1024


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def median(xs: list[float]) -> float:
    return statistics.median(xs) if xs else float("nan")


def fs_type(path: str) -> str:
    """Filesystem type of `path` from /proc/self/mountinfo (longest matching mount point)."""
    real = os.path.realpath(path)
    best, kind = "", "unknown"
    with contextlib.suppress(OSError), open("/proc/self/mountinfo") as f:
        for line in f:
            left, _, right = line.partition(" - ")
            mount = left.split()[4]
            if (real == mount or real.startswith(mount.rstrip("/") + "/")) and len(mount) > len(best):
                best, kind = mount, right.split()[0]
    return kind


def cpu_model() -> str:
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def git_revision() -> str:
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        out = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], capture_output=True,
                             text=True, timeout=5)
        if out.returncode == 0:
            return out.stdout.strip()
    return "unknown"


def load_average() -> str:
    """1/5/15-minute load: other work on the machine shows up here (and in the spread of the runs)."""
    with contextlib.suppress(OSError):
        return "/".join(f"{x:.2f}" for x in os.getloadavg())
    return "unknown"



def mem_total_gib() -> float:
    with contextlib.suppress(OSError), open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) * KIB / 2**30, 1)
    return 0.0


def package_version(name: str) -> str:
    from importlib import metadata

    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "not installed"


def proc_cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of process `pid` (all its threads) from /proc; NaN if it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except OSError:
        return float("nan")
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def machine_facts(data_dir: str, fs_kind: str, **extra: object) -> dict[str, Any]:
    """The facts every benchmark records about the machine; `extra` goes after the data dir's
    filesystem type, before the git revision and the load at the start."""
    return {"cores": os.cpu_count(), "cpu": cpu_model(), "memory_gib": mem_total_gib(),
            "python": platform.python_version(), "kernel": platform.release(), "data_dir": data_dir,
            "fs_type": fs_kind, **extra, "fluvial_rev": git_revision(), "loadavg_start": load_average()}


def machine_line(machine: dict[str, Any]) -> str:
    return "machine: " + ", ".join(f"{k}={v}" for k, v in machine.items())


class Service:
    """A server a benchmark starts: `with X(...) as srv:` starts it, and stops it on the way out
    whatever happened (also when `start` fails half-way). Subclasses define `start` and `stop`."""

    def start(self) -> None:
        raise NotImplementedError

    def stop(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Any:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


# ================================================================================================ main


def results_dir(explicit_dir: str | None, allow_tmpfs: bool) -> str | None:
    """The parent of a benchmark's data dir (`explicit_dir`, default benchmarks/results/), created; None
    (after saying why) if it is on tmpfs/ramfs and `allow_tmpfs` is not set."""
    parent = explicit_dir or str(RESULTS)
    os.makedirs(parent, exist_ok=True)
    kind = fs_type(parent)
    if kind in ("tmpfs", "ramfs") and not allow_tmpfs:
        log(f"{parent} is on {kind}: pass --dir on a real disk, or --allow-tmpfs")
        return None
    return parent


def _raise_interrupt(signum: int, _frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def interrupt_on_signals() -> None:
    """Ctrl-C, SIGTERM and SIGHUP raise KeyboardInterrupt, so that a benchmark cleans up (stops its
    servers, removes its data) as on Ctrl-C; SIGINT even if the process was started with it ignored."""
    signal.signal(signal.SIGINT, signal.default_int_handler)
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, _raise_interrupt)


# ============================================================================================== report


def fmt_range(xs: list[float], digits: int = 2) -> str:
    return f"{min(xs):.{digits}f}–{max(xs):.{digits}f}" if xs else ""


def print_markdown_table(head: Sequence[object], rows: Sequence[Sequence[object]]) -> None:
    """A Markdown table on stdout, every column padded to its widest cell."""
    widths = [max(len(str(r[i])) for r in [head, *rows]) for i in range(len(head))]
    line = "| " + " | ".join(f"{{:<{w}}}" for w in widths) + " |"
    print(line.format(*head))
    print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for r in rows:
        print(line.format(*r))


def print_log_problems(problems: list[str]) -> None:
    """The first 20 WARNING/ERROR lines the servers logged, if any."""
    if problems:
        print(f"\n{len(problems)} warning/error lines in the server logs:")
        for line in problems[:20]:
            print("  " + line)


def write_results(path: str | Path, payload: dict[str, Any]) -> None:
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(payload, indent=2) + "\n")
    print(f"results written to {out}")
