"""kill -9 a process that is appending to a replica, at random moments, over several rounds.

A child (`crash_worker.py`) appends deterministic batches and prints an acknowledgement line after each
`append` returns. The parent SIGKILLs it after a random delay, reopens the replica and checks: every
acknowledged batch is there and reads back identical, offsets run contiguously from 0, no batch is torn
(`verify_replica_dir`), LEO >= the last acknowledged LEO, and at most the one batch that was in flight
when the kill came is present without an acknowledgement. The next round reopens the same directory
and continues.

With `fsync-every-batch` the acknowledged batches are on disk; with the default `os` policy they are in
the page cache, which a process crash does not lose, so the same guarantees hold.

Reproduce a failure with the seed shown in its message: FLUVIAL_CRASH_SEED=<seed> pytest ...
"""

from __future__ import annotations

import os
import queue
import random
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from fluvial.protocol import batch as b
from fluvial.protocol.records import decode_records
from fluvial.storage import FlushPolicy, Replica, ReplicaConfig
from fluvial.storage.validator import segment_bases, verify_replica_dir

from .crash_worker import batch_records, make_batch

SEED = int(os.environ.get("FLUVIAL_CRASH_SEED", "20240917"))
WORKER = str(Path(__file__).with_name("crash_worker.py"))
SEGMENT_BYTES = 256 * 1024
READY_TIMEOUT_SECONDS = 30.0
EXIT_TIMEOUT_SECONDS = 10.0


@dataclass(frozen=True)
class Ack:
    n: int
    base: int
    leo: int


@dataclass(frozen=True)
class StoredBatch:
    base: int
    next_offset: int
    raw: bytes


class Expected:
    """The batches the worker writes, regenerated from the seed (cached)."""

    def __init__(self, seed: int) -> None:
        self.seed = seed
        self._bytes: dict[int, bytes] = {}

    def raw(self, n: int) -> bytes:
        if n not in self._bytes:
            self._bytes[n] = make_batch(self.seed, n)
        return self._bytes[n]


# ------------------------------------------------------------------------------------------ child


@dataclass
class RoundOutcome:
    ready_leo: int | None
    acks: list[Ack]
    returncode: int
    stderr: str
    killed_before_ready: bool


def _reader(stream, lines: queue.Queue) -> None:
    try:
        for line in iter(stream.readline, b""):
            lines.put(line)
    finally:
        lines.put(None)


def run_and_kill(directory: Path, seed: int, start: int, policy: str, rng: random.Random, tmp: Path,
                 ctx: str) -> RoundOutcome:
    """Start a worker at batch `start`, SIGKILL it at a random moment, return what it acknowledged."""
    err_path = tmp / f"worker-{start}.stderr"
    with open(err_path, "wb") as err:
        proc = subprocess.Popen(
            [sys.executable, WORKER, str(directory), str(seed), str(start), policy, str(SEGMENT_BYTES)],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=err,
        )
    lines: queue.Queue[bytes | None] = queue.Queue()
    reader = threading.Thread(target=_reader, args=(proc.stdout, lines), daemon=True)
    reader.start()
    collected: list[bytes] = []
    killed_before_ready = False
    try:
        if rng.random() < 0.15:
            # Kill anywhere, also while the worker imports, opens or repairs the replica.
            killed_before_ready = True
            time.sleep(rng.uniform(0.0, 0.5))
        else:
            try:
                first = lines.get(timeout=READY_TIMEOUT_SECONDS)
            except queue.Empty:
                first = None
            if first is None:
                proc.kill()
                proc.wait(timeout=EXIT_TIMEOUT_SECONDS)
                pytest.fail(f"{ctx} worker never became ready; stderr:\n{err_path.read_text()}")
            collected.append(first)
            time.sleep(rng.uniform(0.0, 0.35))
        proc.send_signal(signal.SIGKILL)
        returncode = proc.wait(timeout=EXIT_TIMEOUT_SECONDS)
        reader.join(timeout=EXIT_TIMEOUT_SECONDS)
        assert not reader.is_alive(), f"{ctx} worker stdout not closed after the kill"
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=EXIT_TIMEOUT_SECONDS)
        if proc.stdout is not None:
            proc.stdout.close()
    while (line := lines.get_nowait()) is not None:  # the reader has finished: its end marker is queued
        collected.append(line)
    stderr = err_path.read_text(errors="replace")
    assert returncode == -signal.SIGKILL, f"{ctx} worker ended by itself (rc={returncode}); stderr:\n{stderr}"

    ready_leo: int | None = None
    acks: list[Ack] = []
    for line in collected:
        if not line.endswith(b"\n"):
            continue  # cut by the kill: not a complete acknowledgement
        word, *fields = line.decode().split()
        if word == "ready":
            ready_leo = int(fields[0])
        elif word == "ack":
            n, base, leo = (int(x) for x in fields)
            acks.append(Ack(n, base, leo))
        else:
            pytest.fail(f"{ctx} unexpected worker output {line!r}")
    return RoundOutcome(ready_leo, acks, returncode, stderr, killed_before_ready)


# ------------------------------------------------------------------------------------------ parent


def read_all_batches(replica: Replica, ctx: str) -> list[StoredBatch]:
    """Every batch from the log start to the LEO, through the replica's read path."""
    out: list[StoredBatch] = []
    offset = replica.log_start
    leo = replica.leo
    while offset < leo:
        result = replica.read(offset, max_bytes=1 << 20)
        data = result.slice.read()
        assert data, f"{ctx} empty read at offset {offset} below LEO {leo}"
        for view in b.split_batches(data):
            h = b.decode_header(view)
            assert h.base_offset == offset, f"{ctx} batch at offset {h.base_offset}, expected {offset} (gap or overlap)"
            out.append(StoredBatch(h.base_offset, h.next_offset, bytes(view)))
            offset = h.next_offset
    assert offset == leo, f"{ctx} batches end at {offset}, LEO is {leo}"
    return out


