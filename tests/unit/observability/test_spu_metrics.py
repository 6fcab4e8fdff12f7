"""An SPU's own gauges (issue #9 item 6): per data dir total/free bytes, reserve, free inodes and state;
per replica state — read from the SPU itself, so the disk alerts work while the SC is down."""

from __future__ import annotations

from pathlib import Path

from prometheus_client import CollectorRegistry, generate_latest

from fluvial.observability.metrics import SpuCollector, spu_samples
from fluvial.protocol import internal as i
from fluvial.spu.server import SpuConfig, SpuServer
from fluvial.storage import DirState, FaultPlan, FaultyFileIO
from fluvial.storage.fileio import FsUsage
from fluvial.storage.space import SpaceSnapshot

MIB = 1 << 20


def test_spu_samples_are_a_pure_function_of_the_snapshots() -> None:
    snap = SpaceSnapshot("/d/spu-logs-5001", DirState.FULL, 900, 16 * MIB, MIB, 42, 100, 8)
    got = {(s.name, s.labels): s.value for s in spu_samples(5001, [snap], [("t", 0, "FULL")])}
    d = (("spu", "5001"), ("path", "/d/spu-logs-5001"))
    assert got[("fluvial_spu_data_dir_free_bytes", d)] == 900
    assert got[("fluvial_spu_data_dir_total_bytes", d)] == 16 * MIB
    assert got[("fluvial_spu_data_dir_free_inodes", d)] == 42
    assert [got[("fluvial_spu_data_dir_state", (*d, ("state", s)))] for s in ("ok", "low", "full", "failed")] \
        == [0, 0, 1, 0]
    r = (("spu", "5001"), ("topic", "t"), ("partition", "0"))
    assert [got[("fluvial_spu_replica_state", (*r, ("state", s)))] for s in ("ok", "full", "failed")] == [0, 1, 0]


def test_collector_reads_a_real_spu(tmp_path: Path) -> None:
    io = FaultyFileIO(FaultPlan(usage=FsUsage(64 * MIB, 32 * MIB, 1000, 900)))
    spu = SpuServer(SpuConfig(5001, str(tmp_path), public_port=0, private_port=0, sc_port=1, io=io))
    try:
        spu.registry.apply([i.ReplicaAssignment("t", 0, 5001, [5001])], full=True)
        registry = CollectorRegistry()
        registry.register(SpuCollector(spu))
        text = generate_latest(registry).decode()
        path = spu.storage.base_dir
        assert f'fluvial_spu_data_dir_state{{path="{path}",spu="5001",state="ok"}} 1.0' in text
        assert f'fluvial_spu_data_dir_free_inodes{{path="{path}",spu="5001"}} ' in text
        assert 'fluvial_spu_replica_state{partition="0",spu="5001",state="ok",topic="t"} 1.0' in text
        assert 'fluvial_spu_evicted_segments_total{spu="5001"} 0.0' in text
    finally:
        spu.storage.close()
