//! An audit log as a page, for the hub's auditors and a site's steward alike: filters (actor,
//! action, project, dates), pages of [`PAGE`] entries newest first, a CSV export of what the
//! filters select, action names from the catalogs (`action.CODE`, the code itself when there is
//! none), and the chain verification result the caller computed (`qiao_audit::verify_entries`).

use std::collections::HashMap;

use qiao_audit::{ChainError, Entry, VerifyReport};

use crate::i18n::{fmt_datetime, fmt_int, lookup_opt, parse_local_ymd, ymd_value};
use crate::layout::url_encode;
use crate::{html, t, tf, Lang, Markup};

/// Entries per page.
pub const PAGE: usize = 100;

/// What the filters select.
#[derive(Clone, Debug, Default)]
pub struct AuditFilter {
    /// Substring of the actor (`user:NAME`, `site:ID`, `system`).
    pub actor: String,
    /// Action prefix (`user.` selects every user action).
    pub action: String,
    /// Exact project id.
    pub project: String,
    /// From the start of this day (in the page language's zone, `i18n::utc_offset`).
    pub from: Option<i64>,
    /// Until the end of this day (same zone).
    pub to: Option<i64>,
}

impl AuditFilter {
    /// The filter of a query string's parameters, its dates days in `lang`'s zone (the zone
    /// the page shows times in; unparsable dates select nothing out).
    pub fn of(lang: Lang, query: &HashMap<String, String>) -> Self {
        let q = |k: &str| {
            query
                .get(k)
                .map(|v| v.trim().to_owned())
                .unwrap_or_default()
        };
        AuditFilter {
            actor: q("actor"),
            action: q("action"),
            project: q("project"),
            from: parse_local_ymd(lang, &q("from")),
            to: parse_local_ymd(lang, &q("to")).map(|d| d + 86_400),
        }
    }

    /// Whether `e` is selected.
    pub fn keeps(&self, e: &Entry) -> bool {
        (self.actor.is_empty() || e.actor.to_string().contains(&self.actor))
            && (self.action.is_empty() || e.action.starts_with(&self.action))
            && (self.project.is_empty() || e.project.as_deref() == Some(self.project.as_str()))
            && self.from.is_none_or(|f| e.timestamp >= f)
            && self.to.is_none_or(|t| e.timestamp < t)
    }
}

/// One CSV field (RFC 4180 quoting; a leading `=`, `+`, `-` or `@` gets a `'` so a spreadsheet
/// does not run it as a formula).
fn csv_field(s: &str) -> String {
    let s = if s.starts_with(['=', '+', '-', '@']) {
        format!("'{s}")
    } else {
        s.to_owned()
    };
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s
    }
}

/// The entries as CSV, header row first (times in UTC, ISO 8601).
pub fn to_csv(entries: &[&Entry]) -> String {
    let mut out = String::from("seq,time_utc,actor,action,project,job,decision,released,hash\n");
    for e in entries {
        let secs = e.timestamp.rem_euclid(86_400);
        let time = format!(
            "{}T{:02}:{:02}:{:02}Z",
            ymd_value(e.timestamp),
            secs / 3600,
            secs % 3600 / 60,
            secs % 60
        );
        let row = [
            e.seq.to_string(),
            time,
            e.actor.to_string(),
            e.action.clone(),
            e.project.clone().unwrap_or_default(),
            e.job_id.clone().unwrap_or_default(),
            e.decision.clone().unwrap_or_default(),
            e.released.clone().unwrap_or_default(),
            e.hash.to_string(),
        ];
        out += &row
            .iter()
            .map(|f| csv_field(f))
            .collect::<Vec<_>>()
            .join(",");
        out.push('\n');
    }
    out
}

/// An action's name: the catalog's `action.CODE`, else the code.
pub fn action_name(lang: Lang, code: &str) -> String {
    lookup_opt(lang, &format!("action.{code}")).map_or_else(|| code.to_owned(), str::to_owned)
}

