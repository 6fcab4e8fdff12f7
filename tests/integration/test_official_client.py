"""The official `fluvio` client (PyPI 0.21.0) against real fluvial processes."""

from __future__ import annotations

import json

import pytest

from fluvial.client.partitioner import partition_for_key

from .cluster import Cluster

pytestmark = pytest.mark.timeout(300)


def test_admin_create_list_delete_and_errors(cluster: Cluster) -> None:
    out = cluster.client("""
        admin = FluvioAdmin.connect()
        admin.create_topic("adm-one")
        admin.create_topic("adm-three", TopicSpec.create().with_partitions(3).build())
        topics = sorted(t.name() for t in admin.list_topics([]))
        parts = sorted(p.name() for p in admin.list_partitions([]))
        errors = {}
        for name, spec in [("adm-one", None), ("Bad_Name", None), ("adm-ret", TopicSpec.create().with_retention_time(5).build()),
                           ("adm-seg", TopicSpec.create().with_segment_size(100).build()),
                           ("adm-max", TopicSpec.create().with_segment_size(4096).with_max_partition_size(3000).build())]:
            try:
                admin.create_topic(name, spec)
                errors[name] = None
            except Exception as e:
                errors[name] = str(e)
        admin.delete_topic("adm-one")
        after = sorted(t.name() for t in admin.list_topics([]))
        try:
            admin.delete_topic("adm-missing")
            missing = None
        except Exception as e:
            missing = str(e)
        print(json.dumps({"topics": topics, "parts": parts, "errors": errors, "after": after, "missing": missing}))
    """)
    assert {"adm-one", "adm-three"} <= set(out["topics"])
    assert "consumer-offset" not in out["topics"]                      # system topics are not listed
    assert {"adm-one-0", "adm-three-0", "adm-three-1", "adm-three-2"} <= set(out["parts"])
    errors = out["errors"]
    assert errors["adm-one"] == "Topic already exists"
    assert "Invalid topic name" in errors["Bad_Name"]
    assert "retention_secs 5 is less than minimum 10" in errors["adm-ret"]
    assert "segment_size 100 is less than minimum 1024" in errors["adm-seg"]
    assert "max_partition_size 3000 is less than segment size 4096" in errors["adm-max"]
    assert "adm-one" not in out["after"] and "adm-three" in out["after"]
    assert out["missing"] and "not found" in out["missing"].lower()


def test_more_replicas_than_spus_is_not_provisioned(cluster: Cluster) -> None:
    out = cluster.client("""
        admin = FluvioAdmin.connect()
        try:
            admin.create_topic("too-many", TopicSpec.create().with_replications(5).build())
            print(json.dumps(None))
        except Exception as e:
            print(json.dumps(str(e)))
    """)
    assert out and "only 0 out of 1 provisioned" in out


def test_produce_and_consume_10k_keyed_and_strings(cluster: Cluster) -> None:
    out = cluster.client("""
        admin = FluvioAdmin.connect()
        admin.create_topic("bulk")
        f = Fluvio.connect()
        p = f.topic_producer("bulk")
        outs = [p.send(f"key-{i}".encode(), f"value-{i}".encode()) for i in range(10000)]
        outs += [p.send_string(f"str-{i}") for i in range(10000)]
        p.flush()
        offsets = [o.wait().offset() for o in outs]
        c = f.partition_consumer("bulk", 0)
        recs = []
        for r in c.stream(Offset.beginning()):
            recs.append((r.offset(), r.key_string(), r.value_string()))
            if len(recs) == 20000:
                break
        mid = [r.offset() for _, r in zip(range(5), c.stream(Offset.absolute(12345)))]
        tail = [r.value_string() for _, r in zip(range(3), c.stream(Offset.from_end(3)))]
        print(json.dumps({"offsets": offsets, "recs": recs, "mid": mid, "tail": tail}))
    """, timeout=180)
    assert out["offsets"] == list(range(20000))
    recs = out["recs"]
    assert [r[0] for r in recs] == list(range(20000))
    assert recs[0] == [0, "key-0", "value-0"] and recs[9999] == [9999, "key-9999", "value-9999"]
    assert recs[10000] == [10000, "", "str-0"] and recs[-1] == [19999, "", "str-9999"]
    assert out["mid"] == [12345, 12346, 12347, 12348, 12349]
    assert out["tail"] == ["str-9997", "str-9998", "str-9999"]


