"""The Fluvio profile file (`$FLV_PROFILE_PATH`, else `~/.fluvio/config`; `reference/fluvio-wire.md` §13.6).

A TOML file shared with the official client:

    current_profile = "fluvial"
    [profile.fluvial]
    cluster = "fluvial"
    [cluster.fluvial]
    endpoint = "127.0.0.1:9003"

fluvial reads it (the current profile's endpoint), merges its own profile into it (never removing other
profiles or keys it does not know) and switches the current profile. Every function takes an optional
explicit path; without one the environment decides (`profile_path`).
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fluvial.errors import ProfileError

PROFILE_NAME = "fluvial"
CONFIG_VERSION = "2.0"


@dataclass(frozen=True)
class ProfileInfo:
    """One profile of the file, with its cluster resolved ("" where the file has no value)."""

    name: str
    cluster: str
    endpoint: str
    tls: str                 # the cluster's tls_policy: "disabled", "anonymous", "verified" or ""
    installation: str        # `[cluster.X.metadata.installation] type`, or ""
    current: bool


def profile_path(explicit: Path | None = None) -> Path:
    if explicit is not None:
        return explicit
    env = os.environ.get("FLV_PROFILE_PATH")
    return Path(env) if env else Path.home() / ".fluvio" / "config"


def read_config(path: Path) -> dict[str, Any]:
    """The parsed file ({} when it does not exist); ProfileError when it is not valid TOML."""
    try:
        with open(path, "rb") as f:
            return tomllib.load(f)
    except FileNotFoundError:
        return {}
    except (OSError, tomllib.TOMLDecodeError) as e:
        raise ProfileError(f"cannot read the profile file {path}: {e}") from e


def _write_config(path: Path, cfg: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(dumps(cfg))
    tmp.replace(path)


def write_profile(endpoint: str, explicit: Path | None = None, name: str = PROFILE_NAME) -> Path:
    """Merge profile `name` (cluster of the same name at `endpoint`) into the file and make it current."""
    path = profile_path(explicit)
    cfg = read_config(path)
    cfg["version"] = cfg.get("version", CONFIG_VERSION)
    cfg["current_profile"] = name
    cfg.setdefault("profile", {})[name] = {"cluster": name}
    cfg.setdefault("cluster", {})[name] = {"endpoint": endpoint, "use_spu_local_address": False,
                                           "tls": {"tls_policy": "disabled"}}
    _write_config(path, cfg)
    return path


def current_profile(explicit: Path | None = None) -> str | None:
    """The name of the current profile, or None (no file, or no `current_profile`)."""
    name = read_config(profile_path(explicit)).get("current_profile")
    return name if isinstance(name, str) else None


def _endpoint_of(cfg: dict[str, Any], profile: str) -> str | None:
    cluster = cfg.get("profile", {}).get(profile, {}).get("cluster")
    return cfg.get("cluster", {}).get(cluster, {}).get("endpoint") if cluster else None


def current_endpoint(explicit: Path | None = None) -> str | None:
    """HOST:PORT of the current profile's cluster, or None when there is none."""
    cfg = read_config(profile_path(explicit))
    name = cfg.get("current_profile")
    return _endpoint_of(cfg, name) if isinstance(name, str) else None


def profile_endpoint(name: str, explicit: Path | None = None) -> str:
    """HOST:PORT of profile `name`'s cluster; ProfileError when the profile or its cluster is missing."""
    path = profile_path(explicit)
    endpoint = _endpoint_of(read_config(path), name)
    if endpoint is None:
        raise ProfileError(f'profile "{name}" not found (or has no cluster endpoint) in {path}')
    return endpoint


def list_profiles(explicit: Path | None = None) -> list[ProfileInfo]:
    """Every profile in the file, sorted by name (as `fluvio profile list`)."""
    cfg = read_config(profile_path(explicit))
    current = cfg.get("current_profile")
    out = []
    for name in sorted(cfg.get("profile", {})):
        cluster = str(cfg["profile"][name].get("cluster", ""))
        c = cfg.get("cluster", {}).get(cluster, {})
        out.append(ProfileInfo(
            name=name, cluster=cluster, endpoint=str(c.get("endpoint", "")),
            tls=str(c.get("tls", {}).get("tls_policy", "")),
            installation=_installation(c),
            current=name == current,
        ))
    return out


def _installation(cluster: dict[str, Any]) -> str:
    """`[cluster.X.metadata] installation = "local"` (fluvio's `InstallationType::save_to`), or the older
    table form with a `type` key."""
    value = cluster.get("metadata", {}).get("installation", "")
    return str(value.get("type", "")) if isinstance(value, dict) else str(value)


INSTALLATION_TYPES = {"k8": "k8", "local": "local", "local-k8": "local_k8", "local_k8": "local_k8",
                      "localk8": "local_k8", "read_only": "read_only", "read-only": "read_only",
                      "readonly": "read_only", "docker": "docker", "cloud": "cloud"}   # installation.rs:21-56


