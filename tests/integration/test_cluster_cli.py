"""`fluvial cluster start --sc-data-dir` keeps the SC's metadata apart from the SPUs' data, and `cluster
status` / `spu describe` show what the SC knows about each SPU."""

from __future__ import annotations

import json
from pathlib import Path

from .cluster import Cluster


def test_sc_data_dir_and_status(tmp_path: Path) -> None:
    c = Cluster(tmp_path, spus=1)
    meta = tmp_path / "elsewhere"
    k8 = c.fluvial("cluster", "start", "--k8", "--data-dir", str(c.data), check=False)
    assert k8.returncode == 1 and "local clusters only" in k8.stderr and not c.data.exists()
    # `--local` as in `fluvio cluster start --local` (crates/fluvio-cluster/src/cli/start/mod.rs:197-203)
    c.fluvial("cluster", "start", "--local", "--spu", "1", "--data-dir", str(c.data), "--sc-port", str(c.sc_port),
              "--spu-base-port", str(c.spu_base), "--profile", str(c.profile), "--sc-data-dir", str(meta))
    try:
        assert (meta / "metadata.db").exists() and not (c.data / "sc").exists()
        status = c.fluvial("cluster", "status", "--data-dir", str(c.data), "--sc-port", str(c.sc_port)).stdout
        lines = status.splitlines()
        assert lines[0].split()[:5] == ["NODE", "STATUS", "ADDRESS", "DATA", "DIR"]
        spu = next(line for line in lines if line.startswith("spu 5001")).split()
        assert spu[2] == "online" and spu[4].endswith("spu-logs-5001") and spu[7] == "ok"
        assert "no active alerts" in status
        doc = json.loads(c.fluvial("spu", "describe", "5001", "-O", "json").stdout)
        assert doc[0]["spu_id"] == 5001 and doc[0]["state"] == "online" and doc[0]["dirs"][0]["state"] == "ok"
        missing = c.fluvial("spu", "describe", "5009", check=False)
        assert missing.returncode == 1 and "SPU 5009 not found" in missing.stderr
    finally:
        c.fluvial("cluster", "delete", "--force", "--data-dir", str(c.data))     # delete.rs:26-27: --force
        assert not c.data.exists()
