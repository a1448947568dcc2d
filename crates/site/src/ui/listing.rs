//! The pre-screening list's table: its columns (one line each in [`COLUMNS`]), the filter, the
//! sort, pages of [`PAGE_SIZE`] and the CSV export — all at the site, never sent anywhere.

use qiao_cdm::date::{to_ymd, Day};
use qiao_cohort::CohortRow;
use qiao_web::i18n::{fmt_int, fmt_ymd};
use qiao_web::layout::url_encode;
use qiao_web::{html, t, tf, Lang, Markup};
use serde::Deserialize;

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
        }
    }
}

/// One line of the list: a cohort row and its person's record number at the hospital
/// (`person_source_value`, when the store has one).
#[derive(Clone, Debug)]
pub struct ListRow {
    pub row: CohortRow,
    pub source_value: Option<String>,
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
    fn params(&self) -> String {
        format!(
            "q={}&from={}&to={}&sort={}&desc={}",
            url_encode(&self.q),
            url_encode(&self.from),
            url_encode(&self.to),
            url_encode(&self.sort),
            url_encode(&self.desc)
        )
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

/// The filter form, the table of one page with sortable headings, the pager and the CSV link.
pub fn render(lang: Lang, path: &str, rows: &[&ListRow], q: &ListQuery) -> Markup {
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
            } } }
            tbody { @for r in shown { tr { @for c in COLUMNS { td { ((c.value)(r).shown(lang)) } } } } }
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
            "person,index_date,end_date,source_value\r\n1249,2020-10-05,2020-11-04,\r\n"
        );
        assert_eq!(to_csv(&select(&rows, &q(""))).lines().count(), 251);
        // Pages of 100: the third has 50 rows; beyond the last is the last.
        let page3 = render(Lang::En, "/l", &select(&rows, &q("")), &q("page=3")).into_string();
        assert_eq!(page3.matches("<tr><td>").count(), 50);
        assert!(page3.contains("page 3 of 3"), "{page3}");
        let page9 = render(Lang::En, "/l", &select(&rows, &q("")), &q("page=9")).into_string();
        assert_eq!(page9, page3);
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
                "page" => q.page = v.parse().ok(),
                "format" => q.format = v,
                _ => {}
            }
        }
        q
    }
}
