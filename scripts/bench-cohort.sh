#!/usr/bin/env bash
# What's measured: OHDSI Circe cohort generation on GiBleed×K (default K=100: 269,400 persons),
# Qiao vs duckcdm (circe-be's SQL on DuckDB), side by side in one run, the same definitions: the 4
# CohortGenerator reference cohorts and the phenotypes-dev cohorts that are not empty on GiBleed.
#
# - Warm, the same way for both engines: one process per engine; each definition is executed
#   RUNS + 1 times back to back, the first execution is a warm-up (page cache, DuckDB's buffer
#   pool, CPU caches), and the fastest of the other RUNS counts.
#   Qiao: `qiao cohort run --stats --json` given each definition RUNS + 1 times in a row (read +
#   parse + plan + run, inclusion statistics on); its warm-up executions are shown too ("1st"),
#   each the first time that process met the definition (after the definitions before it).
#   DuckDB: the statements duckcdm generates (generateStats on), executed in one connection to a
#   DuckDB database file holding the CDM (`--repeat RUNS+1`); the SQL generation + translation
#   time (Python, once per cohort) is shown apart and not in the ratio.
# - Both engines' entries and subjects must agree, and equal K × the GiBleed counts.
# - Peak memory: maximum resident set of each engine's measured process (/usr/bin/time).
# - Cold: the store / database file evicted from the page cache (posix_fadvise DONTNEED), then one
#   process that opens it and generates cohort 1 (process start-up included; the same warm for
#   comparison).
#
# Run with: bash scripts/bench-cohort.sh [K] [RUNS]     (K=100 needs ~12 GB free under $BENCH_DIR,
# default /tmp/qiao-bench; the CSV folder gibleed_xK is shared with scripts/bench-ingest.sh)
# Prints a markdown table.
set -euo pipefail
cd "$(dirname "$0")/.."
K=${1:-100}
RUNS=${2:-3}
DIR=${BENCH_DIR:-/tmp/qiao-bench}
DATA=../shared/data
mkdir -p "$DIR"
cargo build --release -q -p qiao
QIAO=$PWD/target/release/qiao
VENV=${QIAO_TEST_VENV:-$PWD/.work/venv}
[ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
"$VENV/bin/python" -c "import duckdb, duckcdm" 2>/dev/null || "$VENV/bin/pip" install -q duckdb duckcdm
PY=$VENV/bin/python

CDM=$DIR/gibleed_x$K
STORE=$DIR/cohort_x$K.qiao
DUCK=$DIR/cohort_x$K.duckdb
[ -f "$CDM/person.csv" ] || "$QIAO" synth --replicate "$K" --out "$CDM" --quiet
# A store written by an older format version is rebuilt.
if ! "$QIAO" stats "$STORE" --json >/dev/null 2>&1; then
  "$QIAO" ingest --cdm "$CDM" --out "$STORE" --json >"$DIR/cohort_x$K.ingest.json" 2>&1
fi
[ -f "$DUCK" ] || "$PY" scripts/duckcdm_run.py --cdm "$CDM" --save-db "$DUCK" >/dev/null

DEFS=()
for id in 1 2 3 4; do DEFS+=("$DATA/reference/cohortgenerator-eunomia/cohorts/$id.json"); done
while IFS=$'\t' read -r id entries _; do
  [[ $id == cohort_id || $entries == 0 ]] || DEFS+=("$DATA/phenotypes-dev/cohorts/$id.json")
done <"$DATA/phenotypes-dev/duckcdm_on_gibleed.tsv"

OUT=$DIR/bench-cohort.$$
mkdir -p "$OUT"
trap 'rm -rf "$OUT"' EXIT
timed() { # file-prefix, command...: stdout to prefix.out, "seconds peak_kb" to prefix.time
  local p=$1; shift
  /usr/bin/time -f "%e %M" -o "$p.time" "$@" >"$p.out" 2>"$p.err" || { cat "$p.err" >&2; exit 1; }
}

# Warm: Qiao (one process, each definition RUNS + 1 times in a row).
REPEATED=()
for d in "${DEFS[@]}"; do
  for r in $(seq $((RUNS + 1))); do REPEATED+=("$d"); done
done
"$QIAO" cohort run --store "$STORE" --stats --json "${DEFS[@]}" >/dev/null
timed "$OUT/qiao" "$QIAO" cohort run --store "$STORE" --stats --json "${REPEATED[@]}"
# Baseline: the same with the per-person evaluator for every definition.
timed "$OUT/qiao_pp" "$QIAO" cohort run --store "$STORE" --stats --json --per-person "${REPEATED[@]}"
# Warm: DuckDB (one process: a warm-up execution, then RUNS).
timed "$OUT/duck" "$PY" scripts/duckcdm_run.py --db "$DUCK" --repeat $((RUNS + 1)) "${DEFS[@]}"

# Cold and warm open + first cohort.
evict() { "$PY" -c 'import os, sys
fd = os.open(sys.argv[1], os.O_RDONLY); os.fsync(fd); os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED); os.close(fd)' "$1"; }
sync
evict "$STORE"
timed "$OUT/qiao_cold" "$QIAO" cohort run --store "$STORE" --stats --json "${DEFS[0]}"
timed "$OUT/qiao_warm1" "$QIAO" cohort run --store "$STORE" --stats --json "${DEFS[0]}"
evict "$DUCK"
timed "$OUT/duck_cold" "$PY" scripts/duckcdm_run.py --db "$DUCK" "${DEFS[0]}"
timed "$OUT/duck_warm1" "$PY" scripts/duckcdm_run.py --db "$DUCK" "${DEFS[0]}"

"$PY" - "$OUT" "$RUNS" "$K" "$DATA" "$STORE" "$DUCK" "$CDM" <<'EOF'
import csv, json, os, statistics, sys
out, runs, k, data, store, duck, cdm = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4], sys.argv[5], sys.argv[6], sys.argv[7]
lines = lambda p: [json.loads(l) for l in open(p) if l.strip()]
name = lambda p: ('cg/' if 'cohortgenerator' in p else 'pl/') + os.path.basename(p)[:-5]
tm = lambda p: open(p).read().split()
def qiao_runs(path):
    res = {}
    for rec in lines(path):
        if 'error' in rec:
            sys.exit(f"qiao failed on {rec['definition']}: {rec['error']}")
        q = res.setdefault(rec['definition'], {'entries': rec['entries'], 'subjects': rec['subjects'], 'all': []})
        q['all'].append(rec['millis'])
    for q in res.values():
        q['first'], q['ms'] = q['all'][0], q['all'][1:]
        assert len(q['ms']) == runs, 'each definition runs RUNS + 1 times'
    return res
