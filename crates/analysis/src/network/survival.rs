//! Kaplan–Meier and the log-rank test across the network.
//!
//! Each site follows each person's first entry of the target (and the comparator) to the first
//! outcome within the time at risk ([`crate::time_to_event::follow_up`], as `qiao analyze
//! survival`), puts the durations on the spec's grid ([`Grid`]: fixed by the spec, so the shape
//! of the release never depends on data) and releases per arm its risk-set table:
//!
//! | statistic (per arm) | one person changes it by at most |
//! | --- | --- |
//! | `entered` (persons followed) | 1 |
//! | `events k`, `censored k` over every grid point k (one family: each person is in exactly one cell) | 1, in one cell |
//!
//! So an arm costs two releases (ρ = 2 · 1/(2σ²) under DP), whatever the grid. A person in both
//! cohorts is in both arms: each arm is charged on its own. The hub sums the released tables,
//! derives at-risk by post-processing ([`RiskSetTable::monotone`]: counts rounded and clamped at
//! 0, removals cut so that at-risk never increases nor goes below 0) and fits the curves with
//! the local code ([`KaplanMeier::fit`], [`logrank`]): with exact counts the pooled curve is the
//! Kaplan–Meier of the union with times on the grid.

use qiao_disclosure::{Discloser, Statistic};
use qiao_protocol::{
    DisclosureSummary, Released, RiskSetResult, SurvivalResult, SurvivalSpec, SurvivalTar,
    SurvivalTarEnd,
};
use serde::{Deserialize, Serialize};

use super::{release, to_disclosure, Analysis, AnalysisError, Cdm, Site, Sum};
use crate::survival::{
    logrank, AtRisk, EventTable, Grid, KaplanMeier, KmPoint, LogRank, Median, RiskSetTable,
    AT_RISK_TIMES, INTERVAL_METHOD,
};
use crate::time_to_event::{follow_up, TarEnd, TimeAtRisk};

/// Kaplan–Meier curves and the log-rank test from risk-set tables on a grid.
pub struct Survival;

/// The arms: name and the family of its cells.
const ARMS: [(&str, &str); 2] = [
    ("target", "survival target cells"),
    ("comparator", "survival comparator cells"),
];

impl From<SurvivalTar> for TimeAtRisk {
    fn from(t: SurvivalTar) -> Self {
        TimeAtRisk {
            start_offset: t.start_offset,
            end: match t.end {
                SurvivalTarEnd::ObservationEnd => TarEnd::ObservationEnd,
                SurvivalTarEnd::CohortEnd(n) => TarEnd::CohortEnd(n),
                SurvivalTarEnd::CohortStart(n) => TarEnd::CohortStart(n),
            },
        }
    }
}

impl From<TimeAtRisk> for SurvivalTar {
    fn from(t: TimeAtRisk) -> Self {
        SurvivalTar {
            start_offset: t.start_offset,
            end: match t.end {
                TarEnd::ObservationEnd => SurvivalTarEnd::ObservationEnd,
                TarEnd::CohortEnd(n) => SurvivalTarEnd::CohortEnd(n),
                TarEnd::CohortStart(n) => SurvivalTarEnd::CohortStart(n),
            },
        }
    }
}

/// The spec's grid (a checked spec's days fit `i32`).
pub fn grid_of(spec: &SurvivalSpec) -> Grid {
    let days = |d: u32| i32::try_from(d).unwrap_or(i32::MAX);
    Grid {
        width: days(spec.grid_days).max(1),
        horizon: days(spec.horizon_days).max(1),
    }
}

/// The arms a spec asks for.
fn arms(spec: &SurvivalSpec) -> &'static [(&'static str, &'static str)] {
    if spec.comparator.is_some() {
        &ARMS
    } else {
        &ARMS[..1]
    }
}

/// An arm's statistics: `entered`, then the events and the censorings of every grid point.
fn arm_stats(arm: &str, family: &'static str, cells: usize) -> Vec<Statistic> {
    let mut s = vec![Statistic::person_count(format!("{arm} entered"))];
    for list in ["events", "censored"] {
        s.extend(
            (0..cells)
                .map(|k| Statistic::disjoint_person_count(format!("{arm} {list} {k}"), family)),
        );
    }
    s
}

impl Analysis for Survival {
    type Spec = SurvivalSpec;
    type Released = SurvivalResult;
    type Pooled = PooledSurvival;

    fn check(spec: &SurvivalSpec) -> Result<(), (String, String)> {
        spec.check()
    }

    fn statistics(
        spec: &SurvivalSpec,
        _target: &serde_json::Value,
        _d: &Discloser,
        _cdm: &dyn Cdm,
    ) -> Result<Vec<Statistic>, AnalysisError> {
        Self::check(spec).map_err(|(p, m)| AnalysisError::Invalid(format!("{p}: {m}")))?;
        let cells = spec.cells();
        Ok(arms(spec)
            .iter()
            .flat_map(|&(arm, family)| arm_stats(arm, family, cells))
            .collect())
    }

