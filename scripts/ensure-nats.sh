#!/usr/bin/env bash
# Make sure the NATS baseline of the benchmarks can run: the `nats-server` binary (Debian's package,
# 2.9.10 on bookworm; apt starts no service here, the benchmark runs its own server) and the `nats-py`
# client in the venv (the `bench` extra of pyproject.toml). Idempotent; returns at once when both exist.
#
#   scripts/ensure-nats.sh [PYTHON]      # PYTHON: the venv's interpreter (default .venv/bin/python)
set -euo pipefail

PY=${1:-.venv/bin/python}

if ! command -v nats-server >/dev/null 2>&1; then
    SUDO=""
    if [ "$(id -u)" -ne 0 ]; then
        command -v sudo >/dev/null 2>&1 || { echo "ensure-nats: need root or sudo to apt-get install nats-server" >&2; exit 1; }
        SUDO="sudo"
    fi
    export DEBIAN_FRONTEND=noninteractive
    # An install from a stale (or never fetched) package list fails: update once, then retry.
    if ! $SUDO apt-get install -y --no-install-recommends nats-server >/dev/null 2>&1; then
        $SUDO apt-get update -qq
        $SUDO apt-get install -y --no-install-recommends nats-server
    fi
    command -v nats-server >/dev/null 2>&1 || { echo "ensure-nats: nats-server still not on PATH" >&2; exit 1; }
fi

if ! "$PY" -c 'import nats' >/dev/null 2>&1; then
    version=$(sed -n 's/^ *"nats-py==\([^"]*\)".*/\1/p' pyproject.toml | head -n1)
    "$PY" -m pip install --quiet "nats-py==${version:-2.16.0}"
fi