def test_live_consumer_and_multi_partition_and_compression(cluster: Cluster) -> None:
    cluster.client("""
        admin = FluvioAdmin.connect()
        admin.create_topic("multi", TopicSpec.create().with_partitions(3).build())
        admin.create_topic("live")
        print(json.dumps(True))
    """)
    # The official client holds the GIL while it waits on a stream: the live consumer is its own process.
    live = cluster.client_process("""
        f = Fluvio.connect()
        it = f.partition_consumer("live", 0).stream(Offset.end())
        print("ready", flush=True)
        live = []
        for r in it:
            live.append(r.value_string())
            if len(live) == 5:
                break
        print(json.dumps(live))
    """)
    try:
        assert live.stdout is not None and live.stdout.readline().strip() == "ready"
        out = cluster.client("""
            f = Fluvio.connect()
            lp = f.topic_producer("live")
            lp.send(b"k", b"before")
            lp.flush()
            for codec in ["Gzip", "Snappy", "Lz4", "Zstd"]:
                cfg = TopicProducerConfigBuilder().compression(getattr(Compression, codec)).build()
                prod = f.topic_producer_with_config("multi", cfg)
                for i in range(50):
                    prod.send(f"k{i}".encode(), f"{codec}-{i}".encode())
                prod.flush()
            for i in range(4):
                lp.send(b"k", f"live-{i}".encode())
            lp.flush()
            seen = []
            for r in f.multi_partition_consumer("multi").stream(Offset.beginning()):
                seen.append((r.offset(), r.value_string()))
                if len(seen) == 200:
                    break
            print(json.dumps({"seen": seen}))
        """, timeout=120)
        stdout, _ = live.communicate(timeout=60)
    finally:
        live.kill()
    assert json.loads(stdout.strip().splitlines()[-1]) == ["before", "live-0", "live-1", "live-2", "live-3"]
    values = [v for _, v in out["seen"]]
    assert len(values) == len(set(values)) == 200                       # every record exactly once
    # fluvial's partitioner agrees with the official producer: every key sits where partition_for_key says
    counts = [4 * sum(partition_for_key(f"k{i}".encode(), 3) == part for i in range(50)) for part in range(3)]
    placed = cluster.client(f"""
        f = Fluvio.connect()
        out = []
        for part, count in enumerate({counts}):
            stream = f.partition_consumer("multi", part).stream(Offset.beginning())
            out.append([r.key_string() for _, r in zip(range(count), stream)])
        print(json.dumps(out))
    """)
    for part, keys in enumerate(placed):
        assert keys and all(partition_for_key(k.encode(), 3) == part for k in keys)
    for codec in ["Gzip", "Snappy", "Lz4", "Zstd"]:
        assert {f"{codec}-{i}" for i in range(50)} <= set(values)


def test_consumer_offsets_commit_resume_list_delete(cluster: Cluster) -> None:
    script = """
        f = Fluvio.connect()
        builder = ConsumerConfigExtBuilder("offsets")      # its setters return None: one per statement
        builder.offset_consumer("c1")
        builder.offset_start(Offset.beginning())
        builder.offset_strategy(OffsetManagementStrategy.MANUAL)
        cfg = builder.build()
        stream = f.consumer_with_config(cfg)
        got = []
        for r in stream:
            got.append(r.value_string())
            if len(got) == 10:
                break
        stream.offset_commit()
        stream.offset_flush()
        print(json.dumps(got))
    """
    cluster.client("""
        FluvioAdmin.connect().create_topic("offsets")
        p = Fluvio.connect().topic_producer("offsets")
        for i in range(30):
            p.send(b"k", f"m{i}".encode())
        p.flush()
        print(json.dumps(True))
    """)
    first = cluster.client(script)
    second = cluster.client(script)                        # same consumer id: resumes after the commit
    assert first == [f"m{i}" for i in range(10)]
    assert second == [f"m{i}" for i in range(10, 20)]
    out = cluster.client("""
        f = Fluvio.connect()
        before = [(o.consumer_id, o.topic, o.partition, o.offset) for o in f.consumer_offsets()]
        f.delete_consumer_offset("c1", "offsets", 0)
        after = [(o.consumer_id, o.topic) for o in f.consumer_offsets()]
        print(json.dumps({"before": before, "after": after}))
    """)
    assert ["c1", "offsets", 0, 19] in out["before"]
    assert ["c1", "offsets"] not in out["after"]
