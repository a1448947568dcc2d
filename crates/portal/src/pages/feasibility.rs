//! Feasibility results and enrollment charts: the per-site and total attrition funnel, the age
//! pyramid and gender split, the site ranking with an enrollment forecast, and enrollment
//! against target. Every number a site released through disclosure control carries the † mark.

use std::collections::BTreeMap;

use qiao_hub::model::Site;
use qiao_hub::protocol::{Gender, Payload, Released};
use qiao_hub::view::{JobView, NetworkTotals, SiteStatus, TotalValue};
use qiao_web::chart::{self, Bar, PyramidRow, Series};
use qiao_web::i18n::{fmt_decimal, fmt_int, fmt_month, t_dyn, tf};
use qiao_web::layout::controlled;
use qiao_web::{html, t, Lang, Markup};

use crate::alliance::ProjectFile;

/// A released number as shown: the value (0 if withheld) and its text with the † mark.
pub fn released(lang: Lang, r: &Released) -> (f64, String) {
    let text = match r {
        Released::Exact { value } => fmt_int(lang, *value as i64),
        Released::Dp {
            value: Some(value),
            sigma,
            ..
        } => format!(
            "{}±{}",
            fmt_int(lang, *value as i64),
            fmt_int(lang, qiao_hub::protocol::half_width_95(*sigma) as i64)
        ),
        Released::Dp {
            value: None,
            threshold,
            ..
        } => format!("<{}", fmt_int(lang, *threshold as i64)),
        Released::BelowThreshold { threshold } => format!("<{}", fmt_int(lang, *threshold as i64)),
        Released::Suppressed { .. } => "–".to_owned(),
        Released::Obfuscated {
            value, max_error, ..
        } => format!(
            "{}±{}",
            fmt_int(lang, *value as i64),
            fmt_int(lang, *max_error as i64)
        ),
    };
    (r.point().unwrap_or(0) as f64, format!("{text}†"))
}

fn total(lang: Lang, v: &TotalValue) -> (f64, String) {
    let sum = fmt_int(lang, v.point_sum as i64);
    let low = fmt_int(lang, v.low as i64);
    // The range of true totals consistent with the released values, in the page's language
    // (the hub's own `display` is the CLI's English).
    let text = match (v.exact, v.high) {
        (true, _) => sum,
        (false, Some(high)) => tf(
            lang,
            "feas.total_range",
            &[
                ("sum", &sum),
                ("low", &low),
                ("high", &fmt_int(lang, high as i64)),
            ],
        ),
        (false, None) => tf(lang, "feas.total_at_least", &[("sum", &sum), ("low", &low)]),
    };
    (v.point_sum as f64, format!("{text}†"))
}

fn site_name(sites: &[Site], id: &str) -> String {
    sites
        .iter()
        .find(|s| s.id.as_str() == id)
        .map(|s| s.name.clone())
        .unwrap_or_else(|| id.to_owned())
}

fn status_text(lang: Lang, s: SiteStatus) -> String {
    t_dyn(
        lang,
        match s {
            SiteStatus::Pending => "feas.status_pending",
            SiteStatus::Done => "feas.status_done",
            SiteStatus::Refused => "feas.status_refused",
            SiteStatus::Failed => "feas.status_failed",
            SiteStatus::Rejected => "feas.status_rejected",
        },
    )
}

fn pct(lang: Lang) -> impl Fn(f64) -> String {
    move |x| format!("{}%", fmt_decimal(lang, x * 100.0, 0))
}

/// Years of index-date counts behind the forecast.
const FORECAST_YEARS: u16 = 3;

/// A site's forecast: new eligible patients per quarter, from its released per-index-year
/// counts over the last [`FORECAST_YEARS`] complete years before the latest year reported.
fn forecast(cells: &BTreeMap<u16, f64>) -> Option<f64> {
    let last = *cells.keys().max()?;
    // The latest year is usually partial: use the complete years before it.
    let years: Vec<f64> = (last.saturating_sub(FORECAST_YEARS)..last)
        .map(|y| cells.get(&y).copied().unwrap_or(0.0))
        .collect();
    if years.is_empty() {
        return None;
    }
    Some(years.iter().sum::<f64>() / (years.len() as f64 * 4.0))
}

