"""Topic rules of the SC: name and config validation, replica placement. Pure (Fluvio v0.17.3 semantics,
`reference/fluvio-wire.md` §8.2, `fluvio-storage.md` §12, §14)."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from fluvial import defaults as d

MAX_RESOURCE_NAME_CHARS = 63
_NAME = re.compile(r"^[a-z0-9-]+$")
PENDING_REASON = "waiting for live spus"


def name_problem(name: str) -> str | None:
    """Why `name` is not a valid topic name (Fluvio's `validate_resource_name`), or None."""
    if len(name) > MAX_RESOURCE_NAME_CHARS:
        return f"Name exceeds max characters allowed {MAX_RESOURCE_NAME_CHARS}"
    if not _NAME.match(name) or name.startswith("-") or name.endswith("-"):
        return "Contain only lowercase alphanumeric characters or '-'"
    return None


def invalid_name_message(name: str, problem: str) -> str:
    return f"Invalid topic name: '{name}'. {problem}"


def config_problem(retention_seconds: int | None, segment_size: int | None,
                   max_partition_size: int | None) -> str | None:
    """Fluvio's `TopicSpec::validate_config`: the first broken rule, as its message, or None."""
    if retention_seconds is not None and retention_seconds < d.RETENTION_MIN_SECONDS:
        return f"retention_secs {retention_seconds} is less than minimum {d.RETENTION_MIN_SECONDS}"
    if segment_size is not None and segment_size < d.SEGMENT_MIN_BYTES:
        return f"segment_size {segment_size} is less than minimum {d.SEGMENT_MIN_BYTES}"
    if max_partition_size is not None:
        if max_partition_size < d.PARTITION_MIN_BYTES:
            return f"max_partition_size {max_partition_size} is less than minimum {d.PARTITION_MIN_BYTES}"
        seg = segment_size if segment_size is not None else d.SEGMENT_MAX_BYTES
        if max_partition_size < seg:
            return f"max_partition_size {max_partition_size} is less than segment size {seg}"
    return None


def computed_problem(partitions: int, replication_factor: int) -> str | None:
    if partitions < 1:
        return "partition must be greater than 0"
    if replication_factor < 1:
        return "replication factor must be greater than 0"
    return None


@dataclass
class SchedulingGroups:
    """How many leaders and followers each SPU carries (from the existing partitions)."""

    leaders: dict[int, int] = field(default_factory=dict)
    followers: dict[int, int] = field(default_factory=dict)

    @classmethod
    def of(cls, replica_sets: Iterable[Sequence[int]]) -> SchedulingGroups:
        g = cls()
        for replicas in replica_sets:
            if replicas:
                g.leaders[replicas[0]] = g.leaders.get(replicas[0], 0) + 1
                for f in replicas[1:]:
                    g.followers[f] = g.followers.get(f, 0) + 1
        return g

    def pick(self, online: Sequence[int], reserved: Sequence[int], leader: bool) -> int | None:
        """The online SPU, not yet used by this partition, with the fewest leaders (or followers);
        ties go to the lowest id."""
        weights = self.leaders if leader else self.followers
        best = None
        for spu in online:
            if spu in reserved:
                continue
            if best is None or weights.get(spu, 0) < weights.get(best, 0):
                best = spu
        return best

    def add(self, spu: int, leader: bool) -> None:
        weights = self.leaders if leader else self.followers
        weights[spu] = weights.get(spu, 0) + 1


def place_replicas(
    partitions: int,
    replication_factor: int,
    online_spus: Iterable[int],
    groups: SchedulingGroups,
    existing: Mapping[int, Sequence[int]] | None = None,
) -> dict[int, list[int]]:
    """Replica map {partition: [leader, followers…]} over the online SPUs, or {} when it cannot be
    scheduled (fewer online SPUs than the replication factor). Existing partitions with the right
    number of replicas keep their assignment. Mutates `groups` with the new assignments."""
    online = sorted(online_spus)
    if len(online) < replication_factor:
        return {}
    out: dict[int, list[int]] = {}
    for p in range(partitions):
        if existing is not None and len(existing.get(p, ())) == replication_factor:
            out[p] = list(existing[p])
            continue
        chosen: list[int] = []
        for r in range(replication_factor):
            spu = groups.pick(online, chosen, leader=(r == 0))
            if spu is None:
                return {}
            chosen.append(spu)
            groups.add(spu, leader=(r == 0))
        out[p] = chosen
    return out


def partition_name(topic: str, partition: int) -> str:
    return f"{topic}-{partition}"


def parse_partition_name(name: str) -> tuple[str, int] | None:
    topic, sep, part = name.rpartition("-")
    if not sep or not topic or not part.isdigit():
        return None
    return topic, int(part)


def assigned_problem(maps: Sequence[tuple[int, Sequence[int]]]) -> str | None:
    """Fluvio's `PartitionMaps::validate` (`topic/spec.rs:509-580` of v0.17.3): the first broken rule of
    an explicit replica assignment [(partition id, SPU ids)], as its message, or None."""
    if not maps:
        return "no assigned partitions found"
    replica_len = 0
    for expected, (pid, replicas) in enumerate(maps):
        if expected == 0:
            if pid != 0:
                return "assigned partitions must start with id 0"
            replica_len = len(replicas)
            if replica_len == 0:
                return "assigned replicas must have at least one spu id"
        else:
            if pid != expected:
                return "assigned partition ids must be in sequence and without gaps"
            if len(replicas) != replica_len:
                return f"all assigned replicas must have the same number of spu ids: {replica_len}"
        if len(set(replicas)) != len(replicas):
            return f"duplicate spu ids found in assigned partition with id: {expected}"
        for spu in replicas:
            if spu < 0:
                return f"invalid spu id: {spu} in assigned partition with id: {expected}"
    return None


def unknown_spu_problem(maps: Sequence[tuple[int, Sequence[int]]], known: Iterable[int]) -> str | None:
    """Fluvio's `update_replica_map_for_assigned_topic`: every assigned SPU must be registered."""
    have = set(known)
    for _pid, replicas in maps:
        for spu in replicas:
            if spu not in have:
                return f"invalid spu id: {spu}"
    return None
