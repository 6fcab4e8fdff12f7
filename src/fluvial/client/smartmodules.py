"""SmartModule invocations a consumer or producer sends (`reference/fluvio-smartmodules.md` §1.2, §2.7),
built the way fluvio v0.17.3's CLI builds them (`crates/fluvio-cli/src/client/smartmodule_invocation.rs`):
by name (`Predefined`), from a file (`AdHoc`, gzipped), or a chain from a transforms file / JSON lines
(`TransformationConfig`, `crates/fluvio-smartengine/src/transformation.rs`). Pure, apart from reading a file.

    consumer config: smartmodules=[by_name("my-filter", params={"key": "o"})]
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import yaml

from fluvial.errors import InvalidConfig
from fluvial.protocol import smartmodule as sm
from fluvial.protocol import spu as sp


def _context(aggregate_initial: bytes | None) -> sp.KindGeneric:
    """Fluvio's CLI sends `Generic(ctx)`: the SPU tells the kind from the module's exports."""
    return sp.KindGeneric(sp.ContextNone() if aggregate_initial is None else sp.ContextAggregate(aggregate_initial))


def _lookback(last: int | None, age_seconds: float | None) -> sp.Lookback | None:
    if last is None and age_seconds is None:
        return None
    return sp.Lookback(last or 0, age_seconds)


def by_name(name: str, *, params: Mapping[str, str] | None = None, aggregate_initial: bytes | None = None,
            lookback_last: int | None = None, lookback_age_seconds: float | None = None) -> sp.SmartModuleInvocation:
    """A module stored on the cluster (`fluvial smartmodule create`), named exactly or `group/name@version`."""
    return sp.SmartModuleInvocation(sp.WasmPredefined(name), _context(aggregate_initial),
                                    sp.SmartModuleExtraParams(dict(params or {}),
                                                              _lookback(lookback_last, lookback_age_seconds)))


def from_wasm(wasm: bytes, *, params: Mapping[str, str] | None = None,
              aggregate_initial: bytes | None = None) -> sp.SmartModuleInvocation:
    """An inline module, sent with the request (gzipped, as Fluvio sends it)."""
    if wasm[:2] != sm.GZIP_MAGIC:
        sm.raw_wasm(wasm, len(wasm))         # refuses what is not wasm before anything is sent
        wasm = sm.gzip_wasm(wasm)
    return sp.SmartModuleInvocation(sp.WasmAdHoc(wasm), _context(aggregate_initial),
                                    sp.SmartModuleExtraParams(dict(params or {}), None))


def from_path(path: str | Path, **kw: Any) -> sp.SmartModuleInvocation:
    try:
        data = Path(path).read_bytes()
    except OSError as e:
        raise InvalidConfig(f"cannot read SmartModule file {path}: {e.strerror or e}") from None
    try:
        return from_wasm(data, **kw)
    except sm.PayloadError as e:
        raise InvalidConfig(f"{path}: {e}") from None


# --------------------------------------------------------------------------------------------- params


def parse_params(pairs: Iterable[str]) -> dict[str, str]:
    """`-e key=value` flags (fluvio's `parse_key_val`: split at the first `=`)."""
    out: dict[str, str] = {}
    for s in pairs:
        key, sep, value = s.partition("=")
        if not sep:
            raise InvalidConfig(f"invalid KEY=value: no `=` found in `{s}`")
        out[key] = value
    return out


# ----------------------------------------------------------------------------------- transforms

_UNITS = {  # humantime's units (`humantime::parse_duration`), in seconds
    "nsec": 1e-9, "ns": 1e-9, "usec": 1e-6, "us": 1e-6, "msec": 1e-3, "ms": 1e-3,
    "seconds": 1, "second": 1, "sec": 1, "secs": 1, "s": 1,
    "minutes": 60, "minute": 60, "min": 60, "mins": 60, "m": 60,
    "hours": 3600, "hour": 3600, "hr": 3600, "hrs": 3600, "h": 3600,
    "days": 86400, "day": 86400, "d": 86400,
    "weeks": 604800, "week": 604800, "w": 604800,
    "months": 2_630_016, "month": 2_630_016, "M": 2_630_016,       # 30.44 days
    "years": 31_557_600, "year": 31_557_600, "y": 31_557_600,      # 365.25 days
}
_PART = re.compile(r"\s*(\d+)\s*([A-Za-z]+)")


def parse_duration(text: str) -> float:
    """A humantime duration such as `7d`, `12s`, `1h 30m` → seconds."""
    pos, total, s = 0, 0.0, text.strip()
    if not s:
        raise InvalidConfig("empty duration")
    while pos < len(s):
        m = _PART.match(s, pos)
        if m is None or m.group(2) not in _UNITS:
            raise InvalidConfig(f"invalid duration {text!r} (e.g. 30s, 5m, 1h 30m, 7d)")
        total += int(m.group(1)) * _UNITS[m.group(2)]
        pos = m.end()
    return total


def _with_value(key: str, value: Any) -> str:
    """`with:` values are strings, or maps/lists passed on as JSON text (`JsonString`)."""
    if isinstance(value, str):
        return value
    if isinstance(value, (dict, list)):
        return json.dumps(value, separators=(",", ":"))
    raise InvalidConfig(f"transform parameter {key!r}: expected str, string, sequence or map")


def _step(step: Any) -> sp.SmartModuleInvocation:
    if not isinstance(step, dict) or not isinstance(step.get("uses"), str):
        raise InvalidConfig("each transform needs `uses: <smartmodule name>`")
    unknown = set(step) - {"uses", "with", "lookback"}
    if unknown:
        raise InvalidConfig(f"unknown transform field(s): {', '.join(sorted(unknown))}")
    with_ = step.get("with") or {}
    if not isinstance(with_, dict):
        raise InvalidConfig("`with` must be a map")
    params = {str(k): _with_value(str(k), v) for k, v in with_.items()}
    lb = step.get("lookback")
    lookback = None
    if lb is not None:
        if not isinstance(lb, dict):
            raise InvalidConfig("`lookback` must be a map with `last` and/or `age`")
        last = lb.get("last", 0)
        if not isinstance(last, int) or last < 0:
            raise InvalidConfig("lookback `last` must be a non-negative integer")
        age = lb.get("age")
        lookback = sp.Lookback(last, None if age is None else parse_duration(str(age)))
    return sp.SmartModuleInvocation(sp.WasmPredefined(step["uses"]), sp.KindGeneric(sp.ContextNone()),
                                    sp.SmartModuleExtraParams(params, lookback))


def transforms_from_yaml(text: str) -> list[sp.SmartModuleInvocation]:
    """A transforms file: `transforms: [{uses, with, lookback: {last, age}}]` (YAML or JSON)."""
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise InvalidConfig(f"unable to read transformation config: {e}") from None
    if doc is None:
        doc = {}
    if not isinstance(doc, dict) or not isinstance(doc.get("transforms", []), list):
        raise InvalidConfig("unable to read transformation config: expected `transforms: [...]`")
    return [_step(s) for s in doc.get("transforms") or []]


def transforms_from_file(path: str | Path) -> list[sp.SmartModuleInvocation]:
    try:
        text = Path(path).read_text()
    except OSError as e:
        raise InvalidConfig(f"unable to process `transforms` argument: {e.strerror or e}") from None
    return transforms_from_yaml(text)


def transforms_from_lines(lines: Iterable[str]) -> list[sp.SmartModuleInvocation]:
    """`--transforms-line` values: one JSON transform step each."""
    out = []
    for line in lines:
        try:
            step = json.loads(line)
        except json.JSONDecodeError as e:
            raise InvalidConfig(f"unable to parse `transform` argument: {e}") from None
        out.append(_step(step))
    return out
