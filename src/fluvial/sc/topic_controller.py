"""The SC's topic controller: validates and creates topics, places their partitions on healthy SPUs,
deletes them, grows the `consumer-offset` system topic towards three replicas, and builds what each SPU
is assigned. The rules are pure (`sc/topics.py`, `sc/election.py`); this module applies them to the
stores and wakes the SPUs' assignment streams through `push`."""

from __future__ import annotations

import asyncio
import contextlib
import copy
import logging
import time
from collections.abc import Callable, Iterable
from typing import Any

from fluvial import defaults as d
from fluvial.errors import ErrorCode, MetadataUnavailable
from fluvial.protocol import internal as i
from fluvial.protocol import metadata as md
from fluvial.protocol import sc as scp
from fluvial.protocol.codec import WireError
from fluvial.sc import election as el
from fluvial.sc import health as sc_health
from fluvial.sc import topics as rules
from fluvial.sc.replication import ReplicationController
from fluvial.sc.store import LabelStore

logger = logging.getLogger("fluvial.sc.server")


def status_of(name: str, code: ErrorCode, message: str | None) -> scp.Status:
    """A Create/Delete answer; only `Other` carries its message in the error itself."""
    err = WireError(code) if code is not ErrorCode.OTHER else WireError.of(code, message or "")
    return scp.Status(name, err, message)


def system_topic_spec() -> md.TopicSpec:
    return md.TopicSpec(
        replicas=md.TopicReplicaParam(1, 1, False),
        cleanup_policy=md.SegmentBasedPolicy(d.CONSUMER_OFFSET_RETENTION_SECONDS),
        storage=md.TopicStorageConfig(d.CONSUMER_OFFSET_SEGMENT_BYTES, d.CONSUMER_OFFSET_MAX_PARTITION_BYTES),
        compression_type=md.CompressionAlgorithm.ANY, deduplication=None, system=True)


