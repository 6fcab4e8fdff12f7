"""Pure parts of `fluvial.client.admin`: TopicConfig -> TopicSpec, wire objects -> typed results, and
Status codes -> typed errors."""

from __future__ import annotations

import pytest

from fluvial import defaults as d
from fluvial.client.admin import (
    ReplicaOffsets,
    TopicConfig,
    _payload_text,
    partition_info,
    spu_info,
    topic_info,
)
from fluvial.errors import (
    AdminError,
    ErrorCode,
    InvalidConfig,
    InvalidTopicName,
    TopicAlreadyExists,
    TopicNotFound,
    admin_error,
)
from fluvial.protocol import codec
from fluvial.protocol import metadata as md
from fluvial.protocol import sc as scp


def test_default_config_is_fluvios_default_spec() -> None:
    spec = TopicConfig().to_spec()
    assert spec == md.TopicSpec(md.TopicReplicaParam(1, 1, False), None, None, md.CompressionAlgorithm.ANY, None,
                                False)


@pytest.mark.parametrize(("config", "check"), [
    (TopicConfig(partitions=3, replication=2, ignore_rack_assignment=True),
     lambda s: s.replicas == md.TopicReplicaParam(3, 2, True)),
    (TopicConfig(retention_time=3600), lambda s: s.cleanup_policy == md.SegmentBasedPolicy(3600)),
    (TopicConfig(segment_size=1_000_000), lambda s: s.storage == md.TopicStorageConfig(1_000_000, None)),
    (TopicConfig(max_partition_size=10**10), lambda s: s.storage == md.TopicStorageConfig(None, 10**10)),
    (TopicConfig(compression="zstd"), lambda s: s.compression_type is md.CompressionAlgorithm.ZSTD),
    (TopicConfig(compression="GZIP"), lambda s: s.compression_type is md.CompressionAlgorithm.GZIP),
    (TopicConfig(compression="none"), lambda s: s.compression_type is md.CompressionAlgorithm.NONE),
    (TopicConfig(system=True), lambda s: s.system is True),
])
def test_config_to_spec(config: TopicConfig, check) -> None:  # type: ignore[no-untyped-def]
    spec = config.to_spec()
    assert check(spec)
    # and it encodes inside a Create request at the object version
    req = scp.TOPIC.create_request(name="t", dry_run=config.dry_run, timeout_ms=None, spec=spec)
    body = scp.encode_typed("Topic", req, d.SC_OBJECT_VERSION)
    _label, back = scp.decode_typed_request(scp.ScApiKey.CREATE, body, d.SC_OBJECT_VERSION)
    assert back.spec == spec


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"compression": "brotli"}, "unknown compression type 'brotli'"),
    ({"partitions": -1}, "partitions -1 is out of range"),
    ({"retention_time": 2**32}, "retention_time 4294967296 is out of range"),
    ({"segment_size": 2**32}, "segment_size"),
])
def test_config_rejects(kwargs: dict[str, object], match: str) -> None:
    with pytest.raises(InvalidConfig, match=match):
        TopicConfig(**kwargs)  # type: ignore[arg-type]


def _topic(spec: md.TopicSpec, status: md.TopicStatus, name: str = "events") -> object:
    return scp.TOPIC.metadata(name, spec, status)


def test_topic_info() -> None:
    spec = TopicConfig(partitions=2, replication=2, retention_time=60, segment_size=4096, compression="lz4").to_spec()
    status = md.TopicStatus(md.TopicResolution.PROVISIONED, {1: [5002, 5001], 0: [5001, 5002]}, {}, "")
    t = topic_info(_topic(spec, status))
    assert (t.name, t.type, t.partitions, t.replication, t.retention_seconds, t.segment_size) == \
        ("events", "computed", 2, 2, 60, 4096)
    assert t.compression is md.CompressionAlgorithm.LZ4 and t.resolution is md.TopicResolution.PROVISIONED
    assert t.replica_map == {0: (5001, 5002), 1: (5002, 5001)}
    assert t.max_partition_size is None and t.deduplication is None and not t.system


