"""One health model (DESIGN.md §5, issue #9 item 1), through the fault-injectable file layer: what
statvfs reports and which writes the kernel refuses are set by a `FaultPlan`; nothing is mocked.

* a batch that does not fit the headroom is refused (72) without any state change, so mixed batch sizes
  near the threshold make exactly one OK→FULL transition;
* a replica is FULL exactly while its data dir is FULL, and its transitions are folded into the dir's;
* the kernel refusing a write although statvfs shows room (EDQUOT, inodes) keeps the dir FULL with a
  back-off (1 s doubling to 60 s) instead of flipping every poll; growth of free bytes or inodes ends it;
* free inodes count like free bytes;
* the space guard reads, accounts and fires under one lock: concurrent pollers and writers never leave
  it FULL with room to spare.
"""

from __future__ import annotations

import contextlib
import errno
import sys
import threading
from pathlib import Path

import pytest

from fluvial import defaults as d
from fluvial.errors import StorageFull
from fluvial.protocol.records import build_batch
from fluvial.statemachine import Transition
from fluvial.storage import (
    DirState,
    FaultPlan,
    FaultyFileIO,
    Replica,
    ReplicaConfig,
    ReplicaState,
    SpaceGuard,
)
from fluvial.storage.fileio import FsUsage

KIB = 1024
MIB = 1024 * KIB
R = 256 * KIB


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def batch(size: int) -> bytes:
    return build_batch([(None, b"x" * max(1, size - 90))])


def recorder(out: list[Transition]):
    def listen(t: Transition) -> None:
        out.append(t)
    return listen


def open_replica(tmp_path: Path, io: FaultyFileIO, guard: SpaceGuard, name: str = "t-0") -> Replica:
    return Replica.open(tmp_path / name, ReplicaConfig(segment_max_bytes=1 * MIB), io=io, guard=guard)


