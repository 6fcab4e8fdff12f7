"""Admin calls against the SC public API (`reference/fluvio-wire.md` §8, §9): topics, partitions, SPUs.

    async with await Admin.connect("127.0.0.1", 9003) as admin:
        await admin.create_topic("events", TopicConfig(partitions=3, retention_time=3600))
        names = [t.name for t in await admin.list_topics()]

One `ClientConnection` per Admin; every call has a timeout. Results are frozen dataclasses built from the
wire objects; a refused Create/Delete raises the typed error of its Status code (`fluvial.errors.
admin_error`: TopicAlreadyExists, TopicNotFound, InvalidTopicName, ...). Connection failures raise
`ConnectionLost`, missing answers `RequestTimeout` (both `FluvialError`).
"""

from __future__ import annotations

import types
from dataclasses import dataclass
from typing import Any

from fluvial import defaults as d
from fluvial.client.metadata import public_host
from fluvial.errors import ErrorCode, InvalidConfig, SmartModuleNotFound, admin_error
from fluvial.protocol import codec
from fluvial.protocol import fluvial_api as fa
from fluvial.protocol import metadata as md
from fluvial.protocol import sc as scp
from fluvial.protocol import smartmodule as sm
from fluvial.transport.client import ClientConnection

ADMIN_TIMEOUT_SECONDS = d.CLIENT_REQUEST_TIMEOUT_SECONDS
CREATE_TIMEOUT_MARGIN_SECONDS = d.CLIENT_CREATE_TIMEOUT_MARGIN_SECONDS
U32_MAX = 2**32 - 1
U64_MAX = 2**64 - 1
COMPRESSIONS: dict[str, md.CompressionAlgorithm] = {c.name.lower(): c for c in md.CompressionAlgorithm}

# --------------------------------------------------------------------------------------------- inputs


@dataclass(frozen=True)
class TopicConfig:
    """What `create_topic` asks for. None leaves a setting to the SC's default (Fluvio's: 7 days retention,
    1 GB segments, 100 GB partitions, compression `any`)."""

    partitions: int = 1
    replication: int = 1
    ignore_rack_assignment: bool = False
    retention_time: int | None = None          # seconds
    segment_size: int | None = None            # bytes
    max_partition_size: int | None = None      # bytes
    compression: str | None = None             # none|gzip|snappy|lz4|zstd|any
    system: bool = False
    dry_run: bool = False                      # validate only, create nothing
    min_in_sync_replicas: int | None = None    # fluvial-only: None = min(2, replication)
    unclean_leader_election: bool = False      # fluvial-only: may elect a replica outside the ISR
    # explicit placement ((partition, (SPU ids, leader first)), ...): an "assigned" topic; then
    # partitions/replication/ignore_rack_assignment are not used
    replica_assignment: tuple[tuple[int, tuple[int, ...]], ...] | None = None

    def __post_init__(self) -> None:
        problem = self.problem()
        if problem is not None:
            raise InvalidConfig(problem)

    def problem(self) -> str | None:
        """What makes this config impossible to encode, or None. (The SC checks the minimums.)"""
        for field, value, top in (("partitions", self.partitions, U32_MAX), ("replication", self.replication, U32_MAX),
                                  ("retention_time", self.retention_time, U32_MAX),
                                  ("segment_size", self.segment_size, U32_MAX),
                                  ("max_partition_size", self.max_partition_size, U64_MAX)):
            if value is not None and not 0 <= value <= top:
                return f"{field} {value} is out of range (0..{top})"
        if self.compression is not None and self.compression.lower() not in COMPRESSIONS:
            return (f"unknown compression type {self.compression!r} "
                    f"(one of {', '.join(sorted(COMPRESSIONS))})")
        if self.min_in_sync_replicas is not None and not 1 <= self.min_in_sync_replicas <= max(1, self.replication):
            return (f"min-in-sync-replicas {self.min_in_sync_replicas} must be between 1 and the replication "
                    f"factor {self.replication}")
        return None

    def to_spec(self) -> md.TopicSpec:
        """The wire `TopicSpec` (computed replica assignment, or assigned with `replica_assignment`)."""
        storage = None
        if self.segment_size is not None or self.max_partition_size is not None:
            storage = md.TopicStorageConfig(self.segment_size, self.max_partition_size)
        replicas: md.ReplicaSpec = md.TopicReplicaParam(self.partitions, self.replication,
                                                        self.ignore_rack_assignment)
        if self.replica_assignment is not None:
            replicas = md.PartitionMaps([md.PartitionMap(p, list(spus), None) for p, spus in self.replica_assignment])
        return md.TopicSpec(
            replicas=replicas,
            cleanup_policy=(md.SegmentBasedPolicy(self.retention_time) if self.retention_time is not None
                            else None),
            storage=storage,
            compression_type=(COMPRESSIONS[self.compression.lower()] if self.compression is not None
                              else md.CompressionAlgorithm.ANY),
            deduplication=None,
            system=self.system,
        )


