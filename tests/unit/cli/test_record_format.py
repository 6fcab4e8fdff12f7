"""`fluvial consume` output: templates, output types, offsets chosen by flags; `produce` line splitting."""

from __future__ import annotations

import pytest

from fluvial.cli.consume import start_offset
from fluvial.cli.produce import parse_isolation, parse_semantic, split_line
from fluvial.cli.record_format import compile_template, format_value, formatter, is_binary, rfc3339_millis
from fluvial.client.batchcodec import ConsumerRecord
from fluvial.client.consumer import Offset
from fluvial.client.producer import DeliverySemantic
from fluvial.protocol.spu import Isolation

REC = ConsumerRecord(2, 41, b"k1", b"hello", 1_700_000_000_123)


@pytest.mark.parametrize(("template", "want"), [
    ("{{key}}={{value}}", "k1=hello"),
    ("{{ offset }}@{{partition}}", "41@2"),
    ("{{time}}", "2023-11-14T22:13:20.123Z"),
    ("plain", "plain"),
])
def test_templates(template: str, want: str) -> None:
    assert compile_template(template)(REC) == want


def test_template_null_key_and_unknown_variable() -> None:
    assert compile_template("{{key}}")(REC._replace(key=None)) == "null"
    with pytest.raises(ValueError, match="nope"):
        compile_template("{{nope}}")


@pytest.mark.parametrize(("data", "output", "want"), [
    (b"abc", "dynamic", "abc"),
    (b"abc", "raw", "abc"),
    (b"abc", "text", "abc"),
    (b"a\x00c", "text", "binary: (3 bytes)"),
    (b'{"a":1}', "json", '{\n  "a": 1\n}'),
])
def test_output_types(data: bytes, output: str, want: str) -> None:
    assert format_value(data, output) == want


def test_binary_records_are_hex_dumped_and_bad_json_reported_or_suppressed() -> None:
    assert is_binary(b"\xff\xfe") and is_binary(b"a\x00") and not is_binary("é".encode())
    assert format_value(b"\x00\x01", "dynamic").startswith("00000000  00 01")
    assert '"error"' in format_value(b"not json", "json")
    assert format_value(b"not json", "json", suppress_unknown=True) is None
    assert formatter("dynamic", None, key_value=True)(REC) == "[k1] hello"
    with pytest.raises(ValueError):
        formatter("full_table")


def test_table_output_prints_the_header_once() -> None:
    render = formatter("table")
    rows = [render(REC._replace(value=v)) for v in (b'{"a": 1, "b": "x"}', b'{"a": 2, "b": "y"}', b"[1]", b"nope")]
    assert rows[0] == "a  b\n1  x" and rows[1] == "2  y"
    assert rows[2] == "error: Unable to parse json as object map" and rows[3].startswith("error parsing record as json")


def test_no_timestamp_prints_na() -> None:
    assert rfc3339_millis(-1) == "NA"


@pytest.mark.parametrize(("flags", "want"), [
    ((False, None, None, None), Offset.end()),
    ((True, None, None, None), Offset.from_beginning(0)),
    ((False, 5, None, None), Offset.from_beginning(5)),
    ((False, None, 3, None), Offset.from_end(3)),
    ((False, None, None, 9), Offset.absolute(9)),
])
def test_start_offset_flags(flags: tuple[bool, int | None, int | None, int | None], want: Offset) -> None:
    assert start_offset(*flags) == want


def test_start_offset_flags_conflict() -> None:
    with pytest.raises(ValueError):
        start_offset(True, 1, None, None)


@pytest.mark.parametrize(("line", "sep", "key", "want"), [
    (b"a:1", b":", None, (b"a", b"1")),
    (b"a:1:2", b":", None, (b"a", b"1:2")),        # first separator only
    (b"::", b"::", None, (b"", b"")),
    (b"v", None, None, (None, b"v")),
    (b"v", None, b"K", (b"K", b"v")),
])
def test_split_line(line: bytes, sep: bytes | None, key: bytes | None, want: tuple[bytes | None, bytes]) -> None:
    assert split_line(line, sep, key) == want


def test_split_line_without_separator_is_an_error() -> None:
    with pytest.raises(ValueError, match="separator"):
        split_line(b"novalue", b":", None)


def test_isolation_and_semantic_names() -> None:
    assert parse_isolation("read_committed") is Isolation.READ_COMMITTED
    assert parse_isolation("ReadUncommitted") is Isolation.READ_UNCOMMITTED
    assert parse_semantic("at_most_once") is DeliverySemantic.AT_MOST_ONCE
    assert parse_semantic("at-least-once") is DeliverySemantic.AT_LEAST_ONCE


def test_consumer_rows_sorted_with_last_seen() -> None:
    from fluvial.cli.consumer_cmd import consumer_rows
    from fluvial.client.consumer import StoredOffset

    rows = consumer_rows([StoredOffset("b", "t", 0, 5, 1000), StoredOffset("a", "t", 1, 7, 940),
                          StoredOffset("a", "t", 0, 9, 1000)], now=1000)
    assert rows == [["a", "t", "0", "9", "0s"], ["a", "t", "1", "7", "1m"], ["b", "t", "0", "5", "0s"]]
