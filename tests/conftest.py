"""Shared test helpers."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

GOLDEN_FILE = Path(os.environ.get("FLUVIAL_GOLDEN", Path(__file__).parent / "golden" / "golden_vectors.json"))


@pytest.fixture(scope="session")
def golden() -> list[dict]:
    """The official client's captured request/response pairs (a copy of shared/reference/golden_vectors.json)."""
    return json.loads(GOLDEN_FILE.read_text())
