"""`fluvial` as a drop-in for `fluvio` v0.17.3 scripts (issue 11), through the real CLI against a real
3-SPU cluster. Expected strings and shapes come from fluvio's source at tag v0.17.3 (infinyon/fluvio),
cited file:line."""

from __future__ import annotations

import json
import os
import pty
import select
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from fluvial.client.partitioner import partition_for_key

from .cluster import FLUVIAL, Cluster, wait_until

pytestmark = pytest.mark.timeout(300)


@pytest.fixture(scope="module")
def c3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    c = Cluster(tmp_path_factory.mktemp("compat"), spus=3)
    c.start()
    try:
        yield c
    finally:
        c.stop()


def run(c: Cluster, *args: str, input: str | None = None) -> subprocess.CompletedProcess[str]:
    return c.fluvial(*args, input=input, check=False)


def ok(c: Cluster, *args: str, input: str | None = None) -> subprocess.CompletedProcess[str]:
    return c.fluvial(*args, input=input)


def runtime_error(res: subprocess.CompletedProcess[str]) -> str:
    """fluvio prints a runtime error bare and exits 1 (`crates/fluvio-cli/src/bin/main.rs:17-20`)."""
    assert res.returncode == 1, (res.returncode, res.stdout, res.stderr)
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in res.stderr, res.stderr
    return lines[0]


def usage_error(res: subprocess.CompletedProcess[str]) -> list[str]:
    """clap 4's usage error: `error: …`, a blank line, `Usage: …`, a blank line, the hint; exit 2."""
    assert res.returncode == 2, (res.returncode, res.stdout, res.stderr)
    lines = res.stderr.rstrip("\n").split("\n")
    assert lines[0].startswith("error: ") and lines[-1] == "For more information, try '--help'.", res.stderr
    assert any(line.startswith("Usage: ") for line in lines) and not any(ch in res.stderr for ch in "╭│╰")
    return lines


def consumed(c: Cluster, topic: str, *extra: str) -> list[str]:
    return ok(c, "consume", topic, "-B", "-d", *extra).stdout.splitlines()


# ------------------------------------------------------------------------------------------ produce


@pytest.mark.parametrize("kind", ["snappy", "lz4"])
def test_produce_uses_the_topics_compression_and_refuses_a_contradicting_one(c3: Cluster, kind: str) -> None:
    topic = f"compat-{kind}"
    ok(c3, "topic", "create", topic, "--compression-type", kind)
    ok(c3, "produce", topic, input="a\nb\n")                # was COMPRESSION_ERROR from the SPU
    ok(c3, "produce", topic, "--compression", kind, input="c\n")
    # crates/fluvio/src/producer/mod.rs:584-624 (message), crates/fluvio/src/error.rs:59 and
    # producer/error.rs:24 (the chain the CLI prints: "Producer error: Invalid configuration in producer: …")
    line = runtime_error(run(c3, "produce", topic, "--compression", "gzip", input="d\n"))
    assert line == ("Producer error: Invalid configuration in producer: Compression in the producer (gzip) does not "
                    f"match with topic level compression ({kind})")
    assert consumed(c3, topic) == ["a", "b", "c"]


def test_topic_without_compression_refuses_a_compressing_producer(c3: Cluster) -> None:
    ok(c3, "topic", "create", "compat-plain", "--compression-type", "none")
    line = runtime_error(run(c3, "produce", "compat-plain", "--compression", "zstd", input="x\n"))
    assert line.endswith("Compression in the producer (zstd) does not match with topic level compression "
                         "(no compression)")                 # producer/mod.rs:614-620
    ok(c3, "produce", "compat-plain", input="x\n")
    assert consumed(c3, "compat-plain") == ["x"]


