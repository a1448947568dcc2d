//! FeatureExtraction's comorbidity indices (`CharlsonIndex.sql`, `Dcsi.sql`, `Chads2.sql`,
//! `Chads2Vasc.sql`) and the statistics FE reports for them.
//!
//! A cohort entry is scored when it has at least one scoring row: a condition era starting on or
//! before index + end day whose concept is in a category (CHADS2 and CHA2DS2-VASc also add their
//! age/sex row for every entry whose person has a `person` row). The score is the sum of the
//! distinct categories' weights (DCSI and HFRS: of each category's highest score). [`distribution`] is FE's
//! statistic over the scored entries with the unscored counted as zeros where FE does so.

use rustc_hash::FxHashMap as HashMap;

use qiao_cdm::{date, NULL_CONCEPT, NULL_INT};

use super::features::{distinct_entries, Context};
use super::{Continuous, Distribution, Entry, Prespec, Score, Settings};

/// Charlson (Romano adaptation) categories: id, weight, ancestors (all their descendants).
const CHARLSON: &[(u8, i64, &[i32])] = &[
    (1, 1, &[4329847]),
    (2, 1, &[316139]),
    (3, 1, &[321052]),
    (4, 1, &[381591, 434056]),
    (5, 1, &[4182210]),
    (6, 1, &[4063381]),
    (7, 1, &[257628, 134442, 80800, 80809, 256197, 255348]),
    (8, 1, &[4247120]),
    (9, 1, &[4064161, 4212540]),
    (10, 1, &[201820]),
    (11, 2, &[443767, 442793]),
    (12, 2, &[192606, 374022]),
    (13, 2, &[4030518]),
    (14, 2, &[443392]),
    (15, 3, &[4245975, 4029488, 192680, 24966]),
    (16, 6, &[432851]),
    (17, 6, &[439727]),
];

/// CHADS2's condition categories (3 is age ≥ 75).
const CHADS2: &[(u8, i64, &[i32])] = &[
    (1, 1, &[316139]),
    (2, 1, &[316866]),
    (4, 1, &[201820]),
    (5, 2, &[381591, 434056]),
];

/// A CHA2DS2-VASc condition category: named concepts (kept when valid), ancestors whose
/// descendants count, and ancestors whose descendants are removed.
struct VascCategory {
    id: u8,
    weight: i64,
    named: &'static [i32],
    ancestors: &'static [i32],
    minus: &'static [i32],
}

const CHADS2VASC: &[VascCategory] = &[
    VascCategory {
        id: 1,
        weight: 1,
        named: &[316139, 314378, 318773, 321319],
        ancestors: &[316139, 314378],
        minus: &[],
    },
    VascCategory {
        id: 2,
        weight: 1,
        named: &[],
        ancestors: &[320128, 442604, 201313],
        minus: &[197930],
    },
    VascCategory {
        id: 4,
        weight: 1,
        named: &[],
        ancestors: &[201820, 442793],
        minus: &[195771, 376112, 4174977, 4058243, 193323, 376979],
    },
    VascCategory {
        id: 5,
        weight: 2,
        named: &[],
        ancestors: &[
            4043731, 4110192, 375557, 4108356, 373503, 434656, 433505, 376714, 312337,
        ],
        minus: &[],
    },
    VascCategory {
        id: 6,
        weight: 1,
        named: &[
            312327, 43020432, 314962, 312939, 315288, 317309, 134380, 196438, 200138, 194393,
            319047, 40486130, 317003, 4313767, 321596, 317305, 321886, 314659, 321887, 437312,
            134057,
        ],
        ancestors: &[
            312327, 43020432, 314962, 312939, 315288, 317309, 134380, 196438, 200138, 194393,
            319047, 40486130, 317003, 4313767, 321596,
        ],
        minus: &[],
    },
];

