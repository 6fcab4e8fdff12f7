"""A replica on a real, tiny tmpfs, driven over stdin/stdout (used by `test_full_disk.py`).

Run it inside its own mount namespace, never directly:

    unshare -m --propagation private python disk_worker.py --mount DIR --outer-ns NS --size-mib 8 ...
    unshare -Urm ...                                       (when not root)

It mounts a tmpfs of `--size-mib` MiB on DIR (a mount only this namespace sees), opens a
`fluvial.storage.Replica` under it and then answers one JSON line on stdout for every JSON line read
from stdin:

    {"cmd": "append", "n": K, "size": B}      K batches of about B bytes → acked base offsets / typed error
                                              ("together": true: one append_batches call, all or none)
    {"cmd": "read_all"}                       every acked batch reads back byte-identical, offsets contiguous
    {"cmd": "verify"}                         fluvial.storage.validator.verify_replica_dir
    {"cmd": "state"}                          replica / data-dir state, LEO, free bytes, files
    {"cmd": "fill", "bytes": N}               eat N bytes (or "leave_bytes": N: eat all but N) with a filler file
    {"cmd": "unfill"}                         delete the filler file
    {"cmd": "eat_inodes", "leave": N}         create empty files until N inodes are free (--nr-inodes)
    {"cmd": "free_inodes"}                    delete them
    {"cmd": "open"}                           open the replica (with --defer-open)
    {"cmd": "sync"}                           Replica.sync()
    {"cmd": "advance_clock", "seconds": S}    move the guard's clock (with --manual-clock)
    {"cmd": "mark", "text": T}                log one INFO line (to split the log into phases)
    {"cmd": "poll"}                           SpaceGuard.refresh(): what the SPU's space poller does each second
    {"cmd": "quit"}

Logs go to stderr at INFO. It exits when stdin closes. It writes nothing outside its tmpfs: before
mounting it checks that it runs in a mount namespace other than `--outer-ns` (the test's), and after
mounting that DIR really is that tmpfs.
"""

from __future__ import annotations

import argparse
import errno as errno_mod
import json
import logging
import os
import random
import subprocess
import sys
import traceback
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from fluvial.errors import FluvialError
from fluvial.protocol import batch as b
from fluvial.protocol.records import build_batch, decode_records
from fluvial.storage import FileIO, Replica, ReplicaConfig, SpaceGuard, replica_dir
from fluvial.storage.fileio import Buffer
from fluvial.storage.validator import log_name, verify_replica_dir

MIB = 1024 * 1024
FILLER_NAME = "filler.bin"
FILL_CHUNK_BYTES = 1 * MIB
BATCH_FRAMING_BYTES = 61        # header (57) + record count (4)
RECORD_FRAMING_BYTES = 24       # per record: length, attributes, deltas, key flag/len, value len, headers

logger = logging.getLogger("disk_worker")


