#!/usr/bin/env bash
# What's measured: ingest of GiBleed×K (default K=100: 269,400 persons, ~34 M rows, ~3 GB of CSV)
# by `qiao ingest` and by DuckDB (CREATE TABLE … AS SELECT * FROM read_csv(…) per table, into a
# database file), side by side on this machine: wall time (median of RUNS), peak memory, rows/s,
# MB/s and output size; then `qiao store verify` (the full check ingest runs after writing), and
# the store's cold and warm open as a whole process: `qiao stats` and a trivial cohort (the
# phenotype library's cohort 123, 100 entries per GiBleed copy).
#
# Peak memory per row over two sizes gives the ingest's slope: run K=100 and K=300. The ingest
# holds at most its memory budget of rows (--memory-mb, default 512; beyond it rows are sorted in
# temporary files beside the store and merged) plus what grows with persons and the vocabulary,
# so its peak should barely move between the two.
# With QIAO_ONLY=1 DuckDB is not run (its load of ×300 takes a long time on 2 cores).
# With QIAO_BASE=path/to/another/qiao (e.g. main's build) that binary's ingest is measured too, in
# the same runs, one after the other (row "base": its time, peak memory and store size).
#
# Run with: bash scripts/bench-ingest.sh [K] [RUNS]    (needs ~12 GB free under $BENCH_DIR, default /tmp/qiao-bench)
set -euo pipefail
cd "$(dirname "$0")/.."
K=${1:-100}
RUNS=${2:-3}
DIR=${BENCH_DIR:-/tmp/qiao-bench}
mkdir -p "$DIR"
# QIAO=path/to/qiao measures another build; by default this tree's release build.
if [ -z "${QIAO:-}" ]; then
  cargo build --release -q -p qiao
  QIAO=$PWD/target/release/qiao
