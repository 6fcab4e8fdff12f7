"""`fluvial.client.profile` on temporary profile files."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from fluvial.client.profile import (
    ProfileInfo,
    current_endpoint,
    current_profile,
    list_profiles,
    read_config,
    switch_profile,
    write_profile,
)
from fluvial.errors import ProfileError

FLUVIO_CONFIG = """\
version = "2.0"
current_profile = "local"

[profile.local]
cluster = "local"

[profile.cloud]
cluster = "cloud"
topic = "t"

[cluster.local]
endpoint = "127.0.0.1:9003"
use_spu_local_address = false

[cluster.local.tls]
tls_policy = "disabled"

[cluster.local.metadata.installation]
type = "local"

[cluster.cloud]
endpoint = "cloud.example:9003"
use_spu_local_address = false

[cluster.cloud.tls]
tls_policy = "anonymous"
"""


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "config"
    path.write_text(FLUVIO_CONFIG)
    return path


def test_no_file(tmp_path: Path) -> None:
    path = tmp_path / "missing"
    assert current_profile(path) is None
    assert current_endpoint(path) is None
    assert list_profiles(path) == []
    with pytest.raises(ProfileError, match='profile "x" not found'):
        switch_profile("x", path)


def test_list_marks_current(config: Path) -> None:
    assert list_profiles(config) == [
        ProfileInfo("cloud", "cloud", "cloud.example:9003", "anonymous", "", current=False),
        ProfileInfo("local", "local", "127.0.0.1:9003", "disabled", "local", current=True),
    ]
    assert current_profile(config) == "local"
    assert current_endpoint(config) == "127.0.0.1:9003"


def test_switch_keeps_everything_else(config: Path) -> None:
    before = read_config(config)
    switch_profile("cloud", config)
    after = read_config(config)
    assert current_profile(config) == "cloud" and current_endpoint(config) == "cloud.example:9003"
    assert {k: v for k, v in after.items() if k != "current_profile"} == \
        {k: v for k, v in before.items() if k != "current_profile"}


def test_switch_unknown_is_an_error_and_changes_nothing(config: Path) -> None:
    with pytest.raises(ProfileError, match='profile "nope" not found'):
        switch_profile("nope", config)
    assert config.read_text() == FLUVIO_CONFIG


def test_write_profile_merges(config: Path) -> None:
    write_profile("127.0.0.1:31003", config)
    cfg = tomllib.loads(config.read_text())
    assert cfg["current_profile"] == "fluvial"
    assert set(cfg["profile"]) == {"local", "cloud", "fluvial"}
    assert cfg["cluster"]["fluvial"]["endpoint"] == "127.0.0.1:31003"
    assert cfg["cluster"]["local"]["metadata"]["installation"]["type"] == "local"
    assert current_endpoint(config) == "127.0.0.1:31003"


def test_env_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, config: Path) -> None:
    monkeypatch.setenv("FLV_PROFILE_PATH", str(config))
    assert current_profile() == "local"


def test_broken_file(tmp_path: Path) -> None:
    path = tmp_path / "config"
    path.write_text("current_profile = \n[[[")
    with pytest.raises(ProfileError, match="cannot read the profile file"):
        current_profile(path)


def test_cli_profile_module_reexports() -> None:
    from fluvial.cli import profile as cli_profile
    from fluvial.client import profile

    assert cli_profile.write_profile is profile.write_profile
    assert cli_profile.current_endpoint is profile.current_endpoint
