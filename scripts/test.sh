#!/usr/bin/env bash
# Qiao's whole test run: what CI runs (.ci/run), and what a developer runs before submitting.
#
#   scripts/test.sh
#
# 1. PostgreSQL: starts the private test server (scripts/pg-test-server.sh; installs
#    postgresql-15 if missing), loads GiBleed into schema gibleed (scripts/pg-load-gibleed.sh,
#    skipped when already loaded) and exports QIAO_TEST_PG (and QIAO_TEST_PG_REQUIRED=1, so the
#    PostgreSQL tests fail rather than skip if it is missing). A server this script started is
#    stopped when it ends; one that was already running is left running.
# 2. Python and Java: a venv at .work/venv with duckdb and duckcdm (the Circe-on-DuckDB reference the
#    cohort tests may compare with, and the engine of ../shared/oracles), lifelines, statsmodels and
#    scipy (the survival, regression and interval references), installed once; exported as
#    QIAO_TEST_VENV when it works. Java 17 (Debian openjdk-17-jre-headless, when `java` is missing)
#    runs the OHDSI FeatureExtraction and CohortIncidence code of ../shared/oracles. If pip fails, a
#    warning is printed and the run goes on without it.
# 3. Browser tests: Debian's chromium (apt-get, when /usr/bin/chromium is missing; with
#    fonts-noto-cjk so Chinese pages render in screenshots) and playwright-core from npm into
#    .work/node (from crates/portal/e2e/package.json + package-lock.json, `npm ci`, redone only when
#    the lock file changes). Exports QIAO_CHROMIUM and QIAO_E2E_NODE_MODULES, which the browser
#    test (crates/qiao/tests/browser.rs) requires: without them it fails, it never skips. Node and
#    Chromium are test-only: nothing is built with them.
# 4. scripts/module-deps.py (crate order and module cycles, with its self-test), cargo build
#    --release -p qiao, cargo test --workspace --release --features qiao/spark --no-fail-fast (the qiao
#    binary sits beside the release test executables for the CLI tests), cargo clippy --workspace
#    --all-targets -- -D warnings (beside the tests, at nice 19, in target/clippy). Release, not debug: measured cold on this 2-core machine, the
#    release build + tests cost 688 CPU-s against 1033 CPU-s for debug (the dev profile's full
#    debuginfo and a second build of the dependencies for the test profile); test run times are
#    small either way.
# Prints the time of each phase at the end.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
mkdir -p .work

PHASES=()
PHASE=""
PHASE_START=$SECONDS
RUN_START=$SECONDS
PG_STARTED=0
SPARK_STARTED=0
FAILED=()

phase() {
  end_phase
  PHASE="$1"
  PHASE_START=$SECONDS
  echo
  echo "==> $PHASE"
}

end_phase() {
  if [[ -n $PHASE ]]; then
    PHASES+=("$(printf '%-52s %5d s' "$PHASE" $((SECONDS - PHASE_START)))")
    PHASE=""
  fi
}

warn() { echo "WARNING: $*" >&2; }

apt_updated=0
apt_install() {
  if ((!apt_updated)); then
    apt-get update -qq
    apt_updated=1
  fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" </dev/null
}

finish() {
  local rc=$?
  end_phase
  if [[ -n ${CLIPPY_PID:-} ]]; then
    kill -- "-$CLIPPY_PID" 2>/dev/null || true
  fi
  if ((PG_STARTED)); then
    scripts/pg-test-server.sh stop || true
  fi
  if ((SPARK_STARTED)); then
    scripts/spark-test-cluster.sh stop || true
  fi
  echo
  echo "==> phase times"
  local p
  for p in "${PHASES[@]}"; do
    echo "    $p"
  done
  printf '    %-52s %5d s\n' "total" $((SECONDS - RUN_START))
  if ((rc == 0)); then
    echo "==> scripts/test.sh: all passed"
  else
    echo "==> scripts/test.sh: FAILED (exit $rc)"
  fi
  exit "$rc"
}
trap finish EXIT

