"""Prometheus metrics of a fluvial process (served by `--metrics-addr`)."""

from __future__ import annotations

from prometheus_client import Counter

from fluvial.statemachine import Transition

STATE_TRANSITIONS = Counter("fluvial_state_transitions_total", "State machine transitions",
                            ["machine", "to_state"])
PRODUCED_RECORDS = Counter("fluvial_produced_records_total", "Records appended by produce requests")
PRODUCED_BYTES = Counter("fluvial_produced_bytes_total", "Batch bytes appended by produce requests")
PRODUCE_ERRORS = Counter("fluvial_produce_errors_total", "Produce partition entries answered with an error",
                         ["code"])
PRODUCE_DUPLICATES = Counter("fluvial_produce_duplicate_batches_total",
                             "Exact retries of an idempotent producer's batches: acknowledged, not written again")


def count_transition(t: Transition) -> None:
    """A state-machine listener: count every transition by machine and target state."""
    STATE_TRANSITIONS.labels(t.machine, t.new.name).inc()
