//! Cohort characterization across the network.
//!
//! | statistic (per cohort: target, comparator) | one person changes it by at most |
//! | --- | --- |
//! | `entries` (cohort entries; under DP each person's first `entries_bound`) | `entries_bound` |
//! | `subjects` | 1 |
//! | a binary covariate's sum (entries with it, over the clipped entries) | `entries_bound` |
//! | a continuous covariate's count, sum and sum of squares | legacy and exact modes: not used (no noise) |
//! | under DP: its clipped count, Σk, Σk² and histogram | see [`super::continuous`] |
//!
//! Under DP only the covariates the spec names are released (which covariates exist is a fact
//! about the data, so the list is fixed before the data is seen), a binary one charged as one
//! statistic per cohort, a continuous one as four (its values clipped to its analysis's declared
//! range, [`super::continuous`]); real-valued analyses (values as number, HFRS) are refused by
//! name in every mode. Under SHRINE's release mode the
//! target's person set is recorded in the ledger (the repeated-result lockout, as for counts). In the legacy and exact modes every
//! covariate at or above the threshold is listed; a covariate below it is left out (FE's
//! prevalence threshold, the hub shows the threshold). Minima, maxima and quantiles are one
//! person's value each and never leave the site.

use qiao_disclosure::{Discloser, PersonSetDigest, Statistic};
use qiao_protocol::{
    CharacterizationResult, CharacterizationSpec, ContinuousResult, CovariateResult, Moments,
    PopulationResult, Released,
};
use serde::{Deserialize, Serialize};

use super::continuous::{self, declared_range, Clipped, DeclaredRange, Derived};
use super::{clip_rows, is_dp, persons, release, Analysis, AnalysisError, Cdm, Site, Sum};
use crate::characterization::{
    self as fe, characterize, compare, default_ids, prespec, Binary, Continuous, Distribution,
    Population, Settings,
};

/// FeatureExtraction's aggregated covariates, released.
pub struct Characterization;

const SIDES: [&str; 2] = ["target", "comparator"];

fn entries_stat(side: &str, bound: u32) -> Statistic {
    Statistic::clipped_rows(format!("{side} entries"), bound)
}
fn subjects_stat(side: &str) -> Statistic {
    Statistic::person_count(format!("{side} subjects"))
}
fn covariate_stat(side: &str, id: i64, bound: u32) -> Statistic {
    Statistic::clipped_rows(format!("{side} covariate {id}"), bound)
}
fn moment_stat(side: &str, id: i64, what: &str) -> Statistic {
    // Legacy and exact modes only (no noise): the sensitivity is not used.
    Statistic::person_count(format!("{side} covariate {id} {what}"))
}

/// The four releases of a continuous covariate under DP (count, Σk, Σk², the histogram's bins),
/// or why it cannot be released.
fn continuous_stats(
    side: &str,
    id: i64,
    range: &DeclaredRange,
    bound: u32,
    sigma: f64,
) -> Result<Vec<Statistic>, String> {
    let kmax = range.kmax();
    let sum = |what: &str, max: u64| {
        Statistic::clipped_sum(format!("{side} covariate {id} {what}"), bound, max)
            .filter(|st| sigma * f64::from(st.sensitivity) <= qiao_disclosure::dp::MAX_NOISE_SCALE)
            .ok_or_else(|| {
                format!(
                    "the {what} of covariate {id} (values clipped to 0–{} {}, bin {}) has \
                     sensitivity {bound} × {max}, beyond what the noise sampler takes at σ = \
                     {sigma}",
                    range.max, range.unit, range.bin
                )
            })
    };
    let mut v = vec![
        Statistic::clipped_rows(format!("{side} covariate {id} count"), bound),
        sum("sum", kmax)?,
        sum("sum of squares", kmax * kmax)?,
    ];
    let family = format!("{side} covariate {id} histogram");
    v.extend((0..=kmax).map(|k| {
        Statistic::clipped_histogram_bin(format!("{family} bin {k}"), family.clone(), bound)
    }));
    Ok(v)
}

/// The declared range of a continuous covariate id (None: not a continuous analysis with one).
fn range_of(id: i64) -> Option<DeclaredRange> {
    prespec(id.rem_euclid(1000) as u32).and_then(declared_range)
}

