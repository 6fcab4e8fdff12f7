"""Pure parts of `fluvial.cli.common`: fluvio's size and duration syntax, endpoint resolution, JSON docs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from fluvial.cli.common import (
    DEFAULT_ENDPOINT,
    format_bytes,
    format_duration,
    parse_duration,
    parse_endpoint,
    parse_size,
    resolve_endpoint,
    to_doc,
)
from fluvial.client.profile import write_profile
from fluvial.errors import InvalidConfig, ProfileError
from fluvial.protocol.metadata import TopicResolution


@pytest.mark.parametrize(("text", "expected"), [
    ("2048", 2048),
    ("0", 0),
    ("1B", 1),
    ("1KB", 1000),
    ("1kb", 1000),
    ("1k", 1000),
    ("2 Ki", 2048),
    ("2KiB", 2048),
    ("1MB", 1_000_000),
    ("10 MiB", 10 * 2**20),
    ("1 GB", 10**9),
    ("1GiB", 2**30),
    ("1.5 MB", 1_500_000),
    ("1TiB", 2**40),
    (" 3 mb ", 3_000_000),
])
def test_parse_size(text: str, expected: int) -> None:
    assert parse_size(text) == expected


@pytest.mark.parametrize("text", ["", "abc", "MB", "1 XB", "-1", "1 MB extra", "1..2"])
def test_parse_size_rejects(text: str) -> None:
    with pytest.raises(InvalidConfig, match="invalid size"):
        parse_size(text)


@pytest.mark.parametrize(("text", "expected"), [
    ("1h", 3600),
    ("7d", 7 * 86400),
    ("7 days", 7 * 86400),
    ("2d 10s", 2 * 86400 + 10),
    ("2d10s", 2 * 86400 + 10),
    ("90min", 5400),
    ("1m", 60),
    ("1M", 2_630_016),          # humantime: M is a month
    ("1y", 31_557_600),
    ("1w", 604800),
    ("10s", 10),
    ("1500ms", 1),              # rounded down to seconds
    ("1hour 30minutes", 5400),
])
def test_parse_duration(text: str, expected: int) -> None:
    assert parse_duration(text) == expected


@pytest.mark.parametrize("text", ["", "5", "1 parsec", "h", "1h x", "1D"])
def test_parse_duration_rejects(text: str) -> None:
    with pytest.raises(InvalidConfig, match="invalid duration"):
        parse_duration(text)


@pytest.mark.parametrize(("seconds", "expected"), [
    (0, "0s"),
    (10, "10s"),
    (3600, "1h"),
    (5400, "1h 30m"),
    (86400, "1day"),
    (604800, "7days"),
    (90061, "1day 1h 1m 1s"),
    (2_630_016, "1month"),
    (31_557_600 * 2, "2years"),
])
def test_format_duration(seconds: int, expected: str) -> None:
    assert format_duration(seconds) == expected


@pytest.mark.parametrize(("n", "expected"), [
    (0, "0 B"), (999, "999 B"), (1000, "1.0 KB"), (1500, "1.5 KB"), (10**6, "1.0 MB"), (2 * 10**9, "2.0 GB"),
])
def test_format_bytes(n: int, expected: str) -> None:
    assert format_bytes(n) == expected


@pytest.mark.parametrize(("text", "expected"), [
    ("127.0.0.1:9003", ("127.0.0.1", 9003)),
    ("localhost:1", ("localhost", 1)),
    ("[::1]:9003", ("::1", 9003)),
])
def test_parse_endpoint(text: str, expected: tuple[str, int]) -> None:
    assert parse_endpoint(text) == expected


@pytest.mark.parametrize("text", ["127.0.0.1", ":9003", "host:", "host:x", "host:70000", "host:0"])
def test_parse_endpoint_rejects(text: str) -> None:
    with pytest.raises(InvalidConfig, match="expected HOST:PORT"):
        parse_endpoint(text)


def test_resolve_endpoint_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "config"
    monkeypatch.setenv("FLV_PROFILE_PATH", str(path))
    assert resolve_endpoint() == parse_endpoint(DEFAULT_ENDPOINT)           # no file: the local default
    write_profile("10.0.0.1:9100")
    assert resolve_endpoint() == ("10.0.0.1", 9100)                         # the current profile
    assert resolve_endpoint("h:1") == ("h", 1)                              # explicit wins
    assert resolve_endpoint(profile="fluvial") == ("10.0.0.1", 9100)
    with pytest.raises(ProfileError, match='profile "other" not found'):
        resolve_endpoint(profile="other")
    with pytest.raises(InvalidConfig, match="not both"):
        resolve_endpoint("h:1", "fluvial")


def test_to_doc_is_json_data() -> None:
    from fluvial.client.admin import ReplicaOffsets

    doc = to_doc({"r": TopicResolution.INSUFFICIENT_RESOURCES, "t": (1, 2), "o": ReplicaOffsets(5001, 3, 4),
                  "m": {0: (5001,)}})
    assert doc == {"r": "insufficient_resources", "t": [1, 2], "o": {"spu": 5001, "hw": 3, "leo": 4},
                   "m": {"0": [5001]}}
    json.dumps(doc)