def test_topic_info_defaults_retention_and_assigned_type() -> None:
    spec = md.TopicSpec(md.PartitionMaps([md.PartitionMap(0, [5001], None)]), None, None,
                        md.CompressionAlgorithm.ANY, None, False)
    t = topic_info(_topic(spec, md.TopicStatus(md.TopicResolution.PENDING, {}, {}, "waiting for live spus")))
    assert t.type == "assigned" and t.partitions is None and t.replication is None
    assert t.retention_seconds == d.RETENTION_SECONDS and t.reason == "waiting for live spus"


def test_partition_info() -> None:
    spec = md.PartitionSpec(5001, [5001, 5002], None, None, md.CompressionAlgorithm.ANY, None, False, None)
    status = md.PartitionStatus(md.PartitionResolution.ONLINE, md.ReplicaStatus(5001, 7, 9), 1,
                                [md.ReplicaStatus(5002, 7, 8)], 1234, False, 2)
    p = partition_info(scp.PARTITION.metadata("my-topic-12", spec, status))
    assert (p.topic, p.partition, p.leader, p.replicas) == ("my-topic", 12, 5001, (5001, 5002))
    assert (p.hw, p.leo, p.size, p.base_offset, p.lsr) == (7, 9, 1234, 2, 1)
    assert p.followers == (ReplicaOffsets(5002, 7, 8),) and p.status == "online"


def test_spu_info() -> None:
    spec = md.SpuSpec(5001, md.SpuType.CUSTOM, md.IngressPort(9010, [md.IngressAddr(None, "127.0.0.1")],
                                                              md.EncryptionType.PLAINTEXT),
                      md.Endpoint(9011, "10.0.0.1", md.EncryptionType.PLAINTEXT), "r1", None)
    s = spu_info(scp.SPU.metadata("5001", spec, md.SpuStatus(md.SpuResolution.ONLINE)), leads=3)
    assert (s.id, s.name, s.address, s.private_address, s.rack, s.leads) == \
        (5001, "5001", "127.0.0.1:9010", "10.0.0.1:9011", "r1", 3)
    assert s.online and s.spu_type is md.SpuType.CUSTOM


@pytest.mark.parametrize(("code", "cls"), [
    (ErrorCode.TOPIC_ALREADY_EXISTS, TopicAlreadyExists),
    (ErrorCode.TOPIC_NOT_FOUND, TopicNotFound),
    (ErrorCode.TOPIC_INVALID_NAME, InvalidTopicName),
    (ErrorCode.TOPIC_ERROR, AdminError),
    (9999, AdminError),                      # unknown codes are kept, not dropped
])
def test_admin_error_types(code: int, cls: type[AdminError]) -> None:
    e = admin_error(code, "t", "msg")
    assert type(e) is cls and e.name == "t" and e.message == "msg"


def test_admin_error_texts() -> None:
    assert str(admin_error(ErrorCode.TOPIC_ALREADY_EXISTS, "t", "Topic already exists")) == \
        'topic "t": Topic already exists'
    assert str(admin_error(ErrorCode.TOPIC_INVALID_NAME, "Bad", "Invalid topic name: 'Bad'. x")) == \
        "Invalid topic name: 'Bad'. x"                                   # the name is already in it
    assert str(admin_error(ErrorCode.TOPIC_NOT_FOUND, "t")) == 'topic "t": the topic was not found'
    assert admin_error(ErrorCode.TOPIC_NOT_FOUND, "t").code is ErrorCode.TOPIC_NOT_FOUND


def test_payload_text() -> None:
    assert _payload_text(codec.WireError.of(ErrorCode.SYSTEM_SPEC_DELETION_ATTEMPT, "topic", "consumer-offset")) == \
        "system topic 'consumer-offset' can only be deleted forcibly"
    assert _payload_text(codec.WireError.of(ErrorCode.OTHER, "boom")) == "boom"
    assert _payload_text(codec.WireError(ErrorCode.TOPIC_ERROR)) is None