/// The continuous covariates a DP site releases: the named ones of continuous analyses the spec
/// runs.
fn named_continuous(spec: &CharacterizationSpec) -> Vec<i64> {
    let analyses = settings(spec).analysis_ids;
    let mut ids: Vec<i64> = spec
        .covariate_ids
        .iter()
        .copied()
        .filter(|&id| {
            let a = id.rem_euclid(1000) as u32;
            analyses.contains(&a) && continuous_analysis(a)
        })
        .collect();
    ids.sort_unstable();
    ids.dedup();
    ids
}

/// Whether an analysis's covariates take real (not integer) values.
fn real_valued(kind: fe::Kind) -> bool {
    matches!(
        kind,
        fe::Kind::Measure(fe::Measure::Value(_)) | fe::Kind::Score(fe::Score::Hfrs)
    )
}

/// Whether an analysis id gives continuous covariates.
fn continuous_analysis(analysis_id: u32) -> bool {
    prespec(analysis_id).is_some_and(|a| a.kind.is_continuous())
}

fn settings(spec: &CharacterizationSpec) -> Settings {
    Settings {
        analysis_ids: if spec.analyses.is_empty() {
            default_ids()
        } else {
            spec.analyses.clone()
        },
        ..Settings::default()
    }
}

/// The binary covariates a DP site releases: the named ones of binary analyses the spec runs.
fn named_binary(spec: &CharacterizationSpec) -> Vec<i64> {
    let analyses = settings(spec).analysis_ids;
    let mut ids: Vec<i64> = spec
        .covariate_ids
        .iter()
        .copied()
        .filter(|&id| {
            let a = (id % 1000) as u32;
            analyses.contains(&a) && !continuous_analysis(a)
        })
        .collect();
    ids.sort_unstable();
    ids.dedup();
    ids
}

impl Analysis for Characterization {
    type Spec = CharacterizationSpec;
    type Released = CharacterizationResult;
    type Pooled = PooledCharacterization;

    fn check(spec: &CharacterizationSpec) -> Result<(), (String, String)> {
        spec.check()?;
        for (i, &a) in spec.analyses.iter().enumerate() {
            let Some(analysis) = prespec(a) else {
                return Err((
                    format!("$.analyses[{i}]"),
                    format!("{a} is not a FeatureExtraction analysis Qiao computes"),
                ));
            };
            if real_valued(analysis.kind) {
                return Err((
                    format!("$.analyses[{i}]"),
                    format!(
                        "analysis {a} ({}) has real-valued covariates (values in each site's \
                         own units, or HFRS's tenths); they are computed locally \
                         (`qiao analyze characterize`) and not released across the network",
                        analysis.name
                    ),
                ));
            }
        }
        Ok(())
    }

    fn statistics(
        spec: &CharacterizationSpec,
        _target: &serde_json::Value,
        d: &Discloser,
        _cdm: &dyn Cdm,
    ) -> Result<Vec<Statistic>, AnalysisError> {
        Self::check(spec).map_err(|(p, m)| AnalysisError::Invalid(format!("{p}: {m}")))?;
        if is_dp(d) && spec.covariate_ids.is_empty() {
            return Err(AnalysisError::Unsupported(
                "under differential privacy a characterization releases only the covariates \
                 it names ($.covariate_ids)"
                    .into(),
            ));
        }
        let bound = d.policy().dp.entries_bound;
        let sigma = d.policy().dp.sigma;
        let covs = named_binary(spec);
        let sides = if spec.comparator.is_some() { 2 } else { 1 };
        let mut v = Vec::new();
        for side in &SIDES[..sides] {
            v.push(entries_stat(side, bound));
            v.push(subjects_stat(side));
            if is_dp(d) {
                v.extend(covs.iter().map(|&id| covariate_stat(side, id, bound)));
                for id in named_continuous(spec) {
                    // Named, never dropped: refused by name when it cannot be released.
                    let range = range_of(id).ok_or_else(|| {
                        AnalysisError::Unsupported(format!(
                            "covariate {id} has no declared range for release under \
                             differential privacy"
                        ))
                    })?;
                    v.extend(
                        continuous_stats(side, id, &range, bound, sigma)
                            .map_err(AnalysisError::Unsupported)?,
                    );
                }
            }
        }
        Ok(v)
    }

