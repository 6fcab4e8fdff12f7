"""Leader election, in-sync sets and placement eligibility: the SC's pure reducers.

Input: a snapshot of one partition (`PartitionView`) and of the SPUs (`SpuView`); output: what should
change (`Decision`). The replication controller (`sc/replication.py`) applies decisions to the stores.
No I/O, no clock: every rule is a table test (`tests/unit/sc/test_election.py`).

Rules (docs/servers.md "Leader election"):

* A replica is *healthy* when its SPU is online, no data dir of that SPU is FULL or FAILED, and the
  replica itself last reported OK.
* The leader keeps leading while it is healthy. Otherwise the new leader is the healthy ISR member with
  the highest LEO (ties: the order of the replica list — the preferred leader first); the epoch goes up
  by one and the old leader leaves the ISR. No healthy ISR member: the partition stays where it is,
  `LeaderOffline` (SPU gone) or `OutOfStorage` (leader FULL/FAILED) — unless the topic allows unclean
  election, which takes any healthy replica (records the ISR had can be lost: documented).
* A partition `LeaderOffline` whose leader SPU comes back healthy is led by it again under a new epoch.
* The confirmed ISR only ever grows from the leader's own proposal (the leader knows who caught up);
  the SC drops members whose SPU is offline or whose replica or data dir is FULL/FAILED. The leader is
  always a member, and the last member is never dropped (it is where the committed records are).
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from fluvial.protocol.internal import DirStateCode, ReplicaStateCode


class Resolution(enum.Enum):
    """What the controller should set (mapped onto Fluvio's PartitionResolution by the caller)."""

    ONLINE = "online"
    LEADER_OFFLINE = "leader_offline"
    OUT_OF_STORAGE = "out_of_storage"


@dataclass(frozen=True)
class SpuView:
    online: bool
    dir_state: DirStateCode = DirStateCode.OK        # worst data dir of the SPU


@dataclass(frozen=True)
class PartitionView:
    leader: int
    replicas: tuple[int, ...]
    epoch: int
    isr: tuple[int, ...]                                          # confirmed, leader included
    replica_states: Mapping[int, ReplicaStateCode] = field(default_factory=dict)   # last report per SPU
    leos: Mapping[int, int] = field(default_factory=dict)         # last LEO per SPU
    unclean: bool = False


@dataclass(frozen=True)
class Decision:
    leader: int
    epoch: int
    isr: tuple[int, ...]
    resolution: Resolution | None      # None: leave the status to the leader's reports
    reason: str = ""

    def changes(self, p: PartitionView) -> bool:
        return (self.leader, self.epoch, self.isr) != (p.leader, p.epoch, p.isr) or self.resolution is not None


def healthy(spu_id: int, p: PartitionView, spus: Mapping[int, SpuView]) -> bool:
    s = spus.get(spu_id)
    if s is None or not s.online or s.dir_state in (DirStateCode.FULL, DirStateCode.FAILED):
        return False
    return p.replica_states.get(spu_id, ReplicaStateCode.OK) is ReplicaStateCode.OK


def placeable(spus: Mapping[int, SpuView]) -> list[int]:
    """SPUs new replicas may go to: online, no data dir FULL or FAILED (one rule with election)."""
    return sorted(i for i, s in spus.items() if s.online and s.dir_state not in (DirStateCode.FULL,
                                                                                  DirStateCode.FAILED))


def _ranked(candidates: Sequence[int], p: PartitionView) -> list[int]:
    order = {spu: i for i, spu in enumerate(p.replicas)}
    return sorted(candidates, key=lambda s: (-p.leos.get(s, -1), order.get(s, len(order))))


def shrink_isr(isr: Sequence[int], leader: int, p: PartitionView, spus: Mapping[int, SpuView]) -> tuple[int, ...]:
    """Drop unhealthy members (never the leader, never the last member); keep the replica-list order."""
    keep = [r for r in isr if r == leader or healthy(r, p, spus)]
    if leader not in keep:
        keep.insert(0, leader)
    order = {spu: i for i, spu in enumerate(p.replicas)}
    keep = sorted(set(keep), key=lambda s: (s != leader, order.get(s, len(order))))
    return tuple(keep)


def elect(p: PartitionView, spus: Mapping[int, SpuView]) -> Decision:
    """The partition's leader, epoch, ISR and resolution after this snapshot."""
    if healthy(p.leader, p, spus):
        return Decision(p.leader, p.epoch, shrink_isr(p.isr, p.leader, p, spus), None)
    candidates = _ranked([r for r in p.isr if r != p.leader and healthy(r, p, spus)], p)
    leader_online = spus.get(p.leader) is not None and spus[p.leader].online
    if candidates:
        new = candidates[0]
        isr = shrink_isr([r for r in p.isr if r != p.leader], new, p, spus)
        return Decision(new, p.epoch + 1, isr, Resolution.ONLINE,
                        f"leader {p.leader} {'unhealthy' if leader_online else 'offline'}")
    if p.unclean:
        others = _ranked([r for r in p.replicas if r != p.leader and healthy(r, p, spus)], p)
        if others:
            return Decision(others[0], p.epoch + 1, (others[0],), Resolution.ONLINE, "unclean election")
    return Decision(p.leader, p.epoch, tuple(p.isr),
                    Resolution.OUT_OF_STORAGE if leader_online else Resolution.LEADER_OFFLINE,
                    "no healthy in-sync replica")


def returning_leader(p: PartitionView, spus: Mapping[int, SpuView], was_offline: bool) -> Decision | None:
    """A partition that was LeaderOffline whose leader is healthy again: same leader, next epoch."""
    if was_offline and healthy(p.leader, p, spus):
        return Decision(p.leader, p.epoch + 1, shrink_isr(p.isr, p.leader, p, spus), Resolution.ONLINE,
                        f"leader {p.leader} back")
    return None


def accept_isr(proposed: Sequence[int], p: PartitionView, spus: Mapping[int, SpuView]) -> tuple[int, ...]:
    """The leader's proposed ISR (from its report in the current epoch), members of the replica set only,
    filtered by health."""
    members = [r for r in proposed if r in p.replicas]
    return shrink_isr(members, p.leader, p, spus)


def preferred_election(p: PartitionView, spus: Mapping[int, SpuView], target: int | None) -> Decision | str:
    """`fluvial partition elect-leader`: move leadership to `target` (default: the preferred replica, the
    first of the replica list) when it is a healthy ISR member. A string says why not."""
    want = p.replicas[0] if target is None else target
    if want not in p.replicas:
        return f"SPU {want} holds no replica of this partition (replicas {list(p.replicas)})"
    if want == p.leader:
        return f"SPU {want} already leads this partition"
    if want not in p.isr:
        return f"SPU {want} is not in sync (in-sync replicas {list(p.isr)})"
    if not healthy(want, p, spus):
        return f"SPU {want} is offline or its storage is full or failed"
    return Decision(want, p.epoch + 1, shrink_isr(p.isr, want, p, spus), Resolution.ONLINE, "preferred leader")


def lsr_count(leader_leo: int, follower_leos: Mapping[int, int]) -> int:
    """Fluvio's `lsr`: followers whose LEO equals the leader's."""
    return sum(1 for leo in follower_leos.values() if leo == leader_leo)


__all__ = ["Decision", "PartitionView", "Resolution", "SpuView", "accept_isr", "elect", "healthy", "lsr_count",
           "placeable", "preferred_election", "returning_leader", "shrink_isr"]
