//! One round of a federated regression at a site ([`RegressionRoundAnalysis`]): the site's
//! followed persons and covariates ([`crate::regression::design`]), and its sums at the round's
//! coefficients, released in one of two ways:
//!
//! * the `exact` release mode — DataSHIELD's model of disclosure control for `ds.glm`: guards
//!   ([`Guard`], evaluated before any sum is computed), exact sums, the persons and events
//!   counts through [`Discloser::release_value`] (Δ = 1 each);
//! * differential privacy (the default policy), logistic only: covariates clipped to declared
//!   ranges, each round's sums one vector release through [`Discloser::release_vector`] with
//!   the L2 sensitivity derived in [`crate::regression::private`], the whole run's cost
//!   ([`DP_ROUNDS`] releases) charged at round 0 ([`Discloser::admit_round`]) before anything
//!   is computed, no count-based guard (THREAT_MODEL.md, "Federated regression").
//!
//! Cox is refused under differential privacy ([`COX_UNDER_DP`]) and both models under SHRINE,
//! before anything is charged or computed. The hub keeps the run and takes the Newton steps
//! ([`crate::regression::Newton`]); a site computes a run's design (cohorts, follow-up,
//! covariates, guards) at its first round and keeps it in memory for the next (the last few
//! runs).

use qiao_cohort::CohortRow;
use qiao_disclosure::{Discloser, Question, ReleaseMode, RoundRefusal, Statistic};
use qiao_protocol::{
    DpParams, RealSum, RegressionCovariate, RegressionModel, RegressionRound, RegressionSums,
};
use qiao_store::Store;

use super::{release, to_wire, Analysis, AnalysisError, Cdm, Site};
use crate::regression::design::{
    clipped_columns, columns, AgeDecades, Arm, CohortMembership, Covariate, GenderMale, Treatment,
    Unit,
};
use crate::regression::private::{Privacy, DP_ROUNDS, LOGLIK_CLIP};
use crate::regression::{Guard, Model, SiteData, SiteSums};

/// Why a site under differential privacy refuses a Cox round (THREAT_MODEL.md).
pub const COX_UNDER_DP: &str = "Cox regression is not released under differential privacy: one person's presence changes the risk set of every event before their own time, so a person can move the partial-likelihood gradient by up to 2R·(1 + e^{2Σ|β_j|B_j}·(1 + ln n)) (R the covariates' norm bound) — no bound fixed before the data and the hub's coefficients are seen; a site releases Cox sums in the exact release mode only";
use crate::time_to_event::{follow_up, TimeAtRisk};

/// A regression round on the network.
pub struct RegressionRoundAnalysis;

/// The analysis crate's model of a protocol model.
pub fn model_of(m: RegressionModel) -> Model {
    match m {
        RegressionModel::Logistic => Model::Logistic,
        RegressionModel::Cox => Model::Cox,
    }
}

/// The time at risk of a spec.
pub fn tar_of(round: &RegressionRound) -> Result<TimeAtRisk, AnalysisError> {
    round
        .spec
        .tar
        .parse()
        .map_err(|e: crate::time_to_event::TarParseError| {
            AnalysisError::Invalid(format!("$.spec.tar: {e}"))
        })
}

/// The coefficient names of a spec (logistic: the intercept first), as `qiao analyze regress`
/// names them.
pub fn coefficient_names(round: &RegressionRound) -> Vec<String> {
    let names: Vec<String> = round
        .spec
        .design()
        .iter()
        .map(|c| covariate_of(c, Vec::new()).name())
        .collect();
    model_of(round.spec.model).coefficient_names(&names)
}

fn covariate_of(c: &RegressionCovariate, rows: Vec<CohortRow>) -> Box<dyn Covariate> {
    match c {
        RegressionCovariate::Age => Box::new(AgeDecades),
        RegressionCovariate::Gender => Box::new(GenderMale),
        RegressionCovariate::Treatment => Box::new(Treatment),
        RegressionCovariate::Cohort { name, .. } => Box::new(CohortMembership {
            name: name.clone(),
            rows,
        }),
    }
}

