"""Idempotent producers: the per-replica sequence state and the dedup decision (Kafka's rules). Pure.

A batch with `producer_id >= 0` carries `producer_epoch` and `first_sequence`; its sequences are
`first_sequence .. first_sequence + record_count - 1` (wrapping after 2**31 - 1 to 0, as Kafka's).
Per producer the replica keeps its epoch, the last sequence appended and the last
`IDEMPOTENT_BATCHES_REMEMBERED` runs (first sequence, last sequence, base offset): a run is one batch, or
batches appended back to back — consecutive sequences at consecutive offsets, as the batches of one
produce request are — so the retry of a whole request is recognised however many batches it held (a
request of more batches than the window once made its own retry fail with OutOfOrderSequence).

Decision table (`decide`), for one batch against the producer's entry:

    | entry                         | batch                                      | verdict                    |
    |-------------------------------|--------------------------------------------|----------------------------|
    | any                           | first_sequence < 0                         | reject OutOfOrderSequence  |
    | none (unknown producer)       | any sequence                               | append                     |
    | epoch E                       | epoch < E                                  | reject ProducerFenced      |
    | epoch E                       | epoch > E                                  | append (state is reset)    |
    | epoch E                       | within a remembered run                    | duplicate(its offset there)|
    | epoch E, last sequence L      | first_sequence == L + 1                    | append                     |
    | epoch E, last sequence L      | anything else (old, or a gap)              | reject OutOfOrderSequence  |

Batches with `producer_id < 0` (Fluvio's official client) never reach this module.

The table survives restarts through a snapshot (`encode_snapshot` / `decode_snapshot`, bytes only: the
replica owns the file) holding the state as of an offset; the replica replays the batch headers after it.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from fluvial import defaults as d
from fluvial.errors import FluvialError, OutOfOrderSequence, ProducerFenced, ProtocolError
from fluvial.protocol import batch as b
from fluvial.protocol.codec import (
    BYTES,
    INT16,
    INT32,
    INT64,
    UINT32,
    Struct,
    Vec,
    decode,
    encode,
    message,
    wire,
)

SEQUENCE_MODULUS = 2**31        # sequences are non-negative i32s; after 2**31 - 1 comes 0


def last_sequence(first_sequence: int, record_count: int) -> int:
    """The sequence of a batch's last record."""
    return (first_sequence + record_count - 1) % SEQUENCE_MODULUS


def next_sequence(sequence: int) -> int:
    return (sequence + 1) % SEQUENCE_MODULUS


@dataclass(frozen=True, slots=True)
class BatchSeq:
    """One remembered run: a batch, or batches appended back to back (sequences and offsets both
    consecutive), so that offset = base_offset + (sequence - first_sequence) throughout."""

    first_sequence: int
    last_sequence: int
    base_offset: int


@dataclass(frozen=True, slots=True)
class ProducerEntry:
    epoch: int
    last_sequence: int
    batches: tuple[BatchSeq, ...]    # oldest first, at most IDEMPOTENT_BATCHES_REMEMBERED


class Verdict(enum.Enum):
    APPEND = "append"
    DUPLICATE = "duplicate"
    REJECT = "reject"


@dataclass(frozen=True, slots=True)
class Decision:
    verdict: Verdict
    base_offset: int = -1                 # DUPLICATE: what the first attempt was given
    error: FluvialError | None = None     # REJECT


APPEND = Decision(Verdict.APPEND)


def decide(entry: ProducerEntry | None, producer_id: int, epoch: int, first_sequence: int,
           record_count: int) -> Decision:
    """Pure: the table above."""
    if first_sequence < 0:
        expected = 0 if entry is None else next_sequence(entry.last_sequence)
        return _reject(OutOfOrderSequence(producer_id, epoch, first_sequence, expected, "negative first_sequence"))
    if entry is None or epoch > entry.epoch:
        return APPEND
    if epoch < entry.epoch:
        return _reject(ProducerFenced(producer_id, epoch, entry.epoch))
    last = last_sequence(first_sequence, record_count)
    for seen in entry.batches:
        if (seen.first_sequence, seen.last_sequence) == (first_sequence, last) or \
                seen.first_sequence <= first_sequence <= last <= seen.last_sequence:   # runs never wrap
            return Decision(Verdict.DUPLICATE, seen.base_offset + (first_sequence - seen.first_sequence))
    expected = next_sequence(entry.last_sequence)
    if first_sequence == expected:
        return APPEND
    reason = "gap" if _after(first_sequence, entry.last_sequence) else "already appended, not remembered"
    return _reject(OutOfOrderSequence(producer_id, epoch, first_sequence, expected, reason))


def _reject(error: FluvialError) -> Decision:
    return Decision(Verdict.REJECT, error=error)


def _after(sequence: int, last: int) -> bool:
    """Whether `sequence` lies ahead of `last` (within half the sequence space, as a wrapping counter)."""
    return 0 < (sequence - last) % SEQUENCE_MODULUS < SEQUENCE_MODULUS // 2


