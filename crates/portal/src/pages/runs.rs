//! Run history: two feasibility runs of a cohort side by side with their differences
//! (`GET /projects/{id}/cohorts/{n}/compare?a=K&b=L`), and a project's enrollment reports as
//! CSV (`GET /projects/{id}/reports.csv`).

use std::collections::BTreeMap;

use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use qiao_hub::model::Site;
use qiao_hub::protocol::Released;
use qiao_hub::view::JobView;
use qiao_web::i18n::{fmt_datetime, fmt_int};
use qiao_web::{html, t, tf, Lang, Markup};
use serde::Deserialize;

use super::library::fmt_iso_date;
use super::results::result_lines;
use crate::alliance::{self, FeasibilityRun, LineSource, ProjectFile};
use crate::web::{blocking, Ctx, Shared};

/// Which two runs (0 = the first); default the last two.
#[derive(Deserialize, Default)]
pub struct CompareQuery {
    a: Option<usize>,
    b: Option<usize>,
}

/// One row of the comparison: table, site, step; each run's shown value and point.
#[derive(Debug, PartialEq, Eq)]
pub struct Row {
    /// `funnel` or `ranking`.
    pub table: String,
    /// Site name or `total`.
    pub site: String,
    /// The funnel step, or (ranking) empty.
    pub step: String,
    /// Run A: shown value, point (funnel) or rank (ranking).
    pub a: Option<(String, Option<i64>)>,
    /// Run B.
    pub b: Option<(String, Option<i64>)>,
}

impl Row {
    /// B − A, when both have a point.
    pub fn difference(&self) -> Option<i64> {
        match (&self.a, &self.b) {
            (Some((_, Some(a))), Some((_, Some(b)))) => Some(b - a),
            _ => None,
        }
    }
}

/// A run's data dates, "data as of hospital_1 30 Jun 2020, hospital_2 …" (the sites that had
/// reported one when the run was sent).
pub fn data_dates(lang: Lang, r: &FeasibilityRun) -> String {
    let sep = if lang == Lang::ZhCn { "、" } else { ", " };
    let dates = r
        .data_as_of
        .iter()
        .map(|(site, d)| format!("{site} {}", fmt_iso_date(lang, d)))
        .collect::<Vec<_>>()
        .join(sep);
    tf(lang, "runs.data_as_of", &[("dates", &dates)])
}

/// A comparison row's class: `changed` where the two runs differ.
fn row_class(r: &Row) -> &'static str {
    if r.difference().is_some_and(|d| d != 0) {
        "changed"
    } else {
        ""
    }
}

/// The rows of two runs' result lines, matched by table, site and step (the ranking by site,
/// its rank as the point), in run B's order then lines only in run A.
pub fn compare(a: &[[String; 7]], b: &[[String; 7]]) -> Vec<Row> {
    let key = |l: &[String; 7]| {
        if l[0] == "ranking" {
            (l[0].clone(), l[1].clone(), String::new())
        } else {
            (l[0].clone(), l[1].clone(), l[2].clone())
        }
    };
    let val = |l: &[String; 7]| {
        if l[0] == "ranking" {
            (format!("#{}", l[2]), l[2].parse().ok())
        } else {
            (l[3].clone(), l[4].parse().ok())
        }
    };
    let mut in_a: BTreeMap<_, _> = a.iter().map(|l| (key(l), val(l))).collect();
    let mut rows: Vec<Row> = b
        .iter()
        .map(|l| {
            let k = key(l);
            Row {
                a: in_a.remove(&k),
                b: Some(val(l)),
                table: k.0,
                site: k.1,
                step: k.2,
            }
        })
        .collect();
    for l in a {
        let k = key(l);
        if let Some(v) = in_a.remove(&k) {
            rows.push(Row {
                a: Some(v),
                b: None,
                table: k.0,
                site: k.1,
                step: k.2,
            });
        }
    }
    rows
}

type Loaded = (ProjectFile, Vec<qiao_hub::protocol::UserId>, Vec<Site>);

fn load(portal: &Shared, id: &str) -> Result<Option<Loaded>, qiao_hub::StoreError> {
    let s = portal.hub.store();
    let Some(file) = alliance::project_file(s.as_ref(), id)? else {
        return Ok(None);
    };
    let Some(project) = s.project(&file.project)? else {
        return Ok(None);
    };
    Ok(Some((file, project.members, s.sites()?)))
}

