//! The site against an in-process fake hub on loopback: enrollment, job round trips checked
//! against the cohort engine, approvals, refusals, envelope attacks, hub outages, and the
//! pre-screening list never reaching the hub.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::time::{Duration, Instant};

use common::*;
use qiao_cohort::{Counter, Prepared};
use qiao_protocol::{
    AgeBand, Gender, JobId, MessageKind, Nonce, Outcome, Payload, QueryType, RefusalReason,
    Released, Signer, SiteId,
};
use qiao_site::queue::{ApprovalState, Approvals, Journal};
use qiao_site::users::{LocalRole, Users};
use qiao_site::{Approval, SiteDir};

fn payload(r: &qiao_protocol::JobResult) -> &Payload {
    match &r.outcome {
        Outcome::Done { payload } => payload,
        other => panic!("expected a released payload, got {other:?}"),
    }
}

fn cohort(r: &qiao_protocol::JobResult) -> &qiao_protocol::CohortCountResult {
    match payload(r) {
        Payload::CohortCount(c) => c,
        other => panic!("expected a cohort count, got {other:?}"),
    }
}

/// Released under threshold 10 with SHRINE obfuscation: a true count below 10 only as "< 10";
/// otherwise a multiple of 5, at least 10, within 12 of the truth.
fn assert_obfuscated(r: &Released, truth: u64) {
    if truth < 10 {
        assert_eq!(
            *r,
            Released::BelowThreshold { threshold: 10 },
            "truth {truth}"
        );
        return;
    }
    match *r {
        Released::Obfuscated {
            value,
            threshold,
            max_error,
        } => {
            assert_eq!(threshold, 10);
            assert_eq!(max_error, 12);
            assert_eq!(value % 5, 0, "{value} is not binned");
            assert!(value >= 10);
            assert!(value.abs_diff(truth) <= 12, "{value} vs true {truth}");
        }
        ref other => panic!("expected an obfuscated count for {truth}, got {other:?}"),
    }
}

fn assert_exact(r: &Released, truth: u64) {
    if truth < 10 {
        assert_eq!(*r, Released::BelowThreshold { threshold: 10 });
    } else {
        assert_eq!(*r, Released::Exact { value: truth });
    }
}