def advance(entry: ProducerEntry | None, epoch: int, first_sequence: int, record_count: int, base_offset: int,
            remembered: int = d.IDEMPOTENT_BATCHES_REMEMBERED) -> ProducerEntry:
    """Pure: the entry after a batch was appended at `base_offset` (a new epoch starts afresh; the log is
    the truth, so replaying stored batches goes through here too)."""
    last = last_sequence(first_sequence, record_count)
    seen = BatchSeq(first_sequence, last, base_offset)
    if entry is None or entry.epoch != epoch:
        return ProducerEntry(epoch, last, (seen,))
    if entry.batches:
        run = entry.batches[-1]
        if (first_sequence == run.last_sequence + 1 and first_sequence <= last          # no wrap inside a run
                and base_offset == run.base_offset + (first_sequence - run.first_sequence)):
            return ProducerEntry(epoch, last, (*entry.batches[:-1], BatchSeq(run.first_sequence, last,
                                                                             run.base_offset)))
    return ProducerEntry(epoch, last, (*entry.batches, seen)[-remembered:])


class ProducerTable:
    """The entries of one replica's producers, least recently appended first (evicted first)."""

    def __init__(self, max_producers: int = d.IDEMPOTENT_PRODUCERS_MAX,
                 remembered: int = d.IDEMPOTENT_BATCHES_REMEMBERED) -> None:
        self.entries: dict[int, ProducerEntry] = {}
        self._staged: dict[int, ProducerEntry] = {}
        self.max_producers = max_producers
        self.remembered = remembered

    def __len__(self) -> int:
        return len(self.entries)

    def get(self, producer_id: int) -> ProducerEntry | None:
        return self.entries.get(producer_id)

    def plan(self, headers: Sequence[b.BatchHeader], leo: int) -> list[Decision]:
        """Decide every batch of one request, as if each appended batch were already recorded (so a
        request may carry several batches of one producer). Raises the first rejection; changes nothing
        (`commit_plan` makes it true once every appended batch was written from `leo` on, in order)."""
        staged: dict[int, ProducerEntry] = {}
        self._staged = staged
        out = []
        for h in headers:
            if h.producer_id < 0:
                out.append(APPEND)
                leo += h.record_count
                continue
            entry = staged.get(h.producer_id, self.entries.get(h.producer_id))
            decision = decide(entry, h.producer_id, h.producer_epoch, h.first_sequence, h.record_count)
            if decision.error is not None:
                raise decision.error
            if decision.verdict is Verdict.APPEND:
                staged[h.producer_id] = advance(entry, h.producer_epoch, h.first_sequence, h.record_count, leo,
                                                self.remembered)
                leo += h.record_count
            out.append(decision)
        return out

    def commit_plan(self) -> None:
        """The last `plan`'s batches were all written where it placed them: its entries become the table's
        (the same as `record` of each batch in order)."""
        for pid, entry in self._staged.items():
            self.entries.pop(pid, None)
            self.entries[pid] = entry
            if len(self.entries) > self.max_producers:
                del self.entries[next(iter(self.entries))]
        self._staged = {}

    def record(self, header: b.BatchHeader, base_offset: int) -> None:
        """A batch of an idempotent producer was appended (or replayed) at `base_offset`."""
        pid = header.producer_id
        entry = self.entries.pop(pid, None)
        self.entries[pid] = advance(entry, header.producer_epoch, header.first_sequence, header.record_count,
                                    base_offset, self.remembered)
        if len(self.entries) > self.max_producers:
            del self.entries[next(iter(self.entries))]


# ------------------------------------------------------------------------------------------ snapshot
# File: SnapshotFile(version, crc32c of body, body = ProducerSnapshot). A snapshot says: "these are the
# entries after every batch below `offset`".

SNAPSHOT_VERSION = 0


@message
@dataclass
class SnapshotBatch:
    first_sequence: int = wire(INT32)
    last_sequence: int = wire(INT32)
    base_offset: int = wire(INT64)


@message
@dataclass
class SnapshotProducer:
    producer_id: int = wire(INT64)
    epoch: int = wire(INT16)
    last_sequence: int = wire(INT32)
    batches: list[SnapshotBatch] = wire(Vec(Struct(SnapshotBatch)))


@message
@dataclass
class ProducerSnapshot:
    offset: int = wire(INT64)
    producers: list[SnapshotProducer] = wire(Vec(Struct(SnapshotProducer)))


@message
@dataclass
class SnapshotFile:
    version: int = wire(INT16)
    crc: int = wire(UINT32)
    body: bytes = wire(BYTES)


def encode_snapshot(offset: int, entries: Iterable[tuple[int, ProducerEntry]]) -> bytes:
    producers = [SnapshotProducer(pid, e.epoch, e.last_sequence,
                                  [SnapshotBatch(x.first_sequence, x.last_sequence, x.base_offset) for x in e.batches])
                 for pid, e in entries]
    body = encode(ProducerSnapshot(offset, producers), SNAPSHOT_VERSION)
    return encode(SnapshotFile(SNAPSHOT_VERSION, b.crc32c(body), body), SNAPSHOT_VERSION)


def decode_snapshot(raw: bytes) -> tuple[int, dict[int, ProducerEntry]]:
    """(offset, entries in stored order). Raises ProtocolError for a torn, corrupt or unknown file."""
    f = decode(SnapshotFile, raw, SNAPSHOT_VERSION)
    if f.version != SNAPSHOT_VERSION:
        raise ProtocolError(f"producer snapshot version {f.version}, expected {SNAPSHOT_VERSION}")
    if b.crc32c(f.body) != f.crc:
        raise ProtocolError("producer snapshot CRC-32C mismatch")
    snap = decode(ProducerSnapshot, f.body, SNAPSHOT_VERSION)
    entries = {p.producer_id: ProducerEntry(p.epoch, p.last_sequence, tuple(
        BatchSeq(x.first_sequence, x.last_sequence, x.base_offset) for x in p.batches)) for p in snap.producers}
    return snap.offset, entries
