//! A characterization's result: the cohorts' sizes, the binary covariates (search, sort by
//! |SMD|, FE's prevalence threshold applied visibly: what it hides is counted and said), the
//! continuous covariates, a forest plot of the largest standardized differences with
//! |SMD| < 0.1 shaded, and CSV of both tables — pooled or one site's.

use qiao_analysis::network::characterization::{
    Characterization, PooledCharacterization, PooledCovariate, PooledMoments,
};
use qiao_analysis::network::continuous::DeclaredRange;
use qiao_analysis::network::Analysis;
use qiao_hub::protocol::{Payload, QueryType};
use qiao_hub::view::NetworkTotals;
use qiao_web::chart::{self, Interval};
use qiao_web::i18n::{fmt_decimal, fmt_int, tf};
use qiao_web::{html, t, Lang, Markup};

use super::{controlled_note, num, shown, total, total_cols, Loaded, ResultQuery, Scope};

/// FE's convention: covariates under 1% prevalence (in every cohort) are hidden by default.
const DEFAULT_MIN_PERCENT: f64 = 1.0;
/// Most covariate rows on the page (the CSV has all).
const MAX_ROWS: usize = 500;
/// Covariates in the SMD plot (the largest |SMD|).
const PLOT_ROWS: usize = 30;
/// |SMD| under this is shaded in the plot and not highlighted in the table.
const BALANCED: f64 = 0.1;

/// The pooled characterization, or one site's answer pooled alone (the same means and SMD).
fn result_of(l: &Loaded, scope: &Scope<'_>) -> Option<PooledCharacterization> {
    match scope {
        Scope::Pooled => match &l.view.total {
            NetworkTotals::Characterization(p) if p.sites_done > 0 => Some(p.clone()),
            _ => None,
        },
        Scope::Site(s) => match (&l.view.query, s.payload.as_ref()) {
            (QueryType::Characterization(spec), Some(Payload::Characterization(r))) => {
                Some(Characterization::pool(spec, &[r]))
            }
            _ => None,
        },
    }
}

/// Every scope with a result: pooled first, then each site that answered.
fn scopes(l: &Loaded) -> Vec<(String, PooledCharacterization)> {
    let mut out = Vec::new();
    if let Some(p) = result_of(l, &Scope::Pooled) {
        out.push(("pooled".to_owned(), p));
    }
    for s in &l.view.sites {
        if let Some(p) = result_of(l, &Scope::Site(s)) {
            out.push((s.site.to_string(), p));
        }
    }
    out
}

fn prevalence(c: &PooledCovariate) -> f64 {
    c.target
        .mean
        .unwrap_or(0.0)
        .max(c.comparator.as_ref().and_then(|x| x.mean).unwrap_or(0.0))
}

fn pct(lang: Lang, x: Option<f64>) -> String {
    x.map_or_else(
        || "–".to_owned(),
        |v| format!("{}%", fmt_decimal(lang, v * 100.0, 1)),
    )
}

fn smd_text(lang: Lang, x: Option<f64>) -> String {
    x.map_or_else(|| "–".to_owned(), |v| fmt_decimal(lang, v, 3))
}

/// The quantile columns of a continuous covariate (FE's order), with their catalog keys.
const QUANTILES: [&str; 7] = [
    "ana.min", "ana.p10", "ana.p25", "ana.q50", "ana.p75", "ana.p90", "ana.max",
];

/// FE's min, p10, p25, median, p75, p90 and max of `m` as the hub derived them from the noised
/// histograms (None without DP: never released).
fn quantiles(m: &PooledMoments) -> [Option<f64>; 7] {
    m.derived.as_ref().map_or([None; 7], |d| {
        [d.min, d.p10, d.p25, d.median, d.p75, d.p90, d.max]
    })
}

/// "0–120 years, w = 1": a declared range and its bin width, in the page's language.
fn range_text(lang: Lang, r: &DeclaredRange) -> String {
    let unit = match r.unit.as_str() {
        "years" => t(lang, "ana.unit_years"),
        "days" => t(lang, "ana.unit_days"),
        "points" => t(lang, "ana.unit_points"),
        _ => t(lang, "ana.unit_count"),
    };
    tf(
        lang,
        "ana.range_value",
        &[
            ("max", &fmt_int(lang, r.max as i64)),
            ("unit", unit),
            ("bin", &fmt_int(lang, r.bin as i64)),
        ],
    )
}

