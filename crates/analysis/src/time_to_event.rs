//! Time to the first outcome: the per-person follow-up that Kaplan–Meier, the log-rank test and
//! regression start from.
//!
//! Per person of the target cohort, their **first entry** (as OHDSI CohortMethod's
//! `firstExposureOnly` and `../shared/oracles/survival_reference.py`):
//!
//! - **time zero** = the time-at-risk start: cohort start + `start_offset` days (the cohort start by
//!   default);
//! - **time-at-risk end** = the chosen end (observation period end, cohort end + N, or a fixed horizon
//!   cohort start + N), never past the end of the observation period that contains the cohort start
//!   (nothing is observed after it);
//! - **event** = the first outcome-cohort start in [time-at-risk start, time-at-risk end] (an outcome on
//!   day zero is an event at time 0); else **censored** at the time-at-risk end;
//! - **time** = days from time zero to the event or the censoring.
//!
//! Entries whose cohort start lies in no observation period, or whose time at risk is empty (its end
//! before its start), are not followed; [`FollowUp`] counts them (nothing is dropped unsaid).

use std::fmt;
use std::str::FromStr;

use qiao_cdm::date::Day;
use qiao_cohort::CohortRow;
use qiao_store::Store;
use serde::{Deserialize, Serialize};

/// When the time at risk ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum TarEnd {
    /// The end of the observation period containing the cohort start.
    ObservationEnd,
    /// The cohort end + N days.
    CohortEnd(i32),
    /// A fixed horizon: the cohort start + N days.
    CohortStart(i32),
}

/// The time at risk: `start+N:obs_end`, `start+N:end+M`, `start+N:start+M` (always capped at the
/// observation period end).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct TimeAtRisk {
    /// Days after the cohort start where time at risk (time zero) begins.
    pub start_offset: i32,
    pub end: TarEnd,
}

impl Default for TimeAtRisk {
    fn default() -> Self {
        TimeAtRisk {
            start_offset: 0,
            end: TarEnd::ObservationEnd,
        }
    }
}

/// A time-at-risk text that does not parse.
#[derive(Debug, thiserror::Error)]
#[error(
    "time at risk {text:?}: {why} (expected start+N:obs_end, start+N:end+M or start+N:start+M)"
)]
pub struct TarParseError {
    text: String,
    why: &'static str,
}

fn anchor_offset<'a>(part: &'a str, text: &str) -> Result<(&'a str, i32), TarParseError> {
    let err = |why| TarParseError {
        text: text.to_string(),
        why,
    };
    let (anchor, offset) = match part.find(['+', '-']) {
        Some(i) => (&part[..i], &part[i..]),
        None => (part, "+0"),
    };
    let offset = offset
        .strip_prefix('+')
        .unwrap_or(offset)
        .parse::<i32>()
        .map_err(|_| err("the offset is not a whole number of days"))?;
    Ok((anchor, offset))
}

impl FromStr for TimeAtRisk {
    type Err = TarParseError;
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let err = |why| TarParseError {
            text: text.to_string(),
            why,
        };
        let (start, end) = text.split_once(':').ok_or_else(|| err("no ':'"))?;
        let (anchor, start_offset) = anchor_offset(start.trim(), text)?;
        if anchor != "start" {
            return Err(err(
                "the time at risk starts from the cohort start ('start')",
            ));
        }
        let end = match end.trim() {
            "obs_end" => TarEnd::ObservationEnd,
            e => match anchor_offset(e, text)? {
                ("end", n) => TarEnd::CohortEnd(n),
                ("start", n) => TarEnd::CohortStart(n),
                _ => return Err(err("the end is obs_end, end+M or start+M")),
            },
        };
        Ok(TimeAtRisk { start_offset, end })
    }
}

impl fmt::Display for TimeAtRisk {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "start{:+}:", self.start_offset)?;
        match self.end {
            TarEnd::ObservationEnd => write!(f, "obs_end"),
            TarEnd::CohortEnd(n) => write!(f, "end{n:+}"),
            TarEnd::CohortStart(n) => write!(f, "start{n:+}"),
        }
    }
}