/// The engine run directly on the store (no site code): entries, subjects, per rule the
/// persons remaining (best event) and Circe's gain, final persons.
fn engine_funnel(def: u32) -> (u64, u64, Vec<(String, u64, u64)>, u64) {
    let text = definition(def).to_string();
    let parsed = qiao_cohort::parse(&text).unwrap();
    let prepared = Prepared::new(&parsed, store()).unwrap();
    let mut counter = Counter::default();
    let stats = prepared.run(store(), &mut counter).unwrap();
    let rules = stats
        .rule_names
        .iter()
        .enumerate()
        .map(|(i, name)| {
            let need = (1u64 << (i + 1)) - 1;
            let remaining = stats.modes[1]
                .masks
                .iter()
                .filter(|(m, _)| *m & need == need)
                .map(|(_, n)| *n)
                .sum();
            (name.clone(), remaining, stats.modes[1].rules[i].gain_count)
        })
        .collect();
    (
        counter.entries,
        counter.subjects,
        rules,
        stats.modes[1].final_count,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enrollment_pins_the_hub_key_and_keeps_the_private_key_private() {
    let hub = FakeHub::new();
    let (url, _server) = start(hub.clone(), 0).await;
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("site");
    let config = enroll_site(&hub, &url, &data, "hospital-a").await;
    assert_eq!(config.site_id.as_str(), "hospital-a");
    assert_eq!(hub.site().as_str(), "hospital-a");
    assert_eq!(
        config.hub_public_key.verifying_key(),
        &hub.signer.verifying_key()
    );
    let dir = SiteDir::open(&data).unwrap();
    assert_eq!(dir.config().unwrap(), config);
    for f in [dir.key_path(), dir.secret_path()] {
        let mode = std::fs::metadata(&f).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{}", f.display());
    }
    // The private key never went to the hub.
    let key = qiao_protocol::keys::load_signing_key(&dir.key_path()).unwrap();
    let secret_hex: String = key.as_bytes().iter().map(|b| format!("{b:02x}")).collect();
    let traffic = String::from_utf8_lossy(&hub.traffic()).into_owned();
    assert!(!traffic.contains(&secret_hex));
    // Enrolling the same directory again is refused.
    let again = qiao_site::enroll(&qiao_site::EnrollOptions {
        hub: url.clone(),
        token: hub.issue_token(),
        name: "hospital-a".into(),
        data: data.clone(),
        hub_fingerprint: None,
        tls: insecure(),
    })
    .await;
    assert!(again.unwrap_err().to_string().contains("already enrolled"));
    // A hub presenting another key than the fingerprint given out of band is refused, and
    // nothing is saved.
    let other = tmp.path().join("other");
    let err = qiao_site::enroll(&qiao_site::EnrollOptions {
        hub: url.clone(),
        token: hub.issue_token(),
        name: "hospital-b".into(),
        data: other.clone(),
        hub_fingerprint: Some(Signer::generate().public_key().unwrap().fingerprint()),
        tls: insecure(),
    })
    .await
    .unwrap_err();
    assert!(format!("{err:#}").contains("fingerprint"), "{err:#}");
    assert!(!other.join("site.json").exists());
    // A plain-http hub without --insecure-http is refused before anything is sent.
    let err = qiao_site::enroll(&qiao_site::EnrollOptions {
        hub: url.clone(),
        token: hub.issue_token(),
        name: "hospital-c".into(),
        data: tmp.path().join("c"),
        hub_fingerprint: None,
        tls: qiao_site::TlsOptions::default(),
    })
    .await
    .unwrap_err();
    assert!(err.to_string().contains("--insecure-http"), "{err:#}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cohort_count_round_trip_matches_the_engine_and_obeys_disclosure_control() {
    let hub = FakeHub::new();
    let (url, _server) = start(hub.clone(), 0).await;
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("site");
    enroll_site(&hub, &url, &data, "hospital-a").await;
    let (stop, site) = spawn_site(&data, None);

    // The engine directly: the CohortGenerator reference values for celecoxib + age + male.
    let (entries, subjects, rules, final_persons) = engine_funnel(3);
    assert_eq!((entries, subjects, final_persons), (266, 266, 266));
    assert_eq!(
        rules,
        vec![
            ("Age > 40".to_owned(), 569, 628),
            ("Gender = MALE".to_owned(), 266, 303)
        ]
    );
    // The site's own pre-disclosure funnel is the engine's.
    let run = qiao_site::run_definition(store(), &definition(3)).unwrap();
    let truth = qiao_site::true_funnel(&run);
    assert_eq!(
        (truth.entries, truth.subjects, truth.final_persons),
        (entries, subjects, final_persons)
    );
    assert_eq!(truth.rules, rules);
    // The funnel's first line: every person with a qualifying event (Circe's base count).
    let initial = run.stats.modes[1].base_count;
    assert!(initial >= 569 + 628, "{initial}");

    // The legacy SHRINE obfuscation.
    set_policy(&data, |p| p.release = qiao_disclosure::ReleaseMode::Shrine);
    let j1 = job(QueryType::CohortCount, definition(3), "alice");
    hub.offer(Offer::Job(j1.clone()));
    let r1 = hub.wait_result(&j1.job_id, 60).await;
    assert_eq!(r1.site_id.as_str(), "hospital-a");
    let c1 = cohort(&r1);
    assert_obfuscated(&c1.entries, entries);
    assert_obfuscated(&c1.subjects, subjects);
    assert_obfuscated(&c1.final_persons, final_persons);
    assert_eq!(c1.rules.len(), 2);
    for (got, (name, remaining, gain)) in c1.rules.iter().zip(&rules) {
        assert_eq!(got.name.as_str(), name);
        assert_obfuscated(&got.persons, *remaining);
        assert_obfuscated(&got.gain, *gain);
    }
    assert_eq!(c1.disclosure.min_cell_count, 10);
    assert!(c1.disclosure.obfuscation.is_some());
    assert!(c1.disclosure.dp.is_none());
    // The same person sets give the same answers (no averaging).
    assert_eq!(c1.subjects, c1.final_persons);
    let j2 = job(QueryType::CohortCount, definition(3), "alice");
    hub.offer(Offer::Job(j2.clone()));
    let r2 = hub.wait_result(&j2.job_id, 60).await;
    assert_eq!(cohort(&r2), c1);

    // Obfuscation off: exact values, equal to the engine's.
    set_policy(&data, |p| p.release = qiao_disclosure::ReleaseMode::Exact);
    let j3 = job(QueryType::CohortCount, definition(3), "bob");
    hub.offer(Offer::Job(j3.clone()));
    let c3 = cohort(&hub.wait_result(&j3.job_id, 60).await).clone();
    assert_exact(&c3.entries, entries);
    assert_exact(&c3.subjects, subjects);
    assert_exact(c3.initial.as_ref().expect("the initial line"), initial);
    assert_exact(&c3.final_persons, final_persons);
    for (got, (_, remaining, gain)) in c3.rules.iter().zip(&rules) {
        assert_exact(&got.persons, *remaining);
        assert_exact(&got.gain, *gain);
    }
    assert!(c3.disclosure.obfuscation.is_none());

    // A minimum cell count above a count suppresses it.
    set_policy(&data, |p| p.min_cell_count = 300);
    let j4 = job(QueryType::CohortCount, definition(3), "carol");
    hub.offer(Offer::Job(j4.clone()));
    let c4 = cohort(&hub.wait_result(&j4.job_id, 60).await).clone();
    assert_eq!(
        c4.final_persons,
        Released::BelowThreshold { threshold: 300 }
    );
    assert_eq!(c4.rules[0].persons, Released::Exact { value: 569 });
    assert_eq!(c4.rules[0].gain, Released::Exact { value: 628 });
    assert_eq!(c4.rules[1].gain, Released::Exact { value: 303 });

    // Differential privacy (the default policy): every number within 4σ of the engine's, the
    // threshold on noisy values, ρ charged, the same question giving the same answer.
    set_policy(&data, |p| {
        p.release = qiao_disclosure::ReleaseMode::Dp;
        p.min_cell_count = 10;
    });
    let dp_run = |user: &'static str| {
        let j = job(QueryType::CohortCount, definition(3), user);
        hub.offer(Offer::Job(j.clone()));
        j
    };
    let j5 = dp_run("dave");
    let c5 = cohort(&hub.wait_result(&j5.job_id, 60).await).clone();
    let near = |r: &Released, truth: u64, sigma_want: f64| match r {
        Released::Dp {
            value: Some(v),
            sigma,
            threshold: 10,
        } => {
            assert!((*sigma - sigma_want).abs() < 0.01, "{r:?}");
            assert!(v.abs_diff(truth) as f64 <= 4.0 * sigma, "{v} vs {truth}");
        }
        other => panic!("expected a DP value near {truth}: {other:?}"),
    };
    near(&c5.subjects, subjects, 6.0);
    near(&c5.entries, entries, 60.0);
    near(&c5.final_persons, final_persons, 6.0);
    near(c5.initial.as_ref().expect("the initial line"), initial, 6.0);
    for (got, (_, remaining, gain)) in c5.rules.iter().zip(&rules) {
        near(&got.persons, *remaining, 6.0);
        near(&got.gain, *gain, 6.0);
    }
    let dp = c5.disclosure.dp.as_ref().expect("DP declared");
    // Entries, the initial line, two rule lines and the gains family: 5/72 (`subjects` is the
    // final line's release for this definition); what remains is the user's default 0.25.
    assert!((dp.rho_spent - 5.0 / 72.0).abs() < 1e-12);
    assert!((dp.remaining_rho - (0.25 - 5.0 / 72.0)).abs() < 1e-9);
    let j6 = dp_run("dave");
    let c6 = cohort(&hub.wait_result(&j6.job_id, 60).await).clone();
    assert_eq!(c6.rules, c5.rules);
    assert_eq!(c6.final_persons, c5.final_persons);
    assert!((c6.disclosure.dp.as_ref().unwrap().remaining_rho - (0.25 - 10.0 / 72.0)).abs() < 1e-9);

    // Everything is in the audit log, which verifies. The site audits `result.ack` after the
    // hub has stored the result: wait for the last one.
    let deadline = Instant::now() + Duration::from_secs(20);
    while audit_entries(&data)
        .iter()
        .filter(|e| e.action == "result.ack")
        .count()
        < 4
    {
        assert!(
            Instant::now() < deadline,
            "the site did not audit every ack"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let audit = audit_entries(&data);
    for j in [&j1, &j2, &j3, &j4] {
        let id = j.job_id.to_string();
        let of = |action: &str| {
            audit
                .iter()
                .filter(|e| e.action == action && e.job_id.as_deref() == Some(id.as_str()))
                .count()
        };
        assert_eq!(of("job.receive"), 1);
        assert_eq!(of("job.decide"), 1);
        assert_eq!(of("result.ack"), 1);
    }
    let receive = audit.iter().find(|e| e.action == "job.receive").unwrap();
    assert_eq!(receive.actor.to_string(), "user:alice");
    assert_eq!(receive.project.as_deref(), Some("celecoxib-feasibility"));
    let decide = audit.iter().find(|e| e.action == "job.decide").unwrap();
    assert!(decide.released.as_deref().unwrap().contains("obfuscated"));
    assert!(hub.state.lock().unwrap().duplicate_results.is_empty());
    let _ = stop.send(());
    site.await.unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demographics_breakdown_is_secondary_suppressed_and_exact_where_released() {
    let hub = FakeHub::new();
    let (url, _server) = start(hub.clone(), 0).await;
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("site");
    enroll_site(&hub, &url, &data, "hospital-a").await;
    set_policy(&data, |p| {
        p.demographics = Approval::Auto;
        p.release = qiao_disclosure::ReleaseMode::Exact;
    });
    let (stop, site) = spawn_site(&data, None);
    let query = QueryType::Demographics {
        age_band_years: 10,
        by_index_year: false,
    };
    let j = job(query, definition(2), "alice");
    hub.offer(Offer::Job(j.clone()));
    let r = hub.wait_result(&j.job_id, 60).await;
    let Payload::Demographics(d) = payload(&r) else {
        panic!("expected demographics")
    };
    // The truth, computed here from the store.
    let run = qiao_site::run_definition(store(), &definition(2)).unwrap();
    let persons = store().persons();
    let genders = persons.i32_column("gender_concept_id");
    let mut truth = std::collections::BTreeMap::<(Option<AgeBand>, Option<Gender>), u64>::new();
    let mut last = None;
    let mut total = 0u64;
    for row in &run.rows {
        if last == Some(row.subject_id) {
            continue;
        }
        last = Some(row.subject_id);
        let idx = persons.index_of(row.subject_id).unwrap();
        let age = qiao_cdm::date::year(row.start) - persons.year_of_birth(idx).unwrap();
        assert!(age > 40);
        let band = if age >= 90 {
            AgeBand {
                min_age: 90,
                max_age: None,
            }
        } else {
            let min = (age / 10 * 10) as u8;
            AgeBand {
                min_age: min,
                max_age: Some(min + 9),
            }
        };
        let gender = match genders[idx as usize] {
            8532 => Gender::Female,
            8507 => Gender::Male,
            _ => Gender::Other,
        };
        for key in [
            (Some(band), Some(gender)),
            (Some(band), None),
            (None, Some(gender)),
        ] {
            *truth.entry(key).or_default() += 1;
        }
        total += 1;
    }
    assert_eq!(total, 569);
    assert_eq!(d.total, Released::Exact { value: 569 });
    assert!(d.disclosure.secondary_suppression);
    // Ten bands (0-9 … 80-89, 90+) × 4 genders, 10 row totals, 4 column totals.
    assert_eq!(d.cells.len(), 10 * 4 + 10 + 4);
    let mut suppressed_small = 0;
    for c in &d.cells {
        assert_eq!(c.index_year, None);
        let t = truth.get(&(c.age_band, c.gender)).copied().unwrap_or(0);
        match c.count {
            Released::Exact { value } => {
                assert_eq!(value, t, "{c:?}");
                assert!(value >= 10);
            }
            Released::Suppressed { threshold, .. } => {
                assert_eq!(threshold, 10);
                if t < 10 {
                    suppressed_small += 1;
                }
            }
            ref other => panic!("unexpected {other:?}"),
        }
    }
    assert!(suppressed_small > 0);
    // No line of the table has exactly one suppressed entry (it would be computable).
    let bands: std::collections::BTreeSet<_> = d.cells.iter().filter_map(|c| c.age_band).collect();
    let is_supp = |b: Option<AgeBand>, g: Option<Gender>| {
        d.cells
            .iter()
            .find(|c| c.age_band == b && c.gender == g)
            .map(|c| matches!(c.count, Released::Suppressed { .. }))
            .unwrap()
    };
    let genders = [Gender::Female, Gender::Male, Gender::Other, Gender::Unknown];
    for b in &bands {
        let n = genders
            .iter()
            .filter(|g| is_supp(Some(*b), Some(**g)))
            .count()
            + usize::from(is_supp(Some(*b), None));
        assert_ne!(n, 1, "band {b:?}");
    }
    for g in genders {
        let n = bands.iter().filter(|b| is_supp(Some(**b), Some(g))).count()
            + usize::from(is_supp(None, Some(g)));
        assert_ne!(n, 1, "gender {g:?}");
    }
    let _ = stop.send(());
    site.await.unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn manual_approval_queue_and_deny_policy() {
    let hub = FakeHub::new();
    let (url, _server) = start(hub.clone(), 0).await;
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("site");
    enroll_site(&hub, &url, &data, "hospital-a").await;
    set_policy(&data, |p| {
        p.cohort_count = Approval::Manual;
        p.demographics = Approval::Deny;
    });
    let dir = SiteDir::open(&data).unwrap();
    Users::add(
        &dir,
        "steward1",
        LocalRole::Steward,
        "correct horse battery",
        0,
    )
    .unwrap();
    let (stop, site) = spawn_site(&data, None);

    // Denied by policy: refused at once, never run.
    let jd = job(
        QueryType::Demographics {
            age_band_years: 5,
            by_index_year: true,
        },
        definition(1),
        "alice",
    );
    hub.offer(Offer::Job(jd.clone()));
    let rd = hub.wait_result(&jd.job_id, 60).await;
    assert_eq!(
        rd.outcome,
        Outcome::Refused {
            reason: RefusalReason::QueryTypeDenied
        }
    );

    // Manual: queued, nothing sent until the steward decides.
    let ja = job(QueryType::CohortCount, definition(2), "alice");
    let jb = job(QueryType::CohortCount, definition(1), "alice");
    hub.offer(Offer::Job(ja.clone()));
    hub.offer(Offer::Job(jb.clone()));
    let approvals = Approvals::new(&dir);
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while approvals.list().unwrap().len() < 2 {
        assert!(std::time::Instant::now() < deadline, "jobs not queued");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(hub.result(&ja.job_id).is_none());
    assert!(hub.result(&jb.job_id).is_none());
    let listed = approvals.list().unwrap();
    assert!(listed.iter().all(|i| i.state == ApprovalState::Pending));

    // The steward's CLI: a wrong password decides nothing.
    let bin = env!("CARGO_BIN_EXE_qiao-site");
    let cli = |args: &[&str], password: &str| {
        std::process::Command::new(bin)
            .args(args)
            .env("QIAO_SITE_PASSWORD", password)
            .output()
            .unwrap()
    };
    let d = data.to_str().unwrap();
    let a_id = ja.job_id.to_string();
    let b_id = jb.job_id.to_string();
    let out = cli(
        &[
            "approvals",
            "approve",
            "--data",
            d,
            "--user",
            "steward1",
            &a_id,
        ],
        "wrong password!",
    );
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("authentication failed"));
    let out = cli(
        &["approvals", "list", "--data", d, "--user", "steward1"],
        "correct horse battery",
    );
    assert!(out.status.success());
    let listing = String::from_utf8_lossy(&out.stdout);
    assert!(
        listing.contains(&a_id) && listing.contains(&b_id),
        "{listing}"
    );
    assert!(listing.contains("pending"));

    let out = cli(
        &[
            "approvals",
            "approve",
            "--data",
            d,
            "--user",
            "steward1",
            &a_id,
        ],
        "correct horse battery",
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = cli(
        &[
            "approvals",
            "deny",
            "--data",
            d,
            "--user",
            "steward1",
            "--reason",
            "outside the project's scope",
            &b_id,
        ],
        "correct horse battery",
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let ra = hub.wait_result(&ja.job_id, 60).await;
    let ca = cohort(&ra);
    // New sites release under the default DP policy.
    assert!(matches!(ca.final_persons, Released::Dp { .. }));
    let rb = hub.wait_result(&jb.job_id, 60).await;
    assert_eq!(
        rb.outcome,
        Outcome::Refused {
            reason: RefusalReason::RejectedBySteward
        }
    );
    // The steward's reason stays at the site.
    assert!(!String::from_utf8_lossy(&hub.traffic()).contains("outside the project"));
    // The serve loop clears a decided entry after it has sent the result; under load that may
    // trail the hub receiving it by a moment.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while !approvals.list().unwrap().is_empty() && std::time::Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(approvals.list().unwrap().is_empty());

    let audit = audit_entries(&data);
    let approve = audit.iter().find(|e| e.action == "job.approve").unwrap();
    assert_eq!(approve.actor.to_string(), "user:steward1");
    let decided_a = audit
        .iter()
        .find(|e| e.action == "job.decide" && e.job_id.as_deref() == Some(a_id.as_str()))
        .unwrap();
    assert_eq!(decided_a.actor.to_string(), "user:steward1");
    let decided_b = audit
        .iter()
        .find(|e| e.action == "job.decide" && e.job_id.as_deref() == Some(b_id.as_str()))
        .unwrap();
    assert!(decided_b
        .decision
        .as_deref()
        .unwrap()
        .starts_with("refused:rejected_by_steward"));
    assert!(audit.iter().any(|e| e.action == "approvals.deny_access"));
    let _ = stop.send(());
    site.await.unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_tampered_replayed_expired_and_misaddressed_jobs_are_not_executed() {
    let hub = FakeHub::new();
    let (url, _server) = start(hub.clone(), 0).await;
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("site");
    enroll_site(&hub, &url, &data, "hospital-a").await;
    let site_id = hub.site();
    let (stop, site) = spawn_site(&data, None);

    let forged_job = job(QueryType::CohortCount, definition(1), "mallory");
    let forged = Signer::generate()
        .seal_job(&forged_job, &site_id, now())
        .unwrap();
    let tampered_job = job(QueryType::CohortCount, definition(1), "mallory");
    let mut tampered = hub.signer.seal_job(&tampered_job, &site_id, now()).unwrap();
    tampered.body = tampered.body.replace("mallory", "mallorz");
    let other_job = job(QueryType::CohortCount, definition(1), "mallory");
    let misaddressed = hub
        .signer
        .seal_job(&other_job, &SiteId::new("hospital-b").unwrap(), now())
        .unwrap();
    let old_job = job(QueryType::CohortCount, definition(1), "mallory");
    let expired = hub
        .signer
        .seal_job(&old_job, &site_id, now() - 3600)
        .unwrap();
    // A result_ack where a job is expected, signed by the hub.
    let ack_job = JobId::random();
    let wrong_kind = hub
        .signer
        .seal_result_ack(ack_job, &site_id, now())
        .unwrap();
    // A valid envelope delivered twice: the second is a replay.
    let replayed_job = job(QueryType::CohortCount, definition(1), "alice");
    let original = hub.signer.seal_job(&replayed_job, &site_id, now()).unwrap();
    // Same job again under a fresh nonce is NOT a replay (the hub re-offers pending jobs), but
    // the journal makes sure it is not recomputed.
    let again = hub
        .signer
        .seal(
            MessageKind::Job,
            Some(replayed_job.job_id),
            site_id.clone(),
            original.body.clone(),
            Nonce::random(),
            now(),
        )
        .unwrap();
    for env in [
        forged,
        tampered,
        misaddressed,
        expired,
        wrong_kind,
        original.clone(),
        original,
        again,
    ] {
        hub.offer(Offer::Raw(env));
    }
    let sync = job(QueryType::CohortCount, definition(1), "alice");
    hub.offer(Offer::Job(sync.clone()));
    hub.wait_result(&sync.job_id, 60).await;

    let dir = SiteDir::open(&data).unwrap();
    let journal = Journal::new(&dir);
    for j in [&forged_job, &tampered_job, &other_job, &old_job] {
        assert!(journal.get(&j.job_id).unwrap().is_none(), "executed {j:?}");
        assert!(hub.result(&j.job_id).is_none());
    }
    assert!(journal.get(&replayed_job.job_id).unwrap().is_some());
    let audit = audit_entries(&data);
    let rejects: Vec<String> = audit
        .iter()
        .filter(|e| e.action == "envelope.reject")
        .map(|e| e.decision.clone().unwrap_or_default())
        .collect();
    assert_eq!(rejects.len(), 5, "{rejects:#?}");
    // A message whose signature did not verify is not attributed to the hub.
    assert!(audit
        .iter()
        .filter(|e| e.action == "envelope.reject")
        .all(|e| e.actor == qiao_audit::Actor::Unverified));
    for needle in [
        "unknown signer",
        "bad signature",
        "addressed to site hospital-b",
        "expired",
        "replay",
    ] {
        assert!(
            rejects.iter().any(|r| r.contains(needle)),
            "no rejection for {needle}: {rejects:#?}"
        );
    }
    let id = replayed_job.job_id.to_string();
    let decided = audit
        .iter()
        .filter(|e| e.action == "job.decide" && e.job_id.as_deref() == Some(id.as_str()))
        .count();
    assert_eq!(decided, 1, "the replayed job was computed more than once");
    let _ = stop.send(());
    site.await.unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hub_down_then_up_the_site_finishes_the_job() {
    let hub = FakeHub::new();
    let (url, server) = start(hub.clone(), 0).await;
    let port: u16 = url.rsplit(':').next().unwrap().parse().unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("site");
    enroll_site(&hub, &url, &data, "hospital-a").await;
    // The hub goes down.
    server.abort();
    let _ = server.await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let j = job(QueryType::CohortCount, definition(3), "alice");
    hub.offer(Offer::Job(j.clone()));
    let (stop, site) = spawn_site(&data, None);
    // The site keeps trying while the hub is down.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(!site.is_finished());
    assert_eq!(hub.state.lock().unwrap().polls, 0);
    // The hub comes back on the same port.
    let (_url, _server) = start(hub.clone(), port).await;
    let r = hub.wait_result(&j.job_id, 60).await;
    assert_eq!(cohort(&r).rules.len(), 2);
    let _ = stop.send(());
    site.await.unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prescreen_list_is_local_only_and_never_in_hub_traffic() {
    let hub = FakeHub::new();
    let (url, _server) = start(hub.clone(), 0).await;
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("site");
    enroll_site(&hub, &url, &data, "hospital-a").await;
    set_policy(&data, |p| {
        p.demographics = Approval::Auto;
        p.release = qiao_disclosure::ReleaseMode::Exact;
    });
    let dir = SiteDir::open(&data).unwrap();
    Users::add(
        &dir,
        "dr.li",
        LocalRole::Investigator,
        "investigator pw 1",
        0,
    )
    .unwrap();
    Users::add(&dir, "steward1", LocalRole::Steward, "steward pw 1234", 0).unwrap();
    let project = "celecoxib-feasibility";
    qiao_site::projects::Projects::accept(&dir, project, "steward1", 0).unwrap();
    qiao_site::projects::Projects::assign(&dir, project, "dr.li", "steward1").unwrap();
    let (stop, site) = spawn_site(&data, None);

    // Every hub-bound kind of message, for the same cohort.
    let jobs = [
        job(QueryType::CohortCount, definition(3), "alice"),
        job(
            QueryType::Demographics {
                age_band_years: 5,
                by_index_year: true,
            },
            definition(3),
            "alice",
        ),
        job(
            QueryType::Demographics {
                age_band_years: 10,
                by_index_year: false,
            },
            definition(3),
            "alice",
        ),
    ];
    for j in &jobs {
        hub.offer(Offer::Job(j.clone()));
    }
    for j in &jobs {
        let r = hub.wait_result(&j.job_id, 60).await;
        assert!(matches!(r.outcome, Outcome::Done { .. }), "{r:?}");
    }

    // The investigator's list, locally.
    let def = definition(3).to_string();
    let rows = qiao_site::prescreen::prescreen(
        &dir,
        store(),
        "dr.li",
        "investigator pw 1",
        project,
        &def,
        "3.json",
    )
    .unwrap();
    let run = qiao_site::run_definition(store(), &definition(3)).unwrap();
    assert_eq!(rows, run.rows);
    assert_eq!(rows.len(), 266);
    let ids: std::collections::BTreeSet<i64> = rows.iter().map(|r| r.subject_id).collect();
    assert_eq!(ids.len(), 266);
    assert!(ids.iter().all(|&id| id > ID_OFFSET));
    // Only investigators, only with the right password.
    assert!(qiao_site::prescreen::prescreen(
        &dir,
        store(),
        "steward1",
        "steward pw 1234",
        project,
        &def,
        "3.json"
    )
    .is_err());
    assert!(qiao_site::prescreen::prescreen(
        &dir,
        store(),
        "dr.li",
        "wrong password",
        project,
        &def,
        "3.json"
    )
    .is_err());
    assert!(qiao_site::prescreen::prescreen(
        &dir,
        store(),
        "nobody",
        "whatever pw",
        project,
        &def,
        "3.json"
    )
    .is_err());
    // The same through the CLI.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_qiao-site"))
        .args([
            "prescreen",
            "--data",
            data.to_str().unwrap(),
            "--store",
            store_path().to_str().unwrap(),
            "--user",
            "dr.li",
            "--project",
            project,
            definition_path(3).to_str().unwrap(),
        ])
        .env("QIAO_SITE_PASSWORD", "investigator pw 1")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let listing = String::from_utf8_lossy(&out.stdout);
    assert_eq!(listing.lines().count(), 1 + 266);
    let first = &rows[0];
    assert!(listing.contains(&format!(
        "{},{},{}",
        first.subject_id,
        qiao_cdm::date::format(first.start),
        qiao_cdm::date::format(first.end)
    )));

    // Every byte the hub received: no person id of the cohort (or of the store) anywhere.
    let traffic = hub.traffic();
    assert!(traffic.len() > 1000);
    let text = String::from_utf8_lossy(&traffic);
    let all_ids: std::collections::HashSet<i64> = store().persons().ids().iter().copied().collect();
    let mut numbers = 0;
    for token in text.split(|c: char| !c.is_ascii_digit()) {
        if token.is_empty() {
            continue;
        }
        numbers += 1;
        if let Ok(v) = token.parse::<i64>() {
            assert!(!ids.contains(&v), "person id {v} sent to the hub");
            assert!(!all_ids.contains(&v), "person id {v} sent to the hub");
        }
        // Nor any id's distinctive digits inside a longer run.
        assert!(
            !(token.len() >= 13 && token.contains("9000000000")),
            "id-like number {token} sent to the hub"
        );
    }
    assert!(numbers > 100);
    for id in &ids {
        assert!(!text.contains(&id.to_string()));
    }

    // Audited, without the ids.
    let audit = audit_entries(&data);
    let listed: Vec<_> = audit
        .iter()
        .filter(|e| e.action == "prescreen.list")
        .collect();
    assert_eq!(listed.len(), 2);
    assert_eq!(listed[0].actor.to_string(), "user:dr.li");
    assert_eq!(
        audit
            .iter()
            .filter(|e| e.action == "prescreen.deny")
            .count(),
        3
    );
    let log = std::fs::read_to_string(dir.audit_path()).unwrap();
    for id in &ids {
        assert!(!log.contains(&id.to_string()));
    }
    let _ = stop.send(());
    site.await.unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn definitions_over_the_limits_are_refused_and_small_jobs_still_run() {
    let hub = FakeHub::new();
    let (url, _server) = start(hub.clone(), 0).await;
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("site");
    enroll_site(&hub, &url, &data, "hospital-a").await;
    let mut heavy_def = definition(3);
    let criteria: Vec<_> = (0..300)
        .map(|_| serde_json::json!({"ConditionOccurrence": {"CodesetId": 0}}))
        .collect();
    heavy_def["AdditionalCriteria"] = serde_json::json!({"Type": "ANY", "CriteriaList": criteria});
    let heavy = job(QueryType::CohortCount, heavy_def, "mallory");
    let small = job(QueryType::CohortCount, definition(3), "alice");
    hub.offer(Offer::Job(heavy.clone()));
    hub.offer(Offer::Job(small.clone()));
    let (stop, site) = spawn_site(&data, None);
    let r = hub.wait_result(&heavy.job_id, 60).await;
    assert_eq!(
        r.outcome,
        Outcome::Refused {
            reason: qiao_protocol::RefusalReason::DefinitionTooComplex
        }
    );
    let r = hub.wait_result(&small.job_id, 60).await;
    assert_eq!(cohort(&r).rules.len(), 2);
    let audit = audit_entries(&data);
    let decided = audit
        .iter()
        .find(|e| {
            e.action == "job.decide"
                && e.job_id.as_deref() == Some(heavy.job_id.to_string().as_str())
        })
        .expect("audited");
    assert!(
        decided
            .decision
            .as_deref()
            .unwrap()
            .contains("303 criteria; this site accepts at most 200"),
        "{decided:?}"
    );
    let _ = stop.send(());
    site.await.unwrap().unwrap();
}

/// SHRINE's repeated-result lockout applies to analyses as to counts: under the `shrine`
/// release, the same target cohort analysed more than `max_same_result` times locks the user
/// out (a characterization and an incidence of one target are "the same result", as two counts
/// of it are), and nothing more is released to them.
#[test]
fn repeated_analyses_of_one_cohort_lock_the_user_out_under_shrine() {
    let mut policy = qiao_disclosure::Policy {
        release: qiao_disclosure::ReleaseMode::Shrine,
        ..Default::default()
    };
    policy.lockout.max_same_result = 2;
    policy.rate_limit.max_queries = 1000;
    let secret = qiao_disclosure::SiteSecret::from_bytes(&[7u8; 32]).unwrap();
    let discloser = qiao_disclosure::Discloser::new(policy, secret).unwrap();
    let mut ledger = qiao_disclosure::QueryLedger::new();
    let site_id = qiao_protocol::SiteId::new("hospital-a").unwrap();
    let characterize =
        qiao_protocol::QueryType::Characterization(qiao_protocol::CharacterizationSpec {
            comparator: None,
            analyses: vec![1],
            covariate_ids: Vec::new(),
        });
    let incidence = qiao_protocol::QueryType::Incidence(qiao_protocol::IncidenceSpec {
        outcome: definition(2),
        tars: vec![qiao_protocol::TimeAtRisk::cohort_period()],
        clean_window: 0,
        strata: Default::default(),
        age_breaks: Vec::new(),
        max_tar_days: 365,
        max_outcomes_per_tar: 1,
    });
    let mut outcomes = Vec::new();
    for query in [characterize.clone(), incidence, characterize] {
        let j = job(query, definition(1), "alice");
        let mut cx = context(&site_id, &discloser, &mut ledger);
        outcomes.push(qiao_site::execute(&j, &mut cx).result.outcome);
    }
    assert!(
        matches!(outcomes[0], Outcome::Done { .. }),
        "{:?}",
        outcomes[0]
    );
    assert!(
        matches!(outcomes[1], Outcome::Done { .. }),
        "{:?}",
        outcomes[1]
    );
    assert_eq!(
        outcomes[2],
        Outcome::Refused {
            reason: qiao_protocol::RefusalReason::LockedOut
        }
    );
}
