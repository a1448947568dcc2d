"""Generates OHDSI Circe cohorts with duckcdm (a Python port of circe-be on DuckDB): the reference
engine the cohort tests and benchmarks compare Qiao with.

Usage:
  python duckcdm_run.py (--cdm CDM_DIR | --db FILE.duckdb) [--save-db OUT.duckdb] [--rows]
                        [--repeat N] [--tie-break] DEF.json...

--cdm loads every OMOP CDM table found in CDM_DIR (`table.csv`, any case) into an in-memory DuckDB,
typed by the CDM field list that duckcdm ships (standard columns absent from a file are NULL; every
`*_id` column except concept ids is BIGINT so that replicated ids do not overflow); tables absent
from the folder are created empty. --db opens a DuckDB file instead (read-write: the results
schema is created in it); --save-db writes the loaded CDM to a DuckDB file and exits.

For each definition, in the order given, prints one JSON line:
  {"file", "cohort_id", "entries", "subjects", "ms",
   "rows": [[subject_id, "YYYY-MM-DD", "YYYY-MM-DD"], ...]      (only with --rows; sorted)
   "inclusion_stats": [[mode, rule, person_count, gain_count, person_total], ...],
   "inclusion_result": [[mode, mask, person_count], ...],
   "summary": [[mode, base_count, final_count], ...],
   "censor_lost": n | null, "error": null | "message"}
plus the times: "sql_ms" (circe SQL generation, SqlRender render + translation to DuckDB, once),
"exec_runs_ms" (execution of the statements, each of --repeat runs), "exec_ms" (the fastest) and
"ms" = sql_ms + exec_ms. Stats are generated as circe-be does with generateStats=true. The first
line of output is {"load_ms": ...} (loading the CSVs, or opening the database).
With --tie-break, the mode-1 "best event" ranking breaks ties on event_id (see cohort_sql).
"""
import argparse
import json
import os
import sys
import time

import duckdb
from duckcdm.circe import build_cohort_query
from duckcdm.omop import RESULTS_TABLES, cdm_fields
from duckcdm.sqlrender import render, split_sql, translate

RESULTS = ('cohort', 'cohort_inclusion', 'cohort_inclusion_result', 'cohort_inclusion_stats',
           'cohort_summary_stats', 'cohort_censor_stats')
RESULTS_DDL = {
    'cohort': 'cohort_definition_id int, subject_id bigint, cohort_start_date date, cohort_end_date date',
    'cohort_inclusion': 'cohort_definition_id int, design_hash int, rule_sequence int, name varchar, description varchar',
    'cohort_inclusion_result': 'cohort_definition_id int, mode_id int, inclusion_rule_mask bigint, person_count bigint',
    'cohort_inclusion_stats': 'cohort_definition_id int, rule_sequence int, mode_id int, person_count bigint, gain_count bigint, person_total bigint',
    'cohort_summary_stats': 'cohort_definition_id int, mode_id int, base_count bigint, final_count bigint',
    'cohort_censor_stats': 'cohort_definition_id int, lost_count bigint',
}


def col_type(name, t):
    if name.endswith('_id') and not name.endswith('concept_id') and t == 'INTEGER':
        return 'BIGINT'
    return t


def load_csv_dir(con, cdm_dir):
    files = {}
    for f in os.listdir(cdm_dir):
        stem, ext = os.path.splitext(f)
        if ext.lower() in ('.csv', '.tsv'):
            files[stem.lower()] = os.path.join(cdm_dir, f)
    for table, cols in cdm_fields().items():
        if table in RESULTS_TABLES:
            continue
        ddl = ', '.join(f'"{c}" {col_type(c, t)}' for c, t in cols)
        con.execute(f'CREATE TABLE main.{table} ({ddl})')
        path = files.get(table)
        if path is None:
            continue
        reader = f"read_csv('{path}', header=true, all_varchar=true, auto_detect=true)"
        have = {r[0].lower(): r[0] for r in con.execute(f'DESCRIBE SELECT * FROM {reader}').fetchall()}
        sel = []
        for c, t in cols:
            t = col_type(c, t)
            if c not in have:
                sel.append(f'CAST(NULL AS {t})')
            elif t == 'VARCHAR':
                sel.append(f'"{have[c]}"')
            elif t in ('INTEGER', 'BIGINT'):
                # ids written as 10204.0 by some exports
                sel.append(f'CAST(CAST(NULLIF("{have[c]}", \'\') AS DOUBLE) AS {t})')
            elif t == 'TIMESTAMP':
                sel.append(f'TRY_CAST(NULLIF("{have[c]}", \'\') AS TIMESTAMP)')
            else:
                sel.append(f'CAST(NULLIF("{have[c]}", \'\') AS {t})')
        con.execute(f'INSERT INTO main.{table} SELECT {", ".join(sel)} FROM {reader}')


def init_results(con):
    con.execute('CREATE SCHEMA IF NOT EXISTS results')
    for name in RESULTS:
        con.execute(f'CREATE TABLE IF NOT EXISTS results.{name} ({RESULTS_DDL[name]})')


BEST_EVENT_ORDER = 'ORDER BY R.rule_count DESC,R.min_rule_id ASC, R.start_date ASC)'


