//! The alliance domain over a real hub store: institutions, experts, the project pipeline with
//! its role checks, reviews without conflicts of interest, feasibility, site selection,
//! enrollment reports, the phenotype library; refusals leave nothing behind.

mod common;

use std::collections::BTreeMap;

use common::{alliance, app, u, World, T};
use qiao_hub::protocol::{ProjectId, SiteId, UserId, UserRole};
use qiao_portal::alliance::*;

fn audit_len(w: &World) -> usize {
    w.store.audit_entries(0, 100_000).unwrap().len()
}

fn field_of(r: &Refusal) -> &'static str {
    match r {
        Refusal::Field { field, .. } => field,
        _ => "",
    }
}

#[test]
fn institutions_apply_and_are_decided_by_admins_only() {
    let w = World::new();
    w.user("admin", UserRole::AllianceAdmin, None, None);
    w.user("aud", UserRole::Auditor, None, None);
    let before = audit_len(&w);
    let mut bad = app("Bad Id!", "castle", "");
    bad.contact = "not-an-email".into();
    bad.name = String::new();
    let errs = apply(w.store.as_ref(), &bad, None, T).unwrap_err();
    let fields: Vec<&str> = errs.iter().map(field_of).collect();
    assert_eq!(fields, vec!["id", "name", "kind", "contact"]);
    assert!(
        institutions(w.store.as_ref()).unwrap().is_empty(),
        "nothing saved"
    );
    assert_eq!(audit_len(&w), before);
    // An unknown site is refused inside the transaction: nothing saved either.
    let errs = apply(w.store.as_ref(), &app("h9", "hospital", "nosite"), None, T).unwrap_err();
    assert_eq!(field_of(&errs[0]), "site");
    assert!(institutions(w.store.as_ref()).unwrap().is_empty());
    let i = apply(w.store.as_ref(), &app("ruijin", "hospital", ""), None, T).unwrap();
    assert_eq!(i.status, MemberStatus::Applied);
    assert_eq!(
        field_of(&apply(w.store.as_ref(), &app("ruijin", "hospital", ""), None, T).unwrap_err()[0]),
        "id"
    );
    assert_eq!(
        decide_institution(w.store.as_ref(), "ruijin", true, "", &u(&w, "aud"), T),
        Err(Refusal::Forbidden)
    );
    // Rejecting needs a reason.
    let e =
        decide_institution(w.store.as_ref(), "ruijin", false, " ", &u(&w, "admin"), T).unwrap_err();
    assert_eq!(field_of(&e), "reason");
    let i = decide_institution(
        w.store.as_ref(),
        "ruijin",
        false,
        "No ethics committee",
        &u(&w, "admin"),
        T + 5,
    )
    .unwrap();
    assert_eq!(
        (i.status, i.reason.as_deref(), i.decided_at),
        (
            MemberStatus::Rejected,
            Some("No ethics committee"),
            Some(T + 5)
        )
    );
    assert_eq!(
        decide_institution(w.store.as_ref(), "ruijin", true, "", &u(&w, "admin"), T),
        Err(Refusal::State("state.err_decided"))
    );
    let audit = w.store.audit_entries(0, 1000).unwrap();
    let actions: Vec<&str> = audit.iter().map(|e| e.action.as_str()).collect();
    assert!(
        actions.ends_with(&["institution.apply", "institution.decide"]),
        "{actions:?}"
    );
}

