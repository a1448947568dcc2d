//! Feasibility results and enrollment charts: the per-site and total attrition funnel (from
//! the persons with a qualifying event down to the final cohort), the age pyramid and gender
//! split, the site ranking with an enrollment forecast, and enrollment against target.
//!
//! One notation for every uncertain number ([`uncertain`]): the released value, then the range
//! of true values it is consistent with — `435 (423–447)`; withheld everywhere: the range alone,
//! `0–9`, never 0. Every number a site released through disclosure control carries the † mark.

use std::collections::BTreeMap;

use qiao_hub::model::Site;
use qiao_hub::protocol::{DisclosureSummary, Gender, Payload, Released};
use qiao_hub::view::{site_value, JobView, NetworkTotals, SiteJobView, SiteStatus, TotalValue};
use qiao_web::chart::{self, Bar, PyramidRow, Series};
use qiao_web::i18n::{fmt_decimal, fmt_int, fmt_month, t_dyn, tf};
use qiao_web::layout::controlled;
use qiao_web::{html, t, Lang, Markup};

use crate::alliance::{enrolled, RecruitmentLine};

/// The views of one feasibility run's jobs.
pub struct RunViews {
    /// The cohort count (funnel).
    pub count: Option<JobView>,
    /// Age band × gender.
    pub demographics: Option<JobView>,
    /// Index year margin (runs before it was requested have none).
    pub years: Option<JobView>,
}

/// What the forecast needs from the project: the enrollment target, those enrolled so far
/// and the date it counts from (the run's: the rates are as of then).
#[derive(Clone, Copy)]
pub struct Target {
    /// Patients to enroll.
    pub target: u64,
    /// Enrolled so far (from the sites' reports).
    pub enrolled: u64,
    /// The feasibility run's time, unix seconds.
    pub now: i64,
}

/// An uncertain number as the whole portal writes it, with its bar length: exact → `435`;
/// released with a range → `435 (423–447)` (95% for noised values, certain for obfuscated or
/// withheld ones); withheld at every site → the range alone, `0–9` (its midpoint as the bar);
/// unbounded (table suppression) → `435 (≥ 400)`. The † mark is added by the caller.
pub fn uncertain(lang: Lang, v: &TotalValue) -> (f64, String) {
    let n = |x: u64| fmt_int(lang, x as i64);
    let withheld = v.sites > 0 && v.suppressed_sites == v.sites;
    match (v.exact, v.high) {
        (true, _) => (v.point_sum as f64, n(v.point_sum)),
        (false, Some(h)) if h == v.low => (h as f64, n(h)),
        (false, Some(h)) if withheld => (
            (v.low + h) as f64 / 2.0,
            tf(
                lang,
                "feas.range_only",
                &[("low", &n(v.low)), ("high", &n(h))],
            ),
        ),
        (false, Some(h)) => (
            v.point_sum as f64,
            tf(
                lang,
                "feas.total_range",
                &[
                    ("sum", &n(v.point_sum)),
                    ("low", &n(v.low)),
                    ("high", &n(h)),
                ],
            ),
        ),
        (false, None) if withheld => (
            v.low as f64,
            tf(lang, "feas.withheld_at_least", &[("low", &n(v.low))]),
        ),
        (false, None) => (
            v.point_sum as f64,
            tf(
                lang,
                "feas.total_at_least",
                &[("sum", &n(v.point_sum)), ("low", &n(v.low))],
            ),
        ),
    }
}

/// A site's released value in the one notation, with the † mark.
pub fn released(lang: Lang, r: &Released, disclosure: &DisclosureSummary) -> (f64, String) {
    let (v, text) = uncertain(lang, &site_value(r, disclosure));
    (v, format!("{text}†"))
}

pub(crate) fn total(lang: Lang, v: &TotalValue) -> (f64, String) {
    let (x, text) = uncertain(lang, v);
    (x, format!("{text}†"))
}

fn site_name(sites: &[Site], id: &str) -> String {
    sites
        .iter()
        .find(|s| s.id.as_str() == id)
        .map(|s| s.name.clone())
        .unwrap_or_else(|| id.to_owned())
}

