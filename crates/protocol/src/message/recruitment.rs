//! Recruitment as a job carries it: the months a sponsor asks about ([`RecruitmentSpec`]) and a
//! site's released counts of the candidates its investigators marked screened, enrolled or
//! excluded on the project's pre-screening list in each month ([`RecruitmentResult`]).
//!
//! The marks themselves (who, which day, why) never leave the site: the answer is three
//! released counts per asked month, every one through the site's release mechanism like any
//! other count, and exactly the asked months in the asked order ([`check_recruitment`]).

use serde::{Deserialize, Serialize};

use super::{DisclosureSummary, Released};

/// Most months one recruitment job asks about.
pub const MAX_RECRUITMENT_MONTHS: usize = 36;

/// A calendar month.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct YearMonth {
    /// The year (2000 to 2100).
    pub year: u16,
    /// The month (1 to 12).
    pub month: u8,
}

impl YearMonth {
    /// `YYYY-MM`.
    pub fn key(&self) -> String {
        format!("{:04}-{:02}", self.year, self.month)
    }
}

/// What a recruitment job asks: the counts of these months (the job's definition is the cohort
/// of the pre-screening list the marks are made on).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct RecruitmentSpec {
    /// The months, ascending, without repeats (1 to [`MAX_RECRUITMENT_MONTHS`]).
    pub months: Vec<YearMonth>,
}

impl RecruitmentSpec {
    /// The spec's own problems, as `(JSON path, what is wrong)`.
    pub fn check(&self) -> Result<(), (String, String)> {
        if self.months.is_empty() || self.months.len() > MAX_RECRUITMENT_MONTHS {
            return Err((
                "$.months".into(),
                format!("1 to {MAX_RECRUITMENT_MONTHS} months"),
            ));
        }
        for (i, m) in self.months.iter().enumerate() {
            if !(2000..=2100).contains(&m.year) || !(1..=12).contains(&m.month) {
                return Err((
                    format!("$.months[{i}]"),
                    "a month of the years 2000 to 2100".into(),
                ));
            }
            if i > 0 && self.months[i - 1] >= *m {
                return Err((
                    format!("$.months[{i}]"),
                    "months must be ascending without repeats".into(),
                ));
            }
        }
        Ok(())
    }
}

/// One month of a site's recruitment.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct RecruitmentMonth {
    /// The year.
    pub year: u16,
    /// The month.
    pub month: u8,
    /// Candidates screened that month.
    pub screened: Released,
    /// Candidates enrolled that month.
    pub enrolled: Released,
    /// Candidates excluded that month.
    pub excluded: Released,
}

/// A site's answer to a recruitment job.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct RecruitmentResult {
    /// One line per asked month, in the spec's order.
    pub months: Vec<RecruitmentMonth>,
    /// The disclosure control applied.
    pub disclosure: DisclosureSummary,
}

/// A result against its spec: exactly the asked months, in order. `(JSON path, detail)`.
pub fn check_recruitment(
    r: &RecruitmentResult,
    spec: &RecruitmentSpec,
) -> Result<(), (String, String)> {
    if r.months.len() != spec.months.len() {
        return Err((
            "$.months".into(),
            format!(
                "{} months, the job asked for {}",
                r.months.len(),
                spec.months.len()
            ),
        ));
    }
    for (i, (got, asked)) in r.months.iter().zip(&spec.months).enumerate() {
        if (got.year, got.month) != (asked.year, asked.month) {
            return Err((
                format!("$.months[{i}]"),
                format!("not the asked month {}", asked.key()),
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ym(year: u16, month: u8) -> YearMonth {
        YearMonth { year, month }
    }

    #[test]
    fn a_spec_names_ascending_months() {
        assert!(RecruitmentSpec {
            months: vec![ym(2026, 11), ym(2026, 12), ym(2027, 1)]
        }
        .check()
        .is_ok());
        let path = |months: Vec<YearMonth>| RecruitmentSpec { months }.check().unwrap_err().0;
        assert_eq!(path(vec![]), "$.months");
        assert_eq!(path(vec![ym(2026, 13)]), "$.months[0]");
        assert_eq!(path(vec![ym(1999, 12)]), "$.months[0]");
        assert_eq!(path(vec![ym(2026, 2), ym(2026, 2)]), "$.months[1]");
        assert_eq!(path(vec![ym(2026, 3), ym(2026, 2)]), "$.months[1]");
        assert_eq!(
            path(
                (1..=37)
                    .map(|i| ym(2000 + i / 12, 1 + (i % 12) as u8))
                    .collect()
            ),
            "$.months"
        );
    }
}
