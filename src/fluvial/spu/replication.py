"""Leader-side replication state of one partition: follower progress, the in-sync set, the high watermark.
Pure — no sockets, no files, no clock of its own (callers pass monotonic `now`).

Rules (docs/servers.md "Replication"):

* A follower's fetch offset is its LEO report. It is *caught up* at the time of a fetch response if its
  next fetch starts at or beyond the leader's LEO as of that response (Kafka's lastCaughtUpTime), or at
  once when it fetches at the leader's current LEO.
* In sync (local view): caught up within `lag_seconds`, connected, and its disk neither FULL nor FAILED.
  A follower out of sync rejoins once it has fetched at or beyond the HW and is caught up again.
* The HW counts the *effective* set = the ISR the SC confirmed ∪ the local view. A follower the leader
  dropped keeps holding the HW back until the SC has confirmed the shrink, so the SC never elects a
  replica that lacks a record the leader called committed; a follower the leader added counts at once
  (that can only hold the HW lower).
* HW = min(leader LEO, LEO of every effective member); it never moves backwards.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

FOLLOWER_OK = 0
FOLLOWER_FULL = 1
FOLLOWER_FAILED = 2


@dataclass
class FollowerProgress:
    spu_id: int
    leo: int = -1                     # from its last fetch; -1: never fetched
    last_caught_up: float = -1.0      # monotonic; -1: never
    leo_at_last_response: int = -1    # the leader's LEO when it last answered this follower
    last_response_at: float = -1.0
    connected: bool = False
    disk_state: int = FOLLOWER_OK


@dataclass
class LeaderState:
    """What the leader of one partition knows about its followers."""

    leader_id: int
    followers: dict[int, FollowerProgress] = field(default_factory=dict)
    confirmed_isr: frozenset[int] = frozenset()      # from the SC (assignment), leader included
    in_sync: set[int] = field(default_factory=set)   # local view, followers only
    lag_seconds: float = 5.0

    @classmethod
    def for_assignment(cls, leader_id: int, replicas: Iterable[int], isr: Iterable[int], lag_seconds: float,
                       now: float) -> LeaderState:
        """A new leader starts from the SC's confirmed ISR: those followers get one lag time to show up."""
        state = cls(leader_id, lag_seconds=lag_seconds)
        state.update_assignment(replicas, isr, now)
        state.in_sync = {f for f in state.confirmed_isr if f != leader_id}
        for f in state.in_sync:
            state.followers[f].last_caught_up = now
        return state

    def update_assignment(self, replicas: Iterable[int], isr: Iterable[int], now: float) -> None:
        wanted = [r for r in replicas if r != self.leader_id]
        for f in wanted:
            self.followers.setdefault(f, FollowerProgress(f))
        for f in list(self.followers):
            if f not in wanted:
                del self.followers[f]
                self.in_sync.discard(f)
        self.confirmed_isr = frozenset(r for r in isr if r == self.leader_id or r in self.followers)

    # --------------------------------------------------------------------------------- fetches

    def on_fetch(self, follower: int, fetch_offset: int, leader_leo: int, hw: int, disk_state: int,
                 now: float) -> bool:
        """Record a follower's fetch (its LEO report). Returns whether the local ISR changed."""
        p = self.followers.get(follower)
        if p is None:
            return False
        p.leo = fetch_offset
        p.connected = True
        p.disk_state = disk_state
        if fetch_offset >= leader_leo:
            p.last_caught_up = now
        elif p.leo_at_last_response >= 0 and fetch_offset >= p.leo_at_last_response:
            p.last_caught_up = max(p.last_caught_up, p.last_response_at)
        before = follower in self.in_sync
        after = self._eligible(p, hw, now, joined=before)
        if after != before:
            (self.in_sync.add if after else self.in_sync.discard)(follower)
        return after != before

    def on_response(self, follower: int, leader_leo: int, now: float) -> None:
        p = self.followers.get(follower)
        if p is not None:
            p.leo_at_last_response = leader_leo
            p.last_response_at = now

    def on_disconnect(self, follower: int) -> bool:
        p = self.followers.get(follower)
        if p is None:
            return False
        p.connected = False
        if follower in self.in_sync:
            self.in_sync.discard(follower)
            return True
        return False

    def expire(self, now: float) -> bool:
        """Drop followers that have not caught up within the lag time. Returns whether the ISR changed."""
        gone = [f for f in self.in_sync if now - self.followers[f].last_caught_up > self.lag_seconds]
        for f in gone:
            self.in_sync.discard(f)
        return bool(gone)

    def _eligible(self, p: FollowerProgress, hw: int, now: float, *, joined: bool) -> bool:
        if not p.connected or p.disk_state != FOLLOWER_OK:
            return False
        if now - p.last_caught_up > self.lag_seconds:
            return False
        return joined or p.leo >= hw

    # ------------------------------------------------------------------------------------ views

    @property
    def isr(self) -> list[int]:
        """The local in-sync set, leader first."""
        return [self.leader_id, *sorted(self.in_sync)]

    def effective(self) -> set[int]:
        return (set(self.confirmed_isr) | self.in_sync) - {self.leader_id}

    def high_watermark(self, leader_leo: int, current_hw: int) -> int:
        """HW over the effective set (never backwards)."""
        hw = leader_leo
        for f in self.effective():
            p = self.followers.get(f)
            hw = min(hw, p.leo if p is not None and p.leo >= 0 else current_hw)
        return max(current_hw, hw)



__all__ = ["FOLLOWER_FAILED", "FOLLOWER_FULL", "FOLLOWER_OK", "FollowerProgress", "LeaderState"]
