"""A replica on a real, tiny disk: a tmpfs of a few MiB in the worker's own mount namespace.

Nothing is mocked: ENOSPC comes from the kernel, free space from statvfs. Each test starts
`disk_worker.py` under `unshare -m --propagation private` (root) or `unshare -Urm` (otherwise), talks
to it in JSON lines, eats or frees space with a filler file inside the tmpfs and grows the disk from
outside with `nsenter -t PID -m mount -o remount,size=NM DIR`.

Checked (DESIGN.md §4-5, fluvio-storage.md §17.4): a full disk is rejected with the typed
`StorageFull` (PartitionFull, 72), never an untyped OSError; a failed write leaves no partial batch;
a failed roll leaves the old segment active and no half-made segment; a replica starts with 0 bytes
free; appends resume on the same open replica once space returns; the log stays bounded while full.

The module never skips in CI (env CI set); elsewhere it skips only when no kind of unshare works.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import queue
import re
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

KIB = 1024
MIB = 1024 * KIB
PAGE = 4096
WORKER = Path(__file__).with_name("disk_worker.py")
POLL_SECONDS = 0.05                     # the guard's statvfs poll interval in the worker
READY_TIMEOUT_SECONDS = 30.0
REPLY_TIMEOUT_SECONDS = 30.0
EXIT_TIMEOUT_SECONDS = 10.0
COMMAND_TIMEOUT_SECONDS = 10.0          # unshare probes, nsenter
RECOVERY_DEADLINE_SECONDS = 10.0        # a hang guard, not a timing assertion
DEFAULT_RESERVE = 1 * MIB               # 5 % of a few MiB, clamped up to 1 MiB
RESERVE_SLACK = 4 * PAGE                # tmpfs counts whole pages; the guard counts bytes

ENOSPC_TEXT = os.strerror(errno.ENOSPC)
STATE_CHANGE = re.compile(r"state_change machine=(\S+) subject=\S+ from=(\S+) to=(\S+) event=(\S+)(.*)$")


# ---------------------------------------------------------------------------------- the namespace


@dataclass(frozen=True)
class Namespaces:
    unshare: tuple[str, ...]     # prefix that starts a process in a new mount namespace
    user_ns: bool                # True with unshare -Urm: nsenter must enter the user namespace too

    def nsenter(self, pid: int) -> list[str]:
        # In a user namespace made by `unshare -r` setgroups is denied: keep our credentials, which map to root.
        user = ["-U", "--preserve-credentials"] if self.user_ns else []
        return ["nsenter", "-t", str(pid), *user, "-m"]


def namespace_candidates(is_root: bool, env: dict[str, str]) -> list[Namespaces]:
    """Pure: what to try, in order: `unshare -m` as root, `unshare -Urm` always.
    FLUVIAL_FAULTS_USERNS=1 tries only the second, to exercise the non-root path as root."""
    plain = Namespaces(("unshare", "-m", "--propagation", "private"), user_ns=False)
    user = Namespaces(("unshare", "-Urm"), user_ns=True)
    return [plain, user] if is_root and env.get("FLUVIAL_FAULTS_USERNS") != "1" else [user]


def on_unavailable(env: dict[str, str]) -> Callable[[str], Any]:
    """Pure: skipping is allowed only outside CI; in CI a missing mechanism fails the tests."""
    return pytest.fail if "CI" in env else pytest.skip


def probe(ns: Namespaces, scratch: Path) -> bool:
    """Can this prefix mount a tmpfs in a namespace of its own? (The namespace dies with the probe.)"""
    scratch.mkdir(exist_ok=True)
    try:
        done = subprocess.run([*ns.unshare, "mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(scratch)],
                              capture_output=True, timeout=COMMAND_TIMEOUT_SECONDS)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return done.returncode == 0


@pytest.fixture(scope="module")
def namespaces(tmp_path_factory: pytest.TempPathFactory) -> Namespaces:
    scratch = tmp_path_factory.mktemp("probe")
    for ns in namespace_candidates(os.geteuid() == 0, dict(os.environ)):
        if probe(ns, scratch / "mnt"):
            return ns
    on_unavailable(dict(os.environ))("neither `unshare -m` nor `unshare -Urm` can mount a tmpfs here")
    raise AssertionError("unreachable")


# ------------------------------------------------------------------------------------- the worker


class DiskWorker:
    """One `disk_worker.py` process; every wait has a timeout, so a hang fails the test."""

    def __init__(self, ns: Namespaces, root: Path, size_mib: int, options: list[str]) -> None:
        self.ns = ns
        self.mount_dir = root / "disk"
        self.mount_dir.mkdir()
        self.stderr_path = root / "worker.stderr"
        argv = [*ns.unshare, sys.executable, str(WORKER), "--mount", str(self.mount_dir),
                "--outer-ns", os.readlink("/proc/self/ns/mnt"), "--size-mib", str(size_mib),
                "--poll", str(POLL_SECONDS), *options]
        env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1", "PYTHONUNBUFFERED": "1"}
        with open(self.stderr_path, "wb") as err:
            self.proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=err,
                                         text=True, env=env, cwd=root)
        self._lines: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._pump, daemon=True).start()
        self.ready = self._next(READY_TIMEOUT_SECONDS)
        assert self.ready.get("ready"), self.ready
        self.pid = int(self.ready["pid"])

    def _pump(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self._lines.put(line)
        self._lines.put(None)

    def _next(self, timeout: float) -> dict[str, Any]:
        try:
            line = self._lines.get(timeout=timeout)
        except queue.Empty:
            self.kill()
            pytest.fail(f"worker gave no answer within {timeout} s\n{self.stderr_tail()}")
        if line is None:
            rc = self.proc.wait(timeout=EXIT_TIMEOUT_SECONDS)
            pytest.fail(f"worker exited (rc={rc})\n{self.stderr_tail()}")
        return json.loads(line)

    def call(self, cmd: str, **args: Any) -> dict[str, Any]:
        assert self.proc.stdin is not None
        try:
            self.proc.stdin.write(json.dumps({"cmd": cmd, **args}) + "\n")
            self.proc.stdin.flush()
        except BrokenPipeError:
            pytest.fail(f"worker is gone\n{self.stderr_tail()}")
        out = self._next(REPLY_TIMEOUT_SECONDS)
        if "internal_error" in out:
            pytest.fail(f"worker raised on {cmd}: {out['internal_error']}\n{out['traceback']}")
        return out

    def resize(self, size_mib: int) -> None:
        """Grow (or shrink) the tmpfs from outside, through the worker's mount namespace. (Type and source
        are given: in a user namespace, `mount -o remount DIR` alone fails re-reading the old options.)"""
        done = subprocess.run([*self.ns.nsenter(self.pid), "mount", "-t", "tmpfs", "-o", f"remount,size={size_mib}m",
                               "tmpfs", str(self.mount_dir)], capture_output=True, text=True,
                              timeout=COMMAND_TIMEOUT_SECONDS)
        assert done.returncode == 0, f"remount failed: {done.stderr}"

    def log_lines(self) -> list[str]:
        return self.stderr_path.read_text(errors="replace").splitlines()

    def stderr_tail(self, n: int = 40) -> str:
        return "worker stderr (tail):\n" + "\n".join(self.log_lines()[-n:])

    def close(self) -> int:
        """Close stdin: the worker must exit by itself."""
        if self.proc.stdin is not None and not self.proc.stdin.closed:
            with contextlib.suppress(BrokenPipeError):
                self.proc.stdin.close()
        try:
            return self.proc.wait(timeout=EXIT_TIMEOUT_SECONDS)
        except subprocess.TimeoutExpired:
            self.kill()
            pytest.fail(f"worker did not exit when its stdin closed\n{self.stderr_tail()}")

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=EXIT_TIMEOUT_SECONDS)


@pytest.fixture
def start_worker(namespaces: Namespaces, tmp_path: Path) -> Iterator[Callable[..., DiskWorker]]:
    workers: list[DiskWorker] = []

    def start(size_mib: int, *options: str) -> DiskWorker:
        root = tmp_path / f"w{len(workers)}"
        root.mkdir()
        w = DiskWorker(namespaces, root, size_mib, list(options))
        workers.append(w)
        return w

    yield start
    for w in workers:
        rc = w.close()
        assert rc == 0, f"worker exited with {rc}\n{w.stderr_tail()}"
        assert not any(w.mount_dir.iterdir()), "the worker left files outside its tmpfs"


# ------------------------------------------------------------------------------------------ helpers


def assert_storage_full(err: dict[str, Any] | None) -> dict[str, Any]:
    """The one way a full disk may surface: the typed StorageFull, wire code 72."""
    assert err is not None, "expected a rejection"
    assert err["type"] == "StorageFull", err
    assert err["typed"] and not err["is_oserror"], err
    assert (err["code"], err["code_name"]) == (72, "PARTITION_FULL"), err
    assert err["attrs"]["replica"] == "disk-0", err
    return err


def assert_kernel_enospc(err: dict[str, Any]) -> None:
    assert err.get("cause_errno") == errno.ENOSPC, err      # raised from the kernel's OSError
    assert err["attrs"]["cause"] == ENOSPC_TEXT, err


def assert_consistent(w: DiskWorker, batches: int) -> None:
    """verify_replica_dir is clean and every acknowledged batch reads back byte-identical."""
    v = w.call("verify")
    assert v["ok"], v["problems"]
    r = w.call("read_all")
    assert r["ok"], r["problems"]
    assert r["batches"] == r["acked"] == batches, r


def append_all(w: DiskWorker, n: int, size: int, expect_base: int) -> list[dict[str, int]]:
    """Append n batches; each must be acknowledged, in offset order starting at `expect_base`."""
    out = w.call("append", n=n, size=size)
    assert out["error"] is None and out["errors"] == {}, out["error"]
    acked = out["acked"]
    assert len(acked) == n
    assert [a["base"] for a in acked] == list(range(expect_base, expect_base + n))   # one record per batch
    assert all(a["size"] == size for a in acked)
    return acked


def append_when_space_returns(w: DiskWorker, size: int) -> dict[str, int]:
    """Retry one append until it is acknowledged; meanwhile only StorageFull is acceptable."""
    deadline = time.monotonic() + RECOVERY_DEADLINE_SECONDS
    while True:
        out = w.call("append", n=1, size=size)
        if out["acked"]:
            return out["acked"][0]
        assert_storage_full(out["error"])
        if time.monotonic() > deadline:
            pytest.fail(f"appends still rejected {RECOVERY_DEADLINE_SECONDS} s after space returned: {out['error']}")
        time.sleep(POLL_SECONDS / 2)


def transitions(lines: list[str]) -> list[tuple[str, str, str, str]]:
    """(machine, from, to, details) of every state change logged."""
    return [(m[1], m[2], m[3], m[4] + m[5]) for line in lines if (m := STATE_CHANGE.search(line))]


def followers(detail: str) -> int:
    """How many replicas followed a data dir's transition (folded into its one line)."""
    m = re.search(r"followers=(\d+)", detail)
    return int(m[1]) if m else 0