def test_every_delivery_semantic_spelling_of_fluvio(c3: Cluster) -> None:
    # crates/fluvio/src/producer/config.rs:236-241
    spellings = ["at_most_once", "at-most-once", "AtMostOnce", "atMostOnce", "atmostonce",
                 "at_least_once", "at-least-once", "AtLeastOnce", "atLeastOnce", "atleastonce"]
    ok(c3, "topic", "create", "compat-sem")
    for s in spellings:
        ok(c3, "produce", "compat-sem", "--delivery-semantic", s, input=f"{s}\n")
    assert consumed(c3, "compat-sem") == spellings
    lines = usage_error(run(c3, "produce", "compat-sem", "--delivery-semantic", "exactly-once", input="x\n"))
    assert "unrecognized delivery semantic: exactly-once. Supported: at_most_once (AtMostOnce), at_least_once " \
           "(AtLeastOnce)" in lines[0]                        # config.rs:240


def test_record_larger_than_max_request_size_is_refused_before_sending(c3: Cluster) -> None:
    ok(c3, "topic", "create", "compat-big")
    res = run(c3, "produce", "compat-big", "--max-request-size", "1000", input="small\n" + "x" * 5000 + "\n")
    # crates/fluvio/src/producer/error.rs:12 prints the record size twice ("({0} bytes) … ({0} bytes)");
    # fluvial prints the limit in the second place, which is what the text means.
    line = runtime_error(res)
    size = int(line.split("(")[1].split(" ")[0])
    assert size > 5000 and line == f"record size ({size} bytes), exceeded maximum request size (1000 bytes)"
    assert consumed(c3, "compat-big") == []            # refused before any record of the input went out
    ok(c3, "produce", "compat-big", "--max-request-size", "1000", input="small\n")
    assert consumed(c3, "compat-big") == ["small"]


def _read_until(fd: int, needle: bytes, deadline: float) -> bytes:
    got = b""
    while needle not in got:
        left = deadline - time.monotonic()
        assert left > 0, f"never saw {needle!r}, got {got!r}"
        ready, _, _ = select.select([fd], [], [], left)
        if ready:
            chunk = os.read(fd, 4096)
            assert chunk, f"EOF before {needle!r}, got {got!r}"
            got += chunk
    return got


def test_interactive_produce_prompts_on_stderr_and_says_ok_on_stdout(c3: Cluster) -> None:
    """stdin a terminal (a pty): `> ` on stderr before each record, green `Ok!` on stdout after it
    (crates/fluvio-cli/src/client/produce/mod.rs:399-421; fluvio-types/src/macros.rs:38-42)."""
    ok(c3, "topic", "create", "compat-tty")
    leader, follower = pty.openpty()
    out_r, out_w = os.pipe()
    err_r, err_w = os.pipe()
    proc = subprocess.Popen([*FLUVIAL, "produce", "compat-tty"], stdin=follower, stdout=out_w, stderr=err_w,
                            env=c3.env, close_fds=True)
    for fd in (follower, out_w, err_w):
        os.close(fd)
    try:
        deadline = time.monotonic() + 60
        assert _read_until(err_r, b"> ", deadline) == b"> "
        os.write(leader, b"first\n")
        assert _read_until(out_r, b"Ok!", deadline) == b"\x1b[32mOk!\x1b[0m\n"
        assert _read_until(err_r, b"> ", deadline) == b"> "
        os.write(leader, b"second\n")
        assert _read_until(out_r, b"Ok!", deadline) == b"\x1b[32mOk!\x1b[0m\n"
        _read_until(err_r, b"> ", deadline)
        os.write(leader, b"\x04")                          # Ctrl-D: end of input
        assert proc.wait(timeout=60) == 0
    finally:
        proc.kill()
        proc.wait()
        for fd in (leader, out_r, err_r):
            os.close(fd)
    assert consumed(c3, "compat-tty") == ["first", "second"]


# -------------------------------------------------------------------------------------------- topics


