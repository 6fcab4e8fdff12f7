"""`fluvial storage verify DIR`, run as a user would: the installed console script."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

from fluvial.protocol.records import build_batch
from fluvial.storage import Replica, ReplicaConfig, replica_dir

FLUVIAL = shutil.which("fluvial", path=str(Path(sys.executable).parent)) or "fluvial"


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([FLUVIAL, *args], capture_output=True, text=True, timeout=60)


def make_data(root: Path) -> Path:
    path = Path(replica_dir(str(root), 5001, "events", 0))
    with Replica.open(path, ReplicaConfig(segment_max_bytes=4096)) as r:
        for i in range(30):
            r.append(build_batch([(b"k", b"v%03d" % i * 50)], timestamp_ms=1))
    return path


def test_verify_clean_tree(tmp_path: Path) -> None:
    make_data(tmp_path)
    res = run("storage", "verify", str(tmp_path), "-O", "json")
    assert res.returncode == 0, res.stderr
    doc = json.loads(res.stdout)
    assert len(doc) == 1 and doc[0]["ok"] and doc[0]["batches"] == 30 and doc[0]["segments"] > 1


def test_verify_reports_file_and_position(tmp_path: Path) -> None:
    path = make_data(tmp_path)
    log = path / "00000000000000000000.log"
    data = bytearray(log.read_bytes())
    data[-5] ^= 0x40
    log.write_bytes(bytes(data))
    res = run("storage", "verify", str(tmp_path))
    assert res.returncode == 1
    assert f"corrupt: {log} at byte" in res.stdout and "CRC-32C mismatch" in res.stdout
    assert "Traceback" not in res.stderr


def test_verify_missing_dir_is_one_line(tmp_path: Path) -> None:
    res = run("storage", "verify", str(tmp_path / "nope"))
    assert res.returncode == 1
    assert res.stderr.strip().count("\n") == 0 and "not a directory" in res.stderr
