"""SC metadata objects as `fluvio … -O json|yaml` prints them: `Metadata<S>` = {name, spec, status} with
the serde derives of `crates/fluvio-controlplane-metadata` v0.17.3 (camelCase fields, `spuId`, unit
enum variants by their Rust names, newtype enum variants externally tagged, the fields serde skips
skipped). Pure: wire objects in, plain data out.

    docs = [metadata_doc("Topic", m) for m in objects]
    dump(docs, "json")      # what `fluvio topic list -O json` prints

A `Tagged` value is a serde externally-tagged newtype variant: `{"computed": {...}}` in JSON, and a YAML
tag (`!computed`) in YAML, as serde_yaml 0.9 writes it.
"""

from __future__ import annotations

import enum
import json
from dataclasses import dataclass
from typing import Any

import yaml

from fluvial.protocol import metadata as md


@dataclass(frozen=True)
class Tagged:
    tag: str
    value: Any


def _variant(value: enum.Enum, names: dict[str, str] | None = None) -> str:
    """A unit variant as serde names it: the Rust identifier (`InsufficientResources`)."""
    name = value.name
    if names and name in names:
        return names[name]
    return "".join(part.capitalize() for part in name.split("_"))


_COMPRESSION = {"LZ4": "Lz4"}
_UPPER = {m.name: m.name for m in (*md.EncryptionType, *md.DataFormat, *md.TableFormatAlignment, *md.Color)}


def _cleanup(policy: md.SegmentBasedPolicy | None) -> Tagged | None:
    return None if policy is None else Tagged("segment", {"timeInSeconds": policy.time_in_seconds})


def _storage(storage: md.TopicStorageConfig | None) -> dict[str, Any] | None:
    if storage is None:
        return None
    return {"segmentSize": storage.segment_size, "maxPartitionSize": storage.max_partition_size}


def _dedup(dedup: md.Deduplication | None) -> dict[str, Any] | None:
    if dedup is None:
        return None
    transform: dict[str, Any] = {"uses": dedup.filter.transform.uses}
    if dedup.filter.transform.with_:
        transform["with"] = dict(sorted(dedup.filter.transform.with_.items()))
    age = dedup.bounds.age
    return {"bounds": {"count": dedup.bounds.count, "age": None if age is None else f"{age:g}s"},
            "filter": {"transform": transform}}


def _replicas(r: Any) -> Tagged:
    if isinstance(r, md.TopicReplicaParam):
        doc: dict[str, Any] = {"partitions": r.partitions, "replicationFactor": r.replication_factor}
        if not r.ignore_rack_assignment:      # serde `skip_serializing_if = "bool::clone"`: skipped when true
            doc["ignoreRackAssignment"] = False
        return Tagged("computed", doc)
    if isinstance(r, md.PartitionMaps):
        return Tagged("assigned", [{"id": m.id, "replicas": list(m.replicas)} for m in r.maps])
    return Tagged("mirror", {})


def topic_spec(spec: md.TopicSpec) -> dict[str, Any]:
    doc: dict[str, Any] = {"replicas": _replicas(spec.replicas)}
    if spec.cleanup_policy is not None:
        doc["cleanupPolicy"] = _cleanup(spec.cleanup_policy)
    if spec.storage is not None:
        doc["storage"] = _storage(spec.storage)
    doc["compressionType"] = _variant(spec.compression_type, _COMPRESSION)
    if spec.deduplication is not None:
        doc["deduplication"] = _dedup(spec.deduplication)
    doc["system"] = bool(spec.system)
    return doc


def topic_status(st: md.TopicStatus) -> dict[str, Any]:
    return {"resolution": _variant(st.resolution),
            "replicaMap": {int(p): list(r) for p, r in sorted(st.replica_map.items())},
            "mirrorMap": {}, "reason": st.reason}


def _replica_status(r: md.ReplicaStatus) -> dict[str, Any]:
    return {"spu": r.spu, "hw": r.hw, "leo": r.leo}


def partition_spec(spec: md.PartitionSpec) -> dict[str, Any]:
    return {"leader": spec.leader, "replicas": list(spec.replicas), "cleanupPolicy": _cleanup(spec.cleanup_policy),
            "storage": _storage(spec.storage), "compressionType": _variant(spec.compression_type, _COMPRESSION),
            "deduplication": _dedup(spec.deduplication), "system": bool(spec.system), "mirror": None}