/// The feasibility results of one cohort run.
pub fn render(
    lang: Lang,
    id: &str,
    count: Option<&JobView>,
    demo: Option<&JobView>,
    sites: &[Site],
) -> Markup {
    let Some(count) = count else { return html! {} };
    // The funnel: total over the sites that answered, then each site.
    let total_funnel: Option<Vec<Bar>> = match &count.total {
        NetworkTotals::CohortCount {
            rules,
            final_persons,
            sites_done,
            ..
        } if *sites_done > 0 => {
            // Sites release the persons remaining after each rule and the final persons; the
            // count before the first rule (Circe's base count) is not part of the result, so
            // the funnel starts at the first rule (the final cohort's subjects are not it).
            let mut bars = Vec::new();
            for r in rules {
                let (v, d) = total(lang, &r.persons);
                bars.push(Bar::new(r.name.clone(), v, d));
            }
            let (v, d) = total(lang, final_persons);
            let mut last = Bar::new(t(lang, "feas.step_final"), v, d);
            last.highlight = true;
            bars.push(last);
            Some(bars)
        }
        _ => None,
    };
    let site_funnel = |p: &Payload| -> Option<Vec<Bar>> {
        let Payload::CohortCount(c) = p else {
            return None;
        };
        let mut bars = Vec::new();
        for r in &c.rules {
            let (v, d) = released(lang, &r.persons);
            bars.push(Bar::new(r.name.to_string(), v, d));
        }
        let (v, d) = released(lang, &c.final_persons);
        let mut last = Bar::new(t(lang, "feas.step_final"), v, d);
        last.highlight = true;
        bars.push(last);
        Some(bars)
    };
    // Ranking and forecast per site.
    let mut ranking: Vec<(String, f64, String, Option<f64>)> = Vec::new();
    for s in &count.sites {
        let Some(Payload::CohortCount(c)) = &s.payload else {
            continue;
        };
        let (v, d) = released(lang, &c.final_persons);
        let years: BTreeMap<u16, f64> = demo
            .and_then(|dv| dv.sites.iter().find(|x| x.site == s.site))
            .and_then(|x| match &x.payload {
                Some(Payload::Demographics(dm)) => Some(
                    dm.cells
                        .iter()
                        .filter(|c| c.age_band.is_none() && c.gender.is_none())
                        .filter_map(|c| {
                            c.index_year
                                .map(|y| (y, c.count.point().unwrap_or(0) as f64))
                        })
                        .collect(),
                ),
                _ => None,
            })
            .unwrap_or_default();
        ranking.push((site_name(sites, s.site.as_str()), v, d, forecast(&years)));
    }
    ranking.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    // Demographics totals.
    let (pyramid_rows, genders) = match demo.map(|d| &d.total) {
        Some(NetworkTotals::Demographics {
            cells, sites_done, ..
        }) if *sites_done > 0 => {
            let mut bands: BTreeMap<(u8, Option<u8>), PyramidRow> = BTreeMap::new();
            let mut genders = Vec::new();
            for c in cells.iter().filter(|c| c.index_year.is_none()) {
                let (v, d) = total(lang, &c.count);
                match (c.age_band, c.gender) {
                    (Some(b), Some(g @ (Gender::Male | Gender::Female))) => {
                        let row =
                            bands
                                .entry((b.min_age, b.max_age))
                                .or_insert_with(|| PyramidRow {
                                    band: match b.max_age {
                                        Some(h) => format!("{}–{h}", b.min_age),
                                        None => format!("{}+", b.min_age),
                                    },
                                    left: 0.0,
                                    left_display: "0".into(),
                                    right: 0.0,
                                    right_display: "0".into(),
                                });
                        if g == Gender::Male {
                            (row.left, row.left_display) = (v, d);
                        } else {
                            (row.right, row.right_display) = (v, d);
                        }
                    }
                    (None, Some(g)) => {
                        let key = match g {
                            Gender::Male => "feas.male",
                            Gender::Female => "feas.female",
                            Gender::Other => "feas.other",
                            Gender::Unknown => "feas.unknown",
                        };
                        genders.push(Bar::new(t(lang, key), v, d));
                    }
                    _ => {}
                }
            }
            let rows: Vec<PyramidRow> = bands.into_values().rev().collect();
            (rows, genders)
        }
        _ => (Vec::new(), Vec::new()),
    };
    html! {
        table {
            thead { tr { th { (t(lang, "sel.site")) } th { (t(lang, "feas.status")) } th.num { (t(lang, "feas.eligible")) } } }
            tbody {
                @for s in &count.sites {
                    tr {
                        td { (site_name(sites, s.site.as_str())) }
                        td { (status_text(lang, s.status)) }
                        td.num { @if let Some(Payload::CohortCount(c)) = &s.payload { @let (_, d) = released(lang, &c.final_persons); (controlled(lang, d.trim_end_matches('†'))) } }
                    }
                }
            }
        }
        @if let Some(bars) = &total_funnel {
            (chart::funnel(&format!("{id}-funnel-total"), t(lang, "feas.funnel_total"), bars, pct(lang)))
        }
        @for s in &count.sites {
            @if let Some(bars) = s.payload.as_ref().and_then(site_funnel) {
                (chart::funnel(&format!("{id}-funnel-{}", s.site), &tf(lang, "feas.funnel_site", &[("site", &site_name(sites, s.site.as_str()))]), &bars, pct(lang)))
            }
        }
        @if !ranking.is_empty() {
            h3 { (t(lang, "feas.ranking")) }
            (chart::bars(&format!("{id}-ranking"), t(lang, "feas.ranking"), &ranking.iter().map(|(n, v, d, _)| Bar::new(n.clone(), *v, d.clone())).collect::<Vec<_>>()))
            table {
                thead { tr { th { (t(lang, "sel.site")) } th.num { (t(lang, "feas.eligible")) } th.num { (t(lang, "feas.forecast")) } } }
                tbody { @for (n, _, d, fc) in &ranking { tr {
                    td { (n) }
                    td.num { (controlled(lang, d.trim_end_matches('†'))) }
                    td.num { @match fc { Some(x) => (controlled(lang, &fmt_decimal(lang, *x, 1))), None => "–" } }
                } } }
            }
            p.muted { (t(lang, "feas.forecast_note")) }
        }
        @if !pyramid_rows.is_empty() {
            (chart::pyramid(&format!("{id}-pyramid"), t(lang, "feas.pyramid"), t(lang, "feas.male"), t(lang, "feas.female"), &pyramid_rows))
        }
        @if !genders.is_empty() {
            (chart::bars(&format!("{id}-gender"), t(lang, "feas.gender"), &genders))
        }
    }
}

