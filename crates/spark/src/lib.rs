//! Runs Qiao cohort definitions on Apache Spark through Spark Connect: for a site whose OMOP CDM
//! lives in a warehouse that no single machine holds.
//!
//! The definition is parsed, validated and planned by `qiao-cohort` exactly as for the native
//! engine ([`qiao_cohort::exec::plan::compile`]); a run resolves the concept sets first (one
//! query, their concepts collected, while the observation periods are materialized), then
//! [`sql::compile_resolved`] turns the plan into Spark SQL over the CDM tables of a catalog
//! schema: steps materialized in waves (local checkpoints registered as temporary views of a
//! Connect session of the run's own, released when the run ends, which frees them; the nodes a
//! level at a time) and a result query; [`SparkCohorts::run`] sends them through the
//! official Apache Spark Connect Rust client and reads back each included event's (person, start,
//! end) and the inclusion masks per event and per person's best event — and, on request
//! ([`sql::Wants`]), each person's best-event mask and the subjects' `person` rows, what the
//! site's disclosure control keys its releases on (`qiao site serve --spark`).
//! The rest of Circe's tail (era collapse with pad, censor window) and the statistics are computed
//! here by the code the native evaluators run ([`qiao_cohort::exec::tail`],
//! [`qiao_cohort::exec::mode_stats`]), so rows, counts, inclusion and censor statistics are those
//! of `qiao cohort run` on the same data.
//!
//! Constructs the SQL compiler does not cover are refused by name ([`sql::Unsupported`]).

pub mod sql;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use arrow::array::{Array, AsArray};
use arrow::datatypes::{Date32Type, Int32Type, Int64Type};
use qiao_cohort::exec::{plan, tail};
use qiao_cohort::exec::{Cancel, CohortError, CohortSink, Evaluator, Prepared};
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
///
/// Each run has a server-side session of its own (its steps' temporary views and local
/// checkpoints are the session's), released when the run ends: runs of one `SparkCohorts` may go
/// on at once, and a run's checkpoints are freed after it.
pub struct SparkCohorts {
    session: SparkSession,
    schemas: Schemas,
}

/// A cohort subject's `person` row, as the site's demographics read it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PersonFact {
    pub person_id: i64,
    /// NULL in `person`: None.
    pub year_of_birth: Option<i32>,
    pub gender_concept_id: Option<i32>,
}

/// What [`SparkCohorts::generate_with`] returns.
#[derive(Debug, Clone, Default)]
pub struct Generated {
    /// In (subject_id, start) order.
    pub rows: Vec<CohortRow>,
    pub stats: CohortStats,
    pub timings: Timings,
    /// With [`sql::Wants::person_masks`]: (person_id, best-event mask), ascending.
    pub person_masks: Vec<(i64, u64)>,
    /// With [`sql::Wants::person_facts`]: the subjects found in `person`, ascending.
    pub person_facts: Vec<PersonFact>,
}