def dir_changes(lines: list[str]) -> list[tuple[str, str, int]]:
    """(from, to, replicas that followed) of every data-dir transition logged."""
    return [(o, n, followers(dt)) for m, o, n, dt in transitions(lines) if m == "data_dir"]


def between(lines: list[str], start_mark: str, end_mark: str) -> list[str]:
    """The log lines between two `mark` commands."""
    start = lines.index(f"INFO disk_worker mark {start_mark}")
    return lines[start + 1:lines.index(f"INFO disk_worker mark {end_mark}")]


def segment_files(bases: list[int]) -> list[str]:
    return sorted([f"{b:020d}.log" for b in bases] + [f"{b:020d}.index" for b in bases] + ["replication.chk"])


# ------------------------------------------------------------------------------------------ tests


def test_skip_policy_never_skips_in_ci() -> None:
    assert on_unavailable({"CI": "true"}) is pytest.fail
    assert on_unavailable({"CI": ""}) is pytest.fail
    assert on_unavailable({}) is pytest.skip
    assert [c.unshare[:2] for c in namespace_candidates(True, {})] == [("unshare", "-m"), ("unshare", "-Urm")]
    assert [c.unshare for c in namespace_candidates(False, {})] == [("unshare", "-Urm")]
    assert [c.unshare for c in namespace_candidates(True, {"FLUVIAL_FAULTS_USERNS": "1"})] == [("unshare", "-Urm")]