/// `GET /projects/{id}/cohorts/{n}/compare?a=K&b=L`.
pub async fn compare_page(
    State(portal): State<Shared>,
    ctx: Ctx,
    Path((id, n)): Path<(String, u32)>,
    Query(q): Query<CompareQuery>,
) -> Response {
    let user = match ctx.require(&[]) {
        Ok(u) => u.clone(),
        Err(r) => return r,
    };
    let p = portal.clone();
    let loaded = blocking(move || -> Result<_, qiao_hub::StoreError> {
        let Some((file, members, sites)) = load(&p, &id)? else {
            return Ok(None);
        };
        let Some(c) = file.cohorts.iter().find(|c| c.n == n).cloned() else {
            return Ok(None);
        };
        let last = c.runs.len().saturating_sub(1);
        let (ka, kb) = (q.a.unwrap_or(last.saturating_sub(1)), q.b.unwrap_or(last));
        let s = p.hub.store();
        let lines = |run: Option<&FeasibilityRun>| -> Result<_, qiao_hub::StoreError> {
            let Some(r) = run else { return Ok(None) };
            Ok(match s.job(&r.count_job)? {
                Some(rec) => Some((
                    r.clone(),
                    result_lines(
                        &qiao_hub::view::job_view(&rec, &s.results(&r.count_job)?),
                        &sites,
                    ),
                )),
                None => None,
            })
        };
        let (a, b) = (lines(c.runs.get(ka))?, lines(c.runs.get(kb))?);
        Ok(Some((file, members, c, ka, kb, a, b)))
    })
    .await;
    let (file, members, c, ka, kb, a, b) = match loaded {
        Ok(Ok(Some((f, m, c, ka, kb, Some(a), Some(b))))) => (f, m, c, ka, kb, a, b),
        Ok(Ok(_)) => return ctx.not_found(),
        Ok(Err(e)) => return ctx.internal(e),
        Err(e) => return ctx.internal(e),
    };
    if !alliance::can_see(&user, &file, &members) {
        return ctx.forbidden();
    }
    let lang = ctx.lang;
    let rows = compare(&a.1, &b.1);
    let run_label = |k: usize, r: &FeasibilityRun| {
        tf(
            lang,
            "runs.run",
            &[
                ("k", &(k + 1).to_string()),
                ("at", &fmt_datetime(lang, r.at)),
                ("v", &r.version.unwrap_or(1).to_string()),
            ],
        )
    };
    let diff = |r: &Row| -> Markup {
        html! { @match r.difference() {
            Some(0) => { span.muted { "0" } }
            Some(d) if r.table == "ranking" => { (if d > 0 { format!("↓{d}") } else { format!("↑{}", -d) }) }
            Some(d) => { (if d > 0 { format!("+{}", fmt_int(lang, d)) } else { format!("−{}", fmt_int(lang, -d)) }) }
            None => { "–" }
        } }
    };
    let body = html! {
        p { a href=(format!("/projects/{}#cohort-{n}", file.project)) { "← " (file.title) } }
        p #compared { (tf(lang, "runs.compared", &[("a", &run_label(ka, &a.0)), ("b", &run_label(kb, &b.0))])) }
        ul #data-dates { @for (label, r) in [(t(lang, "runs.a"), &a.0), (t(lang, "runs.b"), &b.0)] {
            li { strong { (label) } " · " @if r.data_as_of.is_empty() { (t(lang, "runs.data_unknown")) } @else { (data_dates(lang, r)) } }
        } }
        p.muted { (t(lang, "runs.legend")) }
        div.scroll { table.compare {
            thead { tr {
                th { (t(lang, "runs.table")) } th { (t(lang, "sel.site")) } th { (t(lang, "runs.step")) }
                th.num { (t(lang, "runs.a")) } th.num { (t(lang, "runs.b")) } th.num { (t(lang, "runs.difference")) }
            } }
            tbody { @for r in &rows { tr class=(row_class(r)) {
                td { (t(lang, if r.table == "ranking" { "runs.ranking" } else { "runs.funnel" })) }
                td { @if r.site == "total" { (t(lang, "runs.total")) } @else { (r.site) } }
                td { (step_label(lang, &r.step)) }
                td.num { (r.a.as_ref().map(|x| x.0.as_str()).unwrap_or("–")) }
                td.num { (r.b.as_ref().map(|x| x.0.as_str()).unwrap_or("–")) }
                td.num { (diff(r)) }
            } } }
        } }
    };
    let mut page = ctx.page("runs.title");
    page.title = format!("{} · {}", c.name, page.title);
    page.respond(body)
}

/// A funnel step's label: the fixed steps translated, rule names as written.
fn step_label(lang: qiao_web::Lang, step: &str) -> String {
    match step {
        "qualifying events" => t(lang, "feas.step_initial").to_owned(),
        "final cohort" => t(lang, "feas.step_final").to_owned(),
        s => s.to_owned(),
    }
}

