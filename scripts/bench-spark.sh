#!/usr/bin/env bash
# What's measured: the cohort engine on GiBleed×K (default K=100: 269,400 persons) natively (a Qiao
# store) and on Apache Spark (the test cluster of scripts/spark-test-cluster.sh: a standalone master,
# 2 workers of 1 core / 1 GiB, a Spark Connect server; the same CSVs loaded as Parquet), the 4
# CohortGenerator reference cohorts, and where Spark's time goes.
#
# - Per cohort, warm, fastest of RUNS: the wall time of one `qiao cohort run --stats --json DEF`
#   process (start-up, connect/open, plan, run; native: `--store`, Spark: `--spark URL --schema`).
#   Both must report the same entries and subjects (and K × the GiBleed counts).
# - Spark's breakdown of the fastest run (QIAO_SPARK_TRACE's lines, crates/spark): the materialized steps
#   (concept sets and observation periods at once, each level of nodes, the inclusion masks: one Spark job each,
#   with its planning, scheduling and shuffles), the result query (planning, execution, the Arrow
#   stream back), the tail on this side; and the same cohort on GiBleed×1 (schema gibleed): at K=1
#   the data work is small, so its time is Spark's fixed cost per cohort (per-step planning,
#   job scheduling, shuffle stages, round trips), and the K×100 increment is the data-proportional
#   part.
# - JVM start: the cluster's start-up (master, 2 workers, Connect server, executors) is timed when
#   this script starts it; a running cluster is reused (the first query of each `qiao` process then
#   only opens a Connect session).
#
# Run with: [COHORTS="1 3"] [WARMUP=0] bash scripts/bench-spark.sh [K] [RUNS]   (K=100 needs ~3 GB of CSV and ~1 GB of store
# under $BENCH_DIR, default /tmp/qiao-bench, shared with scripts/bench-cohort.sh, and the Parquet
# tables under $BENCH_DIR/spark-warehouse; loading K=100 as Parquet takes minutes, once).
# The Spark cluster: QIAO_TEST_SPARK=sc://… if one runs; otherwise this script starts it and stops
# it at the end. Prints a markdown table.
set -euo pipefail
cd "$(dirname "$0")/.."
K=${1:-100}
RUNS=${2:-2}
DIR=${BENCH_DIR:-/tmp/qiao-bench}
DATA=../shared/data
mkdir -p "$DIR"
if [ -z "${QIAO:-}" ]; then
  cargo build --release -q -p qiao --features spark
  QIAO=$PWD/target/release/qiao
fi

CDM=$DIR/gibleed_x$K
STORE=$DIR/cohort_x$K.qiao
[ -f "$CDM/person.csv" ] || "$QIAO" synth --replicate "$K" --out "$CDM" --quiet
if ! "$QIAO" stats "$STORE" --json >/dev/null 2>&1; then
  "$QIAO" ingest --cdm "$CDM" --out "$STORE" --json >"$DIR/cohort_x$K.ingest.json" 2>&1
fi

STARTED=0
if [ -z "${QIAO_TEST_SPARK:-}" ]; then
  if scripts/spark-test-cluster.sh status >/dev/null 2>&1; then
    QIAO_TEST_SPARK=$(scripts/spark-test-cluster.sh url)
  else
    t0=$(date +%s.%N)
    QIAO_TEST_SPARK=$(scripts/spark-test-cluster.sh start | tail -n 1)
    STARTED=1
    echo "cluster start (JVMs, executors, GiBleed and Synthea27Nj registered): $(echo "$(date +%s.%N) - $t0" | bc) s"
  fi
fi
URL=$QIAO_TEST_SPARK
[ $STARTED = 1 ] && trap 'scripts/spark-test-cluster.sh stop' EXIT

# GiBleed×K as Parquet tables in schema gibleed_x$K (written once; registered on every run).
WAREHOUSE=$DIR/spark-warehouse
t0=$(date +%s.%N)
.work/spark-venv/bin/python scripts/spark_load.py "$URL" "$WAREHOUSE" \
  "gibleed_x$K=$CDM=$DATA/cdm-ddl/5.3/OMOPCDM_postgresql_5.3_ddl.sql" >&2
echo "Parquet load/registration of gibleed_x$K: $(echo "$(date +%s.%N) - $t0" | bc) s"

