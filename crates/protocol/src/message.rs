//! What travels inside envelopes: jobs (hub → site) and results (site → hub).
//!
//! Result types are built so that they *cannot* express patient-level data: every number is a
//! [`Released`] count (or a disclosure-control parameter), every string is an enum tag, a
//! restricted identifier, or an inclusion-rule name that [`crate::guard::check_against_job`]
//! ties to the job's own definition; every list is a list of structured records, never of raw
//! numbers. There is no map, no free text and no date of any individual anywhere in a result.
//!
//! The recruitment pre-screening list (patient ids of a cohort at one site) is deliberately
//! **not** a [`QueryType`]: it is served only by the site's local API and never by the hub.

use std::fmt;

use serde::{Deserialize, Serialize};

pub mod analyses;
pub mod recruitment;
pub mod regression;

use crate::ids::{JobId, ProjectId, SiteId, UserId};
use analyses::{CharacterizationResult, CharacterizationSpec, IncidenceResult, IncidenceSpec};
use analyses::{SurvivalResult, SurvivalSpec};
use recruitment::{RecruitmentResult, RecruitmentSpec};
use regression::{RegressionRound, RegressionSums};

/// Longest inclusion-rule name, in characters.
pub const MAX_RULE_NAME_CHARS: usize = 256;

/// A job the hub asks sites to run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Job {
    /// The job; the same id for every site the job goes to.
    pub job_id: JobId,
    /// The approved project the job runs under.
    pub project_id: ProjectId,
    /// What to compute.
    pub query: QueryType,
    /// The OHDSI Circe cohort expression (ATLAS JSON), passed through unchanged.
    pub definition: serde_json::Value,
    /// Who asked.
    pub requested_by: Requester,
    /// When the hub accepted the job (unix seconds).
    pub created_at: i64,
    /// The alliance's floors: the site applies the stricter of its own policy and these, or
    /// refuses the job ([`RefusalReason::FloorsUnmet`]). A job stored before floors existed
    /// reads as [`Floors::default`].
    #[serde(default)]
    pub floors: Floors,
}

/// The alliance's disclosure-control floors, stated by the hub in every signed job: no site
/// policy may go below the threshold or above the privacy loss per release.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Floors {
    /// Smallest minimum cell count: a site's threshold is at least this.
    pub min_cell_count: u64,
    /// Largest ρ (zero-concentrated DP) one released statistic may cost, noise `σ·Δ` on a
    /// statistic of sensitivity Δ costing `1/(2σ²)`: a site's σ is at least
    /// `1/√(2·max_rho_per_release)`. `None`: no limit (a legacy network with SHRINE or exact
    /// sites; such a site refuses any job with a limit, as it has no bounded loss).
    pub max_rho_per_release: Option<f64>,
}

impl Floors {
    /// Default smallest threshold.
    pub const DEFAULT_MIN_CELL_COUNT: u64 = 10;
    /// Default largest ρ per release: 1/50 (σ ≥ 5; ε = 0.90 at δ = 10⁻⁶).
    pub const DEFAULT_MAX_RHO_PER_RELEASE: f64 = 0.02;

    /// No floors (threshold 1, no limit on the loss per release).
    pub fn none() -> Self {
        Floors {
            min_cell_count: 1,
            max_rho_per_release: None,
        }
    }

    /// The smallest σ per unit of sensitivity the floors allow, if they limit the loss.
    pub fn min_sigma(&self) -> Option<f64> {
        self.max_rho_per_release
            .map(|rho| (1.0 / (2.0 * rho)).sqrt())
    }

    /// Whether the values are usable: a threshold of at least 1, a positive finite ρ.
    pub fn is_valid(&self) -> bool {
        self.min_cell_count >= 1
            && self
                .max_rho_per_release
                .is_none_or(|r| r.is_finite() && r > 0.0)
    }
}

impl Default for Floors {
    fn default() -> Self {
        Floors {
            min_cell_count: Self::DEFAULT_MIN_CELL_COUNT,
            max_rho_per_release: Some(Self::DEFAULT_MAX_RHO_PER_RELEASE),
        }
    }
}

