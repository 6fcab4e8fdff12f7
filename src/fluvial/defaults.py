"""Every limit and default of fluvial, with its unit in the name.

Values that copy Fluvio's say so (`reference/fluvio-storage.md` §12); the rest are fluvial's own.
"""

from __future__ import annotations

KIB = 1024
MIB = 1024 * KIB
GIB = 1024 * MIB

# ------------------------------------------------------------------------------------------ storage
# Fluvio's defaults (crates/fluvio-types/src/defaults.rs, crates/fluvio-storage/src/config.rs).
SEGMENT_MAX_BYTES = 1 * GIB
SEGMENT_MIN_BYTES = 1 * KIB                       # SC validation minimum for a topic's segment size
INDEX_MAX_INTERVAL_BYTES = 4096                   # sparse index: one entry per this many log bytes
INDEX_MAX_BYTES = 10 * MIB                        # cap of an active index preallocation
INDEX_PREALLOC_INITIAL_BYTES = 16 * KIB           # an active index starts with this much (2,048 entries ≈ 8 MiB of log)
INDEX_ENTRY_BYTES = 8
APPEND_RUN_IOV_BATCHES = 500                      # batches per pwritev of one append run (2 iovecs each; IOV_MAX 1024)
INDEX_FLUSH_ENTRIES = 64                          # active index entries are written in groups of this many
BATCH_MAX_BYTES = 32 * MIB                        # Fluvio's max_request_size, enforced per batch
MAX_PARTITION_SIZE_BYTES = 100 * GIB              # 107 374 182 400 bytes, as Fluvio
PARTITION_MIN_BYTES = 2048
RETENTION_SECONDS = 7 * 24 * 3600
RETENTION_MIN_SECONDS = 10
CLEANING_INTERVAL_SECONDS = 10.0                  # periodic retention pass
SPU_LOGS_DIR_PREFIX = "spu-logs-"
CHECKPOINT_FILE = "replication.chk"
FAILED_MARKER_FILE = "replica.failed"             # written when a replica goes FAILED: verify all on reopen
PRODUCER_SNAPSHOT_FILE = "producers.snapshot"    # fluvial's idempotent-producer state (beside Fluvio's files)
IDEMPOTENT_BATCHES_REMEMBERED = 5                 # per producer: last runs (back-to-back batches) whose retry is acknowledged
IDEMPOTENT_PRODUCERS_MAX = 10_000                 # per replica; beyond it the least recently seen is forgotten

# Reading.
SCAN_CHUNK_BYTES = 64 * KIB                       # header scans read this much per pread
LOOKUP_CHUNK_BYTES = 8 * KIB                      # offset look-ups: index entries are ~4 KiB apart
VERIFY_CHUNK_BYTES = 4 * MIB                      # verifier/scrub read size
READ_MAX_BYTES = 1 * MIB                          # default max bytes of one read

# Flushing (DESIGN.md §4): "os" = every batch is written to the OS (survives a process crash),
# plus a background fsync of every dirty file this often.
FLUSH_POLICY = "os"
BACKGROUND_FSYNC_INTERVAL_SECONDS = 1.0

# Scrub: low-priority background CRC verification of sealed segments.
SCRUB_RATE_BYTES_PER_SECOND = 64 * MIB
SCRUB_IDLE_SECONDS = 30.0                         # pause between full passes

# ------------------------------------------------------------------------------------- space guard
# Reserve R = 5 % of the filesystem, clamped to [1 MiB, 1 GiB] (DESIGN.md §5).
SPACE_RESERVE_FRACTION = 0.05
SPACE_RESERVE_MIN_BYTES = 1 * MIB
SPACE_RESERVE_MAX_BYTES = 1 * GIB
SPACE_REJECT_FACTOR = 1.0                         # a write must leave R free, else 72 (no state change)
SPACE_LOW_FACTOR = 2.0                            # OK  -> LOW  when free < 2 R  (warn; retention runs)
SPACE_FULL_FACTOR = 1.25                          # LOW -> FULL when free < 1.25 R (reject every write):
                                                  # above R, so that writes (which stop at R) reach FULL
SPACE_FULL_RELEASE_FACTOR = 1.5                   # FULL -> LOW when free > 1.5 R
SPACE_OK_RELEASE_FACTOR = 2.5                     # LOW -> OK  when free > 2.5 R
SPACE_POLL_INTERVAL_SECONDS = 1.0                 # statvfs at most this often (and at every roll)
# Free inodes (statvfs f_favail) count like free bytes, with their own reserve: 5 % of the inodes,
# clamped to [8, 1 000 000] (a roll makes 2 files). Filesystems without an inode limit report 0: ignored.
SPACE_RESERVE_INODES_FRACTION = 0.05
SPACE_RESERVE_INODES_MIN = 8
SPACE_RESERVE_INODES_MAX = 1_000_000
SPACE_INODES_PER_ROLL = 2                         # a new segment: .log + .index
# The kernel refused a write (ENOSPC/EDQUOT) although statvfs shows room (a quota, inodes): the dir
# stays FULL this long before statvfs is trusted again, doubling each time up to the max; back to the
# min as soon as free bytes or free inodes grow.
SPACE_KERNEL_FULL_HOLD_MIN_SECONDS = 1.0
SPACE_KERNEL_FULL_HOLD_MAX_SECONDS = 60.0