def test_add_partition_places_new_partitions_with_replicas(c3: Cluster) -> None:
    ok(c3, "topic", "create", "compat-grow", "-p", "1", "-r", "2")
    ok(c3, "produce", "compat-grow", input="before\n")
    res = ok(c3, "topic", "add-partition", "compat-grow", "-c", "2")
    lines = res.stdout.splitlines()
    # crates/fluvio-cli/src/client/topic/add_partition.rs:55-56, 100-120 (PARTITION SPU table)
    assert lines[0] == 'added new partitions to topic: "compat-grow"'
    assert lines[1].split() == ["PARTITION", "SPU"] and [r.split()[0] for r in lines[2:]] == ["1", "2"]
    parts = [p for p in json.loads(ok(c3, "partition", "list", "-O", "json").stdout)
             if p["name"].startswith("compat-grow-")]
    assert sorted(p["name"] for p in parts) == ["compat-grow-0", "compat-grow-1", "compat-grow-2"]
    for p in parts:
        reps = p["spec"]["replicas"]
        assert len(reps) == 2 and len(set(reps)) == 2 and p["spec"]["leader"] == reps[0]
        assert p["status"]["resolution"] == "Online"
    new_leaders = {p["spec"]["leader"] for p in parts if p["name"] != "compat-grow-0"}
    assert {int(r.split()[1]) for r in lines[2:]} == new_leaders
    topic = next(t for t in json.loads(ok(c3, "topic", "list", "-O", "json").stdout) if t["name"] == "compat-grow")
    assert topic["spec"]["replicas"]["computed"]["partitions"] == 3 and len(topic["status"]["replicaMap"]) == 3
    keys = [f"k{i}" for i in range(12)]
    ok(c3, "produce", "compat-grow", "--key-separator", ":", input="".join(f"{k}:{k}\n" for k in keys))
    for p in (1, 2):
        assert consumed(c3, "compat-grow", "-p", str(p)) == [k for k in keys if partition_for_key(k.encode(), 3) == p]
    assert consumed(c3, "compat-grow", "-p", "0")[0] == "before"
    assert runtime_error(run(c3, "topic", "add-partition", "compat-nope")) == 'topic "compat-nope" not found'


def test_add_partition_refuses_system_and_assigned_topics(c3: Cluster) -> None:
    line = runtime_error(run(c3, "topic", "add-partition", "consumer-offset"))
    assert "consumer-offset" in line                           # SystemSpecUpdatingAttempt (add_partition.rs)
    assignment = c3.root / "one.json"
    assignment.write_text(json.dumps([{"id": 0, "replicas": [5001]}]))
    ok(c3, "topic", "create", "compat-fixed", "--replica-assignment", str(assignment))
    assert runtime_error(run(c3, "topic", "add-partition", "compat-fixed")) == "invalid replica type"


def test_topic_create_from_fluvio_config_file(c3: Cluster) -> None:
    # the YAML of crates/fluvio-controlplane-metadata/src/topic/config.rs:223-248, name and maps adapted,
    # deduplication left out (a SmartModule)
    path = c3.root / "topic.yaml"
    path.write_text("version: 0.1.1\nmeta:\n  name: compat-config\npartition:\n  count: 3\n  max-size: 10.0 KB\n"
                    "  replication: 2\n  ignore-rack-assignment: true\nretention:\n  time: 2m\n"
                    "  segment-size: 2.0 KB\ncompression:\n  type: Lz4\n")
    assert ok(c3, "topic", "create", "--config", str(path)).stdout == 'topic "compat-config" created\n'
    t = next(t for t in json.loads(ok(c3, "topic", "list", "-O", "json").stdout) if t["name"] == "compat-config")
    # topic/spec.rs:18-40, 361-375 (camelCase; ignoreRackAssignment skipped when true), 930-950
    assert t["spec"] == {"replicas": {"computed": {"partitions": 3, "replicationFactor": 2}},
                         "cleanupPolicy": {"segment": {"timeInSeconds": 120}},
                         "storage": {"segmentSize": 2000, "maxPartitionSize": 10000},
                         "compressionType": "Lz4", "system": False}
    # --config conflicts with the name and every other setting (topic/create.rs:142: conflicts_with "config-arg")
    lines = usage_error(run(c3, "topic", "create", "compat-x", "--config", str(path)))
    assert lines[0] == "error: the argument '--config <PATH>' cannot be used with '[name]'"
    lines = usage_error(run(c3, "topic", "create", "--config", str(path), "-p", "2"))
    assert lines[0] == "error: the argument '--config <PATH>' cannot be used with '--partitions <partitions>'"
    usage_error(run(c3, "topic", "create", "--config", str(path), "--retention-time", "1h"))
    dry = c3.root / "dry.yaml"
    dry.write_text("meta:\n  name: compat-config-dry\n")
    ok(c3, "topic", "create", "--config", str(dry), "--dry-run")      # -d is not in the group
    assert "compat-config-dry" not in ok(c3, "topic", "list").stdout
    assert runtime_error(run(c3, "topic", "create", "--config", str(path))) == "Topic already exists"
    bad = c3.root / "bad.yaml"
    bad.write_text("partition:\n  count: 1\n")
    assert "meta" in runtime_error(run(c3, "topic", "create", "--config", str(bad)))


