//! What `GET /api/v1/jobs/{id}` returns: per-site status and released results, and network
//! totals computed from released values only, by addition only
//! ([`qiao_disclosure::network_total`]).

use qiao_analysis::network::characterization::{Characterization, PooledCharacterization};
use qiao_analysis::network::cohort_count::{CohortCount, PooledCohortCount};
use qiao_analysis::network::demographics::{Demographics, DemographicsSpec, PooledDemographics};
use qiao_analysis::network::incidence::{Incidence, PooledIncidence};
use qiao_analysis::network::survival::{self, PooledSurvival};
use qiao_analysis::network::{Analysis, Sum};
use qiao_protocol::{
    AgeBand, DisclosureSummary, FailureKind, Gender, JobId, Outcome, Payload, ProjectId, QueryType,
    RefusalReason, Released, SiteId, UserId,
};
use serde::{Deserialize, Serialize};

use crate::model::{JobRecord, StoredResult};

/// A site's status for a job.
#[derive(utoipa::ToSchema)]
#[schema(as = SiteJobStatus)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SiteStatus {
    /// No result yet.
    Pending,
    /// Computed and released.
    Done,
    /// The site declined.
    Refused,
    /// The site tried and failed.
    Failed,
    /// The hub rejected the site's result as implausible ([`crate::floors::implausible`]).
    Rejected,
}

/// One site's line.
#[derive(utoipa::ToSchema, Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SiteJobView {
    /// The site.
    pub site: SiteId,
    /// Its status.
    pub status: SiteStatus,
    /// How often the job was delivered to the site.
    pub deliveries: u32,
    /// When the result arrived.
    pub received_at: Option<i64>,
    /// Why it refused.
    pub reason: Option<RefusalReason>,
    /// Why it failed.
    pub error: Option<FailureKind>,
    /// Why the hub rejected it: "rejected: implausible: …".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rejected: Option<String>,
    /// The released aggregate; each number carries the rule that produced it.
    pub payload: Option<Payload>,
    /// The disclosure-control rules the site applied, in words.
    pub disclosure: Vec<String>,
}

/// A network total of one number.
#[derive(utoipa::ToSchema, Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TotalValue {
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
    /// Number of site values added.
    pub sites: usize,
    /// How many of them were withheld.
    pub suppressed_sites: usize,
}

impl From<Sum> for TotalValue {
    fn from(t: Sum) -> Self {
        Self {
            display: t.display,
            point_sum: t.point_sum,
            low: t.low,
            high: t.high,
            exact: t.exact,
            sites: t.sites,
            suppressed_sites: t.suppressed_sites,
        }
    }
}

/// One inclusion rule's network total.
#[derive(utoipa::ToSchema, Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RuleTotal {
    /// The rule's name.
    pub name: String,
    /// Persons remaining after it.
    pub persons: TotalValue,
}

/// One breakdown cell's network total.
#[derive(utoipa::ToSchema, Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CellTotal {
    /// Age band, or all.
    pub age_band: Option<AgeBand>,
    /// Gender, or all.
    pub gender: Option<Gender>,
    /// Index year, or all.
    pub index_year: Option<u16>,
    /// Persons.
    pub count: TotalValue,
}

/// Network totals over the sites that are done.
#[derive(utoipa::ToSchema, Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum NetworkTotals {
    /// Cohort count funnel.
    CohortCount {
        /// Sites added.
        sites_done: usize,
        /// Entries.
        entries: TotalValue,
        /// Subjects.
        subjects: TotalValue,
        /// Persons with a qualifying event before the rules (the funnel's first line), when
        /// every site that is done released it.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        initial: Option<Box<TotalValue>>,
        /// Per inclusion rule.
        rules: Vec<RuleTotal>,
        /// Final persons.
        final_persons: TotalValue,
    },
    /// Demographics breakdown.
    Demographics {
        /// Sites added.
        sites_done: usize,
        /// Persons.
        total: TotalValue,
        /// Cells present at any site; each adds only the sites that reported it.
        cells: Vec<CellTotal>,
    },
    /// Characterization pooled: sums of the released counts, means and SMDs from them.
    Characterization(PooledCharacterization),
    /// Incidence pooled: sums of the released counts, rates and intervals from them.
    Incidence(PooledIncidence),
    /// Survival pooled: Kaplan–Meier and log-rank from the summed risk-set tables, and the
    /// per-site curves.
    Survival(PooledSurvival),
    /// A regression round pooled: the sums the hub's Newton step takes.
    RegressionRound(crate::service::runs::RoundTotals),
    /// Recruitment pooled: the sites' released counts of marked candidates per month, summed.
    Recruitment(qiao_analysis::network::recruitment::PooledRecruitment),
}

