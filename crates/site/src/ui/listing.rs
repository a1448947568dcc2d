//! The pre-screening list's table: its columns (one line each in [`COLUMNS`]), the filter (text,
//! index dates, recruitment mark), the sort, pages of [`PAGE_SIZE`], the CSV export and each
//! candidate's recruitment mark with its form — all at the site, never sent anywhere.

use qiao_cdm::date::{to_ymd, Day};
use qiao_cohort::CohortRow;
use qiao_web::i18n::{fmt_int, fmt_ymd};
use qiao_web::layout::url_encode;
use qiao_web::{html, t, tf, Lang, Markup};
use serde::Deserialize;

use crate::recruitment::{Mark, Record};

/// Rows per page.
pub const PAGE_SIZE: usize = 100;

/// A cell's value: sorted by kind then value, shown per locale (dates), exported plainly.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Value {
    /// A number.
    Int(i64),
    /// A calendar day.
    Date(Day),
    /// Text (the hospital's record number).
    Text(String),
    /// A recruitment mark and its day (`None`: not marked).
    Mark(Option<(Mark, String)>),
}

/// The catalog key of a mark's name.
pub fn mark_key(m: Mark) -> &'static str {
    match m {
        Mark::Screened => "site.mark.screened",
        Mark::Enrolled => "site.mark.enrolled",
        Mark::Excluded => "site.mark.excluded",
    }
}

fn day_shown(lang: Lang, ymd: &str) -> String {
    match qiao_cdm::date::parse(ymd.as_bytes()) {
        Some(d) => {
            let (y, m, dd) = to_ymd(d);
            fmt_ymd(lang, i64::from(y), m, dd)
        }
        None => ymd.to_owned(),
    }
}

impl Value {
    /// The value in the page's language.
    fn shown(&self, lang: Lang) -> String {
        match self {
            Value::Int(n) => n.to_string(),
            Value::Date(d) => {
                let (y, m, dd) = to_ymd(*d);
                fmt_ymd(lang, i64::from(y), m, dd)
            }
            Value::Text(s) => s.clone(),
            Value::Mark(None) => String::new(),
            Value::Mark(Some((m, day))) => {
                format!("{} {}", t(lang, mark_key(*m)), day_shown(lang, day))
            }
        }
    }

    /// The value in a CSV file and for the filter (dates as `YYYY-MM-DD`).
    fn plain(&self) -> String {
        match self {
            Value::Int(n) => n.to_string(),
            Value::Date(d) => {
                let (y, m, dd) = to_ymd(*d);
                format!("{y:04}-{m:02}-{dd:02}")
            }
            Value::Text(s) => s.clone(),
            Value::Mark(None) => String::new(),
            Value::Mark(Some((m, day))) => format!("{} {day}", m.as_str()),
        }
    }
}

/// One line of the list: a cohort row and its person's record number at the hospital
/// (`person_source_value`, when the store has one).
#[derive(Clone, Debug)]
pub struct ListRow {
    pub row: CohortRow,
    pub source_value: Option<String>,
    /// The candidate's recruitment record for the project, if marked.
    pub mark: Option<Record>,
}

/// One column: its key (sort parameter, CSV header), its heading's catalog key, its value.
pub struct Column {
    /// Sort parameter and CSV header.
    pub key: &'static str,
    /// Catalog key of the heading.
    pub title: &'static str,
    /// The row's value.
    pub value: fn(&ListRow) -> Value,
}

/// The list's columns, in order: one line each.
#[rustfmt::skip]
pub const COLUMNS: &[Column] = &[
    Column { key: "person", title: "site.prescreen.person", value: |r| Value::Int(r.row.subject_id) },
    Column { key: "index_date", title: "site.prescreen.index_date", value: |r| Value::Date(r.row.start) },
    Column { key: "end_date", title: "site.prescreen.end_date", value: |r| Value::Date(r.row.end) },
    Column { key: "source_value", title: "site.prescreen.source_value", value: |r| Value::Text(r.source_value.clone().unwrap_or_default()) },
    Column { key: "mark", title: "site.prescreen.mark", value: |r| Value::Mark(r.mark.as_ref().map(|m| (m.status(), m.day().to_owned()))) },
];

/// What the list shows: a text filter (any column contains it), an index date range, the sort
/// column and direction, the page; `format=csv` exports every selected row.
#[derive(Debug, Default, Deserialize)]
pub struct ListQuery {
    #[serde(default)]
    q: String,
    #[serde(default)]
    from: String,
    #[serde(default)]
    to: String,
    #[serde(default)]
    mark: String,
    #[serde(default)]
    sort: String,
    #[serde(default)]
    desc: String,
    page: Option<usize>,
    #[serde(default)]
    format: String,
}

