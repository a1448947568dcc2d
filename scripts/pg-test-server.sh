#!/usr/bin/env bash
# A private PostgreSQL 15 server for Qiao's tests, on 127.0.0.1:54329 (QIAO_PG_PORT to change).
#
#   scripts/pg-test-server.sh start    install postgresql-15 if missing, initdb once, start (no-op if running)
#   scripts/pg-test-server.sh stop     stop it (no-op if not running)
#   scripts/pg-test-server.sh status   exit 0 if it is running and accepts the qiao role, 1 if not
#   scripts/pg-test-server.sh env      print `export QIAO_TEST_PG=postgres://qiao:qiao@127.0.0.1:54329/qiao`
#                                      and the TLS files: QIAO_TEST_PG_CA (the test CA's certificate),
#                                      QIAO_TEST_PG_CLIENT_CERT / _KEY (a client certificate for qiao_cert)
#
# The server runs as a non-root user: as root, the Debian `postgres` user; otherwise the caller.
# Data directory: <repo>/.work/pg/data, unless that user cannot reach the repo (e.g. a clone under
# /root) or the path is too long for a unix socket: then /tmp/qiao-pg-<uid>/data. The unix socket
# is in the data directory; the log is <data>/server.log. Role and database: qiao / qiao, password
# qiao over TCP (scram-sha-256); the socket trusts local users (setup only). Test data only:
# fsync is off.
#
# TLS as hospitals run it: a self-signed test CA (<base>/tls/ca.crt) signs the server's certificate
# (localhost, 127.0.0.1) and a client certificate (CN qiao_cert). Roles besides qiao:
#   qiao_tls     password qiao_tls, only over TLS (a `hostssl` rule; `hostnossl` rejects it)
#   qiao_cert    TLS with the client certificate, no password (`cert` authentication)
#   qiao_reader  password qiao_reader, SELECT only (granted by scripts/pg-load-gibleed.sh)
# The configuration (pg_hba.conf, qiao-tls.conf) is rewritten and reloaded at every start, so an
# older data directory gains it without a new initdb.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PORT="${QIAO_PG_PORT:-54329}"
PGBIN=/usr/lib/postgresql/15/bin
URL="postgres://qiao:qiao@127.0.0.1:${PORT}/qiao"

log() { echo "pg-test-server: $*" >&2; }
die() {
  log "error: $*"
  exit 1
}

if [[ $EUID -eq 0 ]]; then
  RUN_USER=postgres
else
  RUN_USER="$(id -un)"
fi

# Runs a command as the server's user (from /: the caller's directory may be closed to it).
as_pg() {
  if [[ $EUID -eq 0 ]]; then
    (cd / && runuser -u postgres -- "$@")
  else
    "$@"
  fi
}

install_postgres() {
  [[ -x $PGBIN/postgres ]] && return 0
  [[ $EUID -eq 0 ]] || die "$PGBIN/postgres is missing and installing it needs root: apt-get install postgresql-15"
  log "installing postgresql-15 with apt-get"
  export DEBIAN_FRONTEND=noninteractive
  # Update the package lists only when apt does not know the package yet (fresh machine).
  if ! apt-cache policy postgresql-15 2>/dev/null | grep -q 'Candidate: [0-9]'; then
    apt-get update -q >&2
  fi
  apt-get install -y -q --no-install-recommends postgresql-15 >&2 || {
    apt-get update -q >&2
    apt-get install -y -q --no-install-recommends postgresql-15 >&2
  }
  [[ -x $PGBIN/postgres ]] || die "apt-get install postgresql-15 did not provide $PGBIN/postgres"
}

