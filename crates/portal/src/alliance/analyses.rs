//! Network analyses launched from a project (issue 15): a characterization (OHDSI
//! FeatureExtraction's aggregated covariates of a target cohort, optionally against a
//! comparator) or an incidence analysis (OHDSI CohortIncidence: a target and an outcome over
//! times at risk and strata), each one hub job over the project's attached cohorts, run on every
//! enrolled site like a feasibility run. The runs are kept in their own table ([`ANALYSES`],
//! by `project/number`); the results are the job's released aggregates and the hub's pooling.
//!
//! Survival (issue 16: Kaplan–Meier of a target and an optional comparator to an outcome, with
//! the log-rank test) is a third kind. Adding an analysis kind: one [`AnalysisKind`] variant,
//! one form parser beside [`characterization_spec`] / [`incidence_spec`] / [`survival_spec`],
//! and its page. Regression (issue 16) is the one kind that is not one job: a multi-round run
//! at the hub (`qiao_hub::service::runs`), launched by [`super::regression`]; its record holds
//! the run's id ([`AnalysisRun::run`]).

use qiao_hub::audit::EntryDraft;
use qiao_hub::model::User;
use qiao_hub::protocol::{
    CharacterizationSpec, IncidenceSpec, IncidenceStrata, Job, JobId, ProjectId, QueryType,
    RegressionModel, SiteId, SurvivalSpec, SurvivalTar, TarAnchor, TarDate, TimeAtRisk, UserId,
    UserRole,
};
use qiao_hub::store::{append_audit, create_job_in, get_json, put_json, scan_json, Table};
use qiao_hub::{HubStore, StoreError};
use serde::{Deserialize, Serialize};

use super::feasibility::{cohort_key, requester};
use super::pipeline::{load, Stage};
use super::refusal::{field, Outcome, Refusal};
use super::tables::{actor, read, write, COHORTS};

/// Analysis runs by `project/number` ([`AnalysisRun`]).
pub const ANALYSES: Table = Table::Extension("analyses");

/// What a run computes, over which of the project's cohorts (by their numbers).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum AnalysisKind {
    /// FeatureExtraction covariates of the target, and of the comparator if any.
    Characterization {
        /// The comparator cohort.
        comparator: Option<u32>,
    },
    /// CohortIncidence of the outcome in the target.
    Incidence {
        /// The outcome cohort.
        outcome: u32,
    },
    /// Kaplan–Meier of the target (and the comparator) to the outcome, and the log-rank test.
    Survival {
        /// The outcome cohort.
        outcome: u32,
        /// The comparator cohort.
        comparator: Option<u32>,
    },
    /// Federated logistic or Cox regression of the outcome in the target (and the comparator):
    /// a multi-round run at the hub ([`AnalysisRun::run`]).
    Regression {
        /// Logistic or Cox.
        model: RegressionModel,
        /// The outcome cohort.
        outcome: u32,
        /// The comparator cohort.
        comparator: Option<u32>,
        /// The covariates as the form named them (`age`, `gender`, `treatment`, `cohort:N`).
        covariates: Vec<String>,
    },
}

impl AnalysisKind {
    /// Its wire name (`characterization`, `incidence`).
    pub fn as_str(&self) -> &'static str {
        match self {
            AnalysisKind::Characterization { .. } => "characterization",
            AnalysisKind::Incidence { .. } => "incidence",
            AnalysisKind::Survival { .. } => "survival",
            AnalysisKind::Regression { .. } => "regression",
        }
    }

    /// The other cohorts a run reads besides the target, with the form field that names each,
    /// in the order [`run_analysis`] hands their definitions to its query.
    fn others(&self) -> Vec<(&'static str, u32)> {
        match *self {
            AnalysisKind::Characterization { comparator } => {
                comparator.map(|c| ("comparator", c)).into_iter().collect()
            }
            AnalysisKind::Incidence { outcome } => vec![("outcome", outcome)],
            AnalysisKind::Survival {
                outcome,
                comparator,
            }
            | AnalysisKind::Regression {
                outcome,
                comparator,
                ..
            } => std::iter::once(("outcome", outcome))
                .chain(comparator.map(|c| ("comparator", c)))
                .collect(),
        }
    }
}