/// `GET /projects/{id}/reports.csv`: the project's recruitment lines as the project page shows
/// them (the sites' released counts of their marks, typed months overriding), for whoever may
/// see the project.
pub async fn reports_csv(
    State(portal): State<Shared>,
    ctx: Ctx,
    Path(id): Path<String>,
) -> Response {
    let user = match ctx.require(&[]) {
        Ok(u) => u.clone(),
        Err(r) => return r,
    };
    let p = portal.clone();
    let (file, members, view) = match blocking(move || {
        let Some((f, m, _)) = load(&p, &id)? else {
            return Ok(None);
        };
        let view = alliance::latest_view(p.hub.store().as_ref(), &f)?;
        Ok::<_, qiao_hub::StoreError>(Some((f, m, view)))
    })
    .await
    {
        Ok(Ok(Some(x))) => x,
        Ok(Ok(None)) => return ctx.not_found(),
        Ok(Err(e)) => return ctx.internal(e),
        Err(e) => return ctx.internal(e),
    };
    if !alliance::can_see(&user, &file, &members) {
        return ctx.forbidden();
    }
    let text = match reports_text(&file, view.as_ref()) {
        Ok(t) => t,
        Err(e) => return ctx.internal(e),
    };
    let mut resp = (StatusCode::OK, text).into_response();
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/csv; charset=utf-8"),
    );
    if let Ok(v) = HeaderValue::from_str(&format!(
        "attachment; filename=\"{}-enrollment.csv\"",
        file.project
    )) {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    resp
}

/// The recruitment lines as CSV (RFC 4180), by month then site: each count as released (a
/// withheld one empty, its reason in `disclosure`), where the line comes from (`marks`: the
/// site's released counts, collected at `reported_at`; `typed`: a report by `reported_by`).
pub fn reports_text(file: &ProjectFile, view: Option<&JobView>) -> Result<String, csv::Error> {
    let mut w = csv::Writer::from_writer(Vec::new());
    w.write_record([
        "month",
        "site",
        "screened",
        "enrolled",
        "excluded",
        "source",
        "disclosure",
        "reported_by",
        "reported_at",
    ])?;
    let value = |r: &Released| r.point().map(|v| v.to_string()).unwrap_or_default();
    let collected_at = file.recruitment.last().map(|r| r.at);
    for l in alliance::recruitment_lines(file, view) {
        let (source, by, at) = match l.source {
            LineSource::Typed => {
                let r = file
                    .reports
                    .iter()
                    .find(|r| r.site == l.site && r.month == l.month);
                ("typed", r.map(|r| r.by.to_string()), r.map(|r| r.at))
            }
            LineSource::Marks => ("marks", None, collected_at),
        };
        let withheld = [&l.screened, &l.enrolled]
            .into_iter()
            .chain(l.excluded.as_ref())
            .filter(|r| r.point().is_none())
            .map(|r| r.to_string())
            .collect::<Vec<_>>()
            .join("; ");
        w.write_record([
            l.month.clone(),
            l.site.to_string(),
            value(&l.screened),
            value(&l.enrolled),
            l.excluded.as_ref().map(value).unwrap_or_default(),
            source.to_owned(),
            withheld,
            by.unwrap_or_default(),
            at.map(|t| fmt_datetime(qiao_web::Lang::En, t))
                .unwrap_or_default(),
        ])?;
    }
    let bytes = w.into_inner().map_err(|e| e.into_error())?;
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn l(v: [&str; 7]) -> [String; 7] {
        v.map(str::to_owned)
    }

    #[test]
    fn two_runs_are_matched_by_table_site_and_step_with_their_differences() {
        let a = vec![
            l([
                "funnel",
                "A",
                "final cohort",
                "100 (90–110)",
                "100",
                "90",
                "110",
            ]),
            l(["funnel", "C", "final cohort", "5", "5", "5", "5"]),
            l(["ranking", "A", "1", "100", "100", "90", "110"]),
        ];
        let b = vec![
            l([
                "funnel",
                "A",
                "final cohort",
                "120 (110–130)",
                "120",
                "110",
                "130",
            ]),
            l(["funnel", "B", "final cohort", "0–9", "", "0", "9"]),
            l(["ranking", "B", "1", "", "", "", ""]),
            l(["ranking", "A", "2", "120", "120", "110", "130"]),
        ];
        let rows = compare(&a, &b);
        let d: Vec<_> = rows
            .iter()
            .map(|r| (r.table.as_str(), r.site.as_str(), r.difference()))
            .collect();
        assert_eq!(
            d,
            vec![
                ("funnel", "A", Some(20)),
                ("funnel", "B", None),
                ("ranking", "B", None),
                ("ranking", "A", Some(1)),
                ("funnel", "C", None),
            ]
        );
        assert_eq!(rows[0].a, Some(("100 (90–110)".to_owned(), Some(100))));
        assert_eq!(rows[4].b, None, "a site only in run A is kept, not dropped");
    }
}