@pytest.mark.parametrize("clock", ["real", "manual"])
def test_default_guard_rejects_before_the_kernel_and_recovers_when_the_disk_grows(
        start_worker: Callable[..., DiskWorker], clock: str) -> None:
    """8 MiB disk, default guard (R = 1 MiB) and default segment config (its index preallocates 2 MiB).
    With the manual clock the guard never polls statvfs on its own, so its byte accounting alone must
    keep the reserve."""
    w = start_worker(8, *(["--manual-clock"] if clock == "manual" else []))
    s = w.ready
    assert (s["replica_state"], s["guard_state"], s["reserve_bytes"]) == ("OK", "OK", DEFAULT_RESERVE)
    assert s["fs_total_bytes"] == 8 * MIB
    assert os.listdir(w.mount_dir) == []             # the tmpfs exists only in the worker's namespace

    size = 64 * KIB
    out = w.call("append", n=200, size=size)
    acked = out["acked"]
    assert 40 < len(acked) < 200
    assert out["errors"] == {"StorageFull": 1}, out["error"]       # nothing untyped escaped
    err = assert_storage_full(out["error"])
    assert err["attrs"]["cause"] == "headroom", err                # the guard said no, not the kernel
    assert "cause_errno" not in err
    assert err["attrs"]["threshold_bytes"] >= DEFAULT_RESERVE + size

    st = w.call("state")
    assert st["replica_state"] == "FULL"
    assert st["guard_state"] in ("LOW", "FULL")
    assert st["fs_free_bytes"] >= DEFAULT_RESERVE - RESERVE_SLACK, st      # the reserve held
    assert st["leo"] == acked[-1]["leo"] == len(acked)
    assert st["active_log_bytes"] == len(acked) * size

    again = w.call("append", n=20, size=size, stop_on_error=False)
    assert again["acked"] == [] and again["errors"] == {"StorageFull": 20}
    assert_consistent(w, len(acked))

    w.resize(16)
    if clock == "manual":
        w.call("advance_clock", seconds=1.0)
    first = append_when_space_returns(w, size)
    assert first["base"] == len(acked)
    append_all(w, 20, size, len(acked) + 1)
    st = w.call("state")
    assert (st["replica_state"], st["guard_state"], st["fs_total_bytes"]) == ("OK", "OK", 16 * MIB)
    assert_consistent(w, len(acked) + 21)

    lines = w.log_lines()
    assert sum("replica_open" in line for line in lines) == 1        # the same replica throughout
    # the replica follows its data dir: no line of its own, counted in the dir's (one each way)
    assert [c for c in transitions(lines) if c[0] == "replica"] == []
    followed = [(o, n, f) for o, n, f in dir_changes(lines) if "FULL" in (o, n)]
    assert followed in ([("LOW", "FULL", 1), ("FULL", "OK", 1)], [("LOW", "FULL", 1), ("FULL", "LOW", 1)]), followed


