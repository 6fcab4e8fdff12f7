"""The leader side of replication on an SPU's private port: follower fetches (long-polls answered when the
leader appends or its HW moves), the epoch-end question a follower asks before it truncates, the ISR
bookkeeping on fetches, disconnects and lag, and the HW that follows it. The pure rules live in
`spu/replication.py`; followers are `spu/follower.py`."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from fluvial import defaults as d
from fluvial.errors import ErrorCode, FluvialError
from fluvial.protocol import internal as i
from fluvial.protocol.codec import OK, Reader, WireError, decode_from, encode
from fluvial.protocol.frame import RequestHeader
from fluvial.spu.replicas import LocalReplica, ReplicaRegistry
from fluvial.transport import server as srv

logger = logging.getLogger("fluvial.spu.server")


class LeaderService:
    """Handlers for `i.REPLICA_FETCH` and `i.EPOCH_END_OFFSET`, the private port's disconnect hook, and
    the lag timer (`isr_checks`). `report_soon` asks the SC link to send the next heartbeat now."""

    def __init__(self, registry: ReplicaRegistry, report_soon: Callable[[], None]) -> None:
        self.registry = registry
        self.report_soon = report_soon

    def handlers(self) -> dict[int, srv.Handler]:
        return {i.REPLICA_FETCH: self.replica_fetch, i.EPOCH_END_OFFSET: self.epoch_end_offset}


    def _leading(self, topic: str, partition: int, follower: int, epoch: int) -> LocalReplica | WireError:
        """The local leader replica a follower may fetch from, or why not (fencing by epoch)."""
        local = self.registry.leader(topic, partition)
        if local is None or local.leader_state is None:
            return WireError(ErrorCode.NOT_LEADER_FOR_PARTITION)
        if epoch != local.epoch or follower not in local.leader_state.followers:
            return WireError(ErrorCode.NOT_LEADER_FOR_PARTITION)
        return local

    async def epoch_end_offset(self, conn: srv.Connection, h: RequestHeader, body: Reader) -> None:
        req = decode_from(i.EpochEndOffsetRequest, body, 0)
        local = self._leading(req.topic, req.partition, req.follower_id, req.leader_epoch)
        if isinstance(local, WireError):
            resp = i.EpochEndOffsetResponse(local, -1, -1, -1)
        else:
            epoch, end = local.replica.epoch_end(req.epoch)
            resp = i.EpochEndOffsetResponse(OK, epoch, end, local.replica.log_start)
        await conn.send(h.correlation_id, encode(resp, 0))

    async def replica_fetch(self, conn: srv.Connection, h: RequestHeader, body: Reader) -> None:
        """A follower's long-poll: answered in its own task (other partitions' fetches on the same
        connection go on)."""
        req = decode_from(i.ReplicaFetchRequest, body, 0)
        followed: set[tuple[str, int, int]] = conn.state.setdefault("followed", set())  # type: ignore[assignment]
        followed.add((req.topic, req.partition, req.follower_id))
        conn.spawn(self._answer_fetch(conn, h, req))

    async def _answer_fetch(self, conn: srv.Connection, h: RequestHeader, req: i.ReplicaFetchRequest) -> None:
        local = self._leading(req.topic, req.partition, req.follower_id, req.leader_epoch)
        if isinstance(local, WireError):
            await conn.send(h.correlation_id, encode(i.ReplicaFetchResponse(local, -1, -1, -1, -1, b""), 0))
            return
        r = local.replica
        state = local.leader_state
        assert state is not None
        if req.fetch_offset > r.leo:
            err = WireError(ErrorCode.OFFSET_OUT_OF_RANGE)   # the follower truncates again
            await conn.send(h.correlation_id, encode(i.ReplicaFetchResponse(err, local.epoch, r.hw, r.leo,
                                                                            r.log_start, b""), 0))
            return
        if state.on_fetch(req.follower_id, req.fetch_offset, r.leo, r.hw, int(req.state), time.monotonic()):
            self._isr_changed(local, req.follower_id)
        local.update_hw()
        deadline = time.monotonic() + min(req.max_wait_ms / 1000, d.REPLICA_FETCH_MAX_WAIT_SECONDS * 4)
        while True:
            has_data = req.max_bytes > 0 and req.fetch_offset < r.leo
            if has_data or r.hw > req.hw or req.fetch_offset < r.log_start:
                break
            remaining = deadline - time.monotonic()
            if remaining <= 0 or self.registry.leader(req.topic, req.partition) is not local:
                break
            changed = local.appended
            try:
                async with asyncio.timeout(remaining):
                    await changed.wait()
            except TimeoutError:
                break
        records = b""
        if req.max_bytes > 0 and r.log_start <= req.fetch_offset < r.leo:
            try:
                res = await asyncio.to_thread(r.read, req.fetch_offset, min(req.max_bytes, d.REPLICA_FETCH_MAX_BYTES))
                records = res.slice.read()
            except FluvialError as e:
                err = WireError.from_exception(e)
                await conn.send(h.correlation_id, encode(i.ReplicaFetchResponse(err, local.epoch, r.hw, r.leo,
                                                                                r.log_start, b""), 0))
                return
        state.on_response(req.follower_id, r.leo, time.monotonic())
        resp = i.ReplicaFetchResponse(OK, local.epoch, r.hw, r.leo, r.log_start, records)
        await conn.send(h.correlation_id, encode(resp, 0))

    def _isr_changed(self, local: LocalReplica, follower: int) -> None:
        state = local.leader_state
        if state is None:
            return
        joined = follower in state.in_sync
        logger.info("isr_%s replica=%s-%d follower=%d isr=%s", "expand" if joined else "shrink", local.topic,
                    local.partition, follower, state.isr)
        self.report_soon()

    async def peer_disconnected(self, conn: srv.Connection) -> None:
        followed: set[tuple[str, int, int]] = conn.state.get("followed", set())  # type: ignore[assignment]
        for topic, partition, follower in followed:
            local = self.registry.leader(topic, partition)
            if local is not None and local.leader_state is not None and local.leader_state.on_disconnect(follower):
                self._isr_changed(local, follower)

    async def isr_checks(self) -> None:
        """Followers that stopped catching up leave the ISR after the lag time (a timer, not a data poll)."""
        while True:
            await asyncio.sleep(d.REPLICA_ISR_CHECK_SECONDS)
            now = time.monotonic()
            for local in list(self.registry.replicas.values()):
                state = local.leader_state
                if state is None or not local.is_leader(self.registry.spu_id):
                    continue
                before = set(state.in_sync)
                if state.expire(now):
                    for gone in before - state.in_sync:
                        self._isr_changed(local, gone)


__all__ = ["LeaderService"]
