"""The replicas an SPU holds, as the SC assigned them, and the "new data" signal stream fetches wait on."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field

from fluvial import defaults as d
from fluvial.errors import FluvialError
from fluvial.protocol.internal import ReplicaAssignment
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

    @property
    def key(self) -> tuple[str, int]:
        return self.topic, self.partition

    def is_leader(self, spu_id: int) -> bool:
        return self.assignment.leader == spu_id and not self.assignment.deleted

    def notify_appended(self) -> None:
        """Wake every stream waiting for data on this replica (no polling)."""
        self.appended.set()
        self.appended = asyncio.Event()


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

    def __init__(self, spu_id: int, storage: StorageManager, flush: str | None = None) -> None:
        self.spu_id = spu_id
        self.storage = storage
        self.flush = flush
        self.replicas: dict[tuple[str, int], LocalReplica] = {}
        self.leaders: dict[tuple[str, int], int] = {}     # every partition the SC told us about

    def get(self, topic: str, partition: int) -> LocalReplica | None:
        return self.replicas.get((topic, partition))

    def leader(self, topic: str, partition: int) -> LocalReplica | None:
        r = self.replicas.get((topic, partition))
        return r if r is not None and r.is_leader(self.spu_id) else None

    def apply(self, assignments: list[ReplicaAssignment], full: bool) -> None:
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
            self._remove(key)
        for key, a in wanted.items():
            current = self.replicas.get(key)
            if current is None:
                self._open(a)
            else:
                current.assignment = a

    def _open(self, a: ReplicaAssignment) -> None:
        try:
            replica = self.storage.open_replica(a.topic, a.partition, replica_config(a, self.flush))
        except (FluvialError, OSError) as e:   # not served (clients get NotLeader); the SPU keeps the rest
            logger.error("replica_open_failed replica=%s-%d error=%r", a.topic, a.partition, e)
            return
        self.replicas[(a.topic, a.partition)] = LocalReplica(a.topic, a.partition, replica, a)
        logger.info("replica_assigned replica=%s-%d leader=%d replicas=%s", a.topic, a.partition, a.leader,
                    list(a.replicas))

    def _remove(self, key: tuple[str, int]) -> None:
        local = self.replicas.pop(key, None)
        if local is None:
            return
        local.notify_appended()          # streams wake up and find the replica gone
        self.storage.delete_replica(*key)
        logger.info("replica_removed replica=%s-%d", *key)