/// The followed units of the target and comparator (each person's first entry), target first.
pub fn units(
    target: &[crate::time_to_event::Subject],
    comparator: &[crate::time_to_event::Subject],
) -> Vec<Unit> {
    let arm = |arm| move |&subject| Unit { subject, arm };
    target
        .iter()
        .map(arm(Arm::Target))
        .chain(comparator.iter().map(arm(Arm::Comparator)))
        .collect()
}

impl Analysis for RegressionRoundAnalysis {
    type Spec = RegressionRound;
    type Released = RegressionSums;
    type Pooled = SiteSums;

    fn check(spec: &RegressionRound) -> Result<(), (String, String)> {
        spec.check()?;
        spec.spec
            .tar
            .parse::<TimeAtRisk>()
            .map(|_| ())
            .map_err(|e| ("$.spec.tar".into(), e.to_string()))
    }

    fn statistics(
        spec: &RegressionRound,
        _target: &serde_json::Value,
        d: &Discloser,
        _cdm: &dyn Cdm,
    ) -> Result<Vec<Statistic>, AnalysisError> {
        Self::check(spec).map_err(|(p, m)| AnalysisError::Invalid(format!("{p}: {m}")))?;
        match d.policy().release {
            ReleaseMode::Exact => {}
            ReleaseMode::Dp => {
                if spec.spec.model == RegressionModel::Cox {
                    return Err(AnalysisError::Unsupported(COX_UNDER_DP.into()));
                }
                // The fixed-point release fits the sampler at this σ (a policy fact).
                privacy_of(spec)
                    .sensitivity(d.policy().dp.sigma)
                    .map_err(|e| AnalysisError::Unsupported(e.to_string()))?;
                // Nothing per job: the run's rounds are charged at its round 0
                // ([`Discloser::admit_round`] in `release`), before anything is computed.
                return Ok(Vec::new());
            }
            ReleaseMode::Shrine => {
                return Err(AnalysisError::Unsupported(
                    "regression sums have no SHRINE obfuscation; a site releases them in the exact release mode only".into(),
                ))
            }
        }
        Ok(vec![
            Statistic::person_count("regression persons"),
            Statistic::person_count("regression events"),
        ])
    }

    fn release(
        spec: &RegressionRound,
        site: &mut Site<'_>,
    ) -> Result<RegressionSums, AnalysisError> {
        if site.discloser.policy().release == ReleaseMode::Dp {
            return release_private(spec, site);
        }
        let d = site.discloser;
        let cdm = site.cdm;
        let store = cdm
            .store()
            .ok_or_else(|| AnalysisError::Internal("the analysis needs a store".into()))?;
        let key = design_key(spec, store, site.target, d);
        let design = match designs::get(&key) {
            Some(design) => design,
            None => {
                let design = std::sync::Arc::new(site_data(
                    spec,
                    store,
                    site.engine,
                    site.target,
                    d.policy().min_cell_count,
                )?);
                designs::put(key, design.clone());
                design
            }
        };
        let (data, units) = (&design.0, &design.1);
        let sums = data.sums(&spec.coefficients.0);
        let all = person_set(d, units.iter().map(|u| u.subject.person_id));
        let events = person_set(
            d,
            units
                .iter()
                .filter(|u| u.subject.event)
                .map(|u| u.subject.person_id),
        );
        let persons = site.statistic("regression persons")?.clone();
        let events_stat = site.statistic("regression events")?.clone();
        let real = |value| RealSum { value };
        Ok(RegressionSums {
            persons: release(site, &persons, &all, sums.n),
            events: release(site, &events_stat, &events, sums.events),
            loglik: real(sums.loglik),
            gradient: sums.gradient.iter().copied().map(real).collect(),
            hessian: sums.hessian.iter().copied().map(real).collect(),
            disclosure: site.summary.clone(),
        })
    }

    fn pool(spec: &RegressionRound, released: &[&RegressionSums]) -> SiteSums {
        let p = spec.spec.parameters();
        let mut total = SiteSums::zero(model_of(spec.spec.model), p);
        for r in released {
            total.add(&sums_of(spec, r));
        }
        total
    }
}

