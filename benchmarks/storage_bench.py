#!/usr/bin/env python3
"""Storage benchmarks: fluvial's `Replica` side by side with plain `os` file I/O, in the same run.

1. append  — `Replica.append` of pre-built batches (1 KiB records; 16 KiB and 1 MiB batches, flush
             policy `os`) vs `os.write` of the very same bytes to a file in the same directory; plus
             the `fsync-every-batch` policy vs `os.write` + `os.fdatasync` per batch.
2. read    — `Replica.read(offset, max_bytes=1 MiB)` + `slice.read()` walking the whole log from
             offset 0 vs `os.read` of the same `.log` files in 1 MiB chunks, hot page cache; and cold
             (cache dropped before each rep; the baseline then reads a byte-identical copy).
3. reopen  — `Replica.open` of a large partition with a cold page cache (seconds, seconds per GiB),
             next to a warm reopen and the minimal I/O any opener needs (list, stat, read the indexes).

Every measurement runs `--reps` times (at least 3) and the median is reported. fluvial and baseline run
interleaved so that both see the same machine state: append and read alternate between the two sides
every `--chunk-mib` within each rep (on a VM the cost of fresh page-cache pages, and of a guest-cold
disk read, swings by several times from one second to the next); reopen alternates whole runs in ABBA
order. A table goes to stdout, everything (every run) to `benchmarks/results/storage.json`.

    .venv/bin/python benchmarks/storage_bench.py            # full run, a few minutes
    .venv/bin/python benchmarks/storage_bench.py --quick    # smaller volumes, under a minute

Written data is discarded between runs (truncated before being closed, so no run pays for the write-back
of another) and the whole data directory is removed at the end.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field

from benchlib import (
    RESULTS,
    fs_type,
    load_average,
    log,
    machine_facts,
    machine_line,
    median,
    print_markdown_table,
    results_dir,
    write_results,
)
from fluvial import defaults as d
from fluvial.protocol import batch as b
from fluvial.protocol.records import build_batch
from fluvial.storage import FlushKind, FlushPolicy, Replica, ReplicaConfig, SpaceGuard

KIB, MIB, GIB = d.KIB, d.MIB, d.GIB
MB = 1_000_000                       # throughput is reported in MB/s (10^6 bytes per second)
RECORD_BYTES = 1 * KIB
READ_CHUNK_BYTES = 1 * MIB
DEFAULT_RESULTS = RESULTS / "storage.json"


# ============================================================================================ helpers


def make_batch(batch_bytes: int, seed: bytes) -> bytes:
    """One uncompressed batch of `batch_bytes // 1 KiB` records of 1 KiB (random bytes, no key)."""
    count = max(1, batch_bytes // RECORD_BYTES)
    span = len(seed) - RECORD_BYTES
    records = [(None, seed[o:o + RECORD_BYTES]) for o in ((i * RECORD_BYTES) % span for i in range(count))]
    return build_batch(records, timestamp_ms=int(time.time() * 1000))


def free_bytes(path: str) -> int:
    st = os.statvfs(path)
    return st.f_bavail * st.f_frsize


def files_under(directory: str) -> list[str]:
    return sorted(os.path.join(directory, n) for n in os.listdir(directory))


def log_files(directory: str) -> list[str]:
    return [p for p in files_under(directory) if p.endswith(".log")]


def drop_page_cache(paths: list[str]) -> str:
    """Evict `paths` from the page cache. Returns the method used: `drop_caches` (root: `sync; echo 3 >
    /proc/sys/vm/drop_caches`) or `fadvise` (fdatasync + POSIX_FADV_DONTNEED on every file)."""
    os.sync()
    try:
        with open("/proc/sys/vm/drop_caches", "w") as f:
            f.write("3\n")
        return "drop_caches"
    except OSError:
        pass
    for p in paths:
        fd = os.open(p, os.O_RDONLY)
        try:
            os.fdatasync(fd)
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)
    return "fadvise"


def discard_files(paths: list[str]) -> None:
    """Truncate to 0 before removing: dirty pages are dropped, not written back, so the next run
    starts with an idle disk and no dirty memory."""
    for p in paths:
        with contextlib.suppress(FileNotFoundError):
            os.truncate(p, 0)
            os.unlink(p)


def discard_replica(rep: Replica) -> None:
    directory = rep.directory
    for p in files_under(directory):
        with contextlib.suppress(FileNotFoundError):
            os.truncate(p, 0)
    rep.close()
    shutil.rmtree(directory, ignore_errors=True)


@contextlib.contextmanager
def timed(out: list[float]) -> Iterator[None]:
    gc.collect()
    t0 = time.perf_counter()
    yield
    out.append(time.perf_counter() - t0)


# ============================================================================================ results


@dataclass
class Comparison:
    """One benchmark: fluvial's runs and the baseline's runs (seconds), measured interleaved."""

    name: str
    description: str
    nbytes: int                                   # bytes per run (throughput benchmarks)
    fluvial_s: list[float] = field(default_factory=list)
    baseline_s: list[float] = field(default_factory=list)
    baseline: str = ""
    unit: str = "MB/s"                           # "MB/s" (higher is better) or "s" (lower is better)
    target: str = ""
    notes: dict[str, object] = field(default_factory=dict)

    def value(self, seconds: list[float]) -> float:
        if self.unit == "s":
            return median(seconds)
        return self.nbytes / median(seconds) / MB

    @property
    def fluvial(self) -> float:
        return self.value(self.fluvial_s)

    @property
    def base(self) -> float:
        return self.value(self.baseline_s) if self.baseline_s else float("nan")

    @property
    def ratio(self) -> float:
        """Median of the per-rep ratios (fluvial to baseline: of throughput, or of time for `s`). Each rep
        measures both sides under the same machine state, so its ratio is the robust quantity; the ratio
        of the two medians can pair a fast rep of one side with a slow rep of the other."""
        return median(self.paired_ratios())

    @property
    def ratio_of_medians(self) -> float:
        return self.fluvial / self.base

    def paired_ratios(self) -> list[float]:
        """Ratio of each fluvial run to the baseline run next to it (robust to a drifting machine)."""
        pairs = zip(self.fluvial_s, self.baseline_s, strict=False)
        if self.unit == "s":
            return [f / r for f, r in pairs]
        return [r / f for f, r in pairs]

    def to_json(self) -> dict[str, object]:
        out = asdict(self)
        out.update(fluvial_median=self.fluvial, baseline_median=self.base, ratio=self.ratio,
                   ratio_of_medians=self.ratio_of_medians, paired_ratios=self.paired_ratios())
        if self.unit == "MB/s":
            out["fluvial_runs_mb_s"] = [self.nbytes / s / MB for s in self.fluvial_s]
            out["baseline_runs_mb_s"] = [self.nbytes / s / MB for s in self.baseline_s]
        return out


def interleaved(reps: int, fluvial: Callable[[], float], baseline: Callable[[], float],
                c: Comparison) -> None:
    """ABBA order: rep 0 fluvial first, rep 1 baseline first, ..."""
    for i in range(reps):
        order = [(fluvial, c.fluvial_s), (baseline, c.baseline_s)]
        if i % 2:
            order.reverse()
        for fn, out in order:
            out.append(fn())
        log(f"  {c.name} rep {i + 1}/{reps}: fluvial {fmt(c.value(c.fluvial_s[-1:]), c.unit)}, "
            f"baseline {fmt(c.value(c.baseline_s[-1:]), c.unit)}")


# ============================================================================================= append


def replica_config(args: argparse.Namespace, flush: FlushKind = FlushKind.OS) -> ReplicaConfig:
    return ReplicaConfig(segment_max_bytes=args.segment_bytes, flush=FlushPolicy(flush))


def open_replica(args: argparse.Namespace, directory: str, flush: FlushKind = FlushKind.OS) -> Replica:
    guard = None if args.no_guard else SpaceGuard(os.path.dirname(directory))
    return Replica.open(directory, replica_config(args, flush), guard=guard)


def append_pair_run(args: argparse.Namespace, batch: bytes, count: int, flush: FlushKind,
                    rep_no: int) -> tuple[float, float]:
    """One rep: `count` batches through `Replica.append` and the same bytes through `os.write` to a file in
    the replica's directory, interleaved in chunks of `--chunk-mib` (each chunk timed on its own), so both
    see the same machine state (page-cache allocation cost varies a lot on a VM).
    Returns (fluvial seconds, baseline seconds)."""
    directory = os.path.join(tempfile.mkdtemp(prefix="append-", dir=args.work), "bench-0")
    rep = open_replica(args, directory, flush)
    raw_path = os.path.join(directory, "baseline.raw")
    fd = os.open(raw_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o644)
    sync_each = flush is FlushKind.FSYNC_EVERY_BATCH
    per_chunk = max(1, args.chunk_bytes // len(batch))
    n = len(batch)
    append, write, fdatasync, clock = rep.append, os.write, os.fdatasync, time.perf_counter

    def fluvial(k: int) -> float:
        t0 = clock()
        for _ in range(k):
            append(batch)
        return clock() - t0

    def raw(k: int) -> float:
        t0 = clock()
        for _ in range(k):
            if write(fd, batch) != n:
                raise RuntimeError("short write")
            if sync_each:
                fdatasync(fd)
        return clock() - t0

    spent = [0.0, 0.0]
    try:
        gc.collect()
        done = chunk = 0
        while done < count:
            k = min(per_chunk, count - done)
            order = (0, 1) if (chunk + rep_no) % 2 == 0 else (1, 0)
            for which in order:
                spent[which] += fluvial(k) if which == 0 else raw(k)
            done += k
            chunk += 1
        if rep.leo != count * b.decode_header(batch).record_count:
            raise RuntimeError(f"replica LEO {rep.leo} after {count} batches")
    finally:
        os.close(fd)
        discard_replica(rep)
        shutil.rmtree(os.path.dirname(directory), ignore_errors=True)
    return spent[0], spent[1]


def bench_append(args: argparse.Namespace, batch_bytes: int, volume: int, flush: FlushKind) -> Comparison:
    batch = make_batch(batch_bytes, args.seed)
    count = max(1, volume // len(batch))
    sync_each = flush is FlushKind.FSYNC_EVERY_BATCH
    label = f"{batch_bytes // KIB} KiB" if batch_bytes < MIB else f"{batch_bytes // MIB} MiB"
    c = Comparison(
        name=f"append_{label.replace(' ', '').lower()}_{flush.value}",
        description=f"append, 1 KiB records in {label} batches, flush {flush.value}",
        nbytes=count * len(batch),
        baseline="os.write + os.fdatasync per batch" if sync_each else "os.write of the same bytes",
        target=">= 0.70 of raw" if batch_bytes == MIB and not sync_each else "",
        notes={"batch_bytes": len(batch), "records_per_batch": b.decode_header(batch).record_count,
               "batches_per_run": count, "segment_max_bytes": args.segment_bytes,
               "space_guard": not args.no_guard, "chunk_bytes": args.chunk_bytes},
    )
    log(f"append: {c.description}: {count} batches of {len(batch)} bytes ({c.nbytes / MIB:.0f} MiB) per run")
    append_pair_run(args, batch, max(1, min(count, 64 * MIB // len(batch))), flush, 0)  # warm-up, untimed
    for i in range(args.reps):
        f, r = append_pair_run(args, batch, count, flush, i)
        c.fluvial_s.append(f)
        c.baseline_s.append(r)
        log(f"  {c.name} rep {i + 1}/{args.reps}: fluvial {c.nbytes / f / MB:,.0f} MB/s, "
            f"baseline {c.nbytes / r / MB:,.0f} MB/s")
    return c


# =============================================================================================== read


def next_offset_after(data: bytes, batch_total: int = 0) -> int:
    """Offset after the last batch of `data` (whole batches, as `slice.read()` returns them).

    The logs here hold batches of one size, `batch_total`: the last one starts `batch_total` bytes before
    the end; that header is checked (magic, length) and the walk over every header is the fallback. This
    keeps the harness's own cost out of the read timing."""
    end = len(data)
    pos = end - batch_total
    if batch_total and pos >= 0 and data[pos + 16] == b.MAGIC \
            and b.decode_preamble(data, pos)[1] == batch_total - b.PREAMBLE_BYTES:
        return b.decode_preamble(data, pos)[0] + b.decode_last_offset_delta(data, pos) + 1
    pos = 0
    while True:
        base, batch_len = b.decode_preamble(data, pos)
        nxt = pos + b.PREAMBLE_BYTES + batch_len
        if nxt >= end:
            return base + b.decode_last_offset_delta(data, pos) + 1
        pos = nxt


