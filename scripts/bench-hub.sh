#!/usr/bin/env bash
# Hub under load: 200 concurrent clients polling a job's status on loopback (redb backend, and the
# PostgreSQL backend too when QIAO_TEST_PG is set). Prints throughput and latency percentiles.
#
#   scripts/bench-hub.sh            # QIAO_BENCH_CLIENTS=200 QIAO_BENCH_SECS=10 by default
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
cargo bench -p qiao-hub --bench hub_load
if [[ -n ${QIAO_TEST_PG:-} ]]; then
  QIAO_BENCH_PG="$QIAO_TEST_PG" cargo bench -p qiao-hub --bench hub_load
fi
