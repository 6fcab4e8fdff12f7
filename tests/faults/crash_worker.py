"""Child process of `test_crash.py`: append deterministic batches to a replica until killed.

    python crash_worker.py DIR SEED START FLUSH_POLICY SEGMENT_BYTES [MAX_SECONDS]

Prints `ready <leo>` once the replica is open, then, for each batch number n = START, START+1, …,
appends `make_batch(SEED, n)` and only after `append` returns prints `ack <n> <base_offset> <leo>`
(flushed): a line on stdout is an acknowledgement. The parent regenerates every batch from (SEED, n).
Exits by itself after MAX_SECONDS, so an orphan never runs for long.
"""

from __future__ import annotations

import argparse
import random
import sys
import time

from fluvial.protocol.records import Compression, build_batch
from fluvial.storage import FlushPolicy, Replica, ReplicaConfig

Records = list[tuple[bytes | None, bytes]]

_COMPRESSIONS = (Compression.NONE, Compression.NONE, Compression.NONE, Compression.GZIP, Compression.ZSTD)


def _rng(seed: int, n: int) -> random.Random:
    return random.Random(f"fluvial-crash-{seed}-{n}")


def batch_records(seed: int, n: int) -> Records:
    """Pure: the records of batch number `n` (varied count and sizes; now and then a large batch)."""
    rng = _rng(seed, n)
    large = rng.random() < 0.05
    count = rng.randint(1, 3) if large else rng.randint(1, 16)
    max_value = 60 * 1024 if large else 400
    records: Records = []
    for i in range(count):
        key = None if rng.random() < 0.2 else f"s{seed}-b{n}-r{i}".encode()
        size = rng.randint(0, max_value)
        compressible = rng.random() < 0.5
        value = (rng.randbytes(8) * (size // 8 + 1))[:size] if compressible else rng.randbytes(size)
        records.append((key, value))
    return records


def batch_compression(seed: int, n: int) -> int:
    return random.Random(f"fluvial-crash-compression-{seed}-{n}").choice(_COMPRESSIONS)


def make_batch(seed: int, n: int) -> bytes:
    """Pure: the bytes of batch number `n` as a producer would send them (base offset 0)."""
    return build_batch(batch_records(seed, n), compression=batch_compression(seed, n))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("directory")
    parser.add_argument("seed", type=int)
    parser.add_argument("start", type=int)
    parser.add_argument("flush")
    parser.add_argument("segment_bytes", type=int)
    parser.add_argument("max_seconds", type=float, nargs="?", default=30.0)
    args = parser.parse_args(argv)

    config = ReplicaConfig(flush=FlushPolicy.parse(args.flush), segment_max_bytes=args.segment_bytes)
    replica = Replica.open(args.directory, config)
    out = sys.stdout
    out.write(f"ready {replica.leo}\n")
    out.flush()
    deadline = time.monotonic() + args.max_seconds
    n = args.start
    while time.monotonic() < deadline:
        result = replica.append(make_batch(args.seed, n))
        out.write(f"ack {n} {result.base_offset} {result.leo}\n")
        out.flush()
        n += 1
    replica.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