def test_topic_create_with_replica_assignment_file(c3: Cluster) -> None:
    path = c3.root / "assign.json"       # crates/fluvio-cli/test-data/topics/replica_assignment.json
    path.write_text(json.dumps([{"id": 0, "replicas": [5001, 5002, 5003]}, {"id": 1, "replicas": [5002, 5003, 5001]},
                                {"id": 2, "replicas": [5003, 5001, 5002]}]))
    ok(c3, "topic", "create", "compat-assigned", "-f", str(path))
    parts = {p["name"]: p["spec"] for p in json.loads(ok(c3, "partition", "list", "-O", "json").stdout)
             if p["name"].startswith("compat-assigned-")}
    assert {n: (s["leader"], s["replicas"]) for n, s in parts.items()} == {
        "compat-assigned-0": (5001, [5001, 5002, 5003]), "compat-assigned-1": (5002, [5002, 5003, 5001]),
        "compat-assigned-2": (5003, [5003, 5001, 5002])}
    t = next(t for t in json.loads(ok(c3, "topic", "list", "-O", "json").stdout) if t["name"] == "compat-assigned")
    assert t["spec"]["replicas"] == {"assigned": [{"id": 0, "replicas": [5001, 5002, 5003]},
                                                  {"id": 1, "replicas": [5002, 5003, 5001]},
                                                  {"id": 2, "replicas": [5003, 5001, 5002]}]}
    ok(c3, "produce", "compat-assigned", "--key-separator", "=", input="a=1\nb=2\nc=3\n")
    assert sorted(consumed(c3, "compat-assigned")) == ["1", "2", "3"]
    gap = c3.root / "gap.json"
    gap.write_text(json.dumps([{"id": 0, "replicas": [5001]}, {"id": 2, "replicas": [5002]}]))
    assert runtime_error(run(c3, "topic", "create", "compat-gap", "-f", str(gap))) == \
        "assigned partition ids must be in sequence and without gaps"          # topic/spec.rs:536-540
    unknown = c3.root / "unknown.json"
    unknown.write_text(json.dumps([{"id": 0, "replicas": [5009]}]))
    assert runtime_error(run(c3, "topic", "create", "compat-unknown", "-f", str(unknown))) == \
        "invalid spu id: 5009"                     # crates/fluvio-sc/src/controllers/topics/policy.rs:86-92
    lines = usage_error(run(c3, "topic", "create", "compat-y", "-f", str(path), "-r", "2"))
    assert lines[0] == ("error: the argument '--replica-assignment <file.json>' cannot be used with "
                        "'--replication <integer>'")                       # topic/create.rs:94-105
    assert runtime_error(run(c3, "topic", "create", "compat-z", "-f", str(c3.root / "nope.json"))) != ""