# -------------------------------------------------------------------------------------------- results


@dataclass(frozen=True)
class TopicInfo:
    name: str
    type: str                                  # computed | assigned | mirror
    partitions: int | None                     # None unless computed
    replication: int | None
    ignore_rack_assignment: bool
    retention_seconds: int                     # effective (the default when the topic sets none)
    segment_size: int | None
    max_partition_size: int | None
    compression: md.CompressionAlgorithm
    deduplication: str | None                  # the dedup filter's module, if any
    system: bool
    resolution: md.TopicResolution
    reason: str
    replica_map: dict[int, tuple[int, ...]]    # partition -> SPU ids, leader first


@dataclass(frozen=True)
class ReplicaOffsets:
    spu: int
    hw: int
    leo: int


@dataclass(frozen=True)
class PartitionInfo:
    topic: str
    partition: int
    leader: int
    replicas: tuple[int, ...]                  # leader first
    resolution: md.PartitionResolution
    size: int                                  # bytes; PARTITION_SIZE_ERROR / _NOT_SUPPORTED below 0
    base_offset: int
    hw: int
    leo: int
    lsr: int                                   # followers in sync with the leader
    followers: tuple[ReplicaOffsets, ...]
    is_being_deleted: bool
    system: bool

    @property
    def status(self) -> str:
        """One word for humans: online, offline, leader-offline, election-leader-found, out-of-storage,
        or deleting."""
        if self.is_being_deleted:
            return "deleting"
        return self.resolution.name.lower().replace("_", "-")


@dataclass(frozen=True)
class SpuInfo:
    id: int
    name: str
    resolution: md.SpuResolution
    spu_type: md.SpuType
    rack: str | None
    address: str                               # public HOST:PORT (what clients dial)
    private_address: str
    leads: int = 0                             # partitions led (cluster_status only)

    @property
    def online(self) -> bool:
        return self.resolution is md.SpuResolution.ONLINE


def topic_info(m: Any) -> TopicInfo:
    """A Topic metadata object as a TopicInfo."""
    spec: md.TopicSpec = m.spec
    r = spec.replicas
    computed = isinstance(r, md.TopicReplicaParam)
    kind = "computed" if computed else "assigned" if isinstance(r, md.PartitionMaps) else "mirror"
    storage = spec.storage
    return TopicInfo(
        name=m.name, type=kind,
        partitions=r.partitions if computed else None,
        replication=r.replication_factor if computed else None,
        ignore_rack_assignment=bool(r.ignore_rack_assignment) if computed else False,
        retention_seconds=(spec.cleanup_policy.time_in_seconds if spec.cleanup_policy is not None
                           else d.RETENTION_SECONDS),
        segment_size=storage.segment_size if storage else None,
        max_partition_size=storage.max_partition_size if storage else None,
        compression=spec.compression_type,
        deduplication=spec.deduplication.filter.transform.uses if spec.deduplication else None,
        system=bool(spec.system),
        resolution=m.status.resolution, reason=m.status.reason,
        replica_map={int(p): tuple(s) for p, s in sorted(m.status.replica_map.items())},
    )


def partition_info(m: Any) -> PartitionInfo:
    """A Partition metadata object as a PartitionInfo."""
    topic, sep, part = m.name.rpartition("-")
    if not sep or not part.isdigit():
        topic, part = m.name, "-1"
    spec: md.PartitionSpec = m.spec
    st: md.PartitionStatus = m.status
    return PartitionInfo(
        topic=topic, partition=int(part), leader=spec.leader, replicas=tuple(spec.replicas),
        resolution=st.resolution, size=st.size, base_offset=st.base_offset, hw=st.leader.hw, leo=st.leader.leo,
        lsr=st.lsr, followers=tuple(ReplicaOffsets(f.spu, f.hw, f.leo) for f in st.replicas),
        is_being_deleted=bool(st.is_being_deleted), system=bool(spec.system),
    )


