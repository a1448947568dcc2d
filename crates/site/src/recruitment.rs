//! Recruitment marks: on a project's pre-screening list the site's investigator marks each
//! candidate screened, enrolled or excluded (with the day and, for an exclusion, an optional
//! reason). Kept in the site's own directory (`DIR/recruitment/PROJECT.json`, one record per
//! person: who marked last and when), every change in the site's audit log (who, project,
//! mark, day — without the person's id, like every pre-screening entry).
//!
//! What the hub learns of them is a recruitment job's released counts only
//! ([`qiao_analysis::network::recruitment`]: screened, enrolled and excluded persons per month,
//! each through the site's release mechanism); [`dates`] is what that analysis reads.

use std::collections::BTreeMap;
use std::path::PathBuf;

use qiao_analysis::network::recruitment::PersonMarks;
use qiao_audit::EntryDraft;
use qiao_cdm::date::{from_ymd, to_ymd, Day};
use serde::{Deserialize, Serialize};

use crate::audit;
use crate::data::{read_json, write_json, SiteDir};

/// Longest exclusion reason, in characters.
pub const MAX_REASON_CHARS: usize = 500;

/// What an investigator records about a candidate.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Mark {
    /// Screened for the trial on the day.
    Screened,
    /// Enrolled on the day (screened too: the same day if not marked before).
    Enrolled,
    /// Excluded on the day (not eligible, declined, …), with an optional reason.
    Excluded,
}

impl Mark {
    /// The form and URL value.
    pub fn as_str(self) -> &'static str {
        match self {
            Mark::Screened => "screened",
            Mark::Enrolled => "enrolled",
            Mark::Excluded => "excluded",
        }
    }

    /// From the form and URL value.
    pub fn parse(s: &str) -> Option<Mark> {
        [Mark::Screened, Mark::Enrolled, Mark::Excluded]
            .into_iter()
            .find(|m| m.as_str() == s)
    }

    /// Every mark, in the order of a candidate's way.
    pub const ALL: [Mark; 3] = [Mark::Screened, Mark::Enrolled, Mark::Excluded];
}

/// One candidate's record.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Record {
    /// Day screened (`YYYY-MM-DD`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub screened: Option<String>,
    /// Day enrolled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enrolled: Option<String>,
    /// Day excluded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub excluded: Option<String>,
    /// Why excluded (local only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Who marked last.
    pub by: String,
    /// When (unix seconds).
    pub at: i64,
}

impl Record {
    /// Where the candidate stands: excluded, else enrolled, else screened.
    pub fn status(&self) -> Mark {
        if self.excluded.is_some() {
            Mark::Excluded
        } else if self.enrolled.is_some() {
            Mark::Enrolled
        } else {
            Mark::Screened
        }
    }

    /// The day of the current status.
    pub fn day(&self) -> &str {
        match self.status() {
            Mark::Excluded => self.excluded.as_deref(),
            Mark::Enrolled => self.enrolled.as_deref(),
            Mark::Screened => self.screened.as_deref(),
        }
        .unwrap_or_default()
    }
}

/// `DIR/recruitment/PROJECT.json`: the records of one project's candidates, by person id.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Marks {
    /// By person id.
    #[serde(default)]
    pub persons: BTreeMap<i64, Record>,
}

/// Why a mark was not recorded (named by form field).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum MarkRefused {
    /// Not a `YYYY-MM-DD` day from 1900 on.
    #[error("date: not a day (YYYY-MM-DD)")]
    BadDate,
    /// After today.
    #[error("date: in the future")]
    Future,
    /// Enrolled before screened (or screened after enrolled).
    #[error("date: enrollment before screening (screened {screened})")]
    EnrolledBeforeScreened {
        /// The day screened.
        screened: String,
    },
    /// Enrolling an excluded candidate, or excluding an enrolled one.
    #[error("mark: the candidate is {0}; clear the mark first")]
    Conflict(&'static str),
    /// The reason is too long or holds control characters.
    #[error("reason: at most {MAX_REASON_CHARS} characters of text")]
    BadReason,
}