/// DCSI's rows: category, score, ICD-9-CM code prefixes (`LIKE 'x%'`) and exact codes. Scored
/// through the SNOMED concepts these ICD9CM codes map to ("Maps to").
const DCSI: &[(u8, i64, &[&str], &[&str])] = &[
    (
        1,
        1,
        &["250.5"],
        &["362.01", "362.1", "362.83", "362.53", "362.81", "362.82"],
    ),
    (1, 2, &["361", "369"], &["362.02", "379.23"]),
    (
        2,
        1,
        &["580", "581", "582", "583"],
        &["250.4", "580", "581", "581.81", "582", "583"],
    ),
    (2, 2, &["585", "586", "593.9"], &["585", "586", "593.9"]),
    (
        3,
        1,
        &[
            "356.9", "250.6", "358.1", "951.0", "951.1", "951.3", "713.5", "357.2", "337.0",
            "337.1", "564.5", "536.3", "458.0",
        ],
        &[
            "356.9", "250.6", "358.1", "951.0", "951.1", "951.3", "713.5", "357.2", "596.54",
            "337.0", "337.1", "564.5", "536.3", "458.0",
        ],
    ),
    (4, 1, &["435"], &[]),
    (
        4,
        2,
        &["431", "433", "434", "436"],
        &["431", "433", "434", "436"],
    ),
    (5, 1, &["440", "411", "413", "414", "429.2"], &[]),
    (
        5,
        2,
        &[
            "410", "427.1", "427.3", "427.4", "427.5", "412", "428", "441",
        ],
        &["440.23", "440.24"],
    ),
    (6, 1, &["250.7", "442.3", "892.1", "443.9"], &["443.81"]),
    (6, 2, &["785.4", "707.1", "040.0"], &["444.22"]),
    (7, 2, &["250.1", "250.2", "250.3"], &[]),
];