def test_fluvio_texts_and_exit_codes(c3: Cluster) -> None:
    # crates/fluvio-sc-schema/src/lib.rs:56-58; crates/fluvio-cli/src/client/topic/create.rs:283-290
    assert runtime_error(run(c3, "topic", "delete", "compat-missing")) == "Topic not found"
    assert runtime_error(run(c3, "topic", "create", " ")) == "Invalid argument: Topic name is required"
    assert runtime_error(run(c3, "topic", "create")) == "Invalid argument: Topic name is required"
    assert runtime_error(run(c3, "topic", "create", "Bad_Name")) == \
        "Invalid argument: Invalid Topic name Bad_Name. Contain only lowercase alphanumeric characters or '-'"
    ok(c3, "topic", "create", "compat-dup")
    assert runtime_error(run(c3, "topic", "create", "compat-dup")) == "Topic already exists"   # lib.rs:50-52
    # delete -f/--force (topic/delete.rs:31-33) is accepted; -c is --continue-on-error there
    assert ok(c3, "topic", "delete", "compat-dup", "-f").stdout == 'topic "compat-dup" deleted\n'
    res = run(c3, "topic", "delete", "compat-missing", "compat-missing-2", "-c")
    assert res.stdout.splitlines() == ['topic "compat-missing" delete failed with: Topic not found',
                                       'topic "compat-missing-2" delete failed with: Topic not found']
    assert runtime_error(res) == "Failed deleting topic(s). Check previous errors."         # delete.rs:74-78
    lines = usage_error(run(c3, "topic", "list", "--bogus"))
    assert lines[0] == "error: unexpected argument '--bogus' found"
    usage_error(run(c3, "topic", "list", "-O", "xml"))
    usage_error(run(c3, "consume"))


def test_json_and_yaml_shapes_of_lists(c3: Cluster) -> None:
    """`-O json|yaml` print `Vec<Metadata<S>>` (name, spec, status): topic/list.rs:62-76,
    partition/list.rs:62-88, fluvio-cluster/src/cli/spu/list.rs:50 with serde_json::to_string_pretty /
    serde_yaml (fluvio-extension-common/src/output/serde.rs:52-73)."""
    spus = json.loads(ok(c3, "spu", "list", "-O", "json").stdout)
    assert [s["spec"]["spuId"] for s in spus] == [5001, 5002, 5003]                 # spu/spec.rs: "spuId"
    s0 = spus[0]
    assert set(s0) == {"name", "spec", "status"} and s0["status"] == {"resolution": "Online"}
    assert s0["spec"]["spuType"] == "Custom" and s0["spec"]["publicEndpoint"] == {
        "port": c3.spu_public_port(5001), "ingress": [{"hostname": "127.0.0.1", "ip": None}], "encryption": "PLAINTEXT"}
    assert set(s0["spec"]["privateEndpoint"]) == {"port", "host", "encryption"} and "rack" not in s0["spec"]
    assert json.loads(ok(c3, "cluster", "spu", "list", "-O", "json").stdout) == spus    # `fluvio cluster spu list`
    assert ok(c3, "cluster", "spu", "list").stdout.split()[:7] == ["ID", "NAME", "STATUS", "TYPE", "RACK", "PUBLIC",
                                                                   "PRIVATE"]
    ok(c3, "topic", "create", "compat-shape", "-p", "2", "--retention-time", "1h")
    t = next(t for t in json.loads(ok(c3, "topic", "list", "-O", "json").stdout) if t["name"] == "compat-shape")
    assert t["spec"] == {"replicas": {"computed": {"partitions": 2, "replicationFactor": 1,
                                                   "ignoreRackAssignment": False}},
                         "cleanupPolicy": {"segment": {"timeInSeconds": 3600}}, "compressionType": "Any",
                         "system": False}
    assert t["status"]["resolution"] == "Provisioned" and sorted(t["status"]["replicaMap"]) == ["0", "1"]
    assert set(t["status"]) == {"resolution", "replicaMap", "mirrorMap", "reason"}          # topic/status.rs
    p = next(p for p in json.loads(ok(c3, "partition", "list", "-O", "json").stdout) if p["name"] == "compat-shape-0")
    assert list(p["spec"]) == ["leader", "replicas", "cleanupPolicy", "storage", "compressionType", "deduplication",
                               "system", "mirror"]                                        # partition/spec.rs:17-36
    assert list(p["status"]) == ["resolution", "leader", "lsr", "replicas", "size", "isBeingDeleted", "baseOffset"]
    assert p["status"]["resolution"] == "Online" and set(p["status"]["leader"]) == {"spu", "hw", "leo"}
    # YAML: serde_yaml 0.9 writes a newtype enum variant as a tag (`!computed`)
    text = ok(c3, "topic", "list", "-O", "yaml").stdout
    assert "replicas: !computed" in text

    class Tags(yaml.SafeLoader):
        pass

    def tagged(loader: yaml.SafeLoader, tag: str, node: yaml.Node) -> dict[str, object]:
        if isinstance(node, yaml.SequenceNode):
            return {tag: loader.construct_sequence(node, deep=True)}
        return {tag: loader.construct_mapping(node, deep=True)}

    Tags.add_multi_constructor("!", tagged)
    docs = yaml.load(text, Loader=Tags)
    y = next(d for d in docs if d["name"] == "compat-shape")
    assert y["spec"]["replicas"] == {"computed": {"partitions": 2, "replicationFactor": 1,
                                                  "ignoreRackAssignment": False}}
    assert yaml.safe_load(ok(c3, "spu", "list", "-O", "yaml").stdout)[0]["spec"]["spuId"] == 5001
    # the root's target, where fluvio's ClusterTarget sits (crates/fluvio-cli/src/lib.rs:88-110)
    res = subprocess.run([*FLUVIAL, "-c", f"127.0.0.1:{c3.sc_port}", "spu", "list", "-O", "json"],
                         capture_output=True, text=True, timeout=60,
                         env={**c3.env, "FLV_PROFILE_PATH": str(c3.root / "none")})
    assert [s["spec"]["spuId"] for s in json.loads(res.stdout)] == [5001, 5002, 5003]


