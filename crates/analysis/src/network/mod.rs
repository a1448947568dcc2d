//! Analyses across the network: what a site releases of an analysis, and how the hub pools it.
//!
//! Every network analysis implements [`Analysis`]:
//!
//! 1. a **spec** (a serde type in `qiao-protocol`, carried by the signed job as a
//!    [`qiao_protocol::QueryType`] variant; checked with JSON-path errors);
//! 2. its **statistics**, each declared with its sensitivity ([`Statistic`]) before any data is
//!    seen: the site's [`Discloser::admit`] charges their ρ to the user's, organization's and
//!    site's budgets, so whether a job runs never depends on a true count;
//! 3. the **computation and release** at a site over the store and the cohort engine's rows,
//!    every number through the one mechanism ([`Discloser::release_value`]), keyed on the
//!    question (query and definitions), the statistic and the cohort's person set;
//! 4. the **pooling** at the hub: sums of released values only ([`qiao_disclosure::network_total`]),
//!    and the derived means, rates and intervals computed from those sums.
//!
//! Implemented here: the feasibility queries [`cohort_count::CohortCount`] (Circe's attrition
//! funnel) and [`demographics::Demographics`] (age × gender × index year),
//! [`characterization::Characterization`] (FeatureExtraction), [`incidence::Incidence`]
//! (CohortIncidence), [`survival::Survival`] (Kaplan–Meier and log-rank from risk-set tables
//! on a grid) and [`recruitment::Recruitment`] (the monthly counts of the candidates a site's
//! investigators marked on the job's cohort's pre-screening list). `qiao-site` runs every one of them through one generic function and the hub pools
//! them with [`Analysis::pool`]; see ARCHITECTURE.md ("Adding an analysis") for the files a new
//! analysis touches.

pub mod characterization;
pub mod cohort_count;
pub mod continuous;
pub mod demographics;
pub mod incidence;
pub mod recruitment;
pub mod regression;
pub mod survival;

use qiao_cohort::{CohortRow, CohortStats};
use qiao_disclosure::{
    self as dc, Discloser, PersonSetDigest, QueryContext, QueryLedger, Question, Refusal, Statistic,
};
use qiao_protocol::{DisclosureSummary, Released, SuppressionBasis};
use qiao_store::Store;
use serde::{Deserialize, Serialize};

/// Why an analysis could not be run at a site. The message stays at the site; only a code
/// crosses the wire.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum AnalysisError {
    /// The spec or a definition is invalid (a JSON path and what is wrong).
    #[error("{0}")]
    Invalid(String),
    /// Valid, but this site cannot release it (e.g. under its release mode).
    #[error("{0}")]
    Unsupported(String),
    /// A cohort definition the engine does not support.
    #[error("{0}")]
    UnsupportedDefinition(String),
    /// Refused by the site's ledger after the computation (SHRINE's repeated-result lockout).
    #[error("{0}")]
    Refused(Refusal),
    /// Stopped at the site's time limit.
    #[error("{0}")]
    Cancelled(String),
    /// Anything else.
    #[error("{0}")]
    Internal(String),
}

/// The cohort a definition gives on a store.
#[derive(Debug, Clone)]
pub struct CohortRun {
    /// The cohort rows, in (subject_id, start) order. Patient-level: never leaves the site.
    pub rows: Vec<CohortRow>,
    /// Circe's statistics.
    pub stats: CohortStats,
    /// (person_id, inclusion mask of the person's best event) for every person with a
    /// qualified event, ascending. Patient-level: never leaves the site.
    pub person_masks: Vec<(i64, u64)>,
    /// The subjects' `person` rows, ascending by person id, when the CDM returned them with the
    /// cohort (Spark); None: looked up in the store ([`Cdm::person`]).
    /// Patient-level: never leaves the site.
    pub person_facts: Option<Vec<(i64, PersonFact)>>,
}

/// A subject's `person` row as the demographics read it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PersonFact {
    pub year_of_birth: Option<i32>,
    pub gender_concept_id: Option<i32>,
}

/// The site's OMOP CDM as the analyses read it: a Qiao store on this machine, or a warehouse
/// that computes each cohort and returns with it what the releases need (`qiao-site`'s Spark
/// CDM). The cohorts themselves come from the site's engine ([`Site::engine`]).
pub trait Cdm: Send + Sync {
    /// The store, when the CDM is one on this machine (the analyses that read it row by row
    /// need it: [`Analysis::NEEDS_STORE`]).
    fn store(&self) -> Option<&Store>;

    /// The first and last year of its observation periods (starts and ends).
    fn observation_years(&self) -> Option<(i32, i32)>;

    /// A cohort subject's `person` row (None: not in `person`): from the run when the CDM
    /// returned it with the cohort ([`CohortRun::person_facts`]), else looked up.
    fn person(&self, run: &CohortRun, person_id: i64) -> Option<PersonFact>;
}

impl Cdm for Store {
    fn store(&self) -> Option<&Store> {
        Some(self)
    }