#[test]
fn experts_need_a_committee_account_a_member_institution_and_valid_terms() {
    let w = World::new();
    alliance(&w);
    let admin = u(&w, "admin");
    let mut f = ExpertForm {
        user: "spon".into(),
        name: "X".into(),
        institution: "nope".into(),
        fields: "".into(),
        start: "2026-02-30".into(),
        end: "2025-01-01".into(),
        letter: "L1".into(),
    };
    let errs = appoint_expert(w.store.as_ref(), &f, &admin, T).unwrap_err();
    assert_eq!(
        errs.iter().map(field_of).collect::<Vec<_>>(),
        vec!["fields", "start"]
    );
    f.fields = "oncology".into();
    f.start = "2026-01-01".into();
    assert_eq!(
        field_of(&appoint_expert(w.store.as_ref(), &f, &admin, T).unwrap_err()[0]),
        "end"
    );
    f.end = "2027-01-01".into();
    assert_eq!(
        field_of(&appoint_expert(w.store.as_ref(), &f, &admin, T).unwrap_err()[0]),
        "user"
    );
    // A second term for c2, overlapping the first: refused; after it: kept.
    let mut t2 = ExpertForm {
        user: "c2".into(),
        name: "Dr c2".into(),
        institution: "h1".into(),
        fields: "cardiology".into(),
        start: "2028-06-01".into(),
        end: "2030-05-31".into(),
        letter: "QA-2028-c2".into(),
    };
    assert_eq!(
        field_of(&appoint_expert(w.store.as_ref(), &t2, &admin, T).unwrap_err()[0]),
        "start"
    );
    t2.start = "2029-01-01".into();
    let e = appoint_expert(w.store.as_ref(), &t2, &admin, T).unwrap();
    assert_eq!(e.appointments.len(), 2);
    assert!(e.active(T));
    assert!(!e.active(qiao_web::i18n::parse_ymd("2031-01-01").unwrap()));
}