    fn release(spec: &SurvivalSpec, site: &mut Site<'_>) -> Result<SurvivalResult, AnalysisError> {
        let grid = grid_of(spec);
        let tar = TimeAtRisk::from(spec.tar);
        let outcome = (site.engine)(&spec.outcome)?.rows;
        let mut out = Vec::new();
        for &(arm, family) in arms(spec) {
            let def = match arm {
                "target" => site.target,
                _ => spec.comparator.as_ref().unwrap_or(site.target),
            };
            let rows = (site.engine)(def)?.rows;
            let f = follow_up(site.store()?, &rows, &outcome, tar);
            let table = RiskSetTable::on_grid(grid, f.subjects.iter().map(|s| (s.time, s.event)));
            let who = site
                .discloser
                .digest(f.subjects.iter().map(|s| s.person_id));
            if arm == "target" {
                // SHRINE's repeated-result lockout, on the target's persons (as a count's final
                // line).
                site.record_result(&who)?;
            }
            let stats = arm_stats(arm, family, grid.cells());
            let values = std::iter::once(table.entered)
                .chain(table.events.iter().copied())
                .chain(table.censored.iter().copied());
            let mut released: Vec<Released> = stats
                .iter()
                .zip(values)
                .map(|(stat, v)| release(site, stat, &who, v as u64))
                .collect();
            let censored = released.split_off(1 + grid.cells());
            let events = released.split_off(1);
            out.push(RiskSetResult {
                entered: released.remove(0),
                events,
                censored,
            });
        }
        let comparator = (out.len() > 1).then(|| out.remove(1));
        Ok(SurvivalResult {
            target: out.remove(0),
            comparator,
            disclosure: site.summary.clone(),
        })
    }

    fn pool(spec: &SurvivalSpec, released: &[&SurvivalResult]) -> PooledSurvival {
        let named: Vec<(String, &SurvivalResult)> = released
            .iter()
            .enumerate()
            .map(|(i, r)| (format!("site {}", i + 1), *r))
            .collect();
        pool_sites(spec, &named)
    }
}

/// One site's arm as the hub reads it: the table (cells withheld read as 0), or `None` when
/// the number of persons followed was withheld; and what was noised or withheld, in words.
fn read_arm(
    arm: &RiskSetResult,
    summary: &DisclosureSummary,
    width: i32,
) -> (Option<RiskSetTable>, Vec<String>) {
    let point = |r: &Released| to_disclosure(r, summary).point();
    let mut notes = Vec::new();
    if arm
        .events
        .iter()
        .chain(&arm.censored)
        .chain([&arm.entered])
        .any(|r| !matches!(r, Released::Exact { .. } | Released::BelowThreshold { .. }))
    {
        notes.push("noised".to_string());
    }
    let Some(entered) = point(&arm.entered) else {
        notes.push(format!(
            "withheld (persons followed below the threshold {})",
            summary.min_cell_count
        ));
        return (None, notes);
    };
    let hidden = arm
        .events
        .iter()
        .chain(&arm.censored)
        .filter(|r| point(r).is_none())
        .count();
    if hidden > 0 && summary.min_cell_count > 1 {
        notes.push(format!(
            "{hidden} of {} cells below the threshold {}, counted as 0",
            arm.events.len() + arm.censored.len(),
            summary.min_cell_count
        ));
    }
    let cells =
        |v: &[Released]| -> Vec<f64> { v.iter().map(|r| point(r).unwrap_or(0) as f64).collect() };
    let table = RiskSetTable {
        width,
        entered: entered as f64,
        events: cells(&arm.events),
        censored: cells(&arm.censored),
    };
    (Some(table), notes)
}

/// The curve of one arm's table: at-risk derived by post-processing, then the local fit.
fn curve(table: &RiskSetTable) -> (KaplanMeier, Vec<AtRisk>, EventTable) {
    let events = table.monotone().event_table();
    (
        KaplanMeier::fit(&events),
        events.at_risk_at(&AT_RISK_TIMES),
        events,
    )
}

