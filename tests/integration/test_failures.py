"""Crashes, restarts and bad input against real fluvial processes, checked with the official client."""

from __future__ import annotations

import os
import signal
import socket
import struct
import time
import urllib.request

import pytest

from fluvial.storage.validator import find_replica_dirs, verify_replica_dir

from .cluster import Cluster, free_ports

pytestmark = pytest.mark.timeout(300)


def test_sc_restart_keeps_topics_and_clients_reconnect(fresh_cluster: Cluster) -> None:
    c = fresh_cluster
    c.client("""
        FluvioAdmin.connect().create_topic("durable")
        f = Fluvio.connect()
        p = f.topic_producer("durable")
        for i in range(100):
            p.send(b"k", f"v{i}".encode())
        p.flush()
        print(json.dumps(True))
    """)
    c.kill("sc", signal.SIGKILL)
    c.restart_sc()
    c.wait_spus_online([5001])
    out = c.client("""
        admin = FluvioAdmin.connect()
        topics = [t.name() for t in admin.list_topics([])]
        f = Fluvio.connect()
        p = f.topic_producer("durable")
        p.send(b"k", b"after-restart")
        p.flush()
        vals = [r.value_string() for _, r in zip(range(101), f.partition_consumer("durable", 0).stream(Offset.beginning()))]
        print(json.dumps({"topics": topics, "vals": vals}))
    """)
    assert "durable" in out["topics"]
    assert out["vals"] == [f"v{i}" for i in range(100)] + ["after-restart"]


PRODUCER = """
    import sys
    f = Fluvio.connect()
    p = f.topic_producer("crash")
    i = 0
    while True:
        outs = [p.send(b"k", f"r{i + j}".encode()) for j in range(50)]
        p.flush()
        for j, o in enumerate(outs):
            print(f"{o.wait().offset()} r{i + j}", flush=True)
        i += 50
"""


@pytest.mark.parametrize("flush", ["os", "fsync-every-batch"])
def test_kill_9_spu_while_producing_loses_no_acknowledged_record(fresh_cluster: Cluster, flush: str) -> None:
    c = fresh_cluster
    c.client("""
        FluvioAdmin.connect().create_topic("crash")
        print(json.dumps(True))
    """)
    c.kill("spu-5001", signal.SIGTERM)
    c.restart_spu(5001, "--flush", flush)
    c.wait_spus_online([5001])
    producer = c.client_process(PRODUCER)
    acked: dict[int, str] = {}
    try:
        assert producer.stdout is not None
        while len(acked) < 2000:
            line = producer.stdout.readline()
            assert line, f"producer ended early: {producer.stderr.read() if producer.stderr else ''}"
            off, val = line.split()
            acked[int(off)] = val
        c.kill("spu-5001", signal.SIGKILL)               # mid-stream: the producer keeps sending
    finally:
        producer.kill()                                   # and never resends after the SPU comes back
        rest, _ = producer.communicate(timeout=30)
    for line in rest.splitlines():
        off, val = line.split()
        acked[int(off)] = val
    for d in find_replica_dirs(c.data / "spu-5001"):
        assert verify_replica_dir(d).ok, d                 # nothing torn on disk
    metrics_port = free_ports(0)[0]
    c.restart_spu(5001, "--flush", flush, "--metrics-addr", f"127.0.0.1:{metrics_port}")
    c.wait_spus_online([5001])
    with urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=10) as resp:
        assert b"fluvial_produced_records_total" in resp.read()
    out = c.client(f"""
        f = Fluvio.connect()
        lso = None
        recs = []
        for r in f.partition_consumer("crash", 0).stream(Offset.beginning()):
            recs.append((r.offset(), r.value_string()))
            if len(recs) >= {max(acked) + 1}:
                break
        print(json.dumps(recs))
    """)
    offsets = [o for o, _ in out]
    assert offsets == list(range(len(offsets)))           # contiguous
    stored = dict(out)
    for off, val in acked.items():
        assert stored[off] == val                          # every acknowledged record, exactly where acked
    values = [v for _, v in out]
    assert len(values) == len(set(values))                 # and exactly once


def _raw(port: int, data: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(data)
        s.settimeout(3)
        try:
            return s.recv(1000)
        except (TimeoutError, ConnectionResetError):
            return b"<no answer>"


BAD = [
    ("random", os.urandom(200)),
    ("2 GiB size", struct.pack(">i", 2**31 - 1) + bytes(64)),
    ("unknown key", struct.pack(">i", 12) + struct.pack(">HhiH", 4242, 0, 7, 2) + b"xy"),
    ("wrong version", struct.pack(">i", 20) + struct.pack(">HhiH", 1003, 3, 7, 0) + b"\x00\x05Topic" + b"\0" * 3),
    ("truncated", struct.pack(">i", 100) + b"\x00\x12"),
]


def test_malformed_input_on_every_port_leaves_servers_serving(cluster: Cluster) -> None:
    ports = [cluster.sc_port, cluster.sc_port + 1, cluster.spu_public_port(5001), cluster.spu_public_port(5001) + 1]
    idle = []
    try:
        for _ in range(250):
            for port in ports:
                idle.append(socket.create_connection(("127.0.0.1", port), timeout=5))
        for port in ports:
            for _name, data in BAD:
                _raw(port, data)
        out = cluster.client("""
            admin = FluvioAdmin.connect()
            admin.create_topic("after-garbage")
            f = Fluvio.connect()
            p = f.topic_producer("after-garbage")
            o = p.send(b"k", b"fine")
            p.flush()
            r = next(iter(f.partition_consumer("after-garbage", 0).stream(Offset.beginning())))
            print(json.dumps([o.wait().offset(), r.value_string()]))
        """)
        assert out == [0, "fine"]
    finally:
        for s in idle:
            s.close()
    for name in ["sc", "spu-5001", "spu-5002"]:
        os.kill(cluster.pid(name), 0)                      # still running


def test_silent_spu_goes_offline_and_comes_back(fresh_cluster: Cluster) -> None:
    """SIGSTOP: the connection stays open but heartbeats stop; the SC marks the SPU offline after its
    silence limit (2 s) and online again once it resumes."""
    import asyncio

    from fluvial.client.admin import list_spus

    c = fresh_cluster

    def online() -> bool:
        return any(s.online for s in asyncio.run(list_spus("127.0.0.1", c.sc_port, timeout=5)) if s.id == 5001)

    pid = c.pid("spu-5001")
    os.kill(pid, signal.SIGSTOP)
    try:
        deadline = time.monotonic() + 15
        while online() and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not online(), "the SC still reports a silent SPU online"
    finally:
        os.kill(pid, signal.SIGCONT)
    c.wait_spus_online([5001])
    out = c.client("""
        FluvioAdmin.connect().create_topic("after-pause")
        print(json.dumps(True))
    """)
    assert out is True
