"""SPU public API against the official client's bytes: golden vectors 5-9 and 13-15, and the captured
snippets of fluvio-wire.md §10 (decode → re-encode is byte-identical; key values are what was sent)."""

from __future__ import annotations

import pytest

from fluvial.errors import ErrorCode, ProtocolError
from fluvial.protocol import spu
from fluvial.protocol.batch import batch_crc, decode_header, validate_batch
from fluvial.protocol.codec import OK, WireError, decode, encode
from fluvial.protocol.frame import ApiVersionsResponse, RequestHeader, decode_response, encode_request
from fluvial.protocol.records import decode_records

TOPIC = "probe-topic"
TOPIC_HEX = "000b" + TOPIC.encode().hex()                     # String <topic> as it travels
MAX_FETCH_BYTES = 1_048_890                                    # the 0.17.3 client's default max_bytes
BATCH_BYTES = 81


def _hex(*parts: str) -> bytes:
    return bytes.fromhex("".join(parts).replace(" ", "").replace("<topic>", TOPIC_HEX))


def _spu_vectors(golden: list[dict]) -> list[dict]:
    return [g for g in golden if g["role"] == "SPU"]


def _vector(golden: list[dict], api_key: int) -> dict:
    return next(g for g in _spu_vectors(golden) if g["api_key"] == api_key)


def _request(g: dict) -> object:
    return decode(spu.SPU_APIS[spu.SpuApiKey(g["api_key"])].request, bytes.fromhex(g["request_body_hex"]),
                  g["api_version"])


def _response_body(g: dict) -> bytes:
    frame = bytes.fromhex(g["response_frame_hex"])
    assert int.from_bytes(frame[:4], "big", signed=True) == len(frame) - 4
    correlation_id, r = decode_response(frame[4:])
    assert correlation_id == g["correlation_id"]
    return frame[4 + r.pos:]


def _response(g: dict) -> object:
    return decode(spu.SPU_APIS[spu.SpuApiKey(g["api_key"])].response, _response_body(g), g["api_version"])


def _roundtrip(cls: type, body: bytes, version: int) -> object:
    msg = decode(cls, body, version)
    assert encode(msg, version) == body
    return msg


# ------------------------------------------------------------------------------------- every SPU vector


def test_golden_has_every_spu_vector(golden: list[dict]) -> None:
    seen = [(g["api_key"], g["api_version"]) for g in _spu_vectors(golden)]
    assert seen == [(18, 2), (0, 24), (1002, 24), (1003, 24), (1005, 0), (1008, 24), (1006, 24), (1007, 24)]


def test_every_spu_request_roundtrips(golden: list[dict]) -> None:
    for g in _spu_vectors(golden):
        cls = spu.SPU_APIS[spu.SpuApiKey(g["api_key"])].request
        _roundtrip(cls, bytes.fromhex(g["request_body_hex"]), g["api_version"])


def test_every_spu_response_roundtrips(golden: list[dict]) -> None:
    for g in _spu_vectors(golden):
        cls = spu.SPU_APIS[spu.SpuApiKey(g["api_key"])].response
        _roundtrip(cls, _response_body(g), g["api_version"])


def test_every_spu_request_frame_rebuilds(golden: list[dict]) -> None:
    for g in _spu_vectors(golden):
        header = RequestHeader(g["api_key"], g["api_version"], g["correlation_id"], g["client_id"])
        frame = encode_request(header, bytes.fromhex(g["request_body_hex"]))
        assert int.from_bytes(frame[:4], "big") == g["request_frame_size"] == len(frame) - 4


# --------------------------------------------------------------------------------------- key values


def test_api_versions(golden: list[dict]) -> None:
    g = _vector(golden, 18)
    req = _request(g)
    assert (req.client_version, req.client_os, req.client_arch) == ("0.15.2", "linux", "x86_64")
    resp = _response(g)
    assert resp.error_code == OK and resp.platform_version == spu.SPU_PLATFORM_VERSION == "0.0.0"
    captured = [(k.api_key, k.min_version, k.max_version) for k in resp.api_keys]
    assert captured == [(0, 0, 24), (1, 0, 24), (1002, 24, 24), (1003, 0, 24), (1005, 0, 0)]
    # fluvial advertises exactly the reference SPU's ranges, then the consumer-offset keys (module docstring)
    ours = [(k.api_key, k.min_version, k.max_version) for k in spu.spu_api_keys(req.client_version)]
    assert ours == [*captured, (1006, 23, 24), (1007, 23, 24), (1008, 23, 24)]