/// A job as API clients see it.
#[derive(utoipa::ToSchema, Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct JobView {
    /// The job.
    pub job_id: JobId,
    /// Its project.
    pub project_id: ProjectId,
    /// What was asked.
    pub query: QueryType,
    /// Who asked.
    pub requested_by: UserId,
    /// When.
    pub created_at: i64,
    /// Whether every site has answered (done, refused or failed).
    pub complete: bool,
    /// Per site, in the order asked.
    pub sites: Vec<SiteJobView>,
    /// Network totals from the released values of the sites that are done.
    pub total: NetworkTotals,
}

pub use qiao_analysis::network::to_disclosure;

/// The disclosure rules of a summary, in words.
pub fn describe_disclosure(s: &DisclosureSummary) -> Vec<String> {
    let mut out = vec![format!("minimum cell count {}", s.min_cell_count)];
    if let Some(o) = &s.obfuscation {
        out.push(format!(
            "obfuscation: bin {}, Gaussian noise σ={} clamped to ±{}, bin again",
            o.bin, o.sigma, o.clamp
        ));
    }
    if s.secondary_suppression {
        out.push("secondary (complementary) suppression".into());
    }
    if let Some(dp) = &s.dp {
        out.push(format!(
            "differential privacy: discrete Gaussian noise σ={} per unit of sensitivity, threshold on the noisy value; ρ={:.4} charged (zCDP); ρ={:.4} remaining for this user at this site; entries clip {} rows per person; \"±N\" is the 95% interval of the noise",
            dp.sigma, dp.rho_spent, dp.remaining_rho, dp.entries_bound
        ));
    }
    out
}

