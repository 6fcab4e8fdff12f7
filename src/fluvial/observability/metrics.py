"""Prometheus metrics of a fluvial process (served by `--metrics-addr`)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from prometheus_client import Counter, Gauge
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from fluvial.statemachine import Transition

STATE_TRANSITIONS = Counter("fluvial_state_transitions_total", "State machine transitions",
                            ["machine", "to_state"])
PRODUCED_RECORDS = Counter("fluvial_produced_records_total", "Records appended by produce requests")
PRODUCED_BYTES = Counter("fluvial_produced_bytes_total", "Batch bytes appended by produce requests")
PRODUCE_ERRORS = Counter("fluvial_produce_errors_total", "Produce partition entries answered with an error",
                         ["code"])
PRODUCE_DUPLICATES = Counter("fluvial_produce_duplicate_batches_total",
                             "Exact retries of an idempotent producer's batches: acknowledged, not written again")
PRODUCER_IDS_ALLOCATED = Counter("fluvial_sc_producer_ids_allocated", "Producer ids the SC handed out")
REQUESTS = Counter("fluvial_requests_total", "Requests received, by service and API key", ["service", "api_key"])
CONNECTIONS_OPEN = Gauge("fluvial_connections_open", "Accepted connections now open", ["service"])
CONNECTIONS_REFUSED = Counter("fluvial_connections_refused_total",
                              "Connections refused at once: the process was at its connection limit", ["service"])
CONNECTIONS_CLOSED = Counter("fluvial_connections_closed_total",
                             "Connections the server closed on its own (idle, write_timeout)", ["service", "reason"])


_request_counters: dict[tuple[str, int], Any] = {}


def count_request(service: str, api_key: int) -> None:
    """One request received (the labelled child looked up once per service and key: this is per frame)."""
    child = _request_counters.get((service, api_key))
    if child is None:
        child = _request_counters[(service, api_key)] = REQUESTS.labels(service, str(api_key))
    child.inc()


def count_transition(t: Transition) -> None:
    """A state-machine listener: count every transition by machine and target state."""
    STATE_TRANSITIONS.labels(t.machine, t.new.name).inc()


# ------------------------------------------------------------------------------------------ the SC's view


@dataclass(frozen=True)
class Sample:
    name: str
    labels: tuple[tuple[str, str], ...]
    value: float


SC_HELP = {
    "fluvial_sc_topics": "Topics in the SC's metadata",
    "fluvial_sc_partitions": "Partitions by resolution (online, out_of_storage, leader_offline, ...)",
    "fluvial_sc_spus": "SPUs by status",
    "fluvial_sc_data_dir_free_bytes": "Free bytes of each SPU data dir, from its last heartbeat",
    "fluvial_sc_data_dir_reserve_bytes": "The reserve R of each SPU data dir (writes are refused below it)",
    "fluvial_sc_data_dir_state": "1 for the current space state (ok, low, full, failed) of each SPU data dir",
    "fluvial_sc_under_replicated_partitions": "Partitions whose in-sync set is smaller than their replica set",
    "fluvial_sc_partition_isr_size": "In-sync replicas (leader included) of each replicated partition",
    "fluvial_sc_partition_leader_epoch": "Leader epoch of each replicated partition",
    "fluvial_sc_follower_lag_records": "Leader LEO minus the follower's LEO, from the SPUs' last reports",
    "fluvial_sc_watchers": "Open Watch streams per metadata registry (Topic, Partition, SPU)",
}


def sc_samples(topics: Iterable[Any], partitions: Iterable[Any], spus: Iterable[Any],
               sessions: Iterable[Any], watchers: dict[str, int] | None = None,
               replication: Iterable[Any] = ()) -> list[Sample]:
    """Pure: the SC's gauges from its metadata objects, the SPUs' last heartbeats, the open watchers per
    registry and the partitions' replication details (`fluvial_api.PartitionDetail`)."""
    out = [Sample("fluvial_sc_topics", (), float(sum(1 for t in topics if not t.spec.system)))]
    by_resolution: dict[str, int] = {}
    for p in partitions:
        key = p.status.resolution.name.lower()
        by_resolution[key] = by_resolution.get(key, 0) + 1
    out += [Sample("fluvial_sc_partitions", (("resolution", k),), float(v)) for k, v in sorted(by_resolution.items())]
    by_status: dict[str, int] = {}
    for s in spus:
        key = s.status.resolution.name.lower()
        by_status[key] = by_status.get(key, 0) + 1
    out += [Sample("fluvial_sc_spus", (("status", k),), float(v)) for k, v in sorted(by_status.items())]
    for session in sessions:
        for dr in session.dirs:
            labels = (("spu", str(session.spu_id)), ("path", dr.path))
            out.append(Sample("fluvial_sc_data_dir_free_bytes", labels, float(dr.free_bytes)))
            out.append(Sample("fluvial_sc_data_dir_reserve_bytes", labels, float(dr.reserve_bytes)))
            out.append(Sample("fluvial_sc_data_dir_state", (*labels, ("state", dr.state.name.lower())), 1.0))
    under = 0
    for p in replication:
        if len(p.replicas) < 2:
            continue
        part = (("partition", f"{p.topic}-{p.partition}"),)
        in_sync = sum(1 for r in p.replicas if r.in_sync)
        under += in_sync < len(p.replicas)
        out.append(Sample("fluvial_sc_partition_isr_size", part, float(in_sync)))
        out.append(Sample("fluvial_sc_partition_leader_epoch", part, float(p.leader_epoch)))
        for r in p.replicas:
            if r.spu_id != p.leader and r.lag >= 0:
                out.append(Sample("fluvial_sc_follower_lag_records", (*part, ("spu", str(r.spu_id))), float(r.lag)))
    out.append(Sample("fluvial_sc_under_replicated_partitions", (), float(under)))
    out += [Sample("fluvial_sc_watchers", (("registry", k),), float(v)) for k, v in sorted((watchers or {}).items())]
    return out