def test_api_versions_legacy_client_gets_stream_fetch_15() -> None:
    keys = {k.api_key: (k.min_version, k.max_version) for k in spu.spu_api_keys("")}
    assert keys[spu.SpuApiKey.STREAM_FETCH] == (0, spu.STREAM_FETCH_LEGACY_MAX_VERSION) == (0, 15)
    resp = spu.spu_api_versions_response("0.15.2")
    assert decode(ApiVersionsResponse, encode(resp, 2), 2) == resp


def test_produce(golden: list[dict]) -> None:
    g = _vector(golden, spu.SpuApiKey.PRODUCE)
    req = _request(g)
    assert req.transactional_id is None
    assert req.isolation is spu.Isolation.READ_UNCOMMITTED   # acks 1
    assert req.timeout_ms == 1500
    assert req.smartmodules == []
    [topic] = req.topics
    assert topic.name == TOPIC
    [part] = topic.partitions
    assert part.partition_index == 0
    assert len(part.records) == BATCH_BYTES
    h = validate_batch(part.records, 1 << 20)
    assert h.crc == 0xDAA7017C == batch_crc(part.records)
    assert h.base_offset == h.last_offset_delta == 0           # producer quirk: base_offset = records - 1
    assert [(r.key, r.value) for r in decode_records(part.records)] == [(b"", b"hello-fluvio")]

    resp = _response(g)
    assert resp.throttle_time_ms == 0
    [tr] = resp.responses
    assert tr.name == TOPIC
    [pr] = tr.partitions
    assert (pr.partition_index, pr.error_code, pr.base_offset) == (0, OK, 0)
    assert (pr.log_append_time_ms, pr.log_start_offset) == (-1, 0)


def test_fetch_offsets(golden: list[dict]) -> None:
    g = _vector(golden, spu.SpuApiKey.FETCH_OFFSETS)
    req = _request(g)
    assert [(t.name, [p.partition_index for p in t.partitions]) for t in req.topics] == [(TOPIC, [0])]
    assert req.consumer_id is None
    [t] = _response(g).topics
    [p] = t.partitions
    assert (t.name, p.error_code, p.partition_index, p.start_offset, p.last_stable_offset) == (TOPIC, OK, 0, 0, 1)


def test_stream_fetch(golden: list[dict]) -> None:
    g = _vector(golden, spu.SpuApiKey.STREAM_FETCH)
    req = _request(g)
    assert (req.topic, req.partition, req.fetch_offset) == (TOPIC, 0, 0)
    assert req.max_bytes == MAX_FETCH_BYTES
    assert req.isolation is spu.Isolation.READ_UNCOMMITTED
    assert (req.smartmodules, req.consumer_id) == ([], None)

    resp = _response(g)
    assert (resp.topic, resp.stream_id) == (TOPIC, 1)
    p = resp.partition
    assert (p.partition_index, p.error_code, p.high_watermark) == (0, OK, 1)
    assert (p.next_filter_offset, p.log_start_offset, p.aborted) == (0, 0, None)
    assert len(p.records) == BATCH_BYTES
    assert validate_batch(p.records, 1 << 20).base_offset == 0


def test_stream_fetch_header_plus_batch_is_the_full_response(golden: list[dict]) -> None:
    g = _vector(golden, spu.SpuApiKey.STREAM_FETCH)
    body = _response_body(g)
    resp = _response(g)
    header = spu.encode_stream_fetch_header(resp, len(resp.partition.records), g["api_version"])
    assert header + resp.partition.records == body
    assert len(header) == len(body) - BATCH_BYTES