class ReplicaReader:
    """Walks the whole log from its start with `Replica.read(offset, 1 MiB)` + `slice.read()`."""

    def __init__(self, rep: Replica, batch_total: int) -> None:
        self.rep, self.batch_total = rep, batch_total
        self.offset, self.leo = rep.log_start, rep.leo
        self.total = 0

    @property
    def done(self) -> bool:
        return self.offset >= self.leo

    def step(self, limit: int) -> int:
        """Read on until at least `limit` more bytes or the end of the log."""
        read, got = self.rep.read, 0
        while got < limit and self.offset < self.leo:
            data = read(self.offset, READ_CHUNK_BYTES).slice.read()
            if not data:
                raise RuntimeError(f"empty read at offset {self.offset} below LEO {self.leo}")
            got += len(data)
            self.offset = next_offset_after(data, self.batch_total)
        self.total += got
        return got


class RawReader:
    """`os.read` of the given files, in order, in 1 MiB chunks."""

    def __init__(self, paths: list[str]) -> None:
        self.paths = list(paths)
        self.fd: int | None = None
        self.total = 0

    @property
    def done(self) -> bool:
        return not self.paths and self.fd is None

    def step(self, limit: int) -> int:
        got = 0
        while got < limit and not self.done:
            if self.fd is None:
                self.fd = os.open(self.paths.pop(0), os.O_RDONLY | os.O_CLOEXEC)
            chunk = os.read(self.fd, READ_CHUNK_BYTES)
            if not chunk:
                os.close(self.fd)
                self.fd = None
            got += len(chunk)
        self.total += got
        return got