    fn release(
        spec: &CharacterizationSpec,
        site: &mut Site<'_>,
    ) -> Result<CharacterizationResult, AnalysisError> {
        let d = site.discloser;
        let dp = is_dp(d);
        let bound = d.policy().dp.entries_bound;
        let settings = settings(spec);
        let mut cohorts: Vec<(fe::Characterization, PersonSetDigest)> = Vec::new();
        for def in std::iter::once(site.target).chain(spec.comparator.as_ref()) {
            let rows = clip_rows(d, (site.engine)(def)?.rows);
            let ch = characterize(site.store()?, &rows, &settings)
                .map_err(|e| AnalysisError::Invalid(e.to_string()))?;
            cohorts.push((ch, persons(d, &rows)));
        }
        // SHRINE's repeated-result lockout, on the target's persons (as a count's final line).
        site.record_result(&cohorts[0].1)?;
        let population = |i: usize| -> PopulationResult {
            let (ch, p) = &cohorts[i];
            PopulationResult {
                entries: release(
                    site,
                    &entries_stat(SIDES[i], bound),
                    p,
                    ch.population.entries,
                ),
                subjects: release(site, &subjects_stat(SIDES[i]), p, p.count()),
            }
        };
        let target = population(0);
        let comparator = (cohorts.len() > 1).then(|| population(1));
        // Binary covariates: the named ones under DP, else every one present.
        let mut ids: Vec<(i64, u32)> = if dp {
            named_binary(spec)
                .into_iter()
                .map(|id| (id, (id % 1000) as u32))
                .collect()
        } else {
            cohorts
                .iter()
                .flat_map(|(ch, _)| ch.binary.iter())
                .map(|b| (b.covariate_id, b.analysis_id))
                .filter(|(id, _)| spec.covariate_ids.is_empty() || spec.covariate_ids.contains(id))
                .collect()
        };
        ids.sort_unstable();
        ids.dedup();
        let sums: Vec<std::collections::HashMap<i64, u64>> = cohorts
            .iter()
            .map(|(ch, _)| ch.binary.iter().map(|b| (b.covariate_id, b.sum)).collect())
            .collect();
        let mut covariates = Vec::with_capacity(ids.len());
        for (id, analysis_id) in ids {
            let side = |i: usize| {
                let (_, p) = &cohorts[i];
                let sum = sums[i].get(&id).copied().unwrap_or(0);
                release(site, &covariate_stat(SIDES[i], id, bound), p, sum)
            };
            let t = side(0);
            let c = (cohorts.len() > 1).then(|| side(1));
            // Legacy and exact modes: a covariate withheld everywhere is not listed.
            if !dp && t.point().is_none() && c.as_ref().is_none_or(|c| c.point().is_none()) {
                continue;
            }
            covariates.push(CovariateResult {
                covariate_id: id,
                analysis_id,
                target: t,
                comparator: c,
            });
        }
        let mut continuous = Vec::new();
        if dp {
            for id in named_continuous(spec) {
                let range = range_of(id).ok_or_else(|| {
                    AnalysisError::Internal(format!("covariate {id}: no declared range"))
                })?;
                let stats: Vec<Vec<Statistic>> = (0..cohorts.len())
                    .map(|i| continuous_stats(SIDES[i], id, &range, bound, d.policy().dp.sigma))
                    .collect::<Result<_, _>>()
                    .map_err(AnalysisError::Unsupported)?;
                let side = |i: usize| -> Result<Moments, AnalysisError> {
                    let (ch, p) = &cohorts[i];
                    let values = ch
                        .continuous
                        .iter()
                        .find(|c| c.covariate_id == id)
                        .and_then(|c| c.values.as_deref())
                        .unwrap_or(&[]);
                    let Clipped {
                        count,
                        sum,
                        sum_squares,
                        histogram,
                    } = continuous::clipped(&range, values, bound);
                    // The values in the order of their statistics: count, Σk, Σk², the bins.
                    let values: Vec<u64> = [count, sum, sum_squares]
                        .into_iter()
                        .chain(histogram)
                        .collect();
                    if values.len() != stats[i].len() {
                        return Err(AnalysisError::Internal(format!(
                            "covariate {id}: {} values for {} statistics",
                            values.len(),
                            stats[i].len()
                        )));
                    }
                    let mut released: Vec<Released> = stats[i]
                        .iter()
                        .zip(values)
                        .map(|(st, v)| release(site, st, p, v))
                        .collect();
                    let histogram = released.split_off(3);
                    let [count, sum, sum_squares]: [Released; 3] = released
                        .try_into()
                        .map_err(|_| AnalysisError::Internal(format!("covariate {id}: moments")))?;
                    Ok(Moments {
                        count,
                        sum,
                        sum_squares,
                        bin: range.bin,
                        histogram,
                    })
                };
                let t = side(0)?;
                let c = if cohorts.len() > 1 {
                    Some(side(1)?)
                } else {
                    None
                };
                continuous.push(ContinuousResult {
                    covariate_id: id,
                    analysis_id: (id.rem_euclid(1000)) as u32,
                    target: Some(t),
                    comparator: c,
                });
            }
        } else {
            let mut ids: Vec<(i64, u32)> = cohorts
                .iter()
                .flat_map(|(ch, _)| ch.continuous.iter())
                .map(|c| (c.covariate_id, c.analysis_id))
                .filter(|(id, _)| spec.covariate_ids.is_empty() || spec.covariate_ids.contains(id))
                .collect();
            ids.sort_unstable();
            ids.dedup();
            for (id, analysis_id) in ids {
                let side = |i: usize| -> Option<Moments> {
                    let (ch, p) = &cohorts[i];
                    let c = ch.continuous.iter().find(|c| c.covariate_id == id)?;
                    let s = c.stats;
                    let (sum, squares) = integer_moments(c)?;
                    let side = SIDES[i];
                    Some(Moments {
                        count: release(site, &moment_stat(side, id, "count"), p, s.count),
                        sum: release(site, &moment_stat(side, id, "sum"), p, sum),
                        sum_squares: release(site, &moment_stat(side, id, "squares"), p, squares),
                        bin: 0,
                        histogram: Vec::new(),
                    })
                };
                let t = side(0);
                let c = if cohorts.len() > 1 { side(1) } else { None };
                if t.is_none() && c.is_none() {
                    continue;
                }
                continuous.push(ContinuousResult {
                    covariate_id: id,
                    analysis_id,
                    target: t,
                    comparator: c,
                });
            }
        }
        Ok(CharacterizationResult {
            target,
            comparator,
            covariates,
            continuous,
            disclosure: site.summary.clone(),
        })
    }

