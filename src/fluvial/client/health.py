"""Storage details behind an error code that carries none: `PartitionFull` (72) names only the replica,
`StorageError` (56) nothing. fluvial's client asks the partition's SPU (fluvial-only ReplicaHealth API)
for its data dir, free bytes, reserve and replica state, and raises an error that shows them."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from fluvial import defaults as d
from fluvial.errors import ErrorCode, FluvialError, ServerError, StorageFailed, StorageFull
from fluvial.protocol import fluvial_api as fa
from fluvial.protocol.codec import decode_from, encode
from fluvial.protocol.internal import DirStateCode, ReplicaStateCode
from fluvial.protocol.spu import ReplicaKey

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class PartitionHealth:
    spu_id: int
    topic: str
    partition: int
    state: ReplicaStateCode
    data_dir: str
    dir_state: DirStateCode
    free_bytes: int
    total_bytes: int
    reserve_bytes: int
    last_error: str | None
    full_release_bytes: int = 0      # a FULL data dir takes writes again above this many free bytes


async def partition_health(client: Any, topic: str, partition: int,
                           timeout: float = d.CLIENT_REQUEST_TIMEOUT_SECONDS) -> PartitionHealth:
    """Ask the partition's leader SPU about the replica and its data dir."""
    _spu_id, conn = await client.leader_connection(topic, partition, timeout=timeout)
    req = fa.ReplicaHealthRequest([ReplicaKey(topic, partition)])
    r = await conn.request(fa.REPLICA_HEALTH, fa.FLUVIAL_API_VERSION, encode(req, fa.FLUVIAL_API_VERSION),
                           timeout=timeout)
    resp = decode_from(fa.ReplicaHealthResponse, r, fa.FLUVIAL_API_VERSION)
    if not resp.error_code.ok:
        raise ServerError(resp.error_code.code, "replica health unavailable", topic=topic, partition=partition)
    rep = next((x for x in resp.replicas if x.report.topic == topic and x.report.partition == partition), None)
    if rep is None:
        raise ServerError(ErrorCode.PARTITION_NOT_LEADER, f"SPU {resp.spu_id} holds no replica", topic=topic,
                          partition=partition)
    dirs = [x for x in resp.data_dirs if rep.data_dir.startswith(x.report.path) or x.report.path == rep.data_dir]
    health = dirs[0] if dirs else (resp.data_dirs[0] if resp.data_dirs else None)
    data = health.report if health else None
    return PartitionHealth(resp.spu_id, topic, partition, rep.report.state, data.path if data else rep.data_dir,
                           data.state if data else DirStateCode.OK, data.free_bytes if data else 0,
                           data.total_bytes if data else 0, data.reserve_bytes if data else 0, rep.last_error,
                           health.full_release_bytes if health else 0)


def detailed_error(h: PartitionHealth, original: FluvialError) -> FluvialError:
    """The storage error with what the SPU says about its disk (the original when nothing is wrong now)."""
    replica = f"{h.topic}-{h.partition}"
    where = f"{h.data_dir} on SPU {h.spu_id}"
    if original.code is ErrorCode.PARTITION_FULL or h.state is ReplicaStateCode.FULL:
        threshold = h.full_release_bytes if h.dir_state is DirStateCode.FULL and h.full_release_bytes else h.reserve_bytes
        e: FluvialError = StorageFull(replica=replica, data_dir=where, free_bytes=h.free_bytes,
                                      threshold_bytes=threshold)
    elif h.state is ReplicaStateCode.FAILED or original.code is ErrorCode.STORAGE_ERROR:
        e = StorageFailed(f"partition {h.topic}/{h.partition} storage failed on SPU {h.spu_id} ({h.data_dir}): "
                          f"{h.last_error or 'I/O error'}", replica=replica, data_dir=h.data_dir)
    else:
        return original
    e.spu_id = h.spu_id                     # type: ignore[attr-defined]
    e.health = h                            # type: ignore[attr-defined]
    return e


async def explain(client: Any, topic: str, partition: int, original: FluvialError) -> FluvialError:
    """`original` with storage details when it is a storage error and the SPU can tell more."""
    if original.code not in (ErrorCode.PARTITION_FULL, ErrorCode.STORAGE_ERROR):
        return original
    try:
        health = await partition_health(client, topic, partition, timeout=d.CLIENT_HEALTH_TIMEOUT_SECONDS)
    except FluvialError as e:
        logger.debug("replica_health_unavailable topic=%s partition=%d error=%s", topic, partition, e)
        return original
    return detailed_error(health, original)
