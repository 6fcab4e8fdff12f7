"""The SC process: public API (ApiVersions, Create, Delete, List, Watch, Update) for clients, private API
(register, heartbeat, assignment stream) for SPUs, and the controllers that connect them."""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fluvial import defaults as d
from fluvial.errors import ErrorCode, FluvialError, MetadataUnavailable, ProtocolError, ServerError
from fluvial.observability import metrics
from fluvial.protocol import fluvial_api as fa
from fluvial.protocol import internal as i
from fluvial.protocol import metadata as md
from fluvial.protocol import sc as scp
from fluvial.protocol.codec import OK, Reader, WireError, decode, decode_from, encode
from fluvial.protocol.frame import (
    API_VERSIONS_KEY,
    ApiVersionKey,
    ApiVersionsRequest,
    ApiVersionsResponse,
    RequestHeader,
)
from fluvial.sc import health as sc_health
from fluvial.sc import topics as rules
from fluvial.sc.objects import TABLE_FORMAT, StoredObjects
from fluvial.sc.replication import ReplicationController
from fluvial.sc.smartmodules import SmartModuleController
from fluvial.sc.store import PRODUCER_ID_COUNTER, LabelStore, ObjectCodec, open_backend
from fluvial.sc.topic_controller import TopicController, assignments_for, peer_list, status_of
from fluvial.transport import server as srv
from fluvial.transport.client import ClientConnection

logger = logging.getLogger(__name__)

SC_API_RANGES = {scp.ScApiKey.CREATE: (9, 19), scp.ScApiKey.DELETE: (1, 19), scp.ScApiKey.LIST: (15, 19),
                 scp.ScApiKey.WATCH: (15, 19), scp.ScApiKey.UPDATE: (1, 19)}
V = d.SC_OBJECT_VERSION
STORED_KINDS = (TABLE_FORMAT,)      # stored-only object types; a second one is one more entry


def _codec(obj: scp.ObjectType) -> ObjectCodec:
    return ObjectCodec(lambda m: encode(m, V), lambda b: decode(obj.metadata, b, V))


@dataclass
class SpuSession:
    spu_id: int
    conn: srv.Connection
    last_seen: float
    watchers: list[asyncio.Event] = field(default_factory=list)
    health: i.SpuHealth | None = None                               # from the last heartbeat
    dirs: list[i.DataDirReport] = field(default_factory=list)       # from the last heartbeat
    replicas: list[i.ReplicaReport] = field(default_factory=list)   # from the last heartbeat


@dataclass
class ScConfig:
    data_dir: str
    public_host: str = "127.0.0.1"
    public_port: int = d.SC_PUBLIC_PORT
    private_host: str = "127.0.0.1"
    private_port: int = d.SC_PRIVATE_PORT
    metadata_url: str | None = None
    spu_offline_after_seconds: float = d.SPU_OFFLINE_AFTER_SECONDS
    topic_wait_seconds: float = float(os.environ.get("FLV_TOPIC_WAIT", d.TOPIC_WAIT_SECONDS))
    limits: srv.ConnectionLimits = field(default_factory=srv.ConnectionLimits)


