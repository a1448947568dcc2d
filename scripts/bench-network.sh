#!/usr/bin/env bash
# Feasibility round trip, submit -> all results: a real `qiao hub serve` and 5 `qiao site serve`
# processes on loopback, each site on GiBleed x20, auto-approval. Prints p50/p90/p99 and what
# the time is spent on (see crates/qiao/benches/network_roundtrip.rs).
#
#   scripts/bench-network.sh      # QIAO_BENCH_QUERIES=200 QIAO_BENCH_SITES=5 QIAO_BENCH_REPLICATE=20
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
cargo bench -p qiao --bench network_roundtrip