/// The user on whose behalf a job runs.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Requester {
    /// The user's id at the hub.
    pub user_id: UserId,
    /// The role the user acted in.
    pub role: UserRole,
    /// The user's organization (the sponsor institution): the site charges the
    /// organization's privacy budget, so the hub must sign it into the job.
    pub organization: String,
}

/// The roles of the network.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UserRole {
    /// Runs the alliance (the hub).
    AllianceAdmin,
    /// Reviews and approves projects.
    CommitteeMember,
    /// A researcher of a member enterprise or hospital.
    SponsorResearcher,
    /// Controls what a site runs and releases.
    SiteDataSteward,
    /// A clinical investigator at a site.
    SiteInvestigator,
    /// Reads audit logs.
    Auditor,
}

/// The kinds of job a hub can send. There is intentionally no patient-list query type.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum QueryType {
    /// Cohort count with the full attrition funnel over the inclusion rules.
    CohortCount,
    /// Breakdown of the cohort by age band, gender and (optionally) index year.
    Demographics {
        /// Width of the age bands in years (1 to 100); ages are taken at the index date.
        age_band_years: u8,
        /// Whether cells are also split by the year of the index date.
        by_index_year: bool,
    },
    /// Cohort characterization (FeatureExtraction's aggregated covariates).
    Characterization(CharacterizationSpec),
    /// Incidence proportions and rates (CohortIncidence).
    Incidence(IncidenceSpec),
    /// Kaplan–Meier and log-rank from risk-set tables on a time grid.
    Survival(SurvivalSpec),
    /// One round of a federated regression run: the site's sums at the round's coefficients.
    RegressionRound(RegressionRound),
    /// The candidates the site's investigators marked screened, enrolled or excluded on the
    /// project's pre-screening list (of the job's cohort), per asked month.
    Recruitment(RecruitmentSpec),
}

impl QueryType {
    /// The payload type that answers this query.
    pub fn payload_type(&self) -> &'static str {
        match self {
            QueryType::CohortCount => "cohort_count",
            QueryType::Demographics { .. } => "demographics",
            QueryType::Characterization(_) => "characterization",
            QueryType::Incidence(_) => "incidence",
            QueryType::Survival(_) => "survival",
            QueryType::RegressionRound(_) => "regression_round",
            QueryType::Recruitment(_) => "recruitment",
        }
    }
}

/// A site's answer to a job.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JobResult {
    /// The job answered.
    pub job_id: JobId,
    /// The site answering.
    pub site_id: SiteId,
    /// What happened.
    pub outcome: Outcome,
}

/// What happened to a job at a site.
// One per job and site, moved rarely: boxing the payload would only add an allocation.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case", deny_unknown_fields)]
pub enum Outcome {
    /// Computed; the payload has passed disclosure control.
    Done {
        /// The released aggregate.
        payload: Payload,
    },
    /// The site declined to run the job.
    Refused {
        /// Why.
        reason: RefusalReason,
    },
    /// The site tried and failed. Details stay in the site's own log: an error message could
    /// quote data, so only a code crosses the wire.
    Failed {
        /// What kind of failure.
        error: FailureKind,
    },
}

/// Why a site refused a job.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RefusalReason {
    /// The site's policy denies this query type.
    QueryTypeDenied,
    /// The project is not approved (or not approved at this site).
    ProjectNotApproved,
    /// The data steward rejected the job in the manual approval queue.
    RejectedBySteward,
    /// The requesting user exceeded the site's query rate.
    RateLimited,
    /// The requesting user is locked out (e.g. repeated queries with the same true count).
    LockedOut,
    /// The user's differential-privacy budget for the project is spent.
    PrivacyBudgetExhausted,
    /// The cohort definition exceeds the site's limits on size, criteria or nesting depth.
    DefinitionTooComplex,
    /// The site cannot meet the alliance's floors stated in the job (e.g. a legacy SHRINE or
    /// exact site and a limit on the privacy loss per release, or a σ beyond its range).
    FloorsUnmet,
    /// Any other policy of the site.
    Policy,
}

