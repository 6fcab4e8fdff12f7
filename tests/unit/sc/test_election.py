"""The SC's election reducers as tables: leader loss with 0/1/2 caught-up followers, every replica lost, a
FULL or FAILED leader with a healthy follower, a flapping SPU, simultaneous failures, unclean election,
a returning leader, ISR proposals, preferred-leader election, placement eligibility."""

from __future__ import annotations

import pytest

from fluvial.protocol.internal import DirStateCode as D
from fluvial.protocol.internal import ReplicaStateCode as R
from fluvial.sc import election as el

ON, OFF = el.SpuView(True), el.SpuView(False)
FULL_DIR, FAILED_DIR = el.SpuView(True, D.FULL), el.SpuView(True, D.FAILED)
ALL_ON = {1: ON, 2: ON, 3: ON}


def part(leader: int = 1, isr: tuple[int, ...] = (1, 2, 3), epoch: int = 4, leos: dict[int, int] | None = None,
         states: dict[int, R] | None = None, unclean: bool = False) -> el.PartitionView:
    return el.PartitionView(leader, (1, 2, 3), epoch, isr, states or {}, leos or {1: 100, 2: 100, 3: 100},
                            unclean)


# (case, partition, spus) -> (leader, epoch, isr, resolution)
ELECTIONS = [
    ("healthy leader keeps leading", part(), ALL_ON, (1, 4, (1, 2, 3), None)),
    ("leader lost, 2 caught-up followers: most caught up, then replica order",
     part(leos={1: 100, 2: 90, 3: 95}), {1: OFF, 2: ON, 3: ON}, (3, 5, (3, 2), el.Resolution.ONLINE)),
    ("leader lost, tie on LEO: replica order", part(), {1: OFF, 2: ON, 3: ON}, (2, 5, (2, 3), el.Resolution.ONLINE)),
    ("leader lost, 1 in-sync follower", part(isr=(1, 3)), {1: OFF, 2: ON, 3: ON},
     (3, 5, (3,), el.Resolution.ONLINE)),
    ("leader lost, 0 in-sync followers: stays offline (no unclean election)", part(isr=(1,)),
     {1: OFF, 2: ON, 3: ON}, (1, 4, (1,), el.Resolution.LEADER_OFFLINE)),
    ("leader lost, 0 in-sync followers, unclean allowed: most caught-up replica",
     part(isr=(1,), unclean=True, leos={1: 100, 2: 50, 3: 70}), {1: OFF, 2: ON, 3: ON},
     (3, 5, (3,), el.Resolution.ONLINE)),
    ("every replica lost", part(), {1: OFF, 2: OFF, 3: OFF}, (1, 4, (1, 2, 3), el.Resolution.LEADER_OFFLINE)),
    ("simultaneous: leader and one follower lost", part(), {1: OFF, 2: OFF, 3: ON},
     (3, 5, (3,), el.Resolution.ONLINE)),
    ("FULL leader replica, healthy follower", part(states={1: R.FULL}), ALL_ON, (2, 5, (2, 3), el.Resolution.ONLINE)),
    ("FAILED leader replica, healthy follower", part(states={1: R.FAILED}), ALL_ON,
     (2, 5, (2, 3), el.Resolution.ONLINE)),
    ("leader's data dir FULL", part(), {1: FULL_DIR, 2: ON, 3: ON}, (2, 5, (2, 3), el.Resolution.ONLINE)),
    ("FULL leader, no healthy in-sync follower: OutOfStorage",
     part(states={1: R.FULL}, isr=(1, 2)), {1: ON, 2: FAILED_DIR, 3: ON},
     (1, 4, (1, 2), el.Resolution.OUT_OF_STORAGE)),
    ("follower's dir FAILED: leaves the ISR", part(), {1: ON, 2: FAILED_DIR, 3: ON}, (1, 4, (1, 3), None)),
    ("follower offline: leaves the ISR", part(), {1: ON, 2: OFF, 3: ON}, (1, 4, (1, 3), None)),
    ("follower replica FULL: leaves the ISR", part(states={3: R.FULL}), ALL_ON, (1, 4, (1, 2), None)),
    ("unknown SPU counts as offline", part(), {1: ON, 2: ON}, (1, 4, (1, 2), None)),
]