def test_topic_delete_drops_its_consumer_offsets(c3: Cluster) -> None:
    ok(c3, "topic", "create", "compat-offsets")
    ok(c3, "topic", "create", "compat-offsets-kept")
    for t in ("compat-offsets", "compat-offsets-kept"):
        ok(c3, "produce", t, input="a\nb\n")
        ok(c3, "consume", t, "-B", "-d", "-c", "cid-compat")

    def stored() -> set[str]:
        out = ok(c3, "consumer", "list", "-O", "json").stdout
        if out == "No consumers found\n":          # whatever -O says (crates/fluvio-cli/src/client/consumer/list.rs)
            return set()
        docs = json.loads(out)
        # fluvio's `ConsumerOffset` serialised (crates/fluvio/src/consumer/offset.rs:107-114)
        assert all(list(o) == ["consumer_id", "topic", "partition", "offset", "modified_time"] for o in docs)
        return {o["topic"] for o in docs if o["consumer_id"] == "cid-compat"}

    assert stored() == {"compat-offsets", "compat-offsets-kept"}
    ok(c3, "topic", "delete", "compat-offsets")
    wait_until("the deleted topic's offsets to go", lambda: stored() == {"compat-offsets-kept"}, c3.logs)
    ok(c3, "topic", "create", "compat-offsets")          # a new topic of the same name starts with none
    assert stored() == {"compat-offsets-kept"}


# ---------------------------------------------------------------------------------- profile, formats


def test_profile_export(c3: Cluster) -> None:
    # crates/fluvio-cli/src/profile/export.rs:24-83; crates/fluvio/src/config/cluster.rs:21-45 (field names)
    doc = json.loads(ok(c3, "profile", "export", "-O", "json").stdout)
    assert doc == {"endpoint": f"127.0.0.1:{c3.sc_port}", "use_spu_local_address": False,
                   "tls": {"tls_policy": "disabled"}}
    assert yaml.safe_load(ok(c3, "profile", "export", "fluvial", "-O", "yaml").stdout) == doc
    import tomllib

    exported = tomllib.loads(ok(c3, "profile", "export").stdout)
    assert exported == {"version": "2.0", "current_profile": "fluvial", "profile": {"fluvial": {"cluster": "fluvial"}},
                        "cluster": {"fluvial": doc}}
    assert runtime_error(run(c3, "profile", "export", "nope")) == "Profile not found in config: nope"


