//! `qiao analyze survival`: Kaplan–Meier curves of a target (and a comparator) cohort to the first
//! outcome, medians, at-risk tables and the log-rank test, on one store (exact, as lifelines).

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::Context;
use qiao_analysis::cohorts::cohort_rows;
use qiao_analysis::survival::{
    logrank, EventTable, Grid, KaplanMeier, RiskSetTable, INTERVAL_METHOD,
};
use qiao_analysis::time_to_event::{follow_up, FollowUp, TimeAtRisk};
use qiao_cohort::CohortRow;
use qiao_store::Store;
use serde_json::{json, Value};

/// The cohorts of a time-to-event analysis on a store (shared with `qiao analyze regress`).
#[derive(clap::Args)]
pub struct CohortArgs {
    /// The store file.
    #[arg(long)]
    pub store: PathBuf,
    /// Target cohort definition (ATLAS/Circe JSON).
    #[arg(long)]
    pub target: PathBuf,
    /// Outcome cohort definition: the event is its first start within the time at risk.
    #[arg(long)]
    pub outcome: PathBuf,
    /// Comparator cohort definition.
    #[arg(long)]
    pub comparator: Option<PathBuf>,
    /// Time at risk: start+N:obs_end | start+N:end+M (cohort end) | start+N:start+M (fixed
    /// horizon); always censored at the observation period end. Time zero is its start.
    #[arg(long, default_value = "start+0:obs_end")]
    pub tar: TimeAtRisk,
}

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub cohorts: CohortArgs,
    /// Days of the at-risk table under the curves.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "0,30,90,180,365,730,1095,1825"
    )]
    pub at_risk_times: Vec<i32>,
    /// Put times on a grid of this many days (t at ⌈t / N⌉·N), as the network's survival
    /// analysis releases them: the curve the network pools, on one store.
    #[arg(long)]
    pub grid_days: Option<i32>,
    /// With --grid-days: follow-up cut at this many days (later follow-up censored there).
    #[arg(long, requires = "grid_days", default_value_t = 3650)]
    pub horizon_days: i32,
    /// One JSON object on stdout.
    #[arg(long)]
    pub json: bool,
}

/// The rows of the cohort defined in `path` on `store`.
pub(super) fn cohort_file(store: &Store, path: &Path) -> anyhow::Result<Vec<CohortRow>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    Ok(cohort_rows(store, &path.display().to_string(), &text)?)
}

pub(super) fn open_store(path: &Path) -> anyhow::Result<Store> {
    Store::open(path).with_context(|| format!("opening store {}", path.display()))
}

/// What became of a cohort's persons.
pub(super) fn follow_up_json(f: &FollowUp) -> Value {
    json!({
        "persons": f.persons,
        "followed": f.subjects.len(),
        "events": f.events(),
        "no_observation_period": f.no_observation_period,
        "empty_time_at_risk": f.empty_time_at_risk,
    })
}

struct Arm {
    follow_up: FollowUp,
    table: EventTable,
    km: KaplanMeier,
}

fn arm(
    store: &Store,
    path: &Path,
    outcome: &[CohortRow],
    tar: TimeAtRisk,
    grid: Option<Grid>,
) -> anyhow::Result<Arm> {
    let rows = cohort_file(store, path)?;
    let follow_up = follow_up(store, &rows, outcome, tar);
    let durations = follow_up.subjects.iter().map(|s| (s.time, s.event));
    let table = match grid {
        Some(g) => RiskSetTable::on_grid(g, durations).event_table(),
        None => EventTable::from_durations(durations),
    };
    let km = KaplanMeier::fit(&table);
    Ok(Arm {
        follow_up,
        table,
        km,
    })
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let a = &args.cohorts;
    let store = open_store(&a.store)?;
    let outcome = cohort_file(&store, &a.outcome)?;
    let grid = args
        .grid_days
        .map(|w| Grid::new(w, args.horizon_days))
        .transpose()?;
    let target = arm(&store, &a.target, &outcome, a.tar, grid)?;
    let comparator = a
        .comparator
        .as_deref()
        .map(|c| arm(&store, c, &outcome, a.tar, grid))
        .transpose()?;
    let test = comparator
        .as_ref()
        .and_then(|c| logrank(&target.table, &c.table));
    let mut out = std::io::stdout().lock();
    if args.json {
        let curve = |x: &Arm| serde_json::to_value(&x.km.points).expect("serializable");
        let median = |x: &Arm| serde_json::to_value(x.km.median).expect("serializable");
        let at_risk = |x: &Arm| {
            serde_json::to_value(x.table.at_risk_at(&args.at_risk_times)).expect("serializable")
        };
        let v = json!({
            "km": {"target": curve(&target), "comparator": comparator.as_ref().map(curve)},
            "median": {"target": median(&target), "comparator": comparator.as_ref().map(median)},
            "logrank": test,
            "at_risk": {"target": at_risk(&target), "comparator": comparator.as_ref().map(at_risk)},
            "follow_up": {
                "target": follow_up_json(&target.follow_up),
                "comparator": comparator.as_ref().map(|c| follow_up_json(&c.follow_up)),
            },
            "method": {
                "time_at_risk": a.tar.to_string(),
                "grid": grid,
                "time_unit": "days",
                "interval": INTERVAL_METHOD,
                "median": "first time the curve (interval bound) is <= 0.5, as lifelines; null: not reached",
                "logrank": "lifelines logrank_test (chi-square, 1 df)",
            },
        });
        writeln!(out, "{}", serde_json::to_string_pretty(&v)?)?;
        return Ok(());
    }
    writeln!(
        out,
        "time at risk {} (days from time zero); {INTERVAL_METHOD}",
        a.tar
    )?;
    let days = |d: Option<i32>| d.map_or("not reached".to_string(), |d| d.to_string());
    for (name, x) in [
        ("target", Some(&target)),
        ("comparator", comparator.as_ref()),
    ] {
        let Some(x) = x else { continue };
        let f = &x.follow_up;
        let m = x.km.median;
        writeln!(
            out,
            "\n{name}: {} persons, {} followed, {} events; median {} (95% CI {} to {})",
            f.persons,
            f.subjects.len(),
            f.events(),
            days(m.time),
            days(m.lower),
            days(m.upper)
        )?;
        writeln!(
            out,
            "  {:>6} {:>8} {:>7} {:>8} {:>9} {:>19}",
            "day", "at risk", "events", "censored", "survival", "95% CI"
        )?;
        for r in x.table.at_risk_at(&args.at_risk_times) {
            let s = x.km.survival_at(r.time);
            let i =
                x.km.points
                    .partition_point(|p| p.time <= r.time)
                    .saturating_sub(1);
            let p = x.km.points.get(i);
            writeln!(
                out,
                "  {:>6} {:>8} {:>7} {:>8} {:>9.4} {:>9.4}–{:<9.4}",
                r.time,
                r.at_risk,
                r.events,
                r.censored,
                s,
                p.map_or(1.0, |p| p.lower),
                p.map_or(1.0, |p| p.upper)
            )?;
        }
    }
    match (&comparator, test) {
        (Some(_), Some(t)) => writeln!(
            out,
            "\nlog-rank: chi2 {:.4}, df {}, p {:.4e}",
            t.chi2, t.df, t.p
        )?,
        (Some(_), None) => writeln!(out, "\nlog-rank: no events, nothing to test")?,
        _ => {}
    }
    Ok(())
}