/// One analysis run of a project on the network.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AnalysisRun {
    /// Number within the project (1, 2, …).
    pub n: u32,
    /// What it computes.
    #[serde(flatten)]
    pub kind: AnalysisKind,
    /// The target cohort's number.
    pub target: u32,
    /// The hub job (a regression: its run's round 0).
    pub job: JobId,
    /// A regression's run at the hub (its rounds, state and fit).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run: Option<JobId>,
    /// Who ran it.
    pub by: UserId,
    /// When.
    pub at: i64,
}

pub(super) fn run_key(id: &ProjectId, n: u32) -> String {
    format!("{id}/{n:06}")
}

/// The project's analysis runs, oldest first.
pub fn analysis_runs(store: &dyn HubStore, id: &ProjectId) -> Result<Vec<AnalysisRun>, StoreError> {
    read(store, |tx| scan_json(tx, ANALYSES, &format!("{id}/")))
}

/// One analysis run.
pub fn analysis_run(
    store: &dyn HubStore,
    id: &ProjectId,
    n: u32,
) -> Result<Option<AnalysisRun>, StoreError> {
    read(store, |tx| get_json(tx, ANALYSES, &run_key(id, n)))
}

/// A cohort number from a form field (required, or optional when empty and `optional`).
pub(super) fn cohort_field(
    name: &'static str,
    value: &str,
    optional: bool,
) -> Outcome<Option<u32>> {
    let v = value.trim();
    if v.is_empty() && optional {
        return Ok(None);
    }
    v.parse::<u32>()
        .map(Some)
        .map_err(|_| field(name, "form.err_choice"))
}

/// A comma-separated list of numbers (empty: none).
fn list<T: std::str::FromStr>(name: &'static str, value: &str) -> Outcome<Vec<T>> {
    value
        .split([',', ' ', '，'])
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| s.parse::<T>().map_err(|_| field(name, "ana.err_list")))
        .collect()
}

/// The spec's own problem (from the protocol's `check`) as a refusal of `name`.
fn checked(name: &'static str, r: Result<(), (String, String)>) -> Outcome<()> {
    r.map_err(|(path, what)| Refusal::Field {
        field: name,
        key: "ana.err_spec",
        args: vec![("what", format!("{path}: {what}"))],
    })
}

/// The characterization form: target cohort, comparator cohort (optional), FE analysis ids
/// (empty: FE's default set), covariate ids to release (required by sites under DP).
pub struct CharacterizationForm<'a> {
    pub target: &'a str,
    pub comparator: &'a str,
    pub analyses: &'a str,
    pub covariates: &'a str,
}

/// The incidence form: target and outcome cohorts, times at risk (`start+0:end+0`, one per
/// line or comma), clean window (days), strata (`age`, `gender`, `year`) and age breaks.
pub struct IncidenceForm<'a> {
    pub target: &'a str,
    pub outcome: &'a str,
    pub tars: &'a str,
    pub clean_window: &'a str,
    pub strata: Vec<&'a str>,
    pub age_breaks: &'a str,
}

pub(super) fn collect<T>(errs: &mut Vec<Refusal>, r: Outcome<T>) -> Option<T> {
    r.map_err(|e| errs.push(e)).ok()
}

/// The characterization spec of a form (the comparator's definition filled in at launch), the
/// target and comparator numbers; every bad field refused at once.
pub fn characterization_spec(
    f: &CharacterizationForm<'_>,
) -> Result<(u32, Option<u32>, CharacterizationSpec), Vec<Refusal>> {
    let mut errs = Vec::new();
    let target = collect(&mut errs, cohort_field("target", f.target, false)).flatten();
    let comparator = collect(&mut errs, cohort_field("comparator", f.comparator, true));
    let analyses = collect(&mut errs, list::<u32>("analyses", f.analyses));
    if let Some(a) = &analyses {
        if let Some(bad) = a
            .iter()
            .find(|&&id| qiao_analysis::characterization::prespec(id).is_none())
        {
            errs.push(Refusal::Field {
                field: "analyses",
                key: "ana.err_analysis",
                args: vec![("id", bad.to_string())],
            });
        }
    }
    let covariate_ids = collect(&mut errs, list::<i64>("covariates", f.covariates));
    let spec = CharacterizationSpec {
        comparator: None,
        analyses: analyses.unwrap_or_default(),
        covariate_ids: covariate_ids.unwrap_or_default(),
    };
    if let Err(e) = checked("covariates", spec.check()) {
        errs.push(e);
    }
    match (target, comparator, errs.is_empty()) {
        (Some(t), Some(c), true) if Some(t) == c => Err(vec![field("comparator", "ana.err_same")]),
        (Some(t), Some(c), true) => Ok((t, c, spec)),
        _ => Err(errs),
    }
}

