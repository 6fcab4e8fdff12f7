"""Transitions are counted by machine and target state."""

from __future__ import annotations

import enum

from prometheus_client import REGISTRY

from fluvial.observability.metrics import count_transition
from fluvial.statemachine import StateMachine


class S(enum.Enum):
    A = 1
    B = 2


def test_transitions_are_counted() -> None:
    m = StateMachine("test-machine", "x", {(S.A, "go"): S.B, (S.B, "back"): S.A}, S.A)
    m.add_listener(count_transition)
    before = REGISTRY.get_sample_value("fluvial_state_transitions_total", {"machine": "test-machine", "to_state": "B"})
    m.fire("go")
    m.fire("go")          # no row from B: nothing happens, nothing counted
    m.fire("back")
    m.fire("go")
    after = REGISTRY.get_sample_value("fluvial_state_transitions_total", {"machine": "test-machine", "to_state": "B"})
    assert (after or 0) - (before or 0) == 2
