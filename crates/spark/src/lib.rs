//! Runs Qiao cohort definitions on Apache Spark through Spark Connect: for a site whose OMOP CDM
//! lives in a warehouse that no single machine holds.
//!
//! The definition is parsed, validated and planned by `qiao-cohort` exactly as for the native
//! engine ([`qiao_cohort::exec::plan::compile`]); [`sql::compile`] turns the plan into Spark SQL
//! over the CDM tables of a catalog schema: steps materialized one by one (local checkpoints
//! registered as temporary views of the session) and a result query; [`SparkCohorts::run`] sends
//! them through the official Apache Spark Connect Rust client and reads back each included
//! event's (person, start, end) and the inclusion masks per event and per person's best event.
//! The rest of Circe's tail (era collapse with pad, censor window) and the statistics are computed
//! here by the code the native evaluators run ([`qiao_cohort::exec::tail`],
//! [`qiao_cohort::exec::mode_stats`]), so rows, counts, inclusion and censor statistics are those
//! of `qiao cohort run` on the same data.
//!
//! Constructs the SQL compiler does not cover are refused by name ([`sql::Unsupported`]).

pub mod sql;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use arrow::array::{Array, AsArray};
use arrow::datatypes::{Date32Type, Int32Type, Int64Type};
use qiao_cohort::exec::{plan, tail};
use qiao_cohort::exec::{CohortError, CohortSink, Evaluator, Prepared};
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
    #[error("{0}")]
    Cohort(#[from] CohortError),
}

/// A connection to a Spark Connect server and the schemas holding the CDM.
pub struct SparkCohorts {
    session: SparkSession,
    schemas: Schemas,
    /// Runs of one session take turns: their steps' temporary views share the session's names.
    turn: std::sync::Mutex<()>,
}