def test_mixed_batch_sizes_near_the_threshold_make_exactly_one_transition(tmp_path: Path) -> None:
    """Old code: each big batch that did not fit marked the replica FULL and the next small one OK
    again — one OK→FULL→OK cycle per pair of requests while the dir was LOW."""
    io = FaultyFileIO(FaultPlan(usage=FsUsage(100 * MIB, int(1.9 * R))))
    clock = Clock()
    guard = SpaceGuard(str(tmp_path), io=io, reserve_bytes=R, clock=clock)
    assert guard.state is DirState.LOW
    replica_changes: list[Transition] = []
    dir_changes: list[Transition] = []
    guard.add_listener(recorder(dir_changes))
    with open_replica(tmp_path, io, guard) as r:
        r.add_listener(recorder(replica_changes))
        refused_while_ok = accepted = 0
        for _ in range(100):
            for size in (R // 2 + 100, 4 * KIB):           # big: does not fit once free < 1.5R; small: fits
                try:
                    r.append(batch(size))
                    accepted += 1
                except StorageFull:
                    if r.state is ReplicaState.OK:
                        refused_while_ok += 1
        assert refused_while_ok > 0 and accepted > 0          # refusals with no state change happened
        assert [(t.old, t.new) for t in replica_changes] == [(ReplicaState.OK, ReplicaState.FULL)]
        assert [(t.old, t.new) for t in dir_changes] == [(DirState.LOW, DirState.FULL)]
        assert r.state is ReplicaState.FULL and guard.state is DirState.FULL
        assert guard.free_bytes >= R                          # the reserve held
        io.plan.usage = FsUsage(100 * MIB, 3 * R)             # space returns: both leave FULL together
        clock.now += d.SPACE_POLL_INTERVAL_SECONDS
        guard.refresh()
        assert r.state is ReplicaState.OK and guard.state is DirState.OK
        assert len(replica_changes) == 2


def test_replicas_follow_their_dir_and_are_folded_into_its_log_line(tmp_path: Path,
                                                                    caplog: pytest.LogCaptureFixture) -> None:
    io = FaultyFileIO(FaultPlan(usage=FsUsage(100 * MIB, 10 * R)))
    clock = Clock()
    guard = SpaceGuard(str(tmp_path), io=io, reserve_bytes=R, clock=clock)
    replicas = [open_replica(tmp_path, io, guard, f"t-{i}") for i in range(3)]
    try:
        caplog.clear()
        io.plan.usage = FsUsage(100 * MIB, R // 2)
        clock.now += 1
        guard.refresh()
        assert [r.state for r in replicas] == [ReplicaState.FULL] * 3
        lines = [rec.getMessage() for rec in caplog.records if "state_change" in rec.getMessage()]
        assert len(lines) == 1 and "machine=data_dir" in lines[0] and "followers=3" in lines[0], lines
        assert all(r.last_error and "FULL" in r.last_error for r in replicas)
        late = open_replica(tmp_path, io, guard, "t-9")       # opened while the dir is FULL: FULL too
        replicas.append(late)
        assert late.state is ReplicaState.FULL
        with pytest.raises(StorageFull):
            late.append(batch(100))
    finally:
        for r in replicas:
            r.close()


def run_simulated(r: Replica, guard: SpaceGuard, clock: Clock, seconds: float) -> None:
    """A producer retrying every 100 ms and the space poller every second, on the guard's clock."""
    for tick in range(int(seconds * 10)):
        clock.now += 0.1
        if tick % 10 == 0:
            guard.refresh()
        with contextlib.suppress(StorageFull):
            r.append(batch(1000))


@pytest.mark.parametrize("err", [errno.EDQUOT, errno.ENOSPC])
def test_kernel_refusal_with_room_in_statvfs_holds_full_with_backoff(tmp_path: Path, err: int) -> None:
    """Old code: the next poll believed statvfs, so the dir (and the replica) flipped FULL↔OK every
    second for as long as the quota was exhausted: ~60 FULL transitions in 2 minutes."""
    io = FaultyFileIO(FaultPlan(usage=FsUsage(100 * MIB, 50 * MIB, 1000, 900), enospc_errno=err))
    clock = Clock()
    guard = SpaceGuard(str(tmp_path), io=io, reserve_bytes=R, clock=clock)
    changes: list[Transition] = []
    guard.add_listener(recorder(changes))
    with open_replica(tmp_path, io, guard) as r:
        r.append(batch(1000))
        io.plan.enospc_after_bytes = io.bytes_written        # every write from now on is refused
        run_simulated(r, guard, clock, 120)
        fulls = [t for t in changes if t.new is DirState.FULL]
        # held 1, 2, 4, 8, 16, 32, then 60 s: FULL entered at 0, 1, 3, 7, 15, 31, 63 s
        assert len(fulls) == 7, [(t.old.name, t.new.name, t.detail) for t in changes]
        assert r._machine.transitions == 2 * len(fulls) - (r.state is ReplicaState.FULL)
        assert guard.state is DirState.FULL and r.state is ReplicaState.FULL
        assert guard.hold is not None and guard.hold.seconds == d.SPACE_KERNEL_FULL_HOLD_MAX_SECONDS
        with pytest.raises(StorageFull, match="kernel refused a write"):
            r.append(batch(1000))
        # free bytes grow (the quota or the disk freed something): trusted at once, back-off reset
        io.plan.usage = FsUsage(100 * MIB, 50 * MIB + 4096, 1000, 900)
        io.plan.enospc_after_bytes = None
        guard.refresh()
        assert guard.state is DirState.OK and r.state is ReplicaState.OK and guard.hold is None
        r.append(batch(1000))
        io.plan.enospc_after_bytes = io.bytes_written
        with pytest.raises(StorageFull):
            r.append(batch(1000))
        assert guard.hold is not None and guard.hold.seconds == d.SPACE_KERNEL_FULL_HOLD_MIN_SECONDS
        io.plan.usage = FsUsage(100 * MIB, 50 * MIB + 4096, 1000, 901)    # one inode freed: trusted too
        guard.refresh()
        assert guard.state is DirState.OK and guard.hold is None


def test_free_inodes_count_like_free_bytes(tmp_path: Path) -> None:
    """Old code read no inodes at all: a filesystem out of inodes looked AMPLE to the guard."""
    io = FaultyFileIO(FaultPlan(usage=FsUsage(100 * MIB, 50 * MIB, 1000, 500)))
    clock = Clock()
    guard = SpaceGuard(str(tmp_path), io=io, reserve_bytes=R, clock=clock)
    assert guard.state is DirState.OK and guard.reserve_inodes == 50
    io.plan.usage = FsUsage(100 * MIB, 50 * MIB, 1000, 90)               # < 2 × 50 inodes: LOW
    clock.now += 1
    guard.refresh()
    assert guard.state is DirState.LOW
    io.plan.usage = FsUsage(100 * MIB, 50 * MIB, 1000, 60)               # < 1.25 × 50: FULL
    clock.now += 1
    guard.refresh()
    assert guard.state is DirState.FULL
    with pytest.raises(StorageFull):
        guard.check(100)
    io.plan.usage = FsUsage(100 * MIB, 50 * MIB, 1000, 500)
    clock.now += 1
    guard.refresh()
    assert guard.state is DirState.OK
    io.plan.usage = FsUsage(100 * MIB, 50 * MIB, 0, 0)                   # no inode limit: ignored
    clock.now += 1
    guard.refresh()
    assert guard.state is DirState.OK and guard.reserve_inodes == 0


def test_concurrent_poller_and_writers_never_leave_the_guard_full_with_room(tmp_path: Path) -> None:
    """The poller thread refreshes while writers charge bytes and report kernel refusals. Old code
    updated its cached band outside its lock, so an interleaving could leave the dir FULL although
    statvfs showed room, and every later poll skipped the table as "same band"."""
    io = FaultyFileIO(FaultPlan(usage=FsUsage(100 * MIB, 50 * MIB)))
    clock = Clock()
    guard = SpaceGuard(str(tmp_path), io=io, reserve_bytes=R, clock=clock)
    stop = threading.Event()

    def poller() -> None:
        while not stop.is_set():
            guard.refresh()

    def writer() -> None:
        for i in range(3000):
            guard.charge(64 * KIB)
            if i % 7 == 0:
                guard.observe_enospc()
            guard.charge(-64 * KIB)
            clock.now += d.SPACE_KERNEL_FULL_HOLD_MAX_SECONDS   # every hold has run out by the next poll

    threads = [threading.Thread(target=poller), threading.Thread(target=writer), threading.Thread(target=writer)]
    switch = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)                 # interleave the threads as often as the interpreter can
    try:
        for t in threads:
            t.start()
        for t in threads[1:]:
            t.join(timeout=60)
        stop.set()
        threads[0].join(timeout=60)
    finally:
        sys.setswitchinterval(switch)
    clock.now += 2 * d.SPACE_KERNEL_FULL_HOLD_MAX_SECONDS
    guard.refresh()
    assert guard.state is DirState.OK


class OrderedUsageIO(FaultyFileIO):
    """statvfs answers as the disk was when it was asked; the first call (the poller's) is held until a
    writer's refresh has finished or 1 s passed — the interleaving the old guard got wrong."""

    def __init__(self, first: FsUsage, second: FsUsage) -> None:
        super().__init__()
        self.first = first
        self.answers = [first, second]
        self.second_done = threading.Event()
        self.calls = 0

    def usage(self, path: str) -> FsUsage:
        self.calls += 1
        if self.calls == 1:
            return FsUsage(100 * MIB, 50 * MIB)             # the guard's own first reading at construction
        answer = self.answers.pop(0)
        if answer is self.first:
            self.second_done.wait(1.0)                       # hang guard: with one lock the other waits for us
        return answer


def test_the_newest_statvfs_reading_wins(tmp_path: Path) -> None:
    """The poller read statvfs (disk full), then a writer read it again (space freed) and applied it;
    old code then applied the poller's stale reading outside any lock, leaving the dir FULL although
    statvfs showed room. Now reading and applying happen under one lock, in order."""
    full, room = FsUsage(100 * MIB, R // 2), FsUsage(100 * MIB, 50 * MIB)
    io = OrderedUsageIO(full, room)
    guard = SpaceGuard(str(tmp_path), io=io, reserve_bytes=R, clock=Clock())
    poller = threading.Thread(target=guard.refresh)
    poller.start()
    while io.calls < 2:                                        # the poller is inside statvfs
        threading.Event().wait(0.001)
    writer = threading.Thread(target=lambda: (guard.refresh(), io.second_done.set()))
    writer.start()
    poller.join(timeout=30)
    writer.join(timeout=30)
    assert io.answers == []
    assert guard.state is DirState.OK and guard.free_bytes == 50 * MIB
