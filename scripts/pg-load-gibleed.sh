#!/usr/bin/env bash
# Loads Eunomia GiBleed (CDM 5.3, ../shared/data/eunomia-gibleed-5.3 beside the repo) into a
# PostgreSQL schema with typed DDL (scripts/sql/gibleed-cdm53.sql), for the PostgreSQL ingest tests.
#
#   scripts/pg-load-gibleed.sh [--force]
#
# Database: $QIAO_TEST_PG, else the test server's URL (scripts/pg-test-server.sh env).
# Schema: $QIAO_GIBLEED_SCHEMA (default gibleed). Data: $QIAO_GIBLEED_DIR (default
# <repo>/../shared/data/eunomia-gibleed-5.3).
#
# Idempotent: skipped when the schema was loaded by this same loader and DDL (a fingerprint kept
# as the schema's comment) and every table has the row count of the data's ROWCOUNTS.tsv.
# Otherwise the schema is dropped and rebuilt in one transaction (a failed load leaves the old one).
#
# Each CSV is copied (psql \copy, CSV HEADER) into a text staging table named by its header, then
# inserted with casts: integer columns via numeric, so that GiBleed's `10204.0`-style ids load as
# 10204 (a real fraction such as 2.5 is an error, not rounded); text columns by assignment, so a
# value too long for its VARCHAR is an error, not truncated. The CSV header and the DDL must name
# the same columns.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DDL="$ROOT/scripts/sql/gibleed-cdm53.sql"
DATA="${QIAO_GIBLEED_DIR:-$ROOT/../shared/data/eunomia-gibleed-5.3}"
SCHEMA="${QIAO_GIBLEED_SCHEMA:-gibleed}"
FORCE=0
[[ ${1:-} == --force ]] && FORCE=1

log() { echo "pg-load-gibleed: $*" >&2; }
die() {
  log "error: $*"
  exit 1
}

[[ $SCHEMA =~ ^[a-z_][a-z0-9_]*$ ]] || die "schema name must be a plain lower-case identifier: $SCHEMA"
[[ -d $DATA ]] || die "GiBleed data not found at $DATA (expected shared/ beside the repo)"
DATA="$(cd "$DATA" && pwd)"
[[ -f $DATA/ROWCOUNTS.tsv ]] || die "$DATA/ROWCOUNTS.tsv missing"

if [[ -z ${QIAO_TEST_PG:-} ]]; then
  eval "$("$ROOT/scripts/pg-test-server.sh" env)"
fi
URL="$QIAO_TEST_PG"
PSQL="$(command -v psql || true)"
[[ -n $PSQL ]] || PSQL=/usr/lib/postgresql/15/bin/psql
[[ -x $PSQL ]] || die "psql not found (install postgresql-client-15, or run scripts/pg-test-server.sh start)"
# The URL carries the password; PGPASSWORD covers URLs without one (the test server's is qiao).
export PGPASSWORD="${PGPASSWORD:-qiao}"
psql_q() { "$PSQL" -X -q -w -v ON_ERROR_STOP=1 "$URL" "$@"; }

