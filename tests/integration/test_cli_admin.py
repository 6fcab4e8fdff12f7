"""`fluvial topic|partition|spu|profile` run as subprocesses against a real cluster (the harness's profile
file, `FLV_PROFILE_PATH`, points the CLI at it)."""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path

import pytest

from .cluster import FLUVIAL, Cluster


def topic_names(cluster: Cluster) -> list[str]:
    """Names from `topic list -O json`; fluvio prints "No topics found" instead of `[]` when there are
    none (crates/fluvio-cli/src/client/topic/list.rs:74-79), whatever the format."""
    out = cluster.fluvial("topic", "list", "-O", "json").stdout
    return [] if out.strip() == "No topics found" else [t["name"] for t in json.loads(out)]

pytestmark = pytest.mark.timeout(300)


def assert_one_line_error(res: subprocess.CompletedProcess[str], *needles: str) -> None:
    """A runtime error as fluvio prints one (`crates/fluvio-cli/src/bin/main.rs:17-20` of v0.17.3:
    `eprintln!("{e}")`, exit 1): one bare line."""
    assert res.returncode == 1, (res.returncode, res.stdout, res.stderr)
    assert "Traceback" not in res.stderr
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and not lines[0].startswith("error: "), res.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]


def test_topic_create_list_describe_delete(cluster: Cluster) -> None:
    res = cluster.fluvial("topic", "create", "cli-one", "-p", "2", "-r", "2", "--retention-time", "1h",
                          "--segment-size", "1MB", "--max-partition-size", "10MB", "--compression-type", "gzip")
    assert res.stdout.strip() == 'topic "cli-one" created'
    cluster.fluvial("topic", "create", "cli-two")

    table = cluster.fluvial("topic", "list").stdout.splitlines()
    assert table[0].split() == ["NAME", "TYPE", "PARTITIONS", "REPLICAS", "RETENTION", "TIME", "COMPRESSION",
                                "DEDUPLICATION", "STATUS", "REASON"]
    rows = {line.split()[0]: line.split() for line in table[1:]}
    assert rows["cli-one"] == ["cli-one", "computed", "2", "2", "1h", "gzip", "none", "resolution::provisioned"]
    assert rows["cli-two"][4] == "7days"
    assert "consumer-offset" not in rows

    topics = {t["name"]: t for t in json.loads(cluster.fluvial("topic", "list", "-O", "json").stdout)}
    one = topics["cli-one"]          # fluvio's `Metadata<TopicSpec>` (test_cli_fluvio_compat has the shapes)
    assert one["spec"] == {"replicas": {"computed": {"partitions": 2, "replicationFactor": 2,
                                                     "ignoreRackAssignment": False}},
                           "cleanupPolicy": {"segment": {"timeInSeconds": 3600}},
                           "storage": {"segmentSize": 1_000_000, "maxPartitionSize": 10_000_000},
                           "compressionType": "Gzip", "system": False}
    assert one["status"]["resolution"] == "Provisioned"
    assert sorted(one["status"]["replicaMap"]) == ["0", "1"]
    assert all(len(r) == 2 for r in one["status"]["replicaMap"].values())
    system = json.loads(cluster.fluvial("topic", "list", "--system", "-O", "json").stdout)
    assert [t["name"] for t in system] == ["consumer-offset"]

    desc = json.loads(cluster.fluvial("topic", "describe", "cli-one", "-O", "json").stdout)
    # fluvio: the list of `Metadata<TopicSpec>` (crates/fluvio-cli/src/client/topic/describe.rs:63-75)
    assert [d["name"] for d in desc] == ["cli-one"] and desc[0]["spec"] == one["spec"]
    text = cluster.fluvial("topic", "describe", "cli-one").stdout
    assert "Name:cli-one" in text and "Partition Count:2" in text and "Status:provisioned" in text

    res = cluster.fluvial("topic", "delete", "cli-one", "cli-two")
    assert res.stdout.splitlines() == ['topic "cli-one" deleted', 'topic "cli-two" deleted']
    names = topic_names(cluster)
    assert "cli-one" not in names and "cli-two" not in names


def test_dry_run_creates_nothing(cluster: Cluster) -> None:
    res = cluster.fluvial("topic", "create", "cli-dry", "--dry-run")
    assert res.stdout.strip() == 'topic "cli-dry" created'
    names = topic_names(cluster)
    assert "cli-dry" not in names


def test_errors_are_one_line(cluster: Cluster) -> None:
    cluster.fluvial("topic", "create", "cli-dup")
    assert_one_line_error(cluster.fluvial("topic", "create", "cli-dup", check=False), "Topic already exists")
    assert_one_line_error(cluster.fluvial("topic", "create", "Bad_Name", check=False), "Invalid Topic name",
                          "Bad_Name")
    assert_one_line_error(cluster.fluvial("topic", "create", "cli-ret", "--retention-time", "5s", check=False),
                          "retention_secs 5 is less than minimum 10")
    assert_one_line_error(cluster.fluvial("topic", "create", "cli-seg", "--segment-size", "lots", check=False),
                          "invalid size")
    bad = cluster.fluvial("topic", "create", "cli-cmp", "--compression-type", "brotli", check=False)
    assert bad.returncode == 2 and bad.stderr.startswith("error: ") and "brotli" in bad.stderr   # clap: a usage error
    assert_one_line_error(cluster.fluvial("topic", "delete", "cli-missing", check=False), "Topic not found")
    assert_one_line_error(cluster.fluvial("topic", "describe", "cli-missing", check=False), "Topic not found")
    cluster.fluvial("topic", "delete", "cli-dup")


