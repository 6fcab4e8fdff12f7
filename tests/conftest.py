"""Shared test helpers."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

REFERENCE = Path(__file__).resolve().parents[1].parent / "shared" / "reference"
GOLDEN_FILE = Path(os.environ.get("FLUVIAL_GOLDEN", REFERENCE / "golden_vectors.json"))


@pytest.fixture(scope="session")
def golden() -> list[dict]:
    """The official client's captured request/response pairs (../shared/reference/golden_vectors.json)."""
    return json.loads(GOLDEN_FILE.read_text())
