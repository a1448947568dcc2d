#!/usr/bin/env bash
# Loads the PostgreSQL ingest tests' CDMs with the official OHDSI DDL (../shared/data/cdm-ddl):
#  - Eunomia GiBleed (CDM 5.3) into schema $QIAO_GIBLEED_SCHEMA (default gibleed), vocabulary
#    included, through a staging step (below);
#  - Synthea27Nj (CDM 5.4) as a hospital runs it: the CDM in schema synthea54, the vocabulary in
#    synthea54_vocab, primary keys on, readable only by the SELECT-only role qiao_reader (made by
#    scripts/pg-test-server.sh) and the loading role.
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
# GiBleed: each CSV is copied (psql \copy, CSV HEADER) into a text staging table named by its
# header, then inserted with casts: integer columns via numeric, so that GiBleed's `10204.0`-style
# ids load as 10204 (a real fraction such as 2.5 is an error, not rounded); text columns by
# assignment, so a value too long for its VARCHAR is an error, not truncated. Only the columns the
# CSV and the DDL share are inserted (GiBleed's cost.csv misspells one); its primary keys are not
# added (GiBleed has duplicates). Synthea27Nj loads as is (\copy into the typed tables).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
SHARED="$ROOT/../shared/data"
DDL="$SHARED/cdm-ddl/5.3/OMOPCDM_postgresql_5.3_ddl.sql"
DATA="${QIAO_GIBLEED_DIR:-$SHARED/eunomia-gibleed-5.3}"
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
[[ -f $DDL ]] || die "the OHDSI DDL is not at $DDL (expected shared/ beside the repo)"
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

# The tables: those the DDL creates that GiBleed has a file for, in the DDL's order.
TABLES=()
while read -r t; do
  [[ -f $DATA/$t.csv ]] && TABLES+=("$t")
done < <(sed -n 's/^CREATE TABLE @cdmDatabaseSchema\.\([a-z_]*\) .*/\1/p' "$DDL")
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

sql_string() { printf "'%s'" "${1//\'/\'\'}"; }

schema_comment() {
  psql_q -At -c "SELECT obj_description(oid, 'pg_namespace') FROM pg_namespace WHERE nspname = '$1'" 2>/dev/null || true
}

# --- Synthea27Nj, CDM 5.4: CDM and vocabulary schemas apart, primary keys, a SELECT-only role ----
load_synthea54() {
  local data="$SHARED/synthea27nj-5.4" ddl="$SHARED/cdm-ddl/5.4"
  local cdm=synthea54 voc=synthea54_vocab
  [[ -d $data ]] || die "Synthea27Nj data not found at $data"
  local fp t file header
  fp="qiao-synthea54 $(cat "$ddl/OMOPCDM_postgresql_5.4_ddl.sql" "$ddl/OMOPCDM_postgresql_5.4_primary_keys.sql" "${BASH_SOURCE[0]}" "$data/ROWCOUNTS.tsv" | sha256sum | cut -c1-16)"
  if ((!FORCE)) && [[ $(schema_comment $cdm) == "$fp" ]]; then
    log "schema $cdm already loaded ($fp), skipping"
    return 0
  fi
  local vocab_tables=(concept vocabulary domain concept_class concept_relationship relationship
    concept_synonym concept_ancestor source_to_concept_map drug_strength)
  local script
  script="$(mktemp -t qiao-load-synthea.XXXXXX.sql)"
  {
    echo "SELECT pg_advisory_xact_lock(hashtext('qiao-load-synthea54'));"
    echo "SET client_min_messages = warning;"
    echo "DROP SCHEMA IF EXISTS $cdm CASCADE; DROP SCHEMA IF EXISTS $voc CASCADE;"
    echo "CREATE SCHEMA $cdm; CREATE SCHEMA $voc;"
    sed "s/@cdmDatabaseSchema/$cdm/g" "$ddl/OMOPCDM_postgresql_5.4_ddl.sql"
    sed "s/@cdmDatabaseSchema/$cdm/g" "$ddl/OMOPCDM_postgresql_5.4_primary_keys.sql"
    for t in "${vocab_tables[@]}"; do
      echo "ALTER TABLE $cdm.$t SET SCHEMA $voc;"
    done
    while read -r t; do
      file="$data/${t^^}.csv"
      [[ -f $file ]] || continue
      header="$(head -n 1 "$file" | tr -d '\r\357\273\277"')"
      [[ $header =~ ^[a-z_0-9,]+$ ]] || die "$file: unexpected header"
      header="\"${header//,/\",\"}\""
      local schema=$cdm
      [[ " ${vocab_tables[*]} " == *" $t "* ]] && schema=$voc
      echo "\\copy $schema.$t ($header) FROM $(sql_string "$file") WITH (FORMAT csv, HEADER true)"
    done < <(sed -n 's/^CREATE TABLE @cdmDatabaseSchema\.\([a-z_]*\) .*/\1/p' "$ddl/OMOPCDM_postgresql_5.4_ddl.sql")
    echo "REVOKE ALL ON SCHEMA $cdm, $voc FROM PUBLIC;"
    echo "GRANT USAGE ON SCHEMA $cdm, $voc TO qiao_reader;"
    echo "GRANT SELECT ON ALL TABLES IN SCHEMA $cdm, $voc TO qiao_reader;"
    echo "COMMENT ON SCHEMA $cdm IS $(sql_string "$fp");"
  } >"$script"
  log "loading $data into schemas $cdm and $voc (official 5.4 DDL)"
  local start=$SECONDS
  psql_q --single-transaction -f "$script" >/dev/null || {
    rm -f "$script"
    die "loading Synthea27Nj failed"
  }
  rm -f "$script"
  local n
  n="$(psql_q -At -c "SELECT count(*) FROM $voc.concept_relationship")"
  [[ $n == "$(awk -F'\t' '$1 == "CONCEPT_RELATIONSHIP" || $1 == "concept_relationship" { print $2 }' "$data/ROWCOUNTS.tsv")" ]] ||
    die "$voc.concept_relationship has $n rows, not those of $data/ROWCOUNTS.tsv"
  log "loaded Synthea27Nj into $cdm / $voc in $((SECONDS - start)) s"
}

