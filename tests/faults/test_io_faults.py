"""The failure semantics table of DESIGN.md §4, driven through `FaultyFileIO`.

`FaultyFileIO` raises real `OSError`s at the I/O layer, where the kernel would, and with
`enospc_after_bytes` really writes the bytes that fit before failing, so the replica has to cut a
partial batch back itself. Each test checks the typed error and its wire code, the replica state, the
files on disk (sizes, `verify_replica_dir`) and that the replica resumes (FULL) or stays failed (FAILED).
"""

from __future__ import annotations

import errno
import os
import struct
from collections.abc import Callable
from pathlib import Path

import pytest

from fluvial import defaults as d
from fluvial.errors import (
    BatchTooLarge,
    CorruptData,
    EmptyBatch,
    ErrorCode,
    FluvialError,
    InvalidBatch,
    StorageBusy,
    StorageError,
    StorageFailed,
    StorageFull,
    UnknownCompression,
)
from fluvial.protocol import batch as b
from fluvial.protocol.records import build_batch, decode_records
from fluvial.storage import (
    OS_IO,
    FaultPlan,
    FaultyFileIO,
    FileIO,
    FlushPolicy,
    Replica,
    ReplicaConfig,
    ReplicaState,
)
from fluvial.storage.replica import IO_FAILED, IO_TRANSIENT, SPACE_EXHAUSTED, classify_os_error
from fluvial.storage.validator import log_name, verify_replica_dir

SMALL_SEGMENT = 4096          # a few ~1 KiB batches per segment: rolls happen quickly
Records = list[tuple[bytes | None, bytes]]


class CountingIO(FaultyFileIO):
    """`FaultyFileIO` that also counts sync calls, to prove a failed fsync is never retried."""

    def __init__(self, plan: FaultPlan | None = None) -> None:
        super().__init__(plan)
        self.syncs = 0

    def fsync(self, fd: int) -> None:
        self.syncs += 1
        super().fsync(fd)

    def fdatasync(self, fd: int) -> None:
        self.syncs += 1
        super().fdatasync(fd)

    def fsync_dir(self, path: str) -> None:
        self.syncs += 1
        super().fsync_dir(path)


# ---------------------------------------------------------------------------------------------- helpers


def records_of(tag: int, count: int = 3, value_bytes: int = 300) -> Records:
    return [(f"t{tag}-r{i}".encode(), bytes([tag % 251]) * value_bytes + f"#{tag}.{i}".encode())
            for i in range(count)]


def batch_of(tag: int, count: int = 3, value_bytes: int = 300) -> bytes:
    return build_batch(records_of(tag, count, value_bytes))


def open_replica(directory: Path, io: FileIO, *, policy: str = "os", segment: int = d.SEGMENT_MAX_BYTES,
                 interval: int = d.INDEX_MAX_INTERVAL_BYTES) -> Replica:
    config = ReplicaConfig(flush=FlushPolicy.parse(policy), segment_max_bytes=segment,
                           index_max_interval_bytes=interval)
    return Replica.open(directory, config, io=io)


def fill(replica: Replica, tags: range) -> Records:
    """Append one batch per tag; return every record appended, in order."""
    out: Records = []
    for tag in tags:
        replica.append(batch_of(tag))
        out += records_of(tag)
    return out


def read_records(replica: Replica, start: int = 0) -> Records:
    """All records from `start` to the LEO through the read path, offsets checked contiguous."""
    out: Records = []
    offset = start
    while offset < replica.leo:
        data = replica.read(offset, max_bytes=1 << 20).slice.read()
        assert data, f"empty read at {offset} below LEO {replica.leo}"
        for view in b.split_batches(data):
            recs = decode_records(view)
            assert [r.offset for r in recs] == list(range(offset, offset + len(recs)))
            out += [(r.key, r.value) for r in recs]
            offset += len(recs)
    assert offset == replica.leo
    return out


def file_sizes(directory: Path) -> dict[str, int]:
    return {n: os.path.getsize(directory / n) for n in sorted(os.listdir(directory))}


def file_contents(directory: Path) -> dict[str, bytes]:
    return {n: (directory / n).read_bytes() for n in sorted(os.listdir(directory))}


