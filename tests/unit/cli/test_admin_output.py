"""Table rows and JSON documents of `fluvial topic|partition|spu|profile list` from typed results."""

from __future__ import annotations

import json

from fluvial.cli import partition, profile_cmd, spu, topic
from fluvial.cli.common import to_doc
from fluvial.client.admin import PartitionInfo, ReplicaOffsets, SpuInfo, TopicInfo
from fluvial.client.profile import ProfileInfo
from fluvial.protocol import metadata as md

TOPIC = TopicInfo(name="events", type="computed", partitions=3, replication=2, ignore_rack_assignment=False,
                  retention_seconds=604800, segment_size=None, max_partition_size=None,
                  compression=md.CompressionAlgorithm.ANY, deduplication=None, system=False,
                  resolution=md.TopicResolution.PROVISIONED, reason="", replica_map={0: (5001, 5002)})
PART = PartitionInfo(topic="events", partition=0, leader=5001, replicas=(5001, 5002),
                     resolution=md.PartitionResolution.ONLINE, size=1500, base_offset=0, hw=3, leo=3, lsr=1,
                     followers=(ReplicaOffsets(5002, 3, 3),), is_being_deleted=False, system=False)
SPU = SpuInfo(id=5001, name="5001", resolution=md.SpuResolution.ONLINE, spu_type=md.SpuType.CUSTOM, rack=None,
              address="127.0.0.1:9010", private_address="127.0.0.1:9011")


def test_topic_row_is_fluvios() -> None:
    assert topic.LIST_HEADER == ("NAME", "TYPE", "PARTITIONS", "REPLICAS", "RETENTION TIME", "COMPRESSION",
                                 "DEDUPLICATION", "STATUS", "REASON")
    assert topic.topic_row(TOPIC) == ["events", "computed", "3", "2", "7days", "any", "none",
                                      "resolution::provisioned", ""]


def test_topic_describe_lines() -> None:
    lines = topic.describe_lines(TOPIC)
    assert lines[:5] == ["Name:events", "Type:computed", "Partition Count:3", "Replication Factor:2",
                         "Ignore Rack Assignment:false"]
    assert "Status:provisioned" in lines and lines[-1] == "-----------------"


def test_topic_json() -> None:
    doc = json.loads(json.dumps(to_doc([TOPIC])))
    assert doc[0]["name"] == "events" and doc[0]["resolution"] == "provisioned"
    assert doc[0]["compression"] == "any" and doc[0]["replica_map"] == {"0": [5001, 5002]}


def test_partition_row_is_fluvios() -> None:
    assert partition.LIST_HEADER == ("TOPIC", "PARTITION", "LEADER", "MIRROR", "REPLICAS", "RESOLUTION", "SIZE",
                                     "BASE", "HW", "LEO", "LRS", "FOLLOWER OFFSETS")
    assert partition.partition_row(PART) == [
        "events", "0", "5001", "", "[5002]", "Online", "1.5 KB", "0", "3", "3", "1",
        "[ReplicaStatus { spu: 5002, hw: 3, leo: 3 }]"]
    assert partition.size_text(md.PARTITION_SIZE_NOT_SUPPORTED) == "NA"
    assert partition.size_text(md.PARTITION_SIZE_ERROR) == "ERROR"


def test_spu_row_is_fluvios() -> None:
    assert spu.LIST_HEADER == ("ID", "NAME", "STATUS", "TYPE", "RACK", "PUBLIC", "PRIVATE")
    assert spu.spu_row(SPU) == ["5001", "5001", "Online", '"custom"', "-", "127.0.0.1:9010", "127.0.0.1:9011"]
    assert to_doc(SPU)["resolution"] == "online"


def test_profile_row() -> None:
    p = ProfileInfo("fluvial", "fluvial", "127.0.0.1:9003", "disabled", "", current=True)
    assert profile_cmd.profile_row(p) == ["*", "fluvial", "fluvial", "127.0.0.1:9003", "Disabled", ""]