# ------------------------------------------------------------------------------------------- protocol
FRAME_MAX_BYTES = 64 * MIB                        # larger size prefixes are refused before allocating
PLATFORM_VERSION = "0.17.3"                       # semver the SC reports (the client needs >= 0.9.0)
SC_OBJECT_VERSION = 19                            # SC public APIs (Create/Delete/List/Watch/Update)
SPU_API_VERSION = 24                              # SPU public APIs
SERVER_RECEIVE_BUFFER_BYTES = 64 * KIB            # a connection receives into this; larger frames into their own buffer
SERVER_READ_AHEAD_BYTES = 256 * KIB               # whole frames received ahead of the handler before reading pauses
FRAME_READ_TIMEOUT_SECONDS = 30.0                 # a frame whose size arrived must complete within this
STREAM_FETCH_FRAME_MAX_BYTES = FRAME_MAX_BYTES - 1 * MIB   # StreamFetch max_bytes is clamped to this (room for the header)
CONNECTION_SEND_CHUNK_BYTES = 256 * KIB           # file bytes sendfile'd per step (the loop runs between steps)
CONNECTION_WRITE_TIMEOUT_SECONDS = 60.0           # a peer that takes no bytes for this long is disconnected
CONNECTIONS_MAX = 10_000                          # accepted connections per process (all ports); more are refused
CONNECTION_IDLE_TIMEOUT_SECONDS = 600.0           # closed when no request is in flight and no stream is open this long

# -------------------------------------------------------------------------------------------- logging
LOG_BURST_LINES = 1                               # lines per key when an episode starts (then summaries only)
LOG_SUMMARY_INTERVAL_SECONDS = 10.0               # first summary interval; doubles each time ...
LOG_SUMMARY_INTERVAL_MAX_SECONDS = 60.0           # ... up to this cap (a full disk: <= 2 lines a minute after)

# --------------------------------------------------------------------------------------- cluster
SC_PUBLIC_PORT = 9003
SC_PRIVATE_PORT = 9004                            # SC public + 1
SPU_BASE_ID = 5001
SPU_BASE_PUBLIC_PORT = 9010                       # SPU N: 9010 + 10 (N - 5001); private = public + 1
SPU_PORT_STRIDE = 10
SERVER_GC_GEN0_THRESHOLD = 20_000                  # a server process collects young objects after this many allocations (Python: 700)
SPU_APPEND_THREADS = 4                            # produce requests append in this many threads (one trip per request)
HEARTBEAT_INTERVAL_SECONDS = 0.4                  # SPU -> SC, at least this often
SPU_OFFLINE_AFTER_SECONDS = 2.0                   # SC marks an SPU offline after this silence (Fluvio: 90 s)
RECONNECT_BACKOFF_MIN_SECONDS = 0.1               # SPU -> SC reconnect back-off, doubling ...
RECONNECT_BACKOFF_MAX_SECONDS = 3.0               # ... up to this (Fluvio's sc_retry_ms)
TOPIC_WAIT_SECONDS = 90.0                         # Create waits this long for partitions online (FLV_TOPIC_WAIT)
CONSUMER_OFFSET_TOPIC = "consumer-offset"
CONSUMER_OFFSET_REPLICAS_MAX = 3                  # the system topic's rf = min(this, SPUs)
CONSUMER_OFFSET_RETENTION_SECONDS = 604_800
CONSUMER_OFFSET_SEGMENT_BYTES = 512_000_000
CONSUMER_OFFSET_MAX_PARTITION_BYTES = 2_048_000_000
STREAM_FETCH_MAX_BYTES = 1_048_890                # the official client's default max_bytes
SMARTMODULE_MAX_WASM_BYTES = 32 * MIB             # a stored or inline SmartModule, uncompressed (Create refuses more)
SMARTMODULE_FETCH_TIMEOUT_SECONDS = 5.0           # an SPU asking the SC for a module it has not been pushed yet

# ----------------------------------------------------------------------------------- replication
REPLICA_LAG_SECONDS = 5.0                         # a follower not caught up within this leaves the ISR
LEADER_LEASE_SECONDS = 1.5                        # an SPU whose last SC answer is older refuses produce
                                                  # (shorter than SPU_OFFLINE_AFTER_SECONDS: a new leader is
                                                  # only elected after the old one's lease ran out)
