"""Loads OMOP CDM CSV folders into a Spark Connect server as Parquet tables (scripts/spark-test-cluster.sh).

    spark_load.py sc://HOST:PORT WAREHOUSE SCHEMA=CSV_DIR=DDL_FILE ...

For each SCHEMA: every CSV file of CSV_DIR whose name (any case) is one of the tables Qiao reads
(QIAO_TABLES, as qiao_cdm::schema::TABLES) becomes the Parquet files WAREHOUSE/SCHEMA/<table>, with the DDL's columns
and types (integer and bigint as BIGINT: GiBleed writes some ids as `10204.0`; date as DATE;
timestamp as TIMESTAMP; numeric and float as DOUBLE; the rest STRING); a DDL column that the CSV
lacks is NULL, a CSV column that the DDL lacks is an error. The files are written once (marker
WAREHOUSE/SCHEMA/_LOADED); every run registers the tables in the server's catalog.
"""

import os
import re
import sys

from pyspark.sql import SparkSession

# The tables Qiao's cohort engine reads: qiao_cdm::schema::TABLES (crates/cdm/src/schema.rs).
QIAO_TABLES = {
    "person", "observation_period", "visit_occurrence", "visit_detail", "condition_occurrence",
    "drug_exposure", "procedure_occurrence", "device_exposure", "measurement", "observation",
    "death", "specimen", "condition_era", "drug_era", "dose_era", "payer_plan_period", "location",
    "location_history", "care_site", "provider", "concept", "concept_ancestor",
    "concept_relationship",
}

TYPES = {
    "integer": "bigint",
    "bigint": "bigint",
    "date": "date",
    "timestamp": "timestamp",
    "numeric": "double",
    "float": "double",
}


def ddl_tables(path):
    """{table: [(column, spark type)]} from a CDM DDL file."""
    tables = {}
    current = None
    with open(path, encoding="utf-8") as f:
        for line in f:
            m = re.match(r"\s*CREATE TABLE @cdmDatabaseSchema\.(\w+)\s*\(", line, re.I)
            if m:
                current = tables.setdefault(m.group(1).lower(), [])
                continue
            m = re.match(r"\s*(\w+)\s+(\w+)", line)
            if current is not None and m and not line.lstrip().startswith("--"):
                kind = m.group(2).lower()
                current.append((m.group(1).lower(), TYPES.get(kind, "string")))
                if ");" in line:
                    current = None
    return tables


def column_expr(name, kind, present):
    if name not in present:
        return f"CAST(NULL AS {kind}) AS {name}"
    src = f"`{present[name]}`"
    if kind == "bigint":
        return f"CAST(CAST({src} AS DOUBLE) AS BIGINT) AS {name}"
    if kind == "date":
        return f"TO_DATE(SUBSTR({src}, 1, 10)) AS {name}"
    if kind == "timestamp":
        return f"TO_TIMESTAMP({src}) AS {name}"
    return f"CAST({src} AS {kind}) AS {name}"


def load(spark, warehouse, schema, csv_dir, ddl):
    tables = ddl_tables(ddl)
    target = os.path.join(warehouse, schema)
    marker = os.path.join(target, "_LOADED")
    files = {
        os.path.splitext(f)[0].lower(): os.path.join(csv_dir, f)
        for f in sorted(os.listdir(csv_dir))
        if f.lower().endswith(".csv")
        and os.path.splitext(f)[0].lower() in tables
        and os.path.splitext(f)[0].lower() in QIAO_TABLES
    }
    spark.sql(f"CREATE DATABASE IF NOT EXISTS {schema} LOCATION '{target}'")
    fresh = not os.path.exists(marker)
    for table, path in files.items():
        out = os.path.join(target, table)
        if fresh:
            raw = spark.read.option("header", True).option("inferSchema", False).csv(path)
            present = {c.lower(): c for c in raw.columns}
            extra = sorted(set(present) - {c for c, _ in tables[table]})
            if extra:
                sys.exit(f"{path}: columns not in the CDM DDL table {table}: {extra}")
            raw.createOrReplaceTempView("qiao_load_raw")
            cols = ", ".join(column_expr(c, k, present) for c, k in tables[table])
            spark.sql(f"SELECT {cols} FROM qiao_load_raw").write.mode("overwrite").parquet(out)
        spark.sql(f"CREATE TABLE IF NOT EXISTS {schema}.{table} USING parquet LOCATION '{out}'")
    if fresh:
        with open(marker, "w", encoding="utf-8") as f:
            f.write("\n".join(files) + "\n")
    print(f"spark_load: {schema}: {len(files)} tables ({'written' if fresh else 'registered'})")


def main():
    url, warehouse, *specs = sys.argv[1:]
    spark = SparkSession.builder.remote(url).getOrCreate()
    for spec in specs:
        schema, csv_dir, ddl = spec.split("=", 2)
        load(spark, warehouse, schema, csv_dir, ddl)
    spark.stop()


if __name__ == "__main__":
    main()
