"""How `fluvial consume` prints a record — `fluvio` v0.17.3's output types and `--format` templates. Pure."""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Callable

from fluvial.client.batchcodec import ConsumerRecord

OUTPUT_TYPES = ("dynamic", "text", "binary", "json", "raw", "table", "full-table")
_TEMPLATE_VAR = re.compile(r"\{\{\s*(\w+)\s*\}\}")
TEMPLATE_VARS = ("key", "value", "offset", "partition", "time")


def is_binary(data: bytes) -> bool:
    """Binary as `fluvio` judges it: NUL bytes, or not UTF-8."""
    if b"\x00" in data:
        return True
    try:
        data.decode()
    except UnicodeDecodeError:
        return True
    return False


def text(data: bytes | None) -> str:
    return "null" if data is None else data.decode(errors="replace")


def hex_dump(data: bytes) -> str:
    """16 bytes a line: offset, hex, printable characters."""
    lines = []
    for at in range(0, len(data), 16):
        chunk = data[at:at + 16]
        hexes = " ".join(f"{c:02x}" for c in chunk)
        chars = "".join(chr(c) if 32 <= c < 127 else "." for c in chunk)
        lines.append(f"{at:08x}  {hexes:<47}  |{chars}|")
    return "\n".join(lines) + "\n" + "-" * 60


def format_value(data: bytes, output: str, suppress_unknown: bool = False) -> str | None:
    if output == "json":
        try:
            return json.dumps(json.loads(data), indent=2)
        except (ValueError, UnicodeDecodeError) as e:
            return None if suppress_unknown else json.dumps({"error": str(e)}, indent=2)
    if output == "text":
        return f"binary: ({len(data)} bytes)" if is_binary(data) and not suppress_unknown else text(data)
    if output == "binary":
        return hex_dump(data)
    if output == "raw":
        return text(data)
    return hex_dump(data) if is_binary(data) else text(data)          # dynamic


def rfc3339_millis(ms: int) -> str:
    if ms < 0:
        return "NA"
    t = dt.datetime.fromtimestamp(ms / 1000, tz=dt.UTC)
    return t.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}Z"


def compile_template(template: str) -> Callable[[ConsumerRecord], str]:
    """`{{key}}`, `{{value}}`, `{{offset}}`, `{{partition}}`, `{{time}}` substituted per record."""
    unknown = sorted({m.group(1) for m in _TEMPLATE_VAR.finditer(template)} - set(TEMPLATE_VARS))
    if unknown:
        raise ValueError(f"unknown template variable(s) {', '.join(unknown)}: use {', '.join(TEMPLATE_VARS)}")

    def render(r: ConsumerRecord) -> str:
        fields = {"key": text(r.key), "value": text(r.value), "offset": str(r.offset),
                  "partition": str(r.partition), "time": rfc3339_millis(r.timestamp)}
        return _TEMPLATE_VAR.sub(lambda m: fields[m.group(1)], template)

    return render


def table_formatter() -> Callable[[ConsumerRecord], str | None]:
    """`-O table`: JSON-object records as rows under one header of their top-level keys (fluvio's basic
    table, without borders); other records are reported and skipped."""
    header: list[str] | None = None

    def cell(v: object) -> str:
        return v if isinstance(v, str) else json.dumps(v)

    def render(r: ConsumerRecord) -> str | None:
        nonlocal header
        try:
            doc = json.loads(r.value)
        except (ValueError, UnicodeDecodeError) as e:
            return f"error parsing record as json: {e}"
        if not isinstance(doc, dict):
            return "error: Unable to parse json as object map"
        row = "  ".join(cell(v) for v in doc.values())
        if header is None:
            header = list(doc)
            return "  ".join(header) + "\n" + row
        return row

    return render


def formatter(output: str = "dynamic", template: str | None = None, key_value: bool = False,
              suppress_unknown: bool = False) -> Callable[[ConsumerRecord], str | None]:
    """The function that turns a record into the line(s) to print (None: skip it)."""
    if template is not None:
        return compile_template(template)
    if output not in OUTPUT_TYPES:
        raise ValueError(f"unknown output type {output!r}: use {', '.join(OUTPUT_TYPES)}")
    if output == "table":
        return table_formatter()
    if output == "full-table":
        return FullTable(None)

    def render(r: ConsumerRecord) -> str | None:
        value = format_value(r.value, output, suppress_unknown)
        if value is None:
            return None
        return f"[{text(r.key)}] {value}" if key_value else value

    return render


class FullTable:
    """`-O full-table` (`consume/table_format.rs`, `record_format.rs:149-230` of v0.17.3): JSON object
    records (or arrays of them) are rows under the TableFormat's columns (header label, else key path;
    without a TableFormat, the first record's keys); a record whose primary-key columns match an earlier
    row replaces that row. fluvio draws this as a full-screen terminal UI; fluvial prints it as text:
    the whole table once the stream ends (`-d`, `--end`), or, while streaming, each new or changed row as
    it arrives (under the header, printed once)."""

    def __init__(self, columns: list[tuple[str, str, bool]] | None = None, *, live: bool = False) -> None:
        self.columns = columns            # (key path, header label, primary key); None: from the first record
        self.rows: list[dict[str, str]] = []
        self.live = live
        self._header_printed = False

    @classmethod
    def of(cls, spec: object | None, *, live: bool = False) -> FullTable:
        cols = getattr(spec, "columns", None)
        if not cols:
            return cls(None, live=live)
        return cls([(c.key_path, c.header_label or c.key_path, bool(c.primary_key)) for c in cols], live=live)

    @staticmethod
    def _cell(v: object) -> str:
        return v if isinstance(v, str) else json.dumps(v)

    def update(self, obj: dict[str, object]) -> dict[str, str]:
        """Add the row, or replace the row with the same primary-key values; returns the row."""
        if self.columns is None:
            self.columns = [(k, k, False) for k in obj]
        row = {k: self._cell(v) for k, v in obj.items()}
        keys = [path for path, _label, primary in self.columns if primary]
        if keys:
            for i, old in enumerate(self.rows):
                if all(old.get(k) == row.get(k) for k in keys):
                    self.rows[i] = row
                    return row
        self.rows.append(row)
        return row

    def _line(self, cells: list[str], widths: list[int] | None = None) -> str:
        if widths is None:
            return "  ".join(cells).rstrip()
        return "  ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)).rstrip()

    def _cells(self, row: dict[str, str]) -> list[str]:
        return [row.get(path, "") for path, _l, _p in self.columns or []]

    def __call__(self, r: ConsumerRecord) -> str | None:
        try:
            doc = json.loads(r.value)
        except (ValueError, UnicodeDecodeError) as e:
            return f"error parsing record as json: {e}"
        objs = doc if isinstance(doc, list) else [doc]
        if not all(isinstance(o, dict) for o in objs):
            return "error: Unable to parse json as object map or array of objects"
        rows = [self.update(o) for o in objs]          # type: ignore[arg-type]
        if not self.live:
            return None
        lines = [self._line(self._cells(row)) for row in rows]
        if not self._header_printed:
            self._header_printed = True
            lines.insert(0, self._line([label for _p, label, _k in self.columns or []]))
        return "\n".join(lines)

    def finish(self) -> str | None:
        """The whole table (streams that end), or None (live output already printed it)."""
        if self.live or self.columns is None:
            return None
        table = [[label for _p, label, _k in self.columns], *(self._cells(row) for row in self.rows)]
        widths = [max(len(line[i]) for line in table) for i in range(len(self.columns))]
        return "\n".join(self._line(line, widths) for line in table)
