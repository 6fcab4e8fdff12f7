"""The replicas an SPU holds, as the SC assigned them, their role (leader with its followers' progress, or
follower), and the "changed" signal that stream fetches, follower fetches and committed produces wait on."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from fluvial import defaults as d
from fluvial.errors import FluvialError
from fluvial.protocol.internal import ReplicaAssignment
from fluvial.spu.replication import LeaderState
from fluvial.storage.config import ReplicaConfig
from fluvial.storage.manager import StorageManager
from fluvial.storage.replica import Replica

logger = logging.getLogger(__name__)


@dataclass
class LocalReplica:
    topic: str
    partition: int
    replica: Replica
    assignment: ReplicaAssignment
    appended: asyncio.Event = field(default_factory=asyncio.Event)
    leader_state: LeaderState | None = None     # set while this SPU leads the partition with followers

    @property
    def key(self) -> tuple[str, int]:
        return self.topic, self.partition

    @property
    def epoch(self) -> int:
        return self.assignment.leader_epoch

    def is_leader(self, spu_id: int) -> bool:
        return self.assignment.leader == spu_id and not self.assignment.deleted

    @property
    def replicated(self) -> bool:
        return len(self.assignment.replicas) > 1

    def notify_appended(self) -> None:
        """Wake everything waiting for new data or a new HW on this replica (no polling)."""
        self.appended.set()
        self.appended = asyncio.Event()

    def update_hw(self) -> bool:
        """Leader: move the HW to what every effective in-sync member holds; wakes waiters when it moved."""
        state = self.leader_state
        if state is None:
            return False
        r = self.replica
        hw = state.high_watermark(r.leo, r.hw)
        if hw > r.hw:
            r.set_hw(hw)
            self.notify_appended()
            return True
        return False


def replica_config(a: ReplicaAssignment, flush: str | None = None) -> ReplicaConfig:
    from fluvial.storage.config import FlushPolicy

    kwargs: dict[str, object] = {}
    if a.segment_size is not None:
        kwargs["segment_max_bytes"] = max(a.segment_size, d.SEGMENT_MIN_BYTES)
    if a.max_partition_size is not None:
        kwargs["max_partition_bytes"] = max(a.max_partition_size, d.PARTITION_MIN_BYTES)
    if a.retention_seconds is not None:
        kwargs["retention_seconds"] = a.retention_seconds
    if flush is not None:
        kwargs["flush"] = FlushPolicy.parse(flush)
    return ReplicaConfig(**kwargs)  # type: ignore[arg-type]


class ReplicaRegistry:
    """Opens, keeps and removes local replicas as assignments arrive from the SC."""

    def __init__(self, spu_id: int, storage: StorageManager, flush: str | None = None,
                 lag_seconds: float = d.REPLICA_LAG_SECONDS) -> None:
        self.spu_id = spu_id
        self.storage = storage
        self.flush = flush
        self.lag_seconds = lag_seconds
        self.replicas: dict[tuple[str, int], LocalReplica] = {}
        self.leaders: dict[tuple[str, int], int] = {}     # every partition the SC told us about
        self.on_role: Callable[[LocalReplica], None] | None = None   # leader/follower/epoch changed
        self.on_removed: Callable[[LocalReplica], None] | None = None

    def get(self, topic: str, partition: int) -> LocalReplica | None:
        return self.replicas.get((topic, partition))

    def leader(self, topic: str, partition: int) -> LocalReplica | None:
        r = self.replicas.get((topic, partition))
        return r if r is not None and r.is_leader(self.spu_id) else None

    def apply(self, assignments: list[ReplicaAssignment], full: bool) -> None:
        for _ in self._apply_steps(assignments, full):
            pass

    async def apply_async(self, assignments: list[ReplicaAssignment], full: bool) -> None:
        """`apply`, giving the loop a turn after each replica opened, removed or re-assigned: opening a
        replica and starting a leader epoch write and fsync files, so a thousand of them at once (a large
        topic created, an SPU back after an outage) held the loop for seconds — long enough for the SC to
        miss heartbeats and mark the SPU offline, which changed every epoch again."""
        for _ in self._apply_steps(assignments, full):
            await asyncio.sleep(0)

    def _apply_steps(self, assignments: list[ReplicaAssignment], full: bool) -> Iterator[None]:
        """Apply the assignments one replica at a time (a step per replica that may have done file I/O)."""
        if full:
            self.leaders = {}
        for a in assignments:
            if a.deleted:
                self.leaders.pop((a.topic, a.partition), None)
            else:
                self.leaders[(a.topic, a.partition)] = a.leader
        wanted = {(a.topic, a.partition): a for a in assignments if self.spu_id in a.replicas and not a.deleted}
        removed = [(a.topic, a.partition) for a in assignments if a.deleted or self.spu_id not in a.replicas]
        if full:
            removed += [k for k in self.replicas if k not in wanted]
        for key in removed:
            if key in self.replicas:
                self._remove(key)
                yield
        for key, a in wanted.items():
            current = self.replicas.get(key)
            if current is None:
                current = self._open(a)
                if current is not None:
                    self._role(current, None)
                yield
            elif current.assignment != a:
                old, current.assignment = current.assignment, a
                self._role(current, old)
                yield
            else:
                self._role(current, current.assignment)     # unchanged: no I/O, no turn needed

    def _role(self, local: LocalReplica, old: ReplicaAssignment | None) -> None:
        """Apply a (new) assignment: leader state, epoch history, HW rule; tell the server when the role
        or the epoch changed (it starts or stops the follower fetch)."""
        a = local.assignment
        now = time.monotonic()
        leading = local.is_leader(self.spu_id)
        role_changed = old is None or old.leader != a.leader or old.leader_epoch != a.leader_epoch
        if leading:
            if role_changed or local.leader_state is None:
                self._start_epoch(local)
                local.leader_state = LeaderState.for_assignment(self.spu_id, a.replicas, a.isr, self.lag_seconds,
                                                                now)
            else:
                local.leader_state.update_assignment(a.replicas, a.isr, now)
            local.replica.hw_follows_leo = not local.replicated
            local.update_hw()
        else:
            local.leader_state = None
            local.replica.hw_follows_leo = False
        if role_changed or (old is not None and old.replicas != a.replicas):
            if self.on_role is not None:
                self.on_role(local)
            local.notify_appended()        # streams re-check leadership

    def _start_epoch(self, local: LocalReplica) -> None:
        try:
            local.replica.start_epoch(local.assignment.leader_epoch)
        except (FluvialError, OSError) as e:
            logger.error("epoch_start_failed replica=%s-%d epoch=%d error=%r", local.topic, local.partition,
                         local.assignment.leader_epoch, e)

    def _open(self, a: ReplicaAssignment) -> LocalReplica | None:
        try:
            replica = self.storage.open_replica(a.topic, a.partition, replica_config(a, self.flush))
        except (FluvialError, OSError) as e:   # not served (clients get NotLeader); the SPU keeps the rest
            logger.error("replica_open_failed replica=%s-%d error=%r", a.topic, a.partition, e)
            return None
        local = LocalReplica(a.topic, a.partition, replica, a)
        self.replicas[(a.topic, a.partition)] = local
        logger.info("replica_assigned replica=%s-%d leader=%d epoch=%d replicas=%s", a.topic, a.partition,
                    a.leader, a.leader_epoch, list(a.replicas))
        return local

    def _remove(self, key: tuple[str, int]) -> None:
        local = self.replicas.pop(key, None)
        if local is None:
            return
        if self.on_removed is not None:
            self.on_removed(local)
        local.notify_appended()          # streams wake up and find the replica gone
        self.storage.delete_replica(*key)
        logger.info("replica_removed replica=%s-%d", *key)
