//! Continuous covariates under differential privacy with the noise taken off: a site's clipped
//! sums and histogram ([`continuous::clipped`]) turned into FE's statistics by the hub's
//! post-processing ([`Derived::of`]) give FeatureExtraction's statistics of the covariate
//! exactly where the bin width is 1 (age, scores, counts) and within the bin resolution
//! (`(bin − 1)/2` = 182.5 days) for observation and cohort days; on GiBleed, CohortGenerator
//! cohorts 1 and 2. (With noise: crates/site/tests/continuous_dp.rs.)

#[path = "../../cohort/tests/common/mod.rs"]
mod common;

use qiao_analysis::characterization::{self, prespec, Settings};
use qiao_analysis::cohorts::cohort_rows;
use qiao_analysis::network::continuous::{self, declared_range, Derived};

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-9 * a.abs().max(b.abs()).max(1.0)
}

#[test]
fn noise_off_clipped_sums_and_histogram_give_fe_statistics_within_the_bin() {
    let store = common::gibleed();
    // Every continuous analysis with a declared range.
    let ids: Vec<u32> = characterization::PRESPEC
        .iter()
        .filter(|a| a.kind.is_continuous() && declared_range(a).is_some())
        .map(|a| a.id)
        .collect();
    assert!(ids.len() >= 28, "{ids:?}");
    let settings = Settings {
        analysis_ids: ids.clone(),
        ..Settings::default()
    };
    let mut compared = 0;
    let mut binned = 0;
    for cohort in [1, 2] {
        let p = common::data(&format!(
            "reference/cohortgenerator-eunomia/cohorts/{cohort}.json"
        ));
        let rows = cohort_rows(store, &p.display().to_string(), &common::read(&p)).unwrap();
        let ch = characterization::characterize(store, &rows, &settings).unwrap();
        let entries = ch.population.entries;
        for c in &ch.continuous {
            let range = declared_range(prespec(c.analysis_id).unwrap()).unwrap();
            let values = c.values.as_ref().expect("integer values");
            assert!(
                values.iter().all(|&(_, v)| v >= 0 && v as u64 <= range.max),
                "covariate {}: values outside 0–{}",
                c.covariate_id,
                range.max
            );
            // No clipping of entries: every value counts (GiBleed's cohorts have one entry per
            // person and one value per entry).
            let clipped = continuous::clipped(&range, values, u32::MAX);
            assert_eq!(clipped.count, c.stats.count);
            assert_eq!(clipped.histogram.len() as u64, range.kmax() + 1);
            let d = Derived::of(
                &range,
                entries,
                clipped.count,
                range.value_moments(clipped.count, clipped.sum, clipped.sum_squares),
                Some(&clipped.histogram),
            );
            let fe = c.stats;
            let pairs = [
                ("mean", d.mean, fe.mean),
                ("min", d.min, fe.min),
                ("p10", d.p10, fe.p10),
                ("p25", d.p25, fe.p25),
                ("median", d.median, fe.median),
                ("p75", d.p75, fe.p75),
                ("p90", d.p90, fe.p90),
                ("max", d.max, fe.max),
            ];
            let half = (range.bin - 1) as f64 / 2.0;
            for (what, mine, theirs) in pairs {
                let mine = mine.unwrap_or_else(|| panic!("{} {what}: none", c.covariate_id));
                if range.bin == 1 {
                    assert!(
                        close(mine, theirs),
                        "cohort {cohort} covariate {} {what}: {mine} vs FE {theirs}",
                        c.covariate_id
                    );
                } else {
                    assert!(
                        (mine - theirs).abs() <= half + 1e-9,
                        "cohort {cohort} covariate {} {what}: {mine} vs FE {theirs} (bin {})",
                        c.covariate_id,
                        range.bin
                    );
                }
            }
            // sd: each value moves by at most (bin − 1)/2, so the sd by at most that × √(n/(n−1)).
            let sd = d.sd.unwrap();
            let n = c.stats.count as f64;
            let tol = if range.bin == 1 {
                1e-9 * fe.sd.max(1.0)
            } else {
                half * (n / (n - 1.0)).sqrt() + 1e-9
            };
            assert!(
                (sd - fe.sd).abs() <= tol,
                "cohort {cohort} covariate {} sd: {sd} vs FE {}",
                c.covariate_id,
                fe.sd
            );
            compared += 1;
            binned += usize::from(range.bin > 1);
        }
    }
    assert!(compared >= 20, "{compared} covariates compared");
    assert!(binned >= 4, "{binned} day-valued covariates compared");
}

#[test]
fn declared_ranges_are_facts_of_the_definitions() {
    let r = |id: u32| declared_range(prespec(id).unwrap());
    let age = r(2).unwrap();
    assert_eq!((age.max, age.bin, age.unit.as_str()), (120, 1, "years"));
    let days = r(8).unwrap();
    assert_eq!((days.max, days.bin, days.kmax()), (36_599, 366, 99));
    // Charlson (Romano): 10 categories of weight 1, 4 of 2, 1 of 3, 2 of 6.
    assert_eq!(r(901).unwrap().max, 33);
    // DCSI: 7 categories, highest scores 2, 2, 1, 2, 2, 2, 2.
    assert_eq!(r(902).unwrap().max, 13);
    // CHADS2: C, H, A (≥ 75), D one each, S2 two.
    assert_eq!(r(903).unwrap().max, 6);
    // CHA2DS2-VASc: C, H, D, V one each, S2 two, age 2 and sex 1.
    assert_eq!(r(904).unwrap().max, 9);
    assert_eq!(r(905).unwrap().max, 100);
    // Real-valued: not released across the network.
    for id in [705, 812, 926] {
        assert!(r(id).is_none(), "{id}");
    }
    // Clipping: below 0 counts 0, above max counts max.
    assert_eq!(age.bin_of(-3), 0);
    assert_eq!(age.bin_of(130), 120);
    assert_eq!(days.bin_of(40_000), 99);
    assert_eq!(days.midpoint(1), 366.0 + 182.5);
}
