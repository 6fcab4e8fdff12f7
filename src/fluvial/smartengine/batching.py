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

import struct
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from fluvial.errors import SmartModuleFailed
from fluvial.protocol import batch as b
from fluvial.protocol.records import compress, decompress, encode_varint
from fluvial.smartengine.abi import ModuleOutput, SmRecord, TransformError, record_positions

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
    kept: list[tuple[SmRecord, int]] = []      # (record, absolute timestamp or -1)
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
        if output.successes:
            encoded = sum(_record_size(r) for r in output.successes)
            if base is not None and size + encoded > max_bytes:
                pending = Carry(one.start, one.next_offset, one.first_timestamp, one.compression, output)
                break
            if base is None:
                base, compression, first_ts = one.start, one.compression, one.first_timestamp
            size += encoded
            stamp = one.first_timestamp
            kept.extend((r, stamp + r.timestamp_delta if stamp >= 0 else -1) for r in output.successes)
        consumed = one.next_offset
        if base is not None:
            end = one.next_offset
        if output.error is not None:
            error = output.error
            break
    if base is None:
        return Step(None, 0, error, consumed, consumed, pending)
    batch = build_batch(base, end - base - 1, kept, compression, first_ts)
    return Step(batch, len(kept), error, end, consumed, pending, failure)


def _record_size(r: SmRecord) -> int:
    return len(r.value) + (len(r.key) if r.key is not None else 0) + 8


def build_batch(base_offset: int, last_offset_delta: int, records: list[tuple[SmRecord, int]], compression: int,
                first_timestamp: int) -> bytes:
    """An output batch: records at offset_delta = index, timestamps rebased on `first_timestamp`."""
    raw = bytearray(_I32.pack(len(records)))
    max_ts = first_timestamp
    for i, (r, ts) in enumerate(records):
        delta = ts - first_timestamp if ts >= 0 and first_timestamp >= 0 else 0
        max_ts = max(max_ts, ts)
        body = bytearray((r.attributes & 0xFF,))
        encode_varint(delta, body)
        encode_varint(i, body)
        if r.key is None:
            body.append(0)
        else:
            body.append(1)
            encode_varint(len(r.key), body)
            body += r.key
        encode_varint(len(r.value), body)
        body += r.value
        encode_varint(r.headers, body)
        encode_varint(len(body), raw)
        raw += body
    payload = compress(compression, bytes(raw))
    header = b.BatchHeader(base_offset, b.HEADER_BYTES + len(payload), -1, b.MAGIC, 0, compression,
                           last_offset_delta, first_timestamp, max_ts, b.NO_PRODUCER_ID, -1, -1)
    buf = bytearray(b.encode_header(header))
    buf += payload
    struct.pack_into(">I", buf, 17, b.batch_crc(buf))
    return bytes(buf)
