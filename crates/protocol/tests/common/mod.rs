#![allow(dead_code)]

use proptest::prelude::*;
use qiao_protocol::*;
use serde_json::json;

pub const NOW: i64 = 1_760_000_000;

pub fn site(name: &str) -> SiteId {
    SiteId::new(name).expect("valid site id")
}

pub fn definition() -> serde_json::Value {
    json!({
        "ConceptSets": [],
        "PrimaryCriteria": {"CriteriaList": [{"DrugExposure": {"CodesetId": 0}}]},
        "InclusionRules": [
            {"name": "Age >= 18 at index", "expression": {"Type": "ALL"}},
            {"name": "Female", "expression": {"Type": "ALL"}}
        ]
    })
}

pub fn job() -> Job {
    Job {
        job_id: JobId::random(),
        project_id: ProjectId::new("proj-7").expect("valid"),
        query: QueryType::CohortCount,
        definition: definition(),
        requested_by: Requester {
            user_id: UserId::new("alice@example.org").expect("valid"),
            role: UserRole::SponsorResearcher,
            organization: "Example Pharma".into(),
        },
        created_at: NOW - 10,
        floors: qiao_protocol::Floors::default(),
    }
}

pub fn summary() -> DisclosureSummary {
    DisclosureSummary {
        min_cell_count: 10,
        obfuscation: Some(ObfuscationParams {
            bin: 5,
            sigma: 6.5,
            clamp: 10.0,
        }),
        secondary_suppression: true,
        dp: None,
    }
}

pub fn count_result(job: &Job, site_id: &SiteId) -> JobResult {
    JobResult {
        job_id: job.job_id,
        site_id: site_id.clone(),
        outcome: Outcome::Done {
            payload: Payload::CohortCount(CohortCountResult {
                initial: None,
                entries: Released::Exact { value: 1200 },
                subjects: Released::Obfuscated {
                    value: 845,
                    threshold: 10,
                    max_error: 13,
                },
                rules: vec![
                    RuleResult {
                        name: RuleName::new("Age >= 18 at index").expect("valid"),
                        persons: Released::Exact { value: 800 },
                        gain: Released::Exact { value: 45 },
                    },
                    RuleResult {
                        name: RuleName::new("Female").expect("valid"),
                        persons: Released::Exact { value: 410 },
                        gain: Released::BelowThreshold { threshold: 10 },
                    },
                ],
                final_persons: Released::Exact { value: 410 },
                disclosure: summary(),
            }),
        },
    }
}

pub fn demographics_result(job_id: JobId, site_id: &SiteId) -> JobResult {
    JobResult {
        job_id,
        site_id: site_id.clone(),
        outcome: Outcome::Done {
            payload: Payload::Demographics(DemographicsResult {
                total: Released::Exact { value: 410 },
                cells: vec![
                    Cell {
                        age_band: Some(AgeBand {
                            min_age: 40,
                            max_age: Some(49),
                        }),
                        gender: Some(Gender::Female),
                        index_year: Some(2019),
                        count: Released::Exact { value: 33 },
                    },
                    Cell {
                        age_band: Some(AgeBand {
                            min_age: 90,
                            max_age: None,
                        }),
                        gender: Some(Gender::Male),
                        index_year: Some(2019),
                        count: Released::Suppressed {
                            threshold: 10,
                            basis: SuppressionBasis::Table,
                        },
                    },
                    Cell {
                        age_band: None,
                        gender: Some(Gender::Female),
                        index_year: None,
                        count: Released::Exact { value: 200 },
                    },
                ],
                disclosure: summary(),
            }),
        },
    }
}

// ---- proptest strategies over every result type ----------------------------------------------

pub fn arb_f64() -> impl Strategy<Value = f64> {
    (1u32..1_000_000).prop_map(|n| f64::from(n) / 1000.0)
}

pub fn arb_released(threshold: u64) -> impl Strategy<Value = Released> {
    prop_oneof![
        (threshold..u64::MAX).prop_map(|value| Released::Exact { value }),
        Just(Released::BelowThreshold { threshold }),
        prop_oneof![
            Just(SuppressionBasis::Table),
            Just(SuppressionBasis::NoisyCount)
        ]
        .prop_map(move |basis| Released::Suppressed { threshold, basis }),
        (any::<u64>(), any::<u64>()).prop_map(move |(value, max_error)| Released::Obfuscated {
            value,
            threshold,
            max_error
        }),
        (proptest::option::of(any::<u64>()), arb_f64()).prop_map(move |(value, sigma)| {
            Released::Dp {
                value,
                sigma,
                threshold,
            }
        }),
    ]
}