class ScServer(srv.TwoPortServer):
    def __init__(self, config: ScConfig) -> None:
        super().__init__()
        self.config = config
        Path(config.data_dir).mkdir(parents=True, exist_ok=True)
        self.backend = open_backend(config.metadata_url, config.data_dir)
        self.topics = LabelStore("Topic", self.backend, _codec(scp.TOPIC))
        self.partitions = LabelStore("Partition", self.backend, _codec(scp.PARTITION))
        self.spus = LabelStore("SPU", self.backend, _codec(scp.SPU))
        self.stored = {k.obj.label: StoredObjects(k, LabelStore(k.obj.label, self.backend, _codec(k.obj)))
                       for k in STORED_KINDS}         # stored-only object types (TableFormat)
        self.stores = {"Topic": self.topics, "Partition": self.partitions, "SPU": self.spus,
                       **{label: o.store for label, o in self.stored.items()}}
        self.smartmodule_store = LabelStore("SmartModule", self.backend, _codec(scp.SMARTMODULE))
        self.stores["SmartModule"] = self.smartmodule_store
        self.smartmodules = SmartModuleController(self.smartmodule_store)
        blobs = self.backend.load()
        for label, store in self.stores.items():
            store.load(blobs.get(label, {}))
        self.sessions: dict[int, SpuSession] = {}
        self.offset_cleanups: set[str] = set()        # deleted topics whose consumer offsets are still stored
        self._cleanup_task: asyncio.Future[None] | None = None
        self.assignment_epoch = 0
        self._elections_held = False
        self.replication = ReplicationController(self.backend, blobs, self.topics, self.partitions, self.spus,
                                                 self._push_assignments)
        self.topic_ctl = TopicController(self.topics, self.partitions, self.replication, self._push_assignments,
                                         config.topic_wait_seconds, self.overcommit)
        # Create and Delete per label (Topic through its controller, stored-only types through theirs)
        self.creators: dict[str, Callable[[str, Any, bool], Awaitable[scp.Status]]] = {
            "Topic": self.topic_ctl.create_request, "SmartModule": self.smartmodules.create_request,
            **{label: o.create_request for label, o in self.stored.items()}}
        self.deleters: dict[str, Callable[[str, bool], scp.Status]] = {
            "Topic": self._delete_topic, "SmartModule": self.smartmodules.delete_request,
            **{label: o.delete_request for label, o in self.stored.items()}}
        self.public = srv.Service("sc-public", {
            API_VERSIONS_KEY: self._api_versions,
            scp.ScApiKey.CREATE: self._create, scp.ScApiKey.DELETE: self._delete,
            scp.ScApiKey.LIST: self._list, scp.ScApiKey.WATCH: self._watch, scp.ScApiKey.UPDATE: self._update,
            fa.ALLOCATE_PRODUCER_ID: self._allocate_producer_id,     # fluvial-only: never advertised
            fa.TOPIC_SETTINGS: self._topic_settings, fa.PARTITION_DETAILS: self._partition_details,
            fa.ELECT_LEADER: self._elect_leader, fa.MOVE_PARTITION: self._move_partition,
            fa.CLUSTER_HEALTH: self._cluster_health,
        })
        self.private = srv.Service("sc-private", {
            i.REGISTER_SPU: self._register, i.HEARTBEAT: self._heartbeat, i.WATCH_ASSIGNMENTS: self._assignments,
            i.WATCH_SMARTMODULES: self._watch_smartmodules, i.FETCH_SMARTMODULE: self._fetch_smartmodule,
        }, on_disconnect=self._spu_disconnected)

    # ========================================================================================= life

    async def start(self) -> None:
        # Every SPU starts offline until it registers again; the system topic always exists.
        for meta in list(self.spus.values()):
            if meta.status.resolution is not md.SpuResolution.OFFLINE:
                meta.status = md.SpuStatus(md.SpuResolution.OFFLINE)
                self.spus.put(meta.name, meta)
        self.replication.hold_elections_until = time.monotonic() + self.config.spu_offline_after_seconds
        self._elections_held = True
        self.topic_ctl.start()
        cfg = self.config
        await self._listen((cfg.public_host, cfg.public_port), (cfg.private_host, cfg.private_port))
        self._tasks.append(asyncio.ensure_future(self._liveness()))
        logger.info("sc_started public=%s:%d private=%s:%d data_dir=%s topics=%d", cfg.public_host,
                    self.public_port, cfg.private_host, self.private_port, cfg.data_dir, len(self.topics.objects))

    async def stop(self) -> None:
        if self._cleanup_task is not None:
            self._cleanup_task.cancel()
        await self._close_services()
        self.backend.close()

    # ==================================================================================== public API

    async def _api_versions(self, conn: srv.Connection, h: RequestHeader, body: Reader) -> None:
        decode_from(ApiVersionsRequest, body, h.api_version)
        keys = [ApiVersionKey(int(k), lo, hi) for k, (lo, hi) in SC_API_RANGES.items()]
        resp = ApiVersionsResponse(OK, keys, d.PLATFORM_VERSION)
        await conn.send(h.correlation_id, encode(resp, h.api_version))

    async def _allocate_producer_id(self, conn: srv.Connection, h: RequestHeader, body: Reader) -> None:
        req = decode_from(fa.AllocateProducerIdRequest, body, fa.FLUVIAL_API_VERSION)
        try:
            producer_id = await asyncio.to_thread(self.backend.increment, PRODUCER_ID_COUNTER)
        except MetadataUnavailable as e:      # the client then produces without idempotence
            resp = fa.AllocateProducerIdResponse(WireError.of(ErrorCode.OTHER, str(e)), -1, -1)
        else:
            logger.debug("producer_id_allocated producer_id=%d client_id=%s", producer_id,
                         req.client_id or h.client_id)
            metrics.PRODUCER_IDS_ALLOCATED.inc()            # one per producer: counted, not logged at INFO
            resp = fa.AllocateProducerIdResponse(OK, producer_id, 0)
        await conn.send(h.correlation_id, encode(resp, fa.FLUVIAL_API_VERSION))

    def _typed(self, h: RequestHeader, body: Reader) -> tuple[str, object]:
        """The label and request; `UnknownObjectType` for a label this SC does not hold (answered with an
        error or an empty set by the caller, never a closed connection)."""
        lo, hi = SC_API_RANGES[scp.ScApiKey(h.api_key)]
        if not lo <= h.api_version <= hi:
            raise ProtocolError(f"api {h.api_key} version {h.api_version} not in {lo}..{hi}")
        return scp.decode_typed_request(h.api_key, body.take(body.remaining()), h.api_version)

    async def _create(self, conn: srv.Connection, h: RequestHeader, body: Reader) -> None:
        try:
            label, req = self._typed(h, body)
        except scp.UnknownObjectType as e:
            status = status_of(e.name, ErrorCode.INVALID_CREATE_REQUEST, f"unknown object type {e.label!r}")
        else:
            create = self.creators.get(label)
            if create is None:
                status = status_of(req.name, ErrorCode.INVALID_CREATE_REQUEST, f"cannot create {label} objects")
            else:
                status = await create(req.name, req.spec, req.dry_run)
        await conn.send(h.correlation_id, encode(status, h.api_version))

    async def _delete(self, conn: srv.Connection, h: RequestHeader, body: Reader) -> None:
        try:
            label, req = self._typed(h, body)
        except scp.UnknownObjectType as e:
            status = status_of(e.name, ErrorCode.INVALID_DELETE_REQUEST, f"unknown object type {e.label!r}")
            await conn.send(h.correlation_id, encode(status, h.api_version))
            return
        delete = self.deleters.get(label)
        if delete is None:
            status = status_of(req.key, ErrorCode.INVALID_DELETE_REQUEST, f"cannot delete {label} objects")
        else:
            status = delete(req.key, req.force)
        await conn.send(h.correlation_id, encode(status, h.api_version))

    def _delete_topic(self, name: str, force: bool) -> scp.Status:
        meta = self.topics.get(name)
        if meta is None:
            return status_of(name, ErrorCode.TOPIC_NOT_FOUND, "not found")
        if meta.spec.system and not force:
            return scp.Status(name, WireError.of(ErrorCode.SYSTEM_SPEC_DELETION_ATTEMPT, "topic", name), None)
        try:
            self.topic_ctl.delete(name)
        except MetadataUnavailable as e:
            return status_of(name, ErrorCode.OTHER, str(e))
        self.offset_cleanups.add(name)
        self._cleanup_offsets_soon()
        return status_of(name, ErrorCode.NONE, None)

    def _cleanup_offsets_soon(self) -> None:
        if self.offset_cleanups and (self._cleanup_task is None or self._cleanup_task.done()):
            self._cleanup_task = asyncio.ensure_future(self._forget_consumer_offsets())

    async def _forget_consumer_offsets(self) -> None:
        """Consumer offsets go with their topic, as Fluvio's SPU drops them with a removed replica
        (`fluvio-spu/src/core/global_context.rs:379-391` of v0.17.3): the SPU leading `consumer-offset-0`
        is asked to delete every offset stored for each deleted topic. What it cannot take now is tried
        again when an SPU registers (not across an SC restart)."""
        leader = self.partitions.get(rules.partition_name(d.CONSUMER_OFFSET_TOPIC, 0))
        spu = self.spus.get(str(leader.spec.leader)) if leader is not None else None
        if spu is None or spu.spec.id not in self.sessions:
            return
        while self.offset_cleanups:          # topics deleted meanwhile are taken too
            topic = min(self.offset_cleanups)
            try:
                await _delete_topic_offsets(spu.spec.private_endpoint, topic)
            except FluvialError as e:
                logger.warning("offset_cleanup_deferred topic=%s spu=%d error=%s", topic, spu.spec.id, e)
                return
            self.offset_cleanups.discard(topic)

    async def _update(self, conn: srv.Connection, h: RequestHeader, body: Reader) -> None:
        """Update (1006): `AddPartition` of a topic; `AddMirror` (mirroring) is not built."""
        label, req = self._typed(h, body)
        if label != "Topic" or not isinstance(req.action, scp.AddPartition):
            status = status_of(req.key, ErrorCode.OTHER, f"{label} update {type(req.action).__name__} is not supported")
        else:
            status = await self.topic_ctl.add_partitions(req.key, req.action.count)
        await conn.send(h.correlation_id, encode(status, h.api_version))

    async def _list(self, conn: srv.Connection, h: RequestHeader, body: Reader) -> None:
        try:
            label, req = self._typed(h, body)
        except scp.UnknownObjectType as e:     # a label of Fluvio's this SC holds none of: an empty list
            await conn.send(h.correlation_id, scp.encode_empty_list(e.label, h.api_version))
            return
        obj = scp.object_type(label)
        if label == "SmartModule":
            items = self.smartmodules.listing(req.name_filters, req.summary)
        else:
            items = [m for m in self.stores[label].values() if _matches(m, req, label)]
            items = [_for_version(label, m, h.api_version) for m in items]
        await conn.send(h.correlation_id, scp.encode_typed(label, obj.list_response(items), h.api_version))

    async def _watch(self, conn: srv.Connection, h: RequestHeader, body: Reader) -> None:
        try:
            label, _req = self._typed(h, body)
        except scp.UnknownObjectType as e:     # nothing to watch: one empty full set, then no changes
            await conn.send(h.correlation_id, scp.encode_empty_update(e.label, h.api_version))
            return
        store = self.stores[label]
        obj = scp.object_type(label)
        version = h.api_version

        async def stream() -> None:
            # Registered inside the task, with nothing awaited before the `try`: a task cancelled before
            # it starts (a connection closed at once) registers nothing, every other path unregisters.
            watcher, epoch, snapshot = store.watch()
            try:
                full = obj.metadata_update(epoch, [], [_for_version(label, m, version) for m in snapshot])
                await conn.send(h.correlation_id, scp.encode_typed(label, full, version))
                while True:
                    changes = await watcher.next_changes()
                    msgs = [obj.change(scp.MsgType(int(kind)), _for_version(label, m, version)) for kind, m in changes]
                    update = obj.metadata_update(store.epoch, msgs, [])
                    await conn.send(h.correlation_id, scp.encode_typed(label, update, version))
            finally:
                store.unwatch(watcher)

        conn.spawn(stream())

    # ============================================================== fluvial-only replication API

    async def _topic_settings(self, conn: srv.Connection, h: RequestHeader, body: Reader) -> None:
        req = decode_from(fa.TopicSettingsRequest, body, fa.FLUVIAL_API_VERSION)
        meta = self.topics.get(req.topic)
        problem = None
        if meta is None:
            problem = (ErrorCode.TOPIC_NOT_FOUND, f"topic {req.topic!r} not found")
        else:
            rf = meta.spec.replicas.replication_factor if isinstance(meta.spec.replicas, md.TopicReplicaParam) \
                else 1
            m = req.settings.min_in_sync
            if m != -1 and not 1 <= m <= rf:
                problem = (ErrorCode.TOPIC_INVALID_CONFIGURATION,
                           f"min-in-sync-replicas {m} must be between 1 and the replication factor {rf}")
        if problem is None:
            try:
                self.replication.set_settings(req.topic, req.settings)
                resp = fa.AdminResponse(OK, None)
            except MetadataUnavailable as e:
                resp = fa.AdminResponse(WireError.of(ErrorCode.OTHER, str(e)), str(e))
        else:
            resp = fa.AdminResponse(WireError(problem[0]), problem[1])
        await conn.send(h.correlation_id, encode(resp, fa.FLUVIAL_API_VERSION))

    async def _partition_details(self, conn: srv.Connection, h: RequestHeader, body: Reader) -> None:
        req = decode_from(fa.PartitionDetailsRequest, body, fa.FLUVIAL_API_VERSION)
        out = []
        for m in sorted(self.partitions.values(), key=lambda m: rules.parse_partition_name(m.name) or (m.name, 0)):
            parsed = rules.parse_partition_name(m.name)
            if parsed is None or (req.topic is not None and parsed[0] != req.topic) or \
                    (req.topic is None and m.spec.system):
                continue
            out.append(self.replication.details(m.name))
        if req.topic is not None and self.topics.get(req.topic) is None:
            resp = fa.PartitionDetailsResponse(WireError(ErrorCode.TOPIC_NOT_FOUND), [])
        else:
            resp = fa.PartitionDetailsResponse(OK, out)
        await conn.send(h.correlation_id, encode(resp, fa.FLUVIAL_API_VERSION))

    async def _cluster_health(self, conn: srv.Connection, h: RequestHeader, body: Reader) -> None:
        decode_from(fa.ClusterHealthRequest, body, fa.FLUVIAL_API_VERSION)
        await conn.send(h.correlation_id, encode(self.cluster_health(), fa.FLUVIAL_API_VERSION))

    def cluster_health(self) -> fa.ClusterHealthResponse:
        leads: dict[int, int] = {}
        unwritable = []
        for m in self.partitions.values():
            leads[m.spec.leader] = leads.get(m.spec.leader, 0) + 1
            if m.status.resolution in (md.PartitionResolution.LEADER_OFFLINE, md.PartitionResolution.OUT_OF_STORAGE,
                                       md.PartitionResolution.OFFLINE):
                unwritable.append((m.name, md.PartitionResolution(m.status.resolution).name))
        spus, views = [], []
        for m in sorted(self.spus.values(), key=lambda m: m.spec.id):
            spu_id = m.spec.id
            session = self.sessions.get(spu_id)
            online = session is not None and m.status.resolution is md.SpuResolution.ONLINE
            dirs = list(session.dirs) if session is not None else []
            state, reason = sc_health.spu_state(online, dirs, session.replicas if session is not None else [])
            host = m.spec.public_endpoint.ingress[0].hostname if m.spec.public_endpoint.ingress else ""
            spus.append(fa.SpuHealthDetail(spu_id, state.value, reason, f"{host}:{m.spec.public_endpoint.port}",
                                           leads.get(spu_id, 0), dirs))
            views.append((spu_id, online, dirs))
        error = getattr(getattr(self.backend, "health", None), "error", None)
        found = sc_health.alerts(views, unwritable, error, self.overcommit())
        return fa.ClusterHealthResponse(OK, spus, [fa.AlertEntry(a.severity, a.name, a.subject, a.message)
                                                   for a in found], error)

    def overcommit(self) -> dict[int, tuple[int, int]]:
        """SPUs whose placed explicit partition sizes exceed their disk (from their last heartbeats)."""
        placed = [(list(m.spec.replicas), m.spec.storage.max_partition_size if m.spec.storage else None)
                  for m in self.partitions.values() if not m.spec.system]   # the system topic's size is a default
        return sc_health.overcommitted(placed, {s: list(x.dirs) for s, x in self.sessions.items()})

    async def _elect_leader(self, conn: srv.Connection, h: RequestHeader, body: Reader) -> None:
        req = decode_from(fa.ElectLeaderRequest, body, fa.FLUVIAL_API_VERSION)
        why = self.replication.elect_leader(rules.partition_name(req.topic, req.partition),
                                            None if req.spu_id < 0 else req.spu_id)
        resp = fa.AdminResponse(OK, None) if why is None else fa.AdminResponse(WireError(ErrorCode.OTHER), why)
        await conn.send(h.correlation_id, encode(resp, fa.FLUVIAL_API_VERSION))

    async def _move_partition(self, conn: srv.Connection, h: RequestHeader, body: Reader) -> None:
        req = decode_from(fa.MovePartitionRequest, body, fa.FLUVIAL_API_VERSION)
        why = self.replication.move(rules.partition_name(req.topic, req.partition), list(req.replicas))
        resp = fa.AdminResponse(OK, None) if why is None else fa.AdminResponse(WireError(ErrorCode.OTHER), why)
        await conn.send(h.correlation_id, encode(resp, fa.FLUVIAL_API_VERSION))

    # ================================================================================== private API

    async def _register(self, conn: srv.Connection, h: RequestHeader, body: Reader) -> None:
        req = decode_from(i.RegisterSpuRequest, body, 0)
        name = str(req.spu_id)
        existing = self.spus.get(name)
        spu_type = existing.spec.spu_type if existing is not None else md.SpuType.CUSTOM
        spec = md.SpuSpec(
            id=req.spu_id, spu_type=spu_type,
            public_endpoint=md.IngressPort(req.public_port, [md.IngressAddr(req.public_host, None)],
                                           md.EncryptionType.PLAINTEXT),
            private_endpoint=md.Endpoint(req.private_port, req.private_host, md.EncryptionType.PLAINTEXT),
            rack=req.rack,
        )
        old = self.sessions.get(req.spu_id)
        if old is not None and old.conn is not conn:
            silent = time.monotonic() - old.last_seen
            if silent <= self.config.spu_offline_after_seconds and not old.conn.closed.is_set():
                logger.warning("spu_registration_refused spu=%d reason=live_session silent=%.1fs", req.spu_id,
                               silent)
                await conn.send(h.correlation_id, encode(i.RegisterSpuResponse(
                    WireError(ErrorCode.SPU_ALREADY_EXISTS),
                    f"SPU {req.spu_id} is registered by a live process"), 0))
                return
            await old.conn.close()
        self.sessions[req.spu_id] = SpuSession(req.spu_id, conn, time.monotonic())
        conn.state["spu_id"] = req.spu_id
        self.spus.put(name, scp.SPU.metadata(name, spec, md.SpuStatus(md.SpuResolution.ONLINE)))
        logger.info("spu_online spu=%d public=%s:%d custom=%s", req.spu_id, req.public_host, req.public_port,
                    existing is None)
        await conn.send(h.correlation_id, encode(i.RegisterSpuResponse(OK, None), 0))
        self._spu_back_online(req.spu_id)

    async def _heartbeat(self, conn: srv.Connection, h: RequestHeader, body: Reader) -> None:
        req = decode_from(i.HeartbeatRequest, body, 0)
        session = self.sessions.get(req.spu_id)
        if session is None or session.conn is not conn:
            raise ProtocolError(f"heartbeat from unregistered SPU {req.spu_id}")
        session.last_seen = time.monotonic()
        session.health, session.dirs, session.replicas = req.health, list(req.dirs), list(req.replicas)
        self.replication.observe(req.spu_id, list(req.dirs), list(req.replicas))
        await conn.send(h.correlation_id, encode(i.HeartbeatResponse(OK), 0))

    async def _assignments(self, conn: srv.Connection, h: RequestHeader, body: Reader) -> None:
        req = decode_from(i.WatchAssignmentsRequest, body, 0)
        session = self.sessions.get(req.spu_id)
        if session is None or session.conn is not conn:
            raise ProtocolError(f"assignment watch from unregistered SPU {req.spu_id}")
        wake = asyncio.Event()
        session.watchers.append(wake)

        async def stream() -> None:
            full = True
            while True:
                update = i.AssignmentUpdate(self.assignment_epoch, full,
                                            assignments_for(req.spu_id, self.partitions.values(), self.replication),
                                            peer_list(self.spus.values()))
                await conn.send(h.correlation_id, encode(update, 0))
                full = True   # always the whole (small) set for this SPU: the SPU diffs it
                await wake.wait()
                wake.clear()

        conn.spawn(stream())

    async def _watch_smartmodules(self, conn: srv.Connection, h: RequestHeader, body: Reader) -> None:
        decode_from(i.WatchSmartModulesRequest, body, 0)
        store = self.smartmodule_store

        async def stream() -> None:
            watcher, _epoch, snapshot = store.watch()
            try:
                await conn.send(h.correlation_id, encode(SmartModuleController.full_update(snapshot), 0))
                while True:
                    changes = await watcher.next_changes()
                    await conn.send(h.correlation_id, encode(SmartModuleController.changes_update(changes), 0))
            finally:
                store.unwatch(watcher)

        conn.spawn(stream())

    async def _fetch_smartmodule(self, conn: srv.Connection, h: RequestHeader, body: Reader) -> None:
        req = decode_from(i.FetchSmartModuleRequest, body, 0)
        await conn.send(h.correlation_id, encode(self.smartmodules.fetch(req.name), 0))

    def _push_assignments(self) -> None:
        self.assignment_epoch += 1
        for session in self.sessions.values():
            for wake in session.watchers:
                wake.set()

    # ==================================================================================== liveness

    async def _spu_disconnected(self, conn: srv.Connection) -> None:
        spu_id = conn.state.get("spu_id")
        if isinstance(spu_id, int) and (s := self.sessions.get(spu_id)) is not None and s.conn is conn:
            self._mark_offline(spu_id, "connection closed")

    async def _liveness(self) -> None:
        while True:
            await asyncio.sleep(self.config.spu_offline_after_seconds / 4)
            behind = getattr(self.backend, "behind", None)
            if behind is not None and behind.pending:    # writes the metadata store refused earlier
                behind.flush()
            if self._elections_held and time.monotonic() >= self.replication.hold_elections_until:
                self._elections_held = False    # every SPU had its chance to register: elect where needed
                logger.info("elections_resumed online_spus=%s", sorted(self.sessions))
                self.replication.reconcile_all()
                self._push_assignments()
            now = time.monotonic()
            for spu_id, s in list(self.sessions.items()):
                if now - s.last_seen > self.config.spu_offline_after_seconds:
                    self._mark_offline(spu_id, f"no heartbeat for {now - s.last_seen:.1f}s")
                    await s.conn.close()

    def _mark_offline(self, spu_id: int, reason: str) -> None:
        self.sessions.pop(spu_id, None)
        meta = self.spus.get(str(spu_id))
        if meta is not None and meta.status.resolution is not md.SpuResolution.OFFLINE:
            meta.status = md.SpuStatus(md.SpuResolution.OFFLINE)
            self.spus.put(str(spu_id), meta)
            logger.warning("spu_offline spu=%d reason=%s", spu_id, reason)
        self.replication.reconcile_all()      # its partitions get new leaders from their ISRs
        self._push_assignments()

    def _spu_back_online(self, spu_id: int) -> None:
        """Partitions it led that nobody could take over come back under a new epoch; the system topic
        grows towards three replicas."""
        self.topic_ctl.schedule_pending()
        self.replication.reconcile_all()
        self.topic_ctl.grow_system_topic()
        self._push_assignments()
        self._cleanup_offsets_soon()

