"""SC topic rules: names, configs, placement (table-driven)."""

from __future__ import annotations

import pytest

from fluvial.sc.topics import (
    SchedulingGroups,
    assigned_problem,
    computed_problem,
    config_problem,
    name_problem,
    parse_partition_name,
    place_replicas,
    unknown_spu_problem,
)


@pytest.mark.parametrize(
    ("name", "problem"),
    [
        ("orders", None), ("a", None), ("my-topic-1", None), ("0abc", None), ("a" * 63, None),
        ("a" * 64, "Name exceeds max characters allowed 63"),
        ("Orders", "Contain only lowercase alphanumeric characters or '-'"),
        ("-x", "Contain only lowercase alphanumeric characters or '-'"),
        ("x-", "Contain only lowercase alphanumeric characters or '-'"),
        ("a b", "Contain only lowercase alphanumeric characters or '-'"),
        ("a_b", "Contain only lowercase alphanumeric characters or '-'"),
        ("a.b", "Contain only lowercase alphanumeric characters or '-'"),
        ("", "Contain only lowercase alphanumeric characters or '-'"),
        ("é", "Contain only lowercase alphanumeric characters or '-'"),
    ],
)
def test_names(name: str, problem: str | None) -> None:
    assert name_problem(name) == problem


@pytest.mark.parametrize(
    ("retention", "segment", "max_size", "problem"),
    [
        (None, None, None, None),
        (10, 1024, 2048, None),
        (9, None, None, "retention_secs 9 is less than minimum 10"),
        (None, 1023, None, "segment_size 1023 is less than minimum 1024"),
        (None, None, 2047, "max_partition_size 2047 is less than minimum 2048"),
        (None, 4096, 4000, "max_partition_size 4000 is less than segment size 4096"),
        (None, None, 10_000_000, "max_partition_size 10000000 is less than segment size 1073741824"),
        (None, None, 1 << 30, None),
        (5, 10, 10, "retention_secs 5 is less than minimum 10"),          # first broken rule wins
    ],
)
def test_configs(retention: int | None, segment: int | None, max_size: int | None, problem: str | None) -> None:
    assert config_problem(retention, segment, max_size) == problem


@pytest.mark.parametrize(
    ("partitions", "replication", "problem"),
    [(1, 1, None), (0, 1, "partition must be greater than 0"), (1, 0, "replication factor must be greater than 0")],
)
def test_computed(partitions: int, replication: int, problem: str | None) -> None:
    assert computed_problem(partitions, replication) == problem


@pytest.mark.parametrize(
    ("partitions", "rf", "online", "existing_sets", "expected"),
    [
        (1, 1, [5001], [], {0: [5001]}),
        (3, 1, [5003, 5001, 5002], [], {0: [5001], 1: [5002], 2: [5003]}),
        (3, 3, [5001, 5002, 5003], [], {0: [5001, 5002, 5003], 1: [5002, 5001, 5003], 2: [5003, 5001, 5002]}),
        (2, 2, [5001, 5002, 5003], [[5001, 5002]], {0: [5002, 5001], 1: [5003, 5001]}),
        (1, 2, [5001], [], {}),                                    # not enough SPUs: unscheduled
        (4, 1, [5001, 5002], [], {0: [5001], 1: [5002], 2: [5001], 3: [5002]}),
    ],
)
def test_placement(partitions: int, rf: int, online: list[int], existing_sets: list[list[int]],
                   expected: dict[int, list[int]]) -> None:
    groups = SchedulingGroups.of(existing_sets)
    assert place_replicas(partitions, rf, online, groups) == expected


def test_placement_keeps_existing_assignments() -> None:
    groups = SchedulingGroups()
    assert place_replicas(2, 1, [5001, 5002], groups, existing={0: [5002]}) == {0: [5002], 1: [5001]}


def test_placement_never_repeats_an_spu_in_a_partition() -> None:
    for n in range(1, 6):
        groups = SchedulingGroups()
        spus = list(range(5001, 5001 + n))
        for p, replicas in place_replicas(10, n, spus, groups).items():
            assert sorted(replicas) == spus, p


@pytest.mark.parametrize(("name", "parsed"), [("t-0", ("t", 0)), ("my-topic-12", ("my-topic", 12)), ("t", None),
                                              ("t-x", None)])
def test_partition_names(name: str, parsed: tuple[str, int] | None) -> None:
    assert parse_partition_name(name) == parsed


@pytest.mark.parametrize(
    ("maps", "problem"),            # fluvio topic/spec.rs tests (test_replica_map_ids / _spu_ids) of v0.17.3
    [
        ([(0, [1]), (1, [1]), (2, [2])], None),
        ([], "no assigned partitions found"),
        ([(1, [0]), (2, [2])], "assigned partitions must start with id 0"),
        ([(0, [0]), (2, [2])], "assigned partition ids must be in sequence and without gaps"),
        ([(0, [0]), (2, [2]), (1, [1])], "assigned partition ids must be in sequence and without gaps"),
        ([(0, [0]), (1, [1]), (1, [1])], "assigned partition ids must be in sequence and without gaps"),
        ([(0, []), (1, [1])], "assigned replicas must have at least one spu id"),
        ([(0, [1, 2]), (1, [1])], "all assigned replicas must have the same number of spu ids: 2"),
        ([(0, [1, 2]), (1, [1, 1])], "duplicate spu ids found in assigned partition with id: 1"),
        ([(0, [3, 1, 2, 3])], "duplicate spu ids found in assigned partition with id: 0"),
        ([(0, [1, 2]), (1, [1, -2])], "invalid spu id: -2 in assigned partition with id: 1"),
    ],
)
def test_assigned_problem(maps: list[tuple[int, list[int]]], problem: str | None) -> None:
    assert assigned_problem(maps) == problem


def test_unknown_spu_problem() -> None:
    assert unknown_spu_problem([(0, [5001, 5002])], [5001, 5002, 5003]) is None
    assert unknown_spu_problem([(0, [5001]), (1, [5009])], [5001]) == "invalid spu id: 5009"


def test_place_replicas_keeps_existing_and_balances_new() -> None:
    existing = {0: [1, 2]}
    groups = SchedulingGroups.of(existing.values())
    out = place_replicas(3, 2, [1, 2, 3], groups, existing)
    assert out[0] == [1, 2] and {out[1][0], out[2][0]} == {2, 3} and all(len(set(r)) == 2 for r in out.values())
