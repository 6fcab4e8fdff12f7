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


Listener = Callable[[Transition], None]


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

    def fire(self, event: str, **detail: Any) -> Transition | None:
        with self._lock:
            old = self._state
            new = self._table.get((old, event))
            if new is None or new is old:
                return None
            self._state = new
            self.transitions += 1
            t = Transition(self.machine, self.subject, old, new, event, detail)
        extra = " ".join(f"{k}={v}" for k, v in detail.items())
        logger.log(
            self._level_of(new), "state_change machine=%s subject=%s from=%s to=%s event=%s %s",
            self.machine, self.subject, old.name, new.name, event, extra,
        )
        for listener in self._listeners:
            listener(t)
        return t