load_synthea54

if ((!FORCE)); then
  if [[ $(schema_comment "$SCHEMA") == "$FINGERPRINT" ]] && counts_match; then
    log "schema $SCHEMA already loaded ($FINGERPRINT), skipping"
    exit 0
  fi
fi

SCRIPT="$(mktemp -t qiao-load-gibleed.XXXXXX.sql)"
trap 'rm -f "$SCRIPT"' EXIT
{
  echo "SELECT pg_advisory_xact_lock(hashtext('qiao-load-gibleed:$SCHEMA'));"
  echo "SET client_min_messages = warning;"
  echo "DROP SCHEMA IF EXISTS $SCHEMA CASCADE;"
  echo "CREATE SCHEMA $SCHEMA;"
  # The official DDL, only the tables GiBleed has.
  awk -v keep=" ${TABLES[*]} " '
    /^CREATE TABLE @cdmDatabaseSchema\./ { t = $3; sub(/.*\./, "", t); on = index(keep, " " t " ") > 0 }
    on { print }
    /\);[[:space:]]*$/ { on = 0 }' "$DDL" | sed "s/@cdmDatabaseSchema/$SCHEMA/g"
  echo "SET LOCAL search_path = pg_temp;"
  for t in "${TABLES[@]}"; do
    csv="$DATA/$t.csv"
    [[ -f $csv ]] || die "$csv missing"
    header="$(head -n 1 "$csv" | tr -d '\r\357\273\277')"
    cols=""
    IFS=, read -r -a names <<<"$header"
    for c in "${names[@]}"; do
      c="${c//\"/}"
      c="${c%$'\r'}"
      [[ $c =~ ^[a-z_][a-z0-9_]*$ ]] || die "$csv: unexpected column name '$c'"
      cols+="${cols:+, }\"$c\" text"
    done
    echo "CREATE TEMP TABLE stage_$t ($cols) ON COMMIT DROP;"
    echo "\\copy stage_$t FROM $(sql_string "$csv") WITH (FORMAT csv, HEADER true)"
  done
  cat <<SQL
DO \$load\$
DECLARE
  r record;
  odd text;
  has_null boolean;
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
    -- A NOT NULL column the data leaves empty (GiBleed's vocabulary.vocabulary_reference) keeps
    -- its NULLs: the constraint goes, as the primary keys do.
    FOR odd IN
      SELECT t.attname FROM pg_attribute t JOIN pg_attribute s ON s.attrelid = r.stage AND s.attname = t.attname
       WHERE t.attrelid = r.target_oid AND t.attnotnull AND t.attnum > 0
    LOOP
      EXECUTE format('SELECT EXISTS (SELECT FROM %s WHERE %I IS NULL)', r.stage::regclass, odd) INTO has_null;
      IF has_null THEN
        EXECUTE format('ALTER TABLE %s ALTER COLUMN %I DROP NOT NULL', r.target_oid, odd);
      END IF;
    END LOOP;
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