/// The size and extent of the CDM (what a site reports with each poll).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CdmExtent {
    /// Rows in `person`.
    pub persons: u64,
    /// The latest start or end date of the event tables present.
    pub last_date: Option<qiao_cdm::date::Day>,
    /// The first and last year of the observation periods' starts and ends.
    pub observation_years: Option<(i32, i32)>,
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
        Ok(SparkCohorts { session, schemas })
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
        let g = self.run_with(def, sql::Wants::default())?;
        Ok((g.rows, g.stats, g.timings))
    }

    /// As [`SparkCohorts::run`], with what `wants` asks for besides.
    pub fn run_with(
        &self,
        def: &CohortDefinition,
        wants: sql::Wants,
    ) -> Result<Generated, SparkError> {
        let t0 = Instant::now();
        let prepared = Prepared::unresolved(def).map_err(|e| match e {
            CohortError::Unsupported(u) => SparkError::Plan(u),
            e => SparkError::Result(e.to_string()),
        })?;
        let mut g = self.generate_with(&prepared, wants)?;
        // Planning here counts as compiling.
        g.timings.compile = t0
            .elapsed()
            .saturating_sub(g.timings.spark + g.timings.tail);
        Ok(g)
    }

    /// Generates a prepared definition (its plan and concept sets; concept sets are resolved in
    /// the warehouse's vocabulary): rows in (subject_id, start) order, statistics and timings.
    pub fn generate(
        &self,
        prepared: &Prepared,
    ) -> Result<(Vec<CohortRow>, CohortStats, Timings), SparkError> {
        let g = self.generate_with(prepared, sql::Wants::default())?;
        Ok((g.rows, g.stats, g.timings))
    }

    /// As [`SparkCohorts::generate`], with what `wants` asks for besides. With a cancellation
    /// token ([`Prepared::with_cancel`]) the run stops with [`CohortError::Cancelled`] soon after
    /// the token is cancelled: Spark's running operation is interrupted, no later step starts, and
    /// the run's session (its checkpoints) is released as after any run.
    pub fn generate_with(
        &self,
        prepared: &Prepared,
        wants: sql::Wants,
    ) -> Result<Generated, SparkError> {
        let p = prepared.plan();
        let job = Job {
            plan: p,
            concept_sets: prepared.concept_sets(),
            at: &self.schemas,
            wants,
        };
        // Compiled once without the concept sets' concepts first: a construct the compiler does
        // not cover is refused before anything is sent.
        let t0 = Instant::now();
        sql::compile_with(p, job.concept_sets, job.at, wants)?;
        let mut compile = t0.elapsed();
        let t1 = Instant::now();
        // A session of this run's own, released at its end whatever happened: its temporary views
        // and the checkpoints they name go with it.
        let session = self.session.new_session();
        let stop = prepared.cancel();
        let fetched = fetch_until(&session, &job, stop);
        let released = session.stop();
        if stop.is_some_and(Cancel::is_cancelled) {
            return Err(CohortError::Cancelled.into());
        }
        let f = fetched?;
        released.map_err(|e| SparkError::Query(format!("releasing the run's session: {e}")))?;
        let (batches, steps) = (f.batches, f.steps);
        compile += f.compile;
        let spark = t1.elapsed().saturating_sub(f.compile);
        let t2 = Instant::now();
        let mut r = Received::default();
        for b in &batches {
            r.batch(b)?;
        }
        r.check(wants)?;
        // Circe's tail from the ends on: each person's rows collapsed into eras, then the censor
        // window (`#final_cohort` counts the persons with a row before it).
        let Received {
            mut ends,
            masks,
            mut person_masks,
            mut person_facts,
            ..
        } = r;
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
        if wants.person_masks && person_masks.len() as u64 != stats.modes[1].base_count {
            return Err(SparkError::Result(format!(
                "{} person masks received, {} persons with a qualified event",
                person_masks.len(),
                stats.modes[1].base_count
            )));
        }
        person_masks.sort_unstable();
        person_facts.sort_unstable_by_key(|f| f.person_id);
        if let Some(w) = person_facts
            .windows(2)
            .find(|w| w[0].person_id == w[1].person_id)
        {
            return Err(SparkError::Result(format!(
                "person_id {} is in `person` more than once",
                w[0].person_id
            )));
        }
        // Spark sends the person rows of every person with an included event; the censor window
        // (in the tail above) may leave some of them without a cohort row: not subjects.
        let subjects: Vec<i64> = rows
            .chunk_by(|a, b| a.subject_id == b.subject_id)
            .map(|c| c[0].subject_id)
            .collect();
        person_facts.retain(|f| subjects.binary_search(&f.person_id).is_ok());
        let timings = Timings {
            compile,
            spark,
            steps,
            tail,
        };
        if tracing() {
            eprintln!(
                "spark run: {} steps; SQL compile {:.0} ms, steps {:.0} ms, result query {:.0} ms, tail {:.0} ms; {} included events",
                f.step_count,
                ms(compile),
                ms(steps),
                ms(spark.saturating_sub(steps)),
                ms(tail),
                rows.len()
            );
        }
        Ok(Generated {
            rows,
            stats,
            timings,
            person_masks,
            person_facts,
        })
    }

    /// The CDM's person count, latest event date and observation years (one query).
    pub fn extent(&self) -> Result<CdmExtent, SparkError> {
        let cdm = &self.schemas.cdm;
        let query_err = |e: spark_connect::SparkError| SparkError::Query(e.to_string());
        // The event tables of the schema that are present (a CDM may lack some).
        let present = tables_in(&self.session, cdm)?;
        let day = |e: &str| format!("CAST(DATEDIFF({e}, DATE'1970-01-01') AS BIGINT)");
        let mut dates = Vec::new();
        for t in qiao_cdm::TABLES {
            let Some(ev) = &t.event else { continue };
            if !present.contains(t.name) {
                continue;
            }
            let mut cols = vec![ev.start];
            cols.extend(ev.end);
            for c in cols {
                dates.push(format!("SELECT MAX({}) AS d FROM {cdm}.{}", day(c), t.name));
            }
        }
        if dates.is_empty() {
            dates.push("SELECT CAST(NULL AS BIGINT) AS d".into());
        }
        let (person, op) = (qiao_cdm::PERSON.name, qiao_cdm::OBSERVATION_PERIOD.name);
        let (op_start, op_end) = (sql::OP_START, sql::OP_END);
        let q = format!(
            "SELECT (SELECT COUNT(*) FROM {cdm}.{person}) AS persons, \
             (SELECT MAX(d) FROM ({})) AS last_day, \
             (SELECT MIN(y) FROM op_years) AS y0, (SELECT MAX(y) FROM op_years) AS y1",
            dates.join(" UNION ALL ")
        );
        let q = format!(
            "WITH op_years AS (SELECT CAST(YEAR({op_start}) AS BIGINT) AS y FROM {cdm}.{op} \
             UNION ALL SELECT CAST(YEAR({op_end}) AS BIGINT) FROM {cdm}.{op})\n{q}"
        );
        let batches = self
            .session
            .sql(&q)
            .map_err(query_err)?
            .collect_record_batches()
            .map_err(query_err)?;
        let b = batches
            .iter()
            .find(|b| b.num_rows() > 0)
            .ok_or_else(|| SparkError::Result("the extent query returned no row".into()))?;
        let get = |name: &str| -> Result<Option<i64>, SparkError> {
            let c = b
                .column_by_name(name)
                .and_then(|c| c.as_primitive_opt::<Int64Type>())
                .ok_or_else(|| SparkError::Result(format!("{name} is not a bigint")))?;
            Ok((!c.is_null(0)).then(|| c.value(0)))
        };
        let years = match (get("y0")?, get("y1")?) {
            (Some(a), Some(b)) => Some((a as i32, b as i32)),
            _ => None,
        };
        Ok(CdmExtent {
            persons: get("persons")?.unwrap_or(0).max(0) as u64,
            last_date: get("last_day")?.map(|d| d as qiao_cdm::date::Day),
            observation_years: years,
        })
    }
}

