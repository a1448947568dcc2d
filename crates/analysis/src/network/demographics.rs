//! Demographics (feasibility): the cohort's persons by age band at index × gender (× index
//! year), released as one table (each person is in exactly one cell, so the cells are one
//! family of sensitivity 1; the margins are sums of noisy cells, or secondary suppression
//! outside DP). Pooled at the hub cell by cell.

use std::collections::BTreeMap;

use qiao_cdm::date::{self, Day};
use qiao_cdm::NULL_INT;
use qiao_disclosure::{Breakdown, Discloser, PersonSetDigest, Statistic};
use qiao_protocol::{AgeBand, Cell, DemographicsResult, Gender};
use serde::{Deserialize, Serialize};

use super::{to_wire, Analysis, AnalysisError, Cdm, CohortRun, Site, Sum};

/// Ages at or above this go into the open-ended top band (rounded up to a band boundary).
pub const TOP_AGE: u16 = 90;

/// The demographics breakdown.
pub struct Demographics;

/// What a demographics job asks (the fields of [`qiao_protocol::QueryType::Demographics`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DemographicsSpec {
    /// Width of the age bands in years (1 to 100).
    pub age_band_years: u8,
    /// Whether cells are also split by the year of the index date.
    pub by_index_year: bool,
}

/// The statistics of a demographics breakdown: its cells (each person is in exactly one, so
/// they are one family of sensitivity 1); the margins are sums of noisy cells. One release.
pub fn demographics_statistics() -> Vec<Statistic> {
    vec![Statistic::disjoint_person_count("cells", "cells")]
}

/// Gender as the protocol knows it, from `person.gender_concept_id`.
pub fn gender_of(concept: Option<i32>) -> Gender {
    match concept {
        Some(8532) => Gender::Female,
        Some(8507) => Gender::Male,
        None | Some(0) | Some(NULL_INT) => Gender::Unknown,
        Some(_) => Gender::Other,
    }
}

/// The fixed age bands for a band width: `[0, w-1], [w, 2w-1], …` up to the first boundary at
/// or above [`TOP_AGE`], which opens the top band.
pub fn age_bands(width: u8) -> Vec<AgeBand> {
    let w = u16::from(width.max(1));
    let top = TOP_AGE.div_ceil(w) * w;
    let mut bands = Vec::new();
    let mut min = 0u16;
    while min < top {
        bands.push(AgeBand {
            min_age: min as u8,
            max_age: Some((min + w - 1) as u8),
        });
        min += w;
    }
    bands.push(AgeBand {
        min_age: top.min(u16::from(u8::MAX)) as u8,
        max_age: None,
    });
    bands
}

/// Index of the band holding `age`.
fn band_index(bands: &[AgeBand], age: i64) -> usize {
    let age = age.max(0);
    bands
        .iter()
        .position(|b| match b.max_age {
            Some(max) => age <= i64::from(max),
            None => true,
        })
        .unwrap_or(bands.len().saturating_sub(1))
}

const GENDERS: [Gender; 4] = [Gender::Female, Gender::Male, Gender::Other, Gender::Unknown];

/// The index years shown: the years the CDM's observation periods span (site-level, not
/// cohort-level, so which rows exist says nothing about the cohort), widened to the cohort's.
fn year_range(
    observed: Option<(i32, i32)>,
    index_years: impl Iterator<Item = i32>,
) -> Option<(i32, i32)> {
    let (mut lo, mut hi) = observed.unwrap_or((i32::MAX, i32::MIN));
    for y in index_years {
        lo = lo.min(y);
        hi = hi.max(y);
    }
    let lo = lo.max(i32::from(qiao_protocol::guard::MIN_INDEX_YEAR));
    let hi = hi.min(i32::from(qiao_protocol::guard::MAX_INDEX_YEAR));
    (lo <= hi).then_some((lo, hi))
}

/// Per person of the cohort: (age at index, gender, index year); persons with no year of
/// birth (absent from `person`) are left out.
fn person_facts(cdm: &dyn Cdm, run: &CohortRun) -> Vec<(i64, i64, Gender, i32)> {
    let mut out = Vec::new();
    let mut last = None;
    for r in &run.rows {
        if last == Some(r.subject_id) {
            continue;
        }
        last = Some(r.subject_id);
        let Some(fact) = cdm.person(run, r.subject_id) else {
            continue;
        };
        let Some(yob) = fact.year_of_birth else {
            continue;
        };
        let index: Day = r.start;
        let year = date::year(index);
        let gender = gender_of(fact.gender_concept_id);
        out.push((r.subject_id, i64::from(year) - i64::from(yob), gender, year));
    }
    out
}

type CellKey = (Option<AgeBand>, Option<Gender>, Option<u16>);

/// One breakdown cell's network total.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PooledCell {
    /// Age band, or all.
    pub age_band: Option<AgeBand>,
    /// Gender, or all.
    pub gender: Option<Gender>,
    /// Index year, or all.
    pub index_year: Option<u16>,
    /// Persons.
    pub count: Sum,
}

