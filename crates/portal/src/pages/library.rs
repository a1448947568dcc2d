//! The phenotype library (browse, search, view) and the sites' status.

use axum::extract::{Path, State};
use axum::response::Response;
use qiao_hub::model::SiteSeen;
use qiao_hub::util::now;
use qiao_web::i18n::{fmt_date, fmt_datetime, fmt_int, fmt_ymd, tf};
use qiao_web::markdown::markdown;
use qiao_web::{html, t, Lang, Markup};

use crate::alliance;
use crate::web::{blocking, Ctx, Shared};

/// `GET /library?q=`.
pub async fn library(State(portal): State<Shared>, ctx: Ctx) -> Response {
    if let Err(r) = ctx.require(&[]) {
        return r;
    }
    let lang = ctx.lang;
    let q = ctx.query.get("q").cloned().unwrap_or_default();
    let store = portal.hub.store().clone();
    let q2 = q.clone();
    let hits = match blocking(move || alliance::search_library(store.as_ref(), &q2)).await {
        Ok(Ok(v)) => v,
        Ok(Err(e)) => return ctx.internal(e),
        Err(e) => return ctx.internal(e),
    };
    let body = html! {
        form.actions method="get" action="/library" role="search" {
            div.field { label for="q" { (t(lang, "lib.search")) } input id="q" name="q" type="search" value=(q); }
            button type="submit" { (t(lang, "lib.search_submit")) }
        }
        p.muted { (tf(lang, "lib.count", &[("n", &fmt_int(lang, hits.len() as i64))])) }
        table {
            thead { tr { th { (t(lang, "lib.id")) } th { (t(lang, "lib.name")) } th { (t(lang, "lib.description")) } } }
            tbody { @for h in &hits { tr {
                td { a href=(format!("/library/{}", h.id)) { (h.id) } }
                td { (h.name) }
                td.muted { (h.description) }
            } } }
        }
    };
    ctx.page("lib.title").respond(body)
}

/// `GET /library/{id}`.
pub async fn entry(State(portal): State<Shared>, ctx: Ctx, Path(id): Path<String>) -> Response {
    if let Err(r) = ctx.require(&[]) {
        return r;
    }
    let lang = ctx.lang;
    let store = portal.hub.store().clone();
    let e = match blocking(move || alliance::library_entry(store.as_ref(), &id)).await {
        Ok(Ok(Some(e))) => e,
        Ok(Ok(None)) => return ctx.not_found(),
        Ok(Err(e)) => return ctx.internal(e),
        Err(e) => return ctx.internal(e),
    };
    let json = serde_json::to_string_pretty(&e.definition).unwrap_or_default();
    let body = html! {
        dl.facts {
            dt { (t(lang, "lib.id")) } dd { (e.id) }
            dt { (t(lang, "lib.name")) } dd { (e.name) }
            dt { (t(lang, "lib.description")) } dd { (e.description) }
            dt { (t(lang, "lib.imported")) } dd { (fmt_date(lang, e.imported_at)) }
        }
        h2 { (t(lang, "lib.narrative")) }
        div.narrative { (definition_narrative(lang, &e.name, &e.definition)) }
        details {
            summary { (t(lang, "lib.definition")) }
            pre { (json) }
        }
    };
    let mut page = ctx.page("lib.title");
    page.title = format!("{} · {}", e.name, page.title);
    page.respond(body)
}

