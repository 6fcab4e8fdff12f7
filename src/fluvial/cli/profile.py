"""The Fluvio profile file (`$FLV_PROFILE_PATH`, else `~/.fluvio/config`; `reference/fluvio-wire.md`
§13.6): merge a `fluvial` profile and make it current, never removing other profiles."""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Any

PROFILE_NAME = "fluvial"


def profile_path(explicit: Path | None = None) -> Path:
    if explicit is not None:
        return explicit
    env = os.environ.get("FLV_PROFILE_PATH")
    return Path(env) if env else Path.home() / ".fluvio" / "config"


def read_config(path: Path) -> dict[str, Any]:
    if not path.exists():
        return {}
    with open(path, "rb") as f:
        return tomllib.load(f)


def write_profile(endpoint: str, explicit: Path | None = None) -> Path:
    path = profile_path(explicit)
    cfg = read_config(path)
    cfg["version"] = cfg.get("version", "2.0")
    cfg["current_profile"] = PROFILE_NAME
    cfg.setdefault("profile", {})[PROFILE_NAME] = {"cluster": PROFILE_NAME}
    cfg.setdefault("cluster", {})[PROFILE_NAME] = {"endpoint": endpoint, "use_spu_local_address": False,
                                                   "tls": {"tls_policy": "disabled"}}
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(dumps(cfg))
    tmp.replace(path)
    return path


def current_endpoint(explicit: Path | None = None) -> str | None:
    cfg = read_config(profile_path(explicit))
    name = cfg.get("current_profile")
    cluster = cfg.get("profile", {}).get(name, {}).get("cluster") if name else None
    return cfg.get("cluster", {}).get(cluster, {}).get("endpoint") if cluster else None


def _value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int | float):
        return repr(v)
    if isinstance(v, str):
        return '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(v, list):
        return "[" + ", ".join(_value(x) for x in v) + "]"
    raise TypeError(f"cannot write {type(v).__name__} to TOML")


def _key(k: str) -> str:
    return k if k.replace("_", "").replace("-", "").isalnum() else _value(k)


def dumps(cfg: dict[str, Any], prefix: str = "") -> str:
    """A small TOML writer for the profile file's shape: scalars and nested tables."""
    lines = [f"{_key(k)} = {_value(v)}" for k, v in cfg.items() if not isinstance(v, dict)]
    out = "\n".join(lines) + ("\n" if lines else "")
    for k, v in cfg.items():
        if isinstance(v, dict):
            name = f"{prefix}.{_key(k)}" if prefix else _key(k)
            scalars = {kk: vv for kk, vv in v.items() if not isinstance(vv, dict)}
            tables = {kk: vv for kk, vv in v.items() if isinstance(vv, dict)}
            if scalars or not tables:
                out += f"\n[{name}]\n" + dumps(scalars, name)
            if tables:
                out += dumps(tables, name)
    return out