/// The hub's chain result line (`#chain`).
pub fn chain_result(lang: Lang, report: &Result<VerifyReport, ChainError>) -> Markup {
    html! {
        @match report {
            Ok(r) => p.flash.ok #chain role="status" { (tf(lang, "audit.chain_ok", &[("entries", &fmt_int(lang, r.entries as i64)), ("head", &r.head.as_ref().map(|h| h.hash.to_string()[..16].to_owned()).unwrap_or_default())])) },
            Err(e) => p.flash.err #chain role="alert" { (tf(lang, "audit.chain_broken", &[("seq", &e.seq.to_string()), ("reason", &e.reason.to_string())])) },
        }
    }
}

/// The page body: `chain` (the verification result), the filter form, count and CSV link, the
/// table, the pager. `base` is the page's path; `query` its parameters (filters and `page`).
pub fn render(
    lang: Lang,
    base: &str,
    query: &HashMap<String, String>,
    all: &[Entry],
    chain: Markup,
) -> Markup {
    let filter = AuditFilter::of(lang, query);
    let mut selected: Vec<&Entry> = all.iter().filter(|e| filter.keeps(e)).collect();
    selected.reverse();
    let pages = selected.len().div_ceil(PAGE).max(1);
    let page: usize = query
        .get("page")
        .and_then(|p| p.parse().ok())
        .unwrap_or(1)
        .clamp(1, pages);
    let shown = &selected[(page - 1) * PAGE..(page * PAGE).min(selected.len())];
    let q = |k: &str| query.get(k).cloned().unwrap_or_default();
    let keep: String = ["actor", "action", "project", "from", "to"]
        .iter()
        .map(|k| format!("{k}={}&", url_encode(&q(k))))
        .collect();
    html! {
        (chain)
        form.card.filters method="get" action=(base) {
            div.field { label for="actor" { (t(lang, "audit.actor")) } input #actor name="actor" type="text" value=(q("actor")); }
            div.field { label for="action" { (t(lang, "audit.action")) } input #action name="action" type="text" value=(q("action")); }
            div.field { label for="project" { (t(lang, "audit.project")) } input #project name="project" type="text" value=(q("project")); }
            div.field { label for="from" { (t(lang, "audit.from")) } input #from name="from" type="date" value=(q("from")); }
            div.field { label for="to" { (t(lang, "audit.to")) } input #to name="to" type="date" value=(q("to")); }
            button type="submit" { (t(lang, "audit.filter")) }
        }
        p {
            (tf(lang, "audit.count", &[("n", &fmt_int(lang, selected.len() as i64)), ("page", &page.to_string()), ("pages", &pages.to_string())]))
            " · " a #csv href=(format!("{base}?{keep}format=csv")) { (t(lang, "audit.csv")) }
        }
        div.scroll { table.audit #audit {
            thead { tr { th.num { (t(lang, "audit.seq")) } th { (t(lang, "audit.time")) } th { (t(lang, "audit.actor")) } th { (t(lang, "audit.action")) } th { (t(lang, "audit.project")) } th { (t(lang, "audit.decision")) } } }
            tbody { @for e in shown { tr {
                td.num { (e.seq) }
                td { (fmt_datetime(lang, e.timestamp)) }
                td { (e.actor.to_string()) }
                td { (action_name(lang, &e.action)) br; code { (e.action) } }
                td { (e.project.as_deref().unwrap_or("")) }
                // As recorded (the log's own words, never translated).
                td translate="no" { (e.decision.as_deref().unwrap_or("")) @if let Some(j) = &e.job_id { br; span.muted { (j) } } }
            } } }
        } }
        nav.pager {
            @if page > 1 { a #prev href=(format!("{base}?{keep}page={}", page - 1)) { (t(lang, "audit.newer")) } " " }
            @if page < pages { a #next href=(format!("{base}?{keep}page={}", page + 1)) { (t(lang, "audit.older")) } }
        }
    }
}

/// The CSV response of the selection (`lang`: the zone of the date filters; the CSV's times
/// are UTC, `…Z`).
pub fn csv_response(
    lang: Lang,
    query: &HashMap<String, String>,
    all: &[Entry],
    file_name: &str,
) -> axum::response::Response {
    use axum::http::{header, StatusCode};
    use axum::response::IntoResponse;
    let filter = AuditFilter::of(lang, query);
    let mut selected: Vec<&Entry> = all.iter().filter(|e| filter.keeps(e)).collect();
    selected.reverse();
    (
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_owned()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{file_name}\""),
            ),
        ],
        to_csv(&selected),
    )
        .into_response()
}