@pytest.mark.parametrize("guard", ["none", "reserve0"])
def test_kernel_enospc_mid_batch_is_cut_back_and_appends_resume(
        start_worker: Callable[..., DiskWorker], guard: str) -> None:
    """No reserve to save us: the kernel takes part of a 256 KiB batch, then says ENOSPC."""
    opts = ["--guard", "none"] if guard == "none" else ["--guard", "reserve", "--reserve-bytes", "0", "--manual-clock"]
    w = start_worker(4, "--segment-max-bytes", str(4 * MIB), *opts)
    acked = append_all(w, 4, 100 * KIB, 0)
    good_end = sum(a["size"] for a in acked)

    room = 40 * KIB
    before = w.call("fill", leave_bytes=room)
    assert before["fs_free_bytes"] == room and not before["enospc"]
    assert before["active_log_bytes"] == good_end

    big = 256 * KIB                       # > room: the kernel writes what fits, then ENOSPC
    out = w.call("append", n=1, size=big)
    assert out["acked"] == [] and out["errors"] == {"StorageFull": 1}
    err = assert_storage_full(out["error"])
    assert_kernel_enospc(err)

    after = w.call("state")
    assert after["failed_writes"] == [              # the kernel took what fit, then said ENOSPC
        {"offset": good_end, "length": big, "file_size": good_end + room, "errno": errno.ENOSPC}]
    assert after["replica_state"] == "FULL"
    assert after["leo"] == before["leo"] == 4
    assert after["active_log_bytes"] == good_end       # truncated back: no partial batch
    assert after["files"]["00000000000000000000.log"] == good_end
    assert after["fs_free_bytes"] == room              # and the pages of the partial write came back
    if guard == "reserve0":
        assert after["guard_state"] != "OK"            # believes the kernel: 0 bytes free until it polls
    assert_consistent(w, 4)
    changes = transitions(w.log_lines())
    assert [(m, o, n) for m, o, n, _ in changes if m == "replica"] == [("replica", "OK", "FULL")]
    assert "cause=ENOSPC during=write" in next(d for m, _, _, d in changes if m == "replica")

    w.call("unfill")
    if guard == "reserve0":
        w.call("advance_clock", seconds=1.0)           # the guard's next poll
    append_all(w, 3, big, 4)
    st = w.call("state")
    assert st["replica_state"] == "OK"
    assert st["active_log_bytes"] == good_end + 3 * big
    assert_consistent(w, 7)