OUT=$DIR/bench-spark.$$
mkdir -p "$OUT"
trap 'rm -rf "$OUT"; [ $STARTED = 1 ] && scripts/spark-test-cluster.sh stop || true' EXIT

# best FILE-PREFIX CMD...: runs CMD RUNS times (after a warm-up unless WARMUP=0), keeps the fastest
# run's stdout, stderr and "seconds peak_kb".
best() {
  local p=$1 b="" t
  shift
  if [ "${WARMUP:-1}" = 1 ]; then "$@" >/dev/null 2>&1 || { "$@" >&2; exit 1; }; fi
  for r in $(seq "$RUNS"); do
    /usr/bin/time -f "%e %M" -o "$p.t$r" "$@" >"$p.o$r" 2>"$p.e$r"
    t=$(cut -d' ' -f1 <"$p.t$r")
    if [ -z "$b" ] || (($(echo "$t < $b" | bc))); then
      b=$t
      cp "$p.o$r" "$p.out"
      cp "$p.e$r" "$p.err"
      cp "$p.t$r" "$p.time"
    fi
  done
}

field() { sed -n "s/.*\"$2\":\([0-9]*\).*/\1/p" "$1" | head -n 1; }
# The Spark breakdown of a run (its trace's "spark run:" line and its JSON's millis): the number of
# materialized steps, their wall time in ms (the steps of a wave run at once), the rest of the run's
# ms (the result query: planning, execution, the Arrow stream back; the SQL compile and the tail, a
# few ms).
breakdown() {
  local steps total
  steps=$(sed -n 's/^spark run: \([0-9]*\) steps.*/\1/p' "$1.err" | head -n 1)
  total=$(sed -n 's/^spark run: .* steps \([0-9]*\) ms,.*/\1/p' "$1.err" | head -n 1)
  echo "${steps:-0} ${total:-0} $(($(field "$1.out" millis) - ${total:-0}))"
}
echo
echo "| cohort | entries | native s (peak MiB) | Spark s | Spark ×1 s | steps: n, s (×1 s) | result query + compile + tail s (×1 s) | Spark / native |"
echo "|---|---|---|---|---|---|---|---|"
for id in ${COHORTS:-1 2 3 4}; do
  def=$DATA/reference/cohortgenerator-eunomia/cohorts/$id.json
  best "$OUT/n$id" "$QIAO" cohort run --store "$STORE" --stats --json "$def"
  QIAO_SPARK_TRACE=1 best "$OUT/s$id" "$QIAO" cohort run --spark "$URL" --schema "gibleed_x$K" --stats --json "$def"
  QIAO_SPARK_TRACE=1 best "$OUT/g$id" "$QIAO" cohort run --spark "$URL" --schema gibleed --stats --json "$def"
  ne=$(field "$OUT/n$id.out" entries) se=$(field "$OUT/s$id.out" entries)
  ns=$(field "$OUT/n$id.out" subjects) ss=$(field "$OUT/s$id.out" subjects)
  if [ "$ne" != "$se" ] || [ "$ns" != "$ss" ]; then
    echo "cohort $id: native $ne entries / $ns subjects, Spark $se / $ss" >&2
    exit 1
  fi
  read -r nt nkb <"$OUT/n$id.time"
  read -r st _ <"$OUT/s$id.time"
  read -r gt _ <"$OUT/g$id.time"
  read -r n steps res < <(breakdown "$OUT/s$id")
  read -r _ gsteps gres < <(breakdown "$OUT/g$id")
  printf '| %s | %s | %s (%d) | %s | %s | %s, %.1f (%.1f) | %.1f (%.1f) | %.0f× |\n' \
    "$id" "$ne" "$nt" $((nkb / 1024)) "$st" "$gt" "$n" "$(echo "$steps/1000" | bc -l)" \
    "$(echo "$gsteps/1000" | bc -l)" "$(echo "$res/1000" | bc -l)" "$(echo "$gres/1000" | bc -l)" \
    "$(echo "$st / ($nt + 0.0005)" | bc -l)"
done
echo
echo "Store: $(du -sh "$STORE" | cut -f1) for $(field <("$QIAO" stats "$STORE" --json) persons) persons; Parquet: $(du -sh "$WAREHOUSE/gibleed_x$K" | cut -f1)"
echo "Machine: $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg)"