fi
VENV=${QIAO_TEST_VENV:-$PWD/.work/venv}
[ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
"$VENV/bin/python" -c "import duckdb" 2>/dev/null || "$VENV/bin/pip" install -q duckdb
CDM=$DIR/gibleed_x$K
[ -f "$CDM/person.csv" ] || "$QIAO" synth --replicate "$K" --out "$CDM" --quiet
CSV_BYTES=$(du -cb "$CDM"/*.csv | tail -1 | cut -f1)

measure() { # name, command...: prints "seconds peak_kb cpu_seconds" of one run (cpu: user + sys)
  local name=$1; shift
  /usr/bin/time -f "%e %M %U %S" -o "$DIR/$name.time" "$@" >/dev/null 2>"$DIR/$name.err" || { cat "$DIR/$name.err"; exit 1; }
  awk '{print $1, $2, $3 + $4}' "$DIR/$name.time"
}
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

rm -f "$DIR/qiao.runs" "$DIR/duckdb.runs" "$DIR/base.runs"
for run in $(seq "$RUNS"); do
  measure qiao "$QIAO" ingest --cdm "$CDM" --out "$DIR/g.qiao" --json >> "$DIR/qiao.runs"
  [ -n "${QIAO_BASE:-}" ] && measure base "$QIAO_BASE" ingest --cdm "$CDM" --out "$DIR/base.qiao" --json >> "$DIR/base.runs"
  [ "${QIAO_ONLY:-0}" = 1 ] && continue
  rm -f "$DIR/g.duckdb"
  measure duckdb "$VENV/bin/python" scripts/duckdb_load.py "$CDM" "$DIR/g.duckdb" >> "$DIR/duckdb.runs"
done
[ "${QIAO_ONLY:-0}" = 1 ] && echo "1 0 1" > "$DIR/duckdb.runs"
ROWS=$("$QIAO" stats "$DIR/g.qiao" --json | "$VENV/bin/python" -c "import json,sys; print(sum(json.load(sys.stdin)['tables'].values()))")
q=$(cut -d' ' -f1 "$DIR/qiao.runs" | median); d=$(cut -d' ' -f1 "$DIR/duckdb.runs" | median)
qc=$(cut -d' ' -f3 "$DIR/qiao.runs" | median); dc=$(cut -d' ' -f3 "$DIR/duckdb.runs" | median)
qm=$(cut -d' ' -f2 "$DIR/qiao.runs" | sort -n | tail -1); dm=$(cut -d' ' -f2 "$DIR/duckdb.runs" | sort -n | tail -1)
qs=$(stat -c %s "$DIR/g.qiao"); ds=$(stat -c %s "$DIR/g.duckdb" 2>/dev/null || echo 1)
if [ -n "${QIAO_BASE:-}" ]; then
  b=$(cut -d' ' -f1 "$DIR/base.runs" | median); bc_=$(cut -d' ' -f3 "$DIR/base.runs" | median)
  bm=$(cut -d' ' -f2 "$DIR/base.runs" | sort -n | tail -1); bs=$(stat -c %s "$DIR/base.qiao")
fi
rm -f "$DIR/qiao.runs" "$DIR/duckdb.runs" "$DIR/base.runs"
echo "GiBleed x$K: $ROWS rows, $((CSV_BYTES / 1000000)) MB CSV, $RUNS runs each"
printf "%-8s %10s %12s %10s %12s %12s\n" engine "median s" "rows/s" "MB/s" "peak MB" "output MB"
printf "%-8s %10s %12.0f %10.0f %12d %12d\n" qiao "$q" "$(echo "$ROWS / $q" | bc -l)" "$(echo "$CSV_BYTES / 1000000 / $q" | bc -l)" $((qm / 1024)) $((qs / 1000000))
if [ -n "${QIAO_BASE:-}" ]; then
  printf "%-8s %10s %12.0f %10.0f %12d %12d\n" base "$b" "$(echo "$ROWS / $b" | bc -l)" "$(echo "$CSV_BYTES / 1000000 / $b" | bc -l)" $((bm / 1024)) $((bs / 1000000))
  echo "cpu (user + sys, median): base ${bc_} s; ratio base/qiao wall: $(echo "$b / $q" | bc -l | cut -c1-5)x, cpu: $(echo "$bc_ / $qc" | bc -l | cut -c1-5)x"
fi
if [ "${QIAO_ONLY:-0}" != 1 ]; then
  printf "%-8s %10s %12.0f %10.0f %12d %12d\n" duckdb "$d" "$(echo "$ROWS / $d" | bc -l)" "$(echo "$CSV_BYTES / 1000000 / $d" | bc -l)" $((dm / 1024)) $((ds / 1000000))
  echo "cpu (user + sys, median): qiao ${qc} s, duckdb ${dc} s; ratio duckdb/qiao cpu: $(echo "$dc / $qc" | bc -l | cut -c1-5)x; load average: $(cut -d' ' -f1-3 /proc/loadavg)"
  echo "ratio duckdb/qiao wall time: $(echo "$d / $q" | bc -l | cut -c1-5)x; size qiao/duckdb: $(echo "$qs / $ds" | bc -l | cut -c1-5)"
fi
echo "qiao: $((qs / ROWS)) bytes per row; peak memory $((qm * 1024 / ROWS)) bytes per row"
/usr/bin/time -f "%e s, peak %M KB" "$QIAO" store verify "$DIR/g.qiao" 2>&1 | sed "s/^/store verify: /"
# Open as a whole process: cold (the file evicted from the page cache) and warm.
evict() { "$VENV/bin/python" -c 'import os, sys
fd = os.open(sys.argv[1], os.O_RDONLY); os.fsync(fd); os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED); os.close(fd)' "$1"; }
TRIVIAL=../shared/data/phenotypes-dev/cohorts/123.json
sync
evict "$DIR/g.qiao"
/usr/bin/time -f "%e s, peak %M KB" "$QIAO" stats "$DIR/g.qiao" --json 2>&1 >/dev/null | sed "s/^/open + stats (cold): /"
/usr/bin/time -f "%e s, peak %M KB" "$QIAO" stats "$DIR/g.qiao" --json 2>&1 >/dev/null | sed "s/^/open + stats (warm): /"
evict "$DIR/g.qiao"
/usr/bin/time -f "%e s, peak %M KB" "$QIAO" cohort run --store "$DIR/g.qiao" --json "$TRIVIAL" 2>&1 >/dev/null | sed "s/^/open + trivial cohort (cold): /"
for i in 1 2 3 4 5; do
  /usr/bin/time -f "%e %M" "$QIAO" cohort run --store "$DIR/g.qiao" --json "$TRIVIAL" 2>&1 >/dev/null
done | sort -n | awk 'NR == 3 {print "open + trivial cohort (warm, median of 5): " $1 " s, peak " $2 " KB"}'