/// Cumulative enrollment per month against a straight line to the target.
pub fn enrollment_chart(lang: Lang, f: &ProjectFile) -> Markup {
    let mut months: BTreeMap<&str, (u64, u64)> = BTreeMap::new();
    for r in &f.reports {
        let e = months.entry(r.month.as_str()).or_default();
        e.0 += u64::from(r.screened);
        e.1 += u64::from(r.enrolled);
    }
    if months.is_empty() {
        return html! { p.muted { (t(lang, "run.no_reports")) } };
    }
    let labels: Vec<String> = months
        .keys()
        .map(|m| {
            let (y, mo) = m.split_once('-').unwrap_or((m, "1"));
            fmt_month(lang, y.parse().unwrap_or(0), mo.parse().unwrap_or(1))
        })
        .collect();
    let mut cum = 0u64;
    let mut cum_s = 0u64;
    let enrolled: Vec<Option<f64>> = months
        .values()
        .map(|(_, e)| {
            cum += e;
            Some(cum as f64)
        })
        .collect();
    let screened: Vec<Option<f64>> = months
        .values()
        .map(|(s, _)| {
            cum_s += s;
            Some(cum_s as f64)
        })
        .collect();
    let target: Vec<Option<f64>> = (0..labels.len())
        .map(|_| Some(f64::from(f.target)))
        .collect();
    html! {
        (chart::line("enrollment", t(lang, "run.chart"), &labels, &[
            Series { label: t(lang, "run.enrolled_cum").to_owned(), class: "s0", values: enrolled },
            Series { label: t(lang, "run.screened_cum").to_owned(), class: "s1", values: screened },
            Series { label: t(lang, "run.target_line").to_owned(), class: "target", values: target },
        ]))
        p { (tf(lang, "run.progress", &[("enrolled", &fmt_int(lang, f.enrolled() as i64)), ("target", &fmt_int(lang, i64::from(f.target)))])) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forecast_uses_the_complete_years_before_the_latest() {
        let cells: BTreeMap<u16, f64> = [
            (2021, 100.0),
            (2022, 40.0),
            (2023, 48.0),
            (2024, 60.0),
            (2025, 5.0),
        ]
        .into();
        // 2022..=2024: (40 + 48 + 60) / 12 quarters.
        assert_eq!(forecast(&cells), Some(148.0 / 12.0));
        let sparse: BTreeMap<u16, f64> = [(2020, 12.0), (2025, 1.0)].into();
        assert_eq!(forecast(&sparse), Some(0.0));
        assert_eq!(forecast(&BTreeMap::new()), None);
    }

    #[test]
    fn network_totals_speak_the_page_language() {
        let v = |high| TotalValue {
            display: "English from the hub".into(),
            point_sum: 1150,
            low: 563,
            high,
            exact: false,
            sites: 2,
            suppressed_sites: 1,
        };
        assert_eq!(total(Lang::En, &v(None)).1, "1,150 (≥ 563)†");
        assert_eq!(total(Lang::ZhCn, &v(None)).1, "1,150（≥563）†");
        assert_eq!(total(Lang::En, &v(Some(1200))).1, "1,150 (563–1,200)†");
        assert_eq!(total(Lang::ZhCn, &v(Some(1200))).0, 1150.0);
    }

    #[test]
    fn released_numbers_are_marked() {
        assert_eq!(
            released(Lang::En, &Released::Exact { value: 12345 }),
            (12345.0, "12,345†".to_owned())
        );
        assert_eq!(
            released(Lang::En, &Released::BelowThreshold { threshold: 10 }),
            (0.0, "<10†".to_owned())
        );
    }
}