# The tables: those the DDL creates, in its order.
mapfile -t TABLES < <(sed -n 's/^CREATE TABLE \([a-z_]*\) .*/\1/p' "$DDL")
((${#TABLES[@]} > 0)) || die "no CREATE TABLE in $DDL"

expected_count() {
  awk -F'\t' -v t="$1" '$1 == t { print $2; found = 1 } END { if (!found) exit 1 }' "$DATA/ROWCOUNTS.tsv"
}

FINGERPRINT="qiao-gibleed $(cat "$DDL" "${BASH_SOURCE[0]}" "$DATA/ROWCOUNTS.tsv" | sha256sum | cut -c1-16)"

# The SQL that lists "table<TAB>rows" for every table of the schema that we load.
count_sql() {
  local t sep="" sql=""
  for t in "${TABLES[@]}"; do
    sql+="${sep}SELECT '$t', count(*) FROM $SCHEMA.$t"
    sep=" UNION ALL "
  done
  echo "$sql"
}

counts_match() {
  local t n want actual
  actual="$(psql_q -At -F $'\t' -c "$(count_sql)" 2>/dev/null)" || return 1
  for t in "${TABLES[@]}"; do
    want="$(expected_count "$t")" || die "$t is not in $DATA/ROWCOUNTS.tsv"
    n="$(awk -F'\t' -v t="$t" '$1 == t { print $2 }' <<<"$actual")"
    if [[ $n != "$want" ]]; then
      [[ ${1:-} == verbose ]] && log "$SCHEMA.$t has ${n:-no} rows, expected $want"
      return 1
    fi
  done
}

if ((!FORCE)); then
  comment="$(psql_q -At -c "SELECT obj_description(oid, 'pg_namespace') FROM pg_namespace WHERE nspname = '$SCHEMA'" 2>/dev/null || true)"
  if [[ $comment == "$FINGERPRINT" ]] && counts_match; then
    log "schema $SCHEMA already loaded ($FINGERPRINT), skipping"
    exit 0
  fi
fi

sql_string() { printf "'%s'" "${1//\'/\'\'}"; }

SCRIPT="$(mktemp -t qiao-load-gibleed.XXXXXX.sql)"
trap 'rm -f "$SCRIPT"' EXIT
{
  echo "SELECT pg_advisory_xact_lock(hashtext('qiao-load-gibleed:$SCHEMA'));"
  echo "SET client_min_messages = warning;"
  echo "DROP SCHEMA IF EXISTS $SCHEMA CASCADE;"
  echo "CREATE SCHEMA $SCHEMA;"
  echo "SET LOCAL search_path = $SCHEMA;"
  echo "\\i $(sql_string "$DDL")"
  echo "SET LOCAL search_path = pg_temp;"
  for t in "${TABLES[@]}"; do
    csv="$DATA/$t.csv"
    [[ -f $csv ]] || die "$csv missing"
    header="$(head -n 1 "$csv" | tr -d '\r\357\273\277')"
    cols=""
    IFS=, read -r -a names <<<"$header"
    for c in "${names[@]}"; do
      c="${c//\"/}"
      [[ $c =~ ^[a-z_][a-z0-9_]*$ ]] || die "$csv: unexpected column name '$c'"
      cols+="${cols:+, }$c text"
    done
    echo "CREATE TEMP TABLE stage_$t ($cols) ON COMMIT DROP;"
    echo "\\copy stage_$t FROM $(sql_string "$csv") WITH (FORMAT csv, HEADER true)"
  done
  cat <<SQL
DO \$load\$
DECLARE
  r record;
  odd text;
  cols text;
  exprs text;
BEGIN
  FOR r IN
    SELECT c.oid AS stage, substr(c.relname, 7) AS target,
           format('%I.%I', '$SCHEMA', substr(c.relname, 7))::regclass AS target_oid
    FROM pg_class c
    WHERE c.relnamespace = pg_my_temp_schema() AND c.relkind = 'r' AND c.relname LIKE 'stage\\_%'
    ORDER BY c.relname
  LOOP
    SELECT string_agg(name, ', ') INTO odd FROM (
      (SELECT attname AS name FROM pg_attribute WHERE attrelid = r.stage AND attnum > 0 AND NOT attisdropped
       EXCEPT SELECT attname FROM pg_attribute WHERE attrelid = r.target_oid AND attnum > 0 AND NOT attisdropped)
      UNION ALL
      (SELECT attname FROM pg_attribute WHERE attrelid = r.target_oid AND attnum > 0 AND NOT attisdropped
       EXCEPT SELECT attname FROM pg_attribute WHERE attrelid = r.stage AND attnum > 0 AND NOT attisdropped)
    ) d;
    IF odd IS NOT NULL THEN
      RAISE EXCEPTION '%: the CSV header and the DDL differ in column(s) %', r.target, odd;
    END IF;
    SELECT string_agg(format('%I', s.attname), ', ' ORDER BY s.attnum),
           string_agg(CASE
             WHEN t.atttypid IN ('int2'::regtype, 'int4'::regtype, 'int8'::regtype)
               THEN format('trim_scale(%I::numeric)::text::%s', s.attname, format_type(t.atttypid, t.atttypmod))
             WHEN t.atttypid IN ('text'::regtype, 'varchar'::regtype, 'bpchar'::regtype)
               THEN format('%I', s.attname)
             ELSE format('%I::%s', s.attname, format_type(t.atttypid, t.atttypmod))
           END, ', ' ORDER BY s.attnum)
      INTO cols, exprs
      FROM pg_attribute s
      JOIN pg_attribute t ON t.attrelid = r.target_oid AND t.attname = s.attname
     WHERE s.attrelid = r.stage AND s.attnum > 0 AND NOT s.attisdropped;
    EXECUTE format('INSERT INTO %s (%s) SELECT %s FROM %s', r.target_oid, cols, exprs, r.stage::regclass);
  END LOOP;
END
\$load\$;
SQL
  echo "COMMENT ON SCHEMA $SCHEMA IS $(sql_string "$FINGERPRINT");"
  echo "GRANT USAGE ON SCHEMA $SCHEMA TO PUBLIC;"
  echo "GRANT SELECT ON ALL TABLES IN SCHEMA $SCHEMA TO PUBLIC;"
} >"$SCRIPT"

log "loading $DATA into schema $SCHEMA"
start=$SECONDS
psql_q --single-transaction -f "$SCRIPT" >/dev/null
counts_match verbose || die "row counts in $SCHEMA differ from $DATA/ROWCOUNTS.tsv"
log "loaded ${#TABLES[@]} tables into $SCHEMA in $((SECONDS - start)) s"