def active_log(replica: Replica) -> Path:
    return Path(replica.directory) / log_name(replica.active_base)


def marker(directory: Path) -> Path:
    return directory / d.FAILED_MARKER_FILE


def assert_clean(directory: Path) -> None:
    report = verify_replica_dir(directory)
    assert report.ok, report.all_problems()


# ------------------------------------------------------------------------------ ENOSPC / EDQUOT mid-batch


def _entry_due(replica: Replica) -> bool:
    writer = replica._active.writer
    assert writer is not None
    return writer.entry_due()


@pytest.mark.parametrize("space_errno", [errno.ENOSPC, errno.EDQUOT], ids=["ENOSPC", "EDQUOT"])
@pytest.mark.parametrize("fit", ["none", "1", "preamble", "header", "half", "all-but-1"])
def test_no_space_mid_batch_cuts_back_then_resumes_without_reopen(tmp_path: Path, space_errno: int,
                                                                  fit: str) -> None:
    io = FaultyFileIO(FaultPlan(enospc_errno=space_errno))
    replica = open_replica(tmp_path, io)
    good = fill(replica, range(5))
    leo, hw = replica.leo, replica.hw
    sizes = file_sizes(tmp_path)
    log_size = active_log(replica).stat().st_size

    batch = batch_of(100, count=20)
    fits = {"none": 0, "1": 1, "preamble": b.PREAMBLE_BYTES, "header": b.HEADER_TOTAL_BYTES,
            "half": len(batch) // 2, "all-but-1": len(batch) - 1}[fit]
    io.plan.enospc_after_bytes = io.bytes_written + fits
    with pytest.raises(StorageFull) as info:
        replica.append(batch)
    assert io.bytes_written - (io.plan.enospc_after_bytes - fits) == fits, "the fault layer wrote a prefix"
    err = info.value
    assert err.code == ErrorCode.PARTITION_FULL == 72
    assert err.retry.retriable
    assert replica.state is ReplicaState.FULL
    assert (replica.leo, replica.hw) == (leo, hw)
    assert active_log(replica).stat().st_size == log_size, "partial batch not cut back"
    assert file_sizes(tmp_path) == sizes
    assert not marker(tmp_path).exists()
    assert_clean(tmp_path)
    assert read_records(replica) == good
    assert replica.read(leo).slice.length == 0

    # While the disk stays full, appends keep failing the same way, and nothing is left behind.
    with pytest.raises(StorageFull):
        replica.append(batch_of(101))
    assert file_sizes(tmp_path) == sizes

    # Space returns: the next append succeeds on the same Replica object.
    io.plan.enospc_after_bytes = None
    result = replica.append(batch)
    assert result.base_offset == leo
    assert replica.state is ReplicaState.OK
    assert read_records(replica) == good + records_of(100, count=20)
    assert_clean(tmp_path)
    replica.close()

    with open_replica(tmp_path, OS_IO) as again:
        assert again.leo == result.leo
        assert read_records(again) == good + records_of(100, count=20)


def _pending_index_entries(replica: Replica) -> int:
    writer = replica._active.writer
    assert writer is not None
    return writer.pending()


def _fill_until_index_flush_due(replica: Replica) -> Records:
    """Append until the active index holds INDEX_FLUSH_ENTRIES entries not yet written to its file."""
    good: Records = []
    tag = 0
    while _pending_index_entries(replica) < d.INDEX_FLUSH_ENTRIES:
        good += fill(replica, range(tag, tag + 1))
        tag += 1
    return good


@pytest.mark.parametrize("extra", [0, 1, 7, 8, 100, 511])
def test_no_space_while_writing_index_entries(tmp_path: Path, extra: int) -> None:
    """Pending index entries are written before the next batch; ENOSPC there (cutting an entry anywhere)
    rejects that batch with nothing of it written, and the replica recovers without reopening."""
    io = FaultyFileIO()
    replica = open_replica(tmp_path, io, interval=1)
    good = _fill_until_index_flush_due(replica)
    leo, log_size = replica.leo, active_log(replica).stat().st_size
    batch = batch_of(500)
    io.plan.enospc_after_bytes = io.bytes_written + extra

    with pytest.raises(StorageFull):
        replica.append(batch)
    assert replica.state is ReplicaState.FULL
    assert replica.leo == leo
    assert active_log(replica).stat().st_size == log_size
    assert read_records(replica) == good

    io.plan.enospc_after_bytes = None
    replica.append(batch)
    replica.append(batch_of(501))
    assert read_records(replica) == [*good, *records_of(500), *records_of(501)]
    replica.sync()
    assert_clean(tmp_path)
    replica.close()
    with open_replica(tmp_path, OS_IO, interval=1) as again:
        assert read_records(again) == [*good, *records_of(500), *records_of(501)]
    assert_clean(tmp_path)


def test_cut_index_entries_then_crash(tmp_path: Path) -> None:
    """Entries cut mid-write and never rewritten (the process dies while FULL): reopening ignores them."""
    io = FaultyFileIO()
    replica = open_replica(tmp_path, io, interval=1)
    good = _fill_until_index_flush_due(replica)
    io.plan.enospc_after_bytes = io.bytes_written + 13
    with pytest.raises(StorageFull):
        replica.append(batch_of(500))
    # No close(): what a crash leaves.
    with open_replica(tmp_path, OS_IO, interval=1) as again:
        assert read_records(again) == good
        again.append(batch_of(60))
        assert read_records(again) == [*good, *records_of(60)]
    assert_clean(tmp_path)


def test_full_then_persistent_error_fails(tmp_path: Path) -> None:
    io = FaultyFileIO()
    replica = open_replica(tmp_path, io)
    fill(replica, range(2))
    io.plan.enospc_after_bytes = io.bytes_written + 10
    with pytest.raises(StorageFull):
        replica.append(batch_of(9))
    assert replica.state is ReplicaState.FULL
    io.plan.enospc_after_bytes = None
    io.plan.eio_on_write = True
    with pytest.raises(StorageFailed):
        replica.append(batch_of(9))
    assert replica.state is ReplicaState.FAILED
    io.plan.eio_on_write = False
    with pytest.raises(StorageFailed):
        replica.append(batch_of(9))
    replica.close()


# ----------------------------------------------------------------------------------- EIO / EROFS on write


@pytest.mark.parametrize("fault", ["eio_on_write", "erofs_on_write"])
def test_persistent_write_error_fails_replica(tmp_path: Path, fault: str) -> None:
    io = FaultyFileIO()
    replica = open_replica(tmp_path, io, segment=SMALL_SEGMENT)
    good = fill(replica, range(10))
    assert replica.segment_count() >= 3
    assert replica._active.size + len(batch_of(99)) <= SMALL_SEGMENT, "no roll before the failing write"
    leo = replica.leo
    contents = file_contents(tmp_path)

    setattr(io.plan, fault, True)
    with pytest.raises(StorageFailed) as info:
        replica.append(batch_of(99))
    err = info.value
    assert err.code == ErrorCode.STORAGE_ERROR == 56
    assert err.errno == (errno.EIO if fault == "eio_on_write" else errno.EROFS)
    assert replica.state is ReplicaState.FAILED
    assert replica.leo == leo
    assert marker(tmp_path).exists()
    after = file_contents(tmp_path)
    assert after.pop(d.FAILED_MARKER_FILE) == b""
    assert after == contents, "a failed write changed files"

    # Fail fast even with a healthy disk: no byte is written any more.
    setattr(io.plan, fault, False)
    written = io.bytes_written
    for tag in (100, 101):
        with pytest.raises(StorageFailed):
            replica.append(batch_of(tag))
    assert io.bytes_written == written
    assert replica.state is ReplicaState.FAILED
    # Reads of what was written before continue.
    assert read_records(replica) == good
    replica.close()
    assert marker(tmp_path).exists()


def test_reopen_after_failure_verifies_sealed_segments_and_clears_marker(tmp_path: Path) -> None:
    io = FaultyFileIO()
    replica = open_replica(tmp_path, io, segment=SMALL_SEGMENT)
    good = fill(replica, range(12))
    io.plan.eio_on_write = True
    with pytest.raises(StorageFailed):
        replica.append(batch_of(99))
    replica.close()
    assert marker(tmp_path).exists()

    with open_replica(tmp_path, OS_IO, segment=SMALL_SEGMENT) as again:
        assert not marker(tmp_path).exists()
        assert again.segment_count() >= 3
        assert again.unverified_sealed() == [], "a failed replica must verify every sealed segment on reopen"
        assert again.state is ReplicaState.OK
        assert read_records(again) == good
        again.append(batch_of(12))
        assert read_records(again) == good + records_of(12)
    assert_clean(tmp_path)

    # Without the marker, sealed segments open unverified (left to the scrub): the marker made the difference.
    with open_replica(tmp_path, OS_IO, segment=SMALL_SEGMENT) as plain:
        assert plain.unverified_sealed()


def test_reopen_after_failure_finds_damage_in_a_sealed_segment(tmp_path: Path) -> None:
    io = FaultyFileIO()
    replica = open_replica(tmp_path, io, segment=SMALL_SEGMENT)
    fill(replica, range(12))
    first_sealed_end = replica._sealed[1].base
    io.plan.eio_on_write = True
    with pytest.raises(StorageFailed):
        replica.append(batch_of(99))
    replica.close()
    # The sick disk also damaged a byte of the second batch of the first (sealed) segment.
    log = tmp_path / log_name(0)
    raw = bytearray(log.read_bytes())
    second = b.PREAMBLE_BYTES + b.decode_preamble(raw)[1]
    raw[second + 200] ^= 0xFF
    log.write_bytes(raw)

    with open_replica(tmp_path, OS_IO, segment=SMALL_SEGMENT) as again:
        assert not marker(tmp_path).exists()
        data = again.read(0).slice.read()
        assert len(data) == second, "bytes at or after the damage must not be served"
        assert [(r.key, r.value) for r in decode_records(data)] == records_of(0)
        with pytest.raises(CorruptData):
            again.read(3)
        assert again.read(first_sealed_end).slice.length > 0, "undamaged segments are still served"


# ------------------------------------------------------------------------------------------ fsync failure


def test_fsync_failure_every_batch_is_not_acknowledged_and_never_retried(tmp_path: Path) -> None:
    io = CountingIO()
    replica = open_replica(tmp_path, io, policy="fsync-every-batch")
    good = fill(replica, range(4))
    leo = replica.leo
    log_size = active_log(replica).stat().st_size

    io.plan.eio_on_fsync = True
    before = io.syncs
    with pytest.raises(StorageFailed) as info:
        replica.append(batch_of(77))
    assert info.value.code == 56
    assert info.value.errno == errno.EIO
    assert io.syncs == before + 1
    assert replica.state is ReplicaState.FAILED
    # Not acknowledged, not visible, not on disk.
    assert replica.leo == leo
    assert replica.read(leo).slice.length == 0
    assert read_records(replica) == good
    assert active_log(replica).stat().st_size == log_size
    assert marker(tmp_path).exists()

    # Never retried: not by later appends, not by sync(), not by close(), even once fsync would work.
    io.plan.eio_on_fsync = False
    with pytest.raises(StorageFailed):
        replica.append(batch_of(78))
    replica.sync()
    replica.close()
    assert io.syncs == before + 1, "an fsync was retried after a failed fsync"

    with open_replica(tmp_path, OS_IO) as again:
        assert again.leo == leo
        assert read_records(again) == good
    assert_clean(tmp_path)


def test_fsync_failure_in_sync_with_os_policy(tmp_path: Path) -> None:
    io = CountingIO()
    replica = open_replica(tmp_path, io, segment=SMALL_SEGMENT)
    good = fill(replica, range(8))            # some sealed, unsynced segments
    assert replica.segment_count() >= 2
    assert io.syncs == 0, "the os policy does not fsync per batch"

    io.plan.eio_on_fsync = True
    with pytest.raises(StorageFailed) as info:
        replica.sync()
    assert info.value.code == 56
    assert io.syncs == 1, "the first failed fsync ends the sync"
    assert replica.state is ReplicaState.FAILED
    assert marker(tmp_path).exists()

    io.plan.eio_on_fsync = False
    replica.sync()
    with pytest.raises(StorageFailed):
        replica.append(batch_of(50))
    assert read_records(replica) == good
    replica.close()
    assert io.syncs == 1, "an fsync was retried after a failed fsync"


# ------------------------------------------------------------------------------------ fallocate during roll


@pytest.mark.parametrize("space_errno", [errno.ENOSPC, errno.EDQUOT], ids=["ENOSPC", "EDQUOT"])
def test_fallocate_no_space_during_roll_keeps_old_segment_active(tmp_path: Path, space_errno: int) -> None:
    io = FaultyFileIO()
    replica = open_replica(tmp_path, io, segment=SMALL_SEGMENT)
    good = fill(replica, range(4))
    batch = batch_of(4)
    assert replica._active.size + len(batch) > SMALL_SEGMENT, "the next append must roll"
    active, segments, leo = replica.active_base, replica.segment_count(), replica.leo
    names = sorted(os.listdir(tmp_path))
    contents = file_contents(tmp_path)

    io.plan.fail_fallocate = space_errno
    for _ in range(2):
        with pytest.raises(StorageFull) as info:
            replica.append(batch)
        assert info.value.code == 72
        assert replica.state is ReplicaState.FULL
        assert (replica.active_base, replica.segment_count(), replica.leo) == (active, segments, leo)
        assert sorted(os.listdir(tmp_path)) == names, "a failed roll left files behind"
        assert file_contents(tmp_path) == contents
        assert read_records(replica) == good

    io.plan.fail_fallocate = None
    result = replica.append(batch)
    assert replica.state is ReplicaState.OK
    assert result.base_offset == leo
    assert replica.active_base == leo
    assert replica.segment_count() == segments + 1
    assert read_records(replica) == good + records_of(4)
    assert_clean(tmp_path)
    replica.close()


def test_no_space_for_the_first_index_opens_full_and_resumes(tmp_path: Path) -> None:
    io = FaultyFileIO(FaultPlan(fail_fallocate=errno.ENOSPC))
    replica = open_replica(tmp_path, io)
    assert replica.state is ReplicaState.FULL
    with pytest.raises(StorageFull):
        replica.append(batch_of(0))
    assert replica.leo == 0
    assert (tmp_path / log_name(0)).stat().st_size == 0
    io.plan.fail_fallocate = None
    replica.append(batch_of(0))
    assert replica.state is ReplicaState.OK
    assert read_records(replica) == records_of(0)
    replica.close()
    assert_clean(tmp_path)


# -------------------------------------------------------------------------------- table: errno × operation

PERSISTENT_ERRNOS = [errno.EIO, errno.EROFS, errno.EFBIG, errno.EACCES, errno.EBADF]
TRANSIENT_ERRNOS = [errno.EMFILE, errno.ENFILE, errno.ENOMEM, errno.EAGAIN]     # no state change, retried
SPACE = (StorageFull, ReplicaState.FULL, ErrorCode.PARTITION_FULL)
FAILED = (StorageFailed, ReplicaState.FAILED, ErrorCode.STORAGE_ERROR)
BUSY = (StorageBusy, ReplicaState.OK, ErrorCode.REQUEST_TIMED_OUT)

# (operation, errno) -> what must happen. Written out, not computed, so a wrong classifier shows up.
FAILURE_TABLE = [
    ("write", errno.ENOSPC, SPACE),
    ("write", errno.EDQUOT, SPACE),
    *[("write", e, FAILED) for e in PERSISTENT_ERRNOS],
    *[("write", e, BUSY) for e in TRANSIENT_ERRNOS],
    ("roll", errno.ENOSPC, SPACE),
    ("roll", errno.EDQUOT, SPACE),
    *[("roll", e, FAILED) for e in PERSISTENT_ERRNOS],
    *[("roll", e, BUSY) for e in TRANSIENT_ERRNOS],
    ("preallocate", errno.ENOSPC, SPACE),
    ("preallocate", errno.EIO, FAILED),
    ("fsync", errno.EIO, FAILED),
]


def _inject(io: FaultyFileIO, replica: Replica, operation: str, err: int) -> bytes:
    """Arrange for `err` during `operation` of the next append; return the batch to append."""
    batch = batch_of(500)
    if operation == "write":
        io.plan.enospc_errno = err                      # the prefix that fits is really written
        io.plan.enospc_after_bytes = io.bytes_written + len(batch) // 3
    elif operation == "roll":
        while replica._active.size + len(batch) <= SMALL_SEGMENT:
            replica.append(batch_of(1))
        io.plan.fail_fallocate = err
    elif operation == "preallocate":
        writer = replica._active.writer
        assert writer is not None
        writer.preallocated = False                   # as after starting with no space for the index
        writer.allocated_bytes = 0
        io.plan.fail_fallocate = err
    elif operation == "fsync":
        assert err == errno.EIO
        io.plan.eio_on_fsync = True
    return batch


@pytest.mark.parametrize(("operation", "err", "expected"), FAILURE_TABLE,
                         ids=[f"{op}-{errno.errorcode[e]}" for op, e, _ in FAILURE_TABLE])
def test_failure_table(tmp_path: Path, operation: str, err: int,
                       expected: tuple[type[StorageError], ReplicaState, ErrorCode]) -> None:
    exc_class, state, code = expected
    kind = {ReplicaState.FULL: SPACE_EXHAUSTED, ReplicaState.FAILED: IO_FAILED, ReplicaState.OK: IO_TRANSIENT}[state]
    assert classify_os_error(OSError(err, os.strerror(err)), operation) == kind

    io = FaultyFileIO()
    policy = "fsync-every-batch" if operation == "fsync" else "os"
    replica = open_replica(tmp_path, io, policy=policy, segment=SMALL_SEGMENT)
    fill(replica, range(2))
    batch = _inject(io, replica, operation, err)
    good = read_records(replica)
    leo, segments = replica.leo, replica.segment_count()
    names = sorted(os.listdir(tmp_path))
    sizes = file_sizes(tmp_path)

    with pytest.raises(StorageError) as info:
        replica.append(batch)
    assert type(info.value) is exc_class
    assert info.value.code == code
    assert replica.state is state
    assert (replica.leo, replica.segment_count()) == (leo, segments)
    assert read_records(replica) == good
    if state is ReplicaState.FAILED:
        assert marker(tmp_path).exists()
        names = sorted([*names, d.FAILED_MARKER_FILE])
        sizes[d.FAILED_MARKER_FILE] = 0
    else:
        assert not marker(tmp_path).exists()
    assert sorted(os.listdir(tmp_path)) == names
    assert file_sizes(tmp_path) == sizes
    assert_clean(tmp_path)

    io.plan = FaultPlan()
    if state is not ReplicaState.FAILED:
        replica.append(batch)
        assert replica.state is ReplicaState.OK
        assert read_records(replica) == [*good, *records_of(500)]
    else:
        with pytest.raises(StorageFailed):
            replica.append(batch)
        assert replica.state is ReplicaState.FAILED
    replica.close()


@pytest.mark.parametrize(("err", "expected"), [(errno.ENOSPC, SPACE), (errno.EIO, FAILED)],
                         ids=["ENOSPC", "EIO"])
def test_index_growth_step_fails_like_a_preallocation(tmp_path: Path, err: int,
                                                       expected: tuple[type[StorageError], ReplicaState, ErrorCode]) -> None:
    """The active index grows in fallocate steps ahead of its entries; a step the disk refuses fails
    the append before a byte of it is written, classified as a preallocation, and (for ENOSPC) the
    same append succeeds once the disk gives room."""
    exc_class, state, code = expected
    io = FaultyFileIO()
    replica = open_replica(tmp_path, io, interval=64)       # default 1 GiB segment: a 16 KiB first step
    writer = replica._active.writer
    assert writer is not None and writer.allocated_bytes == d.INDEX_PREALLOC_INITIAL_BYTES
    tag = 0
    while writer.reserve_bytes() == 0:
        replica.append(batch_of(tag))
        tag += 1
    good, leo, sizes = read_records(replica), replica.leo, file_sizes(tmp_path)
    io.plan.fail_fallocate = err
    with pytest.raises(StorageError) as info:
        replica.append(batch_of(tag))
    assert (type(info.value), replica.state, info.value.code) == (exc_class, state, code)
    assert (replica.leo, read_records(replica)) == (leo, good)
    assert marker(tmp_path).exists() == (state is ReplicaState.FAILED)
    assert {k: v for k, v in file_sizes(tmp_path).items() if k != d.FAILED_MARKER_FILE} == sizes
    io.plan = FaultPlan()
    if state is ReplicaState.FAILED:
        replica.close()
        return
    replica.append(batch_of(tag))
    assert replica.state is ReplicaState.OK
    assert writer.allocated_bytes == 2 * d.INDEX_PREALLOC_INITIAL_BYTES
    assert read_records(replica) == [*good, *records_of(tag)]
    replica.close()
    assert_clean(tmp_path)


# ----------------------------------------------------------------------------------------------- bad input


def _with_header(raw: bytes, fix_crc: bool = True, **fields: int) -> bytes:
    h = b.decode_header(raw)._replace(**fields)
    out = bytearray(b.encode_header(h) + raw[b.HEADER_TOTAL_BYTES:])
    if fix_crc:
        struct.pack_into(">I", out, 17, b.batch_crc(out))
    return bytes(out)


def _empty_batch() -> bytes:
    body = struct.pack(">I", 0)
    raw = build_batch([(b"k", b"v")])
    h = b.decode_header(raw)._replace(last_offset_delta=-1, batch_len=b.HEADER_BYTES + len(body))
    out = bytearray(b.encode_header(h) + body)
    struct.pack_into(">I", out, 17, b.batch_crc(out))
    return bytes(out)


def _bad_crc() -> bytes:
    raw = bytearray(batch_of(1))
    raw[-3] ^= 0x01
    return bytes(raw)


def _too_large() -> bytes:
    return build_batch([(b"k", bytes(SMALL_SEGMENT))])


BAD_INPUT: list[tuple[str, Callable[[], bytes], type[FluvialError], int]] = [
    ("empty", _empty_batch, EmptyBatch, 2),
    ("bad-crc", _bad_crc, InvalidBatch, 2),
    ("batch-len-long", lambda: _with_header(batch_of(1), batch_len=b.decode_header(batch_of(1)).batch_len + 1),
     InvalidBatch, 2),
    ("batch-len-short", lambda: _with_header(batch_of(1), batch_len=b.decode_header(batch_of(1)).batch_len - 1),
     InvalidBatch, 2),
    ("truncated", lambda: batch_of(1)[:-5], InvalidBatch, 2),
    ("bad-magic", lambda: _with_header(batch_of(1), magic=1), InvalidBatch, 2),
    ("compression-5", lambda: _with_header(batch_of(1), attributes=5), UnknownCompression, 9000),
    ("compression-6", lambda: _with_header(batch_of(1), attributes=6), UnknownCompression, 9000),
    ("compression-7", lambda: _with_header(batch_of(1), attributes=7), UnknownCompression, 9000),
    ("larger-than-segment", _too_large, BatchTooLarge, 10),
]


@pytest.mark.parametrize(("make", "exc_class", "code"), [row[1:] for row in BAD_INPUT],
                         ids=[row[0] for row in BAD_INPUT])
def test_bad_input_never_touches_the_replica(tmp_path: Path, make: Callable[[], bytes],
                                             exc_class: type[FluvialError], code: int) -> None:
    io = FaultyFileIO()
    replica = open_replica(tmp_path, io, segment=SMALL_SEGMENT)
    good = fill(replica, range(5))
    leo, hw = replica.leo, replica.hw
    contents = file_contents(tmp_path)
    written = io.bytes_written
    bad = make()

    for attempt in ([bad], [batch_of(40), bad]):      # alone, and after a good batch of the same set
        with pytest.raises(FluvialError) as info:
            replica.append_batches(attempt)
        assert type(info.value) is exc_class, repr(info.value)
        assert int(info.value.code) == code
        assert replica.state is ReplicaState.OK
        assert (replica.leo, replica.hw) == (leo, hw)
        assert io.bytes_written == written
        assert file_contents(tmp_path) == contents

    # The partition is never disabled by bad input (unlike Fluvio): the next good batch goes in.
    replica.append(batch_of(41))
    assert replica.state is ReplicaState.OK
    assert read_records(replica) == good + records_of(41)
    replica.close()
    assert_clean(tmp_path)


# --------------------------------------------------------------------------------------------- read errors


@pytest.mark.parametrize("where", ["active", "sealed-index-load", "sealed", "slice"])
def test_read_error_leaves_state_alone(tmp_path: Path, where: str) -> None:
    with open_replica(tmp_path, OS_IO, segment=SMALL_SEGMENT) as first:
        good = fill(first, range(10))
    io = FaultyFileIO()
    replica = open_replica(tmp_path, io, segment=SMALL_SEGMENT)   # sealed indexes not loaded yet
    assert replica.segment_count() >= 3
    leo = replica.leo
    offset = {"active": replica.active_base, "sealed-index-load": 3, "sealed": 0, "slice": 1}[where]
    if where == "sealed":
        replica.read(0)                        # index of the first segment loaded; the log read fails
    result = replica.read(offset) if where == "slice" else None

    io.plan.eio_on_read = True
    with pytest.raises((OSError, StorageError)) as info:
        if result is not None:
            result.slice.read()
        else:
            replica.read(offset).slice.read()
    if isinstance(info.value, OSError):
        assert info.value.errno == errno.EIO
    assert replica.state is ReplicaState.OK
    assert replica.leo == leo
    assert not marker(tmp_path).exists()
    # Writes do not read: they go on while reads fail.
    replica.append(batch_of(10))

    io.plan.eio_on_read = False
    assert read_records(replica) == good + records_of(10)
    assert replica.state is ReplicaState.OK
    replica.close()
    assert_clean(tmp_path)


# ------------------------------------------------------------------ a failure inside a roll (issue #9)


@pytest.mark.parametrize("err", [errno.EIO, errno.ENOSPC])
def test_directory_fsync_failure_mid_roll_fails_with_56_and_stays_consistent(tmp_path: Path, err: int) -> None:
    """fsync-every-batch: the directory fsync that makes a new segment durable fails. Old code had
    already unset the old segment's index writer, so every later append hit an `assert` (the SPU dropped
    the connection with a traceback) instead of answering StorageError (56)."""
    io = FaultyFileIO()
    replica = open_replica(tmp_path, io, policy="fsync-every-batch", segment=SMALL_SEGMENT)
    fill(replica, range(2))
    batch = batch_of(77)
    while replica._active.size + len(batch) <= SMALL_SEGMENT:
        replica.append(batch_of(1))
    good = read_records(replica)
    leo, segments = replica.leo, replica.segment_count()
    names = sorted(os.listdir(tmp_path))

    io.plan.fail_fsync_dir = err                      # a failed fsync is persistent whatever its errno
    for _ in range(3):                                # the first refusal and every later one: typed, 56
        with pytest.raises(StorageFailed) as info:
            replica.append(batch)
        assert info.value.code == ErrorCode.STORAGE_ERROR == 56
    assert replica.state is ReplicaState.FAILED
    assert (replica.leo, replica.segment_count()) == (leo, segments)
    assert replica._active.writer is not None          # the previous segment is still the active one
    assert read_records(replica) == good
    assert sorted(os.listdir(tmp_path)) == sorted([*names, d.FAILED_MARKER_FILE])   # no half-made segment
    replica.sync()                                    # the flusher on a FAILED replica: no-op, no assert
    replica.close()

    io.plan = FaultPlan()
    with Replica.open(tmp_path, ReplicaConfig(segment_max_bytes=SMALL_SEGMENT), io=io) as again:
        assert again.state is ReplicaState.OK and again.leo == leo
        assert read_records(again) == good
        again.append(batch)
        assert again.segment_count() == segments + 1
    assert_clean(tmp_path)


@pytest.mark.parametrize("err", TRANSIENT_ERRNOS)
def test_transient_errors_never_fail_the_replica(tmp_path: Path, err: int) -> None:
    """EMFILE, ENFILE, ENOMEM, EAGAIN: old code made the replica FAILED (no writes until a restart)."""
    io = FaultyFileIO()
    replica = open_replica(tmp_path, io, segment=SMALL_SEGMENT)
    fill(replica, range(2))
    leo = replica.leo
    io.plan.fail_write = err
    for _ in range(20):
        with pytest.raises(StorageBusy) as info:
            replica.append(batch_of(5))
        assert info.value.retry.retriable and info.value.errno == err
    assert replica.state is ReplicaState.OK and replica._machine.transitions == 0
    assert not marker(tmp_path).exists()
    io.plan = FaultPlan()
    assert replica.append(batch_of(5)).base_offset == leo
    replica.close()
    assert_clean(tmp_path)