@pytest.mark.parametrize("version", [0, 10, 11, 17, 24])
def test_stream_fetch_header_at_other_versions(version: int) -> None:
    batches = _hex("00" * 40)
    resp = spu.StreamFetchResponse(
        TOPIC, 7, spu.FetchablePartitionResponse(
            partition_index=2, error_code=OK, high_watermark=9, next_filter_offset=3, log_start_offset=1,
            aborted=[spu.AbortedTransaction(5, 6)], records=batches))
    header = spu.encode_stream_fetch_header(resp, len(batches), version)
    assert header + batches == encode(resp, version)
    empty = spu.encode_stream_fetch_header(resp, 0, version)
    assert empty == header[:-4] + b"\x00\x00\x00\x00"
    with pytest.raises(ProtocolError):
        spu.encode_stream_fetch_header(resp, -1, version)


def test_update_offsets(golden: list[dict]) -> None:
    g = _vector(golden, spu.SpuApiKey.UPDATE_OFFSETS)
    assert _request(g) == spu.UpdateOffsetsRequest([spu.OffsetUpdate(offset=1, session_id=1)])
    assert _response(g) == spu.UpdateOffsetsResponse([spu.OffsetUpdateStatus(session_id=1, error=OK)])


def test_fetch_consumer_offsets(golden: list[dict]) -> None:
    g = _vector(golden, spu.SpuApiKey.FETCH_CONSUMER_OFFSETS)
    assert _request(g) == spu.FetchConsumerOffsetsRequest(
        spu.FilterOpts(replica_id=spu.ReplicaKey(TOPIC, 0), consumer_id="c1"))
    assert _response(g) == spu.FetchConsumerOffsetsResponse(error_code=OK, consumers=[])


def test_update_consumer_offset(golden: list[dict]) -> None:
    g = _vector(golden, spu.SpuApiKey.UPDATE_CONSUMER_OFFSET)
    assert _request(g) == spu.UpdateConsumerOffsetRequest(offset=0, session_id=1)
    assert _response(g) == spu.UpdateConsumerOffsetResponse(offset=0, error_code=OK)


def test_delete_consumer_offset(golden: list[dict]) -> None:
    g = _vector(golden, spu.SpuApiKey.DELETE_CONSUMER_OFFSET)
    assert _request(g) == spu.DeleteConsumerOffsetRequest(spu.ReplicaKey(TOPIC, 0), "c1")
    assert _response(g) == spu.DeleteConsumerOffsetResponse(OK)


# ------------------------------------------------------------------------- captured snippets (§10)


def test_empty_flush_produce_and_reply() -> None:
    req = _roundtrip(spu.ProduceRequest, _hex("00 0001 000005dc 00000001 <topic> 00000000 00000000"), 24)
    assert req == spu.ProduceRequest(timeout_ms=1500, topics=[spu.TopicProduceData(TOPIC, [])])
    resp = _roundtrip(spu.ProduceResponse, _hex("00000001 <topic> 00000000 00000000"), 24)
    assert resp == spu.ProduceResponse([spu.TopicProduceResponse(TOPIC, [])])


def test_produce_acks_committed_and_transactional_id_always_present() -> None:
    req = spu.ProduceRequest(transactional_id="tx", isolation=spu.Isolation.READ_COMMITTED, timeout_ms=0)
    # at v0 the transactional id and acks are still there; only smartmodules (v8) is gated
    assert encode(req, 0) == _hex("01 0002 7478 ffff 00000000 00000000")
    assert encode(req, 8) == encode(req, 0) + _hex("00000000")


@pytest.mark.parametrize(("acks", "isolation"), [
    (1, spu.Isolation.READ_UNCOMMITTED), (0, spu.Isolation.READ_UNCOMMITTED), (2, spu.Isolation.READ_UNCOMMITTED),
    (-1, spu.Isolation.READ_COMMITTED), (-2, spu.Isolation.READ_COMMITTED), (-32768, spu.Isolation.READ_COMMITTED),
])
def test_isolation_from_acks(acks: int, isolation: spu.Isolation) -> None:
    assert spu.isolation_from_acks(acks) is isolation
    body = _hex("00") + acks.to_bytes(2, "big", signed=True) + _hex("00000000 00000000 00000000")
    assert decode(spu.ProduceRequest, body, 24).isolation is isolation


