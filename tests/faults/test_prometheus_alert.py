"""A real Prometheus (Debian's `prometheus`, on a loopback port) scrapes an SPU whose data dir is a real
16 MiB tmpfs, with the shipped `deploy/prometheus/alerts.yml`; the SPU is filled through produce
requests until it refuses them, and the FluvialDataDirFull alert must fire in `/api/v1/alerts`
(issue #9 item 6). The SPU's own gauges drive it: the SC is not scraped at all."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from fluvial.client.admin import Admin, TopicConfig
from fluvial.errors import ErrorCode
from fluvial.protocol.records import build_batch
from fluvial.transport.client import ClientConnection

from ..integration.cluster import free_ports
from .test_full_disk import Namespaces, namespaces  # noqa: F401 - fixture
from .test_log_budget import TmpfsSpu, produce, produce_body, wait_online

ALERTS = Path(__file__).resolve().parents[2] / "deploy" / "prometheus" / "alerts.yml"
HANG_GUARD_SECONDS = 120.0


@pytest.fixture
def prometheus_bin() -> str:
    path = shutil.which("prometheus")
    if path is None:
        (pytest.fail if "CI" in os.environ else pytest.skip)("prometheus missing: run scripts/ensure-prometheus.sh")
    return str(path)


@pytest.fixture
def cluster(namespaces: Namespaces, tmp_path: Path) -> Iterator[TmpfsSpu]:  # noqa: F811
    c = TmpfsSpu(namespaces, tmp_path)
    try:
        yield c
    finally:
        c.stop()


def start_prometheus(binary: str, root: Path, spu_metrics_port: int) -> tuple[subprocess.Popen[bytes], int]:
    port = free_ports(0)[0]
    config = root / "prometheus.yml"
    config.write_text(json.dumps({
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(ALERTS)],
        "scrape_configs": [{"job_name": "fluvial-spu",
                            "static_configs": [{"targets": [f"127.0.0.1:{spu_metrics_port}"]}]}],
    }))
    log = open(root / "prometheus.log", "wb")   # noqa: SIM115 - closed with the process
    proc = subprocess.Popen([binary, f"--config.file={config}", f"--storage.tsdb.path={root / 'tsdb'}",
                             f"--web.listen-address=127.0.0.1:{port}"], stdout=log, stderr=subprocess.STDOUT)
    return proc, port


def alerts(port: int) -> list[dict[str, object]]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/v1/alerts", timeout=5) as r:
        return json.loads(r.read())["data"]["alerts"]


async def fill(c: TmpfsSpu) -> int:
    await wait_online(c)
    admin = await Admin.connect("127.0.0.1", c.sc_port)
    try:
        await admin.create_topic("full", TopicConfig(partitions=1, replication=1))
    finally:
        await admin.close()
    conn = await ClientConnection.connect("127.0.0.1", c.spu_port, timeout=10)
    try:
        big = produce_body(build_batch([(None, os.urandom(64 * 1024))]))
        acked = 0
        while (code := await produce(conn, big)) == ErrorCode.NONE:
            acked += 1
        assert code == ErrorCode.PARTITION_FULL, code
        return acked
    finally:
        await conn.close()


def test_full_alert_fires_in_a_real_prometheus(cluster: TmpfsSpu, prometheus_bin: str, tmp_path: Path) -> None:
    prom, port = start_prometheus(prometheus_bin, tmp_path, cluster.metrics_port)
    try:
        acked = asyncio.run(asyncio.wait_for(fill(cluster), HANG_GUARD_SECONDS))
        assert acked > 50
        deadline = time.monotonic() + HANG_GUARD_SECONDS
        firing: list[dict[str, object]] = []
        while time.monotonic() < deadline and not firing:
            with contextlib.suppress(OSError):          # Prometheus may still be starting
                firing = [a for a in alerts(port) if a["labels"]["alertname"] == "FluvialDataDirFull"   # type: ignore[index]
                          and a["state"] == "firing"]
            time.sleep(1)
        log = (tmp_path / "prometheus.log").read_text(errors="replace")[-2000:]
        assert firing, f"FluvialDataDirFull never fired\n{log}"
        labels = firing[0]["labels"]
        assert labels["spu"] == "5001" and labels["path"].endswith("spu-logs-5001")      # type: ignore[index]
        assert cluster.metric("fluvial_spu_data_dir_state",
                              f'path="{labels["path"]}",spu="5001",state="full"') == 1.0  # type: ignore[index]
    finally:
        prom.terminate()
        try:
            prom.wait(timeout=15)
        except subprocess.TimeoutExpired:
            prom.kill()