    fn pool(
        spec: &CharacterizationSpec,
        released: &[&CharacterizationResult],
    ) -> PooledCharacterization {
        pool(spec, released)
    }
}

/// A cohort's pooled size.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PooledPopulation {
    /// Entries.
    pub entries: Sum,
    /// Persons.
    pub subjects: Sum,
}

/// A binary covariate pooled for one cohort.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PooledShare {
    /// Entries with the covariate.
    pub sum: Sum,
    /// Sum over entries (FE's mean), from the shown sums.
    pub mean: Option<f64>,
}

/// A binary covariate pooled.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PooledCovariate {
    /// `concept_id × 1000 + analysis_id`.
    pub covariate_id: i64,
    /// The analysis.
    pub analysis_id: u32,
    /// The concept.
    pub concept_id: i64,
    /// Target.
    pub target: PooledShare,
    /// Comparator.
    pub comparator: Option<PooledShare>,
    /// FE's standardized difference from the pooled means.
    pub smd: Option<f64>,
}

/// A continuous covariate pooled for one cohort.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PooledMoments {
    /// Entries with a value.
    pub count: Sum,
    /// Sum of the released sums (of values, or of bin indices from sites under DP).
    pub sum: Sum,
    /// Sum of the released sums of squares (likewise).
    pub sum_squares: Sum,
    /// FE's mean: sum over the cohort's entries.
    pub mean: Option<f64>,
    /// Sample standard deviation over the entries with a value.
    pub sd: Option<f64>,
    /// Under DP: the range the values were clipped to and the bin width (stated with the
    /// result); None when every site released exact sums.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub range: Option<DeclaredRange>,
    /// Under DP: the sites' histograms added bin by bin.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub histogram: Vec<u64>,
    /// Under DP: FE's statistics from the pooled sums and histogram (post-processing; quantiles
    /// only when every site released a histogram).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub derived: Option<Derived>,
}

/// A continuous covariate pooled.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PooledContinuous {
    /// `concept_id × 1000 + analysis_id`.
    pub covariate_id: i64,
    /// The analysis.
    pub analysis_id: u32,
    /// Target.
    pub target: Option<PooledMoments>,
    /// Comparator.
    pub comparator: Option<PooledMoments>,
    /// FE's standardized difference.
    pub smd: Option<f64>,
}

