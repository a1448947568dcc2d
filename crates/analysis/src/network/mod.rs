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
//! Implemented here: [`characterization::Characterization`] (FeatureExtraction) and
//! [`incidence::Incidence`] (CohortIncidence). The feasibility queries (`cohort_count`,
//! `demographics`) are still released by `qiao-site`'s `exec` module and pooled by the hub's
//! view; see ARCHITECTURE.md ("Adding an analysis") for the files a new analysis touches.

pub mod characterization;
pub mod incidence;
pub mod regression;

use qiao_cohort::CohortRow;
use qiao_disclosure::{self as dc, Discloser, PersonSetDigest, Question, Statistic};
use qiao_protocol::{DisclosureSummary, Released, SuppressionBasis};
use qiao_store::Store;
use serde::{Deserialize, Serialize};

/// Why an analysis could not be run at a site. The message stays at the site; only a code
/// crosses the wire.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AnalysisError {
    /// The spec or a definition is invalid (a JSON path and what is wrong).
    #[error("{0}")]
    Invalid(String),
    /// Valid, but this site cannot release it (e.g. under its release mode).
    #[error("{0}")]
    Unsupported(String),
    /// Stopped at the site's time limit.
    #[error("{0}")]
    Cancelled(String),
    /// Anything else.
    #[error("{0}")]
    Internal(String),
}

/// Runs a Circe definition on the site's store: the cohort rows in (subject, start) order.
pub type CohortEngine<'e> =
    dyn FnMut(&Store, &serde_json::Value) -> Result<Vec<CohortRow>, AnalysisError> + 'e;

/// What a site gives an analysis: its store, engine and discloser, the job's question and
/// target definition, and the disclosure summary to put in the result.
pub struct Site<'a> {
    /// The store.
    pub store: &'a Store,
    /// The cohort engine.
    pub engine: &'a mut CohortEngine<'a>,
    /// The site's disclosure control (under the job's floors).
    pub discloser: &'a Discloser,
    /// The job's question (query and definitions), part of every noise key.
    pub question: Question,
    /// The job's cohort definition (the target).
    pub target: &'a serde_json::Value,
    /// The disclosure control applied, as the result states it.
    pub summary: DisclosureSummary,
}

/// One analysis that runs across the network.
pub trait Analysis {
    /// What the job asks.
    type Spec;
    /// What a site releases.
    type Released;
    /// What the hub shows from the sites' releases.
    type Pooled;

    /// The spec's own problems, as `(JSON path, what is wrong)`.
    fn check(spec: &Self::Spec) -> Result<(), (String, String)>;

    /// The statistics the site will release, each with its sensitivity, decided on the spec,
    /// the policy and site-level facts of the store only (never on the cohort).
    fn statistics(
        spec: &Self::Spec,
        discloser: &Discloser,
        store: &Store,
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