def test_partition_list(cluster: Cluster) -> None:
    cluster.fluvial("topic", "create", "cli-parts", "-p", "3")
    table = cluster.fluvial("partition", "list").stdout.splitlines()
    assert table[0].split() == ["TOPIC", "PARTITION", "LEADER", "MIRROR", "REPLICAS", "RESOLUTION", "SIZE", "BASE",
                                "HW", "LEO", "LRS", "FOLLOWER", "OFFSETS"]
    ours = [line.split() for line in table[1:] if line.startswith("cli-parts ")]
    assert [r[1] for r in ours] == ["0", "1", "2"] and all("Online" in r for r in ours)

    parts = [p for p in json.loads(cluster.fluvial("partition", "list", "-O", "json").stdout)
             if p["name"].startswith("cli-parts-")]
    assert [p["name"] for p in parts] == ["cli-parts-0", "cli-parts-1", "cli-parts-2"]
    assert all(p["status"]["resolution"] == "Online" and p["spec"]["leader"] in (5001, 5002)
               and p["spec"]["replicas"] == [p["spec"]["leader"]] and p["status"]["leader"]["hw"] == 0
               and p["status"]["leader"]["leo"] == 0 for p in parts)
    cluster.fluvial("topic", "delete", "cli-parts")


def test_spu_list(cluster: Cluster) -> None:
    table = cluster.fluvial("spu", "list").stdout.splitlines()
    assert table[0].split() == ["ID", "NAME", "STATUS", "TYPE", "RACK", "PUBLIC", "PRIVATE"]
    assert [line.split()[0] for line in table[1:]] == ["5001", "5002"]
    spus = json.loads(cluster.fluvial("spu", "list", "-O", "json").stdout)
    assert [(s["spec"]["spuId"], s["status"]["resolution"]) for s in spus] == [(5001, "Online"), (5002, "Online")]
    assert spus[0]["spec"]["publicEndpoint"]["port"] == cluster.spu_public_port(5001)


def test_explicit_cluster_flag_beats_profile(cluster: Cluster, tmp_path: Path) -> None:
    env = {**cluster.env, "FLV_PROFILE_PATH": str(tmp_path / "no-such-profile")}
    res = subprocess.run([*FLUVIAL, "spu", "list", "-O", "json", "-c", f"127.0.0.1:{cluster.sc_port}"],
                         capture_output=True, text=True, timeout=60, env=env)
    assert res.returncode == 0, res.stderr
    assert len(json.loads(res.stdout)) == 2


def test_unreachable_cluster_is_one_line_error(tmp_path: Path) -> None:
    env = {**os.environ, "FLV_PROFILE_PATH": str(tmp_path / "profile")}
    for args in (["topic", "list"], ["topic", "create", "x"], ["partition", "list"], ["spu", "list"],
                 ["topic", "delete", "x"]):
        started = time.monotonic()
        res = subprocess.run([*FLUVIAL, *args, "--cluster", "127.0.0.1:1"], capture_output=True, text=True,
                             timeout=60, env=env)
        assert time.monotonic() - started < 30
        assert_one_line_error(res, "127.0.0.1:1")


def test_profile_list_switch_current(tmp_path: Path) -> None:
    path = tmp_path / "config"
    path.write_text('version = "2.0"\ncurrent_profile = "local"\n\n[profile.local]\ncluster = "local"\n\n'
                    '[profile.other]\ncluster = "other"\n\n[cluster.local]\nendpoint = "127.0.0.1:9003"\n\n'
                    '[cluster.other]\nendpoint = "10.1.2.3:9003"\n')
    env = {**os.environ, "FLV_PROFILE_PATH": str(path)}

    def fluvial(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*FLUVIAL, *args], capture_output=True, text=True, timeout=60, env=env)

    assert fluvial("profile", "current").stdout.strip() == "local"
    assert fluvial("profile").stdout.strip() == "local"
    rows = [line.split() for line in fluvial("profile", "list").stdout.splitlines()[1:]]
    assert rows == [["*", "local", "local", "127.0.0.1:9003"], ["other", "other", "10.1.2.3:9003"]]

    res = fluvial("profile", "switch", "other")
    assert res.returncode == 0, res.stderr
    assert fluvial("profile", "current").stdout.strip() == "other"
    doc = json.loads(fluvial("profile", "list", "-O", "json").stdout)
    assert [(p["name"], p["current"]) for p in doc] == [("local", False), ("other", True)]

    assert_one_line_error(fluvial("profile", "switch", "nope"), 'profile "nope" not found')
    assert fluvial("profile", "current").stdout.strip() == "other"


def test_help_on_every_command() -> None:
    for args in (["topic"], ["topic", "create"], ["topic", "list"], ["topic", "describe"], ["topic", "delete"],
                 ["partition", "list"], ["spu", "list"], ["profile"], ["profile", "list"], ["profile", "switch"],
                 ["profile", "current"]):
        res = subprocess.run([*FLUVIAL, *args, "--help"], capture_output=True, text=True, timeout=60)
        assert res.returncode == 0 and "Usage" in res.stdout, (args, res.stderr)
