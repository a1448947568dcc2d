//! An incidence result: per time at risk, one table of strata (all, then by age group, gender
//! and start year as the spec asked) with CohortIncidence's proportion per 100 persons and rate
//! per 100 person-years and their exact 95% intervals, a rate chart with interval whiskers, and
//! CSV — pooled or one site's.

use qiao_analysis::network::incidence::{Incidence, PooledIncidence, PooledIncidenceRow};
use qiao_analysis::network::Analysis;
use qiao_hub::protocol::{IncidenceSpec, Payload, QueryType, TarDate, TimeAtRisk};
use qiao_hub::view::NetworkTotals;
use qiao_web::chart::{self, Interval};
use qiao_web::i18n::{fmt_decimal, tf};
use qiao_web::{html, t, Lang, Markup};

use super::{controlled_note, num, shown, total, Loaded, Scope};

fn spec_of(l: &Loaded) -> Option<&IncidenceSpec> {
    match &l.view.query {
        QueryType::Incidence(s) => Some(s),
        _ => None,
    }
}

fn result_of(l: &Loaded, scope: &Scope<'_>) -> Option<PooledIncidence> {
    match scope {
        Scope::Pooled => match &l.view.total {
            NetworkTotals::Incidence(p) if p.sites_done > 0 => Some(p.clone()),
            _ => None,
        },
        Scope::Site(s) => match (spec_of(l), s.payload.as_ref()) {
            (Some(spec), Some(Payload::Incidence(r))) => Some(Incidence::pool(spec, &[r])),
            _ => None,
        },
    }
}

/// A time at risk as `start+0 → end+365`.
fn tar_text(t: &TimeAtRisk) -> String {
    let a = |x: &qiao_hub::protocol::TarAnchor| {
        let d = match x.date_field {
            TarDate::Start => "start",
            TarDate::End => "end",
        };
        format!("{d}{:+}", x.offset)
    };
    format!("{} → {}", a(&t.start), a(&t.end))
}

/// An age group's label from the spec's breaks (CohortIncidence's groups: `<b0`, `b0–b1-1`, …,
/// `≥bn`), numbered from 1.
fn age_label(breaks: &[u8], id: u32) -> String {
    let i = id as usize;
    match (i, breaks.len()) {
        (1, n) if n > 0 => format!("<{}", breaks[0]),
        (i, n) if i >= 2 && i <= n => format!("{}–{}", breaks[i - 2], breaks[i - 1] - 1),
        (i, n) if i == n + 1 => format!("≥{}", breaks[n - 1]),
        _ => id.to_string(),
    }
}

/// A row's stratum in words.
fn stratum(lang: Lang, spec: &IncidenceSpec, r: &PooledIncidenceRow) -> String {
    let mut parts = Vec::new();
    if let Some(a) = r.age_group_id {
        parts.push(tf(
            lang,
            "ana.age",
            &[("age", &age_label(&spec.age_breaks, a))],
        ));
    }
    match r.gender_concept_id {
        Some(8507) => parts.push(t(lang, "feas.male").to_owned()),
        Some(8532) => parts.push(t(lang, "feas.female").to_owned()),
        Some(g) => parts.push(g.to_string()),
        None => {}
    }
    if let Some(y) = r.start_year {
        parts.push(y.to_string());
    }
    if parts.is_empty() {
        t(lang, "ana.all").to_owned()
    } else {
        parts.join(" · ")
    }
}

fn with_ci(lang: Lang, x: Option<f64>, low: Option<f64>, high: Option<f64>) -> String {
    match (x, low, high) {
        (Some(x), Some(l), Some(h)) => tf(
            lang,
            "ana.ci",
            &[
                ("x", &fmt_decimal(lang, x, 2)),
                ("low", &fmt_decimal(lang, l, 2)),
                ("high", &fmt_decimal(lang, h, 2)),
            ],
        ),
        (Some(x), _, _) => fmt_decimal(lang, x, 2),
        _ => "–".to_owned(),
    }
}