/// The breakdown pooled over the sites that are done.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PooledDemographics {
    /// Sites added.
    pub sites_done: usize,
    /// Persons.
    pub total: Sum,
    /// Cells present at any site; each adds only the sites that reported it.
    pub cells: Vec<PooledCell>,
}

impl Analysis for Demographics {
    type Spec = DemographicsSpec;
    type Released = DemographicsResult;
    type Pooled = PooledDemographics;
    const TABLE: bool = true;
    const NEEDS_STORE: bool = false;

    fn check(spec: &DemographicsSpec) -> Result<(), (String, String)> {
        if !(1..=100).contains(&spec.age_band_years) {
            return Err((
                "age_band_years".into(),
                format!("must be 1 to 100, not {}", spec.age_band_years),
            ));
        }
        Ok(())
    }

    fn statistics(
        spec: &DemographicsSpec,
        _target: &serde_json::Value,
        _d: &Discloser,
        _cdm: &dyn Cdm,
    ) -> Result<Vec<Statistic>, AnalysisError> {
        Self::check(spec).map_err(|(p, m)| AnalysisError::Invalid(format!("{p} {m}")))?;
        Ok(demographics_statistics())
    }

    fn release(
        spec: &DemographicsSpec,
        site: &mut Site<'_>,
    ) -> Result<DemographicsResult, AnalysisError> {
        let run = (site.engine)(site.target)?;
        let facts = person_facts(site.cdm, &run);
        let bands = age_bands(spec.age_band_years);
        let years: Vec<Option<u16>> = if spec.by_index_year {
            match year_range(site.cdm.observation_years(), facts.iter().map(|f| f.3)) {
                Some((lo, hi)) => (lo..=hi).map(|y| u16::try_from(y).ok()).collect(),
                None => vec![None],
            }
        } else {
            vec![None]
        };
        let d = site.discloser;
        let row_of = |band: usize, year: Option<u16>| -> Option<usize> {
            let y = match (year, years.first().copied().flatten()) {
                (Some(y), Some(first)) => usize::from(y.checked_sub(first)?),
                _ => 0,
            };
            (y < years.len()).then_some(y * bands.len() + band)
        };
        let mut digesters: Vec<Vec<_>> = (0..years.len() * bands.len())
            .map(|_| (0..GENDERS.len()).map(|_| d.digester()).collect())
            .collect();
        for &(person, age, gender, year) in &facts {
            let band = band_index(&bands, age);
            let y = if spec.by_index_year {
                u16::try_from(year).ok()
            } else {
                None
            };
            let Some(row) = row_of(band, y) else {
                // Outside the representable years (1800..=2300): not counted.
                continue;
            };
            let col = GENDERS.iter().position(|g| *g == gender).unwrap_or(3);
            if let Some(dg) = digesters.get_mut(row).and_then(|r| r.get_mut(col)) {
                dg.add(person);
            }
        }
        let cells: Vec<Vec<PersonSetDigest>> = digesters
            .iter()
            .map(|r| r.iter().map(|dg| dg.finish()).collect())
            .collect();
        let table =
            Breakdown::from_cells(cells).map_err(|e| AnalysisError::Internal(e.to_string()))?;
        site.record_result(&table.total)?;
        let released = d
            .release_breakdown(&site.question, &table)
            .map_err(|e| AnalysisError::Internal(e.to_string()))?;
        let mut out = Vec::new();
        for (row, values) in released.cells.iter().enumerate() {
            let band = bands.get(row % bands.len()).copied();
            let year = years.get(row / bands.len()).copied().flatten();
            for (col, v) in values.iter().enumerate() {
                out.push(Cell {
                    age_band: band,
                    gender: GENDERS.get(col).copied(),
                    index_year: year,
                    count: to_wire(v),
                });
            }
            if let Some(total) = released.row_totals.get(row) {
                out.push(Cell {
                    age_band: band,
                    gender: None,
                    index_year: year,
                    count: to_wire(total),
                });
            }
        }
        for (col, v) in released.col_totals.iter().enumerate() {
            out.push(Cell {
                age_band: None,
                gender: GENDERS.get(col).copied(),
                index_year: None,
                count: to_wire(v),
            });
        }
        Ok(DemographicsResult {
            total: to_wire(&released.total),
            cells: out,
            disclosure: site.summary.clone(),
        })
    }

    fn pool(_spec: &DemographicsSpec, released: &[&DemographicsResult]) -> PooledDemographics {
        let mut cells: BTreeMap<CellKey, Vec<_>> = BTreeMap::new();
        for r in released {
            for c in &r.cells {
                cells
                    .entry(c.key())
                    .or_default()
                    .push((&c.count, &r.disclosure));
            }
        }
        let total: Vec<_> = released.iter().map(|r| (&r.total, &r.disclosure)).collect();
        PooledDemographics {
            sites_done: released.len(),
            total: Sum::of(&total),
            cells: cells
                .into_iter()
                .map(|((age_band, gender, index_year), v)| PooledCell {
                    age_band,
                    gender,
                    index_year,
                    count: Sum::of(&v),
                })
                .collect(),
        }
    }
}