/// One time at risk, `start+0:end+0` (anchor `start` or `end`, a signed day offset).
pub fn parse_tar(s: &str) -> Option<TimeAtRisk> {
    let anchor = |a: &str| -> Option<TarAnchor> {
        let a = a.trim();
        let (date, rest) = if let Some(r) = a.strip_prefix("start") {
            (TarDate::Start, r)
        } else {
            (TarDate::End, a.strip_prefix("end")?)
        };
        let offset = match rest.trim() {
            "" => 0,
            r => r.strip_prefix('+').unwrap_or(r).trim().parse().ok()?,
        };
        Some(TarAnchor {
            date_field: date,
            offset,
        })
    };
    let (a, b) = s.split_once(':')?;
    Some(TimeAtRisk {
        start: anchor(a)?,
        end: anchor(b)?,
    })
}

/// The incidence spec of a form (the outcome's definition filled in at launch), the target and
/// outcome numbers.
pub fn incidence_spec(f: &IncidenceForm<'_>) -> Result<(u32, u32, IncidenceSpec), Vec<Refusal>> {
    let mut errs = Vec::new();
    let target = collect(&mut errs, cohort_field("target", f.target, false)).flatten();
    let outcome = collect(&mut errs, cohort_field("outcome", f.outcome, false)).flatten();
    let mut tars = Vec::new();
    for t in f
        .tars
        .split(['\n', ','])
        .map(str::trim)
        .filter(|t| !t.is_empty())
    {
        match parse_tar(t) {
            Some(tar) => tars.push(tar),
            None => errs.push(Refusal::Field {
                field: "tars",
                key: "ana.err_tar",
                args: vec![("tar", t.to_owned())],
            }),
        }
    }
    if tars.is_empty()
        && errs
            .iter()
            .all(|e| !matches!(e, Refusal::Field { field: "tars", .. }))
    {
        tars.push(TimeAtRisk::cohort_period());
    }
    let clean_window = match f.clean_window.trim() {
        "" => Some(0),
        v => collect(
            &mut errs,
            v.parse::<u32>()
                .map_err(|_| field("clean_window", "ana.err_days")),
        ),
    };
    let mut strata = IncidenceStrata::default();
    for s in &f.strata {
        match *s {
            "age" => strata.by_age = true,
            "gender" => strata.by_gender = true,
            "year" => strata.by_year = true,
            _ => errs.push(field("strata", "form.err_choice")),
        }
    }
    let age_breaks = collect(&mut errs, list::<u8>("age_breaks", f.age_breaks)).unwrap_or_default();
    let spec = IncidenceSpec {
        outcome: serde_json::json!({}),
        tars,
        clean_window: clean_window.unwrap_or(0),
        strata,
        age_breaks,
        max_tar_days: IncidenceSpec::DEFAULT_MAX_TAR_DAYS,
        max_outcomes_per_tar: IncidenceSpec::DEFAULT_MAX_OUTCOMES_PER_TAR,
    };
    if errs.is_empty() {
        let name = if spec.tars.len() > qiao_hub::protocol::analyses::MAX_TARS {
            "tars"
        } else {
            "age_breaks"
        };
        if let Err(e) = checked(name, spec.check()) {
            errs.push(e);
        }
    }
    match (target, outcome) {
        (Some(t), Some(o)) if errs.is_empty() => Ok((t, o, spec)),
        _ => Err(errs),
    }
}

