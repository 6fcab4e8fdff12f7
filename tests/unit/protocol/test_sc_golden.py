"""SC public API against the official client's bytes: golden vectors (role "SC") and the captured hex in
fluvio-wire.md §8-§9 decode to the documented values and re-encode byte for byte."""

from __future__ import annotations

import pytest

from fluvial.errors import ErrorCode, ProtocolError
from fluvial.protocol import frame, sc
from fluvial.protocol.codec import WireError, decode, encode
from fluvial.protocol.metadata import (
    CompressionAlgorithm,
    EncryptionType,
    PartitionResolution,
    PartitionSpec,
    PartitionStatus,
    ReplicaStatus,
    SegmentBasedPolicy,
    SpuResolution,
    SpuSpec,
    SpuStatus,
    SpuType,
    TopicReplicaParam,
    TopicResolution,
    TopicSpec,
    TopicStatus,
    TopicStorageConfig,
)

from .sc_vectors import (
    DOC_VECTORS,
    PARTITION_ENTRY,
    SC_GOLDEN_INDICES,
    TOPIC,
    TOPIC8,
    decode_body,
    decode_request_body,
    decode_response_body,
    encode_request_body,
    encode_response_body,
)


def test_sc_entries_are_the_documented_ones(golden: list[dict]) -> None:
    assert tuple(i for i, e in enumerate(golden) if e["role"] == "SC") == SC_GOLDEN_INDICES


# ------------------------------------------------------------------------------------- golden vectors


@pytest.mark.parametrize("index", SC_GOLDEN_INDICES)
def test_golden_request_round_trip(golden: list[dict], index: int) -> None:
    e = golden[index]
    body = bytes.fromhex(e["request_body_hex"])
    label, msg = decode_request_body(e["api_key"], body, e["api_version"])
    assert label == e["label"]
    assert encode_request_body(label, msg, e["api_version"]) == body
    header = frame.RequestHeader(e["api_key"], e["api_version"], e["correlation_id"], e["client_id"])
    request = frame.encode_request(header, body)
    assert frame.frame_size(request[:4]) == e["request_frame_size"] == len(request) - 4


@pytest.mark.parametrize("index", SC_GOLDEN_INDICES)
def test_golden_response_round_trip(golden: list[dict], index: int) -> None:
    e = golden[index]
    raw = bytes.fromhex(e["response_frame_hex"])
    assert frame.frame_size(raw[:4]) == len(raw) - 4
    correlation_id, reader = frame.decode_response(raw[4:])
    assert correlation_id == e["correlation_id"]
    body = bytes(reader.take(reader.remaining()))
    label, msg = decode_response_body(e["api_key"], body, e["api_version"])
    assert label in (e["label"], None)
    re_encoded = encode_response_body(label, msg, e["api_version"])
    assert re_encoded == body
    assert frame.encode_response(correlation_id, re_encoded) == raw


def _request(golden: list[dict], index: int):
    e = golden[index]
    return decode_request_body(e["api_key"], bytes.fromhex(e["request_body_hex"]), e["api_version"])[1]


def _response(golden: list[dict], index: int):
    e = golden[index]
    return decode_response_body(e["api_key"], bytes.fromhex(e["response_frame_hex"])[8:], e["api_version"])[1]


def test_golden_api_versions(golden: list[dict]) -> None:
    req = _request(golden, 0)
    assert (req.client_version, req.client_os, req.client_arch) == ("0.15.2", "linux", "x86_64")
    resp = _response(golden, 0)
    assert resp.error_code.ok and resp.platform_version == "0.17.3"
    ranges = {k.api_key: (k.min_version, k.max_version) for k in resp.api_keys}
    assert ranges == {1001: (9, 19), 1002: (1, 19), 1003: (15, 19), 1004: (15, 19), 1005: (18, 19), 1006: (1, 19)}


def test_golden_watch_spu(golden: list[dict]) -> None:
    assert _request(golden, 1) == sc.WatchRequest(epoch=0, summary=False)
    update = _response(golden, 1)
    assert isinstance(update, sc.SPU.metadata_update)
    assert (update.epoch, update.changes, len(update.all)) == (1, [], 1)
    spu = update.all[0]
    assert spu.name == "5001"
    assert (spu.spec.id, spu.spec.spu_type) == (5001, SpuType.MANAGED)
    public = spu.spec.public_endpoint
    assert (public.port, public.ingress[0].hostname, public.ingress[0].ip) == (9010, "127.0.0.1", None)
    assert public.encryption is EncryptionType.PLAINTEXT
    private = spu.spec.private_endpoint
    assert (private.port, private.host, private.encryption) == (9006, "127.0.0.1", EncryptionType.PLAINTEXT)
    assert (spu.spec.rack, spu.spec.public_endpoint_local) == (None, None)
    assert spu.status.resolution is SpuResolution.ONLINE