def read_pair_run(args: argparse.Namespace, rep: Replica, batch_total: int, paths: list[str], size: int,
                  rep_no: int) -> tuple[float, float]:
    """One rep: both sides read everything, alternating every `--chunk-mib`. Returns (fluvial s, raw s)."""
    readers: tuple[ReplicaReader | RawReader, ...] = (ReplicaReader(rep, batch_total), RawReader(paths))
    spent = [0.0, 0.0]
    clock = time.perf_counter
    gc.collect()
    chunk = 0
    while not all(r.done for r in readers):
        order = (0, 1) if (chunk + rep_no) % 2 == 0 else (1, 0)
        for which in order:
            t0 = clock()
            readers[which].step(args.chunk_bytes)
            spent[which] += clock() - t0
        chunk += 1
    for name, r in zip(("replica", "raw"), readers, strict=True):
        if r.total != size:
            raise RuntimeError(f"{name} read {r.total} bytes, the log holds {size}")
    return spent[0], spent[1]


def build_log(args: argparse.Namespace, directory: str, batch: bytes, volume: int) -> Replica:
    rep = open_replica(args, directory)
    for _ in range(max(1, volume // len(batch))):
        rep.append(batch)
    rep.sync()
    return rep


def bench_read(args: argparse.Namespace, batch_bytes: int, volume: int) -> list[Comparison]:
    """Hot: both sides read the replica's own `.log` files from the page cache. Cold: the page cache is
    dropped before each rep and the baseline reads a byte-identical copy of the `.log` files (a file read
    by one side would be hot for the other); the two sides alternate every `--chunk-mib`, so both meet
    the same disk and host state."""
    batch = make_batch(batch_bytes, args.seed)
    label = f"{batch_bytes // KIB} KiB" if batch_bytes < MIB else f"{batch_bytes // MIB} MiB"
    directory = os.path.join(args.work, f"read-{batch_bytes}")
    copy_dir = directory + "-copy"
    log(f"read: writing a {volume / MIB:.0f} MiB log of {label} batches")
    rep = build_log(args, directory, batch, volume)
    out: list[Comparison] = []
    try:
        logs = log_files(directory)
        size = sum(os.path.getsize(p) for p in logs)
        os.makedirs(copy_dir)
        copies = [shutil.copyfile(p, os.path.join(copy_dir, os.path.basename(p))) for p in logs]
        for cold in (False, True):
            if cold and args.no_cold:
                continue
            cache = "cold" if cold else "hot"
            c = Comparison(
                name=f"read_{label.replace(' ', '').lower()}_{cache}",
                description=f"read whole log of {label} batches, {cache} page cache",
                nbytes=size,
                baseline=("os.read of a byte-identical copy of the .log files, 1 MiB chunks" if cold
                          else "os.read of the same .log files, 1 MiB chunks"),
                notes={"batch_bytes": len(batch), "segments": len(logs), "max_bytes": READ_CHUNK_BYTES,
                       "page_cache": cache, "chunk_bytes": args.chunk_bytes},
            )
            paths = copies if cold else logs
            read_pair_run(args, rep, len(batch), paths, size, 0)  # warm-up, untimed (hot: fills the cache)
            reps = args.cold_reps if cold else args.reps
            for i in range(reps):
                if cold:
                    args.cache_method = drop_page_cache(files_under(directory) + copies)
                    c.notes["cache_drop_method"] = args.cache_method
                f, r = read_pair_run(args, rep, len(batch), paths, size, i)
                c.fluvial_s.append(f)
                c.baseline_s.append(r)
                log(f"  {c.name} rep {i + 1}/{reps}: fluvial {size / f / MB:,.0f} MB/s, "
                    f"baseline {size / r / MB:,.0f} MB/s")
            out.append(c)
    finally:
        rep.close()
        shutil.rmtree(directory, ignore_errors=True)
        shutil.rmtree(copy_dir, ignore_errors=True)
    return out


# ============================================================================================= reopen


def write_partition(args: argparse.Namespace, directory: str, target: int) -> dict[str, int]:
    """Sealed segments of 1 MiB batches, then an active segment filled to ~90 % with 16 KiB batches
    (a dense active index: the worst case for the tail check at open)."""
    big, small = make_batch(MIB, args.seed), make_batch(16 * KIB, args.seed)
    seg = args.segment_bytes
    sealed_wanted = max(0, -(-target // seg) - 1)
    rep = open_replica(args, directory)
    written = 0
    try:
        t0 = time.perf_counter()
        while rep.segment_count() - 1 < sealed_wanted:
            rep.append(big)
            written += len(big)
        active = os.path.getsize(os.path.join(directory, f"{rep.active_base:020d}.log"))
        fill = min(int(seg * 0.9), max(target - written, len(small)))
        while active < fill:
            rep.append(small)
            active += len(small)
            written += len(small)
        segments, leo = rep.segment_count(), rep.leo
        log(f"reopen: wrote {written / GIB:.2f} GiB in {time.perf_counter() - t0:.1f} s; syncing")
    finally:
        rep.close()
    return {"bytes": written, "segments": segments, "leo": leo, "active_log_bytes": active}


def minimal_open_io(directory: str) -> None:
    """What any opener must do: list the directory, stat every file, read every index file."""
    for name in os.listdir(directory):
        path = os.path.join(directory, name)
        st = os.stat(path)
        if name.endswith(".index"):
            with open(path, "rb") as f:
                f.read(st.st_size)


def bench_reopen(args: argparse.Namespace, target: int) -> list[Comparison]:
    directory = os.path.join(args.work, "reopen", "bench-0")
    os.makedirs(os.path.dirname(directory), exist_ok=True)
    log(f"reopen: writing a partition of {target / GIB:.2f} GiB")
    facts = write_partition(args, directory, target)
    gib = facts["bytes"] / GIB
    try:
        def open_once(cold: bool) -> float:
            if cold:
                args.cache_method = drop_page_cache(files_under(directory))
            t: list[float] = []
            with timed(t):
                rep = Replica.open(directory, replica_config(args))
            try:
                if rep.leo != facts["leo"] or rep.segment_count() != facts["segments"]:
                    raise RuntimeError(f"reopened with LEO {rep.leo}, {rep.segment_count()} segments; "
                                       f"expected {facts['leo']}, {facts['segments']}")
            finally:
                rep.close()
            return t[0]

        def minimal_once(cold: bool) -> float:
            if cold:
                args.cache_method = drop_page_cache(files_under(directory))
            t: list[float] = []
            with timed(t):
                minimal_open_io(directory)
            return t[0]

        out = []
        for cold in (True, False):
            cache = "cold" if cold else "warm"
            c = Comparison(
                name=f"reopen_{cache}", unit="s", nbytes=facts["bytes"],
                description=f"Replica.open of a {gib:.1f} GiB partition, {cache} page cache",
                baseline="list dir + stat every file + read every .index (same cache state)",
                target="<= 3 s for 10 GiB" if cold else "",
                notes=dict(facts, gib=gib),
            )
            open_once(False)
            interleaved(args.reps, lambda cold=cold: open_once(cold), lambda cold=cold: minimal_once(cold), c)
            c.notes["seconds_per_gib"] = c.fluvial / gib
            if cold:
                c.notes["cache_drop_method"] = args.cache_method
            out.append(c)
        return out
    finally:
        shutil.rmtree(os.path.dirname(directory), ignore_errors=True)


# ============================================================================================== report


def fmt(x: float, unit: str) -> str:
    return f"{x:.3f} s" if unit == "s" else f"{x:,.0f} MB/s"


def print_table(machine: dict[str, object], results: list[Comparison]) -> None:
    print()
    print(machine_line(machine))
    print()
    head = ("benchmark", "fluvial (median)", "baseline (median)", "ratio", "ratio range", "target")
    rows = []
    for c in results:
        pr = c.paired_ratios()
        kind = " (time)" if c.unit == "s" else ""
        rows.append((c.description, fmt(c.fluvial, c.unit), fmt(c.base, c.unit), f"{c.ratio:.2f}{kind}",
                     f"{min(pr):.2f}–{max(pr):.2f}" if pr else "", c.target))
    print_markdown_table(head, rows)
    print()
    print("ratio = median over the reps of fluvial / baseline measured in the same rep: of throughput for "
          "MB/s rows (higher is better),\nof time for (time) rows (lower is better); ratio range = min–max "
          "over the reps. The two sides run interleaved: append and read\nin alternating chunks within "
          "each rep, reopen in ABBA order.")
    for c in results:
        if c.name == "reopen_cold":
            print(f"reopen (cold): {c.fluvial:.3f} s for {c.notes['gib']:.2f} GiB = "
                  f"{c.notes['seconds_per_gib']:.3f} s/GiB ({c.notes['segments']} segments; "
                  f"page cache dropped with {c.notes.get('cache_drop_method')})")


# ================================================================================================ main


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dir", default=None,
                   help="parent directory for the data (default: a temp dir under benchmarks/results/, "
                        "i.e. on the checkout's filesystem)")
    p.add_argument("--quick", action="store_true", help="smaller volumes and 3 reps: under a minute")
    p.add_argument("--reps", type=int, default=None,
                   help="runs per measurement (default 5, --quick 3; min 3)")
    p.add_argument("--cold-reps", type=int, default=None,
                   help="runs of each cold-cache read (default: --reps)")
    p.add_argument("--append-gib", type=float, default=None,
                   help="GiB per side per append run (default 1, --quick 0.5)")
    p.add_argument("--fsync-mib", type=float, default=None,
                   help="MiB per side per fsync-every-batch run (default 256, --quick 64)")
    p.add_argument("--read-gib", type=float, default=None,
                   help="size of each read log (default 2, --quick 0.5)")
    p.add_argument("--reopen-gib", type=float, default=None,
                   help="partition size for reopen (default min(10, 25%% of free disk), --quick 2)")
    p.add_argument("--segment-mib", type=int, default=d.SEGMENT_MAX_BYTES // MIB,
                   help="segment size (default: fluvial's default, %(default)s MiB)")
    p.add_argument("--only", action="append", choices=["append", "fsync", "read", "reopen"],
                   help="run only these benchmarks (repeatable)")
    p.add_argument("--chunk-mib", type=int, default=32,
                   help="append/read: the two sides alternate every this many MiB (default %(default)s)")
    p.add_argument("--no-guard", action="store_true",
                   help="append without a SpaceGuard (an SPU always has one)")
    p.add_argument("--no-cold", action="store_true", help="skip the cold-cache read runs")
    p.add_argument("--allow-tmpfs", action="store_true", help="allow a data dir on tmpfs")
    p.add_argument("--json", default=str(DEFAULT_RESULTS), help="results file (default %(default)s)")
    p.add_argument("--keep", action="store_true", help="do not remove the data directory at the end")
    args = p.parse_args(argv)
    args.reps = max(3, args.reps or (3 if args.quick else 5))
    args.cold_reps = max(3, args.cold_reps or args.reps)
    args.segment_bytes = args.segment_mib * MIB
    args.chunk_bytes = max(1, args.chunk_mib) * MIB
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    parent = results_dir(args.dir, args.allow_tmpfs)
    if parent is None:
        return 2
    args.work = tempfile.mkdtemp(prefix="fluvial-bench-", dir=parent)
    args.seed = os.urandom(2 * MIB)
    args.cache_method = "n/a"
    free = free_bytes(args.work)
    q = args.quick
    append_volume = min(int((args.append_gib or (0.5 if q else 1)) * GIB), free // 8)
    fsync_volume = min(int((args.fsync_mib or (64 if q else 256)) * MIB), free // 8)
    read_volume = min(int((args.read_gib or (0.5 if q else 2)) * GIB), free // 8)
    reopen_default = 2 * GIB if q else min(10 * GIB, free // 4)
    reopen_volume = min(int(args.reopen_gib * GIB) if args.reopen_gib else reopen_default, int(free * 0.8))
    machine = machine_facts(args.work, fs_type(parent), free_disk_gib=round(free / GIB, 1))
    log(machine_line(machine))
    only = set(args.only or ["append", "fsync", "read", "reopen"])
    results: list[Comparison] = []
    started = time.perf_counter()
    try:
        if "append" in only:
            results.append(bench_append(args, 16 * KIB, append_volume, FlushKind.OS))
            results.append(bench_append(args, MIB, append_volume, FlushKind.OS))
        if "fsync" in only:
            results.append(bench_append(args, MIB, fsync_volume, FlushKind.FSYNC_EVERY_BATCH))
        if "read" in only:
            results.extend(bench_read(args, 16 * KIB, read_volume))
            results.extend(bench_read(args, MIB, read_volume))
        if "reopen" in only:
            results.extend(bench_reopen(args, reopen_volume))
    finally:
        if not args.keep:
            shutil.rmtree(args.work, ignore_errors=True)
    elapsed = time.perf_counter() - started
    machine["page_cache_drop"] = args.cache_method
    machine["loadavg_end"] = load_average()
    print_table(machine, results)
    print(f"total time {elapsed:.0f} s")
    payload = {
        "machine": machine,
        "settings": {"reps": args.reps, "cold_reps": args.cold_reps, "quick": args.quick,
                     "append_bytes": append_volume,
                     "fsync_bytes": fsync_volume, "read_bytes": read_volume, "reopen_bytes": reopen_volume,
                     "segment_max_bytes": args.segment_bytes, "space_guard": not args.no_guard,
                     "argv": sys.argv[1:], "elapsed_seconds": elapsed,
                     "finished": time.strftime("%Y-%m-%dT%H:%M:%S%z")},
        "results": [c.to_json() for c in results],
    }
    write_results(args.json, payload)
    return 0


if __name__ == "__main__":
    sys.exit(main())