fn path(dir: &SiteDir, project: &str) -> PathBuf {
    dir.root()
        .join("recruitment")
        .join(format!("{project}.json"))
}

fn valid_project(project: &str) -> anyhow::Result<()> {
    if qiao_protocol::ProjectId::new(project).is_err() {
        anyhow::bail!("{project:?} is not a project id");
    }
    Ok(())
}

/// The records of `project` (empty if none).
pub fn load(dir: &SiteDir, project: &str) -> anyhow::Result<Marks> {
    valid_project(project)?;
    Ok(read_json(&path(dir, project))?.unwrap_or_default())
}

/// A `YYYY-MM-DD` day from 1900 on, not after `today`.
fn day(s: &str, today: Day) -> Result<Day, MarkRefused> {
    let d = qiao_cdm::date::parse(s.trim().as_bytes()).ok_or(MarkRefused::BadDate)?;
    if d < from_ymd(1900, 1, 1) {
        return Err(MarkRefused::BadDate);
    }
    if d > today {
        return Err(MarkRefused::Future);
    }
    Ok(d)
}

fn ymd(d: Day) -> String {
    let (y, m, dd) = to_ymd(d);
    format!("{y:04}-{m:02}-{dd:02}")
}

/// Today at the site in the latest zone on Earth (UTC+14), so that no user's today is refused.
fn today(now: i64) -> Day {
    ((now + 14 * 3600).div_euclid(86_400)) as Day
}

/// The record after marking `mark` on `date` (pure: the rules of [`set`]).
pub fn apply(
    before: Option<&Record>,
    mark: Mark,
    date: &str,
    reason: &str,
    by: &str,
    now: i64,
) -> Result<Record, MarkRefused> {
    let d = day(date, today(now))?;
    let reason = reason.trim();
    if reason.chars().count() > MAX_REASON_CHARS || reason.chars().any(char::is_control) {
        return Err(MarkRefused::BadReason);
    }
    let mut r = before.cloned().unwrap_or(Record {
        screened: None,
        enrolled: None,
        excluded: None,
        reason: None,
        by: by.to_owned(),
        at: now,
    });
    let parsed = |s: &Option<String>| s.as_deref().and_then(|s| day(s, i32::MAX).ok());
    match mark {
        Mark::Screened => {
            if let Some(e) = parsed(&r.enrolled).filter(|e| *e < d) {
                return Err(MarkRefused::EnrolledBeforeScreened { screened: ymd(e) });
            }
            r.screened = Some(ymd(d));
        }
        Mark::Enrolled => {
            if r.excluded.is_some() {
                return Err(MarkRefused::Conflict("excluded"));
            }
            match parsed(&r.screened) {
                Some(s) if s > d => {
                    return Err(MarkRefused::EnrolledBeforeScreened { screened: ymd(s) })
                }
                Some(_) => {}
                None => r.screened = Some(ymd(d)),
            }
            r.enrolled = Some(ymd(d));
        }
        Mark::Excluded => {
            if r.enrolled.is_some() {
                return Err(MarkRefused::Conflict("enrolled"));
            }
            r.excluded = Some(ymd(d));
            r.reason = (!reason.is_empty()).then(|| reason.to_owned());
        }
    }
    r.by = by.to_owned();
    r.at = now;
    Ok(r)
}

/// What the investigator asks: a mark on a day, or clearing the candidate's record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Change<'a> {
    /// Mark on a day, with a reason (exclusions).
    Mark {
        /// The mark.
        mark: Mark,
        /// `YYYY-MM-DD`.
        date: &'a str,
        /// Optional reason.
        reason: &'a str,
    },
    /// Remove the candidate's record (a mistake).
    Clear,
}