class TopicController:
    def __init__(self, topics: LabelStore, partitions: LabelStore, replication: ReplicationController,
                 push: Callable[[], None], wait_seconds: float,
                 overcommit: Callable[[], dict[int, tuple[int, int]]] = dict) -> None:
        self.overcommit = overcommit
        self.topics = topics
        self.partitions = partitions
        self.replication = replication
        self.push = push
        self.wait_seconds = wait_seconds

    def start(self) -> None:
        """The system topic always exists; topics left pending are placed when SPUs allow."""
        if self.topics.get(d.CONSUMER_OFFSET_TOPIC) is None:
            self.create(d.CONSUMER_OFFSET_TOPIC, system_topic_spec())
        self.schedule_pending()

    def placeable(self) -> list[int]:
        """SPUs new replicas may be placed on: online, no data dir FULL or FAILED."""
        return el.placeable(self.replication.spu_views())

    # ---------------------------------------------------------------------------------- create

    async def create_request(self, name: str, spec: md.TopicSpec, dry_run: bool) -> scp.Status:
        """A client's Create: Fluvio's validation texts, then wait until every partition is online."""
        problem = rules.name_problem(name)
        if problem is not None:
            return status_of(name, ErrorCode.TOPIC_INVALID_NAME, rules.invalid_name_message(name, problem))
        if self.topics.get(name) is not None:
            return status_of(name, ErrorCode.TOPIC_ALREADY_EXISTS, "Topic already exists")
        retention = spec.cleanup_policy.time_in_seconds if spec.cleanup_policy is not None else None
        storage = spec.storage
        problem = rules.config_problem(retention, storage.segment_size if storage else None,
                                       storage.max_partition_size if storage else None)
        if problem is not None:
            return status_of(name, ErrorCode.TOPIC_INVALID_CONFIGURATION, problem)
        problem = self._replicas_problem(spec.replicas)
        if problem is not None:
            return status_of(name, ErrorCode.TOPIC_ERROR, problem)
        if dry_run:
            return status_of(name, ErrorCode.NONE, None)
        try:
            self.create(name, spec)
        except MetadataUnavailable as e:
            return status_of(name, ErrorCode.OTHER, str(e))
        status = await self.wait_provisioned(name, partition_count(spec))
        if status.error_code.ok and storage is not None and storage.max_partition_size is not None:
            status.error_message = self._overcommit_warning(name) or None   # created, with a warning
        return status

    def _replicas_problem(self, replicas: Any) -> str | None:
        """Fluvio's checks of a topic's replica spec: computed (counts above 0) or assigned (a valid map of
        registered SPUs, `policy.rs:29-110` of v0.17.3); mirror topics are not built."""
        if isinstance(replicas, md.TopicReplicaParam):
            return rules.computed_problem(replicas.partitions, replicas.replication_factor)
        if isinstance(replicas, md.PartitionMaps):
            maps = [(m.id, list(m.replicas)) for m in replicas.maps]
            return rules.assigned_problem(maps) or rules.unknown_spu_problem(maps, self.known_spus())
        return "mirror topics are not supported"

    def known_spus(self) -> list[int]:
        return list(self.replication.spu_views())

    # ----------------------------------------------------------------------------- add partitions

    async def add_partitions(self, name: str, count: int) -> scp.Status:
        """Update API `AddPartition` (`topic/update/add_partition.rs` of v0.17.3): a computed, non-system
        topic grows by `count` partitions, placed like a new topic's (the existing ones stay where they
        are); answers once the new partitions are online."""
        meta = self.topics.get(name)
        if meta is None:
            return status_of(name, ErrorCode.TOPIC_NOT_FOUND, "not found")
        if meta.spec.system:
            return scp.Status(name, WireError.of(ErrorCode.SYSTEM_SPEC_UPDATING_ATTEMPT, "topic", name), None)
        param = meta.spec.replicas
        if not isinstance(param, md.TopicReplicaParam):
            return status_of(name, ErrorCode.TOPIC_INVALID_REPLICA_TYPE, "invalid replica type")
        if meta.status.resolution is not md.TopicResolution.PROVISIONED:
            return status_of(name, ErrorCode.TOPIC_NOT_PROVISIONED, "the topic is not provisioned yet")
        total = param.partitions + count
        existing = {int(p): list(r) for p, r in meta.status.replica_map.items()}
        groups = rules.SchedulingGroups.of(m.spec.replicas for m in self.partitions.values())
        placement = rules.place_replicas(total, param.replication_factor, self.placeable(), groups, existing)
        if not placement:
            return status_of(name, ErrorCode.TOPIC_ERROR, f"not enough live SPUs for replication factor "
                                                          f"{param.replication_factor}")
        placement = {**placement, **existing}        # partitions already placed stay where they are
        grown = copy.deepcopy(meta)
        grown.spec.replicas = md.TopicReplicaParam(total, param.replication_factor, param.ignore_rack_assignment)
        grown.status = md.TopicStatus(md.TopicResolution.PROVISIONED, placement, {}, "")
        try:
            self.topics.put(name, grown, required=True)     # MetadataUnavailable: nothing changed
        except MetadataUnavailable as e:
            return status_of(name, ErrorCode.OTHER, str(e))
        self._provision(grown, placement)
        logger.info("partitions_added topic=%s count=%d total=%d", name, count, total)
        return await self.wait_provisioned(name, total)

    def _overcommit_warning(self, name: str) -> str:
        mine = {spu for p in range(len(self.topics.get(name).status.replica_map))
                if (m := self.partitions.get(rules.partition_name(name, p))) is not None for spu in m.spec.replicas}
        over = {spu: v for spu, v in self.overcommit().items() if spu in mine}
        if over:
            logger.warning("partition_sizes_exceed_disk topic=%s spus=%s", name, sorted(over))
        return "; ".join(sc_health.overcommit_text(spu, *v) for spu, v in sorted(over.items()))

    async def wait_provisioned(self, name: str, count: int) -> scp.Status:
        deadline = time.monotonic() + self.wait_seconds
        while True:
            online = sum(1 for p in range(count)
                         if (m := self.partitions.get(rules.partition_name(name, p))) is not None
                         and m.status.resolution is md.PartitionResolution.ONLINE)
            if online == count:
                logger.info("topic_created topic=%s partitions=%d", name, count)
                return status_of(name, ErrorCode.NONE, None)
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return status_of(name, ErrorCode.TOPIC_NOT_PROVISIONED, f"only {online} out of {count} provisioned")
            changed = self.partitions.changed
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(remaining):
                    await changed.wait()

    def create(self, name: str, spec: md.TopicSpec) -> None:
        status = md.TopicStatus(md.TopicResolution.PENDING, {}, {}, rules.PENDING_REASON)
        self.topics.put(name, scp.TOPIC.metadata(name, spec, status), required=True)   # MetadataUnavailable
        self.schedule(name)

    # -------------------------------------------------------------------------------- placement

    def schedule_pending(self) -> None:
        for meta in list(self.topics.values()):
            if meta.status.resolution in (md.TopicResolution.PENDING, md.TopicResolution.INSUFFICIENT_RESOURCES):
                self.schedule(meta.name)

    def schedule(self, name: str) -> None:
        meta = self.topics.get(name)
        param = meta.spec.replicas
        if isinstance(param, md.PartitionMaps):   # the user's assignment, once its SPUs can take it
            online = set(self.placeable())
            ready = all(s in online for m in param.maps for s in m.replicas)
            placement = {m.id: list(m.replicas) for m in param.maps} if ready else {}
        else:
            groups = rules.SchedulingGroups.of(m.spec.replicas for m in self.partitions.values())
            spus = self.placeable()
            rf = param.replication_factor
            if name == d.CONSUMER_OFFSET_TOPIC:      # rf = min(3, SPUs); grown as more SPUs register
                rf = max(1, min(d.CONSUMER_OFFSET_REPLICAS_MAX, len(spus)))
            placement = rules.place_replicas(param.partitions, rf, spus, groups)
        if not placement:
            if meta.status.resolution is not md.TopicResolution.INSUFFICIENT_RESOURCES:
                meta.status = md.TopicStatus(md.TopicResolution.INSUFFICIENT_RESOURCES, {}, {}, "")
                self.topics.put(name, meta)
            return
        meta.status = md.TopicStatus(md.TopicResolution.PROVISIONED, placement, {}, "")
        self.topics.put(name, meta)
        self._provision(meta, placement)

    def _provision(self, meta: Any, placement: dict[int, list[int]]) -> None:
        """Partition objects for the placed partitions that do not exist yet; wakes the SPUs."""
        name, spec = meta.name, meta.spec
        for p, replicas in placement.items():
            if self.partitions.get(rules.partition_name(name, p)) is not None:
                continue
            pspec = md.PartitionSpec(leader=replicas[0], replicas=list(replicas), cleanup_policy=spec.cleanup_policy,
                                     storage=spec.storage, compression_type=spec.compression_type,
                                     deduplication=spec.deduplication, system=spec.system)
            pname = rules.partition_name(name, p)
            self.replication.partition_created(pname, list(replicas))
            self.partitions.put(pname, scp.PARTITION.metadata(pname, pspec, md.PartitionStatus()))
        self.push()

    def grow_system_topic(self) -> None:
        """`consumer-offset` towards min(3, SPUs) replicas, by a partition move (catch up, then switch)."""
        pname = rules.partition_name(d.CONSUMER_OFFSET_TOPIC, 0)
        meta = self.partitions.get(pname)
        if meta is None or self.replication.replication(pname).target_replicas:
            return
        online = self.placeable()
        want = min(d.CONSUMER_OFFSET_REPLICAS_MAX, len(online))
        extra = [s for s in online if s not in meta.spec.replicas][:max(0, want - len(meta.spec.replicas))]
        if extra:
            self.replication.move(pname, [*meta.spec.replicas, *extra])

    # ----------------------------------------------------------------------------------- delete

    def delete(self, name: str) -> None:
        """Raises `MetadataUnavailable` (nothing deleted) when the store refuses the write."""
        meta = self.topics.delete(name, required=True)
        count = len(meta.status.replica_map) if meta is not None else 0
        gone = []
        for p in range(count):
            pm = self.partitions.delete(rules.partition_name(name, p))
            self.replication.partition_deleted(rules.partition_name(name, p))
            if pm is not None:
                gone.append(pm)
        self.replication.topic_deleted(name)
        self.push()
        logger.info("topic_deleted topic=%s partitions=%d", name, len(gone))


