//! `qiao query`: ask the network through a hub and print the per-site and total funnel.

use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context};
use qiao_hub::api::{QueryRequest, DEFAULT_AGE_BAND_YEARS};
use qiao_hub::protocol::{ProjectId, QueryType, SiteId};
use qiao_hub::{report, HubClient};

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
    /// The OHDSI ATLAS/Circe cohort definition (JSON).
    pub definition: PathBuf,
}

pub fn run(a: Args) -> anyhow::Result<()> {
    let text = std::fs::read_to_string(&a.definition)
        .with_context(|| format!("reading {}", a.definition.display()))?;
    let definition: serde_json::Value = serde_json::from_str(&text)
        .with_context(|| format!("{}: not valid JSON", a.definition.display()))?;
    let project = ProjectId::new(a.project.clone())?;
    let sites = a
        .sites
        .iter()
        .filter(|s| !s.is_empty())
        .map(|s| SiteId::new(s.clone()))
        .collect::<Result<Vec<_>, _>>()?;
    let query = match a.query_type {
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
