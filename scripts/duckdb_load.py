"""Baseline for scripts/bench-ingest.sh: load every CSV of an OMOP CDM folder into a DuckDB file.

Usage: python duckdb_load.py CDM_DIR OUT.duckdb
Only the tables Qiao ingests are loaded, with DuckDB's own type detection, all threads.
"""
import os
import sys

import duckdb

TABLES = """person observation_period visit_occurrence visit_detail condition_occurrence drug_exposure
procedure_occurrence device_exposure measurement observation death specimen condition_era drug_era
dose_era payer_plan_period location location_history care_site provider concept concept_ancestor
concept_relationship""".split()

src, out = sys.argv[1], sys.argv[2]
files = {os.path.splitext(f)[0].lower(): os.path.join(src, f) for f in os.listdir(src) if f.lower().endswith(".csv")}
con = duckdb.connect(out)
for t in TABLES:
    if t in files:
        con.execute(f"CREATE TABLE {t} AS SELECT * FROM read_csv('{files[t]}', header=true, sample_size=-1)")
con.execute("CHECKPOINT")
con.close()
