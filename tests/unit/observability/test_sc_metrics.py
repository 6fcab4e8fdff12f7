"""The SC's gauges: a pure function of its metadata and the SPUs' last heartbeats, and the collector that
serves them — checked against an in-process SC and SPU on real sockets."""

from __future__ import annotations

import asyncio
from pathlib import Path

from prometheus_client import CollectorRegistry, generate_latest

from fluvial.observability.metrics import ScCollector, sc_samples
from fluvial.protocol import internal as i
from fluvial.sc.server import ScConfig, ScServer, SpuSession
from fluvial.spu.server import SpuConfig, SpuServer


def test_samples_of_an_empty_sc() -> None:
    samples = sc_samples([], [], [], [])
    assert [(s.name, s.value) for s in samples] == [("fluvial_sc_topics", 0.0),
                                                    ("fluvial_sc_under_replicated_partitions", 0.0)]


def test_replication_samples() -> None:
    from fluvial.protocol import fluvial_api as fa

    def rep(spu: int, in_sync: bool, lag: int) -> fa.ReplicaDetail:
        return fa.ReplicaDetail(spu, True, in_sync, 100 - lag, lag, "ok")

    parts = [fa.PartitionDetail("t", 0, 1, 3, "ONLINE", 90, 100, 2, False, [rep(1, True, 0), rep(2, True, 0),
                                                                          rep(3, False, 40)]),
             fa.PartitionDetail("t", 1, 2, 0, "ONLINE", 5, 5, 2, False, [rep(2, True, 0), rep(1, True, 0)]),
             fa.PartitionDetail("single", 0, 1, 0, "ONLINE", 5, 5, 1, False, [rep(1, True, 0)])]
    got = {(s.name, s.labels): s.value for s in sc_samples([], [], [], [], None, parts)}
    assert got[("fluvial_sc_under_replicated_partitions", ())] == 1
    assert got[("fluvial_sc_partition_isr_size", (("partition", "t-0"),))] == 2
    assert got[("fluvial_sc_partition_leader_epoch", (("partition", "t-0"),))] == 3
    assert got[("fluvial_sc_follower_lag_records", (("partition", "t-0"), ("spu", "3")))] == 40
    assert ("fluvial_sc_partition_isr_size", (("partition", "single-0"),)) not in got


def test_data_dir_samples_from_heartbeats() -> None:
    session = SpuSession(5001, None, 0.0, health=i.SpuHealth.ONLINE,  # type: ignore[arg-type]
                         dirs=[i.DataDirReport("/d/spu-logs-5001", i.DirStateCode.LOW, 1500, 10_000, 1000)])
    got = {(s.name, s.labels): s.value for s in sc_samples([], [], [], [session])}
    labels = (("spu", "5001"), ("path", "/d/spu-logs-5001"))
    assert got[("fluvial_sc_data_dir_free_bytes", labels)] == 1500
    assert got[("fluvial_sc_data_dir_reserve_bytes", labels)] == 1000
    assert got[("fluvial_sc_data_dir_state", (*labels, ("state", "low")))] == 1


def test_collector_against_a_real_sc_and_spu(tmp_path: Path) -> None:
    async def main() -> str:
        sc = ScServer(ScConfig(str(tmp_path / "sc"), public_port=0, private_port=0))
        await sc.start()
        spu = SpuServer(SpuConfig(5001, str(tmp_path / "spu"), public_port=0, private_port=0,
                                  sc_port=sc.private_port))
        await spu.start()
        try:
            for _ in range(100):                         # registered and one heartbeat with its data dir
                s = sc.sessions.get(5001)
                if s is not None and s.dirs:
                    break
                await asyncio.sleep(0.05)
            registry = CollectorRegistry()
            registry.register(ScCollector(sc))
            return generate_latest(registry).decode()
        finally:
            await spu.stop()
            await sc.stop()

    text = asyncio.run(main())
    assert 'fluvial_sc_spus{status="online"} 1.0' in text
    assert 'fluvial_sc_data_dir_state{path="' in text and 'state="ok"} 1.0' in text
    assert "fluvial_sc_data_dir_free_bytes{" in text