/// Records `change` for `person` of `project`'s list by investigator `by`: locked, checked
/// ([`apply`]), written atomically, audited (without the person's id). The caller has checked
/// the access rule and that `person` is on the list.
pub fn set(
    dir: &SiteDir,
    project: &str,
    person: i64,
    change: Change<'_>,
    by: &str,
    now: i64,
) -> anyhow::Result<Result<Option<Record>, MarkRefused>> {
    valid_project(project)?;
    let file = path(dir, project);
    let outcome = dir.locked(|| {
        let mut marks: Marks = read_json(&file)?.unwrap_or_default();
        let after = match change {
            Change::Clear => None,
            Change::Mark { mark, date, reason } => {
                match apply(marks.persons.get(&person), mark, date, reason, by, now) {
                    Ok(r) => Some(r),
                    Err(e) => return Ok(Err(e)),
                }
            }
        };
        match &after {
            Some(r) => {
                marks.persons.insert(person, r.clone());
            }
            None => {
                if marks.persons.remove(&person).is_none() {
                    return Ok(Ok(None));
                }
            }
        }
        if let Some(parent) = file.parent() {
            std::fs::create_dir_all(parent)?;
        }
        write_json(&file, &marks)?;
        Ok(Ok(after))
    })?;
    if let Ok(after) = &outcome {
        let decision = match (change, after) {
            (Change::Mark { mark, reason, .. }, Some(r)) => format!(
                "marked a candidate of project {project}'s pre-screening list {} on {}{}",
                mark.as_str(),
                r.day(),
                if reason.trim().is_empty() || mark != Mark::Excluded {
                    ""
                } else {
                    " (reason recorded at the site)"
                }
            ),
            _ => format!("cleared a candidate's marks on project {project}'s pre-screening list"),
        };
        audit::append(
            dir,
            EntryDraft::new(now, audit::user(by), "recruitment.mark")
                .project(project.to_owned())
                .decision(decision)
                .released_text(
                    "local only: the marks stay at the site; the hub gets released monthly counts",
                ),
        )?;
    }
    Ok(outcome)
}