def test_produce_negative_timeout_is_a_protocol_error() -> None:
    with pytest.raises(ProtocolError):
        decode(spu.ProduceRequest, _hex("00 0001 ffffffff 00000000 00000000"), 24)
    with pytest.raises(ProtocolError):
        encode(spu.ProduceRequest(timeout_ms=-1), 24)


def test_produce_reply_matches_capture() -> None:
    resp = spu.ProduceResponse([spu.TopicProduceResponse(TOPIC, [spu.PartitionProduceResponse(
        partition_index=0, error_code=OK, base_offset=0, log_append_time_ms=-1, log_start_offset=0)])])
    captured = "00000001 <topic> 00000001 | 00000000 0000 0000000000000000 ffffffffffffffff 0000000000000000 | 00000000"
    assert encode(resp, 24) == _hex(captured.replace("|", ""))


def test_stream_fetch_v24_capture_and_offset_consumer_tail() -> None:
    plain = _hex("<topic> 00000000 0000000000000000 0010013a 00 00000000 00")
    req = _roundtrip(spu.StreamFetchRequest, plain, 24)
    assert req == spu.StreamFetchRequest(topic=TOPIC, max_bytes=MAX_FETCH_BYTES)
    with_consumer = plain[:-1] + _hex("01 0002 6331")
    req = _roundtrip(spu.StreamFetchRequest, with_consumer, 24)
    assert req.consumer_id == "c1"


def test_stream_fetch_v17_capture() -> None:
    body = _hex("<topic> 00000000 0000000000000000 0010013a 00 00000000 00 00")
    req = _roundtrip(spu.StreamFetchRequest, body, spu.STREAM_FETCH_FALLBACK_VERSION)
    assert req == spu.StreamFetchRequest(topic=TOPIC, max_bytes=MAX_FETCH_BYTES)
    # the same request at 24 is shorter: no wasm_module/smartmodule/derivedstream, but smartmodules + consumer_id
    assert encode(req, 24) == _hex("<topic> 00000000 0000000000000000 0010013a 00 00000000 00")


ADHOC_FILTER = spu.SmartModuleInvocation(wasm=spu.WasmAdHoc(bytes.fromhex("deadbeef")), kind=spu.KindFilter())


def test_smartmodule_golden_v18() -> None:
    body = _hex("0003 6f6e65 00000003 0000000000000000 00000000 00 00000000 00 00 00000001 01 00000004 deadbeef 00 0000")
    req = _roundtrip(spu.StreamFetchRequest, body, 18)
    assert req == spu.StreamFetchRequest(topic="one", partition=3, smartmodules=[ADHOC_FILTER])


def test_smartmodule_golden_v24_with_lookback() -> None:
    body = _hex("0003 6f6e65 00000003 0000000000000000 00000000 00 00000001 01 00000004 deadbeef 00 0000 "
                "01 0000000000000001 00 00")
    req = _roundtrip(spu.StreamFetchRequest, body, 24)
    [sm] = req.smartmodules
    assert sm.wasm == spu.WasmAdHoc(bytes.fromhex("deadbeef"))
    assert sm.kind == spu.KindFilter()
    assert sm.params == spu.SmartModuleExtraParams(inner={}, lookback=spu.Lookback(last=1, age=None))
    assert req.consumer_id is None


def test_smartmodules_in_produce() -> None:
    """Produce v8+ carries the same invocation vector; it decodes even when a module is present."""
    sm = spu.SmartModuleInvocation(
        wasm=spu.WasmPredefined("my-map"), kind=spu.KindGeneric(spu.ContextJoinStream("t", "ds")),
        params=spu.SmartModuleExtraParams({"b": "2", "a": "1"}, spu.Lookback(last=5, age=1.5)))
    body = _hex("00 0001 000005dc 00000000 00000001 00 0006") + b"my-map" + _hex(
        "07 03 0001 74 0002 6473 0002 0001 61 0001 31 0001 62 0001 32 01 0000000000000005 01 "
        "0000000000000001 1dcd6500")
    req = _roundtrip(spu.ProduceRequest, body, 24)
    assert req.smartmodules == [sm]
    # lookback is v20+, its age v21+: the same invocation at v20 drops the age, at v19 the lookback
    at20 = decode(spu.ProduceRequest, encode(req, 20), 20).smartmodules[0].params.lookback
    assert at20 == spu.Lookback(last=5, age=None)
    assert decode(spu.ProduceRequest, encode(req, 19), 19).smartmodules[0].params.lookback is None