@pytest.mark.parametrize("guard", ["none", "reserve0"])
def test_kernel_enospc_inside_a_record_set_cuts_back_the_whole_run(
        start_worker: Callable[..., DiskWorker], guard: str) -> None:
    """A produce request's batches are written with one pwritev: when the kernel takes part of it and says
    ENOSPC, none of the request is in the log (no batch of it acknowledged, the file cut back to where the
    run began, its pages returned), and the same record set goes in whole once space returns."""
    opts = ["--guard", "none"] if guard == "none" else ["--guard", "reserve", "--reserve-bytes", "0", "--manual-clock"]
    w = start_worker(4, "--segment-max-bytes", str(4 * MIB), *opts)
    acked = append_all(w, 3, 100 * KIB, 0)
    good_end = sum(a["size"] for a in acked)
    before = w.call("fill", leave_bytes=150 * KIB)
    room = before["fs_free_bytes"]                                   # the filler ends on a page
    assert 128 * KIB < room < 192 * KIB

    out = w.call("append", n=4, size=64 * KIB, together=True)       # 256 KiB > room: the first two fit
    assert out["acked"] == [] and out["errors"] == {"StorageFull": 1}
    assert_kernel_enospc(assert_storage_full(out["error"]))
    after = w.call("state")
    assert after["failed_writes"][0]["offset"] == good_end and after["failed_writes"][0]["length"] == 256 * KIB
    assert after["leo"] == before["leo"] == 3
    assert after["active_log_bytes"] == good_end and after["files"]["00000000000000000000.log"] == good_end
    assert after["fs_free_bytes"] == room
    assert_consistent(w, 3)

    w.call("unfill")
    if guard == "reserve0":
        w.call("advance_clock", seconds=1.0)
    out = w.call("append", n=4, size=64 * KIB, together=True)
    assert [a["base"] for a in out["acked"]] == [3, 4, 5, 6] and out["leo"] == 7
    assert w.call("state")["active_log_bytes"] == good_end + 4 * 64 * KIB
    assert_consistent(w, 7)


SEGMENT = 64 * KIB
ROLL_BATCH = 6000                          # 10 batches fill a 64 KiB segment, the 11th rolls


