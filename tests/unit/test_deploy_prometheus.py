"""deploy/prometheus/: the scrape config and the alert rules are valid, and the rules fire as their unit
tests say (`promtool test rules`): data dir LOW, FULL, FAILED; a partition without a writable leader; an
SPU offline. `make test` installs promtool (Debian's `prometheus`) through scripts/ensure-prometheus.sh."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

DEPLOY = Path(__file__).resolve().parents[2] / "deploy" / "prometheus"
TIMEOUT_SECONDS = 60


@pytest.fixture(scope="module")
def promtool() -> str:
    path = shutil.which("promtool")
    if path is None:
        (pytest.fail if "CI" in os.environ else pytest.skip)("promtool missing: run scripts/ensure-prometheus.sh")
    return str(path)


def run(promtool: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([promtool, *args], cwd=DEPLOY, capture_output=True, text=True, timeout=TIMEOUT_SECONDS)


def test_rules_and_config_are_valid(promtool: str) -> None:
    rules = run(promtool, "check", "rules", "alerts.yml")
    assert rules.returncode == 0, rules.stdout + rules.stderr
    assert "5 rules found" in rules.stdout
    config = run(promtool, "check", "config", "prometheus.yml")
    assert config.returncode == 0, config.stdout + config.stderr


def test_alert_rules_fire_as_specified(promtool: str) -> None:
    done = run(promtool, "test", "rules", "alerts_test.yml")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS" in done.stdout


def test_every_alert_the_issue_asks_for_exists() -> None:
    text = (DEPLOY / "alerts.yml").read_text()
    for name in ("FluvialDataDirLow", "FluvialDataDirFull", "FluvialDataDirFailed",
                 "FluvialPartitionWithoutWritableLeader", "FluvialSpuOffline"):
        assert f"alert: {name}" in text