def _save(path: Path, cfg: dict[str, Any]) -> None:
    if cfg.get("current_profile") is None:
        cfg.pop("current_profile", None)          # TOML has no null: an unset current profile is absent
    _write_config(path, cfg)


def delete_profile(name: str, explicit: Path | None = None) -> tuple[bool, bool]:
    """Remove profile `name`: (it existed, it was the current one — now none is current)."""
    path = profile_path(explicit)
    cfg = read_config(path)
    if name not in cfg.get("profile", {}):
        return False, False
    del cfg["profile"][name]
    was_current = cfg.get("current_profile") == name
    if was_current:
        cfg["current_profile"] = None
    _save(path, cfg)
    return True, was_current


def delete_cluster(name: str, force: bool, explicit: Path | None = None) -> list[str] | None:
    """Remove cluster `name`: None when there is no such cluster; else the profiles that still use it
    (nothing removed unless `force`, or none do)."""
    path = profile_path(explicit)
    cfg = read_config(path)
    if name not in cfg.get("cluster", {}):
        return None
    users = sorted(p for p, v in cfg.get("profile", {}).items() if v.get("cluster") == name)
    if users and not force:
        return users
    del cfg["cluster"][name]
    _save(path, cfg)
    return []


def rename_profile(old: str, new: str, explicit: Path | None = None) -> bool:
    """Rename a profile (and the current profile's name with it); False when there is no `old`."""
    path = profile_path(explicit)
    cfg = read_config(path)
    profile = cfg.get("profile", {}).pop(old, None)
    if profile is None:
        return False
    cfg["profile"][new] = profile
    if cfg.get("current_profile") == old:
        cfg["current_profile"] = new
    _save(path, cfg)
    return True


def add_profile(name: str, endpoint: str, installation: str = "k8", explicit: Path | None = None) -> Path:
    """fluvio's `add_or_replace_profile` (config.rs:154-190): cluster `name` at `endpoint` (TLS disabled),
    profile `name` using it, made current; the installation type recorded in the cluster's metadata."""
    path = profile_path(explicit)
    cfg = read_config(path)
    cfg["version"] = cfg.get("version", CONFIG_VERSION)
    cluster = cfg.setdefault("cluster", {}).setdefault(name, {})
    cluster.update({"endpoint": endpoint, "tls": {"tls_policy": "disabled"}})
    cluster.setdefault("use_spu_local_address", False)
    cluster.setdefault("metadata", {})["installation"] = installation
    cfg.setdefault("profile", {}).setdefault(name, {})["cluster"] = name
    cfg["current_profile"] = name
    _save(path, cfg)
    return path


def switch_profile(name: str, explicit: Path | None = None) -> Path:
    """Make `name` the current profile; ProfileError when the file has no such profile."""
    path = profile_path(explicit)
    cfg = read_config(path)
    if name not in cfg.get("profile", {}):
        raise ProfileError(f'profile "{name}" not found in {path}')
    cfg["current_profile"] = name
    _write_config(path, cfg)
    return path


def export_cluster(name: str | None = None, explicit: Path | None = None) -> tuple[str, dict[str, Any]]:
    """(cluster name, its config with fluvio's defaults filled in) of profile `name`, else of the current
    one: what `fluvio profile export` prints (`profile/export.rs` of v0.17.3, its texts for what is
    missing)."""
    cfg = read_config(profile_path(explicit))
    if name is not None:
        profile = cfg.get("profile", {}).get(name)
        if profile is None:
            raise ProfileError(f"Profile not found in config: {name}")
    else:
        current = cfg.get("current_profile")
        profile = cfg.get("profile", {}).get(current) if isinstance(current, str) else None
        if profile is None:
            raise ProfileError("No active profile set in config")
    cluster = str(profile.get("cluster", ""))
    c = cfg.get("cluster", {}).get(cluster)
    if c is None:
        raise ProfileError(f"Cluster not found in config: {cluster}")
    tls = dict(c.get("tls") or {"tls_policy": "disabled"})
    if tls.get("tls_policy") in ("verified", "verify") and tls.get("tls_source") in ("files", "file"):
        raise ProfileError(f"Cluster {cluster} uses externals TLS certs. Only inline TLS certs are supported.")
    out: dict[str, Any] = {"endpoint": c.get("endpoint", c.get("addr", "")),
                           "use_spu_local_address": bool(c.get("use_spu_local_address", False)), "tls": tls}
    if c.get("metadata"):
        out["metadata"] = c["metadata"]
    return cluster, out


def export_config(cluster: str, config: dict[str, Any]) -> dict[str, Any]:
    """The TOML export: a whole profile file holding only that cluster, under a profile of its name."""
    return {"version": CONFIG_VERSION, "current_profile": cluster, "profile": {cluster: {"cluster": cluster}},
            "cluster": {cluster: config}}


# ------------------------------------------------------------------------------------- TOML writer


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
