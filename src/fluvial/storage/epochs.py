"""`leader-epoch.chk`: a replica's leader-epoch history, fluvial-only, beside Fluvio's files.

One line per epoch, ascending: `<epoch> <start offset>` — the first offset written under that epoch
(Kafka's leader-epoch-checkpoint idea, KIP-101). A leader adds its epoch at its LEO when it starts to
lead; a follower adds an epoch when the first batch stamped with it (the batch header's
`partition_leader_epoch`) arrives. Truncating the log drops the entries that start at or after the cut.

The file is small and rewritten whole, atomically (temp file, fsync, rename, directory fsync). A missing
or unreadable file means "no history": the replica then asks its leader for epoch -1, which truncates to
the start of the leader's first known epoch — safe, only possibly more than needed.
"""

from __future__ import annotations

import logging
import os

from fluvial import defaults as d
from fluvial.storage.fileio import FileIO, replace_atomically

logger = logging.getLogger(__name__)


def parse(text: str) -> list[tuple[int, int]]:
    """Pure: the history in a file's text; stops at the first malformed or non-ascending line."""
    out: list[tuple[int, int]] = []
    for line in text.splitlines():
        parts = line.split()
        if len(parts) != 2 or not all(p.lstrip("-").isdigit() for p in parts):
            break
        epoch, start = int(parts[0]), int(parts[1])
        if out and (epoch <= out[-1][0] or start < out[-1][1]):
            break
        out.append((epoch, start))
    return out


def render(history: list[tuple[int, int]]) -> bytes:
    return "".join(f"{e} {s}\n" for e, s in history).encode()


def truncation_point(follower_leo: int, follower_end_of_epoch: int, leader_end_offset: int) -> int:
    """Where a follower cuts its log before fetching (KIP-101/279): the leader's end of the follower's last
    common epoch, never beyond what the follower has, never beyond the follower's own end of that epoch."""
    return max(0, min(follower_leo, follower_end_of_epoch, leader_end_offset))


def epoch_end(history: list[tuple[int, int]], epoch: int, leo: int) -> tuple[int, int]:
    """Pure: (largest epoch <= `epoch` in `history`, the offset where it ends). `history` = [(epoch, start)]
    ascending; an epoch ends where the next starts, the last one at `leo`. No epoch <= `epoch`: -1 and the
    start of the first epoch (or `leo` for an empty history)."""
    found = -1
    for e, start in history:
        if e > epoch:
            return found, start
        found = e
    return found, leo


class EpochHistory:
    def __init__(self, io: FileIO, directory: str) -> None:
        self.io = io
        self.directory = directory
        self.path = os.path.join(directory, d.EPOCH_HISTORY_FILE)
        self.entries: list[tuple[int, int]] = []

    def load(self, leo: int) -> None:
        try:
            fd = self.io.open(self.path, os.O_RDONLY)
        except FileNotFoundError:
            return
        try:
            raw = self.io.pread(fd, self.io.fsize(fd), 0)
        finally:
            self.io.close(fd)
        # entries below the log start stay: they still say which epoch the next one follows
        self.entries = [(e, s) for e, s in parse(raw.decode(errors="replace")) if s <= leo]

    @property
    def last_epoch(self) -> int:
        return self.entries[-1][0] if self.entries else -1

    def end_of(self, epoch: int, leo: int) -> tuple[int, int]:
        return epoch_end(self.entries, epoch, leo)

    def add(self, epoch: int, start: int) -> bool:
        """Record that `epoch` starts at `start` (ignored unless newer than the last). Returns whether it
        changed; the caller persists with `store` (OSError propagates)."""
        if self.entries and epoch <= self.entries[-1][0]:
            return False
        if self.entries and start < self.entries[-1][1]:
            start = self.entries[-1][1]
        self.entries.append((epoch, start))
        return True

    def truncate(self, offset: int) -> bool:
        """Drop epochs that start after `offset` (the log now ends there)."""
        keep = [(e, s) for e, s in self.entries if s <= offset]
        changed = keep != self.entries
        self.entries = keep
        return changed

    def store(self) -> None:
        replace_atomically(self.io, self.directory, self.path, render(self.entries))


__all__ = ["EpochHistory", "epoch_end", "parse", "render", "truncation_point"]