    fn observation_years(&self) -> Option<(i32, i32)> {
        let op = self.domain("observation_period")?;
        let years = op
            .start()
            .iter()
            .chain(op.end().iter())
            .filter(|&d| d != qiao_cdm::date::NULL_DAY)
            .map(qiao_cdm::date::year);
        years.fold(None, |acc, y| match acc {
            None => Some((y, y)),
            Some((lo, hi)) => Some((lo.min(y), hi.max(y))),
        })
    }

    /// Looked up in the store (a store's runs carry no person rows).
    fn person(&self, _run: &CohortRun, person_id: i64) -> Option<PersonFact> {
        let persons = self.persons();
        let idx = persons.index_of(person_id)?;
        Some(PersonFact {
            year_of_birth: persons.year_of_birth(idx),
            gender_concept_id: persons
                .i32_column("gender_concept_id")
                .get(idx as usize)
                .copied(),
        })
    }
}

/// The distinct subject ids of cohort rows in subject order.
pub fn subject_ids(rows: &[CohortRow]) -> impl Iterator<Item = i64> + '_ {
    let mut last = None;
    rows.iter().filter_map(move |r| {
        if last == Some(r.subject_id) {
            None
        } else {
            last = Some(r.subject_id);
            Some(r.subject_id)
        }
    })
}

/// Runs a Circe definition on the site's CDM (under the site's job time limit).
pub type CohortEngine<'e> = dyn FnMut(&serde_json::Value) -> Result<CohortRun, AnalysisError> + 'e;

/// What a site gives an analysis: its store, engine, discloser and ledger, the job's question
/// and target definition, and the disclosure summary to put in the result.
pub struct Site<'a> {
    /// The CDM.
    pub cdm: &'a dyn Cdm,
    /// The cohort engine.
    pub engine: &'a mut CohortEngine<'a>,
    /// The site's disclosure control (under the job's floors).
    pub discloser: &'a Discloser,
    /// The site's ledger (SHRINE's repeated-result lockout: [`Site::record_result`]).
    pub ledger: &'a mut QueryLedger,
    /// Who asks, and when (the ledger's key).
    pub context: QueryContext<'a>,
    /// The job's question (query and definitions), part of every noise key.
    pub question: Question,
    /// The job's cohort definition (the target).
    pub target: &'a serde_json::Value,
    /// The statistics the analysis declared (and the site charged), for the release.
    pub statistics: &'a [Statistic],
    /// The disclosure control applied, as the result states it.
    pub summary: DisclosureSummary,
    /// The site's recruitment marks of the job's project (its investigators' screened,
    /// enrolled and excluded days per candidate; [`recruitment::Recruitment`] reads them).
    /// Patient-level: never leaves the site. Empty for every other analysis.
    pub recruitment: &'a [recruitment::PersonMarks],
}

impl Site<'_> {
    /// The store, for an analysis that declares [`Analysis::NEEDS_STORE`] (the site refuses it
    /// before admission on a CDM without one).
    pub fn store(&self) -> Result<&Store, AnalysisError> {
        self.cdm
            .store()
            .ok_or_else(|| AnalysisError::Internal("the analysis needs a store".into()))
    }

    /// Records a result's person set in the ledger: under SHRINE's release mode the same result
    /// received too often locks the user out (a refusal, nothing released).
    pub fn record_result(&mut self, result: &PersonSetDigest) -> Result<(), AnalysisError> {
        self.discloser
            .record_result(self.ledger, &self.context, result)
            .map_err(AnalysisError::Refused)
    }

    /// The declared statistic named `name`.
    pub fn statistic(&self, name: &str) -> Result<&Statistic, AnalysisError> {
        self.statistics
            .iter()
            .find(|s| s.name == name)
            .ok_or_else(|| AnalysisError::Internal(format!("statistic {name} was not declared")))
    }
}

/// One analysis that runs across the network.
pub trait Analysis {
    /// What the job asks.
    type Spec;
    /// What a site releases.
    type Released;
    /// What the hub shows from the sites' releases.
    type Pooled;
    /// Whether the result is a table released with secondary (complementary) suppression
    /// outside DP, as its disclosure summary states.
    const TABLE: bool = false;

    /// Whether it reads the CDM row by row (a store on this machine), beyond the cohorts and
    /// the subjects' `person` rows; a site whose CDM is elsewhere (Spark) refuses it by name.
    const NEEDS_STORE: bool = true;

    /// The spec's own problems, as `(JSON path, what is wrong)`.
    fn check(spec: &Self::Spec) -> Result<(), (String, String)>;

    /// The statistics the site will release, each with its sensitivity, decided on the spec,
    /// the target definition, the policy and site-level facts of the store only (never on the
    /// cohort).
    fn statistics(
        spec: &Self::Spec,
        target: &serde_json::Value,
        discloser: &Discloser,
        cdm: &dyn Cdm,
    ) -> Result<Vec<Statistic>, AnalysisError>;

