"""The SPU's link to the SC: register, heartbeat (health, data dirs, replica offsets, each leader's
followers and proposed in-sync set), and the stream of replica assignments. Reconnects with capped
exponential back-off; never stops the SPU serving clients.

The leader lease: an SPU may take writes for a replicated partition only while its last answer from the
SC is younger than `lease_seconds`, measured from when that request was *sent* (monotonic clock). The SC
marks an SPU offline — and only then elects another leader — after a longer silence measured from the
last request it *received*, so an SPU that is cut off or stopped has stopped acknowledging writes before
anyone else may lead."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable

from fluvial import defaults as d
from fluvial.errors import FluvialError, ProtocolError
from fluvial.protocol import internal as i
from fluvial.protocol.codec import decode_from, encode
from fluvial.spu.replicas import ReplicaRegistry
from fluvial.spu.smartmodules import SmartModuleStore
from fluvial.storage.replica import ReplicaState
from fluvial.storage.space import DirState
from fluvial.transport.client import ClientConnection, ConnectionLost

logger = logging.getLogger(__name__)

_DIR_CODES = {DirState.OK: i.DirStateCode.OK, DirState.LOW: i.DirStateCode.LOW,
              DirState.FULL: i.DirStateCode.FULL, DirState.FAILED: i.DirStateCode.FAILED}
_REPLICA_CODES = {ReplicaState.OK: i.ReplicaStateCode.OK, ReplicaState.FULL: i.ReplicaStateCode.FULL,
                  ReplicaState.FAILED: i.ReplicaStateCode.FAILED}


class ControlLink:
    def __init__(self, register: i.RegisterSpuRequest, sc_host: str, sc_port: int, registry: ReplicaRegistry,
                 on_peers: Callable[[list[i.PeerSpu]], None] | None = None, *,
                 lease_seconds: float = d.LEADER_LEASE_SECONDS,
                 smartmodules: SmartModuleStore | None = None) -> None:
        self.register = register
        self.sc_host = sc_host
        self.sc_port = sc_port
        self.registry = registry
        self.on_peers = on_peers
        self.connected = asyncio.Event()
        self.heartbeats_sent = 0
        self.lease_seconds = lease_seconds
        self.lease_deadline = 0.0                 # monotonic
        self._soon = asyncio.Event()              # a report worth sending before the next interval
        self._down_since: float | None = None       # when the current outage of the SC link began
        self._attempts = 0                          # reconnect attempts in the current outage
        self.smartmodules = smartmodules
        self._conn: ClientConnection | None = None    # the live session's connection (asking for a module)
        if smartmodules is not None:
            smartmodules.fetch = self.fetch_smartmodule

    def lease_valid(self) -> bool:
        return time.monotonic() < self.lease_deadline

    def report_soon(self) -> None:
        """Send the next heartbeat now (an ISR change the SC should confirm)."""
        self._soon.set()

    def heartbeat(self) -> i.HeartbeatRequest:
        storage = self.registry.storage
        snap = storage.guard.snapshot()
        dirs = [i.DataDirReport(snap.data_dir, _DIR_CODES[snap.state], max(0, snap.free_bytes), snap.total_bytes,
                                snap.reserve_bytes)]
        replicas = []
        for local in self.registry.replicas.values():
            r = local.replica
            followers = []
            state = local.leader_state
            if state is not None:
                followers = [i.FollowerReport(f, p.leo, f in state.in_sync) for f, p in state.followers.items()]
            replicas.append(i.ReplicaReport(local.topic, local.partition, local.is_leader(self.registry.spu_id),
                                            r.hw, r.leo, r.log_start, r.size_bytes(), _REPLICA_CODES[r.state],
                                            local.epoch, followers))
        degraded = snap.state in (DirState.FULL, DirState.FAILED) or any(
            x.state is not i.ReplicaStateCode.OK for x in replicas)
        return i.HeartbeatRequest(self.register.spu_id, i.SpuHealth.DEGRADED if degraded else i.SpuHealth.ONLINE,
                                  dirs, replicas)

    async def run(self) -> None:
        """Keep a session with the SC. An outage is logged once when it starts (`sc_link_down`) and once
        when it ends (`sc_link_up` with its duration); the attempts between are DEBUG lines."""
        backoff = d.RECONNECT_BACKOFF_MIN_SECONDS
        while True:
            try:
                await self._session()
                error: Exception = ConnectionLost("the SC ended the session")
                backoff = d.RECONNECT_BACKOFF_MIN_SECONDS
            except (FluvialError, OSError) as e:
                error = e
            self.connected.clear()
            if self._down_since is None:
                self._down_since, self._attempts = time.monotonic(), 0
                logger.warning("sc_link_down sc=%s:%d error=%s", self.sc_host, self.sc_port, error)
            else:
                self._attempts += 1
                logger.debug("sc_link_retry sc=%s:%d error=%s retry_in=%.1fs", self.sc_host, self.sc_port, error,
                             backoff)
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, d.RECONNECT_BACKOFF_MAX_SECONDS)

    async def _session(self) -> None:
        conn = await ClientConnection.connect(self.sc_host, self.sc_port, client_id=f"spu-{self.register.spu_id}",
                                              timeout=5)
        tasks: list[asyncio.Task[None]] = []
        try:
            sent = time.monotonic()
            r = await conn.request(i.REGISTER_SPU, i.INTERNAL_VERSION, encode(self.register, 0), timeout=10)
            answer = decode_from(i.RegisterSpuResponse, r, 0)
            if not answer.error_code.ok:
                raise ProtocolError(f"SC refused registration: {answer.error_message or answer.error_code.describe()}")
            self.lease_deadline = sent + self.lease_seconds
            self._registered()
            self.connected.set()
            self._conn = conn
            tasks = [asyncio.ensure_future(self._heartbeats(conn)), asyncio.ensure_future(self._assignments(conn))]
            if self.smartmodules is not None:
                tasks.append(asyncio.ensure_future(self._smartmodules(conn, self.smartmodules)))
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            for t in done:
                t.result()                    # the failure that ended the session (a heartbeat, the stream)
        finally:
            self._conn = None
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)      # every outcome retrieved
            await conn.close()

    def _registered(self) -> None:
        if self._down_since is None:
            logger.info("sc_registered spu=%d sc=%s:%d", self.register.spu_id, self.sc_host, self.sc_port)
            return
        logger.info("sc_link_up spu=%d sc=%s:%d outage_seconds=%.1f attempts=%d", self.register.spu_id,
                    self.sc_host, self.sc_port, time.monotonic() - self._down_since, self._attempts + 1)
        self._down_since = None

    async def _assignments(self, conn: ClientConnection) -> None:
        request = encode(i.WatchAssignmentsRequest(self.register.spu_id), 0)
        async for body in conn.stream(i.WATCH_ASSIGNMENTS, i.INTERNAL_VERSION, request):
            update = decode_from(i.AssignmentUpdate, body, 0)
            await self.registry.apply_async(update.replicas, update.full)   # heartbeats go on meanwhile
            if self.on_peers is not None and update.spus:
                self.on_peers(update.spus)
            self.report_soon()      # the SC learns at once that new replicas are open (a create waits on it)

    async def _smartmodules(self, conn: ClientConnection, store: SmartModuleStore) -> None:
        request = encode(i.WatchSmartModulesRequest(self.register.spu_id), 0)
        async for body in conn.stream(i.WATCH_SMARTMODULES, i.INTERNAL_VERSION, request):
            store.apply(decode_from(i.SmartModulesUpdate, body, 0))

    async def fetch_smartmodule(self, name: str) -> i.SmartModuleChange | None:
        """Ask the SC for one module; None when it has none or cannot be reached now."""
        conn = self._conn
        if conn is None:
            return None
        try:
            body = await conn.request(i.FETCH_SMARTMODULE, i.INTERNAL_VERSION,
                                      encode(i.FetchSmartModuleRequest(name), 0),
                                      timeout=d.SMARTMODULE_FETCH_TIMEOUT_SECONDS)
        except (FluvialError, OSError, TimeoutError) as e:
            logger.warning("smartmodule_fetch_failed name=%s error=%s", name, e)
            return None
        return decode_from(i.FetchSmartModuleResponse, body, 0).found

    async def _heartbeats(self, conn: ClientConnection) -> None:
        while True:
            self._soon.clear()
            body = encode(self.heartbeat(), 0)
            sent = time.monotonic()
            await conn.request(i.HEARTBEAT, i.INTERNAL_VERSION, body, timeout=d.SPU_OFFLINE_AFTER_SECONDS * 2)
            self.lease_deadline = sent + self.lease_seconds
            self.heartbeats_sent += 1
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(d.HEARTBEAT_INTERVAL_SECONDS):
                    await self._soon.wait()
