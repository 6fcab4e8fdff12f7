from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from fluvial.smartengine import SmartEngine

MODULES = Path(__file__).resolve().parents[2] / "smartmodules"


def wasm(name: str) -> bytes:
    return (MODULES / f"{name}.wasm").read_bytes()


@pytest.fixture(scope="module")
def engine() -> Iterator[SmartEngine]:
    e = SmartEngine(call_budget_seconds=0.3)
    yield e
    e.close()