/// The declared range of a continuous covariate (the target's, else the comparator's: both
/// sides are clipped to the same one).
fn range_of(
    c: &qiao_analysis::network::characterization::PooledContinuous,
) -> Option<&DeclaredRange> {
    [&c.target, &c.comparator]
        .into_iter()
        .flatten()
        .find_map(|m| m.range.as_ref())
}

/// The page body.
pub(super) fn render(
    lang: Lang,
    base: &str,
    l: &Loaded,
    scope: &Scope<'_>,
    q: &ResultQuery,
) -> Markup {
    let Some(r) = result_of(l, scope) else {
        return html! { p.muted { (t(lang, "ana.no_result")) } };
    };
    let site_q = match scope {
        Scope::Pooled => String::new(),
        Scope::Site(s) => s.site.to_string(),
    };
    let has_comparator = r.comparator.is_some();
    let search = q.q.as_deref().unwrap_or("").trim().to_lowercase();
    let min = q
        .min
        .filter(|m| m.is_finite() && *m >= 0.0)
        .unwrap_or(DEFAULT_MIN_PERCENT);
    let sort = q
        .sort
        .as_deref()
        .unwrap_or(if has_comparator { "smd" } else { "prevalence" });
    let named: Vec<(String, &PooledCovariate)> = r
        .covariates
        .iter()
        .map(|c| (l.names.covariate(c.covariate_id, c.analysis_id), c))
        .filter(|(name, c)| {
            search.is_empty()
                || name.to_lowercase().contains(&search)
                || c.covariate_id.to_string().contains(&search)
        })
        .collect();
    let (mut shown_rows, hidden): (Vec<_>, Vec<_>) = named
        .into_iter()
        .partition(|(_, c)| prevalence(c) * 100.0 >= min);
    match sort {
        "id" => shown_rows.sort_by_key(|(_, c)| c.covariate_id),
        "prevalence" => shown_rows.sort_by(|a, b| prevalence(b.1).total_cmp(&prevalence(a.1))),
        _ => shown_rows.sort_by(|a, b| {
            let m = |c: &PooledCovariate| c.smd.map_or(-1.0, f64::abs);
            m(b.1)
                .total_cmp(&m(a.1))
                .then(a.1.covariate_id.cmp(&b.1.covariate_id))
        }),
    }
    let total_rows = shown_rows.len();
    let plot: Vec<Interval> = if has_comparator {
        let mut by_smd: Vec<_> = shown_rows.iter().filter(|(_, c)| c.smd.is_some()).collect();
        by_smd.sort_by(|a, b| {
            let m = |c: &PooledCovariate| c.smd.map_or(0.0, f64::abs);
            m(b.1).total_cmp(&m(a.1))
        });
        by_smd
            .iter()
            .take(PLOT_ROWS)
            .map(|(name, c)| Interval {
                label: name.clone(),
                point: c.smd.unwrap_or(0.0),
                low: None,
                high: None,
                display: smd_text(lang, c.smd),
            })
            .collect()
    } else {
        Vec::new()
    };
    let csv_base = base.to_owned();
    let pop = |p: &qiao_analysis::network::characterization::PooledPopulation| {
        (
            shown(lang, &total(&p.entries)),
            shown(lang, &total(&p.subjects)),
        )
    };
    let (te, ts) = pop(&r.target);
    // Some covariate released under DP: its range, bin and histogram quantiles are shown.
    let has_ranges = r.continuous.iter().any(|c| range_of(c).is_some());
    let dec2 = |x: Option<f64>| x.map_or_else(|| "–".to_owned(), |v| fmt_decimal(lang, v, 2));
    html! {
        table.population {
            thead { tr { th {} th.num { (t(lang, "ana.entries")) } th.num { (t(lang, "ana.subjects")) } } }
            tbody {
                tr { th { (t(lang, "ana.target")) } td.num { (te) } td.num { (ts) } }
                @if let Some(c) = &r.comparator {
                    @let (ce, cs) = pop(c);
                    tr { th { (t(lang, "ana.comparator")) } td.num { (ce) } td.num { (cs) } }
                }
            }
        }
        h3 id="covariates" { (t(lang, "ana.binary")) }
        form.inline.filters method="get" action=(base) {
            @if !site_q.is_empty() { input type="hidden" name="site" value=(site_q); }
            label { (t(lang, "ana.search")) " " input type="search" name="q" value=(q.q.clone().unwrap_or_default()); }
            " "
            label { (t(lang, "ana.min_prevalence")) " " input type="number" name="min" min="0" max="100" step="0.1" value=(min); }
            " "
            label { (t(lang, "ana.sort")) " "
                select name="sort" {
                    @if has_comparator { option value="smd" selected[sort == "smd"] { (t(lang, "ana.sort_smd")) } }
                    option value="prevalence" selected[sort == "prevalence"] { (t(lang, "ana.sort_prevalence")) }
                    option value="id" selected[sort == "id"] { (t(lang, "ana.sort_id")) }
                }
            }
            " "
            button type="submit" { (t(lang, "ana.apply")) }
        }
        p.hidden-note {
            (tf(lang, "ana.hidden", &[("n", &fmt_int(lang, hidden.len() as i64)), ("min", &fmt_decimal(lang, min, 1))]))
            @if !hidden.is_empty() {
                " " a href=(format!("{base}?{}min=0", if site_q.is_empty() { String::new() } else { format!("site={site_q}&") })) { (t(lang, "ana.show_all")) }
            }
        }
        p.muted { (tf(lang, "ana.not_listed", &[("n", &r.threshold.to_string())])) }
        (controlled_note(lang, r.covariates.iter().flat_map(|c| std::iter::once(&c.target.sum).chain(c.comparator.as_ref().map(|x| &x.sum))).map(total).collect::<Vec<_>>().iter()))
        p { a href=(format!("{csv_base}/covariates.csv")) download { (t(lang, "ana.csv_covariates")) } }
        @if total_rows > MAX_ROWS {
            p.muted { (tf(lang, "ana.rows_cut", &[("shown", &MAX_ROWS.to_string()), ("n", &total_rows.to_string())])) }
        }
        div.scroll { table.covariates {
            thead { tr {
                th.num { (t(lang, "ana.covariate_id")) }
                th { (t(lang, "ana.covariate")) }
                th.num { (t(lang, "ana.target_n")) } th.num { (t(lang, "ana.target_pct")) }
                @if has_comparator { th.num { (t(lang, "ana.comparator_n")) } th.num { (t(lang, "ana.comparator_pct")) } th.num { (t(lang, "ana.smd")) } }
            } }
            tbody { @for (name, c) in shown_rows.iter().take(MAX_ROWS) {
                tr.imbalanced[c.smd.is_some_and(|s| s.abs() >= BALANCED)] {
                    td.num { (c.covariate_id) }
                    td { (name) }
                    td.num { (shown(lang, &total(&c.target.sum))) }
                    td.num { (pct(lang, c.target.mean)) }
                    @if let Some(x) = &c.comparator {
                        td.num { (shown(lang, &total(&x.sum))) }
                        td.num { (pct(lang, x.mean)) }
                        td.num { (smd_text(lang, c.smd)) }
                    }
                }
            } }
        } }
        @if has_comparator {
            h3 { (t(lang, "ana.smd_plot")) }
            p.muted { (tf(lang, "ana.smd_plot_note", &[("n", &plot.len().to_string())])) }
            (chart::forest("smd-plot", t(lang, "ana.smd_plot"), &plot, Some((-BALANCED, BALANCED))))
        }
        h3 id="continuous" { (t(lang, "ana.continuous")) }
        p.muted { (t(lang, "ana.continuous_note")) }
        @if has_ranges {
            p.dp-note { (tf(lang, "ana.continuous_dp_note", &[("range", t(lang, "ana.range"))])) }
        }
        @if r.continuous.is_empty() {
            p.muted { (t(lang, "ana.no_continuous")) }
        } @else {
            (controlled_note(lang, r.continuous.iter().flat_map(|c| [&c.target, &c.comparator]).flatten().flat_map(|m| [&m.count, &m.sum, &m.sum_squares]).map(total).collect::<Vec<_>>().iter()))
            p { a href=(format!("{csv_base}/continuous.csv")) download { (t(lang, "ana.csv_continuous")) } }
            div.scroll { table.continuous {
                thead { tr {
                    th.num { (t(lang, "ana.covariate_id")) } th { (t(lang, "ana.covariate")) }
                    @if has_ranges { th { (t(lang, "ana.range")) } }
                    th.num { (t(lang, "ana.target_n")) } th.num { (t(lang, "ana.mean")) } th.num { (t(lang, "ana.sd")) }
                    @if has_ranges { @for k in QUANTILES { th.num { (t(lang, k)) } } }
                    @if has_comparator {
                        th.num { (t(lang, "ana.comparator_n")) } th.num { (t(lang, "ana.mean")) } th.num { (t(lang, "ana.sd")) }
                        @if has_ranges { @for k in QUANTILES { th.num { (t(lang, k)) } } }
                        th.num { (t(lang, "ana.smd")) }
                    }
                } }
                tbody { @for c in &r.continuous {
                    tr {
                        td.num { (c.covariate_id) }
                        td { (l.names.covariate(c.covariate_id, c.analysis_id)) }
                        @if has_ranges { td.range { (range_of(c).map_or_else(|| "–".to_owned(), |x| range_text(lang, x))) } }
                        @for m in std::iter::once(&c.target).chain(has_comparator.then_some(&c.comparator)) {
                            @match m {
                                Some(m) => {
                                    td.num { (shown(lang, &total(&m.count))) }
                                    td.num { (dec2(m.mean)) }
                                    td.num { (dec2(m.sd)) }
                                    @if has_ranges { @for x in quantiles(m) { td.num { (dec2(x)) } } }
                                }
                                None => {
                                    td.num { "–" } td.num { "–" } td.num { "–" }
                                    @if has_ranges { @for _ in QUANTILES { td.num { "–" } } }
                                }
                            }
                        }
                        @if has_comparator { td.num { (smd_text(lang, c.smd)) } }
                    }
                } }
            } }
        }
    }
}