#[test]
fn the_pipeline_from_draft_to_completed_with_role_checks_and_audit() {
    let w = World::new();
    alliance(&w);
    let s = w.store.as_ref();
    let (admin, spon, c1, c2, c3, stew1, stew2, inv1) = (
        u(&w, "admin"),
        u(&w, "spon"),
        u(&w, "c1"),
        u(&w, "c2"),
        u(&w, "c3"),
        u(&w, "stew1"),
        u(&w, "stew2"),
        u(&w, "inv1"),
    );
    let pf = ProjectForm {
        id: "afib-2027".into(),
        title: "AF registry".into(),
        summary: "Atrial fibrillation outcomes.".into(),
        target: "120".into(),
    };
    // Only sponsors create projects; bad fields are named.
    assert_eq!(
        create_project(s, &pf, &admin, T).unwrap_err(),
        vec![Refusal::Forbidden]
    );
    let bad = ProjectForm {
        id: "A B".into(),
        title: "".into(),
        summary: "x".into(),
        target: "0".into(),
    };
    assert_eq!(
        create_project(s, &bad, &spon, T)
            .unwrap_err()
            .iter()
            .map(field_of)
            .collect::<Vec<_>>(),
        vec!["id", "title", "target"]
    );
    let f = create_project(s, &pf, &spon, T).unwrap();
    assert_eq!(
        (f.stage, f.institution.as_str(), f.target),
        (Stage::Draft, "pharma", 120)
    );
    let id: ProjectId = "afib-2027".parse().unwrap();
    let hub_project = |w: &World| w.store.project(&id).unwrap().unwrap();
    assert!(!hub_project(&w).approved);
    // Transitions: wrong role, no comment, skipping stages.
    assert_eq!(
        transition(s, &id, Stage::Submitted, "go", &admin, T),
        Err(Refusal::Forbidden)
    );
    assert_eq!(
        field_of(&transition(s, &id, Stage::Submitted, "  ", &spon, T).unwrap_err()),
        "comment"
    );
    assert_eq!(
        transition(s, &id, Stage::Approved, "skip", &spon, T),
        Err(Refusal::State("state.err_transition"))
    );
    transition(s, &id, Stage::Submitted, "Ready for review", &spon, T + 1).unwrap();
    // Reviewer assignment: c1 is from the proposing institution; the sponsor is no expert.
    let ids = |v: &[&str]| {
        v.iter()
            .map(|x| UserId::new((*x).to_owned()).unwrap())
            .collect::<Vec<_>>()
    };
    let before = audit_len(&w);
    match assign_reviewers(s, &id, &ids(&["c2", "c1"]), "assign", &admin, T) {
        Err(Refusal::Field {
            field: "reviewers",
            key: "form.err_conflict",
            args,
        }) => assert_eq!(args, vec![("user", "c1".to_owned())]),
        other => panic!("{other:?}"),
    }
    assert_eq!(audit_len(&w), before, "a refused assignment writes nothing");
    assert_eq!(
        project_file(s, "afib-2027").unwrap().unwrap().stage,
        Stage::Submitted
    );
    assert!(matches!(
        assign_reviewers(s, &id, &ids(&["spon"]), "assign", &admin, T),
        Err(Refusal::Field {
            key: "form.err_not_expert",
            ..
        })
    ));
    assert_eq!(
        assign_reviewers(s, &id, &ids(&["c2"]), "assign", &c2, T),
        Err(Refusal::Forbidden)
    );
    let f = assign_reviewers(
        s,
        &id,
        &ids(&["c3", "c2"]),
        "Two hospital experts",
        &admin,
        T + 2,
    )
    .unwrap();
    assert_eq!(
        (f.stage, f.reviewers.clone()),
        (Stage::UnderReview, ids(&["c2", "c3"]))
    );
    // Reviews: scores within the criteria, only by assigned reviewers; decision after all.
    let scores = |v: &[(&str, &str)]| {
        v.iter()
            .map(|(k, x)| ((*k).to_owned(), (*x).to_owned()))
            .collect::<BTreeMap<_, _>>()
    };
    let good = scores(&[("merit", "5"), ("feasibility", "4"), ("ethics", "4")]);
    let errs = submit_review(
        s,
        &id,
        &scores(&[("merit", "6"), ("feasibility", "x")]),
        "maybe",
        "",
        &c2,
        T,
    )
    .unwrap_err();
    assert_eq!(
        errs.iter().map(field_of).collect::<Vec<_>>(),
        vec!["scores", "scores", "scores", "recommend", "comment"]
    );
    assert_eq!(
        submit_review(s, &id, &good, "approve", "Sound.", &c1, T).unwrap_err(),
        vec![Refusal::Forbidden]
    );
    submit_review(s, &id, &good, "approve", "Sound design.", &c2, T + 3).unwrap();
    assert_eq!(
        decide_project(s, &id, true, "Approved", &c2, T),
        Err(Refusal::State("state.err_reviews_missing"))
    );
    submit_review(s, &id, &good, "approve", "Feasible.", &c3, T + 4).unwrap();
    assert_eq!(
        decide_project(s, &id, true, "Approved", &spon, T),
        Err(Refusal::Forbidden)
    );
    let f = decide_project(s, &id, true, "Approved by the committee", &c3, T + 5).unwrap();
    assert_eq!(f.stage, Stage::Approved);
    assert!(
        hub_project(&w).approved,
        "queries may run under an approved project"
    );
    // Feasibility: pasted JSON validated with its JSON path; library definitions.
    transition(s, &id, Stage::Feasibility, "Feasibility", &spon, T + 6).unwrap();
    let errs = attach_cohort(
        s,
        &id,
        "AF",
        r#"{"PrimaryCriteria": {"CriteriaList": [{"ConditionOccurrence": {"CodesetId": "x"}}]}}"#,
        "",
        &spon,
        T,
    )
    .unwrap_err();
    match &errs[0] {
        Refusal::Field {
            field: "definition",
            key: "form.err_def_type",
            args,
        } => {
            assert_eq!(
                args[..3],
                [
                    (
                        "path",
                        "PrimaryCriteria.CriteriaList[0].ConditionOccurrence.CodesetId".to_owned()
                    ),
                    ("line", "1".to_owned()),
                    ("column", "79".to_owned())
                ],
                "{args:?}"
            );
            assert!(args[3].1.starts_with("invalid type: string"), "{args:?}");
        }
        other => panic!("{other:?}"),
    }
    let report = import_library(
        s,
        std::path::Path::new("../../../shared/data/phenotypes-dev"),
        T,
    )
    .unwrap();
    assert_eq!(
        report.imported + report.refused.len(),
        110,
        "{:?}",
        report.refused
    );
    assert!(report.imported >= 100, "{:?}", report.refused);
    let hits = search_library(s, "1003").unwrap();
    assert_eq!(hits.len(), 1);
    assert_eq!(hits[0].id, "1003");
    let c = attach_cohort(s, &id, "", "", "1003", &spon, T + 7).unwrap();
    assert_eq!(
        (c.n, c.source.clone()),
        (1, CohortSource::Library { id: "1003".into() })
    );
    assert!(cohort_definition(s, &id, 1)
        .unwrap()
        .unwrap()
        .get("PrimaryCriteria")
        .is_some());
    // No enrolled site: the run is refused and nothing is stored.
    assert_eq!(
        run_feasibility(s, &id, 1, &spon, &Default::default(), T),
        Err(Refusal::State("state.err_no_sites"))
    );
    assert!(w.store.jobs().unwrap().is_empty());
    // Site selection: invite both; one accepts, one declines (with a reason).
    transition(s, &id, Stage::SiteSelection, "Select sites", &spon, T + 8).unwrap();
    let sites: Vec<SiteId> = vec!["h1".parse().unwrap(), "h2".parse().unwrap()];
    invite_sites(s, &id, &sites, &spon, T + 9).unwrap();
    assert_eq!(
        transition(s, &id, Stage::Running, "start", &spon, T),
        Err(Refusal::State("state.err_no_accepted_site"))
    );
    assert_eq!(
        answer_invite(s, &id, true, "", &inv1, T),
        Err(Refusal::Forbidden)
    );
    assert_eq!(
        field_of(&answer_invite(s, &id, false, "", &stew2, T).unwrap_err()),
        "reason"
    );
    answer_invite(s, &id, false, "No cardiology ward", &stew2, T + 10).unwrap();
    let f = answer_invite(s, &id, true, "", &stew1, T + 11).unwrap();
    let st: Vec<_> = f
        .invites
        .iter()
        .map(|i| (i.site.to_string(), i.status))
        .collect();
    assert_eq!(
        st,
        vec![
            ("h1".into(), InviteStatus::Accepted),
            ("h2".into(), InviteStatus::Declined)
        ]
    );
    assert!(
        hub_project(&w).members.contains(&inv1.id),
        "the accepted site's investigator joins the project"
    );
    // Running: monthly reports from the accepted site only, validated.
    transition(s, &id, Stage::Running, "Enrollment opens", &admin, T + 12).unwrap();
    assert_eq!(
        report_enrollment(s, &id, "2026-10", "10", "4", &stew2, T).unwrap_err(),
        vec![Refusal::Forbidden]
    );
    let errs = report_enrollment(s, &id, "2026-13", "3", "4", &inv1, T).unwrap_err();
    assert_eq!(
        errs.iter().map(field_of).collect::<Vec<_>>(),
        vec!["month", "enrolled"]
    );
    assert_eq!(
        field_of(&report_enrollment(s, &id, "2027-01", "3", "1", &inv1, T).unwrap_err()[0]),
        "month",
        "future months are refused"
    );
    report_enrollment(s, &id, "2026-10", "10", "4", &inv1, T + 13).unwrap();
    report_enrollment(s, &id, "2026-11", "12", "6", &stew1, T + 14).unwrap();
    let f = report_enrollment(s, &id, "2026-10", "11", "5", &inv1, T + 15).unwrap();
    assert_eq!(
        (f.reports.len(), enrolled(&recruitment_lines(&f, None))),
        (2, 11)
    );
    let f = transition(s, &id, Stage::Completed, "Target reached", &spon, T + 16).unwrap();
    assert!(
        !hub_project(&w).approved,
        "no queries under a completed project"
    );
    assert_eq!(
        transition(s, &id, Stage::Withdrawn, "late", &spon, T),
        Err(Refusal::State("state.err_transition"))
    );
    let path: Vec<Stage> = f.history.iter().map(|t| t.to).collect();
    assert_eq!(
        path,
        vec![
            Stage::Submitted,
            Stage::UnderReview,
            Stage::Approved,
            Stage::Feasibility,
            Stage::SiteSelection,
            Stage::Running,
            Stage::Completed
        ]
    );
    let audit = w.store.audit_entries(0, 100_000).unwrap();
    let moves: Vec<String> = audit
        .iter()
        .filter(|e| e.action == "project.transition")
        .filter_map(|e| e.decision.clone())
        .collect();
    assert_eq!(moves.len(), 7);
    assert_eq!(moves[2], "under_review -> approved");
    assert!(
        w.store.verify_audit().unwrap().1.is_ok(),
        "the chain verifies"
    );
}