def partition_status(st: md.PartitionStatus) -> dict[str, Any]:
    return {"resolution": _variant(st.resolution), "leader": _replica_status(st.leader), "lsr": st.lsr,
            "replicas": [_replica_status(r) for r in st.replicas], "size": st.size,
            "isBeingDeleted": bool(st.is_being_deleted), "baseOffset": st.base_offset}


def _endpoint(e: md.Endpoint) -> dict[str, Any]:
    return {"port": e.port, "host": e.host, "encryption": _variant(e.encryption, _UPPER)}


def spu_spec(spec: md.SpuSpec) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "spuId": spec.id, "spuType": _variant(spec.spu_type),
        "publicEndpoint": {"port": spec.public_endpoint.port,
                           "ingress": [{"hostname": a.hostname, "ip": a.ip} for a in spec.public_endpoint.ingress],
                           "encryption": _variant(spec.public_endpoint.encryption, _UPPER)},
        "privateEndpoint": _endpoint(spec.private_endpoint),
    }
    if spec.rack is not None:
        doc["rack"] = spec.rack
    if spec.public_endpoint_local is not None:
        doc["publicEndpointLocal"] = _endpoint(spec.public_endpoint_local)
    return doc


def spu_status(st: md.SpuStatus) -> dict[str, Any]:
    return {"resolution": _variant(st.resolution)}


def _opt(value: enum.Enum | None) -> str | None:
    return None if value is None else _variant(value, _UPPER)


def table_format_spec(spec: md.TableFormatSpec) -> dict[str, Any]:
    columns = None if spec.columns is None else [
        {"headerLabel": c.header_label, "width": c.width, "alignment": _opt(c.alignment), "keyPath": c.key_path,
         "format": c.format, "display": c.display, "primaryKey": c.primary_key,
         "headerBgColor": _opt(c.header_bg_color), "headerTextColor": _opt(c.header_text_color)}
        for c in spec.columns]
    doc: dict[str, Any] = {"name": spec.name, "inputFormat": _opt(spec.input_format), "columns": columns}
    if spec.smartmodule is not None:
        doc["smartmodule"] = spec.smartmodule
    return doc


def table_format_status(st: md.TableFormatStatus) -> dict[str, Any]:
    return {"resolution": _variant(st.resolution), "reason": st.reason}


SHAPES = {
    "Topic": (topic_spec, topic_status),
    "Partition": (partition_spec, partition_status),
    "SPU": (spu_spec, spu_status),
    "TableFormat": (table_format_spec, table_format_status),
}


def metadata_doc(label: str, meta: Any) -> dict[str, Any]:
    """`Metadata<S>` of one object: {name, spec, status}."""
    spec, status = SHAPES[label]
    return {"name": meta.name, "spec": spec(meta.spec), "status": status(meta.status)}


# ------------------------------------------------------------------------------------------- dumping


def _plain(doc: Any) -> Any:
    """JSON data: Tagged -> {tag: value}."""
    if isinstance(doc, Tagged):
        return {doc.tag: _plain(doc.value)}
    if isinstance(doc, dict):
        return {k: _plain(v) for k, v in doc.items()}
    if isinstance(doc, list):
        return [_plain(v) for v in doc]
    return doc


class _Dumper(yaml.SafeDumper):
    pass


def _represent_tagged(dumper: yaml.SafeDumper, t: Tagged) -> yaml.Node:
    if isinstance(t.value, dict):
        return dumper.represent_mapping("!" + t.tag, t.value)
    if isinstance(t.value, list):
        return dumper.represent_sequence("!" + t.tag, t.value)
    return dumper.represent_scalar("!" + t.tag, str(t.value))


_Dumper.add_representer(Tagged, _represent_tagged)


def dumps(doc: Any, fmt: str) -> str:
    """`serde_json::to_string_pretty` (2-space indent) or serde_yaml 0.9's block style."""
    if fmt == "json":
        return json.dumps(_plain(doc), indent=2)
    return yaml.dump(doc, Dumper=_Dumper, sort_keys=False, default_flow_style=False, allow_unicode=True).rstrip("\n")


__all__ = ["SHAPES", "Tagged", "dumps", "metadata_doc"]
