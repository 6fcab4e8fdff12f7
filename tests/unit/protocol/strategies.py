"""Hypothesis strategies for every declarative wire message, derived from its own `WIRE_FIELDS` and
version-aware: fields absent at a version keep their defaults (what decoding gives them). Shared by the
SC, SPU and internal protocol tests."""

from __future__ import annotations

import functools
from typing import Any

from hypothesis import strategies as st

from fluvial.errors import ErrorCode
from fluvial.protocol import spu
from fluvial.protocol.codec import (
    BOOL,
    BYTES,
    DURATION,
    ERROR_CODE,
    ERROR_PAYLOADS,
    MAX_STRING_BYTES,
    RECORD_DATA,
    RECORD_SET,
    RECORD_SET_VIEW,
    STRING,
    Fixed,
    IntEnum8,
    Lazy,
    Map16,
    Option,
    Struct,
    Variants,
    Vec,
    WireError,
    WireType,
)

_INT_RANGES = {"b": 8, "h": 16, "i": 32, "q": 64}
_EXTRA: dict[int, st.SearchStrategy[Any]] = {
    id(spu.ACKS): st.sampled_from(spu.Isolation),
    id(spu.TIMEOUT_MS): st.integers(0, 2**31 - 1),
}
_DURATIONS = st.builds(lambda s, n: s + n / 1e9, st.integers(0, 2**20), st.integers(0, 10**9 - 1))


def _int_range(fmt: str) -> st.SearchStrategy[int]:
    code = fmt[-1]
    bits = _INT_RANGES.get(code.lower())
    assert bits is not None, fmt
    if code.isupper():
        return st.integers(0, 2**bits - 1)
    return st.integers(-(2 ** (bits - 1)), 2 ** (bits - 1) - 1)


def _error_codes() -> st.SearchStrategy[WireError]:
    def with_payload(code: ErrorCode) -> st.SearchStrategy[WireError]:
        layout = ERROR_PAYLOADS.get(code, ())
        return st.tuples(*(strategy_for(t, 0) for _n, t in layout)).map(lambda p: WireError(code, p))

    return st.sampled_from(list(ErrorCode)).flatmap(with_payload)


@functools.cache
def strategy_for(wtype: WireType, version: int) -> st.SearchStrategy[Any]:
    """Values of one wire type that encode at `version` and decode back equal."""
    if id(wtype) in _EXTRA:
        return _EXTRA[id(wtype)]
    if isinstance(wtype, Fixed):
        return _int_range(wtype.st.format)
    if wtype is BOOL:
        return st.booleans()
    if wtype is STRING:
        return st.text(max_size=8).filter(lambda s: len(s.encode()) <= MAX_STRING_BYTES)
    if wtype is BYTES or wtype is RECORD_SET or wtype is RECORD_SET_VIEW or wtype is RECORD_DATA:
        return st.binary(max_size=24)
    if wtype is DURATION:
        return _DURATIONS
    if wtype is ERROR_CODE:
        return _error_codes()
    if isinstance(wtype, Option):
        return st.none() | strategy_for(wtype.inner, version)
    if isinstance(wtype, Vec):
        return st.lists(strategy_for(wtype.inner, version), max_size=3)
    if isinstance(wtype, Map16):
        return st.dictionaries(strategy_for(wtype.key, version), strategy_for(wtype.value, version), max_size=3)
    if isinstance(wtype, IntEnum8):
        return st.sampled_from(wtype.enum_cls)
    if isinstance(wtype, Struct):
        return strategy_for_message(wtype.cls, version)
    if isinstance(wtype, Variants):
        return st.one_of([strategy_for_message(cls, version, gated=False) for cls in wtype.by_tag.values()])
    if isinstance(wtype, Lazy):
        return strategy_for(wtype._get(), version)
    raise AssertionError(f"no strategy for {wtype!r}")


@functools.cache
def strategy_for_message(cls: type, version: int, *, gated: bool = True) -> st.SearchStrategy[Any]:
    """The fields present at `version` get generated values; absent ones keep their defaults (which is
    what decoding gives them). Variant payloads are never gated."""
    kwargs = {}
    for name, wtype, lo, hi in cls.WIRE_FIELDS:   # type: ignore[attr-defined]
        if not gated or (version >= lo and (hi is None or version <= hi)):
            kwargs[name] = strategy_for(wtype, version)
    return st.builds(cls, **kwargs)