@pytest.mark.parametrize("guard", ["none", "default"])
def test_no_space_at_roll_keeps_the_old_segment_active(start_worker: Callable[..., DiskWorker], guard: str) -> None:
    """none: the kernel's ENOSPC comes from preallocating the new segment's index.
    default: the guard's cache says there is room (its clock is stopped); the statvfs every roll makes
    finds one page above the reserve: enough for the new index, not for index + batch."""
    opts = ["--guard", "none"] if guard == "none" else ["--manual-clock"]
    w = start_worker(4, "--segment-max-bytes", str(SEGMENT), *opts)
    append_all(w, 30, ROLL_BATCH, 0)
    st = w.call("state")
    assert (st["segment_count"], st["active_base"], st["active_log_bytes"]) == (3, 20, 10 * ROLL_BATCH)
    assert st["active_log_bytes"] + ROLL_BATCH > SEGMENT              # the next append rolls
    files_before = st["files"]
    assert sorted(files_before) == segment_files([0, 10, 20])

    if guard == "none":
        filled = w.call("fill", leave_bytes=0)
        assert filled["fs_free_bytes"] == 0
    else:
        filled = w.call("fill", leave_bytes=DEFAULT_RESERVE + PAGE)
        assert filled["fs_free_bytes"] == DEFAULT_RESERVE + PAGE
        assert filled["guard_free_bytes"] > DEFAULT_RESERVE + ROLL_BATCH    # the batch's own check passes
    out = w.call("append", n=1, size=ROLL_BATCH)
    assert out["acked"] == [] and out["errors"] == {"StorageFull": 1}
    err = assert_storage_full(out["error"])
    if guard == "none":
        assert_kernel_enospc(err)
        detail = next(d for m, _, n, d in transitions(w.log_lines()) if m == "replica" and n == "FULL")
        assert "during=roll" in detail
        assert w.call("state")["failed_writes"] == []            # no batch byte was attempted
    else:
        assert err["attrs"]["cause"] == "headroom", err

    st = w.call("state")
    assert st["replica_state"] == "FULL"
    assert st["fs_free_bytes"] == filled["fs_free_bytes"]          # nothing was written
    assert (st["segment_count"], st["active_base"], st["leo"]) == (3, 20, 30)
    assert st["files"] == files_before             # no half-created segment, old index not shrunk
    assert_consistent(w, 30)
    synced = w.call("sync")                        # the flusher on a full disk: the HW checkpoint waits
    assert synced["error"] is None, synced["error"]
    assert synced["replica_state"] == "FULL"
    assert "replica.failed" not in synced["files"]
    if guard == "none":
        assert synced["files"]["replication.chk"] == 0
        assert any("checkpoint_deferred" in line for line in w.log_lines())

    w.call("unfill")
    if guard == "default":
        w.call("advance_clock", seconds=1.0)
    append_all(w, 25, ROLL_BATCH, 30)
    st = w.call("state")
    assert st["replica_state"] == "OK"
    assert (st["segment_count"], st["active_base"], st["leo"]) == (6, 50, 55)
    assert sorted(st["files"]) == segment_files([0, 10, 20, 30, 40, 50])
    assert_consistent(w, 55)
    assert w.call("sync")["files"]["replication.chk"] == 8
    segs = w.call("verify")["segments"]
    assert [(s["base"], s["end_offset"]) for s in segs] == [(b, min(b + 10, 55)) for b in range(0, 51, 10)]


@pytest.mark.parametrize("guard", ["none", "default"])
def test_replica_opens_on_a_disk_with_zero_bytes_free(start_worker: Callable[..., DiskWorker], guard: str) -> None:
    """Default segment config: its index wants 2 MiB of a 4 MiB disk, which is only taken once space
    returns. The default guard runs on a stopped clock so that its accounting alone must hold."""
    opts = ["--guard", "none"] if guard == "none" else ["--manual-clock"]
    w = start_worker(4, "--defer-open", *opts)
    filled = w.call("fill", leave_bytes=0)
    assert filled["fs_free_bytes"] == 0

    st = w.call("open")
    assert st["replica_state"] == "FULL"
    assert st["leo"] == 0
    if guard == "default":
        assert st["guard_state"] == "FULL"
    assert st["files"] == dict.fromkeys(segment_files([0]), 0)   # nothing preallocated yet

    size = 32 * KIB
    out = w.call("append", n=5, size=size, stop_on_error=False)
    assert out["acked"] == [] and out["errors"] == {"StorageFull": 5}
    assert_storage_full(out["error"])
    synced = w.call("sync")
    assert synced["error"] is None, synced["error"]
    assert synced["replica_state"] == "FULL"
    assert "replica.failed" not in synced["files"]
    assert_consistent(w, 0)

    w.call("unfill")
    if guard == "default":
        w.call("advance_clock", seconds=1.0)
    assert append_when_space_returns(w, size)["base"] == 0
    st = w.call("state")
    assert st["replica_state"] == "OK"
    assert st["files"]["00000000000000000000.index"] > 0      # preallocated now

    # Fill the rest of the disk in one burst: the reserve must hold, with the index counted.
    out = w.call("append", n=200, size=size)
    assert out["errors"] == {"StorageFull": 1}
    err = assert_storage_full(out["error"])
    st = w.call("state")
    if guard == "default":
        assert err["attrs"]["cause"] == "headroom", err
        assert st["fs_free_bytes"] >= DEFAULT_RESERVE - RESERVE_SLACK, st
    else:
        assert_kernel_enospc(err)
    assert st["leo"] == 1 + len(out["acked"])
    assert_consistent(w, st["leo"])