def test_stream_fetch_push_capture(golden: list[dict]) -> None:
    batch = bytes.fromhex(_vector(golden, spu.SpuApiKey.PRODUCE)["request_body_hex"])[-4 - BATCH_BYTES:-4]
    assert decode_header(batch).crc == 0xDAA7017C
    body = _hex("<topic> 00000001 00000000 0000 0000000000000001 0000000000000000 0000000000000000 00 00000051") + batch
    resp = _roundtrip(spu.StreamFetchResponse, body, 24)
    assert (resp.stream_id, resp.partition.high_watermark, resp.partition.records) == (1, 1, batch)


def test_consumer_offsets_captures() -> None:
    assert _roundtrip(spu.FetchConsumerOffsetsRequest, _hex("00"), 24) == spu.FetchConsumerOffsetsRequest()
    assert _roundtrip(spu.FetchConsumerOffsetsRequest, b"", 23) == spu.FetchConsumerOffsetsRequest()
    req = _roundtrip(spu.FetchConsumerOffsetsRequest, _hex("01 01 <topic> 00000000 01 0002 6331"), 24)
    assert req.filter_opts == spu.FilterOpts(spu.ReplicaKey(TOPIC, 0), "c1")
    assert _roundtrip(spu.UpdateConsumerOffsetRequest, _hex("0000000000000000 00000001"), 24).session_id == 1
    assert _roundtrip(spu.DeleteConsumerOffsetRequest, _hex("<topic> 00000000 0002 6331"), 24).consumer_id == "c1"


def test_fetch_offsets_consumer_id_only_at_23() -> None:
    req = spu.FetchOffsetsRequest([spu.FetchOffsetTopic(TOPIC, [spu.FetchOffsetPartition(0)])], consumer_id="c")
    base = _hex("00000001 <topic> 00000001 00000000")
    assert encode(req, 22) == base == encode(req, 24)
    assert encode(req, 23) == base + _hex("01 0001 63")


def test_error_payload_in_a_produce_reply() -> None:
    """PartitionFull carries its ReplicaKey (§12); the rest of the entry follows it."""
    err = WireError.of(ErrorCode.PARTITION_FULL, TOPIC, 0)
    resp = spu.ProduceResponse([spu.TopicProduceResponse(TOPIC, [spu.PartitionProduceResponse(0, err, -1)])])
    body = _hex("00000001 <topic> 00000001 00000000 0048 <topic> 00000000 ffffffffffffffff "
                "0000000000000000 0000000000000000 00000000")
    assert encode(resp, 24) == body
    assert decode(spu.ProduceResponse, body, 24) == resp


def test_fetch_v24_roundtrip_layout() -> None:
    req = spu.FetchRequest(max_wait=10, min_bytes=1, max_bytes=100, isolation_level=spu.Isolation.READ_COMMITTED,
                           topics=[spu.FetchableTopic(TOPIC, [spu.FetchPartition(0, 4, 5, 6, 7)])],
                           forgotten=[spu.ForgottenTopic("x", [1, 2])])
    body = _hex("0000000a 00000001 00000064 01 00000001 <topic> 00000001 00000000 00000004 0000000000000005 "
                "0000000000000006 00000007 00000001 0001 78 00000002 00000001 00000002")
    assert encode(req, 24) == body
    assert decode(spu.FetchRequest, body, 24) == req
    # v0: no max_bytes, isolation, leader epoch, log start offset or forgotten topics
    assert encode(req, 0) == _hex("0000000a 00000001 00000001 <topic> 00000001 00000000 0000000000000005 00000007")

