//! The project page's guidance: the stage indicator with the next step and who it waits on, the
//! committee's score summary, and the reviewer picker with names and expertise.

use qiao_hub::model::User;
use qiao_web::i18n::{fill, fmt_decimal};
use qiao_web::{html, t, tf, Lang, Markup};

use crate::alliance::{Criterion, Expert, Guide, ScoreSummary, STEPS};

fn filled(lang: Lang, (key, args): &(&'static str, Vec<(&'static str, String)>)) -> String {
    let args: Vec<(&str, &str)> = args.iter().map(|(k, v)| (*k, v.as_str())).collect();
    fill(t(lang, key), &args)
}

const STEP_KEYS: [&str; 6] = [
    "guide.step_proposal",
    "guide.step_review",
    "guide.step_feasibility",
    "guide.step_site_selection",
    "guide.step_running",
    "guide.step_completed",
];

/// The class of the current step.
const STEP_CURRENT: &str = "current";

/// A step's class: done, the current one, where a closed project stopped, or to come.
fn step_class(i: usize, g: &Guide) -> &'static str {
    if i < g.step {
        "done"
    } else if i == g.step && g.closed {
        "stopped"
    } else if i == g.step {
        STEP_CURRENT
    } else {
        "todo"
    }
}

/// The stage indicator: every step, done / current / to come (or where a closed project
/// stopped), then the next step and who it waits on.
pub fn indicator(lang: Lang, g: &Guide) -> Markup {
    debug_assert_eq!(STEPS.len(), STEP_KEYS.len());
    html! {
        nav.stages aria-label=(t(lang, "guide.title")) {
            ol { @for (i, key) in STEP_KEYS.iter().enumerate() {
                @let state = step_class(i, g);
                li class=(state) aria-current=[(state == STEP_CURRENT).then_some("step")] { (t(lang, key)) }
            } }
        }
        @if let Some(next) = &g.next {
            p.next-step #next-step {
                strong { (t(lang, "guide.next")) } " " (filled(lang, next))
                @if let Some(who) = &g.waits_on { " · " strong { (t(lang, "guide.waits_on")) } " " span.who { (filled(lang, who)) } }
            }
        }
    }
}

/// The quorum line's class: reached or not yet.
fn quorum_class(s: &ScoreSummary) -> &'static str {
    if s.quorate() {
        "ok"
    } else {
        "pending"
    }
}

/// The score summary the committee decides on.
pub fn scores(lang: Lang, s: &ScoreSummary, criteria: &[Criterion]) -> Markup {
    let name = |id: &str| {
        criteria
            .iter()
            .find(|c| c.id == id)
            .map(|c| {
                if lang == Lang::ZhCn {
                    c.zh.clone()
                } else {
                    c.en.clone()
                }
            })
            .unwrap_or_else(|| id.to_owned())
    };
    html! {
        div.card.score-summary #score-summary {
            p.quorum class=(quorum_class(s)) {
                (tf(lang, "guide.quorum_state", &[("done", &s.reviews.to_string()), ("quorum", &s.quorum.to_string())]))
                " · " (tf(lang, "guide.recommendations", &[("approve", &s.approve.to_string()), ("reject", &s.reject.to_string())]))
            }
            table.scores {
                thead { tr { th { (t(lang, "guide.criterion")) } th.num { (t(lang, "guide.mean")) } } }
                tbody { @for (id, mean, max) in &s.means { tr {
                    td { (name(id)) }
                    td.num { @match mean { Some(m) => { (fmt_decimal(lang, *m, 1)) " / " (max) } None => { "–" } } }
                } } }
            }
        }
    }
}

/// One committee member in the reviewer picker: name, institution and fields of expertise
/// (from the expert registry), the account id; a member who is no appointed expert says so.
pub fn reviewer_option(lang: Lang, u: &User, expert: Option<&Expert>) -> Markup {
    html! {
        label.reviewer {
            input type="checkbox" name="reviewers" value=(u.id);
            " "
            @match expert {
                Some(e) => {
                    strong { (e.name) } " (" (u.id) ") · " (e.institution)
                    @if !e.fields.is_empty() { " · " span.expertise { (e.fields.join(if lang == Lang::ZhCn { "、" } else { ", " })) } }
                }
                None => {
                    (u.id) @if let Some(i) = &u.institution { " (" (i) ")" }
                    " · " span.muted { (t(lang, "guide.not_expert")) }
                }
            }
        }
    }
}
