//! Runs Qiao cohort definitions on Apache Spark through Spark Connect: for a site whose OMOP CDM
//! lives in a warehouse that no single machine holds.
//!
//! The definition is parsed, validated and planned by `qiao-cohort` exactly as for the native
//! engine ([`qiao_cohort::exec::plan::compile`]); [`sql::compile`] turns the plan into one Spark
//! SQL query over the CDM tables of a catalog schema; [`SparkCohorts::run`] sends it through the
//! official Apache Spark Connect Rust client and reads back the cohort rows and the facts Circe's
//! statistics are computed from (inclusion masks per event and per person's best event, persons
//! before the censor window). The statistics are then derived by the same function as the native
//! run's ([`qiao_cohort::exec::mode_stats`]), so rows, counts, inclusion and censor statistics are
//! those of `qiao cohort run` on the same data.
//!
//! Constructs the SQL compiler does not cover are refused by name ([`sql::Unsupported`]).

pub mod sql;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use arrow::array::{Array, AsArray};
use arrow::datatypes::{Date32Type, Int32Type, Int64Type};
use qiao_cohort::exec::plan;
use qiao_cohort::{CohortDefinition, CohortRow, CohortStats};
use spark_connect::{SparkSession, SparkSessionBuilder};

pub use sql::Schemas;

#[derive(Debug, thiserror::Error)]
pub enum SparkError {
    #[error("{0}")]
    Unsupported(#[from] sql::Unsupported),
    #[error("unsupported: {0}")]
    Plan(plan::Unsupported),
    #[error("Spark Connect at {url}: {msg}")]
    Connect { url: String, msg: String },
    #[error("Spark query failed: {0}")]
    Query(String),
    #[error("unexpected result from Spark: {0}")]
    Result(String),
}

/// A connection to a Spark Connect server and the schemas holding the CDM.
pub struct SparkCohorts {
    session: SparkSession,
    schemas: Schemas,
}

/// Where the time of one run went.
#[derive(Debug, Clone, Copy, Default)]
pub struct Timings {
    /// Planning and compiling to SQL on this side.
    pub compile: Duration,
    /// Sending the query, Spark's planning and execution, and reading the result.
    pub spark: Duration,
}

impl SparkCohorts {
    /// Connects to `url` (`sc://host:port`).
    pub fn connect(url: &str, schemas: Schemas) -> Result<SparkCohorts, SparkError> {
        for s in [&schemas.cdm, &schemas.vocab] {
            if !sql::is_identifier(s) {
                return Err(
                    sql::Unsupported(format!("schema name {s:?} is not an identifier")).into(),
                );
            }
        }
        let session = SparkSessionBuilder::new()
            .remote(url)
            .get_or_create()
            .map_err(|e| SparkError::Connect {
                url: url.into(),
                msg: e.to_string(),
            })?;
        Ok(SparkCohorts { session, schemas })
    }

    /// The Spark SQL that [`SparkCohorts::run`] sends for `def`.
    pub fn sql(&self, def: &CohortDefinition) -> Result<String, SparkError> {
        let p = plan::compile(&def.expression).map_err(SparkError::Plan)?;
        Ok(sql::compile(&p, &def.expression, &self.schemas)?)
    }

    /// Generates the cohort: rows in (subject_id, start) order and Circe's statistics.
    pub fn run(
        &self,
        def: &CohortDefinition,
    ) -> Result<(Vec<CohortRow>, CohortStats, Timings), SparkError> {
        let t0 = Instant::now();
        let p = plan::compile(&def.expression).map_err(SparkError::Plan)?;
        let query = sql::compile(&p, &def.expression, &self.schemas)?;
        let compile = t0.elapsed();
        let t1 = Instant::now();
        let df = self
            .session
            .sql(&query)
            .map_err(|e| SparkError::Query(e.to_string()))?;
        let batches = df
            .collect_record_batches()
            .map_err(|e| SparkError::Query(e.to_string()))?;
        let spark = t1.elapsed();
        let mut rows = Vec::new();
        let mut masks: [BTreeMap<u64, u64>; 2] = Default::default();
        // The in-final count is the last row of the result (UNION ALL keeps its branches in
        // order): without it the stream ended early, and the result is refused, not used.
        let mut in_final: Option<u64> = None;
        for b in &batches {
            let col = |name: &str| {
                b.column_by_name(name)
                    .ok_or_else(|| SparkError::Result(format!("no column {name}")))
            };
            let kind = col("kind")?
                .as_primitive_opt::<Int32Type>()
                .ok_or_else(|| SparkError::Result("kind is not an int".into()))?;
            let person = col("person_id")?
                .as_primitive_opt::<Int64Type>()
                .ok_or_else(|| SparkError::Result("person_id is not a bigint".into()))?;
            let s = col("s")?
                .as_primitive_opt::<Date32Type>()
                .ok_or_else(|| SparkError::Result("s is not a date".into()))?;
            let e = col("e")?
                .as_primitive_opt::<Date32Type>()
                .ok_or_else(|| SparkError::Result("e is not a date".into()))?;
            let mask = col("mask")?
                .as_primitive_opt::<Int64Type>()
                .ok_or_else(|| SparkError::Result("mask is not a bigint".into()))?;
            let n = col("n")?
                .as_primitive_opt::<Int64Type>()
                .ok_or_else(|| SparkError::Result("n is not a bigint".into()))?;
            for r in 0..b.num_rows() {
                match kind.value(r) {
                    sql::KIND_ROW => {
                        if person.is_null(r) || s.is_null(r) || e.is_null(r) {
                            return Err(SparkError::Result("a cohort row with NULLs".into()));
                        }
                        rows.push(CohortRow {
                            subject_id: person.value(r),
                            start: s.value(r),
                            end: e.value(r),
                        });
                    }
                    k @ (sql::KIND_MASK_EVENTS | sql::KIND_MASK_PERSONS) => {
                        let mode = (k - sql::KIND_MASK_EVENTS) as usize;
                        *masks[mode].entry(mask.value(r) as u64).or_default() += n.value(r) as u64;
                    }
                    sql::KIND_IN_FINAL => {
                        if in_final.replace(n.value(r) as u64).is_some() {
                            return Err(SparkError::Result("two in-final counts".into()));
                        }
                    }
                    k => return Err(SparkError::Result(format!("unknown kind {k}"))),
                }
            }
        }
        let in_final = in_final.ok_or_else(|| {
            SparkError::Result(
                "the result stream ended before its last row (a server stream limit?)".into(),
            )
        })?;
        rows.sort_unstable();
        let mut stats = CohortStats {
            rule_names: p.rules.iter().map(|(n, _)| n.clone()).collect(),
            entries: rows.len() as u64,
            ..Default::default()
        };
        stats.subjects = rows.chunk_by(|a, b| a.subject_id == b.subject_id).count() as u64;
        let [m0, m1] = masks;
        stats.modes = [
            qiao_cohort::exec::mode_stats(m0, p.rules.len()),
            qiao_cohort::exec::mode_stats(m1, p.rules.len()),
        ];
        stats.candidates = stats.modes[1].base_count;
        if p.censor_start.is_some() || p.censor_end.is_some() {
            stats.censor_lost = Some(in_final.saturating_sub(stats.subjects));
        }
        Ok((rows, stats, Timings { compile, spark }))
    }
}