/// The Hospital Frailty Risk Score's categories (Gilbert et al., Lancet 2018, as `Hfrs.sql`
/// lists them): name, ICD-10 code prefix (`LIKE 'x%'`) and weight in tenths. Scored through the
/// SNOMED concepts these ICD10 codes map to ("Maps to").
#[rustfmt::skip]
const HFRS: &[(&str, &str, i64)] = &[
    ("Dementia in Alzheimers disease", "F00", 71),
    ("Hemiplegia", "G81", 44),
    ("Alzheimers disease", "G30", 40),
    ("Sequelae of cerebrovascular disease", "I69", 37),
    ("Other nervous and musculoskeletal systems", "R29", 36),
    ("Other disorders of urinary system", "N39", 32),
    ("Delirium", "F05", 32),
    ("Unspecified fall", "W19", 32),
    ("Superficial injury of head", "S00", 32),
    ("Unspecified haematuria", "R31", 30),
    ("Other bacterial agents", "B96", 29),
    ("Other cognitive functions and awareness", "R41", 27),
    ("Abnormalities of gait and mobility", "R26", 26),
    ("Other cerebrovascular diseases", "I67", 26),
    ("Convulsions not elsewhere classified", "R56", 26),
    ("Somnolence stupor and coma", "R40", 25),
    ("Complications of genitourinary prosthesis", "T83", 24),
    ("Intracranial injury", "S06", 25),
    ("Fracture of shoulder and upper arm", "S42", 23),
    ("fluid electrolyte and acid base balance", "E87", 23),
    ("Other joint disorders", "M25", 23),
    ("Volume depletion", "E86", 23),
    ("Senility", "R54", 22),
    ("rehabilitation procedures", "Z50", 21),
    ("Unspecified dementia", "F03", 21),
    ("Other fall on same level", "W18", 21),
    ("Problems related to medical facilities", "Z75", 20),
    ("Vascular dementia", "F01", 20),
    ("Superficial injury of lower leg", "S80", 20),
    ("Cellulitis", "L03", 20),
    ("Blindness and low vision", "H54", 19),
    ("Deficiency of other B group vitamins", "E53", 19),
    ("Problems related to social environment", "Z60", 18),
    ("Parkinsons disease", "G20", 18),
    ("Syncope and collapse", "R55", 18),
    ("Fracture of rib sternum and thoracic spine", "S22", 18),
    ("Other functional intestinal disorders", "K59", 18),
    ("Acute renal failure", "N17", 18),
    ("Decubitus ulcer", "L89", 17),
    ("Carrier of infectious disease", "Z22", 17),
    ("Streptococcus and staphylococcus", "B95", 17),
    ("Ulcer of lower limb", "L97", 16),
    ("Other symptoms involving general sensations and perceptions", "R44", 16),
    ("Duodenal ulcer", "K26", 16),
    ("Hypotension", "I95", 16),
    ("Unspecified renal failure", "N19", 16),
    ("Other septicaemia", "A41", 16),
    ("Personal history of other diseases and conditions", "Z87", 15),
    ("Respiratory failure", "J96", 15),
    ("Exposure to unspecified factor", "X59", 15),
    ("Other arthrosis", "M19", 15),
    ("Epilepsy", "G40", 15),
    ("Osteoporosis without pathological fracture", "M81", 14),
    ("Fracture of femur", "S72", 14),
    ("Fracture of lumbar spine and pelvis", "S32", 14),
    ("Other disorders of pancreatic internal secretion", "E16", 14),
    ("Abnormal results of function studies", "R94", 14),
    ("Chronic renal failure", "N18", 14),
    ("Retention of urine", "R33", 13),
    ("Unknown and unspecified causes of morbidity", "R69", 13),
    ("Other disorders of kidney and ureter", "N28", 13),
    ("Unspecified urinary incontinence", "R32", 12),
    ("Other degenerative diseases of nervous system", "G31", 12),
    ("Nosocomial condition", "Y95", 12),
    ("Other and unspecified injuries of head", "S09", 12),
    ("Symptoms and signs involving emotional state", "R45", 12),
    ("Transient cerebral ischaemic attacks", "G45", 12),
    ("Problems related to careprovider dependency", "Z74", 11),
    ("Other soft tissue disorders not elsewhere classified", "M79", 11),
    ("Fall involving bed", "W06", 11),
    ("Open wound of head", "S01", 11),
    ("Other bacterial intestinal infections", "A04", 11),
    ("Infectious Diarrhoea and gastroenteritis", "A09", 11),
    ("Pneumonia organism unspecified", "J18", 11),
    ("Pneumonitis due to solids and liquids", "J69", 10),
    ("Speech disturbances not elsewhere classified", "R47", 10),
    ("Vitamin D deficiency", "E55", 10),
    ("Artificial opening status", "Z93", 10),
    ("Gangrene not elsewhere classified", "R02", 10),
    ("Symptoms and signs concerning food and fluid intake", "R63", 9),
    ("Other hearing loss", "H91", 9),
    ("Fall on and from stairs and steps", "W10", 9),
    ("Fall on same level from slipping tripping and stumbling", "W01", 9),
    ("Thyrotoxicosis", "E05", 9),
    ("Scoliosis", "M41", 9),
    ("Dysphagia", "R13", 8),
    ("Dependence on enabling machines and devices", "Z99", 8),
    ("Agent resistant to penicillin and related antibiotics", "U80", 8),
    ("Osteoporosis with pathological fracture", "M80", 8),
    ("Other diseases of digestive system", "K92", 8),
    ("Cerebral Infarction", "I63", 8),
    ("Calculus of kidney and ureter", "N20", 7),
    ("Mental and behavioural disorders due to use of alcohol", "F10", 7),
    ("Other medical procedures causing abnormal reaction", "Y84", 7),
    ("Abnormalities of heart beat", "R00", 7),
    ("Unspecified acute lower respiratory infection", "J22", 7),
    ("Problems related to lifemanagement difficulty", "Z73", 6),
    ("Other abnormal findings of blood chemistry", "R79", 6),
    ("Personal history of riskfactors", "Z91", 5),
    ("Open wound of forearm", "S51", 5),
    ("Depressive episode", "F32", 5),
    ("Spinal stenosis secondary code only", "M48", 5),
    ("Disorders of mineral metabolism", "E83", 4),
    ("Polyarthrosis", "M15", 4),
    ("Other anaemias", "D64", 4),
    ("Other local infections of skin and subcutaneous tissue", "L08", 4),
    ("Nausea and vomiting", "R11", 3),
    ("Other noninfective gastroenteritis and colitis", "K52", 3),
    ("Fever of unknown origin", "R50", 1),
];