@pytest.mark.parametrize("case, p, spus, expected", ELECTIONS, ids=[c[0] for c in ELECTIONS])
def test_elect(case: str, p: el.PartitionView, spus: dict[int, el.SpuView],
               expected: tuple[int, int, tuple[int, ...], el.Resolution | None]) -> None:
    d = el.elect(p, spus)
    assert (d.leader, d.epoch, d.isr, d.resolution) == expected, case


def test_flapping_spu_never_takes_leadership_back_by_itself() -> None:
    """Leader 1 lost → 2 leads; 1 returns healthy: 2 keeps leading (no flapping), 1 is not in the ISR until
    the leader proposes it; only a preferred-leader election moves leadership back."""
    first = el.elect(part(), {1: OFF, 2: ON, 3: ON})
    after = el.PartitionView(first.leader, (1, 2, 3), first.epoch, first.isr, {}, {1: 100, 2: 100, 3: 100})
    again = el.elect(after, ALL_ON)
    assert (again.leader, again.epoch, again.isr) == (2, 5, (2, 3))
    assert el.returning_leader(after, ALL_ON, was_offline=False) is None
    proposed = el.accept_isr([2, 3, 1], after, ALL_ON)
    assert proposed == (2, 1, 3)
    back = el.PartitionView(2, (1, 2, 3), 5, proposed, {}, {1: 100, 2: 100, 3: 100})
    moved = el.preferred_election(back, ALL_ON, None)
    assert isinstance(moved, el.Decision) and (moved.leader, moved.epoch) == (1, 6)


def test_returning_leader_of_an_offline_partition_leads_under_a_new_epoch() -> None:
    p = part(isr=(1,))
    assert el.elect(p, {1: OFF, 2: ON, 3: ON}).resolution is el.Resolution.LEADER_OFFLINE
    d = el.returning_leader(p, ALL_ON, was_offline=True)
    assert d is not None and (d.leader, d.epoch, d.resolution) == (1, 5, el.Resolution.ONLINE)
    assert el.returning_leader(p, {1: FULL_DIR, 2: ON, 3: ON}, was_offline=True) is None


@pytest.mark.parametrize("proposed, spus, expected", [
    ([1, 2, 3], ALL_ON, (1, 2, 3)),
    ([1], ALL_ON, (1,)),                                 # the leader shrank the ISR
    ([1, 2, 3, 9], ALL_ON, (1, 2, 3)),                   # not a replica: ignored
    ([2, 3], ALL_ON, (1, 2, 3)),                         # the leader is always a member
    ([1, 2, 3], {1: ON, 2: OFF, 3: ON}, (1, 3)),        # offline SPUs are never added
])
def test_accept_isr(proposed: list[int], spus: dict[int, el.SpuView], expected: tuple[int, ...]) -> None:
    assert el.accept_isr(proposed, part(), spus) == expected


@pytest.mark.parametrize("target, isr, spus, ok", [
    (None, (2, 1, 3), ALL_ON, True),
    (3, (2, 1, 3), ALL_ON, True),
    (2, (2, 1, 3), ALL_ON, False),                       # already leads
    (1, (2, 3), ALL_ON, False),                          # not in sync
    (1, (2, 1, 3), {1: FULL_DIR, 2: ON, 3: ON}, False),  # unhealthy
    (7, (2, 1, 3), ALL_ON, False),                       # not a replica
])
def test_preferred_election(target: int | None, isr: tuple[int, ...], spus: dict[int, el.SpuView], ok: bool) -> None:
    p = el.PartitionView(2, (1, 2, 3), 5, isr, {}, {1: 10, 2: 10, 3: 10})
    d = el.preferred_election(p, spus, target)
    assert isinstance(d, el.Decision) is ok
    if ok:
        assert d.epoch == 6 and d.leader == (1 if target is None else target)


def test_placement_skips_offline_full_and_failed_spus() -> None:
    spus = {1: ON, 2: OFF, 3: FULL_DIR, 4: FAILED_DIR, 5: el.SpuView(True, D.LOW)}
    assert el.placeable(spus) == [1, 5]


def test_lsr_counts_followers_at_the_leaders_leo() -> None:
    assert el.lsr_count(10, {2: 10, 3: 9}) == 1
    assert el.lsr_count(10, {}) == 0