def check_replica(directory: Path, policy: str, expected: Expected, start: int, outcome: RoundOutcome,
                  decoded_upto: int, ctx: str) -> list[StoredBatch]:
    """Reopen after a kill and check every guarantee; return the batches found."""
    # Before any repair: sealed segments are never torn; only the active one may have a cut tail.
    raw_report = verify_replica_dir(directory)
    for seg in raw_report.segments[:-1]:
        assert not seg.problems, f"{ctx} sealed segment {seg.path} damaged by a kill: {seg.problems}"
    assert not raw_report.problems, f"{ctx} segment chain broken by a kill: {raw_report.problems}"

    config = ReplicaConfig(flush=FlushPolicy.parse(policy), segment_max_bytes=SEGMENT_BYTES)
    with Replica.open(directory, config) as replica:
        assert replica.log_start == 0, f"{ctx} log start {replica.log_start}"
        leo = replica.leo
        batches = read_all_batches(replica, ctx)

    # Offsets contiguous from 0 (read_all_batches checked each step), content identical to what was sent.
    assert (batches[0].base if batches else 0) == 0, ctx
    assert (batches[-1].next_offset if batches else 0) == leo, ctx
    for n, stored in enumerate(batches):
        want = expected.raw(n)
        assert stored.raw[8:] == want[8:], f"{ctx} batch {n} at offset {stored.base} differs from what was appended"
        if n >= decoded_upto:
            records = decode_records(stored.raw)
            assert [(r.key, r.value) for r in records] == batch_records(expected.seed, n), f"{ctx} batch {n}"
            assert [r.offset for r in records] == list(range(stored.base, stored.next_offset)), f"{ctx} batch {n}"

    # Nothing written in earlier rounds is lost; every acknowledgement of this round is honoured.
    found = len(batches)
    assert found >= start, f"{ctx} {found} batches after the kill, {start} before this round"
    if outcome.ready_leo is not None:
        prior_leo = batches[start - 1].next_offset if start else 0
        assert outcome.ready_leo == prior_leo, f"{ctx} worker opened at LEO {outcome.ready_leo}, expected {prior_leo}"
    for i, ack in enumerate(outcome.acks):
        assert ack.n == start + i, f"{ctx} acks out of order: {outcome.acks[:i + 1]}"
        assert ack.n < found, f"{ctx} acknowledged batch {ack.n} (offset {ack.base}) is missing; " \
                              f"log has {found} batches, LEO {leo}"
        assert (batches[ack.n].base, batches[ack.n].next_offset) == (ack.base, ack.leo), \
            f"{ctx} acknowledged batch {ack.n} was at [{ack.base}, {ack.leo}), now at " \
            f"[{batches[ack.n].base}, {batches[ack.n].next_offset})"
    if outcome.acks:
        assert leo >= outcome.acks[-1].leo, f"{ctx} LEO {leo} below the last acknowledged LEO {outcome.acks[-1].leo}"
    # At most the one batch in flight at the kill may be present without an acknowledgement.
    unacked = found - start - len(outcome.acks)
    assert unacked in (0, 1), f"{ctx} {unacked} batches present without acknowledgement " \
                              f"(start={start}, acks={len(outcome.acks)}, found={found})"

    report = verify_replica_dir(directory)
    assert report.ok, f"{ctx} torn or corrupt data after recovery: {report.all_problems()}"
    assert sum(s.batches for s in report.segments) == found, ctx
    return batches


def tear_tail(directory: Path, expected: Expected, n: int, leo: int, rng: random.Random) -> int:
    """Leave what a kill in the middle of the write of batch `n` leaves: a prefix of it at the end of the
    active log (a SIGKILL can cut a large write(2) between pages). Return the prefix length."""
    raw = bytearray(expected.raw(n))
    raw[:8] = b.encode_base_offset(leo)
    cut = rng.randrange(1, len(raw))
    active = directory / f"{segment_bases(os.listdir(directory))[-1]:020d}.log"
    with open(active, "ab") as f:
        f.write(raw[:cut])
    return cut


@pytest.mark.parametrize(("policy", "rounds"), [("fsync-every-batch", 12), ("os", 8)])
def test_kill9_loses_no_acknowledged_batch(tmp_path: Path, policy: str, rounds: int) -> None:
    seed = SEED
    rng = random.Random(f"{seed}-{policy}")
    directory = tmp_path / "topic-0"
    expected = Expected(seed)
    present = 0
    total_acks = 0
    rounds_with_acks = 0
    for rnd in range(rounds):
        ctx = f"[seed={seed} policy={policy} round={rnd}; rerun with FLUVIAL_CRASH_SEED={seed}]"
        outcome = run_and_kill(directory, seed, present, policy, rng, tmp_path, ctx)
        batches = check_replica(directory, policy, expected, present, outcome, present, ctx)
        present = len(batches)
        if rng.random() < 0.3:  # the next worker must cut this torn batch when it opens the replica
            tear_tail(directory, expected, present, batches[-1].next_offset if batches else 0, rng)
        total_acks += len(outcome.acks)
        rounds_with_acks += bool(outcome.acks)

    ctx = f"[seed={seed} policy={policy}]"
    # The test must have exercised something: kills while appending, and segment rolls.
    assert rounds_with_acks >= rounds // 2, f"{ctx} only {rounds_with_acks} of {rounds} rounds acknowledged anything"
    assert total_acks >= 100, f"{ctx} only {total_acks} acknowledgements in {rounds} rounds"
    assert len(segment_bases(os.listdir(directory))) >= 3, f"{ctx} no segment rolls happened"
