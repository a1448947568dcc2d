//! Versions of a project's cohort definitions: a readable diff between two versions of the
//! narrative text, in both languages (`GET /projects/{id}/cohorts/{n}/diff?a=V&b=W`).

use axum::extract::{Path, Query, State};
use axum::response::Response;
use qiao_web::i18n::fmt_datetime;
use qiao_web::{html, t, tf, Lang, Markup};
use serde::Deserialize;

use crate::alliance;
use crate::web::{blocking, Ctx, Shared};

/// One line of a diff.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Line<'a> {
    /// In both.
    Same(&'a str),
    /// Only in the older text.
    Removed(&'a str),
    /// Only in the newer text.
    Added(&'a str),
}

/// The line diff of `a` → `b`: a longest common subsequence of lines, removals before additions
/// at each change. Texts longer than 4,000 lines are shown as all removed, then all added.
pub fn line_diff<'a>(a: &'a str, b: &'a str) -> Vec<Line<'a>> {
    let a: Vec<&str> = a.lines().collect();
    let b: Vec<&str> = b.lines().collect();
    if a.len() > 4000 || b.len() > 4000 {
        return a
            .iter()
            .map(|l| Line::Removed(l))
            .chain(b.iter().map(|l| Line::Added(l)))
            .collect();
    }
    // lcs[i][j]: the common subsequence length of a[i..] and b[j..].
    let w = b.len() + 1;
    let mut lcs = vec![0u32; (a.len() + 1) * w];
    for i in (0..a.len()).rev() {
        for j in (0..b.len()).rev() {
            lcs[i * w + j] = if a[i] == b[j] {
                lcs[(i + 1) * w + j + 1] + 1
            } else {
                lcs[(i + 1) * w + j].max(lcs[i * w + j + 1])
            };
        }
    }
    let (mut i, mut j) = (0, 0);
    let mut out = Vec::with_capacity(a.len() + b.len());
    while i < a.len() || j < b.len() {
        if i < a.len() && j < b.len() && a[i] == b[j] {
            out.push(Line::Same(a[i]));
            i += 1;
            j += 1;
        } else if j == b.len() || (i < a.len() && lcs[(i + 1) * w + j] >= lcs[i * w + j + 1]) {
            out.push(Line::Removed(a[i]));
            i += 1;
        } else {
            out.push(Line::Added(b[j]));
            j += 1;
        }
    }
    out
}

fn render_diff(lines: &[Line]) -> Markup {
    html! {
        pre.diff { @for l in lines {
            @match l {
                Line::Same(s) => { span.same { "  " (s) } }
                Line::Removed(s) => { del { "− " (s) } }
                Line::Added(s) => { ins { "+ " (s) } }
            }
        } }
    }
}

/// The query of the diff page: the two versions (default: the one before the current, and the
/// current).
#[derive(Deserialize, Default)]
pub struct DiffQuery {
    a: Option<u32>,
    b: Option<u32>,
}

fn narrative_text(
    def: &serde_json::Value,
    title: &str,
    lang: qiao_cohort::narrative::Lang,
) -> String {
    qiao_cohort::narrative::narrative_of_json(&def.to_string(), title, lang)
        .unwrap_or_else(|e| e.to_string())
}

/// `GET /projects/{id}/cohorts/{n}/diff?a=V&b=W`.
pub async fn diff(
    State(portal): State<Shared>,
    ctx: Ctx,
    Path((id, n)): Path<(String, u32)>,
    Query(q): Query<DiffQuery>,
) -> Response {
    let user = match ctx.require(&[]) {
        Ok(u) => u.clone(),
        Err(r) => return r,
    };
    let Ok(pid) = id.parse::<qiao_hub::protocol::ProjectId>() else {
        return ctx.not_found();
    };
    let p2 = portal.clone();
    let loaded = blocking(move || -> Result<_, qiao_hub::StoreError> {
        let s = p2.hub.store();
        let Some(file) = alliance::project_file(s.as_ref(), pid.as_str())? else {
            return Ok(None);
        };
        let Some(project) = s.project(&pid)? else {
            return Ok(None);
        };
        let Some(c) = file.cohorts.iter().find(|c| c.n == n).cloned() else {
            return Ok(None);
        };
        let b = q.b.unwrap_or(c.version());
        let a = q.a.unwrap_or(b.saturating_sub(1).max(1));
        let da = alliance::cohort_version(s.as_ref(), &pid, n, a)?;
        let db = alliance::cohort_version(s.as_ref(), &pid, n, b)?;
        Ok(Some((file, project, c, a, b, da, db)))
    })
    .await;
    let (file, project, c, a, b, da, db) = match loaded {
        Ok(Ok(Some((f, p, c, a, b, Some(da), Some(db))))) => (f, p, c, a, b, da, db),
        Ok(Ok(_)) => return ctx.not_found(),
        Ok(Err(e)) => return ctx.internal(e),
        Err(e) => return ctx.internal(e),
    };
    if !alliance::can_see(&user, &file, &project.members) {
        return ctx.forbidden();
    }
    let lang = ctx.lang;
    let (na, ta) = c.version_info(a).unwrap_or(("", 0));
    let (nb, tb) = c.version_info(b).unwrap_or(("", 0));
    let sections = [
        (qiao_cohort::narrative::Lang::En, t(lang, "ver.in_en")),
        (qiao_cohort::narrative::Lang::ZhCn, t(lang, "ver.in_zh")),
    ];
    let body = html! {
        p { a href=(format!("/projects/{}#cohort-{n}", file.project)) { "← " (file.title) } }
        p #versions { (tf(lang, "ver.compared", &[
            ("a", &a.to_string()), ("a_name", na), ("a_at", &fmt_datetime(lang, ta)),
            ("b", &b.to_string()), ("b_name", nb), ("b_at", &fmt_datetime(lang, tb)),
        ])) }
        p.muted { (t(lang, "ver.legend")) }
        @for (nl, label) in sections {
            @let old = narrative_text(&da, na, nl);
            @let new = narrative_text(&db, nb, nl);
            @let lines = line_diff(&old, &new);
            section.card lang=(page_lang(nl).code()) {
                h2 { (label) }
                @if lines.iter().all(|l| matches!(l, Line::Same(_))) { p.muted { (t(lang, "ver.same")) } }
                (render_diff(&lines))
            }
        }
    };
    let mut page = ctx.page("ver.title");
    page.title = format!("{} · {}", c.name, page.title);
    page.respond(body)
}