/// Builds the view of a job from its record and stored results.
pub fn job_view(record: &JobRecord, results: &[StoredResult]) -> JobView {
    let mut sites = Vec::with_capacity(record.sites.len());
    let mut done: Vec<&Payload> = Vec::new();
    for site in &record.sites {
        let deliveries = record
            .deliveries
            .iter()
            .find(|d| &d.site == site)
            .map_or(0, |d| d.count);
        let stored = results.iter().find(|r| &r.result.site_id == site);
        let mut v = SiteJobView {
            site: site.clone(),
            status: SiteStatus::Pending,
            deliveries,
            received_at: stored.map(|r| r.received_at),
            reason: None,
            error: None,
            rejected: None,
            payload: None,
            disclosure: Vec::new(),
        };
        if let Some(why) = stored.and_then(|r| r.rejected.as_ref()) {
            // Neither shown nor added to the totals.
            v.status = SiteStatus::Rejected;
            v.rejected = Some(format!("rejected: implausible: {why}"));
        } else if let Some(r) = stored {
            match &r.result.outcome {
                Outcome::Done { payload } => {
                    v.status = SiteStatus::Done;
                    v.disclosure = describe_disclosure(payload.disclosure());
                    v.payload = Some(payload.clone());
                    done.push(payload);
                }
                Outcome::Refused { reason } => {
                    v.status = SiteStatus::Refused;
                    v.reason = Some(*reason);
                }
                Outcome::Failed { error } => {
                    v.status = SiteStatus::Failed;
                    v.error = Some(*error);
                }
            }
        }
        sites.push(v);
    }
    let complete = sites.iter().all(|s| s.status != SiteStatus::Pending);
    let total = match &record.job.query {
        QueryType::CohortCount => {
            let released: Vec<_> = done
                .iter()
                .filter_map(|p| match p {
                    Payload::CohortCount(r) => Some(r),
                    _ => None,
                })
                .collect();
            CohortCount::pool(&(), &released).into()
        }
        QueryType::Demographics {
            age_band_years,
            by_index_year,
        } => {
            let released: Vec<_> = done
                .iter()
                .filter_map(|p| match p {
                    Payload::Demographics(r) => Some(r),
                    _ => None,
                })
                .collect();
            let spec = DemographicsSpec {
                age_band_years: *age_band_years,
                by_index_year: *by_index_year,
            };
            Demographics::pool(&spec, &released).into()
        }
        QueryType::Characterization(spec) => {
            let released: Vec<_> = done
                .iter()
                .filter_map(|p| match p {
                    Payload::Characterization(r) => Some(r),
                    _ => None,
                })
                .collect();
            NetworkTotals::Characterization(Characterization::pool(spec, &released))
        }
        QueryType::Incidence(spec) => {
            let released: Vec<_> = done
                .iter()
                .filter_map(|p| match p {
                    Payload::Incidence(r) => Some(r),
                    _ => None,
                })
                .collect();
            NetworkTotals::Incidence(Incidence::pool(spec, &released))
        }
        QueryType::Survival(spec) => {
            let released: Vec<(String, &qiao_protocol::SurvivalResult)> = sites
                .iter()
                .filter_map(|s| match &s.payload {
                    Some(Payload::Survival(r)) => Some((s.site.to_string(), r)),
                    _ => None,
                })
                .collect();
            NetworkTotals::Survival(survival::pool_sites(spec, &released))
        }
        QueryType::RegressionRound(round) => {
            NetworkTotals::RegressionRound(crate::service::runs::round_totals(round, &done))
        }
        QueryType::Recruitment(spec) => {
            use qiao_analysis::network::Analysis;
            let released: Vec<_> = done
                .iter()
                .filter_map(|p| match p {
                    Payload::Recruitment(r) => Some(r),
                    _ => None,
                })
                .collect();
            NetworkTotals::Recruitment(qiao_analysis::network::recruitment::Recruitment::pool(
                spec, &released,
            ))
        }
    };
    JobView {
        job_id: record.job.job_id,
        project_id: record.job.project_id.clone(),
        query: record.job.query.clone(),
        requested_by: record.job.requested_by.user_id.clone(),
        created_at: record.job.created_at,
        complete,
        sites,
        total,
    }
}

/// One site's released value with the range of true values it is consistent with, as a
/// network total of that one value (the same rule, so a site's line and the total read alike).
pub fn site_value(value: &Released, disclosure: &DisclosureSummary) -> TotalValue {
    Sum::of(&[(value, disclosure)]).into()
}

impl From<PooledCohortCount> for NetworkTotals {
    fn from(p: PooledCohortCount) -> Self {
        NetworkTotals::CohortCount {
            sites_done: p.sites_done,
            entries: p.entries.into(),
            subjects: p.subjects.into(),
            initial: p.initial.map(|i| Box::new(i.into())),
            rules: p
                .rules
                .into_iter()
                .map(|r| RuleTotal {
                    name: r.name,
                    persons: r.persons.into(),
                })
                .collect(),
            final_persons: p.final_persons.into(),
        }
    }
}

impl From<PooledDemographics> for NetworkTotals {
    fn from(p: PooledDemographics) -> Self {
        NetworkTotals::Demographics {
            sites_done: p.sites_done,
            total: p.total.into(),
            cells: p
                .cells
                .into_iter()
                .map(|c| CellTotal {
                    age_band: c.age_band,
                    gender: c.gender,
                    index_year: c.index_year,
                    count: c.count.into(),
                })
                .collect(),
        }
    }
}
