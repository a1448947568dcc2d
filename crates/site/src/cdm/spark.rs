//! A CDM in a Spark catalog, its cohorts computed by Spark ([`qiao_spark`]): `qiao site serve
//! --spark sc://HOST:PORT --schema S [--vocab-schema V]`.
//!
//! Each job's definition runs as one Spark run (its own Connect session, released after it) that
//! returns the cohort rows, the inclusion masks, each person's best-event mask and the subjects'
//! year of birth and gender — what [`crate::exec`] releases, computed by the same code as on a
//! native store. The person count and latest date (the poll status) and the observation years (the
//! demographics' year range) are read once, at start-up.
//!
//! The site's time limit interrupts a running Spark job (its Connect operation is interrupted, no
//! later step starts) and the job fails as timed out, as on a store. The analyses that read a store
//! row by row (characterization, incidence) are refused by name.

use qiao_analysis::network::{Cdm, CohortRun, PersonFact};
use qiao_cohort::exec::{Cancel, Prepared};
use qiao_spark::{sql::Wants, Schemas, SparkCohorts, SparkError};
use qiao_store::{Meta, Store};

use super::{ExecError, SiteCdm};

/// Where the CDM is: the Spark Connect URL and the catalog schemas.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SparkTarget {
    /// `sc://HOST:PORT`.
    pub url: String,
    /// The schema of the clinical tables.
    pub schema: String,
    /// The schema of the vocabulary tables (default: `schema`).
    pub vocab_schema: Option<String>,
}

/// A site's CDM on Spark.
pub struct SparkCdm {
    spark: SparkCohorts,
    meta: Meta,
    observation_years: Option<(i32, i32)>,
}

impl SparkCdm {
    /// Connects and reads the CDM's extent. Blocking: call it outside an async context.
    pub fn connect(t: &SparkTarget) -> anyhow::Result<SparkCdm> {
        let schemas = Schemas {
            cdm: t.schema.clone(),
            vocab: t.vocab_schema.clone().unwrap_or_else(|| t.schema.clone()),
        };
        let spark = SparkCohorts::connect(&t.url, schemas)?;
        let extent = spark.extent()?;
        let meta = Meta {
            persons: extent.persons,
            last_date: extent.last_date.map(qiao_cdm::date::format),
            ..Meta::default()
        };
        Ok(SparkCdm {
            spark,
            meta,
            observation_years: extent.observation_years,
        })
    }
}

fn exec_error(e: SparkError) -> ExecError {
    match e {
        SparkError::Unsupported(u) => ExecError::Unsupported(u.to_string()),
        SparkError::Plan(u) => ExecError::Unsupported(u.to_string()),
        // Invalid, unsupported, the sink's error or cancelled (the time limit): as on a store.
        SparkError::Cohort(e) => super::map_cohort_error(e),
        e => ExecError::Internal(e.to_string()),
    }
}

impl Cdm for SparkCdm {
    fn store(&self) -> Option<&Store> {
        None
    }

    fn observation_years(&self) -> Option<(i32, i32)> {
        self.observation_years
    }

    fn person(&self, run: &CohortRun, person_id: i64) -> Option<PersonFact> {
        let facts = run.person_facts.as_deref()?;
        let i = facts.binary_search_by_key(&person_id, |f| f.0).ok()?;
        Some(facts[i].1)
    }
}

impl SiteCdm for SparkCdm {
    fn meta(&self) -> &Meta {
        &self.meta
    }

    fn run(
        &self,
        definition: &serde_json::Value,
        cancel: Option<Cancel>,
    ) -> Result<CohortRun, ExecError> {
        let def = qiao_cohort::parse(&definition.to_string())
            .map_err(|e| ExecError::Invalid(e.to_string()))?;
        let mut prepared = Prepared::unresolved(&def).map_err(|e| match e {
            qiao_cohort::CohortError::Model(m) => ExecError::Invalid(m.to_string()),
            e => ExecError::Unsupported(e.to_string()),
        })?;
        if let Some(c) = cancel {
            prepared = prepared.with_cancel(c);
        }
        let wants = Wants {
            person_masks: true,
            person_facts: true,
        };
        let g = self
            .spark
            .generate_with(&prepared, wants)
            .map_err(exec_error)?;
        let facts = g
            .person_facts
            .iter()
            .map(|f| {
                (
                    f.person_id,
                    PersonFact {
                        year_of_birth: f.year_of_birth,
                        gender_concept_id: f.gender_concept_id,
                    },
                )
            })
            .collect();
        Ok(CohortRun {
            rows: g.rows,
            stats: g.stats,
            person_masks: g.person_masks,
            person_facts: Some(facts),
        })
    }
}