/// `GET /sites`: every site, enrolled or not, with the hospital that runs it.
pub async fn sites(State(portal): State<Shared>, ctx: Ctx) -> Response {
    if let Err(r) = ctx.require(&[]) {
        return r;
    }
    let lang = ctx.lang;
    let store = portal.hub.store().clone();
    let loaded = blocking(move || {
        Ok::<_, qiao_hub::StoreError>((
            store.sites()?,
            alliance::institutions(store.as_ref())?,
            store.jobs()?,
        ))
    })
    .await;
    let (sites, insts, jobs) = match loaded {
        Ok(Ok(v)) => v,
        Ok(Err(e)) => return ctx.internal(e),
        Err(e) => return ctx.internal(e),
    };
    let t_now = now();
    let seen = portal.hub.sites_seen();
    let pages_section = super::people::site_pages_section(&portal, &ctx, &sites).await;
    let body = html! {
        table {
            thead { tr { th { (t(lang, "sites.name")) } th { (t(lang, "sites.institution")) } th { (t(lang, "sites.status")) } th { (t(lang, "sites.last_seen")) } th { (t(lang, "sites.data")) } th { (t(lang, "sites.control")) } th { (t(lang, "sites.enrolled_at")) } } }
            tbody { @for s in &sites {
                @let delivered = jobs.iter().flat_map(|j| j.deliveries.iter()).filter(|d| d.site == s.id).filter_map(|d| d.last_at).max();
                @let seen_s = seen.get(&s.id);
                @let polled = seen_s.map(|x| x.last_seen);
                @let last = delivered.max(polled);
                @let online = polled.is_some_and(|l| t_now - l < ONLINE_POLL_SECS) || delivered.is_some_and(|l| t_now - l < 3600);
                tr id=(format!("site-{}", s.id)) {
                    td { (s.name) br; span.muted { (s.id) } }
                    td { (insts.iter().find(|i| i.site.as_ref() == Some(&s.id)).map(|i| i.name.clone()).unwrap_or_default()) }
                    td { @if s.public_key.is_none() { span.badge.pending { (t(lang, "sites.not_enrolled")) } }
                         @else if online { span.badge.online { (t(lang, "sites.online")) } }
                         @else { span.badge { (t(lang, "sites.idle")) } } }
                    td { @match last { Some(l) => (fmt_datetime(lang, l)), None => "–" } }
                    (status_cells(lang, seen_s))
                    td { @match s.enrolled_at { Some(l) => (fmt_date(lang, l)), None => "–" } }
                }
            } }
        }
        p.muted { (t(lang, "sites.note")) }
        (pages_section)
    };
    ctx.page("sites.title").respond(body)
}

/// A site that polled within this many seconds is online (sites long-poll every 25 s).
const ONLINE_POLL_SECS: i64 = 300;

/// A `YYYY-MM-DD` date in the locale's form (the text itself if it is not one).
pub(crate) fn fmt_iso_date(lang: Lang, d: &str) -> String {
    let mut parts = d.splitn(3, '-');
    let parsed = (|| {
        let y = parts.next()?.parse::<i64>().ok()?;
        let m = parts.next()?.parse::<u32>().ok()?;
        let d = parts.next()?.parse::<u32>().ok()?;
        Some((y, m, d))
    })();
    match parsed {
        Some((y, m, dd)) => fmt_ymd(lang, y, m, dd),
        None => d.to_owned(),
    }
}

/// Two table cells with a site's reported status: its data (as-of date, rounded persons) and
/// its disclosure control (minimum cell count, obfuscation, DP). "–" where nothing was reported.
pub(crate) fn status_cells(lang: Lang, seen: Option<&SiteSeen>) -> Markup {
    let on_off = |b: bool| t(lang, if b { "sites.on" } else { "sites.off" });
    html! {
        @match seen.and_then(|x| x.status.as_ref()) {
            Some(st) => {
                td.site-data {
                    (t(lang, "sites.data_as_of")) " "
                    (st.data_as_of.as_deref().map(|d| fmt_iso_date(lang, d)).unwrap_or_else(|| "–".into()))
                    br;
                    (t(lang, "sites.persons")) " ≈ " (fmt_int(lang, i64::try_from(st.persons_rounded).unwrap_or(i64::MAX)))
                }
                td.site-control {
                    (t(lang, "sites.min_cell")) " " (st.min_cell_count) br;
                    (t(lang, "sites.obfuscation")) " " (on_off(st.obfuscation)) br;
                    (t(lang, "sites.dp")) " " (on_off(st.dp))
                }
            }
            None => { td { "–" } td { "–" } }
        }
    }
}

/// A cohort definition as readable text in `lang` (the cohort engine's narrative), or a note
/// that it cannot be read as a Circe definition.
pub fn definition_narrative(lang: Lang, title: &str, def: &serde_json::Value) -> Markup {
    let nl = qiao_cohort::narrative::Lang::parse(lang.code())
        .unwrap_or(qiao_cohort::narrative::Lang::En);
    match qiao_cohort::narrative::narrative_of_json(&def.to_string(), title, nl) {
        Ok(md) => markdown(&md),
        Err(e) => {
            html! { p.flash.err { (t(lang, "lib.narrative_unreadable")) " " (e.to_string()) } }
        }
    }
}