/// The version line of a cohort card: its version, and links comparing each replaced version
/// with the next.
pub fn version_links(lang: Lang, project: &str, c: &alliance::CohortRef) -> Markup {
    html! {
        p.versions {
            (tf(lang, "ver.current", &[("v", &c.version().to_string())]))
            @for o in &c.versions {
                " · " a.diff href=(format!("/projects/{project}/cohorts/{}/diff?a={}&b={}", c.n, o.v, o.v + 1)) {
                    (tf(lang, "ver.compare", &[("a", &o.v.to_string()), ("b", &(o.v + 1).to_string())]))
                }
            }
        }
    }
}

/// The page language a narrative is written in (its section's `lang`).
fn page_lang(nl: qiao_cohort::narrative::Lang) -> Lang {
    if nl == qiao_cohort::narrative::Lang::En {
        Lang::En
    } else {
        Lang::ZhCn
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_line_diff_keeps_the_common_lines_and_marks_the_changes() {
        let old = "# AF\nage > 40\nmale\nexit: end of era";
        let new = "# AF\nage > 50\nmale\nexit: end of era\nconcept sets";
        assert_eq!(
            line_diff(old, new),
            vec![
                Line::Same("# AF"),
                Line::Removed("age > 40"),
                Line::Added("age > 50"),
                Line::Same("male"),
                Line::Same("exit: end of era"),
                Line::Added("concept sets"),
            ]
        );
        assert!(line_diff(old, old)
            .iter()
            .all(|l| matches!(l, Line::Same(_))));
        assert_eq!(line_diff("", "a"), vec![Line::Added("a")]);
        assert_eq!(line_diff("a", ""), vec![Line::Removed("a")]);
    }
}
