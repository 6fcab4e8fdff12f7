"""The client's metadata cache (pure): a Watch full sync replaces, changes patch, deletes remove; where
a partition's online leader is."""

from __future__ import annotations

from typing import Any

from fluvial.client.metadata import MetadataCache, split_partition_key
from fluvial.protocol import metadata as md
from fluvial.protocol import sc as scp


def spu(spu_id: int, port: int, online: bool) -> Any:
    spec = md.SpuSpec(spu_id, md.SpuType.CUSTOM, md.IngressPort(port, [md.IngressAddr(None, "127.0.0.1")],
                                                                md.EncryptionType.PLAINTEXT),
                      md.Endpoint(port + 1, "127.0.0.1", md.EncryptionType.PLAINTEXT), None, None)
    status = md.SpuStatus(md.SpuResolution.ONLINE if online else md.SpuResolution.OFFLINE)
    return scp.SPU.metadata(str(spu_id), spec, status)


def partition(topic: str, p: int, leader: int, hw: int = 0) -> Any:
    spec = md.PartitionSpec(leader, [leader], None, None, md.CompressionAlgorithm.ANY, None, False, None)
    status = md.PartitionStatus(md.PartitionResolution.ONLINE, md.ReplicaStatus(leader, hw, hw), 0, [], 0, False, 0)
    return scp.PARTITION.metadata(f"{topic}-{p}", spec, status)


def topic(name: str, partitions: int) -> Any:
    spec = md.TopicSpec(md.TopicReplicaParam(partitions, 1, False), None, None, md.CompressionAlgorithm.ANY, None, False)
    status = md.TopicStatus(md.TopicResolution.PROVISIONED, {p: [5001] for p in range(partitions)}, {}, "")
    return scp.TOPIC.metadata(name, spec, status)


def full(label: str, objs: list[Any]) -> Any:
    return scp.object_type(label).metadata_update(1, [], objs)


def changes(label: str, *items: tuple[scp.MsgType, Any]) -> Any:
    obj = scp.object_type(label)
    return obj.metadata_update(2, [obj.change(kind, m) for kind, m in items], [])


def test_full_sync_then_changes_then_delete() -> None:
    c = MetadataCache()
    c.apply("SPU", full("SPU", [spu(5001, 9010, True), spu(5002, 9020, True)]))
    c.apply("Topic", full("Topic", [topic("t", 2)]))
    c.apply("Partition", full("Partition", [partition("t", 0, 5001), partition("t", 1, 5002)]))
    assert c.synced == {"SPU", "Topic", "Partition"}
    assert c.partition_count("t") == 2 and c.partition_count("nope") == 0
    assert [p.leader for p in c.partitions("t")] == [5001, 5002]
    view, where = c.leader_address("t", 1)
    assert (view.leader, where.port, where.host) == (5002, 9020, "127.0.0.1")

    c.apply("SPU", changes("SPU", (scp.MsgType.UPDATE, spu(5002, 9020, False))))
    assert c.leader_address("t", 1) is None                  # leader offline: nobody to talk to
    c.apply("Partition", changes("Partition", (scp.MsgType.UPDATE, partition("t", 1, 5001, hw=7))))
    view, where = c.leader_address("t", 1)
    assert (view.leader, view.hw, where.id) == (5001, 7, 5001)

    c.apply("Topic", changes("Topic", (scp.MsgType.DELETE, topic("t", 2))))
    c.apply("Partition", changes("Partition", (scp.MsgType.DELETE, partition("t", 0, 5001)),
                                 (scp.MsgType.DELETE, partition("t", 1, 5001))))
    assert c.topic("t") is None and c.partitions("t") == [] and c.leader_address("t", 0) is None


def test_a_later_full_sync_replaces_everything() -> None:
    c = MetadataCache()
    c.apply("Topic", full("Topic", [topic("a", 1), topic("b", 1)]))
    c.apply("Topic", full("Topic", [topic("b", 3)]))
    assert c.topic("a") is None and c.partition_count("b") == 3
    c.apply("Topic", full("Topic", []), full_sync=True)      # a re-watch after every topic was deleted
    assert c.objects["Topic"] == {}


def test_partition_keys() -> None:
    assert split_partition_key("my-topic-12") == ("my-topic", 12)