/// Runs an analysis of the project's cohort `target` on every enrolled site: one hub job whose
/// definition is the target's and whose query is `query` given the other cohorts' definitions
/// (in the order of [`AnalysisKind::others`]). Only a sponsor member, in the stages
/// the hub runs queries after feasibility began (feasibility, site selection, running). The
/// caller wakes the polling sites.
pub fn run_analysis(
    store: &dyn HubStore,
    id: &ProjectId,
    target: u32,
    kind: AnalysisKind,
    query: impl Fn(Vec<serde_json::Value>) -> QueryType,
    by: &User,
    now: i64,
) -> Outcome<AnalysisRun> {
    write(store, |tx| {
        launchable(tx, id, by)?;
        let def: serde_json::Value = get_json(tx, COHORTS, &cohort_key(id, target))?
            .ok_or_else(|| field("target", "form.err_choice"))?;
        let mut other_defs = Vec::new();
        for (name, n) in kind.others() {
            other_defs.push(
                get_json::<serde_json::Value>(tx, COHORTS, &cohort_key(id, n))?
                    .ok_or_else(|| field(name, "form.err_choice"))?,
            );
        }
        let sites: Vec<SiteId> = scan_json::<qiao_hub::model::Site>(tx, Table::Sites, "")?
            .into_iter()
            .filter(|s| s.public_key.is_some())
            .map(|s| s.id)
            .collect();
        if sites.is_empty() {
            return Err(Refusal::State("state.err_no_sites"));
        }
        let job = Job {
            job_id: JobId::random(),
            project_id: id.clone(),
            query: query(other_defs),
            definition: def,
            requested_by: requester(by),
            created_at: now,
            floors: qiao_hub::floors::stated(tx)?,
        };
        let rec = create_job_in(tx, &job, &sites, now)?;
        record_run(tx, id, target, kind.clone(), rec.job.job_id, None, by, now)
    })
}

/// Whether `by` may launch an analysis of project `id` now: a sponsor member, in the stages the
/// hub runs queries after feasibility began (feasibility, site selection, running).
pub(super) fn launchable(
    tx: &mut dyn qiao_hub::store::Tx,
    id: &ProjectId,
    by: &User,
) -> Outcome<qiao_hub::model::Project> {
    let (f, p) = load(tx, id)?;
    if by.role != UserRole::SponsorResearcher || !p.members.contains(&by.id) {
        return Err(Refusal::Forbidden);
    }
    if !matches!(
        f.stage,
        Stage::Feasibility | Stage::SiteSelection | Stage::Running
    ) {
        return Err(Refusal::State("ana.err_stage"));
    }
    Ok(p)
}

/// Records a launched analysis as the project's next run (audited).
#[allow(clippy::too_many_arguments)]
pub(super) fn record_run(
    tx: &mut dyn qiao_hub::store::Tx,
    id: &ProjectId,
    target: u32,
    kind: AnalysisKind,
    job: JobId,
    run: Option<JobId>,
    by: &User,
    now: i64,
) -> Outcome<AnalysisRun> {
    let n = scan_json::<AnalysisRun>(tx, ANALYSES, &format!("{id}/"))?
        .iter()
        .map(|r| r.n)
        .max()
        .unwrap_or(0)
        + 1;
    let what = kind.as_str();
    let rec = AnalysisRun {
        n,
        kind,
        target,
        job,
        run,
        by: by.id.clone(),
        at: now,
    };
    put_json(tx, ANALYSES, &run_key(id, n), &rec)?;
    append_audit(
        tx,
        EntryDraft::new(now, actor(by), "project.analysis.run")
            .project(id.to_string())
            .decision(format!("analysis {n}: {what} of cohort {target}")),
    )?;
    Ok(rec)
}

/// A characterization from its form, run on the network.
pub fn run_characterization(
    store: &dyn HubStore,
    id: &ProjectId,
    form: &CharacterizationForm<'_>,
    by: &User,
    now: i64,
) -> Result<AnalysisRun, Vec<Refusal>> {
    let (target, comparator, spec) = characterization_spec(form)?;
    run_analysis(
        store,
        id,
        target,
        AnalysisKind::Characterization { comparator },
        |others| {
            QueryType::Characterization(CharacterizationSpec {
                comparator: others.into_iter().next(),
                ..spec.clone()
            })
        },
        by,
        now,
    )
    .map_err(|e| vec![e])
}