#[test]
fn withdrawal_by_sponsor_or_admin_from_any_open_stage() {
    for stage_steps in [0, 1] {
        let w = World::new();
        alliance(&w);
        let s = w.store.as_ref();
        let spon = u(&w, "spon");
        let pf = ProjectForm {
            id: "p1".into(),
            title: "T".into(),
            summary: "S".into(),
            target: "5".into(),
        };
        create_project(s, &pf, &spon, T).unwrap();
        let id: ProjectId = "p1".parse().unwrap();
        if stage_steps == 1 {
            transition(s, &id, Stage::Submitted, "go", &spon, T).unwrap();
        }
        assert_eq!(
            transition(s, &id, Stage::Withdrawn, "stop", &u(&w, "c2"), T),
            Err(Refusal::Forbidden)
        );
        let by = if stage_steps == 0 {
            spon.clone()
        } else {
            u(&w, "admin")
        };
        assert_eq!(
            transition(s, &id, Stage::Withdrawn, "stop", &by, T)
                .unwrap()
                .stage,
            Stage::Withdrawn
        );
    }
}

/// Names and descriptions come from a `Cohorts.csv` beside the definitions, read as CSV:
/// quoted headers, commas and doubled quotes inside quotes, a line break inside a quoted
/// description, CRLF line ends, and a row with fewer cells than the header.
#[test]
fn library_names_come_from_cohorts_csv() {
    let w = World::new();
    let s = w.store.as_ref();
    let dir = tempfile::tempdir().unwrap();
    let src = std::path::Path::new("../../../shared/data/phenotypes-dev/cohorts");
    for id in ["1003", "1013", "1023"] {
        std::fs::copy(
            src.join(format!("{id}.json")),
            dir.path().join(format!("{id}.json")),
        )
        .unwrap();
    }
    std::fs::write(
        dir.path().join("Cohorts.csv"),
        "\"cohortId\",\"cohortName\",description\r\n\
         1003,\"Bleeding, first \"\"GI\"\" event\",\"Two lines:\nthe second\"\r\n\
         1013,Plain name,\r\n\
         1023,Short row\r\n",
    )
    .unwrap();
    let report = import_library(s, dir.path(), T).unwrap();
    assert_eq!((report.imported, report.refused.len()), (3, 0));
    let e = library_entry(s, "1003").unwrap().unwrap();
    assert_eq!(e.name, "Bleeding, first \"GI\" event");
    assert_eq!(e.description, "Two lines:\nthe second");
    let e = library_entry(s, "1013").unwrap().unwrap();
    assert_eq!(
        (e.name.as_str(), e.description.as_str()),
        ("Plain name", "")
    );
    let e = library_entry(s, "1023").unwrap().unwrap();
    assert_eq!((e.name.as_str(), e.description.as_str()), ("Short row", ""));
}

