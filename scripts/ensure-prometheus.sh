#!/usr/bin/env bash
# Make sure `promtool` (and `prometheus`) exist, for `deploy/prometheus/`'s rule tests: Debian's package
# `prometheus` (2.42 on bookworm; apt starts no service here, the tests run their own). Idempotent;
# returns at once when promtool is on PATH.
#
#   scripts/ensure-prometheus.sh
set -euo pipefail

if ! command -v promtool >/dev/null 2>&1; then
    SUDO=""
    if [ "$(id -u)" -ne 0 ]; then
        command -v sudo >/dev/null 2>&1 || { echo "ensure-prometheus: need root or sudo to apt-get install prometheus" >&2; exit 1; }
        SUDO="sudo"
    fi
    export DEBIAN_FRONTEND=noninteractive
    # An install from a stale (or never fetched) package list fails: update once, then retry.
    if ! $SUDO apt-get install -y --no-install-recommends prometheus >/dev/null 2>&1; then
        $SUDO apt-get update -qq
        $SUDO apt-get install -y --no-install-recommends prometheus
    fi
    command -v promtool >/dev/null 2>&1 || { echo "ensure-prometheus: promtool still not on PATH" >&2; exit 1; }
fi