/// A characterization pooled across sites.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PooledCharacterization {
    /// Sites added.
    pub sites_done: usize,
    /// Target size.
    pub target: PooledPopulation,
    /// Comparator size.
    pub comparator: Option<PooledPopulation>,
    /// Binary covariates listed by any site.
    pub covariates: Vec<PooledCovariate>,
    /// Continuous covariates listed by any site.
    pub continuous: Vec<PooledContinuous>,
    /// The largest minimum cell count of the sites: a covariate a site does not list is below
    /// its threshold there (legacy and exact modes) or was not asked for (DP).
    pub threshold: u64,
}

fn pool(
    spec: &CharacterizationSpec,
    released: &[&CharacterizationResult],
) -> PooledCharacterization {
    let has_comparator = spec.comparator.is_some();
    let pop = |side: usize| -> PooledPopulation {
        fn side_of(r: &CharacterizationResult, side: usize) -> Option<&PopulationResult> {
            if side == 0 {
                Some(&r.target)
            } else {
                r.comparator.as_ref()
            }
        }
        let get = |r| side_of(r, side);
        let entries: Vec<_> = released
            .iter()
            .filter_map(|r| get(r).map(|p| (&p.entries, &r.disclosure)))
            .collect();
        let subjects: Vec<_> = released
            .iter()
            .filter_map(|r| get(r).map(|p| (&p.subjects, &r.disclosure)))
            .collect();
        PooledPopulation {
            entries: Sum::of(&entries),
            subjects: Sum::of(&subjects),
        }
    };
    let target = pop(0);
    let comparator = has_comparator.then(|| pop(1));
    let mut ids: Vec<(i64, u32)> = released
        .iter()
        .flat_map(|r| r.covariates.iter().map(|c| (c.covariate_id, c.analysis_id)))
        .collect();
    ids.sort_unstable();
    ids.dedup();
    let share = |sum: Sum, entries: &Sum| PooledShare {
        mean: (entries.point_sum > 0).then(|| sum.point_sum as f64 / entries.point_sum as f64),
        sum,
    };
    let mut covariates = Vec::with_capacity(ids.len());
    for (id, analysis_id) in ids {
        let values = |side: usize| -> Sum {
            let v: Vec<_> = released
                .iter()
                .filter_map(|r| {
                    let c = r.covariates.iter().find(|c| c.covariate_id == id)?;
                    let x = if side == 0 {
                        &c.target
                    } else {
                        c.comparator.as_ref()?
                    };
                    Some((x, &r.disclosure))
                })
                .collect();
            Sum::of(&v)
        };
        covariates.push(PooledCovariate {
            covariate_id: id,
            analysis_id,
            concept_id: id / 1000,
            target: share(values(0), &target.entries),
            comparator: comparator.as_ref().map(|c| share(values(1), &c.entries)),
            smd: None,
        });
    }
    let mut cids: Vec<(i64, u32)> = released
        .iter()
        .flat_map(|r| r.continuous.iter().map(|c| (c.covariate_id, c.analysis_id)))
        .collect();
    cids.sort_unstable();
    cids.dedup();
    let mut continuous = Vec::with_capacity(cids.len());
    for (id, analysis_id) in cids {
        let moments = |side: usize, entries: &Sum| -> Option<PooledMoments> {
            let ms: Vec<(&qiao_protocol::Moments, &qiao_protocol::DisclosureSummary)> = released
                .iter()
                .filter_map(|r| {
                    let c = r.continuous.iter().find(|c| c.covariate_id == id)?;
                    let m = if side == 0 { &c.target } else { &c.comparator };
                    Some((m.as_ref()?, &r.disclosure))
                })
                .collect();
            if ms.is_empty() {
                return None;
            }
            let sum_of = |f: fn(&qiao_protocol::Moments) -> &qiao_protocol::Released| {
                Sum::of(&ms.iter().map(|(m, s)| (f(m), *s)).collect::<Vec<_>>())
            };
            let (count, sum, sum_squares) = (
                sum_of(|m| &m.count),
                sum_of(|m| &m.sum),
                sum_of(|m| &m.sum_squares),
            );
            let point = |r: &qiao_protocol::Released| r.point().unwrap_or(0);
            let range = ms
                .iter()
                .any(|(m, _)| m.bin > 0)
                .then(|| range_of(id))
                .flatten();
            let (mut s, mut q) = (0.0, 0.0);
            let mut histogram: Vec<u64> = Vec::new();
            let mut every_histogram = true;
            for (m, _) in &ms {
                let (n, sm, sq) = (point(&m.count), point(&m.sum), point(&m.sum_squares));
                match &range {
                    Some(r) if m.bin == r.bin => {
                        let (a, b) = r.value_moments(n, sm, sq);
                        s += a;
                        q += b;
                        if histogram.len() < m.histogram.len() {
                            histogram.resize(m.histogram.len(), 0);
                        }
                        for (h, x) in histogram.iter_mut().zip(&m.histogram) {
                            *h += point(x);
                        }
                    }
                    _ => {
                        s += sm as f64;
                        q += sq as f64;
                        every_histogram = false;
                    }
                }
            }
            let n = count.point_sum as f64;
            let sd = match count.point_sum {
                0 => None,
                1 => Some(0.0),
                _ => Some(((n * q - s * s) / (n * (n - 1.0))).max(0.0).sqrt()),
            };
            let derived = range.as_ref().map(|r| {
                Derived::of(
                    r,
                    entries.point_sum,
                    count.point_sum,
                    (s, q),
                    every_histogram.then_some(histogram.as_slice()),
                )
            });
            Some(PooledMoments {
                mean: (entries.point_sum > 0).then(|| s / entries.point_sum as f64),
                sd,
                count,
                sum,
                sum_squares,
                range,
                histogram,
                derived,
            })
        };
        continuous.push(PooledContinuous {
            covariate_id: id,
            analysis_id,
            target: moments(0, &target.entries),
            comparator: comparator.as_ref().and_then(|c| moments(1, &c.entries)),
            smd: None,
        });
    }
    // FE's standardized differences, from the pooled sums through `compare` itself.
    if let Some(c) = &comparator {
        let as_fe = |side: usize, p: &PooledPopulation| fe::Characterization {
            population: Population {
                entries: p.entries.point_sum,
                subjects: p.subjects.point_sum,
            },
            binary: covariates
                .iter()
                .filter_map(|x| {
                    let s = if side == 0 {
                        Some(&x.target)
                    } else {
                        x.comparator.as_ref()
                    }?;
                    Some(Binary {
                        covariate_id: x.covariate_id,
                        analysis_id: x.analysis_id,
                        concept_id: x.concept_id,
                        name: String::new(),
                        sum: s.sum.point_sum,
                        mean: s.mean.unwrap_or(0.0),
                    })
                })
                .collect(),
            continuous: continuous
                .iter()
                .filter_map(|x| {
                    let m = if side == 0 { &x.target } else { &x.comparator }.as_ref()?;
                    Some(Continuous {
                        covariate_id: x.covariate_id,
                        analysis_id: x.analysis_id,
                        concept_id: x.covariate_id / 1000,
                        name: String::new(),
                        stats: moments_only(m),
                        values: None,
                    })
                })
                .collect(),
        };
        let cmp = compare(&as_fe(0, &target), Some(&as_fe(1, c)));
        for (x, y) in covariates.iter_mut().zip(&cmp.binary) {
            x.smd = y.smd;
        }
        for (x, y) in continuous.iter_mut().zip(&cmp.continuous) {
            x.smd = y.smd;
        }
    }
    PooledCharacterization {
        sites_done: released.len(),
        target,
        comparator,
        covariates,
        continuous,
        threshold: released
            .iter()
            .map(|r| r.disclosure.min_cell_count)
            .max()
            .unwrap_or(0),
    }
}

/// A distribution with only the mean and sd known (the rest is site-local).
fn moments_only(m: &PooledMoments) -> Distribution {
    Distribution {
        count: m.count.point_sum,
        mean: m.mean.unwrap_or(0.0),
        sd: m.sd.unwrap_or(0.0),
        min: f64::NAN,
        p10: f64::NAN,
        p25: f64::NAN,
        median: f64::NAN,
        p75: f64::NAN,
        p90: f64::NAN,
        max: f64::NAN,
    }
}

/// The sum and sum of squares of an integer-valued covariate's values (None: real values, or
/// sums beyond u64).
fn integer_moments(c: &Continuous) -> Option<(u64, u64)> {
    let values = c.values.as_ref()?;
    let sum: i128 = values.iter().map(|&(_, v)| i128::from(v)).sum();
    let squares: i128 = values
        .iter()
        .map(|&(_, v)| i128::from(v) * i128::from(v))
        .sum();
    Some((u64::try_from(sum).ok()?, u64::try_from(squares).ok()?))
}
