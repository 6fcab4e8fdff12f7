"""SmartModule errors: Fluvio's codes, payloads and Display texts (error_code.rs, link/smartmodule.rs
@v0.17.3), each to its WireError and back through `smartmodule_error`."""

from __future__ import annotations

import pytest

from fluvial.errors import (
    ErrorCode,
    SmartModuleChainInitError,
    SmartModuleError,
    SmartModuleFailed,
    SmartModuleInvalid,
    SmartModuleLookBackError,
    SmartModuleMemoryLimitExceeded,
    SmartModuleNotFound,
    SmartModuleRuntimeError,
    is_smartmodule_code,
    smartmodule_error,
)
from fluvial.protocol.codec import ERROR_CODE, Reader, WireError

CASES = [
    (SmartModuleNotFound("does_not_exist"), 6001, "SmartModule does_not_exist was not found"),
    (SmartModuleInvalid("invalid gzip header"), 6002, "SmartModule is invalid: invalid gzip header"),
    (SmartModuleRuntimeError("invalid digit found in string", 11, 4, None, b"x"), 6004,
     "SmartModule transform error invalid digit found in string\n\nSmartModule Info: \n    Type: FilterMap\n"
     "    Offset: 11\n    Key: NULL\n    Value: x"),
    (SmartModuleRuntimeError("h", 3, 0, b"k", b"\xff\xfe"), 6004,
     "SmartModule transform error h\n\nSmartModule Info: \n    Type: Filter\n    Offset: 3\n    Key: k\n"
     "    Value: Binary: 2 bytes"),
    (SmartModuleChainInitError("No valid smartmodule found"), 6005,
     "Error initializing No valid smartmodule found SmartModule Chain"),
    (SmartModuleLookBackError("boom"), 6007, "SmartModule look_back error: boom"),
    (SmartModuleMemoryLimitExceeded(2_000_000, 1_000_000), 6008,
     "SmartModule memory limit exceeded: requested 2000000 bytes, max allowed 1000000 bytes"),
    (SmartModuleFailed("m: wasm trap: unreachable"), 2, "Other error: SmartModule err m: wasm trap: unreachable"),
]


@pytest.mark.parametrize(("exc", "code", "text"), CASES)
def test_text_code_and_round_trip_through_the_wire(exc: SmartModuleError, code: int, text: str) -> None:
    assert str(exc) == text
    wire = WireError.from_exception(exc)
    assert int(wire.code) == code
    out = bytearray()
    ERROR_CODE.encode(wire, out, 24)
    back = ERROR_CODE.decode(Reader(bytes(out)), 24)
    assert back == wire
    assert is_smartmodule_code(back.code, back.payload[0] if back.payload and isinstance(back.payload[0], str)
                               else "")
    again = smartmodule_error(back)
    assert type(again) is type(exc) and str(again) == text


def test_6004_bytes_match_the_reference() -> None:
    """§3.4: i16 6004 | u16 hint | i64 offset | u8 kind | u8 0/1 [varint key] | varint value (RecordData)."""
    out = bytearray()
    ERROR_CODE.encode(WireError.from_exception(SmartModuleRuntimeError("ten", 10, 0, b"k", b"ten")), out, 24)
    assert bytes(out) == bytes.fromhex("1774 0003 74656e 000000000000000a 00 01 02 6b 06 74656e")
    out = bytearray()
    ERROR_CODE.encode(WireError.from_exception(SmartModuleRuntimeError("h", 1, 4, None, b"x" * 70)), out, 24)
    assert bytes(out) == bytes.fromhex("1774 0001 68 0000000000000001 04 00 8c01") + b"x" * 70


def test_other_errors_are_not_smartmodule_failures() -> None:
    assert not is_smartmodule_code(ErrorCode.OTHER, "not enough in-sync replicas")
    assert is_smartmodule_code(ErrorCode.SMART_MODULE_ERROR)
    generic = smartmodule_error(WireError(ErrorCode.SMART_MODULE_ERROR))
    assert type(generic) is SmartModuleError and generic.code is ErrorCode.SMART_MODULE_ERROR