/// The binary covariates of every scope (pooled, then each site), all of them.
pub(super) fn covariates_csv(l: &Loaded) -> Vec<Vec<String>> {
    let mut rows = vec![[
        "scope",
        "covariate_id",
        "analysis_id",
        "concept_id",
        "name",
        "target_shown",
        "target_sum",
        "target_low",
        "target_high",
        "target_mean",
        "comparator_shown",
        "comparator_sum",
        "comparator_low",
        "comparator_high",
        "comparator_mean",
        "smd",
    ]
    .map(str::to_owned)
    .to_vec()];
    for (scope, r) in scopes(l) {
        for c in &r.covariates {
            let mut row = vec![
                scope.clone(),
                c.covariate_id.to_string(),
                c.analysis_id.to_string(),
                c.concept_id.to_string(),
                l.names.covariate(c.covariate_id, c.analysis_id),
            ];
            row.extend(total_cols(&total(&c.target.sum)));
            row.push(num(c.target.mean));
            match &c.comparator {
                Some(x) => {
                    row.extend(total_cols(&total(&x.sum)));
                    row.push(num(x.mean));
                }
                None => row.extend(std::iter::repeat_n(String::new(), 5)),
            }
            row.push(num(c.smd));
            rows.push(row);
        }
    }
    rows
}

