//! Feasibility: cohort definitions attached to a project (pasted or from the library), run on
//! the network as cohort count and demographics jobs.

use std::collections::{BTreeMap, HashMap};

use qiao_hub::audit::EntryDraft;
use qiao_hub::model::{SiteSeen, User};
use qiao_hub::protocol::{Job, JobId, ProjectId, QueryType, Requester, SiteId, UserRole};
use qiao_hub::store::{append_audit, create_job_in, get_json, put_json, scan_json, Table};
use qiao_hub::{HubStore, StoreError};

use super::input::{check_definition, text_ok};
use super::library::LibraryEntry;
use super::pipeline::{load, CohortRef, CohortSource, CohortVersion, FeasibilityRun, Stage};
use super::refusal::{field, Outcome, Refusal};
use super::tables::{actor, read, write, COHORTS, LIBRARY, PIPELINE};

pub(super) fn cohort_key(id: &ProjectId, n: u32) -> String {
    format!("{id}/{n:06}")
}

/// A sponsor member attaches a cohort definition (pasted JSON, or a library id) while drafting
/// (so the reviewers read it) or in the approved or feasibility stage.
pub fn attach_cohort(
    store: &dyn HubStore,
    id: &ProjectId,
    name: &str,
    definition: &str,
    library_id: &str,
    by: &User,
    now: i64,
) -> Result<CohortRef, Vec<Refusal>> {
    put_cohort(store, id, None, name, definition, library_id, by, now)
}

/// A sponsor member replaces cohort `n`'s definition (same stages as [`attach_cohort`]): the new
/// one becomes the next version, the replaced one is kept (its runs keep their version).
#[allow(clippy::too_many_arguments)]
pub fn replace_cohort(
    store: &dyn HubStore,
    id: &ProjectId,
    n: u32,
    name: &str,
    definition: &str,
    library_id: &str,
    by: &User,
    now: i64,
) -> Result<CohortRef, Vec<Refusal>> {
    put_cohort(store, id, Some(n), name, definition, library_id, by, now)
}

/// Attaches a new cohort (`replace` None) or a new version of cohort `replace`.
#[allow(clippy::too_many_arguments)]
fn put_cohort(
    store: &dyn HubStore,
    id: &ProjectId,
    replace: Option<u32>,
    name: &str,
    definition: &str,
    library_id: &str,
    by: &User,
    now: i64,
) -> Result<CohortRef, Vec<Refusal>> {
    let mut errs = Vec::new();
    let from_library = !library_id.trim().is_empty();
    let mut value = None;
    if !from_library {
        if !text_ok(name, 200, false) {
            errs.push(field("name", "form.err_text"));
        }
        match check_definition(definition) {
            Ok(v) => value = Some(v),
            Err(e) => errs.push(e),
        }
    }
    if !errs.is_empty() {
        return Err(errs);
    }
    write(store, |tx| {
        let (mut f, p) = load(tx, id)?;
        if by.role != UserRole::SponsorResearcher || !p.members.contains(&by.id) {
            return Err(Refusal::Forbidden);
        }
        if !matches!(f.stage, Stage::Draft | Stage::Approved | Stage::Feasibility) {
            return Err(Refusal::State("state.err_attach_stage"));
        }
        let (name, def, source) = if from_library {
            let e: LibraryEntry = get_json(tx, LIBRARY, &format!("d/{}", library_id.trim()))?
                .ok_or_else(|| field("library", "form.err_no_phenotype"))?;
            (
                e.name.clone(),
                e.definition.clone(),
                CohortSource::Library { id: e.id.clone() },
            )
        } else {
            (
                name.trim().to_owned(),
                value.clone().unwrap_or_default(),
                CohortSource::Pasted,
            )
        };
        let c = match replace {
            None => {
                let n = f.cohorts.iter().map(|c| c.n).max().unwrap_or(0) + 1;
                f.cohorts.push(CohortRef {
                    n,
                    name,
                    source,
                    by: by.id.clone(),
                    at: now,
                    runs: Vec::new(),
                    versions: Vec::new(),
                });
                f.cohorts.last_mut().ok_or(Refusal::NotFound)?
            }
            Some(n) => {
                let c = f
                    .cohorts
                    .iter_mut()
                    .find(|c| c.n == n)
                    .ok_or(Refusal::NotFound)?;
                let old: serde_json::Value =
                    get_json(tx, COHORTS, &cohort_key(id, n))?.ok_or(Refusal::NotFound)?;
                let v = c.version();
                put_json(tx, COHORTS, &version_key(id, n, v), &old)?;
                c.versions.push(CohortVersion {
                    v,
                    name: std::mem::replace(&mut c.name, name),
                    source: std::mem::replace(&mut c.source, source),
                    by: std::mem::replace(&mut c.by, by.id.clone()),
                    at: std::mem::replace(&mut c.at, now),
                });
                c
            }
        };
        let c = c.clone();
        put_json(tx, COHORTS, &cohort_key(id, c.n), &def)?;
        put_json(tx, PIPELINE, id.as_str(), &f)?;
        let (action, decision) = match replace {
            None => (
                "project.cohort.attach",
                format!("cohort {}: {}", c.n, c.name),
            ),
            Some(_) => (
                "project.cohort.replace",
                format!("cohort {} version {}: {}", c.n, c.version(), c.name),
            ),
        };
        append_audit(
            tx,
            EntryDraft::new(now, actor(by), action)
                .project(id.to_string())
                .decision(decision),
        )?;
        Ok(c)
    })
    .map_err(|e| vec![e])
}

