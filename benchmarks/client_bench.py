#!/usr/bin/env python3
"""Client benchmarks: the official `fluvio` client (PyPI 0.21.0) against a one-SPU fluvial cluster, next to
a plain TCP loopback baseline measured in the same run, and fluvial's servers under uvloop vs the stock
asyncio event loop.

1. produce  — `topic_producer(topic).send(key, value)` in a loop, `flush()`, wait for the last
              `ProduceOutput` (its offset must be N − 1); 100 B and 10 KiB values, 8-byte keys.
2. consume  — `partition_consumer(topic, 0).stream(Offset.beginning())` until the N records of the
              topic just produced are read (every offset checked, every value's bytes counted).
3. loopback — the same number of bytes (N × (key + value)) pushed through a TCP socket on 127.0.0.1
              between two Python processes: `sendall` of one record-sized chunk at a time, `recv` of up
              to 1 MiB until done (plus, for context, the same bytes in 64 KiB `sendall`s).
4. uvloop vs asyncio — two clusters run side by side, one started with FLUVIAL_EVENT_LOOP=uvloop and one
              with FLUVIAL_EVENT_LOOP=asyncio; every produce/consume runs against both, interleaved.

Every client run is its own process (the official client holds the GIL while it streams, and its Tokio
threads would compete with the harness); it times itself from its first `send` (or from opening the
stream) to the last record, and reads the SPU's CPU time from /proc at both ends. Each rep runs every
measurement once, in an order flipped from rep to rep (ABBA), so that the two event loops and the
loopback meet the same machine state; ratios are taken within a rep, then the median over the reps.

    .venv/bin/python benchmarks/client_bench.py            # full run + SPU profile, a few minutes
    .venv/bin/python benchmarks/client_bench.py --quick    # half the records, 3 reps, no profile
    .venv/bin/python benchmarks/client_bench.py --no-profile --reps 9 --loop uvloop

Clusters are shut down (`fluvial cluster shutdown --data-dir …`) and their data removed at the end, also
on errors and Ctrl-C. Results of every run go to `benchmarks/results/client.json`.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
from dataclasses import dataclass, field
from pathlib import Path

from benchlib import (
    RESULTS,
    fmt_range,
    fs_type,
    interrupt_on_signals,
    load_average,
    log,
    machine_facts,
    machine_line,
    median,
    package_version,
    print_log_problems,
    print_markdown_table,
    results_dir,
    write_results,
)
from fluvial import defaults as d

MB = 1_000_000                          # throughput is reported in MB/s (10^6 bytes per second)
KIB = 1024
DEFAULT_RESULTS = RESULTS / "client.json"
FLUVIAL = [sys.executable, "-m", "fluvial.cli.main"]
LOOPS = ("uvloop", "asyncio")
BIG_CHUNK = 64 * KIB


# ============================================================================================ cluster


def _port_free(port: int) -> bool:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_ports(taken: set[int]) -> tuple[int, int]:
    """(sc_port, spu_base_port): SC public + private and one SPU's public + private, all free."""
    rng = random.Random()
    for _ in range(500):
        sc = rng.randrange(20000, 40000, 2)
        base = rng.randrange(40000, 60000, 10)
        ports = {sc, sc + 1, base, base + 1}
        if not ports & taken and all(_port_free(p) for p in ports):
            taken |= ports
            return sc, base
    raise RuntimeError("no free ports found")