# --- 1. PostgreSQL ---------------------------------------------------------------------------
phase "postgres: start server"
if scripts/pg-test-server.sh status 2>/dev/null; then
  echo "already running: left running at the end"
  scripts/pg-test-server.sh start # idempotent: brings its TLS set-up and roles up to date
else
  scripts/pg-test-server.sh start
  PG_STARTED=1
fi
phase "postgres: load GiBleed"
scripts/pg-load-gibleed.sh
eval "$(scripts/pg-test-server.sh env)"
export QIAO_TEST_PG
export QIAO_TEST_PG_REQUIRED=1

# --- 2. Python test dependencies -------------------------------------------------------------
phase "python: venv with duckdb, duckcdm, lifelines, statsmodels, scipy"
VENV="$ROOT/.work/venv"
PY_PACKAGES=(duckdb==2.0.1 duckcdm==0.4.7 lifelines==0.30.3 statsmodels scipy)
py_ok() {
  [[ -x $VENV/bin/python ]] &&
    "$VENV/bin/python" -c 'import duckdb, duckcdm, lifelines, statsmodels, scipy' 2>/dev/null
}
if py_ok; then
  echo "already installed in $VENV"
else
  if [[ ! -x $VENV/bin/python ]]; then
    rm -rf "$VENV"
    python3 -m venv "$VENV" || warn "python3 -m venv $VENV failed"
  fi
  if [[ -x $VENV/bin/pip ]]; then
    "$VENV/bin/pip" install --quiet --disable-pip-version-check "${PY_PACKAGES[@]}" </dev/null ||
      warn "pip install ${PY_PACKAGES[*]} failed"
  fi
fi
if ! command -v java >/dev/null; then
  apt_install openjdk-17-jre-headless
fi
export QIAO_TEST_VENV_REQUIRED=1 # crates/analysis/tests/oracles.rs: fail, never skip, without the venv or java
if py_ok; then
  export QIAO_TEST_VENV="$VENV"
  echo "QIAO_TEST_VENV=$VENV ($("$VENV/bin/python" -c 'import duckdb; print("duckdb", duckdb.__version__)'))"
else
  warn "no Python venv with duckdb and duckcdm: tests that compare with duckcdm will skip (QIAO_TEST_VENV unset)"
  unset QIAO_TEST_VENV
fi

# --- 3. Browser test dependencies (test-only) ---------------------------------------------
phase "browser: chromium, node, playwright-core"
if [[ ! -x /usr/bin/chromium ]]; then
  apt_install chromium fonts-noto-cjk
fi
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
  apt_install nodejs npm
fi
E2E_SRC="$ROOT/crates/portal/e2e"
NODE_DIR="$ROOT/.work/node"
if [[ -f $E2E_SRC/package-lock.json ]]; then
  mkdir -p "$NODE_DIR"
  if [[ -f $NODE_DIR/node_modules/playwright-core/package.json ]] &&
    cmp -s "$E2E_SRC/package-lock.json" "$NODE_DIR/package-lock.json"; then
    echo "playwright-core already installed in $NODE_DIR"
  else
    cp "$E2E_SRC/package.json" "$E2E_SRC/package-lock.json" "$NODE_DIR/"
    (cd "$NODE_DIR" && npm ci --no-audit --no-fund --loglevel=error </dev/null)
  fi
  export QIAO_E2E_NODE_MODULES="$NODE_DIR/node_modules"
else
  warn "no $E2E_SRC/package-lock.json: QIAO_E2E_NODE_MODULES unset, the browser test will fail"
fi
export QIAO_CHROMIUM=/usr/bin/chromium
echo "QIAO_CHROMIUM=$QIAO_CHROMIUM ($("$QIAO_CHROMIUM" --version 2>/dev/null || echo "not runnable")), node $(node --version)"