/// Why a job failed at a site.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FailureKind {
    /// The cohort definition is malformed or invalid.
    InvalidDefinition,
    /// The definition uses something the site's engine does not support.
    UnsupportedDefinition,
    /// The site's data store could not be read.
    StoreUnavailable,
    /// The job exceeded the site's time limit.
    Timeout,
    /// Anything else.
    Internal,
}

/// A released aggregate.
// Its schema is written out in `crate::openapi` (the tag sits beside the fields of a struct
// that denies unknown fields, which a derived `allOf` cannot say).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Payload {
    /// Answer to [`QueryType::CohortCount`].
    CohortCount(CohortCountResult),
    /// Answer to [`QueryType::Demographics`].
    Demographics(DemographicsResult),
    /// Answer to [`QueryType::Characterization`].
    Characterization(CharacterizationResult),
    /// Answer to [`QueryType::Incidence`].
    Incidence(IncidenceResult),
    /// Answer to [`QueryType::Survival`].
    Survival(SurvivalResult),
    /// Answer to [`QueryType::RegressionRound`].
    RegressionRound(RegressionSums),
    /// Answer to [`QueryType::Recruitment`].
    Recruitment(RecruitmentResult),
}

impl Payload {
    /// The payload's type tag (matches [`QueryType::payload_type`]).
    pub fn payload_type(&self) -> &'static str {
        match self {
            Payload::CohortCount(_) => "cohort_count",
            Payload::Demographics(_) => "demographics",
            Payload::Characterization(_) => "characterization",
            Payload::Incidence(_) => "incidence",
            Payload::Survival(_) => "survival",
            Payload::RegressionRound(_) => "regression_round",
            Payload::Recruitment(_) => "recruitment",
        }
    }

    /// The disclosure-control summary.
    pub fn disclosure(&self) -> &DisclosureSummary {
        match self {
            Payload::CohortCount(r) => &r.disclosure,
            Payload::Demographics(r) => &r.disclosure,
            Payload::Characterization(r) => &r.disclosure,
            Payload::Incidence(r) => &r.disclosure,
            Payload::Survival(r) => &r.disclosure,
            Payload::RegressionRound(r) => &r.disclosure,
            Payload::Recruitment(r) => &r.disclosure,
        }
    }
}

/// Cohort count with the attrition funnel.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CohortCountResult {
    /// Entries (rows) of the final cohort, after inclusion rules and era collapse.
    pub entries: Released,
    /// Distinct persons of the final cohort.
    pub subjects: Released,
    /// Persons with a qualifying event before the inclusion rules (Circe's base count): the
    /// funnel's first line. Absent without inclusion rules (then it is the final line) and from
    /// sites that predate it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub initial: Option<Released>,
    /// One line of the funnel per inclusion rule, in the definition's order.
    pub rules: Vec<RuleResult>,
    /// Persons in the final cohort.
    pub final_persons: Released,
    /// The disclosure control applied.
    pub disclosure: DisclosureSummary,
}

/// One inclusion rule's line of the attrition funnel.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleResult {
    /// The rule's name, exactly as in the job's definition.
    pub name: RuleName,
    /// Persons remaining after this rule (and all before it).
    pub persons: Released,
    /// Persons this rule removes (or, as Circe reports it, its gain).
    pub gain: Released,
}

/// Cohort breakdown.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DemographicsResult {
    /// Persons in the cohort.
    pub total: Released,
    /// The cells; a cell with a dimension left out (`None`) is a margin over that dimension.
    pub cells: Vec<Cell>,
    /// The disclosure control applied.
    pub disclosure: DisclosureSummary,
}

/// One cell of a breakdown.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Cell {
    /// Age at index, or `None` for all ages.
    pub age_band: Option<AgeBand>,
    /// Gender, or `None` for all.
    pub gender: Option<Gender>,
    /// Year of the index date, or `None` for all years.
    pub index_year: Option<u16>,
    /// Persons in the cell.
    pub count: Released,
}

impl Cell {
    /// The cell's coordinates, for duplicate detection.
    pub fn key(&self) -> (Option<AgeBand>, Option<Gender>, Option<u16>) {
        (self.age_band, self.gender, self.index_year)
    }
}

