"""Hypothesis: random appends, reads, rolls, retention, crash-reopens and injected faults against a model.

Invariants after every step: every acknowledged batch reads back identical; offsets are contiguous from
the log start; no partial batch is ever visible (the directory verifies clean); failed appends change
nothing; a FULL replica writes again once space returns, without reopening; an idempotent producer's
exact retry of one of its last batches still stored is acknowledged with the original base offset and
written nothing — also after crashes, faults and retention.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import tempfile

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from fluvial import defaults as d
from fluvial.errors import StorageFailed, StorageFull
from fluvial.protocol import batch as b
from fluvial.protocol.records import build_batch, decode_records
from fluvial.storage import FaultPlan, FaultyFileIO, Replica, ReplicaConfig, ReplicaState
from fluvial.storage.validator import verify_replica_dir

PRODUCER_ID = 3
records_st = st.lists(
    st.tuples(st.one_of(st.none(), st.binary(max_size=8)), st.binary(max_size=700)), min_size=1, max_size=6
)


class ReplicaModel(RuleBasedStateMachine):
    @initialize(segment=st.sampled_from([1024, 2048, 8192]), interval=st.sampled_from([64, 512, 4096]))
    def open(self, segment: int, interval: int) -> None:
        self.dir = tempfile.mkdtemp(prefix="fluvial-model-")
        self.io = FaultyFileIO(FaultPlan())
        self.config = ReplicaConfig(segment_max_bytes=segment, index_max_interval_bytes=interval,
                                    max_partition_bytes=10**9)
        self.replica = Replica.open(self.dir, self.config, io=self.io)
        self.batches: list[tuple[int, list[tuple[bytes | None, bytes]]]] = []   # (base offset, records)
        self.next_offset = 0
        self.log_start = 0
        self.failed = False
        self.next_sequence = 0                        # one idempotent producer
        self.acked: list[tuple[bytes, int]] = []      # its acknowledged batches: (bytes, base offset)

    def teardown(self) -> None:
        with contextlib.suppress(Exception):
            self.replica.close()
        shutil.rmtree(self.dir, ignore_errors=True)

    # ------------------------------------------------------------------------------------- writes

    @rule(recs=records_st)
    def append(self, recs: list[tuple[bytes | None, bytes]]) -> None:
        one = build_batch(recs, timestamp_ms=1_700_000_000_000)
        if len(one) > self.config.segment_max_bytes:
            return
        size_before = self._active_size()
        try:
            res = self.replica.append(one)
        except StorageFull:
            assert not self.failed
            assert self.replica.state is ReplicaState.FULL
            assert self._active_size() == size_before          # truncated back: no partial batch
            return
        except StorageFailed:
            self.failed = True
            assert self.replica.state is ReplicaState.FAILED
            return
        assert not self.failed, "a FAILED replica accepted a write"
        assert res.base_offset == self.next_offset
        self.batches.append((self.next_offset, recs))
        self.next_offset += len(recs)
        assert res.leo == self.next_offset

    @rule(recs=records_st)
    def append_idempotent(self, recs: list[tuple[bytes | None, bytes]]) -> None:
        one = build_batch(recs, timestamp_ms=1_700_000_000_000, producer_id=PRODUCER_ID, producer_epoch=0,
                          first_sequence=self.next_sequence)
        if len(one) > self.config.segment_max_bytes:
            return
        try:
            res = self.replica.append(one)
        except StorageFull:
            assert self.replica.state is ReplicaState.FULL
            return
        except StorageFailed:
            self.failed = True
            return
        assert not self.failed and res.base_offset == self.next_offset and res.duplicate_batches == 0
        self.batches.append((self.next_offset, recs))
        self.acked.append((one, res.base_offset))
        self.next_offset += len(recs)
        self.next_sequence += len(recs)

    @precondition(lambda self: self.acked)
    @rule(data=st.data())
    def retry_idempotent(self, data: st.DataObject) -> None:
        recent = self.acked[-d.IDEMPOTENT_BATCHES_REMEMBERED:]
        one, base = data.draw(st.sampled_from(recent))
        if base < self.log_start:
            return            # retention removed it: a retry of it is not recognized after a restart
        size_before = self._active_size()
        res = self.replica.append(one)
        assert (res.base_offset, res.leo, res.records, res.duplicate_batches) == (base, self.next_offset, 0, 1)
        assert self._active_size() == size_before

    @rule(extra=st.integers(min_value=0, max_value=900))
    def disk_fills(self, extra: int) -> None:
        self.io.plan.enospc_after_bytes = self.io.bytes_written + extra

    @rule(quota=st.booleans())
    def disk_frees(self, quota: bool) -> None:
        self.io.plan.enospc_after_bytes = None
        self.io.plan.enospc_errno = errno.EDQUOT if quota else errno.ENOSPC

    @precondition(lambda self: not self.failed)
    @rule(op=st.sampled_from(["write", "erofs"]))
    def disk_breaks(self, op: str) -> None:
        if op == "write":
            self.io.plan.eio_on_write = True
        else:
            self.io.plan.erofs_on_write = True

    @rule(keep_bytes=st.integers(min_value=0, max_value=30_000))
    def retention(self, keep_bytes: int) -> None:
        object.__setattr__(self.replica.config, "max_partition_bytes", max(2048, keep_bytes))
        self.replica.apply_retention()
        self.log_start = self.replica.log_start
        self.batches = [x for x in self.batches if x[0] >= self.log_start]

    @rule(torn=st.binary(min_size=0, max_size=120))
    def crash_and_reopen(self, torn: bytes) -> None:
        """Abandon the replica without syncing, tear the tail, reopen on a healthy disk."""
        active = self.replica._active.log_path
        for seg in [*self.replica._sealed, self.replica._active]:
            seg.close()
        self.replica._checkpoint.close()
        with open(active, "ab") as f:
            f.write(torn)
        self.io = FaultyFileIO(FaultPlan())
        self.replica = Replica.open(self.dir, self.config, io=self.io)
        self.failed = False
        assert self.replica.state is ReplicaState.OK
        assert self.replica.leo == self.next_offset
        assert self.replica.log_start == self.log_start

    # -------------------------------------------------------------------------------------- reads

    @rule(data=st.data())
    def read_from(self, data: st.DataObject) -> None:
        if not self.batches:
            return
        start = data.draw(st.integers(min_value=self.log_start, max_value=self.next_offset - 1))
        max_bytes = data.draw(st.sampled_from([1, 500, 4096, 1 << 20]))
        res = self.replica.read(start, max_bytes)
        got = [(bh, recs) for bh, recs in self._decode(res.slice.read())]
        assert got, "read below LEO returned nothing"
        first = max(i for i, (base, _) in enumerate(self.batches) if base <= start)
        assert got == self.batches[first:first + len(got)]

    def _decode(self, data: bytes) -> list[tuple[int, list[tuple[bytes | None, bytes]]]]:
        out = []
        for one in b.split_batches(data):
            recs = decode_records(one)
            out.append((recs[0].offset, [(r.key, r.value) for r in recs]))
        return out

    def _active_size(self) -> int:
        """Bytes of all logs (an append may roll, then fail in the new segment)."""
        return sum(os.path.getsize(os.path.join(self.dir, n)) for n in os.listdir(self.dir) if n.endswith(".log"))

    # --------------------------------------------------------------------------------- invariants

    @invariant()
    def offsets_and_content(self) -> None:
        r = self.replica
        assert r.leo == self.next_offset
        assert r.log_start == self.log_start
        assert r.log_start <= r.hw <= r.leo
        seen = []
        offset = r.log_start
        while offset < r.leo:
            chunk = self._decode(r.read(offset, 1 << 20).slice.read())
            assert chunk
            seen.extend(chunk)
            last_base, last_recs = chunk[-1]
            offset = last_base + len(last_recs)
        assert seen == self.batches

    @invariant()
    def files_verify(self) -> None:
        report = verify_replica_dir(self.dir)
        assert report.ok, [str(p) for p in report.all_problems()]


ReplicaModel.TestCase.settings = settings(
    max_examples=150, stateful_step_count=40, deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
TestReplicaModel = ReplicaModel.TestCase
