"""SC messages and metadata objects: random messages of every class round-trip at every version, and
decoding garbage, mutated or truncated SC bodies raises only ProtocolError.

Strategies are derived from the messages' own wire declarations (`WIRE_FIELDS`), version-aware: a field
absent at the drawn version is left at its default, so a round trip at that version must restore the
message exactly.
"""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fluvial.errors import ProtocolError
from fluvial.protocol import metadata, sc
from fluvial.protocol.codec import (
    Variants,
    all_messages,
    decode,
    encode,
)

from .sc_vectors import decode_body, golden_bodies
from .strategies import strategy_for_message


def _object_classes() -> set[type]:
    out = set()
    for obj in sc.OBJECT_TYPES.values():
        out |= obj.classes() | {obj.metadata, obj.change, obj.spec, obj.status}
    return out


ALL_CLASSES = sorted({*all_messages(vars(metadata)), *all_messages(vars(sc)), *_object_classes()},
                     key=lambda c: c.__name__)
VERSIONS = (0, 1, 3, 4, 5, 6, 7, 10, 11, 12, 13, 14, 15, 16, 18, 19)
SC_VERSIONS = st.integers(sc.DYN_OBJ_VERSION, sc.COMMON_VERSION)
LABELS = st.sampled_from(sorted(sc.OBJECT_TYPES))
_SLOW = settings(suppress_health_check=[HealthCheck.too_slow], deadline=None)


def test_every_class_is_covered() -> None:
    names = {c.__name__ for c in ALL_CLASSES}
    for expected in ("SpuSpec", "SpuStatus", "IngressPort", "IngressAddr", "Endpoint", "TopicSpec",
                     "TopicStatus", "PartitionMap", "PartitionMaps", "TopicReplicaParam", "MirrorReplicas",
                     "RemoteMirror", "HomeMirror", "SegmentBasedPolicy", "TopicStorageConfig",
                     "Deduplication", "PartitionSpec", "PartitionMirrorRemote", "PartitionMirrorHome",
                     "PartitionStatus", "ReplicaStatus", "Status", "ListRequest", "WatchRequest",
                     "TopicUpdateRequest", "TypeBuffer", "TopicMetadata", "TopicChange", "TopicMetadataUpdate",
                     "TopicListResponse", "TopicCreateRequest", "TopicDeleteRequest", "PartitionMetadataUpdate",
                     "PartitionListResponse", "SpuMetadataUpdate", "SpuListResponse", "SpuCreateRequest"):
        assert expected in names


def test_variant_payloads_have_no_gated_fields() -> None:
    """`Variants` does not gate a variant's own fields, so those must all be version 0 (a struct with
    gated fields sits inside the variant as one `Struct` field)."""
    for module in (metadata, sc):
        for value in vars(module).values():
            if isinstance(value, Variants):
                for cls in value.by_tag.values():
                    assert all(lo == 0 and hi is None for _n, _t, lo, hi in cls.WIRE_FIELDS), cls


# ---------------------------------------------------------------------------------------- round trips


@pytest.mark.parametrize("cls", ALL_CLASSES, ids=lambda c: c.__name__)
@_SLOW
@given(data=st.data())
def test_round_trip(cls: type, data: st.DataObject) -> None:
    version = data.draw(st.sampled_from(VERSIONS), label="version")
    msg = data.draw(strategy_for_message(cls, version), label="msg")
    raw = encode(msg, version)
    assert decode(cls, raw, version) == msg
    assert encode(decode(cls, raw, version), version) == raw


@_SLOW
@given(data=st.data())
def test_typed_request_round_trip(data: st.DataObject) -> None:
    label = data.draw(LABELS)
    keys = list(sc.ScApiKey) if label == "Topic" else [k for k in sc.ScApiKey if k is not sc.ScApiKey.UPDATE]
    key = data.draw(st.sampled_from(keys))
    version = data.draw(SC_VERSIONS)
    msg = data.draw(strategy_for_message(sc.OBJECT_TYPES[label].request_class(key), version))
    body = sc.encode_typed(label, msg, version)
    assert sc.decode_typed_request(key, body, version) == (label, msg)


@_SLOW
@given(data=st.data())
def test_typed_response_round_trip(data: st.DataObject) -> None:
    label = data.draw(LABELS)
    key = data.draw(st.sampled_from([sc.ScApiKey.LIST, sc.ScApiKey.WATCH]))
    version = data.draw(SC_VERSIONS)
    msg = data.draw(strategy_for_message(sc.OBJECT_TYPES[label].response_class(key), version))
    body = sc.encode_typed(label, msg, version)
    assert sc.decode_typed_response(key, body, version) == (label, msg)


@pytest.mark.parametrize("version", [11, 14, 17, 19])
def test_defaults_round_trip(version: int) -> None:
    for cls in ALL_CLASSES:
        assert decode(cls, encode(cls(), version), version) == cls()


# ------------------------------------------------------------------------------------------- garbage


def _decodes_or_protocol_error(fn, *args) -> None:
    with contextlib.suppress(ProtocolError):
        fn(*args)


@pytest.mark.parametrize("cls", ALL_CLASSES, ids=lambda c: c.__name__)
@given(raw=st.binary(max_size=64), version=st.sampled_from(VERSIONS))
def test_random_bytes_raise_only_protocol_error(cls: type, raw: bytes, version: int) -> None:
    _decodes_or_protocol_error(decode, cls, raw, version)


@given(key=st.integers(0, 1 << 16) | st.sampled_from(list(sc.ScApiKey)), version=st.integers(-2, 25),
       raw=st.binary(max_size=64))
def test_random_typed_bodies_raise_only_protocol_error(key: int, version: int, raw: bytes) -> None:
    _decodes_or_protocol_error(sc.decode_typed_request, key, raw, version)
    _decodes_or_protocol_error(sc.decode_typed_response, key, raw, version)


@given(label=LABELS, key=st.sampled_from(list(sc.ScApiKey)), version=SC_VERSIONS, payload=st.binary(max_size=96))
def test_random_payload_in_valid_envelope_raises_only_protocol_error(
        label: str, key: sc.ScApiKey, version: int, payload: bytes) -> None:
    body = encode(sc.TypeBuffer(label, payload), version)
    _decodes_or_protocol_error(sc.decode_typed_request, key, body, version)
    _decodes_or_protocol_error(sc.decode_typed_response, key, body, version)


@pytest.fixture(scope="module")
def sc_bodies(golden: list[dict]) -> list[tuple[str, int, str, bytes, int]]:
    return golden_bodies(golden)


def test_every_truncation_of_every_sc_body_raises_protocol_error(sc_bodies) -> None:
    for name, key, direction, body, version in sc_bodies:
        for cut in range(len(body)):
            try:
                decode_body(key, direction, body[:cut], version)
            except ProtocolError:
                continue
            pytest.fail(f"{name}: the {cut}-byte prefix decoded")


@_SLOW
@given(data=st.data())
def test_mutated_sc_bodies_raise_only_protocol_error(sc_bodies, data: st.DataObject) -> None:
    _name, key, direction, body, version = data.draw(st.sampled_from(sc_bodies), label="body")
    mutated = bytearray(body)
    for _ in range(data.draw(st.integers(1, 4), label="mutations")):
        at = data.draw(st.integers(0, len(mutated) - 1), label="at")
        mutated[at] = data.draw(st.integers(0, 255), label="byte")
    _decodes_or_protocol_error(decode_body, key, direction, bytes(mutated), version)