/// Concept → the (category, weight) rows it scores.
fn scoring(ctx: &Context<'_>, s: Score) -> HashMap<i32, Vec<(u8, i64)>> {
    let vocab = &ctx.vocab;
    let mut map: HashMap<i32, Vec<(u8, i64)>> = HashMap::default();
    let mut add = |c: i32, cat: u8, w: i64| {
        let v = map.entry(c).or_default();
        if !v.contains(&(cat, w)) {
            v.push((cat, w));
        }
    };
    match s {
        Score::Charlson | Score::Chads2 => {
            let table = if s == Score::Charlson {
                CHARLSON
            } else {
                CHADS2
            };
            for &(cat, w, ancestors) in table {
                for &a in ancestors {
                    for &d in vocab.descendants(a) {
                        add(d, cat, w);
                    }
                }
            }
        }
        Score::Chads2Vasc => {
            for c in CHADS2VASC {
                let minus: rustc_hash::FxHashSet<i32> = c
                    .minus
                    .iter()
                    .flat_map(|&a| vocab.descendants(a).iter().copied())
                    .collect();
                for &id in c.named {
                    if vocab.is_valid(id) {
                        add(id, c.id, c.weight);
                    }
                }
                for &a in c.ancestors {
                    for &d in vocab.descendants(a) {
                        if !minus.contains(&d) {
                            add(d, c.id, c.weight);
                        }
                    }
                }
            }
        }
        Score::Hfrs => {
            for &target in vocab.concept_ids() {
                if vocab.concept(target).and_then(|t| t.vocabulary_id) != Some("SNOMED") {
                    continue;
                }
                for &source in vocab.mapped_from(target) {
                    let Some(src) = vocab.concept(source) else {
                        continue;
                    };
                    let Some(code) = src
                        .concept_code
                        .filter(|_| src.vocabulary_id == Some("ICD10"))
                    else {
                        continue;
                    };
                    for (cat, &(_, prefix, tenths)) in HFRS.iter().enumerate() {
                        if code.starts_with(prefix) {
                            add(target, cat as u8, tenths);
                        }
                    }
                }
            }
        }
        Score::Dcsi => {
            for &target in vocab.concept_ids() {
                let Some(t) = vocab.concept(target) else {
                    continue;
                };
                if t.vocabulary_id != Some("SNOMED") {
                    continue;
                }
                for &source in vocab.mapped_from(target) {
                    let Some(src) = vocab.concept(source) else {
                        continue;
                    };
                    let Some(code) = src
                        .concept_code
                        .filter(|_| src.vocabulary_id == Some("ICD9CM"))
                    else {
                        continue;
                    };
                    for &(cat, score, prefixes, exact) in DCSI {
                        if prefixes.iter().any(|p| code.starts_with(p)) || exact.contains(&code) {
                            add(target, cat, score);
                        }
                    }
                }
            }
        }
    }
    map
}