@pytest.mark.parametrize(("index", "label"), [(2, "Partition"), (3, "Topic")])
def test_golden_watch_empty_full_sync(golden: list[dict], index: int, label: str) -> None:
    assert golden[index]["label"] == label
    assert _request(golden, index) == sc.WatchRequest()
    update = _response(golden, index)
    assert update == sc.OBJECT_TYPES[label].metadata_update(epoch=1, changes=[], all=[])


def test_golden_create_topic(golden: list[dict]) -> None:
    req = _request(golden, 4)
    assert req == sc.TOPIC.create_request(
        name=TOPIC, dry_run=False, timeout_ms=None,
        spec=TopicSpec(replicas=TopicReplicaParam(1, 1, True), compression_type=CompressionAlgorithm.ANY),
    )
    assert _response(golden, 4) == sc.Status(name=TOPIC, error_code=WireError(), error_message=None)


def test_golden_list_topic(golden: list[dict]) -> None:
    assert _request(golden, 10) == sc.ListRequest(name_filters=[], summary=False, system=False)
    resp = _response(golden, 10)
    assert isinstance(resp, sc.TOPIC.list_response) and len(resp.objects) == 1
    topic = resp.objects[0]
    assert topic.name == TOPIC
    assert topic.spec == TopicSpec(replicas=TopicReplicaParam(1, 1, False))
    assert topic.status.resolution is TopicResolution.PROVISIONED
    assert (topic.status.replica_map, topic.status.mirror_map, topic.status.reason) == ({0: [5001]}, {}, "")


def test_golden_list_partition(golden: list[dict]) -> None:
    assert _request(golden, 11) == sc.ListRequest()
    resp = _response(golden, 11)
    assert isinstance(resp, sc.PARTITION.list_response) and len(resp.objects) == 1
    part = resp.objects[0]
    assert part.name == f"{TOPIC}-0"
    assert part.spec == PartitionSpec(leader=5001, replicas=[5001])
    status = part.status
    assert status.resolution is PartitionResolution.ONLINE
    assert (status.leader.spu, status.leader.hw, status.leader.leo) == (5001, 0, 0)
    assert (status.lsr, status.replicas, status.size, status.is_being_deleted, status.base_offset) == (
        0, [], 0, False, 0)


def test_golden_delete_topic(golden: list[dict]) -> None:
    assert _request(golden, 12) == sc.TOPIC.delete_request(key=TOPIC, force=False)
    assert _response(golden, 12).error_code.code is ErrorCode.NONE


# ------------------------------------------------------------------------- hex quoted in fluvio-wire.md


@pytest.mark.parametrize("vector", DOC_VECTORS, ids=lambda v: v.name)
def test_doc_vector_round_trip(vector) -> None:
    label, msg = decode_body(vector.api_key, vector.direction, vector.body, vector.version)
    assert encode_request_body(label, msg, vector.version) == vector.body


def _doc(name: str):
    v = next(v for v in DOC_VECTORS if v.name == name)
    return decode_body(v.api_key, v.direction, v.body, v.version)


def test_doc_topic_change_push() -> None:
    label, update = _doc("topic-change-push")
    assert label == "Topic"
    assert (update.epoch, update.all, len(update.changes)) == (2, [], 1)
    change = update.changes[0]
    assert change.header is sc.MsgType.UPDATE
    topic = change.content
    assert topic.name == TOPIC8
    assert topic.spec == TopicSpec(replicas=TopicReplicaParam(3, 1, False))
    assert topic.status.resolution is TopicResolution.PROVISIONED
    assert topic.status.replica_map == {0: [5001], 1: [5001], 2: [5001]}


def test_doc_create_with_retention_and_segment_size() -> None:
    label, req = _doc("create-retention-segment")
    assert label == "Topic"
    assert req.spec == TopicSpec(
        replicas=TopicReplicaParam(3, 1, True),
        cleanup_policy=SegmentBasedPolicy(time_in_seconds=3600),
        storage=TopicStorageConfig(segment_size=10_000_000, max_partition_size=None),
    )
    assert _doc("create-late-topic")[1].name == "late-topic"


def test_doc_status_topic_already_exists() -> None:
    _, status = _doc("status-already-exists")
    assert status == sc.Status(TOPIC, WireError(ErrorCode.TOPIC_ALREADY_EXISTS), "Topic already exists")
    assert encode(status, 19).hex() == (b"\x00\x0b" + TOPIC.encode()).hex() + "07d2010014" + (
        b"Topic already exists".hex())


