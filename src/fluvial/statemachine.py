"""One small engine for every state machine: an Enum of states and one transition table.

`table[(state, event)] -> new_state`. An event that has no row for the current state changes nothing.
Each transition happens under a lock, is logged exactly once, and is handed to every listener (the SPU
reports it to the SC, metrics count it).
"""

from __future__ import annotations

import contextlib
import enum
import logging
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Transition:
    machine: str           # kind of machine, e.g. "replica", "data_dir"
    subject: str           # which one, e.g. "topic-0" or a path
    old: enum.Enum
    new: enum.Enum
    event: str
    detail: Mapping[str, Any] = field(default_factory=dict)


Listener = Callable[[Transition], object]   # may return a follower's Transition


class StateMachine:
    def __init__(
        self,
        machine: str,
        subject: str,
        table: Mapping[tuple[enum.Enum, str], enum.Enum],
        initial: enum.Enum,
        level_of: Callable[[enum.Enum], int] | None = None,
    ) -> None:
        self.machine = machine
        self.subject = subject
        self._table = table
        self._state = initial
        self._lock = threading.Lock()
        self._listeners: list[Listener] = []
        self._level_of = level_of or (lambda _s: logging.WARNING)
        self.transitions = 0

    @property
    def state(self) -> enum.Enum:
        return self._state

    def add_listener(self, listener: Listener) -> None:
        self._listeners.append(listener)

    def remove_listener(self, listener: Listener) -> None:
        with contextlib.suppress(ValueError):
            self._listeners.remove(listener)

    def fire(self, event: str, *, quiet: bool = False, **detail: Any) -> Transition | None:
        """Apply `event`. The transition is handed to every listener, then logged once. A listener that
        moves a machine of its own because of it (a replica following its data dir) returns that
        `Transition`: such followers are counted in this line (`followers=N`) and fire with `quiet=True`,
        so one change of a data dir is one line however many replicas it holds."""
        with self._lock:
            old = self._state
            new = self._table.get((old, event))
            if new is None or new is old:
                return None
            self._state = new
            self.transitions += 1
            t = Transition(self.machine, self.subject, old, new, event, detail)
        followers = 0
        try:
            for listener in list(self._listeners):
                if isinstance(listener(t), Transition):
                    followers += 1
        finally:   # logged even if a listener fails: the transition has happened
            if not quiet:
                extra = " ".join(f"{k}={v}" for k, v in detail.items())
                if followers:
                    extra += f" followers={followers}"
                logger.log(
                    self._level_of(new), "state_change machine=%s subject=%s from=%s to=%s event=%s %s",
                    self.machine, self.subject, old.name, new.name, event, extra,
                )
        return t