/// The continuous covariates of the scores `list` (each with its analysis) for the cohort
/// `entries`, in the list's order (None: no entry scored, where FE's inner join leaves no row).
/// The condition eras before each entry's end day are read once for all the scores.
pub fn scores(
    ctx: &Context<'_>,
    list: &[(&Prespec, Score)],
    entries: &[Entry],
    settings: &Settings,
) -> Vec<Option<Continuous>> {
    if entries.is_empty() || list.is_empty() {
        return vec![None; list.len()];
    }
    // Concept → (score, category, weight) of every score in the list.
    let mut map: HashMap<i32, Vec<(usize, u8, i64)>> = HashMap::default();
    for (i, &(_, s)) in list.iter().enumerate() {
        for (c, rows) in scoring(ctx, s) {
            map.entry(c)
                .or_default()
                .extend(rows.into_iter().map(|(cat, w)| (i, cat, w)));
        }
    }
    let eras = ctx.store.domain("condition_era");
    let persons = ctx.store.persons();
    let yob = persons.i32_column("year_of_birth");
    let gender = persons.i32_column("gender_concept_id");
    let mut scores: Vec<Vec<(u32, i64)>> = vec![Vec::new(); list.len()];
    let mut rows: Vec<Vec<(u8, i64)>> = vec![Vec::new(); list.len()];
    for e in distinct_entries(entries).iter().copied() {
        rows.iter_mut().for_each(Vec::clear);
        if let Some(d) = &eras {
            let range = d.person_rows(e.person);
            let hi = e.start.saturating_add(settings.end_days);
            let concepts = d.concept();
            let starts = d.start();
            for r in range {
                if starts.at(r) > hi {
                    break;
                }
                let c = concepts[r];
                if c == NULL_CONCEPT {
                    continue;
                }
                if let Some(v) = map.get(&c) {
                    for &(i, cat, w) in v {
                        rows[i].push((cat, w));
                    }
                }
            }
        }
        for (i, &(_, s)) in list.iter().enumerate() {
            let rows = &mut rows[i];
            if matches!(s, Score::Chads2 | Score::Chads2Vasc) && persons.has_row(e.person) {
                let y = yob.get(e.person as usize).copied().unwrap_or(NULL_INT);
                let female = gender.get(e.person as usize) == Some(&8532);
                rows.push((3, age_sex_weight(s, e.start, y, female)));
            }
            if let Some(total) = total(s, rows) {
                scores[i].push((e.person, total));
            }
        }
    }
    list.iter()
        .zip(scores)
        .map(|(&(a, s), scores)| continuous(a, s, scores, entries.len() as u64))
        .collect()
}

/// The age and sex row of CHADS2 (age ≥ 75: 1) and CHA2DS2-VASc (age ≥ 75: 2, ≥ 65: 1, female:
/// 1) for an entry at `start` of a person born in `year_of_birth` (NULL_INT: unknown).
fn age_sex_weight(s: Score, start: i32, year_of_birth: i32, female: bool) -> i64 {
    // (YEAR(index) - year_of_birth) >= 75 is NULL, so false, for a NULL year of birth.
    let age = (year_of_birth != NULL_INT).then(|| date::year(start) - year_of_birth);
    if s == Score::Chads2 {
        return i64::from(age.is_some_and(|a| a >= 75));
    }
    let by_age = match age {
        Some(a) if a >= 75 => 2,
        Some(a) if a >= 65 => 1,
        _ => 0,
    };
    by_age + i64::from(female)
}

/// An entry's score from its (category, weight) rows (None: no row, so not scored): DCSI and
/// HFRS sum each category's highest weight, the others the distinct rows' weights.
fn total(s: Score, rows: &mut Vec<(u8, i64)>) -> Option<i64> {
    if rows.is_empty() {
        return None;
    }
    rows.sort_unstable();
    rows.dedup();
    if !matches!(s, Score::Dcsi | Score::Hfrs) {
        return Some(rows.iter().map(|r| r.1).sum());
    }
    // SUM over categories of MAX(score): rows are sorted, so a category's last row is its max.
    Some(
        rows.iter()
            .enumerate()
            .filter(|&(i, r)| rows.get(i + 1).is_none_or(|next| next.0 != r.0))
            .map(|(_, r)| r.1)
            .sum(),
    )
}

/// Score `s`'s covariate from each scored entry's (person, score).
fn continuous(a: &Prespec, s: Score, scores: Vec<(u32, i64)>, entries: u64) -> Option<Continuous> {
    let mut plain: Vec<i64> = scores.iter().map(|x| x.1).collect();
    let stats = distribution(&mut plain, entries)?;
    let name = match s {
        Score::Charlson => "Charlson index - Romano adaptation",
        Score::Dcsi => "Diabetes Comorbidity Severity Index (DCSI)",
        Score::Chads2 => "CHADS2",
        Score::Chads2Vasc => "CHADS2VASc",
        Score::Hfrs => "Hospital Frailty Risk Score (hfrs)",
    };
    let (stats, values) = if s == Score::Hfrs {
        (tenths(stats), None)
    } else {
        (stats, Some(scores))
    };
    Some(Continuous {
        covariate_id: 1000 + i64::from(a.id),
        analysis_id: a.id,
        concept_id: 0,
        name: name.to_string(),
        stats,
        values,
    })
}