pub fn arb_summary(threshold: u64) -> impl Strategy<Value = DisclosureSummary> {
    (
        any::<u64>(),
        arb_f64(),
        arb_f64(),
        any::<bool>(),
        arb_f64(),
        any::<u32>(),
        arb_f64(),
    )
        .prop_map(
            move |(bin, sigma, clamp, secondary_suppression, rho, bound, remaining)| {
                DisclosureSummary {
                    min_cell_count: threshold,
                    // Always declared, so every Released variant is consistent with it.
                    obfuscation: Some(ObfuscationParams { bin, sigma, clamp }),
                    secondary_suppression,
                    dp: Some(DpParams {
                        rho_spent: rho,
                        sigma,
                        entries_bound: bound,
                        remaining_rho: remaining,
                        user_remaining_rho: None,
                        organization_remaining_rho: None,
                    }),
                }
            },
        )
}

pub fn arb_rule_name() -> impl Strategy<Value = RuleName> {
    "[^\\p{Cc}]{0,40}".prop_map(|s| RuleName::new(s).expect("no control characters"))
}

pub fn arb_gender() -> impl Strategy<Value = Gender> {
    prop_oneof![
        Just(Gender::Female),
        Just(Gender::Male),
        Just(Gender::Other),
        Just(Gender::Unknown)
    ]
}

pub fn arb_cells(threshold: u64) -> impl Strategy<Value = Vec<Cell>> {
    proptest::collection::vec(
        (
            proptest::option::of((0u8..=150, proptest::option::of(0u8..=150))),
            proptest::option::of(arb_gender()),
            proptest::option::of(1800u16..=2300),
            arb_released(threshold),
        ),
        0..30,
    )
    .prop_map(|raw| {
        let mut seen = std::collections::HashSet::new();
        raw.into_iter()
            .map(|(band, gender, index_year, count)| Cell {
                age_band: band.map(|(a, b)| AgeBand {
                    min_age: a,
                    max_age: b.map(|b| b.max(a)),
                }),
                gender,
                index_year,
                count,
            })
            .filter(|c| seen.insert(c.key()))
            .collect()
    })
}

pub fn arb_site() -> impl Strategy<Value = SiteId> {
    "[a-z0-9][a-z0-9._-]{0,20}".prop_map(|s| SiteId::new(s).expect("valid"))
}

pub fn arb_job_id() -> impl Strategy<Value = JobId> {
    any::<[u8; 16]>().prop_map(JobId::from_bytes)
}

pub fn arb_payload() -> impl Strategy<Value = Payload> {
    (0u64..1000).prop_flat_map(|t| {
        prop_oneof![
            (
                arb_released(t),
                arb_released(t),
                proptest::collection::vec(
                    (arb_rule_name(), arb_released(t), arb_released(t)).prop_map(
                        |(name, persons, gain)| RuleResult {
                            name,
                            persons,
                            gain
                        }
                    ),
                    0..8
                ),
                arb_released(t),
                arb_summary(t),
            )
                .prop_map(|(entries, subjects, rules, final_persons, disclosure)| {
                    Payload::CohortCount(CohortCountResult {
                        // The funnel's first line, present with rules (as sites send it).
                        initial: (!rules.is_empty()).then(|| subjects.clone()),
                        entries,
                        subjects,
                        rules,
                        final_persons,
                        disclosure,
                    })
                }),
            (arb_released(t), arb_cells(t), arb_summary(t)).prop_map(
                |(total, cells, disclosure)| Payload::Demographics(DemographicsResult {
                    total,
                    cells,
                    disclosure
                })
            ),
        ]
    })
}

pub fn arb_outcome() -> impl Strategy<Value = Outcome> {
    prop_oneof![
        arb_payload().prop_map(|payload| Outcome::Done { payload }),
        prop_oneof![
            Just(RefusalReason::QueryTypeDenied),
            Just(RefusalReason::ProjectNotApproved),
            Just(RefusalReason::RejectedBySteward),
            Just(RefusalReason::RateLimited),
            Just(RefusalReason::LockedOut),
            Just(RefusalReason::PrivacyBudgetExhausted),
            Just(RefusalReason::Policy),
        ]
        .prop_map(|reason| Outcome::Refused { reason }),
        prop_oneof![
            Just(FailureKind::InvalidDefinition),
            Just(FailureKind::UnsupportedDefinition),
            Just(FailureKind::StoreUnavailable),
            Just(FailureKind::Timeout),
            Just(FailureKind::Internal),
        ]
        .prop_map(|error| Outcome::Failed { error }),
    ]
}

pub fn arb_result() -> impl Strategy<Value = JobResult> {
    (arb_job_id(), arb_site(), arb_outcome()).prop_map(|(job_id, site_id, outcome)| JobResult {
        job_id,
        site_id,
        outcome,
    })
}
