"""Pure parts of the fluvio drop-in (issue 11): producer compression rule, delivery-semantic spellings,
the serde shapes of SC objects, -O full-table, clap-style usage text (table-driven)."""

from __future__ import annotations

import json

import pytest
import yaml

from fluvial.cli import serde_shape
from fluvial.cli.common import clap_usage_text
from fluvial.cli.record_format import FullTable
from fluvial.client.batchcodec import ConsumerRecord
from fluvial.client.producer import DeliverySemantic, producer_compression
from fluvial.errors import InvalidConfig
from fluvial.protocol import metadata as md
from fluvial.protocol import sc as scp

C = md.CompressionAlgorithm


@pytest.mark.parametrize(
    ("topic", "asked", "used"),     # crates/fluvio/src/producer/mod.rs:584-624 of v0.17.3
    [
        (C.ANY, None, "none"), (C.ANY, "gzip", "gzip"), (C.ANY, "LZ4", "lz4"),
        (C.SNAPPY, None, "snappy"), (C.SNAPPY, "snappy", "snappy"), (C.LZ4, None, "lz4"),
        (C.GZIP, None, "gzip"), (C.ZSTD, "zstd", "zstd"), (C.NONE, None, "none"), (C.NONE, "none", "none"),
    ],
)
def test_producer_compression(topic: md.CompressionAlgorithm, asked: str | None, used: str) -> None:
    assert producer_compression(topic, asked) == used


@pytest.mark.parametrize(
    ("topic", "asked", "named"),
    [(C.SNAPPY, "gzip", "snappy"), (C.LZ4, "none", "lz4"), (C.NONE, "zstd", "no compression"), (C.GZIP, "lz4", "gzip")],
)
def test_producer_compression_contradicting_the_topic(topic: md.CompressionAlgorithm, asked: str, named: str) -> None:
    with pytest.raises(InvalidConfig) as e:
        producer_compression(topic, asked)
    assert str(e.value).endswith(f"Compression in the producer ({asked}) does not match with topic level "
                                 f"compression ({named})")


@pytest.mark.parametrize(
    ("text", "semantic"),           # crates/fluvio/src/producer/config.rs:236-241
    [(s, DeliverySemantic.AT_MOST_ONCE) for s in ("at_most_once", "at-most-once", "AtMostOnce", "atMostOnce",
                                                  "atmostonce")]
    + [(s, DeliverySemantic.AT_LEAST_ONCE) for s in ("at_least_once", "at-least-once", "AtLeastOnce",
                                                     "atLeastOnce", "atleastonce")],
)
def test_delivery_semantic_spellings(text: str, semantic: DeliverySemantic) -> None:
    assert DeliverySemantic.parse(text) is semantic


@pytest.mark.parametrize("text", ["AT_MOST_ONCE", "at most once", "exactly-once", ""])
def test_delivery_semantic_refused(text: str) -> None:
    with pytest.raises(InvalidConfig, match="unrecognized delivery semantic"):
        DeliverySemantic.parse(text)


def _topic(replicas: object, **kw: object) -> object:
    spec = md.TopicSpec(replicas=replicas, cleanup_policy=kw.get("cleanup"), storage=kw.get("storage"),
                        compression_type=kw.get("compression", C.ANY), deduplication=None, system=False)
    return scp.TOPIC.metadata("t", spec, md.TopicStatus(md.TopicResolution.PROVISIONED, {0: [5001]}, {}, ""))


def test_topic_shape() -> None:
    doc = serde_shape.metadata_doc("Topic", _topic(md.TopicReplicaParam(1, 1, True), compression=C.LZ4,
                                                   cleanup=md.SegmentBasedPolicy(60),
                                                   storage=md.TopicStorageConfig(None, 4096)))
    assert json.loads(serde_shape.dumps([doc], "json")) == [{
        "name": "t",
        "spec": {"replicas": {"computed": {"partitions": 1, "replicationFactor": 1}},   # true is skipped
                 "cleanupPolicy": {"segment": {"timeInSeconds": 60}},
                 "storage": {"segmentSize": None, "maxPartitionSize": 4096}, "compressionType": "Lz4",
                 "system": False},
        "status": {"resolution": "Provisioned", "replicaMap": {"0": [5001]}, "mirrorMap": {}, "reason": ""}}]
    text = serde_shape.dumps([doc], "yaml")
    assert "replicas: !computed\n" in text and "resolution: Provisioned" in text and "  0:\n" in text


def test_assigned_and_enum_names() -> None:
    doc = serde_shape.metadata_doc("Topic", _topic(md.PartitionMaps([md.PartitionMap(0, [5002, 5001], None)])))
    assert doc["spec"]["replicas"] == serde_shape.Tagged("assigned", [{"id": 0, "replicas": [5002, 5001]}])
    status = md.PartitionStatus(md.PartitionResolution.LEADER_OFFLINE, md.ReplicaStatus(5001, 1, 2), 0, [], 7,
                                False, 0)
    assert serde_shape.partition_status(status)["resolution"] == "LeaderOffline"
    assert serde_shape.topic_status(md.TopicStatus(md.TopicResolution.INSUFFICIENT_RESOURCES, {}, {}, "x"))[
        "resolution"] == "InsufficientResources"


def test_spu_shape() -> None:
    spec = md.SpuSpec(5001, md.SpuType.CUSTOM, md.IngressPort(9010, [md.IngressAddr("h", None)],
                                                              md.EncryptionType.PLAINTEXT),
                      md.Endpoint(9011, "h", md.EncryptionType.PLAINTEXT), None, None)
    doc = serde_shape.metadata_doc("SPU", scp.SPU.metadata("5001", spec, md.SpuStatus(md.SpuResolution.ONLINE)))
    assert doc == {"name": "5001", "spec": {
        "spuId": 5001, "spuType": "Custom",
        "publicEndpoint": {"port": 9010, "ingress": [{"hostname": "h", "ip": None}], "encryption": "PLAINTEXT"},
        "privateEndpoint": {"port": 9011, "host": "h", "encryption": "PLAINTEXT"}},
        "status": {"resolution": "Online"}}
    assert yaml.safe_load(serde_shape.dumps([doc], "yaml")) == [doc]


def _rec(value: str) -> ConsumerRecord:
    return ConsumerRecord(0, 0, None, value.encode(), 0)


def test_full_table_upserts_by_primary_key() -> None:
    spec = md.TableFormatSpec("f", None, [md.TableFormatColumnConfig("Name", None, None, "name", None, None, True,
                                                                     None, None),
                                          md.TableFormatColumnConfig(None, None, None, "age", None, None, None,
                                                                     None, None)], None)
    t = FullTable.of(spec)
    for v in ('{"name":"ann","age":3}', '[{"name":"bob","age":4},{"name":"ann","age":5}]'):
        assert t(_rec(v)) is None
    assert t(_rec("nope")).startswith("error parsing record as json")
    assert t.finish() == "Name  age\nann   5\nbob   4"
    live = FullTable.of(None, live=True)
    assert live(_rec('{"a":"x","b":[1]}')) == "a  b\nx  [1]"
    assert live(_rec('{"b":2,"a":"y"}')) == "y  2" and live.finish() is None


def test_clap_usage_text() -> None:
    assert clap_usage_text("unexpected argument '--x' found", "Usage: fluvial topic list [OPTIONS]") == (
        "error: unexpected argument '--x' found\n\nUsage: fluvial topic list [OPTIONS]\n\n"
        "For more information, try '--help'.\n")
