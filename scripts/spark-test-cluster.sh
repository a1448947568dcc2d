#!/usr/bin/env bash
# A private Apache Spark cluster for Qiao's tests, on loopback: a standalone master, 2 workers and a
# Spark Connect server, with the OMOP CDM test data loaded as Parquet tables.
#
#   scripts/spark-test-cluster.sh start    install what is missing, start what is not running,
#                                          load the data once; the last line printed is the
#                                          Spark Connect URL (sc://127.0.0.1:<port>)
#   scripts/spark-test-cluster.sh stop     stop the processes this script started (by their pid
#                                          files; nothing else), no-op if none is running
#   scripts/spark-test-cluster.sh status   exit 0 if the Spark Connect server answers, 1 if not
#   scripts/spark-test-cluster.sh url      print the Spark Connect URL
#
# What it uses: Java 17 (Debian openjdk-17-jre-headless, installed with apt-get when `java` is
# missing) and the `pyspark` 4.x package from PyPI in a venv it makes (.work/spark-venv, with the
# `connect` extra for the loader). Since Spark 4.0 the package carries the whole Spark
# distribution, the Spark Connect server jar included (jars/spark-connect_2.13-*.jar), so nothing
# else is downloaded.
#
# Data (scripts/spark_load.py, through Spark Connect, so the cluster does the work): the CSVs of
# ../shared/data/eunomia-gibleed-5.3 become Parquet tables in schema `gibleed`, those of
# ../shared/data/synthea27nj-5.4 in schema `synthea27nj`, with the column types of the official
# CDM DDL (../shared/data/cdm-ddl). Parquet files are written once under .work/spark/warehouse;
# every start registers them again (the catalog is the Connect server's in-memory one).
#
# A result stream stays open for up to an hour (the server's default, 2 minutes, ends a slow query's
# stream for the client to reattach, which the Rust client does not do).
# Sizes for a shared 2-core machine: daemons 256 MiB, each worker 2 task slots and 1.5 GiB, each
# executor 1 GiB, the Connect server's driver 2 GiB, 4 shuffle partitions.
# Settings for many small queries (a test run sends ~2,000 Spark jobs of little data each; their
# time is latency, not work): a task starts on the first free slot (spark.locality.wait=0: the
# default waits up to 3 s for the executor holding a checkpoint block while the other one idles),
# 2 slots per executor on 1 core (a slot mostly waits on shuffle fetches and scheduling), jobs of
# concurrent runs share the slots (FAIR), tables under 32 MiB are broadcast rather than shuffled
# (all of GiBleed's; GiBleed x100's event tables are not), and the JVMs log warnings only (at INFO
# the driver writes ~1 MB of log per minute of tests).
# Ports (loopback only): master QIAO_SPARK_MASTER_PORT (7177), its web UI +1000, Spark Connect
# QIAO_SPARK_CONNECT_PORT (15012). Logs and pid files: .work/spark/.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
WORK="$ROOT/.work/spark"
VENV="$ROOT/.work/spark-venv"
MASTER_PORT="${QIAO_SPARK_MASTER_PORT:-7177}"
CONNECT_PORT="${QIAO_SPARK_CONNECT_PORT:-15012}"
HOST=127.0.0.1
URL="sc://$HOST:$CONNECT_PORT"
DATA="$ROOT/../shared/data"

log() { echo "spark-test-cluster: $*" >&2; }
die() {
  log "error: $*"
  exit 1
}

install_java() {
  command -v java >/dev/null && return 0
  [[ $EUID -eq 0 ]] || die "java is missing and installing it needs root: apt-get install openjdk-17-jre-headless"
  log "installing openjdk-17-jre-headless with apt-get"
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y -q --no-install-recommends openjdk-17-jre-headless >&2 || {
    apt-get update -q >&2
    apt-get install -y -q --no-install-recommends openjdk-17-jre-headless >&2
  }
}

install_pyspark() {
  if [[ -x $VENV/bin/python ]] && "$VENV/bin/python" -c 'import pyspark, pyspark.sql.connect.session, sys; sys.exit(0 if pyspark.__version__.startswith("4.") else 1)' 2>/dev/null; then
    return 0
  fi
  log "making $VENV with pyspark[connect] 4.x from PyPI (once; the package is large)"
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q 'pyspark[connect]>=4,<5' 'pandas<3' >&2
}

spark_home() {
  "$VENV/bin/python" -c 'import os, pyspark; print(os.path.dirname(pyspark.__file__))'
}

# Is the process of pid file $1 alive and running Java class $2?
alive() {
  local pidf="$WORK/$1.pid" pid
  [[ -f $pidf ]] || return 1
  pid="$(cat "$pidf")"
  [[ -r /proc/$pid/cmdline ]] || return 1
  # Read whole, not piped into `grep -q`: under pipefail, grep leaving early fails `tr` (SIGPIPE)
  # and a live process read as dead.
  [[ "$(tr '\0' ' ' <"/proc/$pid/cmdline")" == *"$2"* ]]
}

# Starts `spark-class` class $2 under name $1 (pid file, log), unless it is already running.
launch() {
  local name="$1" class="$2"
  shift 2
  if alive "$name" "$class"; then
    return 0
  fi
  log "starting $name"
  # spark-class execs java: the pid recorded is the JVM's.
  nohup "$SPARK_HOME/bin/spark-class" "$class" "$@" >"$WORK/$name.log" 2>&1 </dev/null &
  echo $! >"$WORK/$name.pid"
}