/// Pools the released tables of the named sites (in the order given).
pub fn pool_sites(spec: &SurvivalSpec, released: &[(String, &SurvivalResult)]) -> PooledSurvival {
    let grid = grid_of(spec);
    let two = spec.comparator.is_some();
    let mut pooled: [Vec<RiskSetTable>; 2] = [Vec::new(), Vec::new()];
    let mut entered: [Vec<(&Released, &DisclosureSummary)>; 2] = [Vec::new(), Vec::new()];
    let mut sites = Vec::new();
    let mut disclosure = Vec::new();
    for (name, r) in released {
        let mut fits: [Option<(KaplanMeier, Vec<AtRisk>, EventTable)>; 2] = [None, None];
        for (i, arm) in [Some(&r.target), r.comparator.as_ref()]
            .into_iter()
            .enumerate()
        {
            let Some(arm) = arm else { continue };
            entered[i].push((&arm.entered, &r.disclosure));
            let (table, notes) = read_arm(arm, &r.disclosure, grid.width);
            if !notes.is_empty() {
                disclosure.push(format!("{name} {}: {}", ARMS[i].0, notes.join("; ")));
            }
            if let Some(t) = table {
                fits[i] = Some(curve(&t));
                pooled[i].push(t);
            }
        }
        let [target, comparator] = fits;
        let logrank = match (&target, &comparator) {
            (Some(a), Some(b)) => logrank(&a.2, &b.2),
            _ => None,
        };
        sites.push(SiteSurvival {
            site: name.clone(),
            target: target.map(|(km, at_risk, _)| ArmCurve { km, at_risk }),
            comparator: comparator.map(|(km, at_risk, _)| ArmCurve { km, at_risk }),
            logrank,
        });
    }
    let fit = |i: usize| {
        let table = RiskSetTable::pool(&pooled[i]).unwrap_or(RiskSetTable {
            width: grid.width,
            entered: 0.0,
            events: Vec::new(),
            censored: Vec::new(),
        });
        curve(&table)
    };
    let (t_km, t_at, t_events) = fit(0);
    let comparator = two.then(|| fit(1));
    let logrank = comparator
        .as_ref()
        .and_then(|(_, _, c)| logrank(&t_events, c));
    if disclosure.is_empty() {
        disclosure.push(format!(
            "exact counts: the pooled curve is the Kaplan–Meier of the sites' persons with times on the {}-day grid",
            grid.width
        ));
    } else {
        disclosure.push(
            "at-risk derived from the released counts by post-processing: counts rounded and clamped at 0, removals cut so that at-risk never increases nor goes below 0".into(),
        );
    }
    let (c_km, c_at) = match comparator {
        Some((km, at, _)) => (Some(km), Some(at)),
        None => (None, None),
    };
    PooledSurvival {
        sites_done: released.len(),
        km: Curves {
            target: t_km.points.clone(),
            comparator: c_km.as_ref().map(|k| k.points.clone()),
        },
        median: Medians {
            target: t_km.median,
            comparator: c_km.map(|k| k.median),
        },
        logrank,
        at_risk: AtRiskTables {
            target: t_at,
            comparator: c_at,
        },
        entered: Entered {
            target: Sum::of(&entered[0]),
            comparator: two.then(|| Sum::of(&entered[1])),
        },
        sites,
        method: Method {
            time_at_risk: TimeAtRisk::from(spec.tar).to_string(),
            time_unit: "days".into(),
            grid_days: spec.grid_days,
            horizon_days: spec.horizon_days,
            interval: INTERVAL_METHOD.into(),
            median:
                "first time the curve (interval bound) is <= 0.5, as lifelines; null: not reached"
                    .into(),
            logrank: "lifelines logrank_test (chi-square, 1 df) on the pooled grid table".into(),
        },
        disclosure,
    }
}

/// Kaplan–Meier curves by arm.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Curves {
    pub target: Vec<KmPoint>,
    pub comparator: Option<Vec<KmPoint>>,
}

/// Medians by arm.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Medians {
    pub target: Median,
    pub comparator: Option<Median>,
}

/// At-risk tables by arm.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AtRiskTables {
    pub target: Vec<AtRisk>,
    pub comparator: Option<Vec<AtRisk>>,
}

/// The network sums of the persons followed, by arm.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Entered {
    pub target: Sum,
    pub comparator: Option<Sum>,
}

/// One arm's curve at one site.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ArmCurve {
    pub km: KaplanMeier,
    pub at_risk: Vec<AtRisk>,
}

/// One site's curves: `None` for an arm whose table was withheld.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SiteSurvival {
    pub site: String,
    pub target: Option<ArmCurve>,
    pub comparator: Option<ArmCurve>,
    pub logrank: Option<LogRank>,
}

/// How the numbers were computed, in words.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Method {
    pub time_at_risk: String,
    pub time_unit: String,
    pub grid_days: u32,
    pub horizon_days: u32,
    pub interval: String,
    pub median: String,
    pub logrank: String,
}

/// A survival analysis pooled across sites, in the shape of `qiao analyze survival --json`
/// (curves, medians, log-rank, at-risk tables by arm) plus the per-site curves and what was
/// noised or withheld.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PooledSurvival {
    /// Sites added.
    pub sites_done: usize,
    pub km: Curves,
    pub median: Medians,
    pub logrank: Option<LogRank>,
    pub at_risk: AtRiskTables,
    pub entered: Entered,
    /// Per site, in the job's order.
    pub sites: Vec<SiteSurvival>,
    pub method: Method,
    /// What was noised, withheld or counted as 0, and how at-risk was derived.
    pub disclosure: Vec<String>,
}
