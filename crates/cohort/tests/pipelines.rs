//! The fused pipeline and the per-person evaluator give the same cohort rows, person masks and
//! statistics (parallel and single-threaded) on every real definition the fused one takes: the
//! 110 PhenotypeLibrary definitions and the CohortGenerator cohorts on Eunomia GiBleed. (The
//! circe-be materialized cases and the random differential definitions check both too, through
//! [`common::run_both`].)

mod common;

use common::*;
use qiao_cohort::exec::{Pipeline, Prepared};

#[test]
fn fused_and_per_person_pipelines_agree_on_gibleed() {
    let store = gibleed();
    let mut defs: Vec<(String, String)> = (1..=4)
        .map(|id| {
            let p = data(&format!(
                "reference/cohortgenerator-eunomia/cohorts/{id}.json"
            ));
            (format!("cg/{id}"), read(&p))
        })
        .collect();
    let mut dir: Vec<_> = std::fs::read_dir(data("phenotypes-dev/cohorts"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    dir.sort();
    for p in dir {
        let name = format!("pl/{}", p.file_stem().unwrap().to_string_lossy());
        defs.push((name, read(&p)));
    }
    let (mut fused, mut fused_nonempty, mut with_rules) = (0, 0, 0);
    for (name, json) in &defs {
        let def = qiao_cohort::parse(json).unwrap_or_else(|e| panic!("{name}: {e}"));
        let prepared = Prepared::new(&def, store).unwrap_or_else(|e| panic!("{name}: {e}"));
        let (rows, stats) = run_both(&prepared, store, name).unwrap();
        if prepared.pipeline() == Pipeline::Fused {
            fused += 1;
            fused_nonempty += !rows.is_empty() as usize;
            with_rules += !stats.rule_names.is_empty() as usize;
        }
    }
    eprintln!("fused: {fused} definitions, {fused_nonempty} non-empty, {with_rules} with rules");
    // The comparison covers many definitions, non-empty ones and ones with inclusion rules.
    assert!(fused >= 40, "{fused} definitions on the fused pipeline");
    assert!(fused_nonempty >= 10, "{fused_nonempty} non-empty");
    assert!(with_rules >= 2, "{with_rules} with inclusion rules");
}