def test_doc_watch_requests_carry_their_labels() -> None:
    assert [_doc(n)[0] for n in ("watch-spu", "watch-partition", "watch-topic")] == ["SPU", "Partition", "Topic"]
    assert _doc("list-partition") == ("Partition", sc.ListRequest())


def test_doc_partition_entry() -> None:
    part = decode(sc.PARTITION.metadata, PARTITION_ENTRY, 19)
    assert part.name == f"{TOPIC}-0"
    assert (part.spec.leader, part.spec.replicas, part.spec.mirror) == (5001, [5001], None)
    assert part.status.resolution is PartitionResolution.ONLINE
    assert encode(part, 19) == PARTITION_ENTRY


def test_built_objects_match_captured_bytes() -> None:
    """Building the objects from scratch gives the client's bytes (what an SC sends)."""
    topic = sc.TOPIC.metadata(
        name=TOPIC8, spec=TopicSpec(replicas=TopicReplicaParam(3, 1, False)),
        status=TopicStatus(resolution=TopicResolution.PROVISIONED, replica_map={2: [5001], 0: [5001], 1: [5001]}),
    )
    push = sc.TOPIC.metadata_update(epoch=2, changes=[sc.TOPIC.change(sc.MsgType.UPDATE, topic)])
    assert sc.encode_typed("Topic", push, 19) == next(v.body for v in DOC_VECTORS if v.name == "topic-change-push")
    part = sc.PARTITION.metadata(
        name=f"{TOPIC}-0", spec=PartitionSpec(leader=5001, replicas=[5001]),
        status=PartitionStatus(resolution=PartitionResolution.ONLINE,
                               leader=ReplicaStatus(5001, 0, 0), size=0),
    )
    assert encode(part, 19) == PARTITION_ENTRY


# ------------------------------------------------------------------------------- version gating (§9)


def _field_versions(cls: type) -> dict[str, int]:
    return {name: lo for name, _t, lo, _hi in cls.WIRE_FIELDS}


@pytest.mark.parametrize(("cls", "expected"), [
    (SpuSpec, {"public_endpoint_local": 1}),
    (TopicSpec, {"cleanup_policy": 3, "storage": 4, "compression_type": 6, "deduplication": 12, "system": 13}),
    (TopicStatus, {"mirror_map": 14}),
    (PartitionSpec, {"cleanup_policy": 4, "storage": 4, "compression_type": 6, "deduplication": 12,
                     "system": 13, "mirror": 14}),
    (PartitionStatus, {"size": 5, "base_offset": 16}),
    (sc.TOPIC.create_request, {"timeout_ms": 7}),
    (sc.TOPIC.delete_request, {"force": 13}),
    (sc.ListRequest, {"summary": 10, "system": 13}),
    (sc.WatchRequest, {"summary": 10}),
])
def test_min_versions_match_reference(cls: type, expected: dict[str, int]) -> None:
    assert {k: v for k, v in _field_versions(cls).items() if v} == expected


def test_cleanup_policy_is_v3_in_topic_but_v4_in_partition() -> None:
    policy = SegmentBasedPolicy(100)
    assert len(encode(TopicSpec(cleanup_policy=policy), 3)) == len(encode(TopicSpec(), 2)) + 6
    assert encode(PartitionSpec(cleanup_policy=policy), 3) == encode(PartitionSpec(), 3)
    assert decode(PartitionSpec, encode(PartitionSpec(cleanup_policy=policy), 3), 3).cleanup_policy is None


def test_absent_fields_take_reference_defaults() -> None:
    status = decode(PartitionStatus, encode(PartitionStatus(size=7, base_offset=9), 4), 4)
    assert (status.size, status.base_offset) == (-2, 0)
    assert PartitionStatus().leader == ReplicaStatus(-1, -1, -1)
    assert decode(TopicSpec, encode(TopicSpec(), 5), 5).compression_type is CompressionAlgorithm.ANY
    assert SpuStatus().resolution is SpuResolution.INIT


def test_out_of_storage_decodes_at_every_version() -> None:
    """Variant min_version is ignored by the reference (trap T6)."""
    status = PartitionStatus(resolution=PartitionResolution.OUT_OF_STORAGE)
    for version in (0, 11, 18, 19):
        assert decode(PartitionStatus, encode(status, version), version).resolution is (
            PartitionResolution.OUT_OF_STORAGE)


# ------------------------------------------------------------------------------------ envelope rules


WATCH_TOPIC = bytes.fromhex("0005546f70696300000009000000000000000000")


@pytest.mark.parametrize("version", [0, 10, 20, -1])
def test_unsupported_versions_are_refused(version: int) -> None:
    with pytest.raises(ProtocolError):
        sc.decode_typed_request(sc.ScApiKey.WATCH, WATCH_TOPIC, version)
    with pytest.raises(ProtocolError):
        sc.encode_typed("Topic", sc.WatchRequest(), version)