async def _delete_topic_offsets(endpoint: md.Endpoint, topic: str) -> None:
    """Ask an SPU (its private port) to drop the stored consumer offsets of `topic`."""
    conn = await ClientConnection.connect(endpoint.host, endpoint.port, timeout=d.CLIENT_REQUEST_TIMEOUT_SECONDS)
    try:
        r = await conn.request(i.PEER_DELETE_TOPIC_OFFSETS, 0, encode(i.DeleteTopicOffsetsRequest(topic), 0),
                               timeout=d.CLIENT_REQUEST_TIMEOUT_SECONDS)
        err = decode_from(i.DeleteTopicOffsetsResponse, r, 0).error_code
    finally:
        await conn.close()
    if not err.ok:
        raise ServerError(err.code, "offsets not deleted")


def _matches(meta: object, req: scp.ListRequest, label: str) -> bool:
    name = meta.name  # type: ignore[attr-defined]
    if req.name_filters and not any(f in name for f in req.name_filters):
        return False
    if label in ("Topic", "Partition"):
        return bool(meta.spec.system) == bool(req.system)  # type: ignore[attr-defined]
    return True


def _for_version(label: str, meta: object, version: int) -> object:
    """OutOfStorage (tag 4) only for clients at object version >= 19 (older ones fail on it)."""
    if label == "Partition" and version < 19 and meta.status.resolution is md.PartitionResolution.OUT_OF_STORAGE:  # type: ignore[attr-defined]
        import copy

        meta = copy.deepcopy(meta)
        meta.status.resolution = md.PartitionResolution.ONLINE  # type: ignore[attr-defined]
    return meta


__all__ = ["ScConfig", "ScServer"]