/// Guidance (issue 17 item 7): the next step and who it waits on at every stage of the review,
/// a configurable quorum of reviews (assignment and decision), the score summary, and cohorts
/// attached while drafting.
#[test]
fn guidance_quorum_and_cohorts_attached_while_drafting() {
    let w = World::new();
    alliance(&w);
    let s = w.store.as_ref();
    let (admin, spon, c2, c3) = (u(&w, "admin"), u(&w, "spon"), u(&w, "c2"), u(&w, "c3"));
    let pf = ProjectForm {
        id: "guided".into(),
        title: "Guided".into(),
        summary: "Guided steps.".into(),
        target: "50".into(),
    };
    let f = create_project(s, &pf, &spon, T).unwrap();
    let id = f.project.clone();
    let g = guide(&f, DEFAULT_QUORUM, 0);
    assert_eq!(
        (g.step, g.next.as_ref().map(|n| n.0), g.waits_on),
        (
            0,
            Some("guide.next_draft"),
            Some(("guide.who_sponsor", vec![("user", "spon".to_owned())]))
        )
    );
    // A pasted definition attached while drafting, for the reviewers to read.
    let def =
        std::fs::read_to_string("../../../shared/data/phenotypes-dev/cohorts/1003.json").unwrap();
    let c = attach_cohort(s, &id, "Draft cohort", &def, "", &spon, T + 1).unwrap();
    assert_eq!(c.n, 1);
    let f = transition(s, &id, Stage::Submitted, "Review please", &spon, T + 2).unwrap();
    assert_eq!(
        attach_cohort(s, &id, "Late", &def, "", &spon, T + 3).unwrap_err(),
        vec![Refusal::State("state.err_attach_stage")],
        "not once submitted"
    );
    let g = guide(&f, DEFAULT_QUORUM, 0);
    assert_eq!(
        (g.step, g.next.map(|n| n.0), g.waits_on.map(|w| w.0)),
        (1, Some("guide.next_assign"), Some("guide.who_admin"))
    );
    // The quorum: admins only, 1–10, audited; an assignment below it is refused.
    assert_eq!(quorum(s).unwrap(), 2);
    assert_eq!(set_quorum(s, "3", &spon, T), Err(Refusal::Forbidden));
    assert_eq!(
        field_of(&set_quorum(s, "11", &admin, T).unwrap_err()),
        "quorum"
    );
    assert_eq!(
        field_of(&set_quorum(s, "x", &admin, T).unwrap_err()),
        "quorum"
    );
    assert_eq!(set_quorum(s, " 3 ", &admin, T), Ok(3));
    assert_eq!(quorum(s).unwrap(), 3);
    let ids = |v: &[&str]| {
        v.iter()
            .map(|x| UserId::new((*x).to_owned()).unwrap())
            .collect::<Vec<_>>()
    };
    match assign_reviewers(s, &id, &ids(&["c2", "c3"]), "two", &admin, T + 4) {
        Err(Refusal::Field {
            field: "reviewers",
            key: "form.err_below_quorum",
            args,
        }) => assert_eq!(args, vec![("quorum", "3".to_owned())]),
        other => panic!("{other:?}"),
    }
    assert_eq!(set_quorum(s, "1", &admin, T), Ok(1));
    let f = assign_reviewers(s, &id, &ids(&["c2", "c3"]), "two", &admin, T + 5).unwrap();
    let crit = criteria(s).unwrap();
    let g = guide(&f, 1, 0);
    assert_eq!(
        (g.next, g.waits_on),
        (
            Some((
                "guide.next_reviews",
                vec![("done", "0".to_owned()), ("quorum", "1".to_owned())]
            )),
            Some(("guide.who_reviewers", vec![("users", "c2, c3".to_owned())]))
        )
    );
    assert_eq!(
        decide_project(s, &id, true, "early", &c2, T + 6),
        Err(Refusal::State("state.err_reviews_missing"))
    );
    let sc = |m: &str, f: &str, e: &str| {
        [("merit", m), ("feasibility", f), ("ethics", e)]
            .iter()
            .map(|(k, x)| ((*k).to_owned(), (*x).to_owned()))
            .collect::<BTreeMap<_, _>>()
    };
    let f = submit_review(s, &id, &sc("5", "2", "4"), "approve", "Fine.", &c2, T + 7).unwrap();
    let g = guide(&f, 1, 0);
    assert_eq!(
        (g.next.map(|n| n.0), g.waits_on.map(|w| w.0)),
        (Some("guide.next_decide"), Some("guide.who_committee"))
    );
    let f = submit_review(s, &id, &sc("2", "3", "5"), "reject", "Weak.", &c3, T + 8).unwrap();
    let sum = score_summary(&f, &crit, 1);
    assert_eq!(
        (
            sum.reviews,
            sum.quorum,
            sum.approve,
            sum.reject,
            sum.quorate()
        ),
        (2, 1, 1, 1, true)
    );
    assert_eq!(
        sum.means,
        vec![
            ("merit".to_owned(), Some(3.5), 5),
            ("feasibility".to_owned(), Some(2.5), 5),
            ("ethics".to_owned(), Some(4.5), 5)
        ]
    );
    // With the quorum back at 3 the decision waits (only two reviewers could review).
    set_quorum(s, "3", &admin, T).unwrap();
    assert!(!score_summary(&f, &crit, 3).quorate());
    assert_eq!(
        decide_project(s, &id, false, "no", &c3, T + 9),
        Err(Refusal::State("state.err_reviews_missing"))
    );
    set_quorum(s, "2", &admin, T).unwrap();
    let f = decide_project(s, &id, false, "Rejected on merit", &c3, T + 10).unwrap();
    let g = guide(&f, 2, 0);
    assert_eq!((g.step, g.closed, g.next), (1, true, None));
    let quorums = w
        .store
        .audit_entries(0, 100_000)
        .unwrap()
        .iter()
        .filter(|e| e.action == "review.quorum")
        .count();
    assert_eq!(quorums, 4, "each saved quorum is audited, refusals are not");
}
