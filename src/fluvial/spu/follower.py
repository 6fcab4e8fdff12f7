"""Follower replication: one task per followed partition, one connection per leader SPU (private port).

A follower task first asks the leader where its last epoch ends and truncates there (KIP-101: what a
failed leader wrote but never committed goes, nothing committed ever does), then long-polls
`ReplicaFetch` from its LEO: the fetch offset is its LEO report, the answer carries the leader's batches
exactly as stored (same bytes, same offsets, the leader's epoch stamped in each) and the leader's HW. The
leader answers at once when it has data or a newer HW, else when it appends or its HW moves — no
polling loop. A follower whose disk refuses a write reports FULL/FAILED in its next fetch (which asks for
no data) and backs off; a follower behind the leader's log start restarts its log there.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from fluvial import defaults as d
from fluvial.errors import ErrorCode, FluvialError, StorageFailed, StorageFull
from fluvial.observability.ratelimit import RateLimitedLog
from fluvial.protocol import internal as i
from fluvial.protocol.codec import decode_from, encode
from fluvial.spu.replicas import LocalReplica, ReplicaRegistry
from fluvial.storage.epochs import truncation_point
from fluvial.storage.replica import ReplicaState
from fluvial.transport.client import ClientConnection, ConnectionLost

logger = logging.getLogger(__name__)
_log = RateLimitedLog(logger)

_STATE = {ReplicaState.OK: i.ReplicaStateCode.OK, ReplicaState.FULL: i.ReplicaStateCode.FULL,
          ReplicaState.FAILED: i.ReplicaStateCode.FAILED}


class FetchRefused(FluvialError):
    """The leader refused a follower request (not leader / epoch mismatch / offset out of range)."""

    def __init__(self, code: int, what: str) -> None:
        try:
            self.code = ErrorCode(code)
        except ValueError:
            self.code = ErrorCode.UNKNOWN_SERVER_ERROR
        super().__init__(f"{what} refused by the leader: {self.code.name} ({code})")


class Followers:
    def __init__(self, registry: ReplicaRegistry, peers: Callable[[], dict[int, i.PeerSpu]]) -> None:
        self.registry = registry
        self.spu_id = registry.spu_id
        self.peers = peers
        self.tasks: dict[tuple[str, int], tuple[int, int, asyncio.Task[None]]] = {}
        self.links: dict[int, ClientConnection] = {}
        self._connecting: dict[int, asyncio.Lock] = {}

    # ------------------------------------------------------------------------------------- roles

    def on_role(self, local: LocalReplica) -> None:
        a = local.assignment
        key = local.key
        if local.is_leader(self.spu_id):
            self.stop(key)
            return
        current = self.tasks.get(key)
        if current is not None and current[:2] == (a.leader, a.leader_epoch) and not current[2].done():
            return
        self.stop(key)
        task = asyncio.ensure_future(self._follow(local, a.leader, a.leader_epoch))
        self.tasks[key] = (a.leader, a.leader_epoch, task)
        logger.info("follower_start replica=%s-%d leader=%d epoch=%d leo=%d", local.topic, local.partition,
                    a.leader, a.leader_epoch, local.replica.leo)

    def on_removed(self, local: LocalReplica) -> None:
        self.stop(local.key)

    def stop(self, key: tuple[str, int]) -> None:
        entry = self.tasks.pop(key, None)
        if entry is not None:
            entry[2].cancel()

    async def close(self) -> None:
        for _l, _e, task in self.tasks.values():
            task.cancel()
        self.tasks.clear()
        for conn in self.links.values():
            await conn.close()
        self.links.clear()

    # -------------------------------------------------------------------------------- connections

    async def _link(self, leader: int) -> ClientConnection:
        conn = self.links.get(leader)
        if conn is not None and not conn.closed:
            return conn
        lock = self._connecting.setdefault(leader, asyncio.Lock())
        async with lock:
            conn = self.links.get(leader)
            if conn is not None and not conn.closed:
                return conn
            peer = self.peers().get(leader)
            if peer is None:
                raise ConnectionLost(f"leader SPU {leader} is not known yet")
            conn = await ClientConnection.connect(peer.private_host, peer.private_port,
                                                  client_id=f"follower-{self.spu_id}",
                                                  timeout=d.CLIENT_CONNECT_TIMEOUT_SECONDS)
            self.links[leader] = conn
            return conn

    # --------------------------------------------------------------------------------- the loop

    async def _follow(self, local: LocalReplica, leader: int, epoch: int) -> None:
        backoff = d.REPLICA_FETCH_BACKOFF_SECONDS
        truncated = False
        name = f"{local.topic}-{local.partition}"
        while True:
            try:
                conn = await self._link(leader)
                if not truncated:
                    await self._truncate(conn, local, epoch)
                    truncated = True
                wrote = await self._fetch(conn, local, epoch)
                if wrote is None:          # the disk refused: report it and wait before asking again
                    await asyncio.sleep(backoff)
                    backoff = min(backoff * 2, d.REPLICA_FETCH_BACKOFF_MAX_SECONDS)
                else:
                    backoff = d.REPLICA_FETCH_BACKOFF_SECONDS
            except asyncio.CancelledError:
                raise
            except (FluvialError, OSError) as e:
                _log.warning(f"follower:{leader}:{type(e).__name__}", "follower_fetch_failed replica=%s leader=%d "
                             "epoch=%d error=%s", name, leader, epoch, e)
                if isinstance(e, FetchRefused) and e.code is ErrorCode.OFFSET_OUT_OF_RANGE:
                    truncated = False
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, d.REPLICA_FETCH_BACKOFF_MAX_SECONDS)

    async def _truncate(self, conn: ClientConnection, local: LocalReplica, epoch: int) -> None:
        r = local.replica
        req = i.EpochEndOffsetRequest(local.topic, local.partition, self.spu_id, epoch, r.last_epoch)
        body = await conn.request(i.EPOCH_END_OFFSET, i.INTERNAL_VERSION, encode(req, 0),
                                  timeout=d.CLIENT_REQUEST_TIMEOUT_SECONDS)
        resp = decode_from(i.EpochEndOffsetResponse, body, 0)
        if not resp.error_code.ok:
            raise FetchRefused(resp.error_code.code, "epoch end")
        mine = r.epoch_end(resp.epoch)[1] if resp.epoch >= 0 else r.leo
        point = truncation_point(r.leo, mine, resp.end_offset)
        if point < r.log_start or resp.log_start > r.leo:
            start = max(point, resp.log_start)
            await asyncio.to_thread(r.reset_to, start)
            local.notify_appended()
        elif point < r.leo:
            await asyncio.to_thread(r.truncate_to, point)
            local.notify_appended()
        logger.info("follower_truncated replica=%s-%d epoch=%d leader_epoch_end=%d/%d leo=%d", local.topic,
                    local.partition, epoch, resp.epoch, resp.end_offset, r.leo)

    async def _fetch(self, conn: ClientConnection, local: LocalReplica, epoch: int) -> bool | None:
        """One fetch. True/False: wrote something or not; None: the local disk refused the write."""
        r = local.replica
        state = _STATE[r.state]
        writable = state is i.ReplicaStateCode.OK
        req = i.ReplicaFetchRequest(local.topic, local.partition, self.spu_id, epoch, r.leo, r.hw,
                                    d.REPLICA_FETCH_MAX_BYTES if writable else 0,
                                    int(d.REPLICA_FETCH_MAX_WAIT_SECONDS * 1000), state)
        body = await conn.request(i.REPLICA_FETCH, i.INTERNAL_VERSION, encode(req, 0),
                                  timeout=d.REPLICA_FETCH_MAX_WAIT_SECONDS + d.CLIENT_REQUEST_TIMEOUT_SECONDS)
        resp = decode_from(i.ReplicaFetchResponse, body, 0)
        if not resp.error_code.ok:
            raise FetchRefused(resp.error_code.code, "fetch")
        if resp.log_start > r.leo:
            await asyncio.to_thread(r.reset_to, resp.log_start)
            local.notify_appended()
            return True
        wrote = False
        if resp.records:
            if not writable:
                return None
            try:
                await asyncio.to_thread(r.append_replicated, resp.records)
            except (StorageFull, StorageFailed) as e:
                _log.warning(f"follower-disk:{type(e).__name__}", "follower_write_refused replica=%s-%d error=%s",
                             local.topic, local.partition, e)
                return None
            wrote = True
        elif not writable:
            return None
        hw = min(resp.hw, r.leo)
        if hw > r.hw:
            r.set_hw(hw)
            wrote = True
        if wrote:
            local.notify_appended()
        return wrote


__all__ = ["FetchRefused", "Followers"]
