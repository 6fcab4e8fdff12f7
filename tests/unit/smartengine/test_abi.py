"""Host ↔ module bytes (reference fluvio-smartmodules.md §1.5, §2.4, §2.5, §3.4): golden bytes written from
the reference, never produced by the code under test."""

from __future__ import annotations

import pytest

from fluvial.errors import ProtocolError
from fluvial.protocol import spu as sp
from fluvial.protocol.codec import decode
from fluvial.smartengine import abi
from fluvial.spu.smartstream import initial_accumulator

# Record::new("foo") (data.rs:381-565): len 9 | attrs 00 | ts 00 | od 00 | key None 00 | value 06 "foo" | headers 00
FOO = bytes.fromhex("12 00 00 00 00 06 666f6f 00")
RAW = bytes.fromhex("00000001") + FOO


@pytest.mark.parametrize(("version", "expected"), [
    # v24 (>= 23): base | raw | base_timestamp
    (24, "000000000000000a 0000000e" + RAW.hex() + "0000000000000005"),
    # v22: base | raw | params (map16 0, lookback None) | join (empty) | base_timestamp
    (22, "000000000000000a 0000000e" + RAW.hex() + "0000 00 00000000 0000000000000005"),
    # v21: no timestamp
    (21, "000000000000000a 0000000e" + RAW.hex() + "0000 00 00000000"),
    # v19: no lookback in params (v20), join since 16
    (19, "000000000000000a 0000000e" + RAW.hex() + "0000 00000000"),
    # v15: no join
    (15, "000000000000000a 0000000e" + RAW.hex() + "0000"),
])
def test_input_layouts(version: int, expected: str) -> None:
    assert abi.encode_input(RAW, 10, 5, version) == bytes.fromhex(expected)


def test_aggregate_input_appends_the_accumulator_after_the_whole_base() -> None:
    assert abi.encode_aggregate_input(RAW, 0, 0, 24, b"1") == \
        bytes.fromhex("0000000000000000 0000000e" + RAW.hex() + "0000000000000000 00000001 31")


def test_init_input_is_the_params() -> None:
    got = abi.encode_init_input(abi.Params({"key": "o", "a": "b"}, sp.Lookback(1, None)), 24)
    assert got == bytes.fromhex("0002 0001 61 0001 62 0003 6b6579 0001 6f  01 0000000000000001 00")


def test_record_codec_golden_and_round_trip() -> None:
    assert abi.encode_records([abi.SmRecord(b"foo")]) == RAW
    rec = abi.SmRecord(b"v" * 200, key=b"k", offset_delta=-3, timestamp_delta=1_700_000_000_000, attributes=-1)
    encoded = abi.encode_records([rec, abi.SmRecord(b"")])
    back, end = abi.decode_records(encoded)
    assert back == [rec, abi.SmRecord(b"")] and end == len(encoded)


def test_output_with_runtime_error_golden() -> None:
    # §2.5: filter_map fed 2,x,4 at base 10: successes ["1"], error {hint, offset 11, kind 4 FilterMap}
    hint = b"invalid digit found in string"
    out = bytes.fromhex("00000001 0e 00 00 00 00 02 31 00  01") + len(hint).to_bytes(2, "big") + hint + \
        bytes.fromhex("000000000000000b 04 00 02 78")
    got = abi.decode_output(out, 24)
    assert got.successes == [abi.SmRecord(b"1")]
    assert got.error == abi.TransformError(hint.decode(), 11, 4, None, b"x")


def test_aggregate_output_carries_the_accumulator_from_v16() -> None:
    out = bytes.fromhex("00000000 00 00000002 3132")
    assert abi.decode_output(out, 24, aggregate=True).accumulator == b"12"
    assert abi.decode_output(out[:5], 15, aggregate=True).accumulator is None


@pytest.mark.parametrize("bad", [b"", b"\x00\x00\x00\x01", b"\x00\x00\x00\x00\x02", b"\x00\x00\x00\x00\x01\x00"])
def test_bad_outputs_raise_protocol_error(bad: bytes) -> None:
    # empty bytes: a module that never called copy_records fails, as Fluvio's "can't read i32"
    with pytest.raises(ProtocolError):
        abi.decode_output(bad, 24)


def test_look_back_error_display() -> None:
    buf = bytes.fromhex("0003 626164 0000000000000007 01 02 6b 02 76")
    err = abi.decode_look_back_error(buf)
    assert str(err) == "bad\n\nSmartModule Lookback Error: \n    Offset: 7\n    Key: k\n    Value: v"


def test_status_texts_fall_back_to_unknown() -> None:
    assert abi.status_text(abi.TRANSFORM_STATUS, -11) == "failed to decode SmartModule base input"
    assert abi.status_text(abi.TRANSFORM_STATUS, -1234) == "encountered unknown error during SmartModule processing"


# §1.5: what the official Python client 0.21.0 sends (strace), after the common StreamFetch v24 prefix
PREFIX = "0007 736d70726f6265 00000000 0000000000000000 0010013a 00"


@pytest.mark.parametrize(("rest", "accumulator", "params"), [
    ("00000001 00 0005 6d792d736d 07 01 00000001 31 0000 00 00", b"1", {}),          # aggregate=b"1"
    ("00000001 00 0005 6d792d736d 03 00000001 31 0000 00 00", b"1", {}),             # kind=Aggregate
    ("00000001 00 0005 6d792d736d 07 00 0002 0001 61 0001 62 0003 6b6579 0001 6f 00 00", b"", {"a": "b", "key": "o"}),
])
def test_official_client_invocations(rest: str, accumulator: bytes, params: dict[str, str]) -> None:
    req = decode(sp.StreamFetchRequest, bytes.fromhex(PREFIX + rest), 24)
    [inv] = req.smartmodules
    assert inv.wasm == sp.WasmPredefined("my-sm")
    assert initial_accumulator(inv.kind) == accumulator
    assert inv.params.inner == params and inv.params.lookback is None


def test_official_client_chain_of_two() -> None:
    rest = "00000002 00 0003 736d31 07 00 0000 00  00 0003 736d32 01 0000 00  00"
    req = decode(sp.StreamFetchRequest, bytes.fromhex(PREFIX + rest), 24)
    assert [i.wasm.name for i in req.smartmodules] == ["sm1", "sm2"]   # type: ignore[union-attr]
    assert isinstance(req.smartmodules[1].kind, sp.KindMap)
    assert [initial_accumulator(i.kind) for i in req.smartmodules] == [b"", b""]