def test_unknown_label_and_key_are_refused() -> None:
    body = encode(sc.TypeBuffer("CustomSpu", encode(sc.WatchRequest(), 19)), 19)
    with pytest.raises(sc.UnknownObjectType, match="CustomSpu"):
        sc.decode_typed_request(sc.ScApiKey.WATCH, body, 19)
    with pytest.raises(ProtocolError):
        sc.encode_typed("CustomSpu", sc.WatchRequest(), 19)


def test_unknown_label_keeps_the_create_name_for_its_answer() -> None:
    inner = bytes.fromhex("0004") + b"abcd" + bytes.fromhex("00 00 0102")      # name, dry_run, ... (unknown rest)
    body = encode(sc.TypeBuffer("ManagedConnector", inner), 19)
    with pytest.raises(sc.UnknownObjectType) as e:
        sc.decode_typed_request(sc.ScApiKey.CREATE, body, 19)
    assert (e.value.label, e.value.name) == ("ManagedConnector", "abcd")


def test_empty_answers_for_unknown_labels_decode_as_that_label() -> None:
    """An empty list/update for a label without objects here is what an empty list of any spec is."""
    assert sc.encode_empty_list("TableX", 19) == encode(sc.TypeBuffer("TableX", bytes(4)), 19)
    assert sc.encode_empty_update("TableX", 19) == encode(sc.TypeBuffer("TableX", bytes(16)), 19)
    _label, resp = sc.decode_typed_response(sc.ScApiKey.LIST, sc.encode_empty_list("SmartModule", 19), 19)
    assert resp.objects == []
    for key in (0, 18, 1005, 1007):
        with pytest.raises(ProtocolError):
            sc.decode_typed_request(key, WATCH_TOPIC, 19)


def test_update_exists_only_for_topics() -> None:
    update = sc.TopicUpdateRequest(key=TOPIC, action=sc.AddPartition(count=2))
    body = sc.encode_typed("Topic", update, 19)
    assert body[:7] == b"\x00\x05Topic" and body[11:] == b"\x00\x0b" + TOPIC.encode() + bytes.fromhex("0000000002")
    assert sc.decode_typed_request(sc.ScApiKey.UPDATE, body, 19) == ("Topic", update)
    mirror = sc.TopicUpdateRequest(key=TOPIC, action=sc.AddMirror("remote-1", True))
    assert sc.decode_typed_request(sc.ScApiKey.UPDATE, sc.encode_typed("Topic", mirror, 19), 19)[1] == mirror
    with pytest.raises(ProtocolError):
        sc.encode_typed("Partition", update, 19)
    partition_body = encode(sc.TypeBuffer("Partition", encode(update, 19)), 19)
    with pytest.raises(ProtocolError):
        sc.decode_typed_request(sc.ScApiKey.UPDATE, partition_body, 19)


def test_status_is_not_a_typed_response() -> None:
    for key in (sc.ScApiKey.CREATE, sc.ScApiKey.DELETE, sc.ScApiKey.UPDATE):
        with pytest.raises(ProtocolError):
            sc.decode_typed_response(key, WATCH_TOPIC, 19)


def test_message_of_another_label_is_refused() -> None:
    with pytest.raises(ProtocolError):
        sc.encode_typed("Topic", sc.PARTITION.list_response(), 19)
    with pytest.raises(ProtocolError):
        sc.encode_typed("SPU", sc.TOPIC.create_request(), 19)


def test_envelope_length_must_match() -> None:
    inner = encode(sc.WatchRequest(), 19)
    for payload_len, extra in ((len(inner) + 1, b""), (len(inner) - 1, b""), (len(inner), b"\x00")):
        body = b"\x00\x05Topic" + payload_len.to_bytes(4, "big") + inner + extra
        with pytest.raises(ProtocolError):
            sc.decode_typed_request(sc.ScApiKey.WATCH, body, 19)
    padded = encode(sc.TypeBuffer("Topic", inner + b"\x00"), 19)      # bytes left inside the envelope
    with pytest.raises(ProtocolError):
        sc.decode_typed_request(sc.ScApiKey.WATCH, padded, 19)


def test_envelope_encodes_inner_at_request_version() -> None:
    """Trap T7: the inner message is gated by the request's version."""
    req = sc.TOPIC.delete_request(key="t", force=True)
    assert sc.encode_typed("Topic", req, 12) == bytes.fromhex("0005546f706963 00000003 000174".replace(" ", ""))
    assert sc.encode_typed("Topic", req, 13) == bytes.fromhex("0005546f706963 00000004 00017401".replace(" ", ""))
    assert sc.decode_typed_request(sc.ScApiKey.DELETE, sc.encode_typed("Topic", req, 12), 12)[1].force is False
