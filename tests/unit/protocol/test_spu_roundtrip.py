"""SPU messages: Hypothesis round trips at every layout-changing version, and garbage decoding.

Strategies are derived from each message's own field list (`WIRE_FIELDS`), so a field added to a message is
covered without touching this file. Decoding random bytes, every truncation of every golden body and
mutated golden bodies may only succeed or raise `ProtocolError` — never IndexError, struct.error,
ValueError, UnicodeDecodeError, MemoryError, ...
"""

from __future__ import annotations

import enum
import json
import os
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fluvial.errors import ProtocolError
from fluvial.protocol import spu
from fluvial.protocol.codec import (
    all_messages,
    decode,
    encode,
)

from .strategies import strategy_for_message

# --------------------------------------------------------------------------------------- messages

MESSAGES = sorted(all_messages(vars(spu)), key=lambda c: c.__name__)
TOP_LEVEL = sorted({c for api in spu.SPU_APIS.values() for c in api} - {spu.ApiVersionsRequest, spu.ApiVersionsResponse},
                   key=lambda c: c.__name__)
LAYOUT_VERSIONS = [0, 1, 2, 5, 8, 11, 16, 17, 18, 20, 21, 23]   # every version at which some SPU layout changes


def test_every_message_is_covered() -> None:
    names = {c.__name__ for c in MESSAGES}
    assert {"ProduceRequest", "ProduceResponse", "StreamFetchRequest", "StreamFetchResponse", "FetchRequest",
            "FetchResponse", "SmartModuleInvocation", "ReplicaKey", "KindGeneric", "ContextJoinStream"} <= names
    assert len(TOP_LEVEL) == 16


def _roundtrip(msg: Any, version: int) -> None:
    raw = encode(msg, version)
    back = decode(type(msg), raw, version)
    assert back == msg
    assert encode(back, version) == raw


