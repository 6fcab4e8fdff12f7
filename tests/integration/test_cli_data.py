"""`fluvial produce` / `fluvial consume` end to end against a real cluster, every listed flag."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from fluvial.client.partitioner import partition_for_key

from .cluster import Cluster


def cli(cluster: Cluster, *args: str, input: str | None = None, check: bool = True,
        timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return cluster.fluvial(*args, input=input, check=check, timeout=timeout)


def lines(res: subprocess.CompletedProcess[str]) -> list[str]:
    return res.stdout.splitlines()


def test_issue_example_key_separator_and_format(cluster: Cluster) -> None:
    cli(cluster, "topic", "create", "cli-kv")
    cli(cluster, "produce", "cli-kv", "--key-separator", ":", input="a:1\nb:2\n")
    res = cli(cluster, "consume", "cli-kv", "-B", "-d", "--format", "{{key}}={{value}}")
    assert lines(res) == ["a=1", "b=2"]
    assert res.stderr == ""


def test_offsets_flags(cluster: Cluster) -> None:
    cli(cluster, "topic", "create", "cli-off")
    cli(cluster, "produce", "cli-off", input="".join(f"v{i}\n" for i in range(10)))
    assert lines(cli(cluster, "consume", "cli-off", "-B", "-d")) == [f"v{i}" for i in range(10)]
    assert lines(cli(cluster, "consume", "cli-off", "-T", "3", "-d")) == ["v7", "v8", "v9"]
    assert lines(cli(cluster, "consume", "cli-off", "-H", "8", "-d")) == ["v8", "v9"]
    assert lines(cli(cluster, "consume", "cli-off", "--start", "4", "--end", "6", "-d")) == ["v4", "v5", "v6"]
    assert lines(cli(cluster, "consume", "cli-off", "--start", "4", "--end", "5")) == ["v4", "v5"]   # --end alone stops
    assert lines(cli(cluster, "consume", "cli-off", "-B", "-d", "-b", "64")) == [f"v{i}" for i in range(10)]
    fmt = lines(cli(cluster, "consume", "cli-off", "--start", "2", "--end", "2", "-F",
                    "{{offset}} {{partition}} {{key}} {{value}} {{time}}"))
    off, part, key, value, when = fmt[0].split(" ")
    assert (off, part, key, value) == ("2", "0", "null", "v2") and when.endswith("Z") and "T" in when
    bad = cli(cluster, "consume", "cli-off", "--start", "5", "--end", "2", check=False)
    assert bad.returncode != 0 and bad.stderr.count("\n") == 1 and "Traceback" not in bad.stderr


def test_partitions_all_partitions_and_keys(cluster: Cluster) -> None:
    cli(cluster, "topic", "create", "cli-parts", "-p", "3")
    keys = [f"user{i}" for i in range(12)]
    cli(cluster, "produce", "cli-parts", "--key-separator", "=", input="".join(f"{k}={k}-v\n" for k in keys))
    for p in range(3):
        got = lines(cli(cluster, "consume", "cli-parts", "-p", str(p), "-B", "-d", "-k"))
        want = [f"[{k}] {k}-v" for k in keys if partition_for_key(k.encode(), 3) == p]
        assert got == want
    both = lines(cli(cluster, "consume", "cli-parts", "-p", "0", "-p", "2", "-B", "-d", "-F", "{{partition}}"))
    assert set(both) <= {"0", "2"} and len(both) == sum(partition_for_key(k.encode(), 3) in (0, 2) for k in keys)
    assert sorted(lines(cli(cluster, "consume", "cli-parts", "-A", "-B", "-d", "-F", "{{value}}"))) == \
        sorted(f"{k}-v" for k in keys)
    keyed = cli(cluster, "produce", "cli-parts", "--key", "fixed", input="x\ny\n")
    assert keyed.returncode == 0
    p = partition_for_key(b"fixed", 3)
    assert lines(cli(cluster, "consume", "cli-parts", "-p", str(p), "-T", "2", "-d", "-k")) == ["[fixed] x", "[fixed] y"]


@pytest.mark.parametrize("codec", ["gzip", "snappy", "lz4", "zstd", "none"])
def test_compression_isolation_and_delivery_semantic(cluster: Cluster, codec: str) -> None:
    topic = f"cli-{codec}"
    cli(cluster, "topic", "create", topic)
    cli(cluster, "produce", topic, "--compression", codec, "--isolation", "read_committed",
        "--delivery-semantic", "at-most-once", "--linger", "5ms", "--batch-size", "1KiB", "-v",
        input="".join(f"{codec}{i}\n" for i in range(50)))
    res = cli(cluster, "consume", topic, "-B", "-d", "--isolation", "read_committed", "-O", "raw")
    assert lines(res) == [f"{codec}{i}" for i in range(50)]


def test_file_raw_and_output_types(cluster: Cluster, tmp_path: Path) -> None:
    cli(cluster, "topic", "create", "cli-file")
    f = tmp_path / "records.txt"
    f.write_text("".join(json.dumps({"n": i}) + "\n" for i in range(1000)))
    cli(cluster, "produce", "cli-file", "-f", str(f))
    got = [json.loads(line) for line in lines(cli(cluster, "consume", "cli-file", "-B", "-d", "-O", "raw"))]
    assert got == [{"n": i} for i in range(1000)]
    pretty = cli(cluster, "consume", "cli-file", "--start", "0", "--end", "0", "-O", "json").stdout
    assert json.loads(pretty) == {"n": 0} and "\n  " in pretty
    blob = tmp_path / "blob.bin"
    blob.write_bytes(b"\x00\x01binary\xff" * 3)
    cli(cluster, "produce", "cli-file", "-f", str(blob), "--raw")
    assert lines(cli(cluster, "consume", "cli-file", "-T", "1", "-d", "-O", "text")) == ["binary: (27 bytes)"]
    dump = cli(cluster, "consume", "cli-file", "-T", "1", "-d").stdout          # dynamic: hex dump
    assert dump.startswith("00000000  00 01 62 69")


def test_consumer_id_resumes(cluster: Cluster) -> None:
    cli(cluster, "topic", "create", "cli-cid")
    cli(cluster, "produce", "cli-cid", input="a\nb\nc\n")
    assert lines(cli(cluster, "consume", "cli-cid", "-B", "-d", "-c", "cid-1")) == ["a", "b", "c"]
    cli(cluster, "produce", "cli-cid", input="d\n")
    assert lines(cli(cluster, "consume", "cli-cid", "-B", "-d", "-c", "cid-1")) == ["d"]
    listed = json.loads(cli(cluster, "consumer", "list", "-O", "json").stdout)
    assert [(o["consumer_id"], o["topic"], o["partition"], o["offset"]) for o in listed
            if o["consumer_id"] == "cid-1"] == [("cid-1", "cli-cid", 0, 3)]
    table = lines(cli(cluster, "consumer", "list"))
    assert table[0].split() == ["CONSUMER", "TOPIC", "PARTITION", "OFFSET", "LAST", "SEEN"]
    assert any(row.split()[:4] == ["cid-1", "cli-cid", "0", "3"] for row in table[1:])
    assert lines(cli(cluster, "consumer", "delete", "cid-1", "-t", "cli-cid")) == \
        ['consumer "cid-1" on topic "cli-cid" and partition "0" deleted']
    assert lines(cli(cluster, "consumer", "delete", "cid-1")) == ["no consumers found"]
    assert lines(cli(cluster, "consume", "cli-cid", "-B", "-d", "-c", "cid-1")) == ["a", "b", "c", "d"]


def test_errors_are_one_line_with_nonzero_exit(cluster: Cluster) -> None:
    for args, needle in [
        (("produce", "cli-missing"), "not found"),
        (("consume", "cli-missing", "-B", "-d"), "not found"),
        (("consume", "cli-off", "-p", "9", "-B", "-d"), "no partition 9"),
        (("consume", "cli-kv", "-B", "-d", "--cluster", "127.0.0.1:1"), "127.0.0.1:1"),
        (("produce", "cli-kv", "-c", "127.0.0.1:1"), "127.0.0.1:1"),
        (("consume", "cli-kv", "-F", "{{nope}}"), "nope"),
        (("produce", "cli-kv", "--key-separator", ":"), "separator"),
    ]:
        res = cli(cluster, *args, input="no-separator-here\n", check=False, timeout=60)
        assert res.returncode != 0, args
        assert "Traceback" not in res.stderr, (args, res.stderr)
        assert len(res.stderr.strip().splitlines()) == 1, (args, res.stderr)
        assert needle in res.stderr, (args, res.stderr)


def test_bad_values_are_usage_errors(cluster: Cluster) -> None:
    """As clap's value parsers: `error: …`, the usage, exit 2 (crates/fluvio-cli/src/client/produce/mod.rs:88-91,
    consume/mod.rs:93-102)."""
    for args in (("produce", "cli-kv", "--compression", "brotli"), ("produce", "cli-kv", "--isolation", "maybe"),
                 ("consume", "cli-kv", "-O", "xml")):
        res = cli(cluster, *args, input="x\n", check=False, timeout=60)
        assert res.returncode == 2 and res.stderr.startswith("error: ") and "Usage: " in res.stderr, (args, res.stderr)


def test_help_everywhere(cluster: Cluster) -> None:
    for cmd in (["produce"], ["consume"], ["topic", "create"], ["partition", "list"], ["spu", "list"],
                ["profile", "list"], ["consumer", "list"], ["consumer", "delete"]):
        res = cli(cluster, *cmd, "--help")
        assert "Usage" in res.stdout