REPLICA_FETCH_MAX_BYTES = 4 * MIB                 # one follower fetch answers at most this much
REPLICA_FETCH_MAX_WAIT_SECONDS = 0.5              # a follower fetch waits this long for new data or HW
REPLICA_FETCH_BACKOFF_SECONDS = 0.2               # after a failed fetch / while the follower's disk is full
REPLICA_FETCH_BACKOFF_MAX_SECONDS = 2.0
REPLICA_ISR_CHECK_SECONDS = 0.5                   # how often a leader checks its followers' lag
EPOCH_HISTORY_FILE = "leader-epoch.chk"           # fluvial's epoch -> start offset history, beside Fluvio's files

# ---------------------------------------------------------------------------------------- client
RETRY_BACKOFF_INITIAL_SECONDS = 0.02              # Fluvio's producer starts at 20 ms ...
RETRY_BACKOFF_MAX_SECONDS = 1.0                   # ... fluvial caps each wait here (Kafka's retry.backoff.max.ms):
                                                  # a producer waiting out a full disk resumes within ~1 s of
                                                  # the SPU taking writes again
RETRY_BACKOFF_MULTIPLIER = 2.0
RETRY_JITTER_FRACTION = 0.2                       # each wait is randomized by ±20 %
DELIVERY_TIMEOUT_SECONDS = 120.0                  # a record is given up after this long
STORAGE_ERROR_NEW_LEADER_WAIT_SECONDS = 1.0       # on 56: metadata may show a new leader within this, else fail
RETRY_WARNING_INTERVAL_SECONDS = 30.0             # at most one retry warning per partition this often
CLIENT_CONNECT_TIMEOUT_SECONDS = 10.0             # opening a connection to the SC or an SPU
CLIENT_REQUEST_TIMEOUT_SECONDS = 30.0             # one request/response call
CLIENT_CREATE_TIMEOUT_MARGIN_SECONDS = 10.0       # topic create waits for provisioning (the SC's topic wait) + this
CLI_CALL_TIMEOUT_SECONDS = 15.0                   # connect and each admin call of a CLI command
CLIENT_METADATA_TIMEOUT_SECONDS = 30.0            # waiting for the SC's metadata (first sync, a leader, a topic)
PRODUCER_BATCH_BYTES = 16 * KIB                   # Fluvio's default batch_size
PRODUCER_LINGER_SECONDS = 0.1                     # Fluvio's default linger (100 ms)
PRODUCER_BUFFER_BYTES = 64 * MIB                  # records buffered or in flight; send() waits above this
PRODUCER_SEND_ALL_SLICE_BYTES = 1 * MIB           # send_all seals this much, then lets the senders run
PRODUCER_REQUEST_MAX_BYTES = 8 * MIB              # batches of one partition packed into one produce request
PRODUCE_REQUEST_HEADROOM_BYTES = 64 * KIB         # a produce frame's room for its header, topic name and entries
PRODUCER_RECORD_OVERHEAD_BYTES = 12               # estimate of a record's framing in a batch (varints, flags)
CLIENT_HEALTH_TIMEOUT_SECONDS = 5.0               # asking an SPU for the details behind a storage error
CLIENT_CLOSE_TIMEOUT_SECONDS = 5.0                # closing a stream, producer or client waits this long for its tasks
CLIENT_LOOP_STOP_SECONDS = 5.0                    # sync facade: waiting for its event-loop thread to end
CLI_PRODUCE_READ_BYTES = 4 * MIB                  # `fluvial produce` reads piped input in chunks of about this
CONSUMER_QUEUE_FRAMES = 4                         # multi-partition consumer: frames buffered per partition
CONSUMER_AUTO_COMMIT_SECONDS = 5.0                # auto offset management: flush committed offsets this often

# ------------------------------------------------------------------------------------ SmartModules
# Fluvio has no real CPU limit (fluvio#1245) and a 1 GiB memory cap per store; fluvial bounds both.
SMARTMODULE_CALL_BUDGET_SECONDS = 5.0             # CPU budget of one call into a module (epoch deadline)
SMARTMODULE_EPOCH_TICK_SECONDS = 0.01             # the epoch ticker's period: the budget's resolution
SMARTMODULE_MEMORY_MAX_BYTES = 64 * MIB           # linear memory cap per module instance (Fluvio: 1 GiB)
SMARTMODULE_WORKERS_MAX = 4                       # module calls running at once (threads), the rest queue
SMARTMODULE_CACHE_MODULES_MAX = 64                # compiled modules kept in memory (least recently used go)
SMARTMODULE_CACHE_DIR = "smartmodule-cache"       # serialized compiled modules, in the SPU's data dir
SMARTMODULE_STREAM_READ_MAX_BYTES = 4 * MIB       # stored bytes one SmartModule stream step reads and runs
SMARTMODULE_LOOKBACK_MAX_BYTES = 64 * MIB         # stored bytes a look_back reads at most (the newest win)
SMARTMODULE_HINT_MAX_CHARS = 4096                 # a module's error hint is cut to this (wire strings <= 32 KiB)
SMARTMODULE_API_VERSION_DEFAULT = 24              # the version passed to modules when no request gives one