/// An incidence analysis from its form, run on the network.
pub fn run_incidence(
    store: &dyn HubStore,
    id: &ProjectId,
    form: &IncidenceForm<'_>,
    by: &User,
    now: i64,
) -> Result<AnalysisRun, Vec<Refusal>> {
    let (target, outcome, spec) = incidence_spec(form)?;
    run_analysis(
        store,
        id,
        target,
        AnalysisKind::Incidence { outcome },
        |others| {
            QueryType::Incidence(IncidenceSpec {
                outcome: others.into_iter().next().unwrap_or_default(),
                ..spec.clone()
            })
        },
        by,
        now,
    )
    .map_err(|e| vec![e])
}

/// The survival form: target, outcome and (optional) comparator cohorts, the time at risk as
/// `qiao analyze survival --tar` writes it (`start+0:obs_end`, `start+0:end+0`,
/// `start+0:start+365`; empty: the default, to the observation period end), the grid and the
/// horizon in days (empty: 30 and 3,650).
pub struct SurvivalForm<'a> {
    pub target: &'a str,
    pub outcome: &'a str,
    pub comparator: &'a str,
    pub tar: &'a str,
    pub grid_days: &'a str,
    pub horizon_days: &'a str,
}

/// Days from a form field (empty: `default`).
fn days(name: &'static str, value: &str, default: u32) -> Outcome<u32> {
    match value.trim() {
        "" => Ok(default),
        v => v.parse().map_err(|_| field(name, "ana.err_days")),
    }
}

/// The survival spec of a form (the outcome's and comparator's definitions filled in at
/// launch), the target, outcome and comparator numbers; every bad field refused at once.
pub fn survival_spec(
    f: &SurvivalForm<'_>,
) -> Result<(u32, u32, Option<u32>, SurvivalSpec), Vec<Refusal>> {
    let mut errs = Vec::new();
    let target = collect(&mut errs, cohort_field("target", f.target, false)).flatten();
    let outcome = collect(&mut errs, cohort_field("outcome", f.outcome, false)).flatten();
    let comparator = collect(&mut errs, cohort_field("comparator", f.comparator, true));
    let tar = match f.tar.trim() {
        "" => Some(SurvivalTar::default()),
        t => match t.parse::<qiao_analysis::time_to_event::TimeAtRisk>() {
            Ok(tar) => Some(SurvivalTar::from(tar)),
            Err(e) => {
                errs.push(Refusal::Field {
                    field: "tar",
                    key: "ana.err_spec",
                    args: vec![("what", e.to_string())],
                });
                None
            }
        },
    };
    let grid = collect(
        &mut errs,
        days("grid_days", f.grid_days, SurvivalSpec::DEFAULT_GRID_DAYS),
    );
    let horizon = collect(
        &mut errs,
        days(
            "horizon_days",
            f.horizon_days,
            SurvivalSpec::DEFAULT_HORIZON_DAYS,
        ),
    );
    let spec = SurvivalSpec {
        outcome: serde_json::json!({}),
        comparator: None,
        tar: tar.unwrap_or_default(),
        grid_days: grid.unwrap_or(SurvivalSpec::DEFAULT_GRID_DAYS),
        horizon_days: horizon.unwrap_or(SurvivalSpec::DEFAULT_HORIZON_DAYS),
    };
    if grid.is_some() && horizon.is_some() {
        let bad = spec.check().err().map(|(path, what)| {
            let name = if path == "$.grid_days" {
                "grid_days"
            } else {
                "horizon_days"
            };
            Refusal::Field {
                field: name,
                key: "ana.err_spec",
                args: vec![("what", format!("{path}: {what}"))],
            }
        });
        errs.extend(bad);
    }
    match (target, outcome, comparator) {
        (Some(t), _, Some(Some(c))) if errs.is_empty() && t == c => {
            Err(vec![field("comparator", "ana.err_same")])
        }
        (Some(t), Some(o), Some(c)) if errs.is_empty() => Ok((t, o, c, spec)),
        _ => Err(errs),
    }
}