/// Where a replaced version's definition is kept.
fn version_key(id: &ProjectId, n: u32, v: u32) -> String {
    format!("{id}/{n:06}/v{v:04}")
}

/// Version `v` of cohort `n`'s definition (the current one or a replaced one).
pub fn cohort_version(
    store: &dyn HubStore,
    id: &ProjectId,
    n: u32,
    v: u32,
) -> Result<Option<serde_json::Value>, StoreError> {
    read(store, |tx| {
        let f: Option<super::pipeline::ProjectFile> = get_json(tx, PIPELINE, id.as_str())?;
        let Some(c) = f.and_then(|f| f.cohorts.into_iter().find(|c| c.n == n)) else {
            return Ok(None);
        };
        if v == c.version() {
            get_json(tx, COHORTS, &cohort_key(id, n))
        } else if (1..c.version()).contains(&v) {
            get_json(tx, COHORTS, &version_key(id, n, v))
        } else {
            Ok(None)
        }
    })
}

/// A cohort's stored definition.
pub fn cohort_definition(
    store: &dyn HubStore,
    id: &ProjectId,
    n: u32,
) -> Result<Option<serde_json::Value>, StoreError> {
    read(store, |tx| get_json(tx, COHORTS, &cohort_key(id, n)))
}

/// Who asks a job: the user, their role and organization (their institution, else the user).
pub(super) fn requester(by: &User) -> Requester {
    Requester {
        user_id: by.id.clone(),
        role: by.role,
        organization: by
            .institution
            .clone()
            .unwrap_or_else(|| format!("user:{}", by.id.as_str())),
    }
}

/// Age band width of feasibility demographics, in years.
pub const FEASIBILITY_AGE_BAND: u8 = 10;

/// Age band width of the index-year margin: one band below 100 years and one above, so the
/// table is index year × 2 bands × gender and its row totals add to the persons per year.
pub const YEARS_AGE_BAND: u8 = 100;

/// Each site's data date as its last poll reported it (`YYYY-MM-DD`), from the hub's view of
/// the sites (`Hub::sites_seen`): what a run records of the data it was sent to.
pub fn data_dates(seen: &HashMap<SiteId, SiteSeen>) -> BTreeMap<SiteId, String> {
    seen.iter()
        .filter_map(|(site, s)| {
            let d = s.status.as_ref()?.data_as_of.clone()?;
            Some((site.clone(), d))
        })
        .collect()
}

/// Runs a cohort on every enrolled site, recorded with the cohort in the same transaction: a
/// cohort count job (the attrition funnel) and the two margins the charts need, each its own
/// demographics job — age band × gender (the pyramid; not crossed with the index year, which
/// would split the cohort into thousands of cells nearly all below the threshold) and index
/// year (the forecast). The run keeps the definition version and each site's data date from
/// `data_as_of` ([`data_dates`]). Returns the run. The caller wakes the polling sites.
pub fn run_feasibility(
    store: &dyn HubStore,
    id: &ProjectId,
    n: u32,
    by: &User,
    data_as_of: &BTreeMap<SiteId, String>,
    now: i64,
) -> Outcome<FeasibilityRun> {
    write(store, |tx| {
        let (mut f, p) = load(tx, id)?;
        if by.role != UserRole::SponsorResearcher || !p.members.contains(&by.id) {
            return Err(Refusal::Forbidden);
        }
        if f.stage != Stage::Feasibility {
            return Err(Refusal::State("state.err_not_feasibility"));
        }
        let def: serde_json::Value =
            get_json(tx, COHORTS, &cohort_key(id, n))?.ok_or(Refusal::NotFound)?;
        let sites: Vec<SiteId> = scan_json::<qiao_hub::model::Site>(tx, Table::Sites, "")?
            .into_iter()
            .filter(|s| s.public_key.is_some())
            .map(|s| s.id)
            .collect();
        if sites.is_empty() {
            return Err(Refusal::State("state.err_no_sites"));
        }
        let floors = qiao_hub::floors::stated(tx)?;
        let mk = |query: QueryType| Job {
            job_id: JobId::random(),
            project_id: id.clone(),
            query,
            definition: def.clone(),
            requested_by: requester(by),
            created_at: now,
            floors,
        };
        let count = create_job_in(tx, &mk(QueryType::CohortCount), &sites, now)?;
        let demo = create_job_in(
            tx,
            &mk(QueryType::Demographics {
                age_band_years: FEASIBILITY_AGE_BAND,
                by_index_year: false,
            }),
            &sites,
            now,
        )?;
        let years = create_job_in(
            tx,
            &mk(QueryType::Demographics {
                age_band_years: YEARS_AGE_BAND,
                by_index_year: true,
            }),
            &sites,
            now,
        )?;
        let run = FeasibilityRun {
            count_job: count.job.job_id,
            demographics_job: demo.job.job_id,
            years_job: Some(years.job.job_id),
            at: now,
            version: None,
            data_as_of: sites
                .iter()
                .filter_map(|s| Some((s.clone(), data_as_of.get(s)?.clone())))
                .collect(),
        };
        let c = f
            .cohorts
            .iter_mut()
            .find(|c| c.n == n)
            .ok_or(Refusal::NotFound)?;
        let run = FeasibilityRun {
            version: Some(c.version()),
            ..run
        };
        c.runs.push(run.clone());
        put_json(tx, PIPELINE, id.as_str(), &f)?;
        Ok(run)
    })
}