/// The page body.
pub(super) fn render(lang: Lang, base: &str, l: &Loaded, scope: &Scope<'_>) -> Markup {
    let (Some(spec), Some(r)) = (spec_of(l), result_of(l, scope)) else {
        return html! { p.muted { (t(lang, "ana.no_result")) } };
    };
    html! {
        p { a href=(format!("{base}/incidence.csv")) download { (t(lang, "ana.csv_incidence")) } }
        p.muted { (tf(lang, "ana.inc_design", &[("days", &spec.clean_window.to_string())])) " " (t(lang, "ana.inc_intervals")) }
        @for (i, tar) in spec.tars.iter().enumerate() {
            @let id = i as u32 + 1;
            @let rows: Vec<&PooledIncidenceRow> = r.rows.iter().filter(|x| x.tar_id == id).collect();
            section.tar {
                h3 { (tf(lang, "ana.tar", &[("id", &id.to_string()), ("tar", &tar_text(tar))])) }
                (controlled_note(lang, rows.iter().flat_map(|x| [&x.persons_at_risk, &x.person_days, &x.person_outcomes, &x.outcomes]).map(total).collect::<Vec<_>>().iter()))
                div.scroll { table.incidence {
                    thead { tr {
                        th { (t(lang, "ana.stratum")) }
                        th.num { (t(lang, "ana.persons_at_risk")) }
                        th.num { (t(lang, "ana.person_years")) }
                        th.num { (t(lang, "ana.person_outcomes")) }
                        th.num { (t(lang, "ana.outcomes")) }
                        th.num { (t(lang, "ana.ip")) }
                        th.num { (t(lang, "ana.ir")) }
                    } }
                    tbody { @for x in &rows { tr {
                        td { (stratum(lang, spec, x)) }
                        td.num { (shown(lang, &total(&x.persons_at_risk))) }
                        td.num { (fmt_decimal(lang, x.person_days.point_sum as f64 / 365.25, 1)) "†" }
                        td.num { (shown(lang, &total(&x.person_outcomes))) }
                        td.num { (shown(lang, &total(&x.outcomes))) }
                        td.num { (with_ci(lang, x.incidence_proportion_p100p, x.ip_ci95_low, x.ip_ci95_high)) }
                        td.num { (with_ci(lang, x.incidence_rate_p100py, x.ir_ci95_low, x.ir_ci95_high)) }
                    } } }
                } }
                @let bars: Vec<Interval> = rows.iter().filter_map(|x| Some(Interval {
                    label: stratum(lang, spec, x),
                    point: x.incidence_rate_p100py?,
                    low: x.ir_ci95_low,
                    high: x.ir_ci95_high,
                    display: with_ci(lang, x.incidence_rate_p100py, x.ir_ci95_low, x.ir_ci95_high),
                })).collect();
                (chart::forest(&format!("rate-{id}"), &tf(lang, "ana.rate_chart", &[("id", &id.to_string())]), &bars, None))
            }
        }
    }
}

/// Every scope's rows (pooled, then each site): CohortIncidence's columns in lower case with
/// the intervals, each count as its point value, and what disclosure control did to the row.
pub(super) fn rows_csv(l: &Loaded) -> Vec<Vec<String>> {
    let mut out = vec![[
        "scope",
        "tar_id",
        "age_group_id",
        "gender_concept_id",
        "start_year",
        "persons_at_risk_pe",
        "persons_at_risk",
        "person_days_pe",
        "person_days",
        "person_outcomes_pe",
        "person_outcomes",
        "outcomes_pe",
        "outcomes",
        "incidence_proportion_p100p",
        "ip_ci95_low",
        "ip_ci95_high",
        "incidence_rate_p100py",
        "ir_ci95_low",
        "ir_ci95_high",
        "controlled",
    ]
    .map(str::to_owned)
    .to_vec()];
    let mut scopes = vec![("pooled".to_owned(), result_of(l, &Scope::Pooled))];
    for s in &l.view.sites {
        scopes.push((s.site.to_string(), result_of(l, &Scope::Site(s))));
    }
    let opt = |x: Option<u32>| x.map_or_else(String::new, |v| v.to_string());
    for (scope, r) in scopes {
        for x in r.iter().flat_map(|r| &r.rows) {
            let counts = [
                ("persons_at_risk_pe", &x.persons_at_risk_pe),
                ("persons_at_risk", &x.persons_at_risk),
                ("person_days_pe", &x.person_days_pe),
                ("person_days", &x.person_days),
                ("person_outcomes_pe", &x.person_outcomes_pe),
                ("person_outcomes", &x.person_outcomes),
                ("outcomes_pe", &x.outcomes_pe),
                ("outcomes", &x.outcomes),
            ];
            let controlled: Vec<String> = counts
                .iter()
                .filter(|(_, v)| !v.exact)
                .map(|(k, v)| format!("{k}: {}", super::total_cols(&total(v))[0]))
                .collect();
            let mut row = vec![
                scope.clone(),
                x.tar_id.to_string(),
                opt(x.age_group_id),
                opt(x.gender_concept_id),
                x.start_year.map_or_else(String::new, |v| v.to_string()),
            ];
            row.extend(counts.iter().map(|(_, v)| v.point_sum.to_string()));
            row.extend([
                num(x.incidence_proportion_p100p),
                num(x.ip_ci95_low),
                num(x.ip_ci95_high),
                num(x.incidence_rate_p100py),
                num(x.ir_ci95_low),
                num(x.ir_ci95_high),
                controlled.join("; "),
            ]);
            out.push(row);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn age_groups_are_named_as_cohort_incidence_numbers_them() {
        let b = [40, 65];
        assert_eq!(
            [1, 2, 3, 4].map(|i| age_label(&b, i)),
            ["<40", "40–64", "≥65", "4"]
        );
        let tar = crate::alliance::parse_tar("start+1:end-7").unwrap();
        assert_eq!(tar_text(&tar), "start+1 → end-7");
    }
}
