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


def alerts(spus: Iterable[tuple[int, bool, Sequence[i.DataDirReport]]],
           unwritable_partitions: Iterable[tuple[str, str]], metadata_error: str | None) -> list[Alert]:
    """Active alerts from (SPU id, online, its data dirs), (partition, resolution) of partitions without a
    writable leader, and the metadata store's last write error."""
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
    if metadata_error:
        out.append(Alert("critical", "FluvialMetadataUnwritable", "sc", metadata_error))
    return out


__all__ = ["Alert", "SpuState", "alerts", "spu_state"]