class Cluster:
    """`fluvial cluster start --spu 1` on free ports, its own data dir and Fluvio profile file, with the
    servers' event loop chosen by FLUVIAL_EVENT_LOOP."""

    def __init__(self, root: Path, loop: str, taken: set[int]) -> None:
        self.loop = loop
        self.root = root / f"cluster-{loop}"
        self.data = self.root / "data"
        self.profile = self.root / "fluvio-profile"
        self.sc_port, self.spu_port = free_ports(taken)
        self.env = {**os.environ, "FLUVIAL_EVENT_LOOP": loop, "FLV_PROFILE_PATH": str(self.profile),
                    "FLV_SOCKET_WAIT": "10", "FLV_METADATA_TIMEOUT": "10000", "FLV_TOPIC_WAIT": "10"}
        self.started = False
        self.spu_pid = 0
        self.log_marks: dict[str, int] = {}     # server log sizes once started: later lines are checked

    def fluvial(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*FLUVIAL, *args], capture_output=True, text=True, timeout=timeout, env=self.env)

    def start(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        self.started = True                 # from here on, shutdown is due even if start fails half-way
        res = self.fluvial("cluster", "start", "--spu", "1", "--data-dir", str(self.data), "--sc-port",
                           str(self.sc_port), "--spu-base-port", str(self.spu_port), "--profile",
                           str(self.profile))
        if res.returncode != 0:
            raise RuntimeError(f"cluster start ({self.loop}) failed:\n{res.stdout}\n{res.stderr}\n{self.logs()}")
        self.spu_pid = int((self.data / "run" / f"spu-{d.SPU_BASE_ID}.pid").read_text())
        self.log_marks = {f.name: f.stat().st_size for f in (self.data / "logs").glob("*.log")}

    def loop_in_use(self) -> str:
        """Which loop the SPU really runs: uvloop's extension module is mapped into the process or not."""
        try:
            maps = Path(f"/proc/{self.spu_pid}/maps").read_text()
        except OSError:
            return "unknown"
        return "uvloop" if "uvloop/loop." in maps else "asyncio"

    def shutdown(self) -> None:
        if not self.started:
            return
        try:
            res = self.fluvial("cluster", "shutdown", "--data-dir", str(self.data), timeout=60)
            if res.returncode != 0:
                log(f"cluster shutdown ({self.loop}) failed: {res.stderr.strip()}")
        except (OSError, subprocess.SubprocessError) as e:
            log(f"cluster shutdown ({self.loop}) failed: {e}")
        self.started = False

    def logs(self, lines: int = 30) -> str:
        out = []
        logs = self.data / "logs"
        for f in sorted(logs.glob("*.log")) if logs.is_dir() else []:
            out.append(f"== {f.name}\n" + "\n".join(f.read_text(errors="replace").splitlines()[-lines:]))
        return "\n".join(out)

    def log_problems(self) -> list[str]:
        """WARNING/ERROR lines and tracebacks the servers logged after start-up (the benchmark must not
        cause any; at start-up an SPU may log that the SC is not listening yet)."""
        out = []
        logs = self.data / "logs"
        for f in sorted(logs.glob("*.log")) if logs.is_dir() else []:
            with open(f, "rb") as fh:
                fh.seek(self.log_marks.get(f.name, 0))
                text = fh.read().decode(errors="replace")
            for line in text.splitlines():
                if " WARNING " in line or " ERROR " in line or "Traceback" in line:
                    out.append(f"{self.loop}/{f.stem}: {line}")
        return out


# ====================================================================================== client scripts

PRELUDE = """
import json, os, sys, time
P = json.loads(sys.argv[1])

def spu_cpu():
    f = open("/proc/%d/stat" % P["spu_pid"]).read().rpartition(")")[2].split()
    return (int(f[11]) + int(f[12])) / os.sysconf("SC_CLK_TCK")

def spu_wait():     # seconds the SPU's event-loop thread was runnable but waiting for a CPU
    return int(open("/proc/%d/schedstat" % P["spu_pid"]).read().split()[1]) / 1e9
"""

PRODUCE = PRELUDE + """
from fluvio import Fluvio, FluvioAdmin
FluvioAdmin.connect().create_topic(P["topic"])
fluvio = Fluvio.connect()
producer = fluvio.topic_producer(P["topic"])
key, value, n = os.urandom(P["key_bytes"]), os.urandom(P["value_bytes"]), P["records"]
send = producer.send
w0, s0, c0, t0 = spu_wait(), spu_cpu(), time.process_time(), time.perf_counter()
for _ in range(n - 1):
    send(key, value)
last = send(key, value)
producer.flush()
last_offset = last.wait().offset()
t1, c1, s1, w1 = time.perf_counter(), time.process_time(), spu_cpu(), spu_wait()
print(json.dumps({"seconds": t1 - t0, "client_cpu": c1 - c0, "spu_cpu": s1 - s0, "spu_wait": w1 - w0,
                  "last_offset": last_offset}))
"""

CONSUME = PRELUDE + """
from fluvio import Fluvio, FluvioAdmin, Offset
fluvio = Fluvio.connect()
n, expected_value = P["records"], P["value_bytes"]
count = value_bytes = bad_offsets = 0
w0, s0, c0, t0 = spu_wait(), spu_cpu(), time.process_time(), time.perf_counter()
for record in fluvio.partition_consumer(P["topic"], 0).stream(Offset.beginning()):
    if record.offset() != count:
        bad_offsets += 1
    value_bytes += len(record.value())
    count += 1
    if count == n:
        break
t1, c1, s1, w1 = time.perf_counter(), time.process_time(), spu_cpu(), spu_wait()
if P["delete"]:
    FluvioAdmin.connect().delete_topic(P["topic"])
print(json.dumps({"seconds": t1 - t0, "client_cpu": c1 - c0, "spu_cpu": s1 - s0, "spu_wait": w1 - w0,
                  "records": count,
                  "value_bytes": value_bytes, "bad_offsets": bad_offsets}))
"""

# A one-connection server script's start: listen on a free loopback port, print it, accept one peer.
ACCEPT_ONE = """
import json, os, socket, struct, sys
P = json.loads(sys.argv[1])
srv = socket.socket()
srv.bind(("127.0.0.1", 0))
srv.listen(1)
print(srv.getsockname()[1], flush=True)
conn, _ = srv.accept()
"""

LOOPBACK_RECEIVER = ACCEPT_ONE + """
buf = bytearray(1 << 20)
view, total, want = memoryview(buf), 0, P["bytes"]
while total < want:
    got = conn.recv_into(view)
    if not got:
        raise SystemExit("sender closed early at %d of %d bytes" % (total, want))
    total += got
conn.sendall(b"!")
print(json.dumps({"received": total}))
"""

LOOPBACK_SENDER = """
import json, os, socket, sys, time
P = json.loads(sys.argv[1])
chunk, n = os.urandom(P["chunk"]), P["bytes"] // P["chunk"]
sock = socket.create_connection(("127.0.0.1", P["port"]))
sendall = sock.sendall
t0, c0 = time.perf_counter(), time.process_time()
for _ in range(n):
    sendall(chunk)
if sock.recv(1) != b"!":
    raise SystemExit("no acknowledgement from the receiver")
t1, c1 = time.perf_counter(), time.process_time()
print(json.dumps({"seconds": t1 - t0, "client_cpu": c1 - c0}))
"""


class BenchError(RuntimeError):
    pass


def run_script(code: str, params: dict[str, object], env: dict[str, str] | None,
               timeout: float) -> dict[str, object]:
    """Run `code` in a fresh Python; its last stdout line is one JSON document."""
    cmd = [sys.executable, "-c", textwrap.dedent(code), json.dumps(params)]
    try:
        res = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)
    except subprocess.TimeoutExpired as e:
        raise BenchError(f"client script timed out after {timeout:.0f} s (a hang?) with {params}") from e
    if res.returncode != 0:
        raise BenchError(f"client script failed ({res.returncode}) with {params}:\n{res.stdout}\n{res.stderr}")
    return json.loads(res.stdout.strip().splitlines()[-1])


