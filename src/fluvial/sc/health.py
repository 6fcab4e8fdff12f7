"""The cluster's health as the SC sees it: each SPU ONLINE / DEGRADED / OFFLINE with its reason, and the
active alerts. Pure (the SC's last heartbeats and metadata in, texts out); `fluvial cluster status` and
`fluvial spu describe` show it. Alert names match `deploy/prometheus/alerts.yml`.

    SPU state  | when
    -----------|---------------------------------------------------------------
    offline    | its connection closed or it was silent longer than the offline timeout
    degraded   | online, and a data dir is FULL or FAILED or a replica is FULL or FAILED
    online     | otherwise
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from fluvial.protocol import internal as i


class SpuState(enum.Enum):
    ONLINE = "online"
    DEGRADED = "degraded"
    OFFLINE = "offline"


@dataclass(frozen=True)
class Alert:
    severity: str          # warning | critical
    name: str
    subject: str
    message: str


def _mib(n: int) -> str:
    return f"{n / 2**20:.1f} MiB"


def spu_state(online: bool, dirs: Sequence[i.DataDirReport],
              replicas: Sequence[i.ReplicaReport]) -> tuple[SpuState, str]:
    """(state, reason) of one SPU."""
    if not online:
        return SpuState.OFFLINE, "not connected to the SC (stopped, crashed or cut off)"
    reasons = [f"data dir {d.path} {d.state.name} ({_mib(d.free_bytes)} free of {_mib(d.total_bytes)}, reserve "
               f"{_mib(d.reserve_bytes)})" for d in dirs
               if d.state in (i.DirStateCode.FULL, i.DirStateCode.FAILED)]
    bad = [r for r in replicas if r.state is not i.ReplicaStateCode.OK]
    if bad:
        names = ", ".join(f"{r.topic}-{r.partition}" for r in bad[:5]) + (" …" if len(bad) > 5 else "")
        reasons.append(f"{len(bad)} replica(s) FULL or FAILED: {names}")
    if reasons:
        return SpuState.DEGRADED, "; ".join(reasons)
    return SpuState.ONLINE, ""


_DIR_ALERTS = {i.DirStateCode.LOW: ("warning", "FluvialDataDirLow", "below 2 R free: retention runs now; writes "
                                    "are refused below 1.25 R"),
               i.DirStateCode.FULL: ("critical", "FluvialDataDirFull", "writes refused (PartitionFull); its "
                                     "leaderships move to healthy in-sync replicas"),
               i.DirStateCode.FAILED: ("critical", "FluvialDataDirFailed", "persistent I/O error: no writes until "
                                       "the SPU restarts and verifies its data")}


def overcommitted(placed: Iterable[tuple[Sequence[int], int | None]],
                  dirs: dict[int, Sequence[i.DataDirReport]]) -> dict[int, tuple[int, int]]:
    """SPUs whose partitions' explicit max sizes add up to more than their disk minus its reserve:
    {spu: (placed bytes, capacity bytes)}. `placed`: (replica SPUs, max_partition_size or None) per
    partition; partitions without an explicit size are not counted (Fluvio's default is 100 GB)."""
    sums: dict[int, int] = {}
    for replicas, size in placed:
        if size is None:
            continue
        for spu in replicas:
            sums[spu] = sums.get(spu, 0) + size
    out = {}
    for spu, total in sums.items():
        reports = dirs.get(spu) or []
        if reports:
            capacity = sum(max(0, d.total_bytes - d.reserve_bytes) for d in reports)
            if total > capacity:
                out[spu] = (total, capacity)
    return out


def overcommit_text(spu: int, placed: int, capacity: int) -> str:
    return (f"the max partition sizes placed on SPU {spu} add up to {_mib(placed)}, more than its disk holds "
            f"({_mib(capacity)} after the reserve): it will fill before retention removes anything")


def alerts(spus: Iterable[tuple[int, bool, Sequence[i.DataDirReport]]],
           unwritable_partitions: Iterable[tuple[str, str]], metadata_error: str | None,
           overcommit: dict[int, tuple[int, int]] | None = None) -> list[Alert]:
    """Active alerts from (SPU id, online, its data dirs), (partition, resolution) of partitions without a
    writable leader, the metadata store's last write error, and SPUs whose placed partition sizes exceed
    their disk."""
    out = []
    for spu, online, dirs in sorted(spus, key=lambda s: s[0]):
        if not online:
            out.append(Alert("critical", "FluvialSpuOffline", f"spu {spu}", "not connected to the SC"))
            continue
        for d in dirs:
            found = _DIR_ALERTS.get(d.state)
            if found is not None:
                severity, name, what = found
                out.append(Alert(severity, name, f"spu {spu} {d.path}",
                                 f"{_mib(d.free_bytes)} free of {_mib(d.total_bytes)}: {what}"))
    for pname, resolution in sorted(unwritable_partitions):
        out.append(Alert("critical", "FluvialPartitionWithoutWritableLeader", f"partition {pname}", resolution))
    for spu, (placed, capacity) in sorted((overcommit or {}).items()):
        out.append(Alert("warning", "FluvialPartitionSizesExceedDisk", f"spu {spu}",
                         overcommit_text(spu, placed, capacity)))
    if metadata_error:
        out.append(Alert("critical", "FluvialMetadataUnwritable", "sc", metadata_error))
    return out


__all__ = ["Alert", "SpuState", "alerts", "overcommit_text", "overcommitted", "spu_state"]