@pytest.mark.parametrize("cls", MESSAGES, ids=lambda c: c.__name__)
@settings(max_examples=30, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_roundtrip_v24(cls: type, data: st.DataObject) -> None:
    _roundtrip(data.draw(strategy_for_message(cls, 24)), 24)


@pytest.mark.parametrize("version", [17, 18, 23])
@pytest.mark.parametrize("cls", TOP_LEVEL, ids=lambda c: c.__name__)
@settings(max_examples=15, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_roundtrip_v17_v18_v23(cls: type, version: int, data: st.DataObject) -> None:
    _roundtrip(data.draw(strategy_for_message(cls, version)), version)


@pytest.mark.parametrize("cls", TOP_LEVEL, ids=lambda c: c.__name__)
@settings(max_examples=40, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_roundtrip_any_version(cls: type, data: st.DataObject) -> None:
    version = data.draw(st.sampled_from(LAYOUT_VERSIONS) | st.integers(0, 24), label="version")
    _roundtrip(data.draw(strategy_for_message(cls, version)), version)


@settings(max_examples=60)
@given(msg=strategy_for_message(spu.StreamFetchResponse, 24), version=st.sampled_from([0, 10, 11, 17, 24]))
def test_stream_fetch_header_property(msg: spu.StreamFetchResponse, version: int) -> None:
    records = msg.partition.records
    assert spu.encode_stream_fetch_header(msg, len(records), version) + records == encode(msg, version)


def test_isolation_enum_is_closed() -> None:
    assert [int(i) for i in spu.Isolation] == [0, 1]
    assert isinstance(spu.Isolation.READ_COMMITTED, enum.IntEnum)
    with pytest.raises(ProtocolError):   # StreamFetch isolation u8 = 2: unknown tag
        decode(spu.StreamFetchRequest, bytes.fromhex("0000 00000000 0000000000000000 00000000 02 00000000 00"), 24)


# ------------------------------------------------------------------------------------------ garbage

# Parametrization needs the vectors at import time, so read them here, as tests/conftest.py does.
GOLDEN_FILE = Path(os.environ.get("FLUVIAL_GOLDEN", Path(__file__).parents[2] / "golden" / "golden_vectors.json"))
GOLDEN = json.loads(GOLDEN_FILE.read_text())
SPU_GOLDEN = [g for g in GOLDEN if g["role"] == "SPU"]
SMARTMODULE_V18 = bytes.fromhex("0003 6f6e65 00000003 0000000000000000 00000000 00 00000000 00 00 00000001 01 "
                                "00000004 deadbeef 00 0000")
SMARTMODULE_V24 = bytes.fromhex("0003 6f6e65 00000003 0000000000000000 00000000 00 00000001 01 00000004 deadbeef "
                                "00 0000 01 0000000000000001 00 00")


def _bodies() -> list[tuple[str, type, bytes, int]]:
    out = []
    for g in SPU_GOLDEN:
        api = spu.SPU_APIS[spu.SpuApiKey(g["api_key"])]
        frame = bytes.fromhex(g["response_frame_hex"])
        name = f"{api.request.__name__}-v{g['api_version']}"
        out.append((name, api.request, bytes.fromhex(g["request_body_hex"]), g["api_version"]))
        out.append((name.replace("Request", "Response"), api.response, frame[8:], g["api_version"]))
    out.append(("StreamFetchRequest-sm-v18", spu.StreamFetchRequest, SMARTMODULE_V18, 18))
    out.append(("StreamFetchRequest-sm-v24", spu.StreamFetchRequest, SMARTMODULE_V24, 24))
    return out


BODIES = _bodies()


def _decode_or_protocol_error(cls: type, data: bytes, version: int) -> Any:
    """Decoding may succeed or raise ProtocolError; any other exception fails the test by propagating."""
    try:
        return decode(cls, data, version)
    except ProtocolError:
        return None


def _reencodes(cls: type, msg: Any, version: int) -> None:
    """Whatever decodes is canonical: it re-encodes and decodes to itself. The one exception is a
    Duration beyond what a float of seconds holds exactly (u64 seconds), which refuses to re-encode."""
    try:
        raw = encode(msg, version)
    except ProtocolError:
        return
    assert decode(cls, raw, version) == msg


def test_golden_bodies_decode() -> None:
    for _name, cls, body, version in BODIES:
        assert encode(decode(cls, body, version), version) == body


@pytest.mark.parametrize(("name", "cls", "body", "version"), BODIES, ids=[b[0] for b in BODIES])
def test_every_truncation_is_a_protocol_error(name: str, cls: type, body: bytes, version: int) -> None:
    for cut in range(len(body)):
        with pytest.raises(ProtocolError):
            decode(cls, body[:cut], version)
    with pytest.raises(ProtocolError):   # and a trailing byte is refused too
        decode(cls, body + b"\x00", version)


@pytest.mark.parametrize("cls", TOP_LEVEL, ids=lambda c: c.__name__)
@settings(max_examples=150)
@given(data=st.binary(max_size=160), version=st.sampled_from([0, 11, 17, 18, 23, 24]))
def test_random_bytes_only_raise_protocol_error(cls: type, data: bytes, version: int) -> None:
    msg = _decode_or_protocol_error(cls, data, version)
    if msg is not None:
        _reencodes(cls, msg, version)


@settings(max_examples=400)
@given(which=st.sampled_from(BODIES), edits=st.lists(st.tuples(st.integers(0, 10**6), st.integers(0, 255)),
                                                    min_size=1, max_size=4))
def test_mutated_golden_bodies_only_raise_protocol_error(which: tuple, edits: list[tuple[int, int]]) -> None:
    _name, cls, body, version = which
    buf = bytearray(body)
    for pos, value in edits:
        buf[pos % len(buf)] = value
    msg = _decode_or_protocol_error(cls, bytes(buf), version)
    if msg is not None:
        _reencodes(cls, msg, version)


@pytest.mark.parametrize(("cls", "body"), [
    (spu.ProduceRequest, "00 0001 000005dc 7fffffff"),                     # 2^31-1 topics in 4 bytes
    (spu.FetchConsumerOffsetsResponse, "0000 7fffffff 00"),                 # huge consumer vector
    (spu.StreamFetchResponse, "0000 00000000 00000000 0000 " + "00" * 24 + "00 7fffffff"),   # huge RecordSet
    (spu.StreamFetchResponse, "0000 00000000 00000000 0000 " + "00" * 24 + "00 ffffffff"),   # negative RecordSet
    (spu.ProduceRequest, "02"),                                             # bad Option flag
    (spu.DeleteConsumerOffsetRequest, "0002 c328 00000000 0000"),           # invalid UTF-8 topic
    (spu.UpdateOffsetsResponse, "00000001 00000001 7fff"),                  # unknown ErrorCode
    (spu.ProduceRequest, "00 0001 00000001 00000000 00000001 05"),          # unknown SmartModuleInvocationWasm tag
    (spu.ProduceRequest, "00 0001 00000001 00000000 00000001 00 0000 08"),  # unknown SmartModuleKind tag
    (spu.ProduceRequest, "00 0001 00000001 00000000 00000001 00 0000 07 04"),   # unknown context tag
])
def test_hostile_inputs_are_protocol_errors(cls: type, body: str) -> None:
    with pytest.raises(ProtocolError):
        decode(cls, bytes.fromhex(body.replace(" ", "")), 24)


def test_negative_lengths_decode_as_empty() -> None:
    """Traps T1/T2: a negative String length is an empty string, a negative Vec count an empty vector."""
    body = bytes.fromhex("ffff 00000000 0000000000000000 00000000 00 ffffffff 00")
    assert decode(spu.StreamFetchRequest, body, 24) == spu.StreamFetchRequest()


def test_duration_beyond_float_precision_refuses_to_reencode() -> None:
    """Lookback.age decodes from any u64 seconds, but a float of ~1.8e19 s cannot be written back as u64."""
    body = SMARTMODULE_V24[:-2] + bytes.fromhex("01 ffffffffffffffff 3b9ac9ff 00".replace(" ", ""))
    req = decode(spu.StreamFetchRequest, body, 24)
    assert req.smartmodules[0].params.lookback.age > 1.8e19
    with pytest.raises(ProtocolError):
        encode(req, 24)
    for bad in (-1.0, float("inf"), float("nan")):
        req.smartmodules[0].params.lookback.age = bad
        with pytest.raises(ProtocolError):
            encode(req, 24)