impl ListQuery {
    /// Whether the CSV export is asked for.
    pub fn csv(&self) -> bool {
        self.format == "csv"
    }

    /// The query string of this selection (without the page and format).
    pub fn params(&self) -> String {
        format!(
            "q={}&from={}&to={}&mark={}&sort={}&desc={}",
            url_encode(&self.q),
            url_encode(&self.from),
            url_encode(&self.to),
            url_encode(&self.mark),
            url_encode(&self.sort),
            url_encode(&self.desc)
        )
    }

    /// Whether a row's mark passes the mark filter (`unmarked`, a mark's name, or anything).
    fn mark_ok(&self, r: &ListRow) -> bool {
        match (self.mark.as_str(), &r.mark) {
            ("", _) => true,
            ("unmarked", m) => m.is_none(),
            (want, Some(m)) => m.status().as_str() == want,
            (_, None) => false,
        }
    }
}

/// The selected rows, filtered and sorted (every page).
pub fn select<'a>(rows: &'a [ListRow], q: &ListQuery) -> Vec<&'a ListRow> {
    let needle = q.q.trim().to_lowercase();
    let (from, to) = (q.from.trim(), q.to.trim());
    let index = |r: &ListRow| Value::Date(r.row.start).plain();
    let mut out: Vec<&ListRow> = rows
        .iter()
        .filter(|r| {
            needle.is_empty()
                || COLUMNS
                    .iter()
                    .any(|c| (c.value)(r).plain().to_lowercase().contains(&needle))
        })
        .filter(|r| from.is_empty() || index(r).as_str() >= from)
        .filter(|r| to.is_empty() || index(r).as_str() <= to)
        .filter(|r| q.mark_ok(r))
        .collect();
    if let Some(c) = COLUMNS.iter().find(|c| c.key == q.sort) {
        out.sort_by_key(|r| (c.value)(r));
    }
    if q.desc == "1" {
        out.reverse();
    }
    out
}

/// The selected rows as CSV (RFC 4180; cells starting with `=`, `+`, `-`, `@` are quoted with a
/// leading `'` so a spreadsheet shows them as text).
pub fn to_csv(rows: &[&ListRow]) -> String {
    let cell = |s: String| {
        let s = if s.starts_with(['=', '+', '-', '@']) {
            format!("'{s}")
        } else {
            s
        };
        if s.contains([',', '"', '\n', '\r']) {
            format!("\"{}\"", s.replace('"', "\"\""))
        } else {
            s
        }
    };
    let mut out = COLUMNS.iter().map(|c| c.key).collect::<Vec<_>>().join(",");
    out.push_str("\r\n");
    for r in rows {
        let line: Vec<String> = COLUMNS.iter().map(|c| cell((c.value)(r).plain())).collect();
        out.push_str(&line.join(","));
        out.push_str("\r\n");
    }
    out
}

/// A CSV download named `file`.
pub fn csv_response(file: &str, text: String) -> axum::response::Response {
    use axum::http::{header, HeaderValue, StatusCode};
    use axum::response::IntoResponse;
    let mut resp = (StatusCode::OK, text).into_response();
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/csv; charset=utf-8"),
    );
    if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"{file}\"")) {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    resp
}

/// The recruitment marks' form values: a mark's name, or `clear`.
pub const MARK_CHOICES: [&str; 4] = ["screened", "enrolled", "excluded", "clear"];

/// Each row's mark form (`POST {path}/mark`), for an investigator who may mark: the session's
/// CSRF token and today's date (the form's default day).
pub struct Marking<'a> {
    /// The session's CSRF token.
    pub csrf: &'a str,
    /// `YYYY-MM-DD`.
    pub today: &'a str,
}

fn mark_form(lang: Lang, path: &str, q: &ListQuery, m: &Marking<'_>, r: &ListRow) -> Markup {
    let choices: Vec<(String, String)> = MARK_CHOICES
        .iter()
        .map(|c| {
            let label = match Mark::parse(c) {
                Some(mark) => t(lang, mark_key(mark)),
                None => t(lang, "site.mark.clear"),
            };
            ((*c).to_owned(), label.to_owned())
        })
        .collect();
    let current = r
        .mark
        .as_ref()
        .map(|x| x.status().as_str())
        .unwrap_or("screened");
    html! {
        form.mark method="post" action=(format!("{path}/mark")) {
            input type="hidden" name="csrf" value=(m.csrf);
            input type="hidden" name="person" value=(r.row.subject_id);
            input type="hidden" name="back" value=(q.params());
            select name="mark" aria-label=(t(lang, "site.prescreen.mark")) {
                @for (v, l) in &choices { option value=(v) selected[v == current] { (l) } }
            }
            input type="date" name="date" value=(m.today) aria-label=(t(lang, "site.mark.date")) required;
            input type="text" name="reason" maxlength="500" placeholder=(t(lang, "site.mark.reason")) aria-label=(t(lang, "site.mark.reason"));
            button type="submit" { (t(lang, "site.mark.save")) }
        }
    }
}

