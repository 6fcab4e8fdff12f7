"""fluvial-only API messages (AllocateProducerId, ReplicaHealth, replication admin): Hypothesis round trips with the shared
field-driven strategies, truncation and garbage decoding, and the keys never being advertised."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fluvial.errors import ProtocolError
from fluvial.protocol import fluvial_api as fa
from fluvial.protocol import spu
from fluvial.protocol.codec import all_messages, decode, encode

from .strategies import strategy_for_message

V = fa.FLUVIAL_API_VERSION
MESSAGES = [m for m in all_messages(vars(fa)) if m.__module__ == fa.__name__]


def test_every_message_is_covered() -> None:
    assert {c.__name__ for c in MESSAGES} == {
        "AllocateProducerIdRequest", "AllocateProducerIdResponse", "ReplicaHealthRequest", "ReplicaHealthResponse",
        "DataDirHealth", "ReplicaHealth", "TopicReplicationSettings", "PartitionReplication",
        "TopicSettingsRequest", "AdminResponse", "PartitionDetailsRequest", "ReplicaDetail", "PartitionDetail",
        "PartitionDetailsResponse", "ElectLeaderRequest", "MovePartitionRequest", "ClusterHealthRequest",
        "SpuHealthDetail", "AlertEntry", "ClusterHealthResponse"}


@pytest.mark.parametrize("cls", MESSAGES, ids=lambda c: c.__name__)
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_roundtrip(cls: type, data: st.DataObject) -> None:
    msg = data.draw(strategy_for_message(cls, V))
    raw = encode(msg, V)
    assert decode(cls, raw, V) == msg
    assert encode(decode(cls, raw, V), V) == raw


@pytest.mark.parametrize("cls", MESSAGES, ids=lambda c: c.__name__)
@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_every_truncation_is_a_protocol_error(cls: type, data: st.DataObject) -> None:
    raw = encode(data.draw(strategy_for_message(cls, V)), V)
    for cut in range(len(raw)):
        with pytest.raises(ProtocolError):
            decode(cls, raw[:cut], V)
    with pytest.raises(ProtocolError):
        decode(cls, raw + b"\x00", V)     # bytes left over


@pytest.mark.parametrize("cls", MESSAGES, ids=lambda c: c.__name__)
@settings(max_examples=60, deadline=None)
@given(raw=st.binary(max_size=200))
def test_garbage_raises_only_protocol_error(cls: type, raw: bytes) -> None:
    with contextlib.suppress(ProtocolError):
        decode(cls, raw, V)


def test_unknown_state_tag_is_a_protocol_error() -> None:
    raw = bytearray(encode(fa.ReplicaHealthResponse(spu_id=5001, data_dirs=[fa.DataDirHealth()]), V))
    state_at = 2 + 4 + 4 + 2 + len("")     # error code, spu id, vec length, empty path -> the state tag
    raw[state_at] = 9
    with pytest.raises(ProtocolError):
        decode(fa.ReplicaHealthResponse, bytes(raw), V)


def test_response_layout() -> None:
    resp = fa.AllocateProducerIdResponse(producer_id=7, producer_epoch=0)
    assert encode(resp, V) == b"\x00\x00" + (7).to_bytes(8, "big") + b"\x00\x00"
    assert fa.AllocateProducerIdResponse().producer_id == -1


def test_keys_are_never_advertised() -> None:
    keys = {k.api_key for k in spu.spu_api_keys("0.21.0")} | {k.api_key for k in spu.spu_api_keys("")}
    assert fa.ALLOCATE_PRODUCER_ID not in keys and fa.REPLICA_HEALTH not in keys
