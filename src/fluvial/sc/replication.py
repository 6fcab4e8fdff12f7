"""The SC's replication controller: applies the election reducers (`sc/election.py`) to the metadata.

It owns the fluvial-only state beside Fluvio's objects — per partition the leader epoch, the confirmed
ISR and a move in progress (label `FluvialPartition`), per topic the replication settings (label
`FluvialTopic`) — and what the SPUs last reported about each replica (memory only). Every decision that
changes a leader, an epoch or an ISR is persisted and pushed to the SPUs through their assignment streams;
`spec.leader` changes reach every client watching partitions (the official client's too).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping

from fluvial.protocol import fluvial_api as fa
from fluvial.protocol import internal as i
from fluvial.protocol import metadata as md
from fluvial.protocol.codec import decode, encode
from fluvial.sc import election as el
from fluvial.sc import topics as rules
from fluvial.sc.store import LabelStore, MetadataBackend, ObjectCodec

logger = logging.getLogger(__name__)

_RESOLUTION = {el.Resolution.ONLINE: md.PartitionResolution.ONLINE,
               el.Resolution.LEADER_OFFLINE: md.PartitionResolution.LEADER_OFFLINE,
               el.Resolution.OUT_OF_STORAGE: md.PartitionResolution.OUT_OF_STORAGE}
_DIR_RANK = {i.DirStateCode.OK: 0, i.DirStateCode.LOW: 1, i.DirStateCode.FULL: 2, i.DirStateCode.FAILED: 3}


def _codec(cls: type) -> ObjectCodec:
    return ObjectCodec(lambda m: encode(m, 0), lambda b: decode(cls, b, 0))


def default_min_in_sync(replication_factor: int) -> int:
    """Stricter than Kafka's 1: a ReadCommitted record is on at least two replicas when there are two."""
    return max(1, min(2, replication_factor))