class ScCollector(Collector):
    """Read the SC's view at scrape time (lists are copied first: the event loop keeps changing them)."""

    def __init__(self, server: Any) -> None:
        self.server = server

    def collect(self) -> Iterator[GaugeMetricFamily]:
        sc = self.server
        names = list(sc.partitions.objects)
        samples = sc_samples(list(sc.topics.values()), list(sc.partitions.values()), list(sc.spus.values()),
                             list(sc.sessions.values()),
                             {label: store.watcher_count for label, store in sc.stores.items()},
                             [sc.replication.details(n) for n in names])
        yield from _families(samples, SC_HELP)


# ------------------------------------------------------------------------------------------ an SPU's own view

SPU_HELP = {
    "fluvial_spu_data_dir_total_bytes": "Size of the filesystem of each data dir (statvfs)",
    "fluvial_spu_data_dir_free_bytes": "Free bytes of each data dir (statvfs, minus what was written since)",
    "fluvial_spu_data_dir_reserve_bytes": "The reserve R of each data dir: a write must leave R free; FULL below 1.25 R",
    "fluvial_spu_data_dir_free_inodes": "Free inodes of each data dir (statvfs f_favail; 0 when the filesystem has no limit)",
    "fluvial_spu_data_dir_state": "1 for the data dir's current space state (ok, low, full, failed), 0 for the others",
    "fluvial_spu_replica_state": "1 for each replica's current state (ok, full, failed), 0 for the others",
}
DIR_STATES = ("ok", "low", "full", "failed")
REPLICA_STATES = ("ok", "full", "failed")


def spu_samples(spu_id: int, dirs: Iterable[Any], replicas: Iterable[tuple[str, int, str]]) -> list[Sample]:
    """Pure: an SPU's gauges from its space guards' snapshots and its replicas' (topic, partition, state)."""
    spu = ("spu", str(spu_id))
    out: list[Sample] = []
    for snap in dirs:
        labels = (spu, ("path", snap.data_dir))
        out.append(Sample("fluvial_spu_data_dir_total_bytes", labels, float(snap.total_bytes)))
        out.append(Sample("fluvial_spu_data_dir_free_bytes", labels, float(max(0, snap.free_bytes))))
        out.append(Sample("fluvial_spu_data_dir_reserve_bytes", labels, float(snap.reserve_bytes)))
        out.append(Sample("fluvial_spu_data_dir_free_inodes", labels, float(max(0, snap.free_inodes))))
        current = snap.state.name.lower()
        out += [Sample("fluvial_spu_data_dir_state", (*labels, ("state", s)), float(s == current)) for s in DIR_STATES]
    for topic, partition, state in replicas:
        labels = (spu, ("topic", topic), ("partition", str(partition)))
        out += [Sample("fluvial_spu_replica_state", (*labels, ("state", s)), float(s == state.lower()))
                for s in REPLICA_STATES]
    return out


class SpuCollector(Collector):
    """An SPU's space and replica gauges, read at scrape time; they do not depend on the SC being up."""

    def __init__(self, server: Any) -> None:
        self.server = server

    def collect(self) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
        storage = self.server.storage
        replicas = [(t, p, r.state.name) for (t, p), r in sorted(storage.replicas().items())]
        samples = spu_samples(self.server.config.spu_id, [storage.guard.snapshot()], replicas)
        yield from _families(samples, SPU_HELP)
        evicted = CounterMetricFamily("fluvial_spu_evicted_segments", "Sealed segments deleted by --evict-when-full "
                                      "(data loss)", labels=["spu"])
        evicted.add_metric([str(self.server.config.spu_id)], storage.cleaner.evicted_segments)
        yield evicted
        freed = CounterMetricFamily("fluvial_spu_evicted_bytes", "Bytes deleted by --evict-when-full (data loss)",
                                    labels=["spu"])
        freed.add_metric([str(self.server.config.spu_id)], storage.cleaner.evicted_bytes)
        yield freed


def _families(samples: Iterable[Sample], helps: dict[str, str]) -> Iterator[GaugeMetricFamily]:
    families: dict[str, GaugeMetricFamily] = {}
    for s in samples:
        fam = families.get(s.name)
        if fam is None:
            fam = families[s.name] = GaugeMetricFamily(s.name, helps[s.name], labels=[k for k, _v in s.labels])
        fam.add_metric([v for _k, v in s.labels], s.value)
    yield from families.values()
