//! A survival result (issue 16): the Kaplan–Meier curves of the target and the comparator with
//! their 95% interval bands, the number at risk under the plot, the medians with their
//! intervals, the log-rank test, what disclosure control did to the released risk-set tables,
//! and the curves as CSV — pooled (the hub's curves from the summed tables) or one site's.

use qiao_analysis::network::survival::{pool_sites, PooledSurvival};
use qiao_analysis::survival::{AtRisk, KmPoint, Median};
use qiao_hub::protocol::{Payload, QueryType, Released, SurvivalResult, SurvivalSpec};
use qiao_hub::view::NetworkTotals;
use qiao_web::chart::{self, StepCurve};
use qiao_web::i18n::{fmt_decimal, tf};
use qiao_web::{html, t, Lang, Markup};

use super::{cohort_name, num, shown, site_name, total, Loaded, Scope};
use crate::alliance::AnalysisKind;

fn spec_of(l: &Loaded) -> Option<&SurvivalSpec> {
    match &l.view.query {
        QueryType::Survival(s) => Some(s),
        _ => None,
    }
}

fn result_of(l: &Loaded, scope: &Scope<'_>) -> Option<PooledSurvival> {
    match scope {
        Scope::Pooled => match &l.view.total {
            NetworkTotals::Survival(p) if p.sites_done > 0 => Some(p.clone()),
            _ => None,
        },
        Scope::Site(s) => match (spec_of(l), s.payload.as_ref()) {
            (Some(spec), Some(Payload::Survival(r))) => {
                Some(pool_sites(spec, &[(s.site.to_string(), r)]))
            }
            _ => None,
        },
    }
}

/// The arms' names: the target's and the comparator's cohort.
fn arm_names(l: &Loaded) -> [String; 2] {
    let comparator = match l.run.kind {
        AnalysisKind::Survival {
            comparator: Some(c),
            ..
        } => cohort_name(&l.file.cohorts, c),
        _ => String::new(),
    };
    [cohort_name(&l.file.cohorts, l.run.target), comparator]
}

fn median_text(lang: Lang, m: &Median) -> String {
    let d =
        |x: Option<i32>| x.map_or_else(|| t(lang, "ana.not_reached").to_owned(), |v| v.to_string());
    match m.time {
        None => d(None),
        Some(_) => tf(
            lang,
            "ana.ci",
            &[
                ("x", &d(m.time)),
                ("low", &d(m.lower)),
                ("high", &d(m.upper)),
            ],
        ),
    }
}

/// Whether a released count was withheld (read as 0 by the hub), or noised.
fn withheld(r: &Released) -> bool {
    matches!(
        r,
        Released::BelowThreshold { .. }
            | Released::Suppressed { .. }
            | Released::Dp { value: None, .. }
    )
}

fn noised(r: &Released) -> bool {
    matches!(
        r,
        Released::Obfuscated { .. } | Released::Dp { value: Some(_), .. }
    )
}

/// What disclosure control did to each answering site's tables, per arm, in words.
fn controlled(lang: Lang, l: &Loaded, only: Option<&str>, names: &[String; 2]) -> Markup {
    let answers: Vec<(String, &SurvivalResult)> = l
        .view
        .sites
        .iter()
        .filter(|s| only.is_none_or(|o| o == s.site.as_str()))
        .filter_map(|s| match s.payload.as_ref() {
            Some(Payload::Survival(r)) => Some((site_name(&l.sites, s.site.as_str()), r)),
            _ => None,
        })
        .collect();
    let mut lines = Vec::new();
    for (site, r) in &answers {
        for (arm, name) in [Some(&r.target), r.comparator.as_ref()]
            .into_iter()
            .zip(names)
        {
            let Some(arm) = arm else { continue };
            let cells: Vec<&Released> = arm.events.iter().chain(&arm.censored).collect();
            let hidden = cells.iter().filter(|r| withheld(r)).count();
            let noisy = cells
                .iter()
                .chain([&&arm.entered])
                .filter(|r| noised(r))
                .count();
            if withheld(&arm.entered) {
                lines.push(tf(
                    lang,
                    "ana.km_withheld",
                    &[("site", site), ("arm", name)],
                ));
            } else if hidden > 0 || noisy > 0 {
                lines.push(tf(
                    lang,
                    "ana.km_cells",
                    &[
                        ("site", site),
                        ("arm", name),
                        ("hidden", &hidden.to_string()),
                        ("cells", &cells.len().to_string()),
                        ("noised", &noisy.to_string()),
                    ],
                ));
            }
        }
    }
    html! {
        @if lines.is_empty() {
            p.muted.controlled { (t(lang, "ana.km_exact")) }
        } @else {
            ul.controlled { @for x in &lines { li { (x) } } }
            p.muted.controlled { (t(lang, "ana.km_post")) }
        }
    }
}

