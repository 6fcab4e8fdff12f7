"""The SC's view of cluster health as tables: each SPU online / degraded / offline with its reason, and
the active alerts (names as in deploy/prometheus/alerts.yml)."""

from __future__ import annotations

import pytest

from fluvial.protocol import internal as i
from fluvial.sc.health import SpuState, alerts, spu_state

MIB = 2**20


def dir_(state: i.DirStateCode, free: int = 5 * MIB) -> i.DataDirReport:
    return i.DataDirReport("/d/spu-logs-1", state, free, 100 * MIB, MIB)


def rep(state: i.ReplicaStateCode, name: str = "t") -> i.ReplicaReport:
    return i.ReplicaReport(name, 0, True, 0, 0, 0, 0, state)


@pytest.mark.parametrize("online, dirs, replicas, state, reason_has", [
    (False, [], [], SpuState.OFFLINE, "not connected"),
    (True, [dir_(i.DirStateCode.OK)], [rep(i.ReplicaStateCode.OK)], SpuState.ONLINE, ""),
    (True, [dir_(i.DirStateCode.LOW)], [], SpuState.ONLINE, ""),                 # LOW is a warning, not DEGRADED
    (True, [dir_(i.DirStateCode.FULL, 0)], [], SpuState.DEGRADED, "data dir /d/spu-logs-1 FULL (0.0 MiB free"),
    (True, [dir_(i.DirStateCode.FAILED)], [], SpuState.DEGRADED, "FAILED"),
    (True, [dir_(i.DirStateCode.OK)], [rep(i.ReplicaStateCode.FAILED, "x")], SpuState.DEGRADED,
     "1 replica(s) FULL or FAILED: x-0"),
])
def test_spu_state(online: bool, dirs: list[i.DataDirReport], replicas: list[i.ReplicaReport], state: SpuState,
                   reason_has: str) -> None:
    got, reason = spu_state(online, dirs, replicas)
    assert got is state and reason_has in reason
    assert bool(reason) is (state is not SpuState.ONLINE)


def test_alerts() -> None:
    got = alerts([(2, True, [dir_(i.DirStateCode.FULL)]), (1, False, []), (3, True, [dir_(i.DirStateCode.LOW)]),
                  (4, True, [dir_(i.DirStateCode.OK)])],
                 [("t-0", "OUT_OF_STORAGE")], "the SC cannot write its metadata")
    assert [(a.severity, a.name, a.subject) for a in got] == [
        ("critical", "FluvialSpuOffline", "spu 1"),
        ("critical", "FluvialDataDirFull", "spu 2 /d/spu-logs-1"),
        ("warning", "FluvialDataDirLow", "spu 3 /d/spu-logs-1"),
        ("critical", "FluvialPartitionWithoutWritableLeader", "partition t-0"),
        ("critical", "FluvialMetadataUnwritable", "sc"),
    ]
    assert alerts([(1, True, [dir_(i.DirStateCode.OK)])], [], None) == []


def test_overcommitted_counts_explicit_sizes_against_disk_minus_reserve() -> None:
    from fluvial.sc.health import overcommitted

    dirs = {1: [i.DataDirReport("/a", i.DirStateCode.OK, 10 * MIB, 16 * MIB, MIB)],
            2: [i.DataDirReport("/b", i.DirStateCode.OK, 60 * MIB, 64 * MIB, MIB)]}
    placed = [([1, 2], 10 * MIB), ([2, 1], 6 * MIB), ([1], None), ([3], 99 * MIB)]
    # SPU 1: 16 MiB placed > 15 MiB; SPU 2: 16 MiB <= 63 MiB; unsized partitions and unknown SPUs ignored
    assert overcommitted(placed, dirs) == {1: (16 * MIB, 15 * MIB)}
    got = alerts([(1, True, dirs[1])], [], None, {1: (16 * MIB, 15 * MIB)})
    assert [(a.name, a.subject) for a in got] == [("FluvialPartitionSizesExceedDisk", "spu 1")]