def cohort_sql(expr, cid, tie_break=False):
    """circe-be's SQL for the definition, rendered and translated to DuckDB: a list of statements."""
    sql = build_cohort_query(expr, cdm_schema='main', vocabulary_schema='main', result_schema='results',
                             target_table='results.cohort', cohort_id=cid, generate_stats=True)
    if tie_break and expr.get('InclusionRules'):
        # circe-be ranks a person's events for the mode-1 ("best event") statistics by rule count,
        # lowest rule and start date only; events tied on all three are ranked as the database
        # likes. Break the tie on event_id, as Qiao does, so that the comparison is deterministic.
        assert BEST_EVENT_ORDER in sql, 'best-event ranking not found in the generated SQL'
        sql = sql.replace(BEST_EVENT_ORDER, BEST_EVENT_ORDER[:-1] + ', R.event_id ASC)')
    return [s for s in split_sql(translate(render(sql), 'duckdb')) if s.strip()]


def execute(con, expr, cid, statements):
    con.execute('DELETE FROM results.cohort_inclusion WHERE cohort_definition_id = ?', [cid])
    for i, rule in enumerate(expr.get('InclusionRules') or []):
        con.execute('INSERT INTO results.cohort_inclusion VALUES (?, NULL, ?, ?, ?)',
                    [cid, i, (rule.get('name') or '')[:255], (rule.get('description') or '')[:1000]])
    for stmt in statements:
        con.execute(stmt)


def drop_temp_tables(con):
    """What a failed script left behind (#Codesets, #qualified_events, ...)."""
    for (name,) in con.execute('select table_name from duckdb_tables() where temporary').fetchall():
        con.execute(f'DROP TABLE IF EXISTS temp."{name}"')


def collect(con, cid, rows):
    q = lambda sql: con.execute(sql, [cid]).fetchall()
    out = {}
    out['entries'], out['subjects'] = q(
        'select count(*), count(distinct subject_id) from results.cohort where cohort_definition_id = ?')[0]
    if rows:
        out['rows'] = [[s, a.isoformat(), b.isoformat()] for s, a, b in q(
            'select subject_id, cohort_start_date, cohort_end_date from results.cohort '
            'where cohort_definition_id = ? order by 1, 2, 3')]
    out['inclusion_stats'] = [list(r) for r in q(
        'select mode_id, rule_sequence, person_count, gain_count, person_total from results.cohort_inclusion_stats '
        'where cohort_definition_id = ? order by 1, 2')]
    out['inclusion_result'] = [list(r) for r in q(
        'select mode_id, inclusion_rule_mask, person_count from results.cohort_inclusion_result '
        'where cohort_definition_id = ? order by 1, 2')]
    out['summary'] = [list(r) for r in q(
        'select mode_id, base_count, final_count from results.cohort_summary_stats '
        'where cohort_definition_id = ? order by 1')]
    censor = q('select lost_count from results.cohort_censor_stats where cohort_definition_id = ?')
    out['censor_lost'] = censor[0][0] if censor else None
    return out


def main():
    ap = argparse.ArgumentParser()
    src = ap.add_mutually_exclusive_group(required=True)
    src.add_argument('--cdm')
    src.add_argument('--db')
    ap.add_argument('--save-db')
    ap.add_argument('--rows', action='store_true')
    ap.add_argument('--repeat', type=int, default=1)
    ap.add_argument('--threads', type=int)
    ap.add_argument('--tie-break', action='store_true',
                    help="rank tied 'best events' (mode 1 stats) by event_id, as Qiao does")
    ap.add_argument('defs', nargs='*')
    a = ap.parse_args()
    t0 = time.perf_counter()
    if a.cdm:
        con = duckdb.connect(a.save_db or ':memory:')
        load_csv_dir(con, a.cdm)
        if a.save_db:
            con.execute('CHECKPOINT')
            con.close()
            print(json.dumps({'load_ms': (time.perf_counter() - t0) * 1000, 'saved': a.save_db}), flush=True)
            return 0
    else:
        con = duckdb.connect(a.db)
    if a.threads:
        con.execute(f'SET threads = {int(a.threads)}')
    init_results(con)
    print(json.dumps({'load_ms': (time.perf_counter() - t0) * 1000}), flush=True)
    for cid, path in enumerate(a.defs, 1):
        rec = {'file': path, 'cohort_id': cid}
        try:
            with open(path, encoding='utf-8') as f:
                expr = json.load(f)
            t = time.perf_counter()
            statements = cohort_sql(expr, cid, a.tie_break)
            rec['sql_ms'] = (time.perf_counter() - t) * 1000
            runs = []
            for _ in range(max(1, a.repeat)):
                t = time.perf_counter()
                execute(con, expr, cid, statements)
                runs.append((time.perf_counter() - t) * 1000)
            rec['exec_ms'] = min(runs)
            rec['exec_runs_ms'] = runs
            rec['ms'] = rec['sql_ms'] + rec['exec_ms']
            rec.update(collect(con, cid, a.rows))
            rec['error'] = None
        except Exception as e:  # reported per definition; the others still run
            rec['error'] = f'{type(e).__name__}: {e}'.splitlines()[0][:2000]
            drop_temp_tables(con)
        print(json.dumps(rec), flush=True)
    return 0


if __name__ == '__main__':
    sys.exit(main())