fn curve(label: &str, class: &'static str, points: &[KmPoint]) -> StepCurve {
    StepCurve {
        label: label.to_owned(),
        class,
        points: points
            .iter()
            .map(|p| (f64::from(p.time), p.survival, p.lower, p.upper))
            .collect(),
    }
}

/// One arm as the page shows it.
struct Arm<'a> {
    name: &'a str,
    km: &'a [KmPoint],
    at_risk: &'a [AtRisk],
    median: &'a Median,
    /// Persons followed, in the portal's notation.
    entered: String,
}

/// The page body.
pub(super) fn render(lang: Lang, base: &str, l: &Loaded, scope: &Scope<'_>) -> Markup {
    let (Some(spec), Some(r)) = (spec_of(l), result_of(l, scope)) else {
        return html! { p.muted { (t(lang, "ana.no_result")) } };
    };
    let names = arm_names(l);
    let only = match scope {
        Scope::Pooled => None,
        Scope::Site(s) => Some(s.site.as_str()),
    };
    let mut arms = vec![Arm {
        name: &names[0],
        km: &r.km.target,
        at_risk: &r.at_risk.target,
        median: &r.median.target,
        entered: shown(lang, &total(&r.entered.target)),
    }];
    if let (Some(km), Some(at_risk), Some(median), Some(e)) = (
        &r.km.comparator,
        &r.at_risk.comparator,
        &r.median.comparator,
        &r.entered.comparator,
    ) {
        arms.push(Arm {
            name: &names[1],
            km,
            at_risk,
            median,
            entered: shown(lang, &total(e)),
        });
    }
    let curves: Vec<StepCurve> = arms
        .iter()
        .zip(["s0", "s1"])
        .map(|(a, class)| curve(a.name, class, a.km))
        .collect();
    let times: Vec<i32> = r.at_risk.target.iter().map(|a| a.time).collect();
    html! {
        p { a href=(format!("{base}/km.csv")) download { (t(lang, "ana.csv_km")) } }
        p.muted {
            (tf(lang, "ana.km_design", &[("tar", &r.method.time_at_risk), ("grid", &spec.grid_days.to_string()), ("horizon", &spec.horizon_days.to_string())]))
            " " (t(lang, "ana.km_intervals"))
        }
        (controlled(lang, l, only, &names))
        (chart::km("km", t(lang, "ana.km_chart"), t(lang, "ana.days"), &curves))
        div.scroll { table.at-risk {
            caption { (t(lang, "ana.at_risk_table")) }
            thead { tr { th { (t(lang, "ana.arm")) } @for d in &times { th.num { (d) } } } }
            tbody { @for arm in &arms { tr {
                td { (arm.name) }
                @for a in arm.at_risk { td.num { (a.at_risk) } }
            } } }
        } }
        table.summary {
            thead { tr { th { (t(lang, "ana.arm")) } th.num { (t(lang, "ana.followed")) } th.num { (t(lang, "ana.median")) } } }
            tbody { @for arm in &arms { tr {
                td { (arm.name) } td.num { (arm.entered) } td.num { (median_text(lang, arm.median)) }
            } } }
        }
        @if arms.len() > 1 {
            p.logrank { @match &r.logrank {
                Some(x) => (tf(lang, "ana.logrank", &[("chi2", &fmt_decimal(lang, x.chi2, 3)), ("df", &x.df.to_string()), ("p", &format!("{:.4}", x.p))])),
                None => (t(lang, "ana.logrank_none")),
            } }
        }
    }
}

/// Every scope's curves (pooled, then each site), one row per arm and time: lifelines'
/// `survival_function_` and `confidence_interval_` columns with the event table's.
pub(super) fn km_csv(l: &Loaded) -> Vec<Vec<String>> {
    let mut out = vec![[
        "scope", "arm", "time", "at_risk", "events", "censored", "survival", "std_err", "lower",
        "upper",
    ]
    .map(str::to_owned)
    .to_vec()];
    let mut scopes = vec![("pooled".to_owned(), result_of(l, &Scope::Pooled))];
    for s in &l.view.sites {
        scopes.push((s.site.to_string(), result_of(l, &Scope::Site(s))));
    }
    for (scope, r) in scopes {
        let Some(r) = r else { continue };
        let arms = std::iter::once(("target", &r.km.target))
            .chain(r.km.comparator.as_ref().map(|c| ("comparator", c)));
        for (arm, points) in arms {
            for p in points {
                out.push(vec![
                    scope.clone(),
                    arm.to_owned(),
                    p.time.to_string(),
                    p.at_risk.to_string(),
                    p.events.to_string(),
                    p.censored.to_string(),
                    num(Some(p.survival)),
                    num(Some(p.std_err)),
                    num(Some(p.lower)),
                    num(Some(p.upper)),
                ]);
            }
        }
    }
    out
}