/// The public facts of a spec's release under differential privacy: each coefficient's clip
/// range after centring and its centre (the intercept's are [1, 1] and 0), and how many units
/// one person can be.
pub fn privacy_of(round: &RegressionRound) -> Privacy {
    let mut ranges: Vec<(f64, f64)> = Vec::new();
    let mut centers: Vec<f64> = Vec::new();
    if round.spec.model == RegressionModel::Logistic {
        ranges.push((1.0, 1.0));
        centers.push(0.0);
    }
    for c in round.spec.design() {
        let c = covariate_of(&c, Vec::new());
        let ((lo, hi), center) = (c.range(), c.center());
        ranges.push((lo - center, hi - center));
        centers.push(center);
    }
    Privacy {
        ranges,
        centers,
        units_per_person: 1 + u32::from(round.spec.comparator.is_some()),
    }
}

/// The statistic each round releases under differential privacy: the round's sums as one
/// integer vector of L2 sensitivity Δ (one release).
fn round_statistic(round: &RegressionRound, sigma: f64) -> Result<Statistic, AnalysisError> {
    let delta = privacy_of(round)
        .sensitivity(sigma)
        .map_err(|e| AnalysisError::Unsupported(e.to_string()))?;
    Ok(Statistic::vector("regression round sums", delta))
}

/// What a run is at a site, for its accounting: the run id and a digest of everything but
/// the round and coefficients (spec and target), so that a run paid for one fit cannot answer
/// rounds of another.
fn run_key(round: &RegressionRound, target: &serde_json::Value) -> String {
    let mut bytes = serde_json::to_vec(&round.spec).unwrap_or_default();
    bytes.push(0);
    bytes.extend(serde_json::to_vec(target).unwrap_or_default());
    let digest: String = Question::of(&bytes).0[..16]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("regression {} {digest}", round.run_id)
}

/// A logistic round under differential privacy: admitted (round 0 charges the whole run)
/// before anything is computed, then the sums of the clipped units as one vector release.
fn release_private(
    spec: &RegressionRound,
    site: &mut Site<'_>,
) -> Result<RegressionSums, AnalysisError> {
    let d = site.discloser;
    let sigma = d.policy().dp.sigma;
    let stat = round_statistic(spec, sigma)?;
    let admitted = d
        .admit_round(
            site.ledger,
            &site.context,
            &run_key(spec, site.target),
            spec.round,
            DP_ROUNDS,
            &site.question,
            std::slice::from_ref(&stat),
        )
        .map_err(|e| match e {
            RoundRefusal::Budget(r) => AnalysisError::Refused(r),
            other => AnalysisError::Unsupported(other.to_string()),
        })?
        .ok_or_else(|| AnalysisError::Internal("not under differential privacy".into()))?;
    let mut disclosure = site.summary.clone();
    let status = admitted.status();
    disclosure.dp = Some(DpParams {
        rho_spent: admitted.rho(),
        sigma,
        entries_bound: d.policy().dp.entries_bound,
        remaining_rho: status.remaining(),
        user_remaining_rho: Some(status.user.remaining()),
        organization_remaining_rho: Some(status.organization.remaining()),
    });
    let cdm = site.cdm;
    let store = cdm
        .store()
        .ok_or_else(|| AnalysisError::Internal("the analysis needs a store".into()))?;
    let key = format!("dp|{}", design_key(spec, store, site.target, d));
    let design = match designs::get(&key) {
        Some(design) => design,
        None => {
            let design =
                std::sync::Arc::new(private_site_data(spec, store, site.engine, site.target)?);
            designs::put(key, design.clone());
            design
        }
    };
    let (data, units) = (&design.0, &design.1);
    let privacy = privacy_of(spec);
    let exact = data.sums(&spec.coefficients.0);
    let values = privacy
        .encode(&exact, sigma)
        .map_err(|e| AnalysisError::Unsupported(e.to_string()))?;
    let persons = person_set(d, units.iter().map(|u| u.subject.person_id));
    let (noisy, sd) = d
        .release_vector(&site.question, &stat, &persons, &values)
        .ok_or_else(|| AnalysisError::Unsupported(format!("σ = {sigma} out of range")))?;
    let (sums, counts) = privacy
        .decode(Model::Logistic, &noisy, sigma)
        .map_err(|e| AnalysisError::Unsupported(e.to_string()))?;
    let count_sd = sums.noise.as_ref().map_or(sd, |n| n.counts_var.sqrt());
    let count = |x: f64| to_wire(&d.dp_count(x, count_sd));
    let real = |value| RealSum { value };
    Ok(RegressionSums {
        persons: count(counts[0]),
        events: count(counts[1]),
        loglik: real(sums.loglik),
        gradient: sums.gradient.iter().copied().map(real).collect(),
        hessian: sums.hessian.iter().copied().map(real).collect(),
        disclosure,
    })
}