def test_table_format_and_full_table(c3: Cluster) -> None:
    path = c3.root / "tf.yaml"          # crates/fluvio-cli/test-data/test-tableformat-config.yaml, extended
    path.write_text("name: compat-people\ninput_format: JSON\ncolumns:\n  - keyPath: name\n    headerLabel: Name\n"
                    "    primaryKey: true\n  - keyPath: age\n    alignment: RIGHT\n")
    # tableformat/create.rs:42, list.rs:72-101, sc tableformat/create.rs:40-44 + sc-schema lib.rs:68-73
    assert ok(c3, "table-format", "create", "--config", str(path)).stdout == 'tableformat "compat-people" created\n'
    assert runtime_error(run(c3, "table-format", "create", "-c", str(path))) == "TableFormat already exists"
    rows = [line.split() for line in ok(c3, "table-format", "list").stdout.splitlines()]
    assert rows[0] == ["NAME", "STATUS"] and ["compat-people", "Init"] in rows[1:]
    doc = next(d for d in json.loads(ok(c3, "tf", "list", "-O", "json").stdout) if d["name"] == "compat-people")
    assert doc["spec"]["inputFormat"] == "JSON" and doc["status"] == {"resolution": "Init", "reason": None}
    assert doc["spec"]["columns"][0] == {"headerLabel": "Name", "width": None, "alignment": None, "keyPath": "name",
                                         "format": None, "display": None, "primaryKey": True, "headerBgColor": None,
                                         "headerTextColor": None}             # tableformat/spec.rs:57-73
    assert doc["spec"]["columns"][1]["alignment"] == "RIGHT"
    ok(c3, "topic", "create", "compat-people")
    ok(c3, "produce", "compat-people", input='{"name":"ann","age":3}\n{"name":"bob","age":4}\n{"name":"ann","age":5}\n')
    table = ok(c3, "consume", "compat-people", "-B", "-d", "-O", "full-table", "--table-format", "compat-people")
    assert [line.split() for line in table.stdout.splitlines()] == [["Name", "age"], ["ann", "5"], ["bob", "4"]]
    # consume/mod.rs:248-272 and error.rs:55
    assert runtime_error(run(c3, "consume", "compat-people", "-B", "-d", "-O", "full-table", "--table-format",
                             "nope")) == "TableFormat not found: nope"
    plain = ok(c3, "consume", "compat-people", "-B", "-d", "-O", "full-table")
    assert [line.split() for line in plain.stdout.splitlines()] == [["name", "age"], ["ann", "3"], ["bob", "4"],
                                                                    ["ann", "5"]]
    assert ok(c3, "table-format", "delete", "compat-people").stdout == ""
    assert runtime_error(run(c3, "table-format", "delete", "compat-people")) == "TableFormat not found"


def test_help_of_the_new_commands() -> None:
    for args in (["topic", "add-partition"], ["table-format", "create"], ["table-format", "list"],
                 ["table-format", "delete"], ["profile", "export"], ["cluster", "spu", "list"]):
        res = subprocess.run([*FLUVIAL, *args, "--help"], capture_output=True, text=True, timeout=60)
        assert res.returncode == 0 and "Usage" in res.stdout, (args, res.stderr)


def test_usage_error_exit_code_without_a_cluster(tmp_path: Path) -> None:
    env = {**os.environ, "FLV_PROFILE_PATH": str(tmp_path / "p")}
    res = subprocess.run([*FLUVIAL, "topic", "create", "x", "--partitions", "many"], capture_output=True,
                         text=True, timeout=60, env=env)
    assert usage_error(res)[0].startswith("error: invalid value")