class ManualClock:
    """The guard's clock when the test must decide when statvfs is polled."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class ObservedIO(FileIO):
    """The real FileIO, plus a note of what a failed write left in the file before storage cleaned up:
    evidence that the kernel took part of a batch. It changes no behaviour."""

    def __init__(self) -> None:
        self.failed_writes: list[dict[str, int]] = []

    def pwritev(self, fd: int, buffers: Sequence[Buffer], offset: int) -> None:
        try:
            super().pwritev(fd, buffers, offset)
        except OSError as e:
            self.failed_writes.append({"offset": offset, "length": sum(len(x) for x in buffers),
                                       "file_size": self.fsize(fd), "errno": e.errno or 0})
            raise


@dataclass(frozen=True)
class Sent:
    raw: bytes
    records: list[tuple[bytes | None, bytes]]


class Worker:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.mount = args.mount
        self.replica_dir = replica_dir(self.mount, 5001, "disk", 0)
        self.filler = os.path.join(self.mount, FILLER_NAME)
        self.inode_dir = os.path.join(self.mount, "inodes")
        self.clock = ManualClock() if args.manual_clock else None
        self.guard: SpaceGuard | None = None
        self.io = ObservedIO()
        self.replica: Replica | None = None
        self.sent: dict[int, Sent] = {}     # acked base offset -> what was sent
        self.seq = 0

    # ---------------------------------------------------------------------------------- set-up

    def open(self) -> dict[str, Any]:
        assert self.replica is None, "replica already open"
        a = self.args
        if a.guard != "none":
            kwargs: dict[str, Any] = {"poll_interval_seconds": a.poll}
            if a.guard == "reserve":
                kwargs["reserve_bytes"] = a.reserve_bytes
            if self.clock is not None:
                kwargs["clock"] = self.clock
            self.guard = SpaceGuard(self.mount, **kwargs)
        config = ReplicaConfig(segment_max_bytes=a.segment_max_bytes) if a.segment_max_bytes else ReplicaConfig()
        self.replica = Replica.open(self.replica_dir, config, io=self.io, guard=self.guard)
        return self.state()

    # ---------------------------------------------------------------------------------- commands

    def append(self, n: int, size: int, records: int = 1, stop_on_error: bool = True,
               together: bool = False) -> dict[str, Any]:
        r = self._replica()
        acked: list[dict[str, int]] = []
        errors: dict[str, int] = {}
        first_error: dict[str, Any] | None = None
        if together:         # one record set of n batches, as one produce request carries: all or none
            made = []
            for _ in range(n):
                made.append(self._batch(size, records))
                self.seq += 1
            try:
                res = r.append_batches([raw for raw, _ in made])
            except Exception as e:
                return {"acked": [], "errors": {type(e).__name__: 1}, "error": describe_error(e), "leo": r.leo}
            base = res.base_offset
            for raw, recs in made:
                self.sent[base] = Sent(raw, recs)
                acked.append({"base": base, "leo": base + len(recs), "size": len(raw)})
                base += len(recs)
            return {"acked": acked, "errors": errors, "error": None, "leo": r.leo}
        for _ in range(n):
            raw, recs = self._batch(size, records)
            self.seq += 1
            try:
                res = r.append(raw)
            except Exception as e:
                errors[type(e).__name__] = errors.get(type(e).__name__, 0) + 1
                if first_error is None:
                    first_error = describe_error(e)
                if stop_on_error:
                    break
                continue
            self.sent[res.base_offset] = Sent(raw, recs)
            acked.append({"base": res.base_offset, "leo": res.leo, "size": len(raw)})
        return {"acked": acked, "errors": errors, "error": first_error, "leo": r.leo}

    def _batch(self, size: int, count: int) -> tuple[bytes, list[tuple[bytes | None, bytes]]]:
        """A batch of `count` records of deterministic bytes, exactly `size` bytes long when possible."""
        rng = random.Random(self.seq)
        value_len = max(1, (size - BATCH_FRAMING_BYTES) // count - RECORD_FRAMING_BYTES)
        recs: list[tuple[bytes | None, bytes]] = [(f"k{self.seq}-{i}".encode(), rng.randbytes(value_len))
                                                  for i in range(count)]
        raw = build_batch(recs)
        for _ in range(3):   # varint widths may move by a byte: converge on the exact size
            short = size - len(raw)
            last_key, last_value = recs[-1]
            if not short or len(last_value) + short < 1:
                break
            recs[-1] = (last_key, last_value + rng.randbytes(short) if short > 0 else last_value[:short])
            raw = build_batch(recs)
        return raw, recs

    def read_all(self) -> dict[str, Any]:
        """Read the whole log back and compare it with what was acknowledged."""
        r = self._replica()
        problems: list[str] = []
        seen: list[int] = []
        records = 0
        start = expected = r.log_start
        while start < r.leo and len(problems) < 10:
            data = r.read(start, max_bytes=MIB).slice.read()
            if not data:
                problems.append(f"empty read at offset {start} below LEO {r.leo}")
                break
            for view in b.split_batches(data):
                stored = bytes(view)
                h = b.decode_header(stored)
                if h.base_offset != expected:
                    problems.append(f"batch at offset {h.base_offset}, expected {expected} (gap or overlap)")
                sent = self.sent.get(h.base_offset)
                if sent is None:
                    problems.append(f"batch at offset {h.base_offset} was never acknowledged")
                else:
                    if stored[8:] != sent.raw[8:]:
                        problems.append(f"batch at offset {h.base_offset} differs from the bytes sent")
                    got = [(x.key, x.value, x.offset) for x in decode_records(stored)]
                    want = [(k, v, h.base_offset + i) for i, (k, v) in enumerate(sent.records)]
                    if got != want:
                        problems.append(f"records of batch {h.base_offset} differ from those sent")
                    records += len(got)
                seen.append(h.base_offset)
                expected = h.base_offset + h.last_offset_delta + 1
            start = expected
        if expected != r.leo:
            problems.append(f"batches end at offset {expected}, LEO is {r.leo}")
        missing = sorted(set(self.sent) - set(seen))
        if missing:
            problems.append(f"acknowledged batches not read back: {missing[:10]}")
        return {"ok": not problems, "problems": problems, "batches": len(seen), "records": records,
                "acked": len(self.sent), "leo": r.leo}

    def verify(self) -> dict[str, Any]:
        report = verify_replica_dir(self.replica_dir)
        return {
            "ok": report.ok,
            "problems": [str(p) for p in report.all_problems()],
            "segments": [{"base": s.base_offset, "batches": s.batches, "bytes": s.bytes, "end_offset": s.end_offset}
                         for s in report.segments],
        }

    def state(self) -> dict[str, Any]:
        st = os.statvfs(self.mount)
        out: dict[str, Any] = {
            "fs_free_bytes": st.f_bavail * st.f_frsize,
            "fs_total_bytes": st.f_blocks * st.f_frsize,
            "fs_free_inodes": st.f_favail,
            "filler_bytes": os.path.getsize(self.filler) if os.path.exists(self.filler) else 0,
            "files": self._files(),
            "failed_writes": self.io.failed_writes,
        }
        if self.guard is not None:
            out.update(guard_state=self.guard.state.name, guard_free_bytes=self.guard.free_bytes,
                       reserve_bytes=self.guard.reserve_bytes)
        r = self.replica
        if r is not None:
            active_log = os.path.join(self.replica_dir, log_name(r.active_base))
            out.update(replica_state=r.state.name, leo=r.leo, hw=r.hw, log_start=r.log_start,
                       active_base=r.active_base, segment_count=r.segment_count(),
                       active_log_bytes=os.path.getsize(active_log))
        return out

    def _files(self) -> dict[str, int]:
        if not os.path.isdir(self.replica_dir):
            return {}
        return {name: os.path.getsize(os.path.join(self.replica_dir, name))
                for name in sorted(os.listdir(self.replica_dir))}

    def fill(self, nbytes: int | None = None, leave_bytes: int | None = None) -> dict[str, Any]:
        """Eat space with a filler file, written straight to the tmpfs (the guard is not told)."""
        if leave_bytes is not None:
            st = os.statvfs(self.mount)
            nbytes = max(0, st.f_bavail * st.f_frsize - leave_bytes)
        assert nbytes is not None, "fill needs bytes or leave_bytes"
        written = 0
        hit_enospc = False
        fd = os.open(self.filler, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o644)
        try:
            chunk = bytes(FILL_CHUNK_BYTES)
            while written < nbytes:
                try:
                    written += os.write(fd, chunk[: min(FILL_CHUNK_BYTES, nbytes - written)])
                except OSError as e:
                    if e.errno != errno_mod.ENOSPC:
                        raise
                    hit_enospc = True
                    break
        finally:
            os.close(fd)
        return {"written": written, "enospc": hit_enospc, **self.state()}

    def unfill(self) -> dict[str, Any]:
        if os.path.exists(self.filler):
            os.unlink(self.filler)
        return self.state()

    def eat_inodes(self, leave: int) -> dict[str, Any]:
        """Use up inodes with empty files (bytes stay free: ENOSPC with free blocks)."""
        os.makedirs(self.inode_dir, exist_ok=True)
        made = 0
        while os.statvfs(self.mount).f_favail > leave:
            open(os.path.join(self.inode_dir, f"i{made}"), "wb").close()
            made += 1
        return {"made": made, **self.state()}

    def free_inodes(self) -> dict[str, Any]:
        if os.path.isdir(self.inode_dir):
            for name in os.listdir(self.inode_dir):
                os.unlink(os.path.join(self.inode_dir, name))
            os.rmdir(self.inode_dir)
        return self.state()

    def sync(self) -> dict[str, Any]:
        try:
            self._replica().sync()
        except Exception as e:
            return {"error": describe_error(e), **self.state()}
        return {"error": None, **self.state()}

    def advance_clock(self, seconds: float) -> dict[str, Any]:
        assert self.clock is not None, "start the worker with --manual-clock"
        self.clock.now += seconds
        return {"clock": self.clock.now}

    def poll(self) -> dict[str, Any]:
        assert self.guard is not None, "poll needs a guard"
        self.guard.refresh()
        return self.state()

    def mark(self, text: str) -> dict[str, Any]:
        logger.info("mark %s", text)
        return {}

    def close(self) -> None:
        if self.replica is not None:
            self.replica.close()
            self.replica = None

    def _replica(self) -> Replica:
        assert self.replica is not None, "replica not open"
        return self.replica


def describe_error(e: BaseException) -> dict[str, Any]:
    """An exception as data: class, wire code, attributes, and the OS error under it."""
    out: dict[str, Any] = {
        "type": type(e).__name__,
        "typed": isinstance(e, FluvialError),
        "is_oserror": isinstance(e, OSError),
        "message": str(e),
        "attrs": {k: v for k, v in vars(e).items() if isinstance(v, str | int | float | bool | type(None))},
    }
    if isinstance(e, FluvialError):
        out["code"] = int(e.code)
        out["code_name"] = e.code.name
    cause = e.__cause__
    if isinstance(cause, OSError):
        out["cause_errno"] = cause.errno
        out["cause_errno_name"] = errno_mod.errorcode.get(cause.errno or 0, "?")
    return out


# -------------------------------------------------------------------------------------------- main


def mount_tmpfs(args: argparse.Namespace) -> None:
    own_ns = os.readlink("/proc/self/ns/mnt")
    if own_ns == args.outer_ns:
        raise SystemExit(f"refusing to mount: still in the caller's mount namespace {own_ns}; run under unshare -m")
    if os.listdir(args.mount):
        raise SystemExit(f"refusing to mount over a non-empty directory {args.mount}")
    inodes = f",nr_inodes={args.nr_inodes}" if args.nr_inodes else ""
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={args.size_mib}m,mode=0755{inodes}", "tmpfs", args.mount],
                   check=True, timeout=30, stdout=sys.stderr)
    st = os.statvfs(args.mount)
    if st.f_blocks * st.f_frsize != args.size_mib * MIB or not _is_tmpfs(args.mount):
        raise SystemExit(f"{args.mount} is not the {args.size_mib} MiB tmpfs just mounted")


def _is_tmpfs(path: str) -> bool:
    real = os.path.realpath(path)
    with open("/proc/self/mountinfo") as f:
        for line in f:
            fields = line.split()
            sep = fields.index("-")
            if fields[4] == real and fields[sep + 1] == "tmpfs":
                return True
    return False


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser()
    p.add_argument("--mount", required=True, help="empty directory to mount the tmpfs on")
    p.add_argument("--outer-ns", required=True, help="the caller's /proc/self/ns/mnt, which must not be ours")
    p.add_argument("--size-mib", type=int, required=True)
    p.add_argument("--nr-inodes", type=int, default=0, help="tmpfs inode limit (0: the default)")
    p.add_argument("--guard", choices=("default", "reserve", "none"), default="default")
    p.add_argument("--reserve-bytes", type=int, default=0, help="with --guard reserve")
    p.add_argument("--poll", type=float, default=0.05, help="guard statvfs poll interval, seconds")
    p.add_argument("--manual-clock", action="store_true", help="the guard's clock moves only on advance_clock")
    p.add_argument("--segment-max-bytes", type=int, default=0, help="0: the default")
    p.add_argument("--defer-open", action="store_true", help="open the replica only on the open command")
    return p.parse_args(argv)


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(levelname)s %(name)s %(message)s")
    mount_tmpfs(args)
    w = Worker(args)
    ready: dict[str, Any] = {"ready": True, "pid": os.getpid(), "mount": args.mount, "replica_dir": w.replica_dir,
                             "ns": os.readlink("/proc/self/ns/mnt")}
    if not args.defer_open:
        ready.update(w.open())
    reply(ready)
    handlers = {
        "append": w.append, "read_all": w.read_all, "verify": w.verify, "state": w.state, "fill": w.fill,
        "unfill": w.unfill, "eat_inodes": w.eat_inodes, "free_inodes": w.free_inodes, "open": w.open, "sync": w.sync, "advance_clock": w.advance_clock, "mark": w.mark,
        "poll": w.poll,
    }
    try:
        for line in sys.stdin:
            if not line.strip():
                continue
            msg = json.loads(line)
            cmd = msg.pop("cmd")
            if cmd == "quit":
                reply({"bye": True})
                break
            try:
                reply(handlers[cmd](**msg))
            except Exception as e:   # a bug in the worker or an unexpected escape: report it, keep serving
                reply({"internal_error": describe_error(e), "traceback": traceback.format_exc()})
    finally:
        w.close()
    return 0


def reply(obj: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