def test_rejections_on_a_full_disk_keep_the_log_bounded(start_worker: Callable[..., DiskWorker]) -> None:
    """2,000 rejected appends: a handful of log lines at INFO; each state change logged exactly once."""
    w = start_worker(4, "--segment-max-bytes", str(1 * MIB))
    size = 4 * KIB
    append_all(w, 5, size, 0)

    w.call("mark", text="full")
    filled = w.call("fill", leave_bytes=DEFAULT_RESERVE // 2)
    assert filled["fs_free_bytes"] == DEFAULT_RESERVE // 2
    time.sleep(POLL_SECONDS * 1.2)                 # so that the next append polls statvfs
    out = w.call("append", n=2000, size=size, stop_on_error=False)
    assert out["acked"] == []
    assert out["errors"] == {"StorageFull": 2000}
    assert_storage_full(out["error"])
    assert w.call("state")["replica_state"] == "FULL"

    w.call("mark", text="recover")
    w.call("unfill")
    first = append_when_space_returns(w, size)
    append_all(w, 5, size, first["base"] + 1)
    assert w.call("state")["replica_state"] == "OK"
    w.call("mark", text="end")

    lines = w.log_lines()
    while_full = between(lines, "full", "recover")
    assert len(while_full) <= 4, while_full
    full_changes = Counter((m, o, n, followers(dt)) for m, o, n, dt in transitions(while_full))
    assert full_changes == {("data_dir", "OK", "FULL", 1): 1}, while_full      # the replica folded in
    recovering = between(lines, "recover", "end")
    assert len(recovering) <= 4, recovering
    back = Counter((m, o, n, followers(dt)) for m, o, n, dt in transitions(recovering))
    assert back == {("data_dir", "FULL", "OK", 1): 1}, recovering
    assert all(line.startswith(("INFO ", "WARNING ")) for line in lines), lines


def test_full_replica_recovers_when_space_returns_without_any_write(start_worker: Callable[..., DiskWorker]) -> None:
    """Leadership moves away from a FULL replica, so nobody writes to it: it must report OK again on
    its own once the disk has room (the space poller's statvfs), not only when a write happens to try."""
    w = start_worker(8, "--manual-clock")
    out = w.call("append", n=200, size=64 * KIB)
    assert out["errors"] == {"StorageFull": 1}
    assert w.call("poll")["replica_state"] == "FULL"          # still full: no flapping on a poll
    w.resize(32)
    st = w.call("poll")
    assert (st["replica_state"], st["guard_state"]) == ("OK", "OK"), st
    assert st["leo"] == len(out["acked"])                     # nothing was written to get there
    lines = w.log_lines()
    assert [c for c in transitions(lines) if c[0] == "replica"] == []       # it follows its dir, folded in
    assert [(o, n) for o, n, f in dir_changes(lines) if f == 1] == [("LOW", "FULL"), ("FULL", "OK")]


def test_out_of_inodes_with_free_blocks_is_full_once_not_flapping(start_worker: Callable[..., DiskWorker]) -> None:
    """A tmpfs with few inodes: blocks stay free while the files run out (what a quota or an inode
    table does). Old code read no inodes: each roll hit the kernel's ENOSPC creating the segment, the
    next poll believed statvfs (plenty of bytes) and the dir flipped FULL↔OK at every poll."""
    inodes = 200
    w = start_worker(16, "--nr-inodes", str(inodes), "--segment-max-bytes", str(16 * KIB))
    size = 4 * KIB
    w.call("eat_inodes", leave=40)
    w.call("mark", text="filling")
    acked = 0
    for _ in range(60):                              # one request per poll interval, as a producer would
        out = w.call("append", n=3, size=size, stop_on_error=False)
        acked += len(out["acked"])
        time.sleep(POLL_SECONDS * 1.2)
    w.call("mark", text="full")
    st = w.call("state")
    assert (st["guard_state"], st["replica_state"]) == ("FULL", "FULL"), st
    assert st["fs_free_bytes"] > 8 * MIB                            # blocks to spare: inodes ran out
    assert st["failed_writes"] == []                                # refused before the kernel had to
    changes = dir_changes(between(w.log_lines(), "filling", "full"))
    assert [n for _o, n, _f in changes].count("FULL") == 1, changes  # no flapping
    assert_consistent(w, acked)

    w.call("free_inodes")
    first = append_when_space_returns(w, size)
    assert first["base"] == acked
    assert w.call("state")["replica_state"] == "OK"
    assert_consistent(w, acked + 1)