def test_profile_add_rename_delete_and_delete_cluster(tmp_path: Path) -> None:
    """crates/fluvio-cli/src/profile/{add,rename,delete_profile,delete_cluster}.rs of v0.17.3 (texts, exit 0)
    and crates/fluvio/src/config/config.rs:154-291 (what they do to the file)."""
    import tomllib

    path = tmp_path / "config"
    env = {**os.environ, "FLV_PROFILE_PATH": str(path)}

    def fluvial(*args: str) -> subprocess.CompletedProcess[str]:
        res = subprocess.run([*FLUVIAL, *args], capture_output=True, text=True, timeout=60, env=env)
        assert res.returncode == 0, res.stderr
        return res

    assert fluvial("profile", "add", "one", "127.0.0.1:9003", "local").stdout == "Switched to profile one\n"
    assert fluvial("profile", "add", "two", "10.0.0.2:9003").stdout == "Switched to profile two\n"
    cfg = tomllib.loads(path.read_text())
    assert cfg["current_profile"] == "two" and cfg["profile"]["one"] == {"cluster": "one"}
    assert cfg["cluster"]["one"]["endpoint"] == "127.0.0.1:9003" and cfg["cluster"]["one"]["tls"] == {
        "tls_policy": "disabled"}
    assert cfg["cluster"]["one"]["metadata"]["installation"] == "local"
    assert cfg["cluster"]["two"]["metadata"]["installation"] == "k8"         # InstallationType's default
    fluvial("profile", "rename", "two", "deux")
    assert fluvial("profile", "current").stdout.strip() == "deux"
    assert fluvial("profile", "delete", "nope").stdout == "profile nope not found\n"
    assert fluvial("profile", "delete", "one").stdout == "profile one deleted\nprofile deleted\n"
    assert fluvial("profile", "delete", "deux").stdout == (
        "profile deux deleted\nwarning: this removed your current profile, use 'fluvio profile switch' to select a "
        "different one\n")
    assert "current_profile" not in tomllib.loads(path.read_text())
    fluvial("profile", "add", "three", "10.0.0.3:9003")
    fluvial("profile", "add", "also", "10.0.0.4:9003")
    cfg = tomllib.loads(path.read_text())
    cfg["profile"]["also"]["cluster"] = "three"
    from fluvial.client.profile import dumps

    path.write_text(dumps(cfg))
    assert fluvial("profile", "delete-cluster", "three").stdout == (
        "The following profiles reference cluster three:\n  also\n  three\n"
        "If you would still like to delete the cluster, use --force\n")
    assert fluvial("profile", "delete-cluster", "three", "--force").stdout == "Cluster three deleted\n"
    assert fluvial("profile", "delete-cluster", "three").stdout == "No profile named three exists\n"
    assert "three" not in tomllib.loads(path.read_text())["cluster"]


def test_produce_to_one_partition_and_consume_flags(c3: Cluster) -> None:
    # produce -p/--partition (crates/fluvio-cli/src/client/produce/mod.rs:178-179, 276-277: a specific partitioner)
    ok(c3, "topic", "create", "compat-part", "-p", "3")
    ok(c3, "produce", "compat-part", "-p", "2", "--key-separator", ":", input="a:1\nb:2\nc:3\n")
    ok(c3, "produce", "compat-part", "--partition", "1", input="x\n")
    assert consumed(c3, "compat-part", "-p", "2") == ["1", "2", "3"]
    assert consumed(c3, "compat-part", "-p", "1") == ["x"] and consumed(c3, "compat-part", "-p", "0") == []
    assert runtime_error(run(c3, "produce", "compat-part", "-p", "7", input="y\n")) == "partition: 7 not found"
    # consume --truncate (a cut to the terminal's width: none when piped) and --disable-progressbar
    # (consume/mod.rs:99-102, 154-156)
    ok(c3, "produce", "compat-part", "-p", "0", input="z" * 300 + "\n")
    assert consumed(c3, "compat-part", "-p", "0", "--truncate", "--disable-progressbar") == ["z" * 300]
    lines = usage_error(run(c3, "consume", "compat-part", "--truncate", "-O", "raw"))
    assert lines[0] == "error: the argument '--truncate' cannot be used with '--output <OUTPUT>'"
