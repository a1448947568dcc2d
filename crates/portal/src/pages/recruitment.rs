//! The project page's recruitment section: the sites' released counts of the candidates their
//! investigators marked on the pre-screening list (the latest collection: who answered, who it
//! waits on), the months typed as overrides, and the sponsor's button to collect again.

use qiao_hub::view::{JobView, NetworkTotals};
use qiao_web::i18n::{fmt_datetime, fmt_int};
use qiao_web::layout::{controlled, csrf_field, submit, FormErrors};
use qiao_web::{html, t, tf, Lang, Markup};

use crate::alliance::{next_collection, LineSource, ProjectFile, RecruitmentLine, Stage};

use super::feasibility::{released, status_text, total};

/// The section (running and completed projects).
pub(crate) fn section(
    lang: Lang,
    csrf: &str,
    f: &ProjectFile,
    view: Option<&JobView>,
    lines: &[RecruitmentLine],
    is_sponsor: bool,
    errors: &FormErrors,
) -> Markup {
    let now = qiao_hub::util::now();
    let shown = |r: &qiao_hub::protocol::Released, l: &RecruitmentLine| match &l.disclosure {
        Some(d) => controlled(lang, released(lang, r, d).1.trim_end_matches('†')),
        None => html! { (fmt_int(lang, r.point().unwrap_or(0) as i64)) },
    };
    html! {
        section #recruitment {
            h3 { (t(lang, "recr.title")) }
            p.muted { (t(lang, "recr.intro")) }
            @if let (Some(v), Some(asked)) = (view, f.recruitment.last()) {
                p #recruitment-asked { (tf(lang, "recr.asked", &[("when", &fmt_datetime(lang, asked.at)), ("by", asked.by.as_str())])) }
                ul.statuses { @for s in &v.sites {
                    li { (s.site) ": " (status_text(lang, s, s.site.as_str())) }
                } }
                @if let NetworkTotals::Recruitment(p) = &v.total {
                    @if p.sites_done > 0 {
                        p #recruitment-total { (tf(lang, "recr.total", &[
                            ("screened", &total(lang, &p.screened.clone().into()).1),
                            ("enrolled", &total(lang, &p.enrolled.clone().into()).1),
                            ("excluded", &total(lang, &p.excluded.clone().into()).1),
                            ("sites", &p.sites_done.to_string()),
                        ])) }
                    }
                }
            } @else {
                p.empty { (t(lang, "recr.none")) }
            }
            @if lines.is_empty() {
                p.muted { (t(lang, "run.no_reports")) }
            } @else {
                div.scroll { table #recruitment-lines {
                    thead { tr {
                        th { (t(lang, "run.month")) } th { (t(lang, "sel.site")) }
                        th.num { (t(lang, "run.screened")) } th.num { (t(lang, "run.enrolled")) } th.num { (t(lang, "recr.excluded")) }
                        th { (t(lang, "recr.source")) }
                    } }
                    tbody { @for l in lines { tr {
                        td { (l.month) } td { (l.site) }
                        td.num { (shown(&l.screened, l)) }
                        td.num { (shown(&l.enrolled, l)) }
                        td.num { @if let Some(x) = &l.excluded { (shown(x, l)) } }
                        td { @match l.source {
                            LineSource::Marks => span.badge.ok { (t(lang, "recr.from_marks")) },
                            LineSource::Typed => span.badge { (t(lang, "recr.typed")) },
                        } }
                    } } }
                } }
            }
            @if is_sponsor && f.stage == Stage::Running {
                @if let Some(e) = errors.get("form") { p.flash.err role="alert" { (e) } }
                @if let Some(next) = next_collection(f, now) {
                    p.muted #recruitment-next { (tf(lang, "recr.next", &[("when", &fmt_datetime(lang, next))])) }
                } @else {
                    form.inline method="post" action=(format!("/projects/{}/recruitment", f.project)) {
                        (csrf_field(csrf))
                        (submit(lang, "recr.collect"))
                    }
                    p.muted { (t(lang, "recr.cost")) }
                }
            }
            p.muted { (t(lang, "recr.override_note")) }
        }
    }
}