def _public_address(spec: md.SpuSpec) -> str:
    return f"{public_host(spec)}:{spec.public_endpoint.port}"


def spu_info(m: Any, leads: int = 0) -> SpuInfo:
    """An SPU metadata object as an SpuInfo."""
    spec: md.SpuSpec = m.spec
    return SpuInfo(id=spec.id, name=m.name, resolution=m.status.resolution, spu_type=spec.spu_type, rack=spec.rack,
                   address=_public_address(spec),
                   private_address=f"{spec.private_endpoint.host}:{spec.private_endpoint.port}", leads=leads)


# ---------------------------------------------------------------------------------------------- Admin


@dataclass(frozen=True)
class SmartModuleInfo:
    name: str                                  # the store key
    fqdn: str                                  # `group/name@version` with package metadata, else the name
    wasm_bytes: int                            # the stored payload's size (gzip or raw, as created)


class Admin:
    """Admin calls over one connection to the SC public port."""

    def __init__(self, conn: ClientConnection, *, timeout: float = ADMIN_TIMEOUT_SECONDS) -> None:
        self._conn = conn
        self.timeout = timeout

    @classmethod
    async def connect(cls, host: str, port: int, *, timeout: float = ADMIN_TIMEOUT_SECONDS) -> Admin:
        """Connect within `timeout` seconds (ConnectionLost otherwise); `timeout` is also each call's."""
        conn = await ClientConnection.connect(host, port, client_id="fluvial-admin", timeout=timeout)
        return cls(conn, timeout=timeout)

    async def __aenter__(self) -> Admin:
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: types.TracebackType | None) -> None:
        await self.close()

    async def close(self) -> None:
        await self._conn.close()

    # ------------------------------------------------------------------------------------- plumbing

    async def _call(self, key: scp.ScApiKey, label: str, msg: Any, timeout: float | None) -> codec.Reader:
        body = scp.encode_typed(label, msg, d.SC_OBJECT_VERSION)
        return await self._conn.request(key, d.SC_OBJECT_VERSION, body,
                                        timeout=self.timeout if timeout is None else timeout)

    async def _status(self, key: scp.ScApiKey, label: str, msg: Any, name: str,
                      timeout: float | None) -> scp.Status:
        """The SC's Status of a successful call; raises the typed error of an error status."""
        r = await self._call(key, label, msg, timeout)
        status = codec.decode(scp.Status, r.take(r.remaining()), d.SC_OBJECT_VERSION)
        if not status.error_code.ok:
            raise admin_error(status.error_code.code, status.name or name,
                              status.error_message or _payload_text(status.error_code), kind=label.lower())
        return status

    async def _status_call(self, key: scp.ScApiKey, label: str, msg: Any, name: str,
                           timeout: float | None) -> str | None:
        """None, or the SC's message on a success (a warning); raises on an error status."""
        return (await self._status(key, label, msg, name, timeout)).error_message

    async def list_objects(self, label: str, *, names: list[str] | None = None, system: bool = False,
                           summary: bool = False, timeout: float | None = None) -> list[Any]:
        """Raw metadata objects (`scp.OBJECT_TYPES[label].metadata`) of "Topic", "Partition", "SPU",
        "SmartModule" or "TableFormat".
        `names`: objects whose name contains one of them (the SC's filter; SmartModules: qualified names);
        `system`: system objects only (topics and partitions), else non-system ones; `summary`: SmartModules
        without their payloads."""
        r = await self._call(scp.ScApiKey.LIST, label, scp.ListRequest(list(names or []), summary, system), timeout)
        _label, resp = scp.decode_typed_response(scp.ScApiKey.LIST, r.take(r.remaining()), d.SC_OBJECT_VERSION)
        return list(resp.objects)

    # --------------------------------------------------------------------------------------- topics

    async def create_topic(self, name: str, config: TopicConfig | None = None, *,
                           timeout: float | None = None) -> str | None:
        """Create topic `name`; returns when the SC reports every partition online (or raises), with the
        SC's warning if it has one (e.g. partition sizes placed beyond an SPU's disk), else None. The
        default timeout covers the SC's own provisioning wait."""
        config = config or TopicConfig()
        req = scp.TOPIC.create_request(name=name, dry_run=config.dry_run, timeout_ms=None, spec=config.to_spec())
        if timeout is None:
            timeout = max(self.timeout, d.TOPIC_WAIT_SECONDS + CREATE_TIMEOUT_MARGIN_SECONDS)
        warning = await self._status_call(scp.ScApiKey.CREATE, "Topic", req, name, timeout)
        if not config.dry_run and (config.min_in_sync_replicas is not None or config.unclean_leader_election):
            await self.set_replication_settings(name, config.min_in_sync_replicas, config.unclean_leader_election)
        return warning

    # ---------------------------------------------------------------- replication (fluvial-only APIs)

    async def _fluvial_call(self, key: int, msg: Any, name: str, timeout: float | None = None) -> codec.Reader:
        return await self._conn.request(key, fa.FLUVIAL_API_VERSION, codec.encode(msg, fa.FLUVIAL_API_VERSION),
                                        timeout=self.timeout if timeout is None else timeout)

    async def _admin_call(self, key: int, msg: Any, name: str, kind: str) -> None:
        r = await self._fluvial_call(key, msg, name)
        resp = codec.decode(fa.AdminResponse, r.take(r.remaining()), fa.FLUVIAL_API_VERSION)
        if not resp.error_code.ok:
            raise admin_error(resp.error_code.code, name, resp.message or _payload_text(resp.error_code), kind=kind)

    async def set_replication_settings(self, topic: str, min_in_sync: int | None = None,
                                       unclean_leader_election: bool = False) -> None:
        """fluvial-only topic settings: min in-sync replicas (None: min(2, rf)), unclean leader election."""
        settings = fa.TopicReplicationSettings(-1 if min_in_sync is None else min_in_sync, unclean_leader_election)
        await self._admin_call(fa.TOPIC_SETTINGS, fa.TopicSettingsRequest(topic, settings), topic, "topic")

    async def partition_details(self, topic: str | None = None) -> list[fa.PartitionDetail]:
        """Leader, epoch, ISR and per-replica LEO/lag of a topic's partitions (every non-system topic's)."""
        r = await self._fluvial_call(fa.PARTITION_DETAILS, fa.PartitionDetailsRequest(topic), topic or "")
        resp = codec.decode(fa.PartitionDetailsResponse, r.take(r.remaining()), fa.FLUVIAL_API_VERSION)
        if not resp.error_code.ok:
            raise admin_error(resp.error_code.code, topic or "", f'topic "{topic}" not found')
        return list(resp.partitions)

    async def cluster_health(self) -> fa.ClusterHealthResponse:
        """Every SPU's state (online / degraded / offline) with its reason and data dirs, the SC's active
        alerts, and the metadata store's write error if any."""
        r = await self._fluvial_call(fa.CLUSTER_HEALTH, fa.ClusterHealthRequest(), "")
        return codec.decode(fa.ClusterHealthResponse, r.take(r.remaining()), fa.FLUVIAL_API_VERSION)

    async def elect_leader(self, topic: str, partition: int, spu: int | None = None) -> None:
        """Move leadership to the preferred replica (first of the list) or to `spu`, if it is in sync."""
        await self._admin_call(fa.ELECT_LEADER, fa.ElectLeaderRequest(topic, partition, -1 if spu is None else spu),
                               f"{topic}-{partition}", "partition")

    async def move_partition(self, topic: str, partition: int, replicas: list[int]) -> None:
        """Re-replicate a partition onto `replicas` (new followers catch up, then the old ones go)."""
        await self._admin_call(fa.MOVE_PARTITION, fa.MovePartitionRequest(topic, partition, list(replicas)),
                               f"{topic}-{partition}", "partition")

    async def add_partitions(self, name: str, count: int, *, timeout: float | None = None) -> dict[int, tuple[int, ...]]:
        """Grow computed topic `name` by `count` partitions (SC Update API 1006, `AddPartition`); returns
        the new partitions' replicas {partition: SPU ids, leader first} once they are online."""
        before = set((await self.describe_topic(name, timeout=timeout)).replica_map)
        req = scp.TopicUpdateRequest(name, scp.AddPartition(count))
        if timeout is None:
            timeout = max(self.timeout, d.TOPIC_WAIT_SECONDS + CREATE_TIMEOUT_MARGIN_SECONDS)
        await self._status_call(scp.ScApiKey.UPDATE, "Topic", req, name, timeout)
        after = (await self.describe_topic(name)).replica_map
        return {p: r for p, r in after.items() if p not in before}

    # --------------------------------------------------------------------------------- table formats

    async def create_table_format(self, spec: md.TableFormatSpec, *, timeout: float | None = None) -> None:
        """Store a TableFormat (how `consume -O full-table` lays records out); named by `spec.name`."""
        req = scp.TABLE_FORMAT.create_request(name=spec.name, dry_run=False, timeout_ms=None, spec=spec)
        await self._status_call(scp.ScApiKey.CREATE, "TableFormat", req, spec.name, timeout)

    async def list_table_formats(self, *, timeout: float | None = None) -> list[Any]:
        """TableFormat metadata objects (name, spec, status), sorted by name."""
        return sorted(await self.list_objects("TableFormat", timeout=timeout), key=lambda m: m.name)

    async def delete_table_format(self, name: str, *, timeout: float | None = None) -> None:
        req = scp.TABLE_FORMAT.delete_request(key=name, force=False)
        await self._status_call(scp.ScApiKey.DELETE, "TableFormat", req, name, timeout)

    async def delete_topic(self, name: str, *, force: bool = False, timeout: float | None = None) -> None:
        """Delete topic `name` (TopicNotFound if there is none). `force` is needed for system topics."""
        req = scp.TOPIC.delete_request(key=name, force=force)
        await self._status_call(scp.ScApiKey.DELETE, "Topic", req, name, timeout)

    async def list_topics(self, names: list[str] | None = None, *, system: bool = False,
                          timeout: float | None = None) -> list[TopicInfo]:
        """Topics sorted by name; with `names`, only the topics with exactly those names."""
        objs = await self.list_objects("Topic", names=names, system=system, timeout=timeout)
        wanted = set(names or ())
        return sorted((topic_info(m) for m in objs if not wanted or m.name in wanted), key=lambda t: t.name)

    async def describe_topic(self, name: str, *, timeout: float | None = None) -> TopicInfo:
        """One topic, system or not; TopicNotFound when there is none."""
        for system in (False, True):
            found = await self.list_topics([name], system=system, timeout=timeout)
            if found:
                return found[0]
        raise admin_error(ErrorCode.TOPIC_NOT_FOUND, name, f'topic "{name}" not found')

    # ---------------------------------------------------------------------------------- SmartModules

    async def create_smartmodule(self, name: str, wasm: bytes, *, dry_run: bool = False,
                                 timeout: float | None = None) -> str:
        """Store a SmartModule (raw wasm; sent gzipped, as Fluvio's CLI sends it). Returns its key."""
        try:
            payload = sm.gzip_wasm(sm.raw_wasm(wasm, d.SMARTMODULE_MAX_WASM_BYTES))
        except sm.PayloadError as e:
            raise InvalidConfig(f"SmartModule {name}: {e}") from None
        spec = sm.SmartModuleSpec(None, None, sm.SmartModuleWasm(sm.WasmFormat.BINARY, payload))
        req = scp.SMARTMODULE.create_request(name=name, dry_run=dry_run, timeout_ms=None, spec=spec)
        status = await self._status(scp.ScApiKey.CREATE, "SmartModule", req, name, timeout)
        return status.name or name

    async def list_smartmodules(self, filters: list[str] | None = None, *,
                                timeout: float | None = None) -> list[SmartModuleInfo]:
        """SmartModules (payload sizes only), sorted by name; `filters`: names or `group/name@version`."""
        objs = await self.list_objects("SmartModule", names=filters, summary=True, timeout=timeout)
        return sorted((_smartmodule_info(m) for m in objs), key=lambda x: x.name)

    async def smartmodule_wasm(self, name: str, *, timeout: float | None = None) -> bytes:
        """The module `name` (exact or `group/name@version`) as raw wasm; AdminError 6001 when there is none."""
        objs = await self.list_objects("SmartModule", names=[name], timeout=timeout)
        found = sm.find(name, {m.name: m.spec for m in objs})
        if found is None:
            raise SmartModuleNotFound(name)
        return sm.raw_wasm(found[1].wasm.payload, d.SMARTMODULE_MAX_WASM_BYTES)

    async def delete_smartmodule(self, name: str, *, timeout: float | None = None) -> None:
        """Delete a SmartModule (exact or qualified name). Streams running it keep running."""
        req = scp.SMARTMODULE.delete_request(key=name, force=False)
        await self._status_call(scp.ScApiKey.DELETE, "SmartModule", req, name, timeout)

    async def watch_smartmodules(self) -> Any:
        """Async iterator over Watch updates of SmartModules: first the full set, then each change, as
        (epoch, [(is_delete, SmartModuleInfo)], [SmartModuleInfo])."""
        body = scp.encode_typed("SmartModule", scp.WatchRequest(0, True), d.SC_OBJECT_VERSION)
        async for r in self._conn.stream(scp.ScApiKey.WATCH, d.SC_OBJECT_VERSION, body):
            _label, upd = scp.decode_typed_response(scp.ScApiKey.WATCH, r.take(r.remaining()), d.SC_OBJECT_VERSION)
            yield (upd.epoch, [(c.header is scp.MsgType.DELETE, _smartmodule_info(c.content)) for c in upd.changes],
                   [_smartmodule_info(m) for m in upd.all])

    # ----------------------------------------------------------------------------- partitions, SPUs

    async def list_partitions(self, *, system: bool = False, timeout: float | None = None) -> list[PartitionInfo]:
        """Partitions sorted by (topic, partition)."""
        objs = await self.list_objects("Partition", system=system, timeout=timeout)
        return sorted((partition_info(m) for m in objs), key=lambda p: (p.topic, p.partition))

    async def list_spus(self, *, timeout: float | None = None) -> list[SpuInfo]:
        """SPUs sorted by id."""
        objs = await self.list_objects("SPU", timeout=timeout)
        return sorted((spu_info(m) for m in objs), key=lambda s: s.id)

    async def cluster_status(self, *, timeout: float | None = None) -> list[SpuInfo]:
        """SPUs sorted by id, each with the number of partitions (system ones included) it leads."""
        parts = [*await self.list_partitions(timeout=timeout),
                 *await self.list_partitions(system=True, timeout=timeout)]
        leads: dict[int, int] = {}
        for p in parts:
            leads[p.leader] = leads.get(p.leader, 0) + 1
        objs = await self.list_objects("SPU", timeout=timeout)
        return sorted((spu_info(m, leads.get(m.spec.id, 0)) for m in objs), key=lambda s: s.id)


