//! `qiao query`: ask the network through a hub and print the per-site and total funnel.

mod runs;

use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context};
use qiao_hub::api::{QueryRequest, DEFAULT_AGE_BAND_YEARS};
use qiao_hub::protocol::{ProjectId, QueryType, SiteId};
use qiao_hub::{report, HubClient};

/// The analyses `--analysis` names.
#[derive(Clone, Copy, Debug, clap::ValueEnum)]
pub enum AnalysisKind {
    /// Cohort characterization (FeatureExtraction's aggregated covariates).
    Characterize,
    /// Incidence (CohortIncidence).
    Incidence,
    /// Time to event: Kaplan–Meier and log-rank from risk-set tables on a time grid.
    Survival,
    /// Federated regression (logistic or Cox), a multi-round run at the hub.
    Regress,
}

/// The query types `--type` names.
#[derive(Clone, Copy, Debug, clap::ValueEnum)]
pub enum Kind {
    #[value(name = "cohort_count")]
    CohortCount,
    #[value(name = "demographics")]
    Demographics,
}

#[derive(clap::Args)]
pub struct Args {
    /// The hub's base URL, e.g. https://hub.example.org:8443.
    #[arg(long, env = "QIAO_HUB")]
    pub hub: String,
    /// API token (from `POST /api/v1/tokens` or `qiao hub create-token`).
    #[arg(long, env = "QIAO_TOKEN", hide_env_values = true)]
    pub token: String,
    /// The approved project to run the query under.
    #[arg(long)]
    pub project: String,
    /// cohort_count (the attrition funnel) or demographics.
    #[arg(long = "type", value_enum, default_value = "cohort_count")]
    pub query_type: Kind,
    /// Demographics: age band width in years.
    #[arg(long)]
    pub age_band_years: Option<u8>,
    /// Demographics: also split by index year.
    #[arg(long)]
    pub by_index_year: bool,
    /// Run an analysis instead of a `--type` query; the definition is its target cohort.
    #[arg(long, value_enum)]
    pub analysis: Option<AnalysisKind>,
    /// Characterize and survival: a comparator cohort (Circe JSON).
    #[arg(long)]
    pub comparator: Option<PathBuf>,
    /// Characterize: FeatureExtraction analysis ids (comma-separated; default FE's default set).
    #[arg(long, value_delimiter = ',')]
    pub analyses: Vec<u32>,
    /// Characterize: the covariate ids to release (required by sites under differential
    /// privacy). Regress: age, gender, treatment, cohort:X.json (comma-separated).
    #[arg(long, value_delimiter = ',')]
    pub covariates: Vec<String>,
    /// Regress: logistic or cox.
    #[arg(long)]
    pub model: Option<String>,
    /// Regress: seconds each site has to answer a round before the run fails.
    #[arg(long, default_value_t = 120)]
    pub round_timeout: u64,
    /// Resume the failed regression run RUN (its failed round is issued again) and follow it.
    #[arg(long, value_name = "RUN")]
    pub resume: Option<String>,
    /// Incidence, survival and regress: the outcome cohort (Circe JSON).
    #[arg(long)]
    pub outcome: Option<PathBuf>,
    /// Incidence: a time at risk, e.g. start+0:end+0 (repeatable; default start+0:end+0).
    /// Survival: one time at risk as `qiao analyze survival --tar` (default start+0:obs_end).
    #[arg(long = "tar", allow_hyphen_values = true)]
    pub tars: Vec<String>,
    /// Incidence: the outcome clean window in days.
    #[arg(long, default_value_t = 0)]
    pub clean_window: u32,
    /// Incidence: strata, comma-separated from age, gender, year.
    #[arg(long, value_delimiter = ',')]
    pub strata: Vec<String>,
    /// Incidence: age group breaks (comma-separated, ascending).
    #[arg(long, value_delimiter = ',')]
    pub age_breaks: Vec<u8>,
    /// Incidence under DP: each time at risk cut to at most this many days.
    #[arg(long, default_value_t = qiao_hub::protocol::IncidenceSpec::DEFAULT_MAX_TAR_DAYS)]
    pub max_tar_days: u32,
    /// Incidence under DP: outcomes counted at most this many times per time at risk.
    #[arg(long, default_value_t = qiao_hub::protocol::IncidenceSpec::DEFAULT_MAX_OUTCOMES_PER_TAR)]
    pub max_outcomes_per_tar: u32,
    /// Survival: days per grid interval (default 30).
    #[arg(long)]
    pub grid_days: Option<u32>,
    /// Survival: days of follow-up released; later follow-up is censored there (default 3650).
    #[arg(long)]
    pub horizon_days: Option<u32>,
    /// Only these sites (comma-separated; default every enrolled site).
    #[arg(long, value_delimiter = ',')]
    pub sites: Vec<String>,
    /// Seconds to wait for every site before printing what has arrived.
    #[arg(long, default_value_t = 120)]
    pub wait: u64,
    /// Trust this CA certificate (PEM) for the hub's TLS certificate.
    #[arg(long)]
    pub ca_cert: Option<PathBuf>,
    /// Print one JSON object instead of a table.
    #[arg(long)]
    pub json: bool,
    /// The OHDSI ATLAS/Circe cohort definition (JSON); not with --resume.
    pub definition: Option<PathBuf>,
}

