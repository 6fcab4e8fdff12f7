"""fluvial's internal SC⇄SPU messages: Hypothesis round trips and garbage decoding, with the same
field-driven strategies as the SPU messages."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fluvial.errors import ProtocolError
from fluvial.protocol import internal
from fluvial.protocol.codec import all_messages, decode, encode

from .strategies import strategy_for_message as message_strategy

MESSAGES = [m for m in all_messages(vars(internal)) if m.__module__ == internal.__name__]


@pytest.mark.parametrize("cls", MESSAGES, ids=lambda c: c.__name__)
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_roundtrip(cls: type, data: st.DataObject) -> None:
    msg = data.draw(message_strategy(cls, internal.INTERNAL_VERSION))
    assert decode(cls, encode(msg, internal.INTERNAL_VERSION), internal.INTERNAL_VERSION) == msg


@pytest.mark.parametrize("cls", MESSAGES, ids=lambda c: c.__name__)
@settings(max_examples=60, deadline=None)
@given(raw=st.binary(max_size=200))
def test_garbage_raises_only_protocol_error(cls: type, raw: bytes) -> None:
    with contextlib.suppress(ProtocolError):
        decode(cls, raw, internal.INTERNAL_VERSION)