class ReplicationController:
    def __init__(self, backend: MetadataBackend, blobs: Mapping[str, Mapping[str, bytes]],
                 topics: LabelStore, partitions: LabelStore, spus: LabelStore,
                 push: Callable[[], None]) -> None:
        self.topics = topics
        self.partitions = partitions
        self.spus = spus
        self.push = push
        self.state = LabelStore("FluvialPartition", backend, _codec(fa.PartitionReplication))
        self.settings = LabelStore("FluvialTopic", backend, _codec(fa.TopicReplicationSettings))
        self.state.load(dict(blobs.get("FluvialPartition", {})))
        self.settings.load(dict(blobs.get("FluvialTopic", {})))
        self.observed: dict[str, dict[int, i.ReplicaReport]] = {}
        self.dir_states: dict[int, i.DirStateCode] = {}
        # A restarted SC knows no SPU as online until each registers again: no election before every SPU
        # had the offline timeout to do so (else the first to register would take every partition).
        self.hold_elections_until = 0.0          # monotonic

    # ================================================================================ snapshots

    def spu_views(self) -> dict[int, el.SpuView]:
        return {m.spec.id: el.SpuView(m.status.resolution is md.SpuResolution.ONLINE,
                                      self.dir_states.get(m.spec.id, i.DirStateCode.OK))
                for m in self.spus.values()}

    def replication(self, pname: str) -> fa.PartitionReplication:
        st = self.state.get(pname)
        if st is None:
            meta = self.partitions.get(pname)
            replicas = list(meta.spec.replicas) if meta is not None else []
            st = fa.PartitionReplication(0, replicas, [])
        return st

    def view(self, pname: str) -> el.PartitionView:
        meta = self.partitions.get(pname)
        st = self.replication(pname)
        seen = self.observed.get(pname, {})
        topic = rules.parse_partition_name(pname)
        settings = self.settings.get(topic[0]) if topic is not None else None
        return el.PartitionView(
            meta.spec.leader, tuple(meta.spec.replicas), st.leader_epoch, tuple(st.isr),
            {spu: r.state for spu, r in seen.items()}, {spu: r.leo for spu, r in seen.items()},
            bool(settings is not None and settings.unclean_leader_election))

    def min_in_sync(self, pname: str) -> int:
        meta = self.partitions.get(pname)
        rf = len(meta.spec.replicas) if meta is not None else 1
        parsed = rules.parse_partition_name(pname)
        settings = self.settings.get(parsed[0]) if parsed is not None else None
        if settings is not None and settings.min_in_sync >= 1:
            return min(settings.min_in_sync, rf)
        return default_min_in_sync(rf)

    # =============================================================================== lifecycle

    def partition_created(self, pname: str, replicas: list[int]) -> None:
        """A new partition: empty logs everywhere, so every replica is in sync; epoch 0."""
        self.state.put(pname, fa.PartitionReplication(0, list(replicas), []))

    def partition_deleted(self, pname: str) -> None:
        self.state.delete(pname)
        self.observed.pop(pname, None)

    def topic_deleted(self, topic: str) -> None:
        self.settings.delete(topic)

    def set_settings(self, topic: str, settings: fa.TopicReplicationSettings) -> None:
        self.settings.put(topic, settings, required=True)     # MetadataUnavailable: nothing changed
        self.push()

    # ================================================================================== reports

    def observe(self, spu_id: int, dirs: list[i.DataDirReport], reports: list[i.ReplicaReport]) -> None:
        """One heartbeat: data-dir states, every replica's LEO and state; a leader's report also carries
        its followers' progress and its proposed ISR."""
        worst = max((d.state for d in dirs), key=lambda s: _DIR_RANK[s], default=i.DirStateCode.OK)
        dir_changed = self.dir_states.get(spu_id) != worst
        self.dir_states[spu_id] = worst
        for r in reports:
            pname = rules.partition_name(r.topic, r.partition)
            meta = self.partitions.get(pname)
            if meta is None or spu_id not in meta.spec.replicas:
                continue
            seen = self.observed.setdefault(pname, {})
            old = seen.get(spu_id)
            seen[spu_id] = r
            state_changed = old is None or old.state is not r.state
            if r.is_leader and meta.spec.leader == spu_id:
                self._leader_report(pname, spu_id, r)
            elif state_changed and r.state is not i.ReplicaStateCode.OK:
                self.reconcile(pname)
        if dir_changed:
            self.reconcile_all()

    def _leader_report(self, pname: str, spu_id: int, r: i.ReplicaReport) -> None:
        meta = self.partitions.get(pname)
        st = self.replication(pname)
        if r.leader_epoch == st.leader_epoch and r.state is i.ReplicaStateCode.OK:
            proposed = [spu_id, *(f.spu_id for f in r.followers if f.in_sync)]
            isr = list(el.accept_isr(proposed, self.view(pname), self.spu_views()))
            if isr != list(st.isr):
                logger.info("isr_changed partition=%s epoch=%d isr=%s was=%s", pname, st.leader_epoch, isr,
                            list(st.isr))
                self.state.put(pname, fa.PartitionReplication(st.leader_epoch, isr, list(st.target_replicas)))
                self.push()
                self._maybe_finish_move(pname)
        if r.state is not i.ReplicaStateCode.OK:
            self.reconcile(pname)
            meta = self.partitions.get(pname)
            if meta.spec.leader != spu_id:
                return
        resolution = (md.PartitionResolution.ONLINE if r.state is i.ReplicaStateCode.OK
                      else md.PartitionResolution.OUT_OF_STORAGE)
        followers = {f.spu_id: f.leo for f in r.followers}
        replicas = [md.ReplicaStatus(f, 0 if leo < 0 else min(leo, r.hw), leo) for f, leo in followers.items()]
        status = md.PartitionStatus(resolution, md.ReplicaStatus(spu_id, r.hw, r.leo),
                                    el.lsr_count(r.leo, followers), replicas, r.size, False, r.log_start)
        if status != meta.status:
            resolution_changed = resolution is not meta.status.resolution
            meta.status = status
            self.partitions.put(pname, meta, persist=resolution_changed)   # offsets alone: memory only

    # ================================================================================= elections

    def reconcile_all(self) -> None:
        for pname in list(self.partitions.objects):
            self.reconcile(pname)

    def reconcile(self, pname: str) -> None:
        meta = self.partitions.get(pname)
        if meta is None or time.monotonic() < self.hold_elections_until:
            return
        view = self.view(pname)
        spus = self.spu_views()
        was_offline = meta.status.resolution is md.PartitionResolution.LEADER_OFFLINE
        decision = el.returning_leader(view, spus, was_offline) or el.elect(view, spus)
        self.apply(pname, view, decision)

    def apply(self, pname: str, view: el.PartitionView, decision: el.Decision) -> None:
        meta = self.partitions.get(pname)
        st = self.replication(pname)
        changed = False
        if (decision.leader, decision.epoch, decision.isr) != (view.leader, view.epoch, view.isr):
            self.state.put(pname, fa.PartitionReplication(decision.epoch, list(decision.isr),
                                                          list(st.target_replicas)))
            changed = True
        if decision.leader != meta.spec.leader:
            logger.warning("leader_elected partition=%s leader=%d was=%d epoch=%d isr=%s reason=%s", pname,
                           decision.leader, meta.spec.leader, decision.epoch, list(decision.isr), decision.reason)
            meta.spec.leader = decision.leader
            seen = self.observed.get(pname, {}).get(decision.leader)
            leader_status = md.ReplicaStatus(decision.leader, seen.hw if seen else -1, seen.leo if seen else -1)
            meta.status = md.PartitionStatus(md.PartitionResolution.ONLINE, leader_status, 0, [],
                                             meta.status.size, False, meta.status.base_offset)
            self.partitions.put(pname, meta)
        elif decision.epoch != view.epoch:
            logger.warning("leader_epoch partition=%s leader=%d epoch=%d reason=%s", pname, decision.leader,
                           decision.epoch, decision.reason)
        if decision.resolution is not None and decision.leader == meta.spec.leader:
            wanted = _RESOLUTION[decision.resolution]
            if meta.status.resolution is not wanted and not (
                    wanted is md.PartitionResolution.ONLINE and decision.epoch == view.epoch):
                if wanted is not md.PartitionResolution.ONLINE:
                    logger.warning("partition_unavailable partition=%s leader=%d resolution=%s reason=%s", pname,
                                   meta.spec.leader, wanted.name, decision.reason)
                s = meta.status
                meta.status = md.PartitionStatus(wanted, s.leader, s.lsr, s.replicas, s.size, False, s.base_offset)
                self.partitions.put(pname, meta)
        if changed:
            self.push()

    # ============================================================================== admin actions

    def elect_leader(self, pname: str, target: int | None) -> str | None:
        """Preferred-leader election; None when done, else why not."""
        if self.partitions.get(pname) is None:
            return f"partition {pname} not found"
        view = self.view(pname)
        decision = el.preferred_election(view, self.spu_views(), target)
        if isinstance(decision, str):
            return decision
        self.apply(pname, view, decision)
        return None

    def move(self, pname: str, replicas: list[int]) -> str | None:
        """Start re-replicating a partition onto `replicas`; None when accepted, else why not."""
        meta = self.partitions.get(pname)
        if meta is None:
            return f"partition {pname} not found"
        if not replicas or len(set(replicas)) != len(replicas):
            return "the new replica list must name distinct SPUs"
        known = {m.spec.id for m in self.spus.values()}
        unknown = [r for r in replicas if r not in known]
        if unknown:
            return f"unknown SPU {unknown[0]}"
        st = self.replication(pname)
        current = list(meta.spec.replicas)
        union = current + [r for r in replicas if r not in current]
        meta.spec.replicas = union
        self.partitions.put(pname, meta)
        self.state.put(pname, fa.PartitionReplication(st.leader_epoch, list(st.isr), list(replicas)))
        logger.info("partition_move partition=%s from=%s to=%s", pname, current, replicas)
        self.push()
        self._maybe_finish_move(pname)
        return None

    def _maybe_finish_move(self, pname: str) -> None:
        """Once every replica of the target set is in sync: the target becomes the replica set; a leader
        outside it hands over to the first (preferred) member of the target."""
        st = self.replication(pname)
        target = list(st.target_replicas)
        if not target or not set(target) <= set(st.isr):
            return
        meta = self.partitions.get(pname)
        epoch = st.leader_epoch
        leader = meta.spec.leader
        if leader not in target:        # every target member is in sync: the preferred one leads
            leader, epoch = target[0], epoch + 1
        isr = [leader, *(r for r in st.isr if r in target and r != leader)]
        meta.spec.replicas = target
        if leader != meta.spec.leader:
            logger.warning("leader_elected partition=%s leader=%d was=%d epoch=%d reason=move", pname, leader,
                           meta.spec.leader, epoch)
            meta.spec.leader = leader
        self.partitions.put(pname, meta)
        self.state.put(pname, fa.PartitionReplication(epoch, isr, []))
        logger.info("partition_move_done partition=%s replicas=%s leader=%d epoch=%d", pname, meta.spec.replicas,
                    leader, epoch)
        self.push()

    # ================================================================================== details

    def details(self, pname: str) -> fa.PartitionDetail:
        meta = self.partitions.get(pname)
        st = self.replication(pname)
        topic, part = rules.parse_partition_name(pname) or (pname, 0)
        spus = self.spu_views()
        seen = self.observed.get(pname, {})
        leader_leo = seen[meta.spec.leader].leo if meta.spec.leader in seen else meta.status.leader.leo
        hw = seen[meta.spec.leader].hw if meta.spec.leader in seen else meta.status.leader.hw
        replicas = []
        for spu in meta.spec.replicas:
            r = seen.get(spu)
            leo = r.leo if r is not None else -1
            replicas.append(fa.ReplicaDetail(spu, spus.get(spu, el.SpuView(False)).online, spu in st.isr, leo,
                                             leader_leo - leo if leo >= 0 and leader_leo >= 0 else -1,
                                             r.state.name.lower() if r is not None else "unknown"))
        settings = self.settings.get(topic)
        return fa.PartitionDetail(topic, part, meta.spec.leader, st.leader_epoch,
                                  md.PartitionResolution(meta.status.resolution).name, hw, leader_leo,
                                  self.min_in_sync(pname),
                                  bool(settings is not None and settings.unclean_leader_election), replicas)


__all__ = ["ReplicationController", "default_min_in_sync"]
