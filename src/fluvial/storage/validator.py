"""Walking and verifying the batches of a `.log` file.

`walk_batches` is the one header walker: reads use it without CRCs (to find batch boundaries), recovery
and verification use it with CRCs. A malformed batch raises `CorruptData` with file and position; it is
never skipped.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from fluvial import defaults as d
from fluvial.errors import CorruptData
from fluvial.protocol import batch as b
from fluvial.storage.fileio import OS_IO, FileIO
from fluvial.storage.index import IndexEntries, parse_index

SEGMENT_NAME = re.compile(r"^(\d{20})\.log$")

BatchSpan = tuple[int, int, int, int]  # position, base offset, total bytes, last offset delta


def segment_bases(names: list[str]) -> list[int]:
    """Pure: base offsets of the `.log` files among directory entry names, ascending."""
    return sorted(int(m.group(1)) for n in names if (m := SEGMENT_NAME.match(n)))


def log_name(base: int) -> str:
    return f"{base:020d}.log"


def index_name(base: int) -> str:
    return f"{base:020d}.index"


def walk_batches(
    io: FileIO,
    fd: int,
    start: int,
    end: int,
    *,
    expected_offset: int | None = None,
    check_crc: bool = False,
    path: str = "",
    chunk_bytes: int = d.SCAN_CHUNK_BYTES,
) -> Iterator[BatchSpan]:
    """Yield (position, base_offset, total_bytes, last_offset_delta) for each batch in [start, end)."""
    buf = b""
    buf_at = start
    pos = start
    while pos < end:
        rel = pos - buf_at
        if rel < 0 or rel + b.HEADER_TOTAL_BYTES > len(buf):
            buf = io.pread(fd, min(max(chunk_bytes, b.HEADER_TOTAL_BYTES), end - pos), pos)
            buf_at, rel = pos, 0
            if len(buf) < b.HEADER_TOTAL_BYTES:
                raise CorruptData(path, pos, f"truncated batch header ({end - pos} bytes left)")
        base, batch_len = b.decode_preamble(buf, rel)
        total = b.PREAMBLE_BYTES + batch_len
        if batch_len < b.HEADER_BYTES:
            raise CorruptData(path, pos, f"batch_len {batch_len} is shorter than a batch header")
        if pos + total > end:
            raise CorruptData(path, pos, f"batch of {total} bytes runs past the end of the data at {end}")
        magic = buf[rel + 16]
        if magic != b.MAGIC:
            raise CorruptData(path, pos, f"magic {magic}, expected {b.MAGIC}")
        lod = b.decode_last_offset_delta(buf, rel)
        if lod < 0:
            raise CorruptData(path, pos, "empty batch stored")
        if expected_offset is not None and base != expected_offset:
            raise CorruptData(path, pos, f"base offset {base}, expected {expected_offset}")
        if check_crc:
            if rel + total > len(buf):
                buf = io.pread(fd, max(chunk_bytes, total), pos)
                buf_at, rel = pos, 0
                if len(buf) < total:
                    raise CorruptData(path, pos, "batch cut short while reading")
            stored = b.decode_header(buf, rel).crc
            actual = b.crc32c(memoryview(buf)[rel + b.CRC_START: rel + total])
            if stored != actual:
                raise CorruptData(path, pos, f"CRC-32C mismatch: stored {stored:#010x}, computed {actual:#010x}")
        yield pos, base, total, lod
        expected_offset = base + lod + 1
        pos += total


# -------------------------------------------------------------------------------------- verification


@dataclass
class SegmentReport:
    path: str
    base_offset: int
    batches: int = 0
    bytes: int = 0
    end_offset: int = 0
    problems: list[CorruptData] = field(default_factory=list)


@dataclass
class ReplicaReport:
    path: str
    segments: list[SegmentReport] = field(default_factory=list)
    problems: list[CorruptData] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems and all(not s.problems for s in self.segments)

    def all_problems(self) -> list[CorruptData]:
        return [*self.problems, *(p for s in self.segments for p in s.problems)]


def verify_segment(io: FileIO, directory: str, base: int) -> SegmentReport:
    """CRC-check every batch of one segment and check its index against the batches."""
    log_path = os.path.join(directory, log_name(base))
    report = SegmentReport(log_path, base, end_offset=base)
    fd = io.open(log_path, os.O_RDONLY)
    try:
        size = io.fsize(fd)
        entries = _read_index(io, os.path.join(directory, index_name(base)), size)
        j = 0
        try:
            for pos, bo, total, lod in walk_batches(io, fd, 0, size, expected_offset=base, check_crc=True,
                                                    path=log_path, chunk_bytes=d.VERIFY_CHUNK_BYTES):
                while j < len(entries) and entries.positions[j] < pos:
                    report.problems.append(CorruptData(log_path, entries.positions[j],
                                                       "index entry points inside a batch"))
                    j += 1
                if j < len(entries) and entries.positions[j] == pos:
                    if base + entries.rels[j] != bo:
                        report.problems.append(CorruptData(log_path, pos, f"index says offset "
                                                           f"{base + entries.rels[j]}, batch has {bo}"))
                    j += 1
                report.batches += 1
                report.bytes = pos + total
                report.end_offset = bo + lod + 1
            # Entries left over start after the last batch's start (and before the end): inside it.
            report.problems.extend(CorruptData(log_path, p, "index entry points inside a batch")
                                   for p in entries.positions[j:])
        except CorruptData as e:
            report.problems.append(e)
    finally:
        io.close(fd)
    return report


def _read_index(io: FileIO, path: str, log_size: int) -> IndexEntries:
    try:
        fd = io.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return IndexEntries()
    try:
        return parse_index(io.pread(fd, io.fsize(fd), 0), log_size)
    finally:
        io.close(fd)


def verify_replica_dir(directory: str | Path, io: FileIO = OS_IO) -> ReplicaReport:
    """Verify every segment of one replica directory and the offset chain between them."""
    directory = str(directory)
    report = ReplicaReport(directory)
    bases = segment_bases(io.listdir(directory))
    for i, base in enumerate(bases):
        seg = verify_segment(io, directory, base)
        report.segments.append(seg)
        if i + 1 < len(bases) and not seg.problems and seg.batches and seg.end_offset != bases[i + 1]:
            report.problems.append(CorruptData(seg.path, seg.bytes, f"segment ends at offset {seg.end_offset} "
                                               f"but the next segment starts at {bases[i + 1]}"))
    return report


def find_replica_dirs(root: str | Path) -> list[Path]:
    """Every directory under `root` (itself included) that holds segment files."""
    root = Path(root)
    found = []
    for dirpath, _dirs, files in os.walk(root):
        if any(SEGMENT_NAME.match(f) for f in files):
            found.append(Path(dirpath))
    return sorted(found)