# Picks the base directory: <repo>/.work/pg if the server user can use it, else /tmp/qiao-pg-<uid>.
choose_base() {
  local base="$ROOT/.work/pg"
  # A unix socket path is limited to 107 bytes: "<base>/data/.s.PGSQL.<port>".
  if ((${#base} + 20 > 100)); then
    base="/tmp/qiao-pg-$EUID"
  elif [[ $EUID -eq 0 ]]; then
    mkdir -p "$base"
    chown postgres:postgres "$base"
    chmod 700 "$base"
    if ! as_pg test -w "$base"; then
      log "user postgres cannot reach $base (is the repo under a private directory?); using /tmp/qiao-pg-$EUID"
      base="/tmp/qiao-pg-$EUID"
    fi
  fi
  if [[ $base == /tmp/* ]]; then
    mkdir -p "$base"
    if [[ $EUID -eq 0 ]]; then
      chown postgres:postgres "$base"
    fi
    chmod 700 "$base"
  fi
  echo "$base"
}

# The data directory already in use (so that stop/status find it without creating anything).
existing_data() {
  local d
  for d in "$ROOT/.work/pg/data" "/tmp/qiao-pg-$EUID/data"; do
    if [[ -f $d/PG_VERSION ]]; then
      echo "$d"
      return 0
    fi
  done
  return 1
}

# True if our server (any data dir) answers on the port and lets the qiao role in.
accepts_qiao() {
  PGPASSWORD=qiao PGCONNECT_TIMEOUT=3 "$PGBIN/psql" -X -q -w -At "$URL" -c 'select 1' >/dev/null 2>&1
}

pg_running_in() {
  local data="$1"
  [[ -f $data/postmaster.pid ]] && as_pg "$PGBIN/pg_ctl" -D "$data" status >/dev/null 2>&1
}

init_cluster() {
  local data="$1"
  log "initdb $data (user $RUN_USER)"
  as_pg "$PGBIN/initdb" -D "$data" -U postgres -E UTF8 --locale=C.UTF-8 \
    --auth-local=trust --auth-host=scram-sha-256 >/dev/null
  cat >>"$data/postgresql.conf" <<EOF

# --- Qiao test server (scripts/pg-test-server.sh) ---
listen_addresses = '127.0.0.1'
port = $PORT
unix_socket_directories = '$data'
max_connections = 100
shared_buffers = 128MB
fsync = off
synchronous_commit = off
full_page_writes = off
logging_collector = off
log_min_messages = warning
datestyle = 'iso, ymd'
timezone = 'UTC'
EOF
}

# The test CA, the server's certificate and a client certificate, made once in <base>/tls.
ensure_certificates() {
  local tls="$1"
  [[ -f $tls/server.crt && -f $tls/client.crt && -f $tls/ca.crt ]] && return 0
  if ! command -v openssl >/dev/null; then
    [[ $EUID -eq 0 ]] || die "openssl is needed to make the test certificates: apt-get install openssl"
    log "installing openssl with apt-get (for the test certificates)"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends openssl >&2 </dev/null
  fi
  log "making a test CA and certificates in $tls"
  mkdir -p "$tls"
  local days=3650 ext
  openssl req -x509 -newkey rsa:2048 -nodes -days $days -subj "/CN=Qiao test CA" \
    -keyout "$tls/ca.key" -out "$tls/ca.crt" \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null
  ext="$(mktemp)"
  printf 'basicConstraints=CA:FALSE\nsubjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n' >"$ext"
  openssl req -newkey rsa:2048 -nodes -subj "/CN=localhost" -keyout "$tls/server.key" -out "$tls/server.csr" 2>/dev/null
  openssl x509 -req -in "$tls/server.csr" -CA "$tls/ca.crt" -CAkey "$tls/ca.key" -CAcreateserial \
    -days $days -extfile "$ext" -out "$tls/server.crt" 2>/dev/null
  printf 'basicConstraints=CA:FALSE\nextendedKeyUsage=clientAuth\n' >"$ext"
  openssl req -newkey rsa:2048 -nodes -subj "/CN=qiao_cert" -keyout "$tls/client.key" -out "$tls/client.csr" 2>/dev/null
  openssl x509 -req -in "$tls/client.csr" -CA "$tls/ca.crt" -CAkey "$tls/ca.key" -CAcreateserial \
    -days $days -extfile "$ext" -out "$tls/client.crt" 2>/dev/null
  rm -f "$ext" "$tls"/*.csr
  chmod 600 "$tls"/*.key
  if [[ $EUID -eq 0 ]]; then
    chown postgres:postgres "$tls/server.key" "$tls/server.crt" "$tls/ca.crt"
    chmod 755 "$tls"
  fi
}

# Rewrites the TLS settings and the host rules (read at start; reloaded if running).
write_config() {
  local data="$1" tls
  tls="$(dirname "$data")/tls"
  ensure_certificates "$tls"
  cat >"$data/qiao-tls.conf" <<EOF
# Written by scripts/pg-test-server.sh at every start (the port too: QIAO_PG_PORT may change).
port = $PORT
ssl = on
ssl_cert_file = '$tls/server.crt'
ssl_key_file = '$tls/server.key'
ssl_ca_file = '$tls/ca.crt'
EOF
  grep -q "qiao-tls.conf" "$data/postgresql.conf" ||
    echo "include_if_exists = 'qiao-tls.conf'" >>"$data/postgresql.conf"
  # Loopback TCP only. qiao_tls only over TLS, qiao_cert by client certificate; the local
  # socket for setup.
  cat >"$data/pg_hba.conf" <<EOF
local      all   all                        trust
hostssl    all   qiao_tls    127.0.0.1/32   scram-sha-256
hostnossl  all   qiao_tls    127.0.0.1/32   reject
hostssl    all   qiao_cert   127.0.0.1/32   cert
hostnossl  all   qiao_cert   127.0.0.1/32   reject
host       all   all         127.0.0.1/32   scram-sha-256
EOF
  if [[ $EUID -eq 0 ]]; then
    chown postgres:postgres "$data/qiao-tls.conf" "$data/pg_hba.conf"
  fi
}

ensure_role_and_db() {
  local data="$1"
  local psql=("$PGBIN/psql" -X -q -v ON_ERROR_STOP=1 -h "$data" -p "$PORT" -U postgres)
  as_pg "${psql[@]}" -d postgres <<'SQL' >/dev/null
DO $$
BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'qiao') THEN
    CREATE ROLE qiao LOGIN PASSWORD 'qiao';
  END IF;
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'qiao_tls') THEN
    CREATE ROLE qiao_tls LOGIN PASSWORD 'qiao_tls';
  END IF;
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'qiao_cert') THEN
    CREATE ROLE qiao_cert LOGIN;
  END IF;
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'qiao_reader') THEN
    CREATE ROLE qiao_reader LOGIN PASSWORD 'qiao_reader';
  END IF;
END $$;
SQL
  if [[ -z $(as_pg "${psql[@]}" -d postgres -At -c "SELECT 1 FROM pg_database WHERE datname = 'qiao'") ]]; then
    as_pg "${psql[@]}" -d postgres -c "CREATE DATABASE qiao OWNER qiao" >/dev/null
  fi
  # Foreign tables (a CDM served from another server) for the catalog discovery test.
  as_pg "${psql[@]}" -d qiao <<'SQL' >/dev/null
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS postgres_fdw;
GRANT USAGE ON FOREIGN DATA WRAPPER postgres_fdw TO qiao;
SQL
}

cmd_start() {
  install_postgres
  local data
  if data="$(existing_data)" && pg_running_in "$data"; then
    log "already running ($data, port $PORT)"
    write_config "$data"
    as_pg "$PGBIN/pg_ctl" -D "$data" reload >/dev/null
    ensure_role_and_db "$data"
    return 0
  fi
  if accepts_qiao; then
    log "a server already accepts qiao on 127.0.0.1:$PORT (another checkout's); using it"
    return 0
  fi
  data="$(choose_base)/data"
  if [[ ! -f $data/PG_VERSION ]]; then
    rm -rf "$data"
    init_cluster "$data"
  fi
  write_config "$data"
  # A stale pid file from a killed server would make pg_ctl refuse to start.
  if [[ -f $data/postmaster.pid ]] && ! pg_running_in "$data"; then
    rm -f "$data/postmaster.pid"
  fi
  log "starting on 127.0.0.1:$PORT ($data)"
  # pg_ctl forks the server: its output must not hold our caller's pipes open.
  if ! as_pg "$PGBIN/pg_ctl" -D "$data" -l "$data/server.log" -w -t 60 start </dev/null >/dev/null 2>&1; then
    tail -n 30 "$data/server.log" >&2 || true
    die "the server did not start (log: $data/server.log)"
  fi
  ensure_role_and_db "$data"
  accepts_qiao || die "started, but qiao cannot log in over TCP on 127.0.0.1:$PORT"
  log "ready: $URL"
}

cmd_stop() {
  local data
  if data="$(existing_data)" && pg_running_in "$data"; then
    as_pg "$PGBIN/pg_ctl" -D "$data" -m fast -w -t 60 stop </dev/null >/dev/null
    log "stopped ($data)"
  else
    log "not running"
  fi
}

cmd_status() {
  if [[ -x $PGBIN/psql ]] && accepts_qiao; then
    log "running: $URL"
    return 0
  fi
  log "not running"
  return 1
}

case "${1:-}" in
  start) cmd_start ;;
  stop) cmd_stop ;;
  status) cmd_status ;;
  env)
    echo "export QIAO_TEST_PG=$URL"
    if data="$(existing_data)" && [[ -f $(dirname "$data")/tls/ca.crt ]]; then
      tls="$(dirname "$data")/tls"
      echo "export QIAO_TEST_PG_CA=$tls/ca.crt"
      echo "export QIAO_TEST_PG_CLIENT_CERT=$tls/client.crt"
      echo "export QIAO_TEST_PG_CLIENT_KEY=$tls/client.key"
    fi
    ;;
  *)
    echo "usage: $0 start|stop|status|env" >&2
    exit 2
    ;;
esac