qiao, qiao_pp = qiao_runs(f'{out}/qiao.out'), qiao_runs(f'{out}/qiao_pp.out')
duckrecs = [r for r in lines(f'{out}/duck.out') if 'file' in r]
# Expected: K x the GiBleed counts (CohortGenerator reference; duckcdm's phenotype counts).
want = {}
for f in csv.DictReader(open(f'{data}/reference/cohortgenerator-eunomia/Results_Eunomia/cg_cohort_count.csv')):
    want['cg/' + f['cohort_id']] = (int(f['cohort_entries']) * k, int(f['cohort_subjects']) * k)
for row in open(f'{data}/phenotypes-dev/duckcdm_on_gibleed.tsv').read().split('\n')[1:]:
    if row.strip():
        f = row.split('\t')
        want['pl/' + f[0]] = (int(f[1]) * k, int(f[2]) * k)
rows, bad = [], []
for d in duckrecs:
    if d['error']:
        sys.exit(f"duckcdm failed on {d['file']}: {d['error']}")
    q = qiao[d['file']]
    n = name(d['file'])
    got_q, got_d = (q['entries'], q['subjects']), (d['entries'], d['subjects'])
    pp = qiao_pp[d['file']]
    if got_q != got_d or got_q != want[n] or (pp['entries'], pp['subjects']) != got_q:
        bad.append(f'{n}: qiao {got_q}, duckdb {got_d}, {k} x GiBleed {want[n]}')
    warm_d = d['exec_runs_ms'][1:] or d['exec_runs_ms']
    rows.append((n, q['entries'], q['subjects'], min(q['ms']), min(warm_d), d['sql_ms'], q['first'], min(pp['ms'])))
if bad:
    sys.exit('counts differ:\n' + '\n'.join(bad))
qs, ds = [r[3] for r in rows], [r[4] for r in rows]
qt, dt = tm(f'{out}/qiao.time'), tm(f'{out}/duck.time')
mb = lambda kb: int(kb) / 1024
print(f'### Cohort generation on GiBleed x{k} ({len(rows)} definitions, warm: each run {runs + 1} times in a row in one process, fastest of the last {runs}; load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs)')
print()
print('| cohort | entries | subjects | Qiao ms | DuckDB ms | DuckDB / Qiao | Qiao 1st ms | Qiao per-person ms | duckcdm SQL gen ms |')
print('|---|---:|---:|---:|---:|---:|---:|---:|---:|')
for n, e, s, q, d, g, f, pp in rows:
    print(f'| {n} | {e:,} | {s:,} | {q:.1f} | {d:.1f} | {d / q:.1f}x | {f:.1f} | {pp:.1f} | {g:.0f} |')
fs, pps = [r[6] for r in rows], [r[7] for r in rows]
print(f'| **total** | | | **{sum(qs):.1f}** | **{sum(ds):.1f}** | **{sum(ds) / sum(qs):.1f}x** | {sum(fs):.1f} | {sum(pps):.1f} | {sum(r[5] for r in rows):.0f} |')
print(f'| median per cohort | | | {statistics.median(qs):.2f} | {statistics.median(ds):.1f} | {statistics.median(d / q for q, d in zip(qs, ds)):.1f}x | {statistics.median(fs):.2f} | {statistics.median(pps):.2f} | |')
print()
print('| | Qiao | DuckDB (duckcdm) |')
print('|---|---:|---:|')
print(f'| peak memory, all cohorts (MB) | {mb(qt[1]):.0f} | {mb(dt[1]):.0f} |')
print(f'| on-disk size (MB) | {os.path.getsize(store) / 1e6:.0f} | {os.path.getsize(duck) / 1e6:.0f} |')
for label, a, b in [('cold: one process, open + cohort cg/1 (s)', 'qiao_cold', 'duck_cold'),
                    ('warm: one process, open + cohort cg/1 (s)', 'qiao_warm1', 'duck_warm1')]:
    print(f'| {label} | {float(tm(f"{out}/{a}.time")[0]):.2f} | {float(tm(f"{out}/{b}.time")[0]):.2f} |')
print()
print('Counts: both engines agree on entries and subjects of every cohort, each', k, 'x its GiBleed count.')
print('Qiao ms / DuckDB ms: fastest of the last runs of each definition executed back to back in one')
print('process (Qiao: read + parse + plan + run; DuckDB: execution of the generated statements only).')
print('Qiao 1st: the warm-up execution (the first time that process met the definition). Qiao per-person:')
print('the same run with --per-person (every definition on the per-person evaluator), the baseline of')
print('the fused pipeline.')
print('duckcdm SQL gen: circe SQL generation and')
print('SqlRender translation in Python (once per cohort). Cold/warm process times include start-up (for')
print('duckcdm: Python, imports and SQL generation).')
EOF
