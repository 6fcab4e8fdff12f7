"""The leader's replication state as tables: the HW rule over the effective set (confirmed ISR ∪ local),
ISR shrink by lag, disconnect and a follower's FULL/FAILED disk, rejoin once caught up, lease-free clocks
passed in (no real time)."""

from __future__ import annotations

import pytest

from fluvial.spu.replication import FOLLOWER_FAILED, FOLLOWER_FULL, FOLLOWER_OK, LeaderState

LAG = 5.0


def leader(isr: tuple[int, ...] = (1, 2, 3), now: float = 0.0) -> LeaderState:
    return LeaderState.for_assignment(1, [1, 2, 3], isr, LAG, now)


@pytest.mark.parametrize("leos, leader_leo, hw, expected", [
    ({2: 10, 3: 10}, 10, 0, 10),
    ({2: 7, 3: 9}, 10, 0, 7),                 # every member must hold it
    ({2: 7, 3: 9}, 10, 8, 8),                 # never backwards
    ({2: 12, 3: 12}, 10, 0, 10),              # never beyond the leader's LEO
])
def test_high_watermark_table(leos: dict[int, int], leader_leo: int, hw: int, expected: int) -> None:
    s = leader()
    for f, leo in leos.items():
        s.on_fetch(f, leo, leader_leo, hw, FOLLOWER_OK, 0.1)
    assert s.high_watermark(leader_leo, hw) == expected


def test_a_follower_that_never_fetched_holds_the_hw() -> None:
    s = leader()
    s.on_fetch(2, 10, 10, 0, FOLLOWER_OK, 0.1)
    assert s.high_watermark(10, 3) == 3


def test_shrink_by_lag_needs_sc_confirmation_before_the_hw_moves() -> None:
    s = leader()
    s.on_fetch(2, 10, 10, 0, FOLLOWER_OK, 0.1)
    s.on_fetch(3, 4, 10, 0, FOLLOWER_OK, 0.1)
    s.on_response(3, 10, 0.1)
    assert not s.expire(LAG)                      # 3 was caught up when the leader took over (time 0)
    s.on_fetch(2, 10, 10, 0, FOLLOWER_OK, LAG + 0.1)   # 2 keeps fetching at the LEO; 3 stays at 4
    assert s.expire(LAG + 0.2)                    # 3: not caught up within the lag time
    assert s.isr == [1, 2]
    assert s.high_watermark(10, 4) == 4           # the SC still lists 3: it holds the HW
    s.update_assignment([1, 2, 3], [1, 2], LAG + 0.3)
    assert s.high_watermark(10, 4) == 10          # confirmed: the HW moves


def test_caught_up_by_fetching_what_the_last_response_offered() -> None:
    """Under steady load the leader's LEO is always ahead of a fetch; a follower that fetches at the LEO
    of the previous response counts as caught up at the time of that response (Kafka's rule)."""
    s = leader()
    t = 0.0
    leo = 0
    for _ in range(100):
        s.on_fetch(2, leo, leo + 5, 0, FOLLOWER_OK, t)   # always 5 behind at fetch time
        s.on_response(2, leo + 5, t)
        leo += 5
        t += 0.5
        s.expire(t)
    assert 2 in s.in_sync


def test_disconnect_and_full_or_failed_disk_leave_at_once() -> None:
    s = leader()
    for f in (2, 3):
        s.on_fetch(f, 0, 0, 0, FOLLOWER_OK, 0.1)
    assert s.on_disconnect(2) and s.isr == [1, 3]
    assert s.on_fetch(3, 0, 0, 0, FOLLOWER_FULL, 0.2) and s.isr == [1]
    assert not s.on_fetch(3, 0, 0, 0, FOLLOWER_FAILED, 0.3)


def test_rejoin_once_caught_up_to_the_hw() -> None:
    s = leader(isr=(1,))
    assert s.isr == [1]
    assert not s.on_fetch(2, 3, 10, 8, FOLLOWER_OK, 1.0)    # behind the HW: not yet
    s.on_response(2, 10, 1.0)
    assert s.on_fetch(2, 10, 12, 10, FOLLOWER_OK, 1.1)      # at the last offered LEO and >= HW: back in
    assert s.isr == [1, 2]


def test_assignment_change_drops_removed_followers() -> None:
    s = leader()
    s.update_assignment([1, 2, 4], [1, 2], 1.0)
    assert set(s.followers) == {2, 4} and 3 not in s.in_sync