def _smartmodule_info(meta: Any) -> SmartModuleInfo:
    spec: sm.SmartModuleSpec = meta.spec
    size = spec.summary.wasm_length if spec.summary is not None else len(spec.wasm.payload)
    return SmartModuleInfo(meta.name, spec.meta.package.fqdn() if spec.meta is not None else meta.name, size)


def _payload_text(err: codec.WireError) -> str | None:
    if err.code is ErrorCode.SYSTEM_SPEC_DELETION_ATTEMPT and len(err.payload) == 2:
        kind, name = err.payload
        return f"system {kind} '{name}' can only be deleted forcibly"
    if err.payload and isinstance(err.payload[0], str):
        return err.payload[0]
    return None


# ------------------------------------------------------------------- one-shot helpers (cluster CLI)


async def list_objects(host: str, port: int, label: str, *, system: bool = False,
                       timeout: float = 10.0) -> list[object]:
    async with await Admin.connect(host, port, timeout=timeout) as admin:
        return await admin.list_objects(label, system=system)


async def list_spus(host: str, port: int, *, timeout: float = 10.0) -> list[SpuInfo]:
    async with await Admin.connect(host, port, timeout=timeout) as admin:
        return await admin.list_spus()


async def cluster_status(host: str, port: int, *, timeout: float = 10.0) -> list[SpuInfo]:
    async with await Admin.connect(host, port, timeout=timeout) as admin:
        return await admin.cluster_status()


async def cluster_health(host: str, port: int, *, timeout: float = 10.0) -> fa.ClusterHealthResponse:
    async with await Admin.connect(host, port, timeout=timeout) as admin:
        return await admin.cluster_health()