/// The tables (and views) of catalog schema `schema`, lower case; a session's temporary views
/// are not the schema's.
fn tables_in(
    session: &SparkSession,
    schema: &str,
) -> Result<std::collections::BTreeSet<String>, SparkError> {
    let query_err = |e: spark_connect::SparkError| SparkError::Query(e.to_string());
    let listed = session
        .sql(&format!("SHOW TABLES IN {schema}"))
        .map_err(query_err)?
        .collect_record_batches()
        .map_err(query_err)?;
    let mut present = std::collections::BTreeSet::new();
    for b in &listed {
        let names = b
            .column_by_name("tableName")
            .and_then(|c| c.as_string_opt::<i32>())
            .ok_or_else(|| SparkError::Result("SHOW TABLES: no tableName".into()))?;
        let temporary = b
            .column_by_name("isTemporary")
            .and_then(|c| c.as_boolean_opt())
            .ok_or_else(|| SparkError::Result("SHOW TABLES: no isTemporary".into()))?;
        for k in 0..b.num_rows() {
            let is_temporary = temporary.is_valid(k) && temporary.value(k);
            if names.is_valid(k) && !is_temporary {
                present.insert(names.value(k).to_ascii_lowercase());
            }
        }
    }
    Ok(present)
}

/// `QIAO_SPARK_TRACE` set: each step's time and each run's breakdown on stderr
/// (scripts/bench-spark.sh reads them).
fn tracing() -> bool {
    std::env::var_os("QIAO_SPARK_TRACE").is_some()
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// How often a run's watcher looks at its cancellation token.
const CANCEL_POLL: Duration = Duration::from_millis(50);

/// [`fetch`], stopped once `cancel` is cancelled: no step starts after it, and a watcher thread
/// interrupts the session's running operation (Spark Connect's InterruptAll: Spark cancels the
/// operation's jobs), again at each poll until the fetch returns, so an operation started just
/// as the token was cancelled is interrupted too.
fn fetch_until(
    session: &SparkSession,
    job: &Job,
    cancel: Option<&Cancel>,
) -> Result<Fetched, SparkError> {
    let Some(cancel) = cancel else {
        return fetch(session, job, None);
    };
    let done = AtomicBool::new(false);
    std::thread::scope(|scope| {
        scope.spawn(|| {
            while !done.load(Ordering::Acquire) {
                if cancel.is_cancelled() {
                    // An error here (the server gone) shows in the fetch's own result.
                    let _ = session.interrupt_all();
                }
                std::thread::sleep(CANCEL_POLL);
            }
        });
        let r = fetch(session, job, Some(cancel));
        done.store(true, Ordering::Release);
        r
    })
}

/// What one run compiles.
struct Job<'a> {
    plan: &'a plan::Plan,
    concept_sets: &'a [qiao_cohort::model::ConceptSet],
    at: &'a Schemas,
    wants: sql::Wants,
}