# ---------------------------------------------------------------------------------------- assignments


def partition_count(spec: md.TopicSpec) -> int:
    r = spec.replicas
    return r.partitions if isinstance(r, md.TopicReplicaParam) else len(getattr(r, "maps", []) or [])


def assignments_for(spu_id: int, partitions: Iterable[Any],
                    replication: ReplicationController) -> list[i.ReplicaAssignment]:
    """What one SPU holds (and who leads `consumer-offset-0`, where every SPU forwards offset commits)."""
    out = []
    offsets_partition = rules.partition_name(d.CONSUMER_OFFSET_TOPIC, 0)
    for m in partitions:
        if spu_id in m.spec.replicas or m.name == offsets_partition:
            topic, part = rules.parse_partition_name(m.name) or (m.name, 0)
            s = m.spec
            st = replication.replication(m.name)
            out.append(i.ReplicaAssignment(
                topic, part, s.leader, list(s.replicas),
                s.cleanup_policy.time_in_seconds if s.cleanup_policy is not None else None,
                s.storage.segment_size if s.storage is not None else None,
                s.storage.max_partition_size if s.storage is not None else None,
                int(s.compression_type), False, st.leader_epoch, list(st.isr), replication.min_in_sync(m.name)))
    return out


def peer_list(spus: Iterable[Any]) -> list[i.PeerSpu]:
    out = []
    for m in spus:
        s = m.spec
        host = s.public_endpoint.ingress[0].hostname if s.public_endpoint.ingress else ""
        out.append(i.PeerSpu(s.id, host or "", s.public_endpoint.port, s.private_endpoint.host,
                             s.private_endpoint.port, m.status.resolution is md.SpuResolution.ONLINE))
    return out


__all__ = ["TopicController", "assignments_for", "partition_count", "peer_list", "status_of", "system_topic_spec"]
