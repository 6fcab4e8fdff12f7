"""The Fluvio profile file, for the CLI: the logic lives in `fluvial.client.profile` (the client reads it
too); this module keeps the names `cluster start` uses."""

from __future__ import annotations

from fluvial.client.profile import (
    PROFILE_NAME,
    ProfileInfo,
    current_endpoint,
    current_profile,
    dumps,
    list_profiles,
    profile_endpoint,
    profile_path,
    read_config,
    switch_profile,
    write_profile,
)

__all__ = [
    "PROFILE_NAME",
    "ProfileInfo",
    "current_endpoint",
    "current_profile",
    "dumps",
    "list_profiles",
    "profile_endpoint",
    "profile_path",
    "read_config",
    "switch_profile",
    "write_profile",
]
