"""What the SPU sends for a read through a chain (reference §3.2/§3.3, Fluvio's smartengine/batch.rs). Pure.

One read of stored batches becomes at most **one** output batch, numbered as Fluvio numbers it:

* `base_offset` = the first consumed offset of the first batch that produced output;
* `last_offset_delta` spans every input record consumed from there, so `next_filter_offset` =
  base + last_offset_delta + 1 is where the consumer resumes (it acknowledges that offset);
* the records are in order; clients number them `base_offset + index` (the official client ignores
  offset_delta), so filtered records arrive with "compacted" offsets — Fluvio's numbering, kept on purpose.

Where fluvial differs from Fluvio 0.17.3:
* `max_bytes` caps the output, but the first contributing batch is always sent, whatever its size
  (Fluvio drops and skips it: fluvio#1887);
* a batch whose output does not fit is not thrown away and re-run (which would apply an aggregate twice):
  its output is carried to the next read, which starts exactly there;
* a read starting inside a stored batch gives the module only the records from the fetch offset on;
* records keep their real timestamps (first_timestamp of the first contributing batch, deltas rebased),
  where Fluvio sends -1; offset_delta is the record's index in the output batch;
* a module error with no successes skips only up to the end of the failing batch (Fluvio: the whole read);
* when the module fails (trap, status, budget) on a later batch of a read, the output of the batches
  before it is still delivered, then the failure (Fluvio loses both to the failure).
"""

from __future__ import annotations

import itertools
import struct
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from fluvial.errors import SmartModuleFailed
from fluvial.protocol import batch as b
from fluvial.protocol.records import compress, decode_varint, decompress, encode_varint
from fluvial.smartengine.abi import ModuleOutput, TransformError, record_positions

_I32 = struct.Struct(">i")


@dataclass(frozen=True)
class InputBatch:
    """One stored batch as a module gets it: its decompressed records section (from `start` on)."""

    base_offset: int           # the stored batch's base (the module's base_offset)
    start: int                 # first offset given to the module (> base_offset when a read starts inside)
    next_offset: int           # one past the batch's last offset
    first_timestamp: int
    compression: int
    raw: bytes                 # i32 count + records


def input_batches(stored: bytes | memoryview, start_offset: int) -> list[InputBatch]:
    """Split stored batches and keep, in the first, only records at or after `start_offset`."""
    out = []
    for view in b.split_batches(stored):
        h = b.decode_header(view)
        if h.next_offset <= start_offset:
            continue
        at = b.HEADER_TOTAL_BYTES + (4 if h.attributes & b.ATTR_SCHEMA_ID else 0)
        raw = decompress(h.compression, view[at:])
        start = h.base_offset
        if start_offset > h.base_offset:
            skip = start_offset - h.base_offset
            pos = record_positions(raw)
            keep = len(pos) - 1 - skip
            raw = _I32.pack(max(keep, 0)) + bytes(raw[pos[min(skip, len(pos) - 1)]:])
            start = start_offset
        out.append(InputBatch(h.base_offset, start, h.next_offset, h.first_timestamp, h.compression, bytes(raw)))
    return out


@dataclass(frozen=True)
class Carry:
    """A batch's output that did not fit the last response: used instead of running the module again."""

    start: int
    next_offset: int
    first_timestamp: int
    compression: int
    output: ModuleOutput


@dataclass(frozen=True)
class Step:
    """The result of one read through the chain."""

    batch: bytes | None             # the output batch (None: no records)
    records: int
    error: TransformError | None
    next_offset: int                # what the consumer resumes from (next_filter_offset when records exist)
    consumed: int                   # end of the input consumed (also when nothing came out)
    carry: Carry | None
    failure: SmartModuleFailed | None = None   # the module failed after the batches in `batch`


def run_batches(batches: Iterable[InputBatch], run: Callable[[InputBatch], ModuleOutput], max_bytes: int,
                carry: Carry | None = None) -> Step:
    """Run each batch through `run` (the chain; it raises on a trap or a negative status) and merge the
    outputs into one batch per the module docstring. A failure on the first batch raises; on a later one
    it comes back in `failure`, after the output so far."""
    kept: list[tuple[bytes, int]] = []         # (records section, its stored batch's first_timestamp)
    count = 0
    base: int | None = None
    end = consumed = -1
    size = 0
    compression = 0
    first_ts = -1
    error = None
    pending = None
    failure = None
    for one in batches:
        if carry is not None and carry.start == one.start:
            output, carry = carry.output, None
        else:
            try:
                output = run(one)
            except SmartModuleFailed as e:
                if base is None:
                    raise
                failure = e
                break
        n = output.count
        if n:
            encoded = len(output.raw) - 4
            if base is not None and size + encoded > max_bytes:
                pending = Carry(one.start, one.next_offset, one.first_timestamp, one.compression, output)
                break
            if base is None:
                base, compression, first_ts = one.start, one.compression, one.first_timestamp
            size += encoded
            count += n
            kept.append((output.raw, one.first_timestamp))
        consumed = one.next_offset
        if base is not None:
            end = one.next_offset
        if output.error is not None:
            error = output.error
            break
    if base is None:
        return Step(None, 0, error, consumed, consumed, pending)
    batch = build_batch(base, end - base - 1, kept, compression, first_ts)
    return Step(batch, count, error, end, consumed, pending, failure)


def build_batch(base_offset: int, last_offset_delta: int, sections: list[tuple[bytes, int]], compression: int,
                first_timestamp: int) -> bytes:
    """An output batch from records sections (each with its stored batch's first_timestamp): every record
    re-framed with offset_delta = its index and its timestamp_delta rebased on `first_timestamp`; key,
    value and headers are copied as the module wrote them."""
    raw = bytearray(4)
    index = 0
    max_ts = first_timestamp
    for section, stamp in sections:
        shift = stamp - first_timestamp if stamp >= 0 and first_timestamp >= 0 else None
        positions = record_positions(section)
        for at, stop in itertools.pairwise(positions):
            _length, pos = decode_varint(section, at)
            attributes = section[pos]
            ts, pos = decode_varint(section, pos + 1)
            _od, pos = decode_varint(section, pos)
            head = bytearray((attributes,))
            if shift is None:
                encode_varint(0, head)
            else:
                encode_varint(ts + shift, head)
                max_ts = max(max_ts, stamp + ts)
            encode_varint(index, head)
            encode_varint(len(head) + stop - pos, raw)
            raw += head
            raw += section[pos:stop]
            index += 1
    struct.pack_into(">i", raw, 0, index)
    payload = compress(compression, bytes(raw))
    header = b.BatchHeader(base_offset, b.HEADER_BYTES + len(payload), -1, b.MAGIC, 0, compression,
                           last_offset_delta, first_timestamp, max_ts, b.NO_PRODUCER_ID, -1, -1)
    buf = bytearray(b.encode_header(header))
    buf += payload
    struct.pack_into(">I", buf, 17, b.batch_crc(buf))
    return bytes(buf)


def renumber(batch: bytes, base_offset: int, last_offset_delta: int) -> bytes:
    """The same batch with another base offset and last_offset_delta (CRC recomputed)."""
    h = b.decode_header(batch)
    buf = bytearray(b.encode_header(h._replace(base_offset=base_offset, last_offset_delta=last_offset_delta)))
    buf += batch[b.HEADER_TOTAL_BYTES:]
    struct.pack_into(">I", buf, 17, b.batch_crc(buf))
    return bytes(buf)