def loopback(chunk: int, nbytes: int, timeout: float) -> dict[str, object]:
    nbytes -= nbytes % chunk
    recv = subprocess.Popen([sys.executable, "-c", textwrap.dedent(LOOPBACK_RECEIVER), json.dumps({"bytes": nbytes})],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert recv.stdout is not None
        port = int(recv.stdout.readline())
        out = run_script(LOOPBACK_SENDER, {"port": port, "chunk": chunk, "bytes": nbytes}, None, timeout)
        stdout, stderr = recv.communicate(timeout=timeout)
        if recv.returncode != 0 or json.loads(stdout.strip().splitlines()[-1])["received"] != nbytes:
            raise BenchError(f"loopback receiver failed ({recv.returncode}): {stdout}\n{stderr}")
    finally:
        if recv.poll() is None:
            recv.kill()
            recv.wait()
    out["bytes"] = nbytes
    return out


# ============================================================================================ results


@dataclass
class Case:
    """One record size: its runs (one dict per run, per rep) for every side."""

    value_bytes: int
    records: int
    key_bytes: int
    runs: dict[str, list[dict[str, object]]] = field(default_factory=lambda: collections.defaultdict(list))

    @property
    def label(self) -> str:
        return f"{self.value_bytes // KIB} KiB" if self.value_bytes >= KIB else f"{self.value_bytes} B"

    @property
    def nbytes(self) -> int:
        return self.records * (self.key_bytes + self.value_bytes)

    def mb_s(self, side: str) -> list[float]:
        return [self.nbytes / float(r["seconds"]) / MB for r in self.runs[side]]

    def records_s(self, side: str) -> list[float]:
        return [self.records / float(r["seconds"]) for r in self.runs[side]]

    def spu_us(self, side: str) -> list[float]:
        """SPU CPU microseconds per record."""
        return [float(r["spu_cpu"]) / self.records * 1e6 for r in self.runs[side]]

    def paired(self, a: str, b: str) -> list[float]:
        """Per-rep ratio of side a's throughput to side b's (both measured in the same rep)."""
        return [x / y for x, y in zip(self.mb_s(a), self.mb_s(b), strict=False)]

    def to_json(self) -> dict[str, object]:
        sides = {}
        for side, runs in self.runs.items():
            mb = self.mb_s(side)
            sides[side] = {"runs": runs, "mb_s": mb, "records_s": self.records_s(side), "median_mb_s": median(mb),
                           "median_records_s": median(self.records_s(side))}
        ratios = {}
        for op in ("produce", "consume"):
            if self.runs.get(f"{op}/uvloop") and self.runs.get(f"{op}/asyncio"):
                ratios[f"{op} uvloop/asyncio"] = self.paired(f"{op}/uvloop", f"{op}/asyncio")
                ratios[f"{op} SPU CPU per record uvloop/asyncio"] = [
                    u / a if a else float("nan")
                    for u, a in zip(self.spu_us(f"{op}/uvloop"), self.spu_us(f"{op}/asyncio"), strict=False)]
            for loop in LOOPS:
                if self.runs.get(f"{op}/{loop}") and self.runs.get("loopback"):
                    ratios[f"{op}/{loop} / loopback"] = self.paired(f"{op}/{loop}", "loopback")
        return {"value_bytes": self.value_bytes, "key_bytes": self.key_bytes, "records": self.records,
                "payload_bytes": self.nbytes, "sides": sides, "paired_ratios": ratios,
                "median_ratios": {k: median(v) for k, v in ratios.items()}}


# ========================================================================================== benchmark


def one_rep(args: argparse.Namespace, clusters: dict[str, Cluster], cases: list[Case], rep: int) -> None:
    """Every measurement once. Order flips from rep to rep: loopback first or last, and which loop goes
    first, so that each side meets the machine in the same states on average."""
    loops = [lp for lp in LOOPS if lp in clusters]
    if rep % 2:
        loops.reverse()
    for case in cases:
        topic = f"b{case.value_bytes}-r{rep}"
        steps: list[tuple[str, str]] = [("produce", lp) for lp in loops] + [("consume", lp) for lp in loops]
        base = [("loopback", ""), ("loopback64k", "")]
        steps = base + steps if rep % 2 == 0 else steps + base[::-1]
        line = []
        for op, loop in steps:
            if op.startswith("loopback"):
                chunk = case.key_bytes + case.value_bytes if op == "loopback" else BIG_CHUNK
                out = loopback(chunk, case.nbytes, args.timeout)
                case.runs[op].append(out)
                line.append(f"{op} {case.nbytes / float(out['seconds']) / MB:,.0f}")
                continue
            c = clusters[loop]
            params = {"topic": topic, "records": case.records, "key_bytes": case.key_bytes,
                      "value_bytes": case.value_bytes, "spu_pid": c.spu_pid, "delete": not args.keep_topics}
            out = run_script(PRODUCE if op == "produce" else CONSUME, params, c.env, args.timeout)
            check(op, c, case, out)
            case.runs[f"{op}/{loop}"].append(out)
            line.append(f"{op}/{loop} {case.nbytes / float(out['seconds']) / MB:,.1f}")
        log(f"  rep {rep + 1}/{args.reps}, {case.label}: " + ", ".join(line) + " MB/s")


def warm_up(args: argparse.Namespace, clusters: dict[str, Cluster], cases: list[Case]) -> None:
    """Untimed: one small produce + consume per cluster and size (first connections, imports, caches)."""
    for c in clusters.values():
        for case in cases:
            params = {"topic": f"warmup-{case.value_bytes}", "records": max(1, case.records // 20),
                      "key_bytes": case.key_bytes, "value_bytes": case.value_bytes, "spu_pid": c.spu_pid,
                      "delete": True}
            run_script(PRODUCE, params, c.env, args.timeout)
            run_script(CONSUME, params, c.env, args.timeout)
    log("warm-up done")


def check(op: str, c: Cluster, case: Case, out: dict[str, object]) -> None:
    """Every record acknowledged and read back exactly once, in order: anything else is a server bug."""
    if op == "produce" and out["last_offset"] != case.records - 1:
        raise BenchError(f"{c.loop}: last ProduceOutput offset {out['last_offset']}, expected {case.records - 1}"
                         f"\n{c.logs()}")
    if op == "consume" and (out["records"] != case.records or out["bad_offsets"]
                            or out["value_bytes"] != case.records * case.value_bytes):
        raise BenchError(f"{c.loop}: consumed {out}, expected {case.records} records of {case.value_bytes} B"
                         f"\n{c.logs()}")


# ============================================================================================ profile


def produce_under(args: argparse.Namespace, cmd: list[str], c: Cluster, case: Case,
                  tag: str) -> tuple[dict[str, object] | None, str]:
    """Run the profiler `cmd` (attached to the SPU) while the official client produces `case`, stop it, then
    consume (and check) the records and delete the topic. Returns (the produce run, the profiler's output)."""
    params = {"topic": f"profile-{tag}-{case.value_bytes}", "records": case.records, "key_bytes": case.key_bytes,
              "value_bytes": case.value_bytes, "spu_pid": c.spu_pid, "delete": True}
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    run = None
    try:
        time.sleep(1.0)
        if proc.poll() is None:
            run = run_script(PRODUCE, params, c.env, args.timeout)
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
        try:
            out = proc.communicate(timeout=60)[0]
        except subprocess.TimeoutExpired:
            proc.kill()
            out = proc.communicate()[0]
    if run is not None:
        check("produce", c, case, run)
        check("consume", c, case, run_script(CONSUME, params, c.env, args.timeout))
    return run, out


def profile_spu(args: argparse.Namespace, c: Cluster, case: Case, out_dir: Path) -> dict[str, object]:
    """Where the SPU's time goes while the official client produces `case`, from outside the process (the
    SPU is not modified): py-spy for the Python functions, then (if installed) perf for the on-CPU split
    between the interpreter, the kernel (socket, file writes, epoll, page faults, scheduling) and C
    extensions. Two separate produce runs, not timed as results."""
    out_dir.mkdir(parents=True, exist_ok=True)
    summary: dict[str, object] = {"loop": c.loop, "value_bytes": case.value_bytes, "records": case.records}
    spy = shutil.which("py-spy", path=str(Path(sys.executable).parent)) or shutil.which("py-spy")
    if spy is None:
        log("profile: py-spy not found (`.venv/bin/pip install py-spy`): Python profile skipped")
        summary["py_spy"] = {"skipped": "py-spy not installed"}
    else:
        raw = out_dir / f"spu-{c.loop}-{case.value_bytes}.pyspy.txt"
        cmd = [spy, "record", "-p", str(c.spu_pid), "--format", "raw", "-o", str(raw), "--rate",
               str(args.profile_rate), "--threads"] + (["--native"] if args.profile_native else [])
        run, out = produce_under(args, cmd, c, case, "pyspy")
        spy_summary = summarize_profile(raw, args.profile_top) if run else {"skipped": out.strip()[-500:]}
        if run is None or not spy_summary.get("samples"):
            log(f"profile: py-spy gave no samples: {out.strip()[-500:]}")
        if run is not None:
            spy_summary.update(raw_file=str(raw), produce_seconds=run["seconds"], spu_cpu_seconds=run["spu_cpu"])
        summary["py_spy"] = spy_summary
    perf = shutil.which("perf")
    if perf is None:
        summary["perf"] = {"skipped": "perf not installed"}
    else:
        data = out_dir / f"spu-{c.loop}-{case.value_bytes}.perf.data"
        cmd = [perf, "record", "-e", "cpu-clock", "-F", "999", "-g", "-p", str(c.spu_pid), "-o", str(data)]
        run, out = produce_under(args, cmd, c, case, "perf")
        perf_summary = summarize_perf(perf, data) if run else {"skipped": out.strip()[-500:]}
        if run is not None:
            perf_summary.update(data_file=str(data), produce_seconds=run["seconds"], spu_cpu_seconds=run["spu_cpu"])
        else:
            log(f"profile: perf failed: {out.strip()[-500:]}")
        summary["perf"] = perf_summary
    return summary


# kernel functions whose "children" share (the function and all it calls) says what the SPU's kernel time
# is spent on; they may overlap (a loopback TCP send also runs the receiving side's TCP input).
PERF_KERNEL = {
    "TCP send (responses; on loopback this includes delivering them to the client)": "tcp_sendmsg",
    "TCP receive (requests)": "tcp_recvmsg",
    "ext4 buffered writes (log + index pwrite/pwritev)": "ext4_buffered_write_iter",
    "fdatasync (background flusher)": "ext4_sync_file",
    "epoll_wait": "do_epoll_wait",
    "page faults": "exc_page_fault",
    "context switches (finish_task_switch)": "finish_task_switch.isra.0",
}


def summarize_perf(perf: str, data: Path) -> dict[str, object]:
    """On-CPU shares (cpu-clock samples) by shared object, and the kernel's share per kind of work."""
    import re

    def report(*extra: str) -> list[re.Match[str]]:
        res = subprocess.run([perf, "report", "-i", str(data), "--stdio", "-g", "none", *extra],
                             capture_output=True, text=True, timeout=300)
        pat = re.compile(r"^\s*([\d.]+)%\s+(?:([\d.]+)%\s+)?(?:\[(.)\]\s+)?(\S.*?)\s*$")
        return [m for line in res.stdout.splitlines() if not line.startswith("#") and (m := pat.match(line))]

    dsos = [[m[4], float(m[1])] for m in report("--no-children", "--sort", "dso")]
    syms = {m[4]: float(m[1]) for m in report("--children", "--sort", "sym") if m[3] == "k"}
    kernel = {label: syms.get(sym, 0.0) for label, sym in PERF_KERNEL.items()}
    return {"by_object": dsos[:12], "kernel": kernel}


def frame_name(frame: str) -> str:
    """`func (path/to/file.py:123)` → `func (file.py)`: lines of one function are merged."""
    name, _, loc = frame.partition(" (")
    path = loc.rstrip(")").rsplit(":", 1)[0]
    return f"{name} ({path.rsplit('/', 1)[-1]})" if path else name


def summarize_profile(raw: Path, top: int) -> dict[str, object]:
    """Self and inclusive sample shares per function from py-spy's collapsed stacks, event-loop thread
    only (the storage threads — flusher, scrub, space, cleaner — mostly sleep; their samples are
    counted apart). Without --native, "self" time of a Python function includes the C code it calls
    (a syscall, uvloop's transport), and `Runner.run` self time is uvloop/libuv's own loop (epoll,
    socket reads) with no Python frame on top."""
    self_n: collections.Counter[str] = collections.Counter()
    incl_n: collections.Counter[str] = collections.Counter()
    other: collections.Counter[str] = collections.Counter()
    total = 0
    with contextlib.suppress(OSError), open(raw) as f:
        for line in f:
            stack, _, count = line.rstrip("\n").rpartition(" ")
            if not stack or not count.isdigit():
                continue
            n = int(count)
            thread, *rest = stack.split(";")
            if not thread.startswith("thread") or not rest:
                thread, rest = "thread (?): MainThread", [thread, *rest]
            if not thread.endswith("MainThread"):
                other[thread.rpartition(":")[2].strip()] += n
                continue
            total += n
            frames = [frame_name(x) for x in rest if not x.startswith("0x")]
            self_n[frames[-1]] += n
            for name in set(frames):
                incl_n[name] += n
    skip = ("_run_module_as_main", "_run_code", "<module>", "main (", "Typer", "Command", "TyperGroup", "_main",
            "Context.invoke", "get_callback", "run_spu", "_serve", "run (runners.py)", "Runner.run",
            "run_until_complete", "run_forever", "_run_once", "_run (events.py)")
    inclusive = [(k, v) for k, v in incl_n.most_common() if not k.startswith(skip)]
    pct = (lambda n: round(100 * n / total, 1)) if total else (lambda n: 0.0)
    return {"samples": total, "other_thread_samples": dict(other),
            "self": [[k, pct(v)] for k, v in self_n.most_common(top)],
            "inclusive": [[k, pct(v)] for k, v in inclusive[:top]]}


# ============================================================================================= report


def print_table(machine: dict[str, object], cases: list[Case], loops: list[str]) -> None:
    print()
    print(machine_line(machine))
    print()
    head = ["benchmark", "records/s", "MB/s (median)", "MB/s range", "÷ loopback", "÷ loopback range",
            "client CPU", "client µs/record", "SPU CPU", "SPU µs/record", "SPU runq wait"]
    rows = []
    for case in cases:
        base = case.mb_s("loopback")
        rows.append([f"loopback, {case.key_bytes + case.value_bytes} B sendall, {case.label} case",
                     f"{median(case.records_s('loopback')):,.0f}", f"{median(base):,.1f}", fmt_range(base, 1), "1",
                     "", f"{median([float(r['client_cpu']) / float(r['seconds']) for r in case.runs['loopback']]):.0%}",
                     "", "", "", ""])
        big = case.mb_s("loopback64k")
        rows.append([f"loopback, 64 KiB sendall, {case.nbytes / MB:,.0f} MB", "", f"{median(big):,.1f}",
                     fmt_range(big, 1), "", "", "", "", "", "", ""])
        for op in ("produce", "consume"):
            for loop in loops:
                side = f"{op}/{loop}"
                mb = case.mb_s(side)
                pr = case.paired(side, "loopback")
                runs = case.runs[side]
                cpu = median([float(r["client_cpu"]) / float(r["seconds"]) for r in runs])
                spu = median([float(r["spu_cpu"]) / float(r["seconds"]) for r in runs])
                spu_us = median(case.spu_us(side))
                client_us = median([float(r["client_cpu"]) / case.records * 1e6 for r in runs])
                wait = median([float(r["spu_wait"]) / float(r["seconds"]) for r in runs])
                rows.append([f"{op} {case.records:,} × {case.label} ({loop})",
                             f"{median(case.records_s(side)):,.0f}", f"{median(mb):,.1f}", fmt_range(mb, 1),
                             f"{median(pr):.2f}", fmt_range(pr), f"{cpu:.0%}", f"{client_us:.1f}", f"{spu:.0%}", f"{spu_us:.1f}",
                             f"{wait:.0%}"])
    print_markdown_table(head, rows)
    if set(LOOPS) <= set(loops):
        print()
        print("| uvloop ÷ asyncio (same rep) | throughput | range | SPU CPU per record | range |")
        print("|---|---|---|---|---|")
        for case in cases:
            for op in ("produce", "consume"):
                pr = case.paired(f"{op}/uvloop", f"{op}/asyncio")
                cpu = [u / a for u, a in zip(case.spu_us(f"{op}/uvloop"), case.spu_us(f"{op}/asyncio"),
                                             strict=False) if a]
                print(f"| {op} {case.label} | {median(pr):.2f} | {fmt_range(pr)} | {median(cpu):.2f} | "
                      f"{fmt_range(cpu)} |")
    print()
    print("MB/s = 10^6 payload bytes (key + value) per second; ratios are per rep (both sides in the same rep), "
          "then the median over the reps.\nCPU columns: CPU seconds ÷ wall seconds of the timed window "
          "(client: the whole client process, all threads; loopback: the sender; SPU: all its threads, from\n"
          "/proc, 10 ms ticks); µs/record: CPU seconds ÷ records; SPU runq wait: time its event-loop thread\n"
          "was runnable but waiting for a CPU (/proc/PID/schedstat) ÷ wall seconds.")


def print_profile(profiles: list[dict[str, object]]) -> None:
    for p in profiles:
        what = f"{p['loop']} SPU, produce {p['records']:,} × {p['value_bytes']} B"
        perf = p.get("perf", {})
        if isinstance(perf, dict) and "by_object" in perf:
            print()
            print(f"perf, {what}: on-CPU share by object | kernel share by kind of work (overlapping)")
            rows = list(zip(perf["by_object"], perf["kernel"].items(), strict=False))
            for (obj, share), (label, kshare) in rows:
                print(f"  {share:5.1f}% {obj[:45]:<45} {kshare:5.1f}% {label}")
        spy = p.get("py_spy", {})
        if isinstance(spy, dict) and spy.get("samples"):
            print()
            print(f"py-spy, {what}, event-loop thread, {spy['samples']} samples: top self | top inclusive")
            for (s, sp), (i, ip) in zip(spy["self"], spy["inclusive"], strict=False):
                print(f"  {sp:5.1f}% {s[:70]:<70} {ip:5.1f}% {i[:70]}")


# =============================================================================================== main


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dir", default=None,
                   help="parent directory for the clusters' data (default: benchmarks/results/, i.e. the "
                        "checkout's filesystem)")
    p.add_argument("--quick", action="store_true", help="half the records, 3 reps, no profile: about a minute")
    p.add_argument("--reps", type=int, default=None, help="runs per measurement (default 9, --quick 3; min 3)")
    p.add_argument("--small-records", type=int, default=None,
                   help="records of the 100 B case (default 200,000, --quick 100,000)")
    p.add_argument("--large-records", type=int, default=None,
                   help="records of the 10 KiB case (default 20,000, --quick 10,000)")
    p.add_argument("--key-bytes", type=int, default=8, help="key size (default %(default)s)")
    p.add_argument("--loop", action="append", choices=LOOPS,
                   help="event loops to measure (repeatable; default both, side by side)")
    p.add_argument("--profile", action=argparse.BooleanOptionalAction, default=None,
                   help="after the measurements, profile the SPU under produce load with py-spy and perf, "
                        "where installed (not timed; default: on, off with --quick)")
    p.add_argument("--profile-rate", type=int, default=250, help="py-spy samples per second (default %(default)s)")
    p.add_argument("--profile-native", action="store_true", help="py-spy --native (C frames; slows the SPU a lot)")
    p.add_argument("--profile-top", type=int, default=25, help="functions listed per profile (default %(default)s)")
    p.add_argument("--timeout", type=float, default=300, help="seconds before a client run counts as hung")
    p.add_argument("--keep-topics", action="store_true", help="do not delete each topic after consuming it")
    p.add_argument("--keep", action="store_true", help="do not remove the clusters' data at the end")
    p.add_argument("--allow-tmpfs", action="store_true", help="allow a data dir on tmpfs")
    p.add_argument("--json", default=str(DEFAULT_RESULTS), help="results file (default %(default)s)")
    args = p.parse_args(argv)
    args.reps = max(3, args.reps or (3 if args.quick else 9))
    args.small_records = args.small_records or (100_000 if args.quick else 200_000)
    args.large_records = args.large_records or (10_000 if args.quick else 20_000)
    args.loops = [lp for lp in LOOPS if lp in (args.loop or LOOPS)]
    if args.profile is None:
        args.profile = not args.quick
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    parent = results_dir(args.dir, args.allow_tmpfs)
    if parent is None:
        return 2
    interrupt_on_signals()                      # clean up the clusters as on Ctrl-C
    work = Path(tempfile.mkdtemp(prefix="fluvial-clientbench-", dir=parent))
    machine = machine_facts(str(work), fs_type(parent), fluvio_client=package_version("fluvio"),
                            uvloop=package_version("uvloop"))
    log(machine_line(machine))
    cases = [Case(100, args.small_records, args.key_bytes), Case(10 * KIB, args.large_records, args.key_bytes)]
    taken: set[int] = set()
    clusters = {loop: Cluster(work, loop, taken) for loop in args.loops}
    profiles: list[dict[str, object]] = []
    problems: list[str] = []
    started = time.perf_counter()
    error: BaseException | None = None
    try:
        for c in clusters.values():
            c.start()
            machine[f"spu_loop_{c.loop}"] = c.loop_in_use()
            if machine[f"spu_loop_{c.loop}"] != c.loop:
                raise BenchError(f"FLUVIAL_EVENT_LOOP={c.loop} but the SPU runs {machine[f'spu_loop_{c.loop}']}")
            log(f"cluster ({c.loop}) started: SC 127.0.0.1:{c.sc_port}, SPU pid {c.spu_pid}, data in {c.data}")
        log(f"{args.reps} reps; {', '.join(f'{c.records:,} × {c.label}' for c in cases)} "
            f"(+ {args.key_bytes} B keys); loops {', '.join(args.loops)}")
        warm_up(args, clusters, cases)
        for rep in range(args.reps):
            one_rep(args, clusters, cases, rep)
        if args.profile:
            for c in clusters.values():
                for case in cases:
                    log(f"profile: {c.loop} SPU, produce {case.records:,} × {case.label}")
                    profiles.append(profile_spu(args, c, case, work.parent / "profiles"))
    except (BenchError, KeyboardInterrupt) as e:
        error = e
        log(f"stopped: {type(e).__name__}: {e}")
    finally:
        for c in clusters.values():
            problems += c.log_problems()
            c.shutdown()
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    elapsed = time.perf_counter() - started
    machine["loadavg_end"] = load_average()
    if error is None:
        print_table(machine, cases, args.loops)
        print_profile(profiles)
    print_log_problems(problems)
    print(f"total time {elapsed:.0f} s")
    payload = {
        "machine": machine,
        "settings": {"reps": args.reps, "quick": args.quick, "key_bytes": args.key_bytes, "loops": args.loops,
                     "argv": sys.argv[1:], "elapsed_seconds": elapsed,
                     "finished": time.strftime("%Y-%m-%dT%H:%M:%S%z")},
        "error": None if error is None else f"{type(error).__name__}: {error}",
        "server_log_problems": problems,
        "cases": [c.to_json() for c in cases],
        "profiles": profiles,
    }
    write_results(args.json, payload)
    return 0 if error is None else 1


if __name__ == "__main__":
    sys.exit(main())