/// What [`fetch`] returns.
struct Fetched {
    /// The result query's batches.
    batches: Vec<arrow::record_batch::RecordBatch>,
    /// The wall time of the concept sets' resolution and of the steps.
    steps: Duration,
    /// Materialized steps (the concept sets' resolution included).
    step_count: usize,
    /// Compiling the SQL once the concept sets are resolved.
    compile: Duration,
}

/// Resolves the concept sets (their concepts collected, while the observation periods are
/// materialized), compiles the rest with them ([`sql::compile_resolved`]), materializes its steps
/// in `session` (none after `cancel` is cancelled) and collects the result query.
fn fetch(
    session: &SparkSession,
    job: &Job,
    cancel: Option<&Cancel>,
) -> Result<Fetched, SparkError> {
    let query_err = |e: spark_connect::SparkError| SparkError::Query(e.to_string());
    let t1 = Instant::now();
    let trace = tracing();
    let stopped = || cancel.is_some_and(Cancel::is_cancelled);
    if stopped() {
        return Err(CohortError::Cancelled.into());
    }
    // One step: materialized as a local checkpoint of the session, registered under its name.
    let materialize = |step: &sql::Step| -> Result<(), SparkError> {
        let t = Instant::now();
        let df = session.sql(&step.query).map_err(query_err)?;
        let df = df.local_checkpoint().map_err(query_err)?;
        df.create_or_replace_temp_view(&step.name)
            .map_err(query_err)?;
        if trace {
            eprintln!("spark step {}: {:.0} ms", step.name, ms(t.elapsed()));
        }
        Ok(())
    };
    // The observation periods do not depend on the concept sets: materialized meanwhile.
    let unresolved = sql::compile_with(job.plan, job.concept_sets, job.at, job.wants)?;
    let op = unresolved
        .steps
        .iter()
        .find(|s| s.name == sql::OP_STEP)
        .ok_or_else(|| SparkError::Result("no observation period step".into()))?;
    let (resolved, op_done) = std::thread::scope(|scope| {
        let op_done = scope.spawn(|| materialize(op));
        let t = Instant::now();
        // A CDM without a table the criteria read is refused as the native engine refuses it
        // (`Plan::check_tables`), not sent to fail in Spark's analyzer.
        let resolved = tables_in(session, &job.at.cdm)
            .and_then(|present| {
                job.plan
                    .check_tables(|t| present.contains(t))
                    .map_err(SparkError::Plan)
            })
            .and_then(|()| {
                session
                    .sql(&sql::codesets_query(job.concept_sets, job.at))
                    .map_err(query_err)
            })
            .and_then(|df| df.collect_record_batches().map_err(query_err))
            .and_then(|b| resolved_of(&b));
        if trace {
            eprintln!("spark step codesets (collected): {:.0} ms", ms(t.elapsed()));
        }
        let op_done = op_done
            .join()
            .unwrap_or_else(|_| Err(SparkError::Result("a step's thread panicked".into())));
        (resolved, op_done)
    });
    let resolved = resolved?;
    op_done?;
    let t = Instant::now();
    let query = sql::compile_resolved(
        job.plan,
        job.concept_sets,
        job.at,
        job.wants,
        Some(&resolved),
    )?;
    let compile = t.elapsed();
    // The concept sets' resolution and the observation periods.
    let mut step_count = 2;
    for wave in query.waves() {
        // The observation periods are materialized already.
        let wave: Vec<&sql::Step> = wave
            .into_iter()
            .filter(|s| s.name != sql::OP_STEP)
            .collect();
        if wave.is_empty() {
            continue;
        }
        step_count += wave.len();
        if stopped() {
            return Err(CohortError::Cancelled.into());
        }
        let t = Instant::now();
        // The steps of a wave at once (Spark Connect runs a session's operations concurrently).
        let materialize = &materialize;
        let results: Vec<Result<(), SparkError>> = std::thread::scope(|scope| {
            let running: Vec<_> = wave[1..]
                .iter()
                .map(|&step| scope.spawn(move || materialize(step)))
                .collect();
            let mut out = vec![materialize(wave[0])];
            out.extend(running.into_iter().map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err(SparkError::Result("a step's thread panicked".into())))
            }));
            out
        });
        results.into_iter().collect::<Result<Vec<()>, _>>()?;
        if trace && wave.len() > 1 {
            eprintln!(
                "spark wave of {} steps: {:.0} ms",
                wave.len(),
                ms(t.elapsed())
            );
        }
    }
    let steps = t1.elapsed().saturating_sub(compile);
    if stopped() {
        return Err(CohortError::Cancelled.into());
    }
    let df = session.sql(&query.result).map_err(query_err)?;
    Ok(Fetched {
        batches: df.collect_record_batches().map_err(query_err)?,
        steps,
        step_count,
        compile,
    })
}