/// A site's status for one job, in words that say who it waits on: not yet picked up by the
/// site, or delivered and waiting there (a query its data steward approves by hand waits for
/// them; the hub cannot tell approval from computing, so it names the steward, who decides).
pub(crate) fn status_text(lang: Lang, s: &SiteJobView, name: &str) -> String {
    match s.status {
        SiteStatus::Pending if s.deliveries == 0 => {
            tf(lang, "feas.status_not_picked", &[("site", name)])
        }
        SiteStatus::Pending => tf(lang, "feas.status_waiting_steward", &[("site", name)]),
        SiteStatus::Done => t_dyn(lang, "feas.status_done"),
        SiteStatus::Refused => t_dyn(lang, "feas.status_refused"),
        SiteStatus::Failed => t_dyn(lang, "feas.status_failed"),
        SiteStatus::Rejected => t_dyn(lang, "feas.status_rejected"),
    }
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

/// When a site alone would reach the target at `per_quarter` new eligible patients a quarter,
/// counted from the run (`target.now`): (year, month), or `None` if it never would (no new
/// patients, or not within 200 years).
fn target_month(per_quarter: f64, target: Target) -> Option<(i64, u32)> {
    let left = target.target.saturating_sub(target.enrolled) as f64;
    if per_quarter.is_nan() || per_quarter <= 0.0 {
        return None;
    }
    let days = (left / per_quarter * 365.25 / 4.0).ceil();
    if days > 365.25 * 200.0 {
        return None;
    }
    let day = target.now.div_euclid(86_400) + days as i64;
    let (y, m, _) = qiao_web::i18n::civil_from_days(day);
    Some((y, m))
}

/// Per index year: the persons of a site's index-year margin (the row totals of every age
/// band, added; a withheld row adds its point, 0).
fn years_of(payload: Option<&Payload>) -> BTreeMap<u16, f64> {
    let mut out = BTreeMap::new();
    if let Some(Payload::Demographics(dm)) = payload {
        for c in &dm.cells {
            if let (Some(_), None, Some(y)) = (c.age_band, c.gender, c.index_year) {
                *out.entry(y).or_insert(0.0) += c.count.point().unwrap_or(0) as f64;
            }
        }
    }
    out
}

/// The funnel's bars: persons with a qualifying event (when released), each rule, the final
/// cohort.
fn funnel_bars(
    lang: Lang,
    initial: Option<(f64, String)>,
    rules: Vec<(String, (f64, String))>,
    last: (f64, String),
) -> Vec<Bar> {
    let mut bars = Vec::new();
    if let Some((v, d)) = initial {
        bars.push(Bar::new(t(lang, "feas.step_initial"), v, d));
    }
    for (name, (v, d)) in rules {
        bars.push(Bar::new(name, v, d));
    }
    let mut fin = Bar::new(t(lang, "feas.step_final"), last.0, last.1);
    fin.highlight = true;
    bars.push(fin);
    bars
}

/// The legend of the notation, shown once above the results.
pub fn legend(lang: Lang) -> Markup {
    html! {
        dl.legend {
            dt { (t(lang, "feas.legend_range_example")) } dd { (t(lang, "feas.legend_range")) }
            dt { (t(lang, "feas.legend_withheld_example")) } dd { (t(lang, "feas.legend_withheld")) }
            dt { "†" } dd { (t(lang, "sdc.legend")) }
        }
    }
}

/// The feasibility results of one cohort run.
pub fn render(lang: Lang, id: &str, run: &RunViews, sites: &[Site], target: Target) -> Markup {
    let Some(count) = run.count.as_ref() else {
        return html! {};
    };
    let demo = run.demographics.as_ref();
    // The funnel: total over the sites that answered, then each site.
    let total_funnel: Option<Vec<Bar>> = match &count.total {
        NetworkTotals::CohortCount {
            initial,
            rules,
            final_persons,
            sites_done,
            ..
        } if *sites_done > 0 => Some(funnel_bars(
            lang,
            initial.as_ref().map(|i| total(lang, i)),
            rules
                .iter()
                .map(|r| (r.name.clone(), total(lang, &r.persons)))
                .collect(),
            total(lang, final_persons),
        )),
        _ => None,
    };
    let site_funnel = |p: &Payload| -> Option<Vec<Bar>> {
        let Payload::CohortCount(c) = p else {
            return None;
        };
        let ds = &c.disclosure;
        Some(funnel_bars(
            lang,
            c.initial.as_ref().map(|i| released(lang, i, ds)),
            c.rules
                .iter()
                .map(|r| (r.name.to_string(), released(lang, &r.persons, ds)))
                .collect(),
            released(lang, &c.final_persons, ds),
        ))
    };
    // Ranking and forecast per site.
    let years_view = run.years.as_ref();
    let mut ranking: Vec<(String, f64, String, Option<f64>)> = Vec::new();
    for s in &count.sites {
        let Some(Payload::CohortCount(c)) = &s.payload else {
            continue;
        };
        let (v, d) = released(lang, &c.final_persons, &c.disclosure);
        let years = years_of(
            years_view
                .and_then(|dv| dv.sites.iter().find(|x| x.site == s.site))
                .and_then(|x| x.payload.as_ref()),
        );
        ranking.push((site_name(sites, s.site.as_str()), v, d, forecast(&years)));
    }
    ranking.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    // Demographics totals: the age band × gender margin.
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
    let status_of = |v: Option<&JobView>, site: &str, name: &str| -> String {
        v.and_then(|v| v.sites.iter().find(|x| x.site.as_str() == site))
            .map(|x| status_text(lang, x, name))
            .unwrap_or_else(|| "–".to_owned())
    };
    html! {
        (legend(lang))
        div.scroll { table.sites {
            thead { tr {
                th { (t(lang, "sel.site")) }
                th { (t(lang, "feas.status_count")) }
                th { (t(lang, "feas.status_demographics")) }
                th.num { (t(lang, "feas.eligible")) }
            } }
            tbody {
                @for s in &count.sites {
                    @let name = site_name(sites, s.site.as_str());
                    tr {
                        td { (name) }
                        td { (status_text(lang, s, &name)) }
                        td {
                            (status_of(demo, s.site.as_str(), &name))
                            @if let Some(y) = years_view { " · " (t(lang, "feas.years_short")) ": " (status_of(Some(y), s.site.as_str(), &name)) }
                        }
                        td.num { @if let Some(Payload::CohortCount(c)) = &s.payload { @let (_, d) = released(lang, &c.final_persons, &c.disclosure); (controlled(lang, d.trim_end_matches('†'))) } }
                    }
                }
            }
        } }
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
            div.scroll { table.ranking {
                thead { tr {
                    th { (t(lang, "sel.site")) }
                    th.num { (t(lang, "feas.eligible")) }
                    th.num { (t(lang, "feas.forecast")) }
                    th { (tf(lang, "feas.target_date", &[("target", &fmt_int(lang, target.target as i64))])) }
                } }
                tbody { @for (n, _, d, fc) in &ranking { tr {
                    td { (n) }
                    td.num { (controlled(lang, d.trim_end_matches('†'))) }
                    td.num { @match fc { Some(x) => (controlled(lang, &fmt_decimal(lang, *x, 1))), None => "–" } }
                    td { @match fc.map(|x| target_month(x, target)) {
                        Some(Some((y, m))) => (fmt_month(lang, y, m)),
                        Some(None) => (t(lang, "feas.target_never")),
                        None => "–",
                    } }
                } } }
            } }
            p.muted { (t(lang, "feas.forecast_note")) " " (t(lang, "feas.target_note")) }
        }
        @if !pyramid_rows.is_empty() {
            (chart::pyramid(&format!("{id}-pyramid"), t(lang, "feas.pyramid"), t(lang, "feas.male"), t(lang, "feas.female"), &pyramid_rows))
        }
        @if !genders.is_empty() {
            (chart::bars(&format!("{id}-gender"), t(lang, "feas.gender"), &genders))
        }
    }
}