/// One followed person.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Subject {
    pub person_id: i64,
    /// The person's index in the store.
    pub person: u32,
    /// The cohort start of the entry followed.
    pub index_date: Day,
    /// Days from time zero to the event or the censoring (≥ 0).
    pub time: i32,
    pub event: bool,
}

/// The followed persons of a cohort and those that could not be followed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FollowUp {
    /// In person-id order.
    pub subjects: Vec<Subject>,
    /// Persons in the cohort.
    pub persons: usize,
    /// Persons whose first entry starts in no observation period.
    pub no_observation_period: usize,
    /// Persons whose time at risk is empty (it ends before it starts).
    pub empty_time_at_risk: usize,
}

impl FollowUp {
    pub fn events(&self) -> usize {
        self.subjects.iter().filter(|s| s.event).count()
    }
}

/// Follows each person's first entry of `target` (rows in (subject_id, start) order, as the cohort
/// engine gives them) to the first start of `outcome` (same order) within `tar`.
pub fn follow_up(
    store: &Store,
    target: &[CohortRow],
    outcome: &[CohortRow],
    tar: TimeAtRisk,
) -> FollowUp {
    let persons = store.persons();
    let op = store.domain("observation_period");
    let mut out = FollowUp::default();
    let mut o = 0usize;
    let mut i = 0usize;
    while i < target.len() {
        let first = target[i];
        while i < target.len() && target[i].subject_id == first.subject_id {
            i += 1;
        }
        out.persons += 1;
        let Some(person) = persons.index_of(first.subject_id) else {
            out.no_observation_period += 1;
            continue;
        };
        let period_end = op.as_ref().and_then(|d| {
            d.person_rows(person)
                .find(|&r| d.start().at(r) <= first.start && first.start <= d.end().at(r))
                .map(|r| d.end().at(r))
        });
        let Some(period_end) = period_end else {
            out.no_observation_period += 1;
            continue;
        };
        let start = first.start.saturating_add(tar.start_offset);
        let end = match tar.end {
            TarEnd::ObservationEnd => period_end,
            TarEnd::CohortEnd(n) => first.end.saturating_add(n).min(period_end),
            TarEnd::CohortStart(n) => first.start.saturating_add(n).min(period_end),
        };
        if end < start {
            out.empty_time_at_risk += 1;
            continue;
        }
        while o < outcome.len() && outcome[o].subject_id < first.subject_id {
            o += 1;
        }
        let mut event_day = None;
        let mut k = o;
        while k < outcome.len() && outcome[k].subject_id == first.subject_id {
            let s = outcome[k].start;
            if s > end {
                break;
            }
            if s >= start {
                event_day = Some(s);
                break;
            }
            k += 1;
        }
        out.subjects.push(Subject {
            person_id: first.subject_id,
            person,
            index_date: first.start,
            time: event_day.unwrap_or(end) - start,
            event: event_day.is_some(),
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_prints_times_at_risk() {
        for (text, tar) in [
            ("start+0:obs_end", TimeAtRisk::default()),
            (
                "start+30:end+7",
                TimeAtRisk {
                    start_offset: 30,
                    end: TarEnd::CohortEnd(7),
                },
            ),
            (
                "start:start+365",
                TimeAtRisk {
                    start_offset: 0,
                    end: TarEnd::CohortStart(365),
                },
            ),
            (
                "start-1:end-2",
                TimeAtRisk {
                    start_offset: -1,
                    end: TarEnd::CohortEnd(-2),
                },
            ),
        ] {
            assert_eq!(text.parse::<TimeAtRisk>().unwrap(), tar, "{text}");
            assert_eq!(tar.to_string().parse::<TimeAtRisk>().unwrap(), tar);
        }
        for bad in [
            "",
            "start+0",
            "end+0:obs_end",
            "start+x:obs_end",
            "start:later",
        ] {
            let e = bad.parse::<TimeAtRisk>().unwrap_err().to_string();
            assert!(e.contains(&format!("{bad:?}")), "{e}");
        }
    }
}