/// The filter form, the table of one page with sortable headings, the pager and the CSV link;
/// with `marking`, each row's recruitment mark form.
pub fn render(
    lang: Lang,
    path: &str,
    rows: &[&ListRow],
    q: &ListQuery,
    marking: Option<&Marking<'_>>,
) -> Markup {
    let pages = rows.len().div_ceil(PAGE_SIZE).max(1);
    let page = q.page.unwrap_or(1).clamp(1, pages);
    let shown = rows.iter().skip((page - 1) * PAGE_SIZE).take(PAGE_SIZE);
    let params = q.params();
    let sort_link = |key: &str| {
        let desc = if q.sort == key && q.desc != "1" {
            "1"
        } else {
            ""
        };
        let q2 = ListQuery {
            sort: key.to_owned(),
            desc: desc.to_owned(),
            q: q.q.clone(),
            from: q.from.clone(),
            to: q.to.clone(),
            mark: q.mark.clone(),
            ..ListQuery::default()
        };
        format!("{path}?{}", q2.params())
    };
    html! {
        form.filter method="get" action=(path) {
            label { (t(lang, "site.list.filter")) " " input type="search" name="q" value=(q.q); }
            " "
            label { (t(lang, "site.list.from")) " " input type="date" name="from" value=(q.from); }
            " "
            label { (t(lang, "site.list.to")) " " input type="date" name="to" value=(q.to); }
            " "
            label { (t(lang, "site.prescreen.mark")) " "
                select name="mark" {
                    option value="" selected[q.mark.is_empty()] { (t(lang, "site.mark.any")) }
                    option value="unmarked" selected[q.mark == "unmarked"] { (t(lang, "site.mark.unmarked")) }
                    @for m in Mark::ALL { option value=(m.as_str()) selected[q.mark == m.as_str()] { (t(lang, mark_key(m))) } }
                }
            }
            input type="hidden" name="sort" value=(q.sort);
            input type="hidden" name="desc" value=(q.desc);
            " "
            button type="submit" { (t(lang, "site.list.apply")) }
        }
        p.count #list-count { (tf(lang, "site.list.count", &[
            ("rows", &fmt_int(lang, rows.len() as i64)),
            ("page", &page.to_string()),
            ("pages", &pages.to_string()),
        ])) " · " a #list-csv href=(format!("{path}?{params}&format=csv")) download { (t(lang, "site.list.csv")) } }
        div.scroll { table.prescreen {
            thead { tr { @for c in COLUMNS {
                th { a.sort href=(sort_link(c.key)) { (t(lang, c.title)) @if q.sort == c.key { (if q.desc == "1" { " ↓" } else { " ↑" }) } } }
            } @if marking.is_some() { th { (t(lang, "site.mark.change")) } } } }
            tbody { @for r in shown { tr {
                @for c in COLUMNS { td { ((c.value)(r).shown(lang)) } }
                @if let Some(m) = marking { td { (mark_form(lang, path, q, m, r)) } }
            } } }
        } }
        @if pages > 1 {
            nav.pager {
                @if page > 1 { a rel="prev" href=(format!("{path}?{params}&page={}", page - 1)) { (t(lang, "site.list.prev")) } " " }
                @if page < pages { a rel="next" href=(format!("{path}?{params}&page={}", page + 1)) { (t(lang, "site.list.next")) } }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(id: i64, start: (i32, u32, u32)) -> ListRow {
        let d = qiao_cdm::date::from_ymd(start.0, start.1, start.2);
        ListRow {
            row: CohortRow {
                subject_id: id,
                start: d,
                end: d + 30,
            },
            source_value: (id % 2 == 0).then(|| format!("MRN-{id}")),
            mark: None,
        }
    }

    #[test]
    fn filter_sort_page_and_csv() {
        let rows: Vec<ListRow> = (0..250)
            .map(|i| row(1000 + i, (2020 + (i % 3) as i32, 1 + (i % 12) as u32, 5)))
            .collect();
        let q = |s: &str| -> ListQuery { serde_urlencoded_like(s) };
        // Every row; the person filter matches any column's text.
        assert_eq!(select(&rows, &q("")).len(), 250);
        let hits: Vec<i64> = select(&rows, &q("q=110"))
            .iter()
            .map(|r| r.row.subject_id)
            .collect();
        assert_eq!(hits, (1100..=1110).collect::<Vec<_>>());
        // The record number is searched and sorted as text.
        let mrn = select(&rows, &q("q=mrn-1248&sort=source_value&desc=1"));
        assert_eq!(mrn.len(), 1);
        assert_eq!(mrn[0].row.subject_id, 1248);
        // The index date range, sorted by index date descending.
        let sel = select(
            &rows,
            &q("from=2022-01-01&to=2022-12-31&sort=index_date&desc=1"),
        );
        assert!(sel.iter().all(|r| to_ymd(r.row.start).0 == 2022));
        assert_eq!(sel.len(), 83);
        assert!(sel.windows(2).all(|w| w[0].row.start >= w[1].row.start));
        // The CSV: a header, then every selected row (not one page), ISO dates.
        let csv = to_csv(&select(&rows, &q("q=1249")));
        assert_eq!(
            csv,
            "person,index_date,end_date,source_value,mark\r\n1249,2020-10-05,2020-11-04,,\r\n"
        );
        assert_eq!(to_csv(&select(&rows, &q(""))).lines().count(), 251);
        // Pages of 100: the third has 50 rows; beyond the last is the last.
        let page3 =
            render(Lang::En, "/l", &select(&rows, &q("")), &q("page=3"), None).into_string();
        assert_eq!(page3.matches("<tr><td>").count(), 50);
        assert!(page3.contains("page 3 of 3"), "{page3}");
        let page9 =
            render(Lang::En, "/l", &select(&rows, &q("")), &q("page=9"), None).into_string();
        assert_eq!(page9, page3);
    }

    #[test]
    fn the_list_filters_by_mark_and_offers_each_row_a_mark_form() {
        let rec = |m: Mark, day: &str| Record {
            screened: Some(day.to_owned()),
            enrolled: (m == Mark::Enrolled).then(|| day.to_owned()),
            excluded: (m == Mark::Excluded).then(|| day.to_owned()),
            reason: None,
            by: "dr.a".into(),
            at: 0,
        };
        let mut rows: Vec<ListRow> = (0..6).map(|i| row(100 + i, (2021, 3, 1))).collect();
        rows[1].mark = Some(rec(Mark::Screened, "2026-11-02"));
        rows[2].mark = Some(rec(Mark::Enrolled, "2026-11-20"));
        rows[3].mark = Some(rec(Mark::Excluded, "2026-11-03"));
        let ids = |s: &str| -> Vec<i64> {
            select(&rows, &serde_urlencoded_like(s))
                .iter()
                .map(|r| r.row.subject_id)
                .collect()
        };
        assert_eq!(ids("mark=enrolled"), [102]);
        assert_eq!(ids("mark=screened"), [101]);
        assert_eq!(ids("mark=excluded"), [103]);
        assert_eq!(ids("mark=unmarked"), [100, 104, 105]);
        assert_eq!(ids(""), [100, 101, 102, 103, 104, 105]);
        // Sorted by mark: unmarked first, then by the mark's order and day.
        assert_eq!(ids("sort=mark"), [100, 104, 105, 101, 102, 103]);
        // The CSV names the mark and its day; the page shows them translated.
        let csv = to_csv(&select(&rows, &serde_urlencoded_like("mark=enrolled")));
        assert!(
            csv.ends_with("102,2021-03-01,2021-03-31,MRN-102,enrolled 2026-11-20\r\n"),
            "{csv}"
        );
        let q = serde_urlencoded_like("mark=enrolled");
        let m = Marking {
            csrf: "tok",
            today: "2026-12-07",
        };
        let zh = render(
            Lang::ZhCn,
            "/prescreen/p/d",
            &select(&rows, &q),
            &q,
            Some(&m),
        )
        .into_string();
        assert!(zh.contains("已入组 2026年11月20日"), "{zh}");
        assert!(zh.contains("action=\"/prescreen/p/d/mark\""), "{zh}");
        assert!(zh.contains("name=\"person\" value=\"102\""), "{zh}");
        assert!(zh.contains("<option value=\"enrolled\" selected>"), "{zh}");
        // The filter keeps the mark chosen.
        assert!(
            zh.contains("<option value=\"enrolled\" selected>已入组</option>"),
            "{zh}"
        );
    }

    /// A query string into a [`ListQuery`] (as axum's `Query` does).
    fn serde_urlencoded_like(s: &str) -> ListQuery {
        let mut q = ListQuery::default();
        for pair in s.split('&').filter(|p| !p.is_empty()) {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            let v = v.to_owned();
            match k {
                "q" => q.q = v,
                "from" => q.from = v,
                "to" => q.to = v,
                "sort" => q.sort = v,
                "desc" => q.desc = v,
                "mark" => q.mark = v,
                "page" => q.page = v.parse().ok(),
                "format" => q.format = v,
                _ => {}
            }
        }
        q
    }
}