/// An age band in whole years: `min_age ..= max_age`, or `min_age` and over.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgeBand {
    /// Lowest age in the band.
    pub min_age: u8,
    /// Highest age in the band, or `None` for an open-ended top band.
    pub max_age: Option<u8>,
}

/// Gender as OMOP records it (concepts 8532 female, 8507 male; anything else is other, a missing
/// value unknown).
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Gender {
    /// 8532.
    Female,
    /// 8507.
    Male,
    /// Any other gender concept.
    Other,
    /// No gender concept.
    Unknown,
}

/// How a released number was produced. This is the wire form; the site converts from its
/// disclosure crate's richer value, and the hub shows it next to each number.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Released {
    /// The exact count (at or above the site's threshold).
    Exact {
        /// The count.
        value: u64,
    },
    /// A count below the site's threshold (zero included): shown as "< threshold".
    BelowThreshold {
        /// The site's minimum cell count.
        threshold: u64,
    },
    /// Withheld without implying it is small: a breakdown cell suppressed to protect another
    /// cell, or a DP count whose noised value fell below the threshold.
    Suppressed {
        /// The site's minimum cell count.
        threshold: u64,
        /// Why.
        basis: SuppressionBasis,
    },
    /// SHRINE-style obfuscated: the true count is within `max_error` of `value` and at least
    /// `threshold`. Bin width and noise parameters are in the [`DisclosureSummary`].
    Obfuscated {
        /// The released value.
        value: u64,
        /// The site's minimum cell count.
        threshold: u64,
        /// Largest possible difference between `value` and the true count.
        max_error: u64,
    },
    /// Differentially private: the true count plus discrete Gaussian noise with `sigma`,
    /// post-processed, then compared with the threshold: `value` is `None` ("< threshold")
    /// when the *noisy* value fell below it. The true count is within `value ± 1.96σ` with
    /// 95% probability.
    Dp {
        /// The released value, or `None` when the noisy value is below the threshold.
        value: Option<u64>,
        /// σ of the noise added to this number.
        sigma: f64,
        /// The site's minimum cell count.
        threshold: u64,
    },
}

/// Why a number was withheld (see [`Released::Suppressed`]).
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SuppressionBasis {
    /// A breakdown cell or margin suppressed (primary or complementary; deliberately not told
    /// apart).
    Table,
    /// Differential privacy: the noised count fell below the threshold.
    NoisyCount,
}

impl Released {
    /// The number shown, if any.
    pub fn point(&self) -> Option<u64> {
        match *self {
            Released::Exact { value } | Released::Obfuscated { value, .. } => Some(value),
            Released::Dp { value, .. } => value,
            Released::BelowThreshold { .. } | Released::Suppressed { .. } => None,
        }
    }
}

impl fmt::Display for Released {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Released::Exact { value } => write!(f, "{value}"),
            Released::BelowThreshold { threshold } => write!(f, "< {threshold}"),
            Released::Suppressed {
                threshold,
                basis: SuppressionBasis::NoisyCount,
            } => write!(f, "< {threshold} (DP)"),
            Released::Suppressed { .. } => f.write_str("suppressed"),
            Released::Obfuscated {
                value, max_error, ..
            } => write!(f, "{value} ±{max_error}"),
            Released::Dp {
                value: Some(v),
                sigma,
                ..
            } => write!(f, "{v} ±{}", half_width_95(*sigma)),
            Released::Dp {
                value: None,
                threshold,
                ..
            } => write!(f, "< {threshold}"),
        }
    }
}

/// Half-width of the 95% interval of noise with standard deviation `sigma`: `⌈1.96σ⌉`.
pub fn half_width_95(sigma: f64) -> u64 {
    if !(sigma.is_finite() && sigma > 0.0) {
        return 0;
    }
    (1.959_963_984_540_054 * sigma).ceil().min(u64::MAX as f64) as u64
}

/// The disclosure-control rules a site applied to one result, shown by the hub with it.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DisclosureSummary {
    /// The site's minimum cell count; every [`Released`] threshold equals it.
    pub min_cell_count: u64,
    /// SHRINE-style obfuscation parameters, if obfuscation was on.
    pub obfuscation: Option<ObfuscationParams>,
    /// Whether complementary (secondary) suppression was applied to breakdowns.
    pub secondary_suppression: bool,
    /// Differential-privacy accounting, if DP mode was on.
    pub dp: Option<DpParams>,
}