/// Cumulative enrollment per month (the project's recruitment lines: the sites' released
/// counts of their marks, typed months overriding; a withheld value counts as 0) against a
/// straight line to the target.
pub fn enrollment_chart(lang: Lang, lines: &[RecruitmentLine], target_count: u32) -> Markup {
    let total_enrolled = enrolled(lines);
    let mut months: BTreeMap<&str, (u64, u64)> = BTreeMap::new();
    for l in lines {
        let e = months.entry(l.month.as_str()).or_default();
        e.0 += l.screened.point().unwrap_or(0);
        e.1 += l.enrolled.point().unwrap_or(0);
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
        .map(|_| Some(f64::from(target_count)))
        .collect();
    html! {
        (chart::line("enrollment", t(lang, "run.chart"), &labels, &[
            Series { label: t(lang, "run.enrolled_cum").to_owned(), class: "s0", values: enrolled },
            Series { label: t(lang, "run.screened_cum").to_owned(), class: "s1", values: screened },
            Series { label: t(lang, "run.target_line").to_owned(), class: "target", values: target },
        ]))
        p { (tf(lang, "run.progress", &[("enrolled", &fmt_int(lang, total_enrolled as i64)), ("target", &fmt_int(lang, i64::from(target_count)))])) }
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
    fn one_notation_and_withheld_totals_are_intervals_never_zero() {
        let v = |point_sum, low, high, exact, sites, suppressed_sites| TotalValue {
            display: String::new(),
            point_sum,
            low,
            high,
            exact,
            sites,
            suppressed_sites,
        };
        assert_eq!(
            uncertain(Lang::En, &v(12345, 12345, Some(12345), true, 2, 0)),
            (12345.0, "12,345".to_owned())
        );
        // A noised value: the value and its 95% range.
        assert_eq!(
            uncertain(Lang::En, &v(435, 423, Some(447), false, 1, 0)).1,
            "435 (423–447)"
        );
        assert_eq!(
            uncertain(Lang::ZhCn, &v(435, 423, Some(447), false, 1, 0)).1,
            "435（423–447）"
        );
        // Every site below the threshold: the range, its midpoint as the bar, never "0".
        assert_eq!(
            uncertain(Lang::En, &v(0, 0, Some(27), false, 3, 3)),
            (13.5, "0–27".to_owned())
        );
        assert_eq!(uncertain(Lang::En, &v(0, 0, None, false, 1, 1)).1, "≥ 0");
    }

    #[test]
    fn the_target_month_follows_the_rate() {
        let target = Target {
            target: 100,
            enrolled: 40,
            // 2026-01-01.
            now: 20_454 * 86_400,
        };
        // 60 left at 30 a quarter: two quarters, 183 days → July 2026.
        assert_eq!(target_month(30.0, target), Some((2026, 7)));
        assert_eq!(target_month(0.0, target), None);
    }

    #[test]
    fn the_index_year_margin_adds_the_age_bands() {
        use qiao_hub::protocol::{AgeBand, Cell, DemographicsResult};
        let band = |min_age, max_age| Some(AgeBand { min_age, max_age });
        let cell = |age_band, gender, index_year, value| Cell {
            age_band,
            gender,
            index_year,
            count: Released::Exact { value },
        };
        let p = Payload::Demographics(DemographicsResult {
            total: Released::Exact { value: 0 },
            cells: vec![
                cell(band(0, Some(99)), Some(Gender::Female), Some(2020), 7),
                cell(band(0, Some(99)), None, Some(2020), 30),
                cell(band(100, None), None, Some(2020), 2),
                cell(band(0, Some(99)), None, Some(2021), 12),
                cell(None, Some(Gender::Male), None, 99),
            ],
            disclosure: DisclosureSummary {
                min_cell_count: 10,
                obfuscation: None,
                secondary_suppression: false,
                dp: None,
            },
        });
        assert_eq!(years_of(Some(&p)), [(2020, 32.0), (2021, 12.0)].into());
    }
}