/// The concept sets' concepts from the rows of [`sql::codesets_query`].
fn resolved_of(batches: &[arrow::record_batch::RecordBatch]) -> Result<sql::Resolved, SparkError> {
    let mut r = sql::Resolved::default();
    for b in batches {
        let set = b
            .column_by_name("codeset_id")
            .and_then(|c| c.as_primitive_opt::<Int32Type>())
            .ok_or_else(|| SparkError::Result("codeset_id is not an int".into()))?;
        let concept = b
            .column_by_name("concept_id")
            .and_then(|c| c.as_primitive_opt::<Int64Type>())
            .ok_or_else(|| SparkError::Result("concept_id is not a bigint".into()))?;
        for k in 0..b.num_rows() {
            if set.is_null(k) || concept.is_null(k) {
                return Err(SparkError::Result("a concept set row with NULLs".into()));
            }
            r.concepts
                .entry(set.value(k))
                .or_default()
                .push(concept.value(k));
        }
    }
    for list in r.concepts.values_mut() {
        list.sort_unstable();
        list.dedup();
    }
    Ok(r)
}

/// The result rows of one run, read batch by batch.
#[derive(Default)]
struct Received {
    /// Each included event's (person, start, end), before the era collapse.
    ends: Vec<(i64, i64, i64)>,
    masks: [BTreeMap<u64, u64>; 2],
    /// The count of `ends` rows sent (the last row of the result: UNION ALL keeps its branches in
    /// order): without it, or with another count, the stream ended early and the result is
    /// refused, not used.
    end_count: Option<u64>,
    person_masks: Vec<(i64, u64)>,
    person_facts: Vec<PersonFact>,
    fact_count: Option<u64>,
}