/// Every candidate's days, as the recruitment analysis reads them (patient-level: stays at
/// the site).
pub fn dates(marks: &Marks) -> Vec<PersonMarks> {
    let d = |s: &Option<String>| {
        s.as_deref()
            .and_then(|s| qiao_cdm::date::parse(s.as_bytes()))
    };
    marks
        .persons
        .iter()
        .map(|(id, r)| PersonMarks {
            person_id: *id,
            screened: d(&r.screened),
            enrolled: d(&r.enrolled),
            excluded: d(&r.excluded),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    // 2026-12-07 12:00 UTC.
    const NOW: i64 = 1_796_644_800;

    #[test]
    fn a_candidates_way_screened_enrolled_or_excluded() {
        let s = apply(None, Mark::Screened, "2026-11-02", "", "dr.a", NOW).unwrap();
        assert_eq!(s.status(), Mark::Screened);
        assert_eq!(s.day(), "2026-11-02");
        // Enrolled later: both days kept.
        let e = apply(Some(&s), Mark::Enrolled, "2026-11-20", "", "dr.b", NOW + 1).unwrap();
        assert_eq!(
            (e.status(), e.screened.as_deref(), e.enrolled.as_deref()),
            (Mark::Enrolled, Some("2026-11-02"), Some("2026-11-20"))
        );
        assert_eq!((e.by.as_str(), e.at), ("dr.b", NOW + 1));
        // Enrolled before screened, or screened after enrolled: refused.
        assert_eq!(
            apply(Some(&s), Mark::Enrolled, "2026-11-01", "", "dr.a", NOW),
            Err(MarkRefused::EnrolledBeforeScreened {
                screened: "2026-11-02".into()
            })
        );
        assert!(apply(Some(&e), Mark::Screened, "2026-11-21", "", "dr.a", NOW).is_err());
        // Enrolled directly: screened the same day.
        let direct = apply(None, Mark::Enrolled, "2026-10-05", "", "dr.a", NOW).unwrap();
        assert_eq!(direct.screened.as_deref(), Some("2026-10-05"));
        // Excluded with a reason; an enrolled candidate is not excluded (nor the reverse).
        let x = apply(
            Some(&s),
            Mark::Excluded,
            "2026-11-03",
            " declined ",
            "dr.a",
            NOW,
        )
        .unwrap();
        assert_eq!(
            (x.status(), x.reason.as_deref()),
            (Mark::Excluded, Some("declined"))
        );
        assert_eq!(
            apply(Some(&e), Mark::Excluded, "2026-11-25", "", "dr.a", NOW),
            Err(MarkRefused::Conflict("enrolled"))
        );
        assert_eq!(
            apply(Some(&x), Mark::Enrolled, "2026-11-25", "", "dr.a", NOW),
            Err(MarkRefused::Conflict("excluded"))
        );
        // Days: well-formed, from 1900, not after today (in the latest zone).
        for (bad, why) in [
            ("2026-13-01", MarkRefused::BadDate),
            ("yesterday", MarkRefused::BadDate),
            ("1899-12-31", MarkRefused::BadDate),
            ("2026-12-09", MarkRefused::Future),
        ] {
            assert_eq!(
                apply(None, Mark::Screened, bad, "", "dr.a", NOW),
                Err(why),
                "{bad}"
            );
        }
        assert!(apply(None, Mark::Screened, "2026-12-08", "", "dr.a", NOW).is_ok());
        let long = "x".repeat(MAX_REASON_CHARS + 1);
        assert_eq!(
            apply(None, Mark::Excluded, "2026-11-03", &long, "dr.a", NOW),
            Err(MarkRefused::BadReason)
        );
        assert_eq!(
            apply(None, Mark::Excluded, "2026-11-03", "a\u{7}b", "dr.a", NOW),
            Err(MarkRefused::BadReason)
        );
    }

    #[test]
    fn marks_are_kept_audited_and_read_as_days() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = SiteDir::create(tmp.path()).unwrap();
        let mark = |m, d| Change::Mark {
            mark: m,
            date: d,
            reason: "",
        };
        for (person, m, day) in [
            (7, Mark::Screened, "2026-11-02"),
            (7, Mark::Enrolled, "2026-11-20"),
            (9, Mark::Excluded, "2026-10-30"),
        ] {
            let r = set(&dir, "p1", person, mark(m, day), "dr.a", NOW).unwrap();
            assert!(r.is_ok(), "{person} {day}: {r:?}");
        }
        // A refusal writes nothing.
        assert_eq!(
            set(
                &dir,
                "p1",
                9,
                mark(Mark::Enrolled, "2026-11-01"),
                "dr.a",
                NOW
            )
            .unwrap(),
            Err(MarkRefused::Conflict("excluded"))
        );
        let marks = load(&dir, "p1").unwrap();
        assert_eq!(marks.persons.len(), 2);
        let days = dates(&marks);
        assert_eq!(days[0].person_id, 7);
        assert_eq!(days[0].screened, Some(from_ymd(2026, 11, 2)));
        assert_eq!(days[0].enrolled, Some(from_ymd(2026, 11, 20)));
        assert_eq!(days[1].excluded, Some(from_ymd(2026, 10, 30)));
        assert_eq!(days[1].screened, None);
        // Cleared; another project's marks apart.
        assert_eq!(
            set(&dir, "p1", 9, Change::Clear, "dr.a", NOW).unwrap(),
            Ok(None)
        );
        assert_eq!(load(&dir, "p1").unwrap().persons.len(), 1);
        assert!(load(&dir, "p2").unwrap().persons.is_empty());
        assert!(load(&dir, "../x").is_err());
        // Four changes audited, none naming the person.
        let (entries, _) = audit::read(&dir).unwrap();
        let marks: Vec<&str> = entries
            .iter()
            .filter(|e| e.action == "recruitment.mark")
            .filter_map(|e| e.decision.as_deref())
            .collect();
        assert_eq!(
            marks,
            [
                "marked a candidate of project p1's pre-screening list screened on 2026-11-02",
                "marked a candidate of project p1's pre-screening list enrolled on 2026-11-20",
                "marked a candidate of project p1's pre-screening list excluded on 2026-10-30",
                "cleared a candidate's marks on project p1's pre-screening list",
            ]
        );
    }
}