/// SHRINE-style obfuscation: bin, add clamped Gaussian noise, bin again.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ObfuscationParams {
    /// Bin width.
    pub bin: u64,
    /// Noise standard deviation.
    pub sigma: f64,
    /// Noise clamp (±).
    pub clamp: f64,
}

/// Differential-privacy accounting for one result.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DpParams {
    /// ρ (zero-concentrated DP) charged for this result to the user's, the organization's
    /// and the site's budgets.
    pub rho_spent: f64,
    /// σ of the noise per unit of sensitivity.
    pub sigma: f64,
    /// Rows of one person counted at most in `entries`.
    pub entries_bound: u32,
    /// ρ still available to this user at this site in the current period (the smallest of
    /// the user's, the organization's and the site's remainders).
    pub remaining_rho: f64,
    /// ρ still available to this user alone (its own budget) in the current period.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_remaining_rho: Option<f64>,
    /// ρ still available to the user's organization in the current period.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub organization_remaining_rho: Option<f64>,
}

/// An inclusion rule's name: at most [`MAX_RULE_NAME_CHARS`] characters, no control
/// characters. [`crate::guard::check_against_job`] requires it to equal the name in the job's
/// definition, so it cannot carry anything the hub did not send.
#[derive(Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct RuleName(String);

/// A rule name that is too long or has control characters.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("an inclusion rule name must be at most {MAX_RULE_NAME_CHARS} characters without control characters")]
pub struct RuleNameError;

impl RuleName {
    /// Validates and wraps `s`.
    pub fn new(s: impl Into<String>) -> Result<Self, RuleNameError> {
        let s = s.into();
        if s.chars().count() <= MAX_RULE_NAME_CHARS && !s.chars().any(char::is_control) {
            Ok(Self(s))
        } else {
            Err(RuleNameError)
        }
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for RuleName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

impl fmt::Display for RuleName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl TryFrom<String> for RuleName {
    type Error = RuleNameError;
    fn try_from(s: String) -> Result<Self, RuleNameError> {
        Self::new(s)
    }
}

impl From<RuleName> for String {
    fn from(n: RuleName) -> String {
        n.0
    }
}

/// What a site tells the hub about itself with each poll (optional: a poll without it is valid).
/// Nothing here is row-level: the person count is rounded by the site before sending.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SiteStatus {
    /// The data's as-of date, `YYYY-MM-DD`: the latest event date in the site's store (event
    /// end or start, observation periods included), `None` for an empty store.
    pub data_as_of: Option<String>,
    /// Persons in the store, rounded to the nearest [`SiteStatus::PERSON_ROUNDING`].
    pub persons_rounded: u64,
    /// The site's minimum cell count (smaller counts are released as "< T").
    pub min_cell_count: u64,
    /// Whether released counts are obfuscated.
    pub obfuscation: bool,
    /// Whether differential privacy is on.
    pub dp: bool,
}

impl SiteStatus {
    /// The person count is rounded to a multiple of this.
    pub const PERSON_ROUNDING: u64 = 100;

    /// `n` rounded to the nearest [`SiteStatus::PERSON_ROUNDING`] (halves up).
    pub fn round_persons(n: u64) -> u64 {
        let r = Self::PERSON_ROUNDING;
        n.saturating_add(r / 2) / r * r
    }
}

/// The body of a poll: `{}`, `{"status": {...}}`, optionally with `"audit_head"`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PollBody {
    /// The site's status, if it sends one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<SiteStatus>,
    /// The site's signed audit chain head (see [`crate::audit_head`]), if it sends one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audit_head: Option<crate::audit_head::SignedHead>,
}

/// The signed audit head in a verified poll envelope's body, if the site sent one.
pub fn poll_audit_head(body: &str) -> Option<crate::audit_head::SignedHead> {
    serde_json::from_str::<PollBody>(body).ok()?.audit_head
}