/// The continuous covariates of every scope.
pub(super) fn continuous_csv(l: &Loaded) -> Vec<Vec<String>> {
    let mut rows = vec![[
        "scope",
        "covariate_id",
        "analysis_id",
        "name",
        "target_count",
        "target_mean",
        "target_sd",
        "comparator_count",
        "comparator_mean",
        "comparator_sd",
        "smd",
        "range_max",
        "range_bin",
        "range_unit",
    ]
    .map(str::to_owned)
    .to_vec()];
    let stats = ["min", "p10", "p25", "median", "p75", "p90", "max"];
    for side in ["target", "comparator"] {
        rows[0].extend(stats.iter().map(|q| format!("{side}_{q}")));
    }
    for (scope, r) in scopes(l) {
        for c in &r.continuous {
            let mut row = vec![
                scope.clone(),
                c.covariate_id.to_string(),
                c.analysis_id.to_string(),
                l.names.covariate(c.covariate_id, c.analysis_id),
            ];
            for m in [&c.target, &c.comparator] {
                match m {
                    Some(m) => row.extend([
                        total_cols(&total(&m.count))[0].clone(),
                        num(m.mean),
                        num(m.sd),
                    ]),
                    None => row.extend(std::iter::repeat_n(String::new(), 3)),
                }
            }
            row.push(num(c.smd));
            match range_of(c) {
                Some(x) => row.extend([x.max.to_string(), x.bin.to_string(), x.unit.clone()]),
                None => row.extend(std::iter::repeat_n(String::new(), 3)),
            }
            for m in [&c.target, &c.comparator] {
                let q = m.as_ref().map_or([None; 7], quantiles);
                row.extend(q.into_iter().map(num));
            }
            rows.push(row);
        }
    }
    rows
}