/// The highest value score `s` can take (each category once at its highest weight, and the
/// age/sex row of CHADS2 (1) and CHA2DS2-VASc (3)), a fact of its definition; None for HFRS,
/// whose values are tenths.
pub fn max_score(s: Score) -> Option<u64> {
    // Sum over categories of the highest weight of each.
    fn by_category(rows: impl Iterator<Item = (u8, i64)>) -> i64 {
        let mut best: HashMap<u8, i64> = HashMap::default();
        for (c, w) in rows {
            let b = best.entry(c).or_insert(w);
            *b = (*b).max(w);
        }
        best.values().sum()
    }
    let max = match s {
        Score::Charlson => by_category(CHARLSON.iter().map(|r| (r.0, r.1))),
        Score::Chads2 => by_category(CHADS2.iter().map(|r| (r.0, r.1))) + 1,
        Score::Chads2Vasc => by_category(CHADS2VASC.iter().map(|c| (c.id, c.weight))) + 3,
        Score::Dcsi => by_category(DCSI.iter().map(|r| (r.0, r.1))),
        Score::Hfrs => return None,
    };
    u64::try_from(max).ok()
}

/// The statistics of values counted in tenths, in units.
fn tenths(d: Distribution) -> Distribution {
    let u = |x: f64| x / 10.0;
    Distribution {
        count: d.count,
        mean: u(d.mean),
        sd: u(d.sd),
        min: u(d.min),
        p10: u(d.p10),
        p25: u(d.p25),
        median: u(d.median),
        p75: u(d.p75),
        p90: u(d.p90),
        max: u(d.max),
    }
}

/// FeatureExtraction's statistics of a score over a cohort of `population` entries of which
/// `values` have a value (the rest: "no value", read as 0 where FE does): count = values with a
/// value; mean = sum / population; sd over the values with a value only (sample sd, 0 for one);
/// min = the minimum if every entry has a value, else 0; max = the maximum; quantile q = 0 when
/// q·population < entries without a value, else the smallest value v with
/// #(values ≤ v) + #(no value) ≥ q·population. None when no entry has a value.
pub fn distribution(values: &mut [i64], population: u64) -> Option<Distribution> {
    if values.is_empty() {
        return None;
    }
    values.sort_unstable();
    let n = values.len() as i128;
    let sum: i128 = values.iter().map(|&v| i128::from(v)).sum();
    let squares: i128 = values.iter().map(|&v| i128::from(v) * i128::from(v)).sum();
    let no_value = population as i128 - n;
    let sd = if n == 1 {
        0.0
    } else {
        ((n * squares - sum * sum) as f64 / (n * (n - 1)) as f64).sqrt()
    };
    // q in hundredths, compared exactly: q·N < no_value ⇔ q100·N < 100·no_value.
    let quantile = |q100: i128| -> f64 {
        let pop = population as i128;
        if q100 * pop < 100 * no_value {
            return 0.0;
        }
        let mut acc = 0i128;
        let mut i = 0;
        while i < values.len() {
            let v = values[i];
            while i < values.len() && values[i] == v {
                acc += 1;
                i += 1;
            }
            if 100 * (acc + no_value) >= q100 * pop {
                return v as f64;
            }
        }
        values[values.len() - 1] as f64
    };
    Some(Distribution {
        count: values.len() as u64,
        mean: sum as f64 / population as f64,
        sd,
        min: if no_value == 0 { values[0] as f64 } else { 0.0 },
        p10: quantile(10),
        p25: quantile(25),
        median: quantile(50),
        p75: quantile(75),
        p90: quantile(90),
        max: values[values.len() - 1] as f64,
    })
}
