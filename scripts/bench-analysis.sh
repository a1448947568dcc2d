#!/usr/bin/env bash
# What's measured: real-world-evidence analyses on GiBleed×K (default K=100: 180,000 celecoxib
# entries), Qiao vs the same OHDSI SQL on DuckDB (../shared/oracles), side by side in one run:
# - characterization of CohortGenerator cohort 1 (celecoxib) with FeatureExtraction 3.14's default
#   analysis set;
# - incidence of GI bleed (crates/analysis/tests/data/gi_bleed.json) after celecoxib, 3 times at
#   risk, strata by age, gender and year (crates/analysis/tests/data/bench_gi_bleed_design.json).
#
# Qiao: the `analysis` bench target (criterion, warm, the cohorts' rows given) on the store.
# DuckDB: fe_oracle.py's construction + fetch seconds (FE's SQL for the aggregated covariates,
# cohort already generated) and ci_oracle.py's analysis seconds (CohortIncidence's SQL), on a
# DuckDB file of the same CDM; the Java SQL generation and the cohort generation are not counted.
#
# Run with: bash scripts/bench-analysis.sh [K]   (the CSV folder gibleed_xK under $BENCH_DIR,
# default /tmp/qiao-bench, is shared with scripts/bench-cohort.sh). Prints a markdown table.
set -euo pipefail
cd "$(dirname "$0")/.."
K=${1:-100}
DIR=${BENCH_DIR:-/tmp/qiao-bench}
DATA=../shared/data
O=../shared/oracles
C=$DATA/reference/cohortgenerator-eunomia/cohorts
T=crates/analysis/tests/data
mkdir -p "$DIR"
cargo build --release -q -p qiao
QIAO=$PWD/target/release/qiao
VENV=${QIAO_TEST_VENV:-$PWD/.work/venv}
PY=$VENV/bin/python
"$PY" -c "import duckdb, duckcdm" || { echo "need a venv with duckdb and duckcdm (scripts/test.sh makes .work/venv)" >&2; exit 1; }
command -v java >/dev/null || { echo "need java (openjdk-17-jre-headless)" >&2; exit 1; }

CDM=$DIR/gibleed_x$K
STORE=$DIR/analysis_x$K.qiao
DUCK=$DIR/analysis_x$K.duckdb
[ -f "$CDM/person.csv" ] || "$QIAO" synth --replicate "$K" --out "$CDM" --quiet
if ! "$QIAO" stats "$STORE" --json >/dev/null 2>&1; then
  "$QIAO" ingest --cdm "$CDM" --out "$STORE" --json >"$DIR/analysis_x$K.ingest.json" 2>&1
fi
[ -f "$DUCK" ] || "$PY" "$O/build_gibleed_duckdb.py" "$CDM" "$DUCK" >/dev/null

OUT=$DIR/bench-analysis.$$
mkdir -p "$OUT"
trap 'rm -rf "$OUT"' EXIT

QIAO_BENCH_STORE=$STORE cargo bench -q -p qiao-analysis --bench analysis -- \
  --warm-up-time 2 --measurement-time 5 --noplot >"$OUT/qiao.txt" 2>&1
"$PY" "$O/fe_oracle.py" --db "$DUCK" --cohort-json "1=$C/1.json" --cohort-ids 1 --out-dir "$OUT/fe" >/dev/null
"$PY" "$O/ci_oracle.py" run --db "$DUCK" --design "$T/bench_gi_bleed_design.json" --out-dir "$OUT/ci" \
  --cohort-json "1=$C/1.json" --cohort-json "100=$T/gi_bleed.json" >/dev/null

"$PY" - "$OUT" "$K" <<'PY'
import json, re, sys
out, k = sys.argv[1], sys.argv[2]
text = open(f"{out}/qiao.txt").read()
def median(name):
    m = re.search(name + r"\s+time:\s+\[\S+ \S+ (\S+) (\S+)", text)
    v, unit = float(m.group(1)), m.group(2)
    return v * {"ns": 1e-9, "µs": 1e-6, "us": 1e-6, "ms": 1e-3, "s": 1.0}[unit]
fe = json.load(open(f"{out}/fe/run_log.json"))
ci = json.load(open(f"{out}/ci/run_log.json"))
entries = re.search(r"celecoxib: (\d+) entries", text)
rows = [
    ("characterization, cohort 1, FE default set", median("characterize_cohort1_fe_default"),
     fe["construction_seconds"] + fe["fetch_seconds"]),
    ("incidence, GI bleed after celecoxib, 3 TARs, all strata", median("incidence_gi_bleed_3tars_all_strata"),
     ci["analysis_seconds"]),
]
print(f"GiBleed x{k}" + (f", {entries.group(1)} celecoxib entries" if entries else ""))
print("| analysis | Qiao | OHDSI SQL on DuckDB | ratio |")
print("|---|---|---|---|")
for name, q, d in rows:
    print(f"| {name} | {q*1000:.1f} ms | {d*1000:.0f} ms | {d/q:.0f}x |")
PY