/// A site's units in a run under differential privacy and their design: covariates clipped to
/// their declared ranges, units without a usable value left out, each unit's log-likelihood
/// term clipped, and no count-based guard (a refusal on true counts would be an exact bit
/// about the data; the noise protects every sum whatever the cell sizes).
pub fn private_site_data(
    spec: &RegressionRound,
    store: &Store,
    engine: &mut super::CohortEngine<'_>,
    target: &serde_json::Value,
) -> Result<(SiteData, Vec<Unit>), AnalysisError> {
    let (units, covariates) = units_and_covariates(spec, store, engine, target)?;
    let clipped = clipped_columns(store, &units, &covariates)
        .map_err(|e| AnalysisError::Invalid(e.to_string()))?;
    let (names, cols) = (clipped.names, clipped.columns);
    let units: Vec<Unit> = clipped.kept.iter().map(|&i| units[i]).collect();
    let time: Vec<i32> = units.iter().map(|u| u.subject.time).collect();
    let event: Vec<bool> = units.iter().map(|u| u.subject.event).collect();
    let data = SiteData::new(
        model_of(spec.spec.model),
        &names,
        &cols,
        &time,
        &event,
        &Guard::none(),
    )
    .map_err(|r| AnalysisError::Unsupported(r.to_string()))?
    .with_loglik_clip(LOGLIK_CLIP);
    Ok((data, units))
}

/// A round's followed units and its covariates (to compute).
type UnitsAndCovariates = (Vec<Unit>, Vec<Box<dyn Covariate>>);

/// The followed units of a round's target and comparator and its covariates.
fn units_and_covariates(
    spec: &RegressionRound,
    store: &Store,
    engine: &mut super::CohortEngine<'_>,
    target: &serde_json::Value,
) -> Result<UnitsAndCovariates, AnalysisError> {
    let tar = tar_of(spec)?;
    let outcome = engine(&spec.spec.outcome)?.rows;
    let target_rows = engine(target)?.rows;
    let target = follow_up(store, &target_rows, &outcome, tar);
    let comparator = match &spec.spec.comparator {
        Some(c) => {
            let rows = engine(c)?.rows;
            follow_up(store, &rows, &outcome, tar).subjects
        }
        None => Vec::new(),
    };
    let units = units(&target.subjects, &comparator);
    let mut covariates = Vec::new();
    for c in spec.spec.design() {
        let rows = match &c {
            RegressionCovariate::Cohort { definition, .. } => engine(definition)?.rows,
            _ => Vec::new(),
        };
        covariates.push(covariate_of(&c, rows));
    }
    Ok((units, covariates))
}

/// A site's persons in a run (its units) and their design, refused by the DataSHIELD-style
/// guards (`min_persons` per level of the outcome and of each binary covariate, at most 0.33
/// parameters per person) before any sum is computed: the same at every round of a run.
pub fn site_data(
    spec: &RegressionRound,
    store: &Store,
    engine: &mut super::CohortEngine<'_>,
    target: &serde_json::Value,
    min_persons: u64,
) -> Result<(SiteData, Vec<Unit>), AnalysisError> {
    let (units, covariates) = units_and_covariates(spec, store, engine, target)?;
    let (names, cols) =
        columns(store, &units, &covariates).map_err(|e| AnalysisError::Invalid(e.to_string()))?;
    let time: Vec<i32> = units.iter().map(|u| u.subject.time).collect();
    let event: Vec<bool> = units.iter().map(|u| u.subject.event).collect();
    let model = model_of(spec.spec.model);
    let data = SiteData::new(
        model,
        &names,
        &cols,
        &time,
        &event,
        &Guard::new(min_persons),
    )
    .map_err(|r| AnalysisError::Unsupported(r.to_string()))?;
    Ok((data, units))
}

