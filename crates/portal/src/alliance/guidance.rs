//! Guidance on a project: where it stands in the pipeline, the next step and who it waits on,
//! and the score summary the committee decision is taken on.

use super::pipeline::{InviteStatus, ProjectFile, Stage};
use super::review_criteria::Criterion;

/// The reviews of a project against its criteria: how many of the quorum are in, the
/// recommendations, and each criterion's mean score.
#[derive(Clone, Debug, PartialEq)]
pub struct ScoreSummary {
    /// Reviews submitted by assigned reviewers.
    pub reviews: usize,
    /// Reviews the decision needs.
    pub quorum: usize,
    /// Recommending approval.
    pub approve: usize,
    /// Recommending rejection.
    pub reject: usize,
    /// Per criterion (in the configured order): id, mean score (None without scores), highest
    /// score.
    pub means: Vec<(String, Option<f64>, u8)>,
}

impl ScoreSummary {
    /// Whether the decision may be taken.
    pub fn quorate(&self) -> bool {
        self.reviews >= self.quorum
    }
}

/// The score summary of `file`'s reviews by its assigned reviewers.
pub fn score_summary(file: &ProjectFile, criteria: &[Criterion], quorum: u32) -> ScoreSummary {
    let reviews: Vec<_> = file
        .reviews
        .iter()
        .filter(|r| file.reviewers.contains(&r.reviewer))
        .collect();
    let means = criteria
        .iter()
        .map(|c| {
            let scores: Vec<f64> = reviews
                .iter()
                .filter_map(|r| r.scores.get(&c.id))
                .map(|s| f64::from(*s))
                .collect();
            let mean =
                (!scores.is_empty()).then(|| scores.iter().sum::<f64>() / scores.len() as f64);
            (c.id.clone(), mean, c.max)
        })
        .collect();
    ScoreSummary {
        reviews: reviews.len(),
        quorum: quorum as usize,
        approve: reviews.iter().filter(|r| r.recommend).count(),
        reject: reviews.iter().filter(|r| !r.recommend).count(),
        means,
    }
}

/// The steps of the stage indicator, in order.
pub const STEPS: [&str; 6] = [
    "proposal",
    "review",
    "feasibility",
    "site_selection",
    "running",
    "completed",
];

/// Where a project stands: the indicator's current step, the next step and who it waits on
/// (catalog keys `guide.step_*`, `guide.next_*`, `guide.who_*` with their arguments).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Guide {
    /// Index into [`STEPS`] of the current step ([`STEPS`].len() when completed).
    pub step: usize,
    /// Closed without completing (rejected or withdrawn): the stage's own name says which.
    pub closed: bool,
    /// The next step: a `guide.next_*` key and its arguments.
    pub next: Option<(&'static str, Vec<(&'static str, String)>)>,
    /// Who it waits on: a `guide.who_*` key and its arguments.
    pub waits_on: Option<(&'static str, Vec<(&'static str, String)>)>,
}

/// The guide of `file` with `quorum` reviews needed and `enrolled` so far (the recruitment
/// lines' total, [`super::enrolled`]).
pub fn guide(file: &ProjectFile, quorum: u32, enrolled: u64) -> Guide {
    let sponsor = || {
        Some((
            "guide.who_sponsor",
            vec![("user", file.sponsor.to_string())],
        ))
    };
    let list = |v: Vec<String>| v.join(", ");
    let (step, next, waits_on) = match file.stage {
        Stage::Draft if file.cohorts.is_empty() => (0, ("guide.next_draft", vec![]), sponsor()),
        Stage::Draft => (0, ("guide.next_submit", vec![]), sponsor()),
        Stage::Submitted => (
            1,
            ("guide.next_assign", vec![]),
            Some(("guide.who_admin", vec![])),
        ),
        Stage::UnderReview => {
            let done = file
                .reviews
                .iter()
                .filter(|r| file.reviewers.contains(&r.reviewer))
                .count();
            let needed = (quorum as usize).max(1);
            if done < needed {
                let pending: Vec<String> = file
                    .reviewers
                    .iter()
                    .filter(|u| !file.reviews.iter().any(|r| &r.reviewer == *u))
                    .map(ToString::to_string)
                    .collect();
                (
                    1,
                    (
                        "guide.next_reviews",
                        vec![("done", done.to_string()), ("quorum", needed.to_string())],
                    ),
                    Some(("guide.who_reviewers", vec![("users", list(pending))])),
                )
            } else {
                (
                    1,
                    ("guide.next_decide", vec![]),
                    Some(("guide.who_committee", vec![])),
                )
            }
        }
        Stage::Approved => (2, ("guide.next_feasibility", vec![]), sponsor()),
        Stage::Feasibility if file.cohorts.iter().all(|c| c.runs.is_empty()) => {
            (2, ("guide.next_run", vec![]), sponsor())
        }
        Stage::Feasibility => (2, ("guide.next_select", vec![]), sponsor()),
        Stage::SiteSelection => {
            let waiting: Vec<String> = file
                .invites
                .iter()
                .filter(|i| i.status == InviteStatus::Invited)
                .map(|i| i.site.to_string())
                .collect();
            if file.invites.is_empty() {
                (3, ("guide.next_invite", vec![]), sponsor())
            } else if !file
                .invites
                .iter()
                .any(|i| i.status == InviteStatus::Accepted)
            {
                (
                    3,
                    ("guide.next_answers", vec![]),
                    Some(("guide.who_stewards", vec![("sites", list(waiting))])),
                )
            } else {
                (3, ("guide.next_start", vec![]), sponsor())
            }
        }
        Stage::Running => {
            let sites: Vec<String> = file
                .invites
                .iter()
                .filter(|i| i.status == InviteStatus::Accepted)
                .map(|i| i.site.to_string())
                .collect();
            (
                4,
                (
                    "guide.next_report",
                    vec![
                        ("enrolled", enrolled.to_string()),
                        ("target", file.target.to_string()),
                    ],
                ),
                Some(("guide.who_sites", vec![("sites", list(sites))])),
            )
        }
        Stage::Completed => {
            return Guide {
                step: STEPS.len(),
                closed: false,
                next: None,
                waits_on: None,
            }
        }
        Stage::Rejected | Stage::Withdrawn => {
            let step = file.history.last().map(|t| guide_step(t.from)).unwrap_or(0);
            return Guide {
                step,
                closed: true,
                next: None,
                waits_on: None,
            };
        }
    };
    Guide {
        step,
        closed: false,
        next: Some(next),
        waits_on,
    }
}

/// The indicator step a stage belongs to.
fn guide_step(s: Stage) -> usize {
    match s {
        Stage::Draft | Stage::Withdrawn => 0,
        Stage::Submitted | Stage::UnderReview | Stage::Rejected => 1,
        Stage::Approved | Stage::Feasibility => 2,
        Stage::SiteSelection => 3,
        Stage::Running => 4,
        Stage::Completed => 5,
    }
}