# --- 3b. Apache Spark (crates/spark) ------------------------------------------------------------
# protoc builds the Spark Connect client's protocol crate; the test cluster (a standalone master,
# 2 workers and a Spark Connect server from the pyspark wheel, GiBleed as Parquet tables) serves
# crates/spark/tests/native_vs_spark.rs. It starts in the background while cargo builds (phase
# "spark: wait for the test cluster" waits for it) and is stopped at the end if this run started it.
phase "spark: protoc; test cluster started in the background"
if ! command -v protoc >/dev/null; then
  apt_install protobuf-compiler
fi
SPARK_PID=""
SPARK_LOG="$ROOT/.work/spark-start.log"
if command -v java >/dev/null; then
  if scripts/spark-test-cluster.sh status >/dev/null 2>&1; then
    echo "already running: left running at the end"
  else
    SPARK_STARTED=1
  fi
  scripts/spark-test-cluster.sh start >"$SPARK_LOG" 2>&1 &
  SPARK_PID=$!
else
  warn "no java: the Spark tests skip (QIAO_TEST_SPARK unset)"
fi

# --- 4. Rust -----------------------------------------------------------------------------------
phase "module dependencies (scripts/module-deps.py)"
{ python3 scripts/module-deps.py --self-test && python3 scripts/module-deps.py; } || FAILED+=("module dependencies")

phase "cargo build --release -p qiao"
cargo build --release -p qiao

if [[ -n $SPARK_PID ]]; then
  phase "spark: wait for the test cluster"
  if wait "$SPARK_PID"; then
    QIAO_TEST_SPARK="$(tail -n 1 "$SPARK_LOG")"
    export QIAO_TEST_SPARK QIAO_TEST_SPARK_REQUIRED=1
    echo "QIAO_TEST_SPARK=$QIAO_TEST_SPARK"
  else
    # As with the Python venv: a cluster that cannot be installed or started here is reported
    # loudly and its tests skip; a cluster that runs must give the native engine's answers.
    tail -n 30 "$SPARK_LOG" >&2 || true
    warn "the Spark test cluster did not start (log: $SPARK_LOG): the Spark tests skip"
    unset QIAO_TEST_SPARK
  fi
fi

# Tests and clippy both run even if one fails, so that one run reports every failure.
# `--features qiao/spark`: the workspace's tests build crates/spark and its Spark Connect client
# anyway (a member), so the qiao binary they rebuild gets `qiao cohort run --spark` and `qiao site
# serve --spark` for the price of its own compile and link, and crates/qiao/tests/cohort_spark_cli.rs
# runs; the `qiao` built above (without the feature) is what a site without Spark installs.
#
# Clippy runs beside the tests at the lowest CPU and I/O priority, in a target directory of its own
# (cargo's lock on target/ would otherwise queue it behind them): it takes the cycles the tests
# leave idle (waiting on Spark, PostgreSQL, the browser, the network tests' timers) and yields
# the rest, and its report is printed after theirs. On a fresh machine it is 4-5 min of
# dependency checks that used to run after the tests.
CLIPPY_LOG=$ROOT/target/clippy.log
mkdir -p "$ROOT/target"
rm -f "$CLIPPY_LOG.rc"
# setsid: its own process group, so that an interrupted run stops cargo and its rustc too.
setsid bash -c 'rc=0
  nice -n 19 ionice -c 3 cargo clippy --workspace --all-targets --features qiao/spark \
    --target-dir "$1/target/clippy" -- -D warnings >"$2" 2>&1 || rc=$?
  echo "$rc" >"$2.rc"' clippy "$ROOT" "$CLIPPY_LOG" &
CLIPPY_PID=$!

phase "cargo test --workspace --release --features qiao/spark"
cargo test --workspace --release --features qiao/spark --no-fail-fast || FAILED+=("cargo test")

phase "cargo clippy --workspace --all-targets --features qiao/spark -D warnings (rest)"
wait "$CLIPPY_PID" || true
CLIPPY_PID=""
cat "$CLIPPY_LOG"
[[ $(cat "$CLIPPY_LOG.rc" 2>/dev/null) == 0 ]] || FAILED+=("cargo clippy")

end_phase
if ((${#FAILED[@]})); then
  echo "FAILED: ${FAILED[*]}" >&2
  exit 1
fi