wait_for_port() {
  local port="$1" what="$2" name="$3" class="$4" i
  for ((i = 0; i < 240; i++)); do
    if (exec 3<>"/dev/tcp/$HOST/$port") 2>/dev/null; then
      return 0
    fi
    alive "$name" "$class" || die "$what exited; see $WORK/$name.log"
    sleep 0.5
  done
  die "$what does not listen on $HOST:$port after 120 s; see $WORK/$name.log"
}

MASTER_CLASS=org.apache.spark.deploy.master.Master
WORKER_CLASS=org.apache.spark.deploy.worker.Worker
CONNECT_CLASS=org.apache.spark.sql.connect.service.SparkConnectServer

start() {
  install_java
  install_pyspark
  mkdir -p "$WORK"
  SPARK_HOME="$(spark_home)"
  export SPARK_HOME
  ls "$SPARK_HOME"/jars/spark-connect_*.jar >/dev/null 2>&1 ||
    die "the pyspark package at $SPARK_HOME carries no spark-connect jar"
  export SPARK_LOCAL_IP=$HOST SPARK_LOCAL_HOSTNAME=localhost
  export SPARK_DAEMON_MEMORY=256m SPARK_LOG_DIR="$WORK" SPARK_PID_DIR="$WORK"
  export SPARK_WORKER_DIR="$WORK/work"
  local master="spark://$HOST:$MASTER_PORT"
  launch master "$MASTER_CLASS" --host "$HOST" --port "$MASTER_PORT" --webui-port $((MASTER_PORT + 1000))
  wait_for_port "$MASTER_PORT" "the master" master "$MASTER_CLASS"
  for w in 1 2; do
    launch "worker$w" "$WORKER_CLASS" --host "$HOST" --cores 2 --memory 1536m \
      --webui-port 0 --work-dir "$WORK/work$w" "$master"
  done
  # The Connect server is a driver, not a daemon: its heap is the driver memory.
  unset SPARK_DAEMON_MEMORY
  local log4j="$WORK/log4j2-warn.properties"
  cat >"$log4j" <<'LOG4J'
rootLogger.level = warn
rootLogger.appenderRef.stderr.ref = console
appender.console.type = Console
appender.console.name = console
appender.console.target = SYSTEM_ERR
appender.console.layout.type = PatternLayout
appender.console.layout.pattern = %d{yy/MM/dd HH:mm:ss} %p %c{1}: %m%n%ex
LOG4J
  export SPARK_DRIVER_MEMORY=2g
  launch connect org.apache.spark.deploy.SparkSubmit \
    --class "$CONNECT_CLASS" --name "Qiao test Spark Connect server" \
    --master "$master" --driver-memory 2g \
    --conf spark.connect.grpc.binding.address=$HOST \
    --conf spark.connect.grpc.binding.port="$CONNECT_PORT" \
    --conf spark.executor.memory=1g --conf spark.executor.cores=2 --conf spark.cores.max=4 \
    --conf spark.sql.shuffle.partitions=4 --conf spark.default.parallelism=4 \
    --conf spark.sql.adaptive.enabled=true \
    --conf spark.locality.wait=0s --conf spark.scheduler.mode=FAIR \
    --conf spark.sql.autoBroadcastJoinThreshold=32m \
    --conf "spark.executor.extraJavaOptions=-Dlog4j2.configurationFile=file:$log4j" \
    --conf spark.sql.warehouse.dir="$WORK/warehouse" \
    --conf spark.driver.host=$HOST --conf spark.driver.bindAddress=$HOST \
    --conf spark.ui.enabled=false \
    --conf spark.connect.execute.reattachable.senderMaxStreamDuration=1h \
    --conf "spark.driver.extraJavaOptions=-Dderby.system.home=$WORK -Dlog4j2.configurationFile=file:$log4j" \
    spark-internal
  wait_for_port "$CONNECT_PORT" "the Spark Connect server" connect "$CONNECT_CLASS"
  "$VENV/bin/python" "$ROOT/scripts/spark_load.py" "$URL" "$WORK/warehouse" \
    "gibleed=$DATA/eunomia-gibleed-5.3=$DATA/cdm-ddl/5.3/OMOPCDM_postgresql_5.3_ddl.sql" \
    "synthea27nj=$DATA/synthea27nj-5.4=$DATA/cdm-ddl/5.4/OMOPCDM_postgresql_5.4_ddl.sql" >&2
  echo "$URL"
}

stop() {
  local name pid
  # The Connect server first (it owns the executors), then the workers, then the master.
  for name in connect worker2 worker1 master; do
    [[ -f $WORK/$name.pid ]] || continue
    pid="$(cat "$WORK/$name.pid")"
    if [[ -r /proc/$pid/cmdline && "$(tr '\0' ' ' <"/proc/$pid/cmdline")" == *org.apache.spark* ]]; then
      log "stopping $name (pid $pid)"
      kill "$pid" 2>/dev/null || true
      for _ in $(seq 60); do
        [[ -e /proc/$pid ]] || break
        sleep 0.5
      done
      [[ -e /proc/$pid ]] && kill -9 "$pid" 2>/dev/null || true
    fi
    rm -f "$WORK/$name.pid"
  done
}

status() {
  alive connect "$CONNECT_CLASS" && (exec 3<>"/dev/tcp/$HOST/$CONNECT_PORT") 2>/dev/null
}

case "${1:-}" in
start) start ;;
stop) stop ;;
status) status ;;
url) echo "$URL" ;;
*) die "usage: $0 start|stop|status|url" ;;
esac