/// Where the time of one run went.
#[derive(Debug, Clone, Copy, Default)]
pub struct Timings {
    /// Planning and compiling to SQL on this side.
    pub compile: Duration,
    /// Sending the queries, Spark's planning and execution, and reading the result (steps
    /// included).
    pub spark: Duration,
    /// Of which materializing the steps.
    pub steps: Duration,
    /// The era collapse and censor window on this side.
    pub tail: Duration,
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
        Ok(SparkCohorts {
            session,
            schemas,
            turn: std::sync::Mutex::new(()),
        })
    }

    /// The Spark SQL that [`SparkCohorts::run`] sends for `def` (steps as temporary views).
    pub fn sql(&self, def: &CohortDefinition) -> Result<String, SparkError> {
        let p = plan::compile(&def.expression).map_err(SparkError::Plan)?;
        Ok(sql::compile(&p, &def.expression.concept_sets, &self.schemas)?.text())
    }

    /// Generates the cohort: rows in (subject_id, start) order and Circe's statistics.
    pub fn run(
        &self,
        def: &CohortDefinition,
    ) -> Result<(Vec<CohortRow>, CohortStats, Timings), SparkError> {
        let t0 = Instant::now();
        let prepared = Prepared::unresolved(def).map_err(|e| match e {
            CohortError::Unsupported(u) => SparkError::Plan(u),
            e => SparkError::Result(e.to_string()),
        })?;
        let (rows, stats, mut timings) = self.generate(&prepared)?;
        // Planning here counts as compiling.
        timings.compile = t0.elapsed().saturating_sub(timings.spark + timings.tail);
        Ok((rows, stats, timings))
    }

    /// Generates a prepared definition (its plan and concept sets; concept sets are resolved in
    /// the warehouse's vocabulary): rows in (subject_id, start) order, statistics and timings.
    pub fn generate(
        &self,
        prepared: &Prepared,
    ) -> Result<(Vec<CohortRow>, CohortStats, Timings), SparkError> {
        let t0 = Instant::now();
        let p = prepared.plan();
        let query = sql::compile(p, prepared.concept_sets(), &self.schemas)?;
        let compile = t0.elapsed();
        let query_err = |e: spark_connect::SparkError| SparkError::Query(e.to_string());
        let t1 = Instant::now();
        let batches = {
            let _turn = self.turn.lock().unwrap_or_else(|e| e.into_inner());
            let trace = std::env::var_os("QIAO_SPARK_TRACE").is_some();
            for (name, q) in &query.steps {
                let t = Instant::now();
                let df = self.session.sql(q).map_err(query_err)?;
                let df = df.local_checkpoint().map_err(query_err)?;
                df.create_or_replace_temp_view(name).map_err(query_err)?;
                if trace {
                    eprintln!(
                        "spark step {name}: {:.0} ms",
                        t.elapsed().as_secs_f64() * 1e3
                    );
                }
            }
            let steps = t1.elapsed();
            let df = self.session.sql(&query.result).map_err(query_err)?;
            (df.collect_record_batches().map_err(query_err)?, steps)
        };
        let (batches, steps) = batches;
        let spark = t1.elapsed();
        let t2 = Instant::now();
        // Each included event's (person, start, end), before the era collapse.
        let mut ends: Vec<(i64, i64, i64)> = Vec::new();
        let mut masks: [BTreeMap<u64, u64>; 2] = Default::default();
        // The count of those rows is the last row of the result (UNION ALL keeps its branches in
        // order): without it, or with another count, the stream ended early and the result is
        // refused, not used.
        let mut end_count: Option<u64> = None;
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
                            return Err(SparkError::Result("an included event with NULLs".into()));
                        }
                        ends.push((person.value(r), s.value(r) as i64, e.value(r) as i64));
                    }
                    k @ (sql::KIND_MASK_EVENTS | sql::KIND_MASK_PERSONS) => {
                        let mode = (k - sql::KIND_MASK_EVENTS) as usize;
                        *masks[mode].entry(mask.value(r) as u64).or_default() += n.value(r) as u64;
                    }
                    sql::KIND_END_COUNT => {
                        if end_count.replace(n.value(r) as u64).is_some() {
                            return Err(SparkError::Result("two end counts".into()));
                        }
                    }
                    k => return Err(SparkError::Result(format!("unknown kind {k}"))),
                }
            }
        }
        if end_count != Some(ends.len() as u64) {
            return Err(SparkError::Result(format!(
                "{} included events received, {end_count:?} sent: the result stream ended early (a server stream limit?)",
                ends.len()
            )));
        }
        // Circe's tail from the ends on: each person's rows collapsed into eras, then the censor
        // window (`#final_cohort` counts the persons with a row before it).
        ends.sort_unstable();
        let mut rows = Vec::new();
        let mut in_final = 0u64;
        let (mut buf, mut merged) = (Vec::new(), Vec::new());
        for person in ends.chunk_by(|a, b| a.0 == b.0) {
            let id = person[0].0;
            buf.clear();
            buf.extend(person.iter().map(|&(_, s, e)| (s, e)));
            in_final += tail::collapse(p, &mut buf, &mut merged, |start, end| {
                rows.push(CohortRow {
                    subject_id: id,
                    start,
                    end,
                })
            }) as u64;
        }
        let tail = t2.elapsed();
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
        Ok((
            rows,
            stats,
            Timings {
                compile,
                spark,
                steps,
                tail,
            },
        ))
    }
}

impl Evaluator for SparkCohorts {
    type Error = SparkError;

    /// Evaluates on Spark. Per-person inclusion masks are not returned by this backend: a sink
    /// that wants them is refused.
    fn evaluate(
        &self,
        prepared: &Prepared,
        sink: &mut dyn CohortSink,
    ) -> Result<CohortStats, SparkError> {
        if sink.wants_person_masks() {
            return Err(sql::Unsupported("per-person inclusion masks".into()).into());
        }
        let (rows, stats, _) = self.generate(prepared)?;
        sink.push_all(&rows)?;
        Ok(stats)
    }
}