/// What a run's design at a site depends on: the run, its spec but the coefficients (cohorts,
/// covariates, time at risk, model), the target, the site's threshold (the guards), the site
/// (its secret's digest of one fixed id) and its store (by address, while open).
fn design_key(
    spec: &RegressionRound,
    store: &Store,
    target: &serde_json::Value,
    d: &Discloser,
) -> String {
    format!(
        "{}|{:p}|{}|{:?}|{}|{}",
        spec.run_id,
        store,
        d.policy().min_cell_count,
        d.digest([0]),
        serde_json::to_string(&spec.spec).unwrap_or_default(),
        target
    )
}

/// The designs of a site's last few runs: a run's persons, covariates and guards are the same
/// at every round (its spec and the site's data are fixed for the run), so after the first
/// round a site computes only the sums at the new coefficients. A guard refusal is not kept
/// (every round refuses again). Memory only: a restarted site computes the design again.
mod designs {
    use std::sync::{Arc, Mutex};

    use crate::regression::design::Unit;
    use crate::regression::SiteData;

    /// How many runs' designs a site keeps.
    const KEPT: usize = 4;

    type Design = Arc<(SiteData, Vec<Unit>)>;

    static DESIGNS: Mutex<Vec<(String, Design)>> = Mutex::new(Vec::new());

    pub(super) fn get(key: &str) -> Option<Design> {
        let kept = DESIGNS.lock().unwrap_or_else(|e| e.into_inner());
        kept.iter().find(|(k, _)| k == key).map(|(_, d)| d.clone())
    }

    pub(super) fn put(key: String, design: Design) {
        let mut kept = DESIGNS.lock().unwrap_or_else(|e| e.into_inner());
        kept.retain(|(k, _)| *k != key);
        kept.push((key, design));
        if kept.len() > KEPT {
            kept.remove(0);
        }
    }
}

/// A site's released sums as the Newton–Raphson coordinator adds them.
pub fn sums_of(spec: &RegressionRound, r: &RegressionSums) -> SiteSums {
    // Under differential privacy the noise follows from the spec and the site's σ alone.
    let noise = r.disclosure.dp.as_ref().and_then(|dp| {
        (spec.spec.model == RegressionModel::Logistic)
            .then(|| privacy_of(spec).noise(dp.sigma).ok())
            .flatten()
    });
    SiteSums {
        model: model_of(spec.spec.model),
        n: r.persons.point().unwrap_or(0),
        events: r.events.point().unwrap_or(0),
        loglik: r.loglik.value,
        gradient: r.gradient.iter().map(|v| v.value).collect(),
        hessian: r.hessian.iter().map(|v| v.value).collect(),
        noise,
    }
}

/// The person set of units (the key of the counts' release).
fn person_set(d: &Discloser, units: impl Iterator<Item = i64>) -> qiao_disclosure::PersonSetDigest {
    let mut ids: Vec<i64> = units.collect();
    ids.sort_unstable();
    ids.dedup();
    d.digest(ids)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::designs;
    use crate::regression::{Guard, Model, SiteData};

    #[test]
    fn a_site_keeps_the_last_runs_designs() {
        let x: Vec<f64> = (0..40).map(|i| f64::from(i % 2)).collect();
        let time: Vec<i32> = (1..=40).collect();
        let event: Vec<bool> = (0..40).map(|i| i % 3 == 0).collect();
        let design = |tag: f64| {
            let col: Vec<f64> = x.iter().map(|v| v * tag).collect();
            let data = SiteData::new(
                Model::Cox,
                &["x".to_string()],
                &[col],
                &time,
                &event,
                &Guard::new(1),
            )
            .unwrap();
            Arc::new((data, Vec::new()))
        };
        // Keys of this test only (the cache is the process's).
        let key = |i: usize| format!("test-run-{i}");
        for i in 0..5 {
            designs::put(key(i), design(1.0 + i as f64));
        }
        // The oldest of 5 is dropped; the others are the designs put, not recomputed ones.
        assert!(designs::get(&key(0)).is_none());
        for i in 1..5 {
            assert_eq!(designs::get(&key(i)).unwrap(), design(1.0 + i as f64));
        }
        // Putting a kept key again keeps it once, as the newest.
        designs::put(key(1), design(9.0));
        designs::put(key(5), design(6.0));
        assert_eq!(designs::get(&key(1)).unwrap(), design(9.0));
        assert!(designs::get(&key(2)).is_none());
    }
}