pub fn run(a: Args) -> anyhow::Result<()> {
    if a.resume.is_some() || matches!(a.analysis, Some(AnalysisKind::Regress)) {
        return runs::run(&a);
    }
    let Some(path) = &a.definition else {
        bail!("the cohort definition (a Circe JSON file) is missing");
    };
    let definition = read_json(path)?;
    let project = ProjectId::new(a.project.clone())?;
    let sites = a
        .sites
        .iter()
        .filter(|s| !s.is_empty())
        .map(|s| SiteId::new(s.clone()))
        .collect::<Result<Vec<_>, _>>()?;
    let query = match a.analysis {
        Some(kind) => analysis_query(&a, kind)?,
        None => type_query(&a)?,
    };
    let req = QueryRequest {
        query,
        definition,
        sites: (!sites.is_empty()).then_some(sites),
    };
    let client = HubClient::new(&a.hub, a.ca_cert.as_deref())?.with_token(a.token.clone());
    let submitted = client.submit_query(&project, &req)?;
    let view = client.wait_job(&submitted.job_id, Duration::from_secs(a.wait))?;
    let mut out = std::io::stdout().lock();
    if a.json {
        writeln!(out, "{}", report::to_json(&view))?;
    } else {
        write!(out, "{}", report::to_table(&view))?;
    }
    out.flush()?;
    if !view.complete {
        eprintln!(
            "note: not every site answered within {} s; pending sites will finish the job when they are back (job {})",
            a.wait, view.job_id
        );
    }
    Ok(())
}

pub(super) fn read_json(path: &std::path::Path) -> anyhow::Result<serde_json::Value> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    serde_json::from_str(&text).with_context(|| format!("{}: not valid JSON", path.display()))
}