/// A survival analysis from its form, run on the network.
pub fn run_survival(
    store: &dyn HubStore,
    id: &ProjectId,
    form: &SurvivalForm<'_>,
    by: &User,
    now: i64,
) -> Result<AnalysisRun, Vec<Refusal>> {
    let (target, outcome, comparator, spec) = survival_spec(form)?;
    run_analysis(
        store,
        id,
        target,
        AnalysisKind::Survival {
            outcome,
            comparator,
        },
        |others| {
            let mut others = others.into_iter();
            QueryType::Survival(SurvivalSpec {
                outcome: others.next().unwrap_or_default(),
                comparator: others.next(),
                ..spec.clone()
            })
        },
        by,
        now,
    )
    .map_err(|e| vec![e])
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The fields refused, in order.
    fn fields(errs: &[Refusal]) -> Vec<&'static str> {
        errs.iter()
            .filter_map(|e| match e {
                Refusal::Field { field, .. } => Some(*field),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn forms_parse_into_specs_and_name_the_bad_field() {
        let (t, c, spec) = characterization_spec(&CharacterizationForm {
            target: "1",
            comparator: "2",
            analyses: "1, 3,102",
            covariates: "",
        })
        .unwrap();
        assert_eq!((t, c, spec.analyses), (1, Some(2), vec![1, 3, 102]));
        let errs = characterization_spec(&CharacterizationForm {
            target: "x",
            comparator: "",
            analyses: "1,99999",
            covariates: "-5",
        })
        .unwrap_err();
        assert_eq!(fields(&errs), ["target", "analyses", "covariates"]);
        let (t, o, spec) = incidence_spec(&IncidenceForm {
            target: "1",
            outcome: "2",
            tars: "start+0:end+0\nstart+1:start+365",
            clean_window: "30",
            strata: vec!["age", "gender"],
            age_breaks: "40,65",
        })
        .unwrap();
        assert_eq!((t, o, spec.clean_window), (1, 2, 30));
        assert_eq!(spec.tars[1].end.offset, 365);
        assert_eq!(spec.tars[1].end.date_field, TarDate::Start);
        assert!(spec.strata.by_age && spec.strata.by_gender && !spec.strata.by_year);
        assert_eq!(spec.age_breaks, [40, 65]);
        // Age strata without breaks: the protocol's own check, on the breaks field.
        let errs = incidence_spec(&IncidenceForm {
            target: "1",
            outcome: "2",
            tars: "",
            clean_window: "",
            strata: vec!["age"],
            age_breaks: "",
        })
        .unwrap_err();
        assert!(
            matches!(
                errs[..],
                [Refusal::Field {
                    field: "age_breaks",
                    ..
                }]
            ),
            "{errs:?}"
        );
        assert_eq!(
            parse_tar("end-7:end"),
            Some(TimeAtRisk {
                start: TarAnchor {
                    date_field: TarDate::End,
                    offset: -7
                },
                end: TarAnchor {
                    date_field: TarDate::End,
                    offset: 0
                },
            })
        );
        assert_eq!(parse_tar("start+x:end"), None);
        let (t, o, c, spec) = survival_spec(&SurvivalForm {
            target: "1",
            outcome: "3",
            comparator: "2",
            tar: "start+1:start+365",
            grid_days: "7",
            horizon_days: "",
        })
        .unwrap();
        assert_eq!(
            (t, o, c, spec.grid_days, spec.horizon_days),
            (1, 3, Some(2), 7, 3650)
        );
        assert_eq!(spec.tar.start_offset, 1);
        assert_eq!(
            spec.tar.end,
            qiao_hub::protocol::SurvivalTarEnd::CohortStart(365)
        );
        // A missing outcome, a bad comparator, time at risk and grid: each named; a grid of 0
        // days: the protocol's own check, on the grid field.
        let errs = survival_spec(&SurvivalForm {
            target: "1",
            outcome: "",
            comparator: "x",
            tar: "end+0:obs_end",
            grid_days: "-1",
            horizon_days: "",
        })
        .unwrap_err();
        assert_eq!(fields(&errs), ["outcome", "comparator", "tar", "grid_days"]);
        let errs = survival_spec(&SurvivalForm {
            target: "1",
            outcome: "2",
            comparator: "",
            tar: "",
            grid_days: "0",
            horizon_days: "",
        })
        .unwrap_err();
        assert!(
            matches!(
                errs[..],
                [Refusal::Field {
                    field: "grid_days",
                    ..
                }]
            ),
            "{errs:?}"
        );
    }
}
