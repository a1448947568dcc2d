//! `narrative`: definitions as readable text. Golden files (tests/golden/narrative/, rewritten with
//! QIAO_BLESS=1) for the OHDSI CohortGenerator cohorts and a dozen phenotypes in both languages;
//! every phenotype and circe-be fixture renders with each concept set and rule named.

mod common;

use std::fs;

use common::{data, golden};
use qiao_cohort::narrative::{narrative, Lang};

const PHENOTYPES: [u32; 12] = [
    23, 33, 123, 373, 383, 453, 513, 1073, 1153, 1183, 1203, 1263,
];

fn render(path: &std::path::Path, title: &str, lang: Lang) -> String {
    let text = fs::read_to_string(path).unwrap();
    let def = qiao_cohort::parse(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    narrative(&def.expression, title, lang)
}

/// The definition at `rel` in both languages against `narrative/<name>.<lang>.md`.
fn check_golden(rel: &str, name: &str, title: &str) {
    for (lang, tag) in [(Lang::En, "en"), (Lang::ZhCn, "zh-CN")] {
        let out = render(&data(rel), title, lang);
        golden(&format!("narrative/{name}.{tag}.md"), &out);
    }
}

#[test]
fn cohortgenerator_cohorts_match_their_golden_files() {
    for id in 1..=4 {
        let rel = format!("reference/cohortgenerator-eunomia/cohorts/{id}.json");
        check_golden(
            &rel,
            &format!("cg{id}"),
            &format!("CohortGenerator cohort {id}"),
        );
    }
}

#[test]
fn phenotypes_match_their_golden_files() {
    for id in PHENOTYPES {
        let rel = format!("phenotypes-dev/cohorts/{id}.json");
        check_golden(&rel, &format!("pl{id}"), &format!("Phenotype {id}"));
    }
}

#[test]
fn the_demo_rule_says_greater_than_not_at_least() {
    let p = data("reference/cohortgenerator-eunomia/cohorts/3.json");
    let en = render(&p, "3", Lang::En);
    assert!(en.contains("age greater than 40"), "{en}");
    assert!(en.contains("gender is any of MALE (8507)"), "{en}");
    let zh = render(&p, "3", Lang::ZhCn);
    assert!(zh.contains("年龄大于 40"), "{zh}");
}

/// Every phenotype renders in both languages and names each of its concept sets and rules; the
/// Chinese text carries no English sentence of the narrative.
#[test]
fn every_phenotype_names_its_concept_sets_and_rules() {
    let dir = data("phenotypes-dev/cohorts");
    let mut n = 0;
    for entry in fs::read_dir(&dir).unwrap() {
        let p = entry.unwrap().path();
        if p.extension().is_none_or(|e| e != "json") {
            continue;
        }
        let text = fs::read_to_string(&p).unwrap();
        let Ok(def) = qiao_cohort::parse(&text) else {
            continue;
        };
        for lang in [Lang::En, Lang::ZhCn] {
            let out = narrative(&def.expression, "t", lang);
            for cs in &def.expression.concept_sets {
                if let Some(name) = cs.name.as_deref().filter(|n| !n.is_empty()) {
                    assert!(
                        out.contains(name),
                        "{}: concept set {name:?} missing",
                        p.display()
                    );
                }
            }
            for r in &def.expression.inclusion_rules {
                if let Some(name) = r.name.as_deref().filter(|n| !n.is_empty()) {
                    assert!(out.contains(name), "{}: rule {name:?} missing", p.display());
                }
            }
            if lang == Lang::ZhCn {
                for english in [
                    "People enter",
                    "Inclusion criteria",
                    "Cohort exit",
                    "occurrence of",
                ] {
                    assert!(
                        !out.contains(english),
                        "{}: {english:?} in zh-CN",
                        p.display()
                    );
                }
            }
        }
        n += 1;
    }
    assert!(n >= 100, "only {n} phenotypes parsed");
}