impl Received {
    fn batch(&mut self, b: &arrow::record_batch::RecordBatch) -> Result<(), SparkError> {
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
        let opt = |a: &arrow::array::PrimitiveArray<Int64Type>, r: usize| {
            (!a.is_null(r)).then(|| a.value(r))
        };
        for r in 0..b.num_rows() {
            match kind.value(r) {
                sql::KIND_ROW => {
                    if person.is_null(r) || s.is_null(r) || e.is_null(r) {
                        return Err(SparkError::Result("an included event with NULLs".into()));
                    }
                    self.ends
                        .push((person.value(r), s.value(r) as i64, e.value(r) as i64));
                }
                k @ (sql::KIND_MASK_EVENTS | sql::KIND_MASK_PERSONS) => {
                    let mode = (k - sql::KIND_MASK_EVENTS) as usize;
                    *self.masks[mode].entry(mask.value(r) as u64).or_default() += n.value(r) as u64;
                }
                sql::KIND_END_COUNT => {
                    if self.end_count.replace(n.value(r) as u64).is_some() {
                        return Err(SparkError::Result("two end counts".into()));
                    }
                }
                sql::KIND_PERSON_MASK => {
                    self.person_masks
                        .push((person.value(r), mask.value(r) as u64));
                }
                sql::KIND_PERSON_FACT => self.person_facts.push(PersonFact {
                    person_id: person.value(r),
                    year_of_birth: opt(n, r).map(|y| y as i32),
                    gender_concept_id: opt(mask, r).map(|g| g as i32),
                }),
                sql::KIND_FACT_COUNT => {
                    if self.fact_count.replace(n.value(r) as u64).is_some() {
                        return Err(SparkError::Result("two person fact counts".into()));
                    }
                }
                k => return Err(SparkError::Result(format!("unknown kind {k}"))),
            }
        }
        Ok(())
    }

    /// Whether everything sent arrived.
    fn check(&self, wants: sql::Wants) -> Result<(), SparkError> {
        if self.end_count != Some(self.ends.len() as u64) {
            return Err(SparkError::Result(format!(
                "{} included events received, {:?} sent: the result stream ended early (a server stream limit?)",
                self.ends.len(),
                self.end_count
            )));
        }
        if wants.person_facts && self.fact_count != Some(self.person_facts.len() as u64) {
            return Err(SparkError::Result(format!(
                "{} person facts received, {:?} sent",
                self.person_facts.len(),
                self.fact_count
            )));
        }
        Ok(())
    }
}

impl Evaluator for SparkCohorts {
    type Error = SparkError;

    /// Evaluates on Spark; per-person best-event masks (persons ascending) when the sink wants
    /// them.
    fn evaluate(
        &self,
        prepared: &Prepared,
        sink: &mut dyn CohortSink,
    ) -> Result<CohortStats, SparkError> {
        let wants = sql::Wants {
            person_masks: sink.wants_person_masks(),
            person_facts: false,
        };
        let g = self.generate_with(prepared, wants)?;
        for &(person, mask) in &g.person_masks {
            sink.person_mask(person, mask)?;
        }
        sink.push_all(&g.rows)?;
        Ok(g.stats)
    }
}