    /// Computes the analysis at the site and releases it.
    fn release(spec: &Self::Spec, site: &mut Site<'_>) -> Result<Self::Released, AnalysisError>;

    /// Pools the sites' releases.
    fn pool(spec: &Self::Spec, released: &[&Self::Released]) -> Self::Pooled;
}

/// A network sum of one released number (as [`qiao_disclosure::NetworkTotal`], serializable).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Sum {
    /// As shown: the sum, or the sum with its range.
    pub display: String,
    /// Sum of the shown numbers.
    pub point_sum: u64,
    /// Smallest true total consistent with the released values.
    pub low: u64,
    /// Largest, if bounded.
    pub high: Option<u64>,
    /// Whether every site value was exact.
    pub exact: bool,
    /// Site values added.
    pub sites: usize,
    /// How many were withheld.
    pub suppressed_sites: usize,
}

impl Sum {
    /// The network sum of released values, each with its site's disclosure summary.
    pub fn of(values: &[(&Released, &DisclosureSummary)]) -> Self {
        let v: Vec<dc::Released> = values.iter().map(|(r, s)| to_disclosure(r, s)).collect();
        let t = dc::network_total(&v);
        Sum {
            display: t.to_string(),
            point_sum: t.point_sum,
            low: t.low,
            high: t.high,
            exact: t.exact,
            sites: t.sites,
            suppressed_sites: t.suppressed_sites,
        }
    }
}

/// Converts a wire value into the disclosure crate's, for [`dc::network_total`].
pub fn to_disclosure(r: &Released, summary: &DisclosureSummary) -> dc::Released {
    match *r {
        Released::Exact { value } => dc::Released::Exact { value },
        Released::BelowThreshold { threshold } => dc::Released::Suppressed {
            threshold,
            basis: dc::SuppressionBasis::TrueCount,
        },
        Released::Suppressed { threshold, basis } => dc::Released::Suppressed {
            threshold,
            basis: match basis {
                SuppressionBasis::Table => dc::SuppressionBasis::Table,
                // No upper bound follows from a noisy-threshold suppression.
                SuppressionBasis::NoisyCount => dc::SuppressionBasis::Table,
            },
        },
        Released::Obfuscated {
            value,
            threshold,
            max_error,
        } => {
            let (bin, sigma, clamp) = summary
                .obfuscation
                .as_ref()
                .map(|o| (o.bin, o.sigma, o.clamp))
                .unwrap_or((1, 0.0, 0.0));
            let bin_nz = bin.max(1);
            dc::Released::Obfuscated {
                value,
                bin,
                sigma,
                clamp,
                threshold,
                floor: threshold.div_ceil(bin_nz).saturating_mul(bin_nz),
                max_error,
            }
        }
        Released::Dp {
            value,
            sigma,
            threshold,
        } => dc::Released::Dp {
            value,
            sigma,
            threshold,
        },
    }
}

/// Converts the disclosure crate's released value to the wire form.
pub fn to_wire(r: &dc::Released) -> Released {
    match *r {
        dc::Released::Exact { value } => Released::Exact { value },
        dc::Released::Suppressed {
            threshold,
            basis: dc::SuppressionBasis::TrueCount,
        } => Released::BelowThreshold { threshold },
        dc::Released::Suppressed {
            threshold,
            basis: dc::SuppressionBasis::Table,
        } => Released::Suppressed {
            threshold,
            basis: SuppressionBasis::Table,
        },
        dc::Released::Obfuscated {
            value,
            threshold,
            max_error,
            ..
        } => Released::Obfuscated {
            value,
            threshold,
            max_error,
        },
        dc::Released::Dp {
            value,
            sigma,
            threshold,
        } => Released::Dp {
            value,
            sigma,
            threshold,
        },
    }
}

/// Whether the site's release mode is differential privacy.
fn is_dp(d: &Discloser) -> bool {
    d.policy().release == dc::ReleaseMode::Dp
}

/// Under DP each person's rows are clipped to the policy's bound (the first rows by start):
/// the sensitivity of every per-entry count is then that bound. Other modes keep every row.
fn clip_rows(d: &Discloser, rows: Vec<CohortRow>) -> Vec<CohortRow> {
    if !is_dp(d) {
        return rows;
    }
    let bound = d.policy().dp.entries_bound.max(1) as usize;
    let mut out = Vec::with_capacity(rows.len());
    let mut last = None;
    let mut n = 0usize;
    for r in rows {
        if last != Some(r.subject_id) {
            last = Some(r.subject_id);
            n = 0;
        }
        n += 1;
        if n <= bound {
            out.push(r);
        }
    }
    out
}

/// The person set of cohort rows (the key of every statistic computed over them).
fn persons(d: &Discloser, rows: &[CohortRow]) -> PersonSetDigest {
    // Rows are in subject order: dropping repeats leaves each person once.
    let mut ids: Vec<i64> = rows.iter().map(|r| r.subject_id).collect();
    ids.dedup();
    d.digest(ids)
}

/// Releases one statistic (declared by the analysis's `statistics` with the same helper) of
/// value `value` over `persons`.
fn release(site: &Site<'_>, stat: &Statistic, persons: &PersonSetDigest, value: u64) -> Released {
    to_wire(
        &site
            .discloser
            .release_value(&site.question, stat, persons, value),
    )
}