/// The analysis spec the flags give.
fn analysis_query(a: &Args, kind: AnalysisKind) -> anyhow::Result<QueryType> {
    use qiao_hub::protocol::{
        CharacterizationSpec, IncidenceSpec, IncidenceStrata, SurvivalSpec, TarAnchor, TarDate,
        TimeAtRisk,
    };
    if a.age_band_years.is_some() || a.by_index_year {
        bail!("--age-band-years and --by-index-year apply to --type demographics");
    }
    let characterize_only =
        a.comparator.is_some() || !a.analyses.is_empty() || !a.covariates.is_empty();
    if a.model.is_some() {
        bail!("--model applies to --analysis regress");
    }
    let incidence_only = a.outcome.is_some()
        || !a.tars.is_empty()
        || !a.strata.is_empty()
        || !a.age_breaks.is_empty()
        || a.clean_window != 0;
    let spec_error = |path: String, message: String| anyhow::anyhow!("{path}: {message}");
    let survival_only = a.grid_days.is_some() || a.horizon_days.is_some();
    if survival_only && !matches!(kind, AnalysisKind::Survival) {
        bail!("--grid-days and --horizon-days apply to --analysis survival");
    }
    match kind {
        AnalysisKind::Survival => {
            if !a.analyses.is_empty()
                || !a.covariates.is_empty()
                || !a.strata.is_empty()
                || !a.age_breaks.is_empty()
                || a.clean_window != 0
            {
                bail!("--analysis survival takes --outcome, --comparator, --tar, --grid-days and --horizon-days");
            }
            let Some(outcome) = &a.outcome else {
                bail!("--analysis survival needs --outcome O.json");
            };
            let tar = match a.tars.as_slice() {
                [] => qiao_analysis::time_to_event::TimeAtRisk::default(),
                [one] => one.parse()?,
                _ => bail!("--analysis survival takes one --tar"),
            };
            let spec = SurvivalSpec {
                outcome: read_json(outcome)?,
                comparator: a.comparator.as_deref().map(read_json).transpose()?,
                tar: tar.into(),
                grid_days: a.grid_days.unwrap_or(SurvivalSpec::DEFAULT_GRID_DAYS),
                horizon_days: a.horizon_days.unwrap_or(SurvivalSpec::DEFAULT_HORIZON_DAYS),
            };
            spec.check().map_err(|(p, m)| spec_error(p, m))?;
            Ok(QueryType::Survival(spec))
        }
        AnalysisKind::Characterize => {
            if incidence_only {
                bail!("--outcome, --tar, --clean-window, --strata and --age-breaks apply to --analysis incidence");
            }
            let spec = CharacterizationSpec {
                comparator: a.comparator.as_deref().map(read_json).transpose()?,
                analyses: a.analyses.clone(),
                covariate_ids: a
                    .covariates
                    .iter()
                    .map(|c| {
                        c.trim()
                            .parse::<i64>()
                            .with_context(|| format!("--covariates: {c:?} is not a covariate id"))
                    })
                    .collect::<anyhow::Result<_>>()?,
            };
            spec.check().map_err(|(p, m)| spec_error(p, m))?;
            Ok(QueryType::Characterization(spec))
        }
        AnalysisKind::Incidence => {
            if characterize_only {
                bail!("--comparator, --analyses and --covariates apply to --analysis characterize");
            }
            let Some(outcome) = &a.outcome else {
                bail!("--analysis incidence needs --outcome O.json");
            };
            let tars = if a.tars.is_empty() {
                vec![TimeAtRisk::cohort_period()]
            } else {
                a.tars
                    .iter()
                    .enumerate()
                    .map(|(i, s)| {
                        let t = crate::cmd::analyze::incidence::parse_tar(i as i64 + 1, s)?;
                        let anchor = |x: &qiao_analysis::incidence::design::Anchor| TarAnchor {
                            date_field: match x.date_field {
                                qiao_analysis::incidence::design::DateField::Start => {
                                    TarDate::Start
                                }
                                qiao_analysis::incidence::design::DateField::End => TarDate::End,
                            },
                            offset: x.offset,
                        };
                        Ok(TimeAtRisk {
                            start: anchor(&t.start),
                            end: anchor(&t.end),
                        })
                    })
                    .collect::<anyhow::Result<Vec<_>>>()?
            };
            let mut strata = IncidenceStrata::default();
            for s in &a.strata {
                match s.as_str() {
                    "age" => strata.by_age = true,
                    "gender" => strata.by_gender = true,
                    "year" => strata.by_year = true,
                    other => bail!("--strata: {other:?} is not one of age, gender, year"),
                }
            }
            let spec = IncidenceSpec {
                outcome: read_json(outcome)?,
                tars,
                clean_window: a.clean_window,
                strata,
                age_breaks: a.age_breaks.clone(),
                max_tar_days: a.max_tar_days,
                max_outcomes_per_tar: a.max_outcomes_per_tar,
            };
            spec.check().map_err(|(p, m)| spec_error(p, m))?;
            Ok(QueryType::Incidence(spec))
        }
        AnalysisKind::Regress => {
            bail!("--analysis regress starts a run (qiao query --analysis regress)")
        }
    }
}

/// The `--type` query the flags give.
fn type_query(a: &Args) -> anyhow::Result<QueryType> {
    Ok(match a.query_type {
        Kind::CohortCount => {
            if a.age_band_years.is_some() || a.by_index_year {
                bail!("--age-band-years and --by-index-year apply to --type demographics");
            }
            QueryType::CohortCount
        }
        Kind::Demographics => QueryType::Demographics {
            age_band_years: a.age_band_years.unwrap_or(DEFAULT_AGE_BAND_YEARS),
            by_index_year: a.by_index_year,
        },
    })
}
