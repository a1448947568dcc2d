//! The portal through its pages: the whole pipeline driven by forms, the role matrix of every
//! route, form validation without half-saved state, and page render times.

mod common;

use std::time::Instant;

use axum::http::StatusCode;
use common::{alliance, enroll_sites, Client, World, T};
use qiao_hub::protocol::{
    AgeBand, Cell, CohortCountResult, DemographicsResult, DisclosureSummary, Gender, JobResult,
    Outcome, Payload, Released, RuleName, RuleResult, UserRole,
};
use qiao_portal::alliance::{self as al, Stage};

async fn signed_in(w: &World, user: &str) -> Client {
    let mut c = w.client();
    c.login(user).await;
    c
}

fn rel(v: u64) -> Released {
    if v < 10 {
        Released::BelowThreshold { threshold: 10 }
    } else {
        Released::Exact { value: v }
    }
}

/// A site's released cohort count for a job, with the funnel over `rules`.
fn count_result(
    job: qiao_hub::protocol::JobId,
    site: &str,
    rules: &[String],
    persons: &[u64],
) -> JobResult {
    JobResult {
        job_id: job,
        site_id: site.parse().unwrap(),
        outcome: Outcome::Done {
            payload: Payload::CohortCount(CohortCountResult {
                initial: (!rules.is_empty()).then(|| rel(persons[0])),
                entries: rel(*persons.last().unwrap()),
                subjects: rel(*persons.last().unwrap()),
                rules: rules
                    .iter()
                    .zip(&persons[1..])
                    .map(|(n, p)| RuleResult {
                        name: RuleName::new(n.clone()).unwrap(),
                        persons: rel(*p),
                        gain: rel(*p),
                    })
                    .collect(),
                final_persons: rel(*persons.last().unwrap()),
                disclosure: DisclosureSummary {
                    min_cell_count: 10,
                    obfuscation: None,
                    secondary_suppression: false,
                    dp: None,
                },
            }),
        },
    }
}

fn no_disclosure() -> DisclosureSummary {
    DisclosureSummary {
        min_cell_count: 10,
        obfuscation: None,
        secondary_suppression: false,
        dp: None,
    }
}

/// One demographics cell: (age band (min, max), gender, index year, count).
type CellSpec = (Option<(u8, Option<u8>)>, Option<Gender>, Option<u16>, u64);

/// A site's released demographics.
fn demographics_result(
    job: qiao_hub::protocol::JobId,
    site: &str,
    cells: &[CellSpec],
) -> JobResult {
    JobResult {
        job_id: job,
        site_id: site.parse().unwrap(),
        outcome: Outcome::Done {
            payload: Payload::Demographics(DemographicsResult {
                total: rel(cells.iter().map(|c| c.3).sum()),
                cells: cells
                    .iter()
                    .map(|&(band, gender, index_year, n)| Cell {
                        age_band: band.map(|(min_age, max_age)| AgeBand { min_age, max_age }),
                        gender,
                        index_year,
                        count: rel(n),
                    })
                    .collect(),
                disclosure: no_disclosure(),
            }),
        },
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_pipeline_through_the_pages() {
    let w = World::new();
    alliance(&w);
    enroll_sites(&w);
    al::import_library(
        w.store.as_ref(),
        std::path::Path::new("../../../shared/data/phenotypes-dev"),
        T,
    )
    .unwrap();
    // An institution applies (anonymously) and is approved.
    let mut anon = w.client();
    let r = anon
        .submit(
            "/apply",
            "/apply",
            &[
                ("id", "ruijin"),
                ("name", "Ruijin Hospital"),
                ("kind", "hospital"),
                ("region", "Shanghai"),
                ("contact", "rwd@ruijin.example.cn"),
                ("description", "Cardiology."),
                ("site", ""),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    let mut admin = signed_in(&w, "admin").await;
    let d = admin.get("/").await;
    assert!(
        d.body
            .contains("1 membership applications wait for a decision"),
        "{}",
        d.body
    );
    assert!(
        d.body.contains("<title>Draft: 0</title>"),
        "projects-by-stage chart: {}",
        d.body
    );
    let page = admin.get("/institutions").await;
    assert!(
        page.body.contains("Ruijin Hospital") && page.body.contains("Applied"),
        "{}",
        page.body
    );
    let r = admin
        .submit(
            "/institutions",
            "/institutions/ruijin/decide",
            &[("decision", "approve"), ("reason", "")],
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    assert_eq!(
        al::institution(w.store.as_ref(), "ruijin")
            .unwrap()
            .unwrap()
            .status,
        al::MemberStatus::Approved
    );
    // The sponsor creates and submits a project.
    let mut spon = signed_in(&w, "spon").await;
    let r = spon
        .submit(
            "/projects",
            "/projects",
            &[
                ("id", "afib"),
                ("title", "AF outcomes"),
                ("summary", "Registry."),
                ("target", "40"),
            ],
        )
        .await;
    assert_eq!(
        r.location.as_deref(),
        Some("/projects/afib?flash=flash.saved")
    );
    // Guidance: the stage indicator with the next step and who it waits on.
    let page = spon.get("/projects/afib").await;
    assert!(
        page.body
            .contains("<li class=\"current\" aria-current=\"step\">Proposal</li>")
            && page
                .body
                .contains("attach the cohort definitions for the reviewers to read")
            && page.body.contains("the sponsor (spon)"),
        "{}",
        page.body
    );
    let r = spon
        .submit(
            "/projects/afib",
            "/projects/afib/transition",
            &[("to", "submitted"), ("comment", "Please review")],
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    // The reviewer picker shows names and expertise, and the quorum.
    let page = admin.get("/projects/afib").await;
    assert!(
        page.body.contains("<strong>Dr c2</strong> (c2) · h1 · <span class=\"expertise\">cardiology, epidemiology</span>")
            && page.body.contains("needs 2 reviews")
            && page.body.contains("assign reviewers")
            && page.body.contains("an alliance administrator"),
        "{}",
        page.body
    );
    // The admin assigns two reviewers; a conflicted one is refused with the message at the field.
    let r = admin
        .submit(
            "/projects/afib",
            "/projects/afib/reviewers",
            &[
                ("reviewers", "c1"),
                ("reviewers", "c2"),
                ("comment", "assign"),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        r.body
            .contains("c1 belongs to the proposing institution (conflict of interest)."),
        "{}",
        r.body
    );
    // The language switch on that error page (rendered at the POST-only URL, where a GET is a
    // 405) returns to the dashboard without a Referer, and to the page the form was on with one.
    assert!(
        r.body.contains("href=\"/lang?to=zh-CN&amp;next=/\""),
        "{}",
        r.body
    );
    assert!(!r.body.contains("next=/projects/afib/reviewers"));
    admin.referer = Some("http://127.0.0.1:8443/projects/afib".to_owned());
    let r = admin
        .submit(
            "/projects/afib",
            "/projects/afib/reviewers",
            &[("reviewers", "c1"), ("comment", "assign")],
        )
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        r.body
            .contains("href=\"/lang?to=zh-CN&amp;next=/projects/afib\""),
        "{}",
        r.body
    );
    let r = admin.get("/lang?to=zh-CN&next=/projects/afib").await;
    assert_eq!(r.location.as_deref(), Some("/projects/afib"));
    let r = admin.get("/projects/afib").await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(r.body.contains("<html lang=\"zh-CN\">"));
    let r = admin.get("/lang?to=en&next=/").await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    admin.referer = None;
    let r = admin
        .submit(
            "/projects/afib",
            "/projects/afib/reviewers",
            &[
                ("reviewers", "c2"),
                ("reviewers", "c3"),
                ("comment", "Two hospital experts"),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    for rev in ["c2", "c3"] {
        let mut c = signed_in(&w, rev).await;
        let r = c
            .submit(
                "/projects/afib",
                "/projects/afib/review",
                &[
                    ("score_merit", "5"),
                    ("score_feasibility", "4"),
                    ("score_ethics", "5"),
                    ("recommend", "approve"),
                    ("comment", "Good."),
                ],
            )
            .await;
        assert_eq!(r.status, StatusCode::SEE_OTHER, "{rev}: {}", r.body);
    }
    let mut c3 = signed_in(&w, "c3").await;
    // The score summary the decision is taken on.
    let page = c3.get("/projects/afib").await;
    assert!(
        page.body.contains("2 of 2 reviews needed for the decision")
            && page.body.contains("2 recommend approval, 0 rejection")
            && page
                .body
                .contains("<td>Scientific merit</td><td class=\"num\">5.0 / 5</td>")
            && page.body.contains("the scientific committee"),
        "{}",
        page.body
    );
    let r = c3
        .submit(
            "/projects/afib",
            "/projects/afib/decide",
            &[("decision", "approve"), ("comment", "Approved")],
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    assert!(
        w.store
            .project(&"afib".parse().unwrap())
            .unwrap()
            .unwrap()
            .approved
    );
    // Feasibility: an invalid paste is shown with its JSON path; a library definition runs.
    spon.submit(
        "/projects/afib",
        "/projects/afib/transition",
        &[("to", "feasibility"), ("comment", "Feasibility")],
    )
    .await;
    let r = spon
        .submit(
            "/projects/afib",
            "/projects/afib/cohorts",
            &[
                ("library", ""),
                ("name", "AF"),
                ("definition", "{\"PrimaryCriteria\": 3}"),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(r.body.contains("PrimaryCriteria"), "{}", r.body);
    assert!(
        r.body.contains("id=\"err-definition\""),
        "the message is next to the field: {}",
        r.body
    );
    let r = spon
        .submit(
            "/projects/afib",
            "/projects/afib/cohorts",
            &[("library", "1003"), ("name", ""), ("definition", "")],
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    let r = spon
        .submit("/projects/afib", "/projects/afib/cohorts/1/run", &[])
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    let file = al::project_file(w.store.as_ref(), "afib").unwrap().unwrap();
    let run = file.cohorts[0].runs[0].clone();
    let def = al::cohort_definition(w.store.as_ref(), &"afib".parse().unwrap(), 1)
        .unwrap()
        .unwrap();
    let rules: Vec<String> = def["InclusionRules"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|r| r["name"].as_str().unwrap_or("").to_owned())
                .collect()
        })
        .unwrap_or_default();
    let mut h1 = vec![500u64];
    let mut h2 = vec![120u64];
    for i in 0..rules.len() {
        h1.push(400 - 50 * i as u64);
        h2.push(90 - 10 * i as u64);
    }
    w.store
        .put_result(&count_result(run.count_job, "h1", &rules, &h1), T)
        .unwrap();
    w.store
        .put_result(&count_result(run.count_job, "h2", &rules, &h2), T)
        .unwrap();
    let page = spon.get("/projects/afib").await;
    assert_eq!(page.status, StatusCode::OK);
    // The total funnel's first bar: the persons with a qualifying event (the final cohort
    // without rules), summed over the sites, at 100%; then each rule.
    let first_label = match rules.first() {
        Some(_) => "Qualifying events (persons)".to_owned(),
        None => "Final cohort".to_owned(),
    };
    let total_first = 500 + 120;
    if let Some(r) = rules.first() {
        assert!(
            page.body
                .contains(&format!("<title>{r}: 490† (79%)</title>")),
            "{}",
            page.body
        );
    }
    assert!(
        page.body.contains(&format!(
            "<title>{first_label}: {}† (100%)</title>",
            common_fmt(total_first)
        )),
        "{}",
        page.body
    );
    assert!(
        page.body.contains("Attrition funnel, h1") && page.body.contains("Attrition funnel, h2"),
        "per-site funnels"
    );
    assert!(page.body.contains("Site ranking by eligible patients"));
    // The notation's legend, and who each site's pending job waits on.
    assert!(page.body.contains("never read it as 0"), "{}", page.body);
    assert!(
        page.body.contains("Not yet picked up by h2"),
        "{}",
        page.body
    );
    // The two margins the charts need, each its own job: age band × gender, not crossed with
    // the index year, and the index year margin.
    let jobs = |id| w.store.job(id).unwrap().unwrap().job.query;
    assert_eq!(
        jobs(&run.demographics_job),
        qiao_hub::protocol::QueryType::Demographics {
            age_band_years: 10,
            by_index_year: false
        }
    );
    let years_job = run.years_job.expect("the index year margin");
    assert_eq!(
        jobs(&years_job),
        qiao_hub::protocol::QueryType::Demographics {
            age_band_years: 100,
            by_index_year: true
        }
    );
    // The run's funnel and ranking as CSV, for those who may see the project only.
    let csv = spon.get("/projects/afib/cohorts/1/results.csv?run=0").await;
    assert_eq!(csv.status, StatusCode::OK, "{}", csv.body);
    assert!(
        csv.body
            .starts_with("run_at,cohort,table,site,step,shown,point,low,high\n"),
        "{}",
        csv.body
    );
    if !rules.is_empty() {
        assert!(
            csv.body
                .contains(",1,funnel,total,qualifying events,620,620,620,620\n"),
            "{}",
            csv.body
        );
    }
    assert!(csv.body.contains(",1,ranking,h1,1,"), "{}", csv.body);
    let mut outsider = signed_in(&w, "stew1").await;
    let r = outsider.get("/projects/afib/cohorts/1/results.csv").await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let r = spon.get("/projects/afib/cohorts/1/results.csv?run=7").await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    let m = Some(Gender::Male);
    let f = Some(Gender::Female);
    for (site, k) in [("h1", 3), ("h2", 1)] {
        w.store
            .put_result(
                &demographics_result(
                    run.demographics_job,
                    site,
                    &[
                        (Some((40, Some(49))), m, None, 20 * k),
                        (Some((40, Some(49))), f, None, 30 * k),
                        (Some((50, Some(59))), m, None, 40 * k),
                        (Some((50, Some(59))), f, None, 5),
                        (None, m, None, 60 * k),
                        (None, f, None, 30 * k + 5),
                    ],
                ),
                T,
            )
            .unwrap();
    }
    // h1's index years: 2021–2023 complete, 120 a year (30 a quarter), 2024 partial.
    w.store
        .put_result(
            &demographics_result(
                years_job,
                "h1",
                &[
                    (Some((0, Some(99))), None, Some(2021), 110),
                    (Some((100, None)), None, Some(2021), 10),
                    (Some((0, Some(99))), None, Some(2022), 120),
                    (Some((0, Some(99))), None, Some(2023), 120),
                    (Some((0, Some(99))), None, Some(2024), 15),
                ],
            ),
            T,
        )
        .unwrap();
    let page = spon.get("/projects/afib").await;
    // The pyramid from the age band × gender margin, a cell withheld at both sites shown as
    // the range of its total (never 0).
    assert!(page.body.contains("-pyramid\""), "{}", page.body);
    assert!(
        page.body.contains("<title>50–59 · Female: 0–18†</title>"),
        "{}",
        page.body
    );
    assert!(
        page.body.contains("<title>40–49 · Male: 80†</title>"),
        "{}",
        page.body
    );
    // The forecast: 30 a quarter at h1 (2021–2023; 2024 is partial); the target of 40 from
    // the run's day: 40 / 30 quarters = 122 days. h2 reported no index years: no forecast.
    assert!(page.body.contains("30.0"), "{}", page.body);
    let (y, mo, _) = qiao_web::i18n::civil_from_days(run.at.div_euclid(86_400) + 122);
    let month = qiao_web::i18n::fmt_month(qiao_web::Lang::En, y, mo);
    assert!(
        page.body.contains(&format!("<td>{month}</td>")),
        "{month}: {}",
        page.body
    );
    // The attached definition reads as text (the engine's narrative), its names escaped.
    assert!(page.body.contains("Read the definition"), "{}", page.body);
    assert!(
        page.body
            .contains("People enter the cohort at any of the following events:")
            && page.body.contains("Primary malignant neoplasm of kidney"),
        "{}",
        page.body
    );
    let lib = spon.get("/library/1003").await;
    assert_eq!(lib.status, StatusCode::OK);
    assert!(
        lib.body.contains("<h2>Cohort entry events</h2>"),
        "{}",
        lib.body
    );
    assert!(
        lib.body.contains("<table>"),
        "concept set table: {}",
        lib.body
    );
    assert!(
        page.body.contains("class=\"sdc\""),
        "controlled numbers are marked"
    );
    // A new version of the definition: the old one kept, a readable diff in both languages,
    // runs marked with their version and compared side by side.
    let other =
        std::fs::read_to_string("../../../shared/data/phenotypes-dev/cohorts/1013.json").unwrap();
    let r = spon
        .submit(
            "/projects/afib",
            "/projects/afib/cohorts/1/replace",
            &[("library", ""), ("name", "AF v2"), ("definition", &other)],
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    let pid: qiao_hub::protocol::ProjectId = "afib".parse().unwrap();
    assert_eq!(
        al::cohort_version(w.store.as_ref(), &pid, 1, 1).unwrap(),
        Some(def.clone()),
        "version 1 kept"
    );
    let diff = spon.get("/projects/afib/cohorts/1/diff").await;
    assert_eq!(diff.status, StatusCode::OK, "{}", diff.body);
    assert!(
        diff.body.contains("Version 1 (")
            && diff.body.contains("<del>− # ")
            && diff.body.contains("<ins>+ # ")
            && diff
                .body
                .contains("<section class=\"card\" lang=\"zh-CN\"><h2>In Chinese</h2>")
            && diff.body.matches("<ins>+ # AF v2</ins>").count() == 2,
        "{}",
        diff.body
    );
    assert_eq!(
        spon.get("/projects/afib/cohorts/1/diff?a=1&b=3")
            .await
            .status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        outsider.get("/projects/afib/cohorts/1/diff").await.status,
        StatusCode::FORBIDDEN
    );
    // The second run records each site's data date as its last poll reported it (h2 has
    // reported none); the first, sent before any poll, none.
    let status = qiao_hub::protocol::SiteStatus {
        data_as_of: Some("2020-06-30".into()),
        persons_rounded: 2_700,
        min_cell_count: 11,
        obfuscation: false,
        dp: false,
    };
    w.hub
        .record_poll(&"h1".parse().unwrap(), Some(status), qiao_hub::util::now());
    let r = spon
        .submit("/projects/afib", "/projects/afib/cohorts/1/run", &[])
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    let file = al::project_file(w.store.as_ref(), "afib").unwrap().unwrap();
    let versions: Vec<_> = file.cohorts[0].runs.iter().map(|r| r.version).collect();
    assert_eq!(versions, vec![Some(1), Some(2)]);
    let dates: Vec<Vec<(String, String)>> = file.cohorts[0]
        .runs
        .iter()
        .map(|r| {
            r.data_as_of
                .iter()
                .map(|(s, d)| (s.to_string(), d.clone()))
                .collect()
        })
        .collect();
    assert_eq!(
        dates,
        vec![vec![], vec![("h1".to_owned(), "2020-06-30".to_owned())]]
    );
    let cmp = spon.get("/projects/afib/cohorts/1/compare").await;
    assert_eq!(cmp.status, StatusCode::OK, "{}", cmp.body);
    assert!(
        cmp.body.contains("definition version 1")
            && cmp.body.contains("definition version 2")
            && cmp.body.contains("<td>All sites</td><td>Final cohort</td>"),
        "{}",
        cmp.body
    );
    assert!(
        cmp.body.contains("no site had reported its data date")
            && cmp.body.contains("data as of h1 30 Jun 2020"),
        "{}",
        cmp.body
    );
    let page = spon.get("/projects/afib").await;
    assert!(
        page.body
            .contains("<span class=\"data-dates\">data as of h1 30 Jun 2020</span>"),
        "{}",
        page.body
    );
    assert_eq!(
        outsider
            .get("/projects/afib/cohorts/1/compare")
            .await
            .status,
        StatusCode::FORBIDDEN
    );
    // Site selection: invite both; h1 accepts, h2 declines.
    spon.submit(
        "/projects/afib",
        "/projects/afib/transition",
        &[("to", "site_selection"), ("comment", "Select")],
    )
    .await;
    let r = spon
        .submit(
            "/projects/afib",
            "/projects/afib/invite",
            &[("sites", "h1"), ("sites", "h2")],
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    let mut stew1 = signed_in(&w, "stew1").await;
    let r = stew1
        .submit(
            "/projects/afib",
            "/projects/afib/answer",
            &[("decision", "accept"), ("reason", "")],
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    let mut stew2 = signed_in(&w, "stew2").await;
    let r = stew2
        .submit(
            "/projects/afib",
            "/projects/afib/answer",
            &[("decision", "decline"), ("reason", "")],
        )
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(r.body.contains("A reason is required."));
    stew2
        .submit(
            "/projects/afib",
            "/projects/afib/answer",
            &[("decision", "decline"), ("reason", "No ward")],
        )
        .await;
    // Running: the investigator of h1 reports; the chart shows enrollment against target.
    let r = admin
        .submit(
            "/projects/afib",
            "/projects/afib/transition",
            &[("to", "running"), ("comment", "Go")],
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    let mut inv1 = signed_in(&w, "inv1").await;
    let r = inv1
        .submit(
            "/projects/afib",
            "/projects/afib/report",
            &[("month", "2026-10"), ("screened", "30"), ("enrolled", "12")],
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    let csv = inv1.get("/projects/afib/reports.csv").await;
    assert_eq!(csv.status, StatusCode::OK);
    assert!(
        csv.body.starts_with(
            "month,site,screened,enrolled,excluded,source,disclosure,reported_by,reported_at\n\
             2026-10,h1,30,12,,typed,,inv1,"
        ),
        "{}",
        csv.body
    );
    assert_eq!(
        stew2.get("/projects/afib/reports.csv").await.status,
        StatusCode::OK,
        "an invited site's steward sees the project"
    );
    let page = inv1.get("/projects/afib").await;
    assert!(
        page.body.contains("12 of 40 patients enrolled."),
        "{}",
        page.body
    );
    assert!(
        page.body.contains("<title>Target · Oct 2026: 40</title>"),
        "{}",
        page.body
    );
    // Recruitment from the sites' marks (issue 17): the sponsor collects; the job asks the
    // accepted site for the months since the project started running, on the list's cohort.
    let r = spon
        .submit("/projects/afib", "/projects/afib/recruitment", &[])
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    let file = al::project_file(w.store.as_ref(), "afib").unwrap().unwrap();
    let asked = file.recruitment.last().expect("a collection").clone();
    let job = w
        .store
        .job(&asked.job)
        .unwrap()
        .expect("the recruitment job");
    assert_eq!(
        job.sites,
        vec!["h1".parse::<qiao_hub::protocol::SiteId>().unwrap()],
        "accepted sites only"
    );
    assert_eq!(
        job.job.definition,
        al::cohort_definition(w.store.as_ref(), &"afib".parse().unwrap(), 1)
            .unwrap()
            .unwrap()
    );
    let qiao_hub::protocol::QueryType::Recruitment(spec) = &job.job.query else {
        panic!("{:?}", job.job.query)
    };
    assert_eq!(spec.months, al::months_since(&file, qiao_hub::util::now()));
    let month = *spec.months.last().unwrap();
    // h1 releases its counts of that month: 25 screened, 14 enrolled, fewer than 10 excluded.
    w.store
        .put_result(
            &JobResult {
                job_id: asked.job,
                site_id: "h1".parse().unwrap(),
                outcome: Outcome::Done {
                    payload: Payload::Recruitment(qiao_hub::protocol::RecruitmentResult {
                        months: spec
                            .months
                            .iter()
                            .map(|m| {
                                let this = *m == month;
                                qiao_hub::protocol::RecruitmentMonth {
                                    year: m.year,
                                    month: m.month,
                                    screened: Released::Exact {
                                        value: if this { 25 } else { 0 },
                                    },
                                    enrolled: Released::Exact {
                                        value: if this { 14 } else { 0 },
                                    },
                                    excluded: if this {
                                        rel(3)
                                    } else {
                                        Released::Exact { value: 0 }
                                    },
                                }
                            })
                            .collect(),
                        disclosure: no_disclosure(),
                    }),
                },
            },
            T,
        )
        .unwrap();
    let page = spon.get("/projects/afib").await;
    let table = page
        .body
        .split("id=\"recruitment-lines\"")
        .nth(1)
        .expect("the recruitment lines")
        .split("</table>")
        .next()
        .unwrap()
        .to_owned();
    if month.key() == "2026-10" {
        // The typed month overrides the marks of the same month.
        assert!(!table.contains("badge ok"), "{table}");
    } else {
        assert!(
            table.contains(&format!("<td>{}</td><td>h1</td>", month.key()))
                && table.contains("badge ok")
                && table.contains("typed (override)"),
            "{table}"
        );
        // The enrolled total and the chart are filled from the marks: 12 typed + 14 marked.
        assert!(
            page.body.contains("26 of 40 patients enrolled."),
            "{}",
            page.body
        );
        // The stage guide, the project list and the CSV read the same total and lines.
        assert!(page.body.contains("(26 of 40 enrolled)"), "{}", page.body);
        let list = spon.get("/projects").await;
        let row = list
            .body
            .split("href=\"/projects/afib\"")
            .nth(1)
            .and_then(|r| r.split("</tr>").next())
            .expect("afib's row");
        assert!(row.contains("<td class=\"num\">26</td>"), "{row}");
        let csv = spon.get("/projects/afib/reports.csv").await;
        assert!(
            csv.body
                .contains(&format!("\n{},h1,25,14,,marks,", month.key())),
            "{}",
            csv.body
        );
    }
    assert!(
        page.body.contains("id=\"recruitment-total\""),
        "{}",
        page.body
    );
    // Only the project's sponsor collects.
    let r = inv1
        .submit("/projects/afib", "/projects/afib/recruitment", &[])
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    // At most one collection a day: each spends privacy budget at every site.
    assert!(
        page.body.contains("id=\"recruitment-next\""),
        "{}",
        page.body
    );
    let r = spon
        .submit("/projects/afib", "/projects/afib/recruitment", &[])
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.body);
    assert!(
        r.body.contains("collected less than a day ago"),
        "{}",
        r.body
    );
    let file = al::project_file(w.store.as_ref(), "afib").unwrap().unwrap();
    assert_eq!(file.recruitment.len(), 1, "no second job");
    assert_eq!(
        al::next_collection(&file, asked.at + al::COLLECT_INTERVAL_SECS - 1),
        Some(asked.at + al::COLLECT_INTERVAL_SECS)
    );
    assert_eq!(
        al::next_collection(&file, asked.at + al::COLLECT_INTERVAL_SECS),
        None
    );
    // In Chinese.
    inv1.lang = None;
    inv1.get("/lang?to=zh-CN&next=/").await;
    let page = inv1.get("/projects/afib").await;
    assert!(page.body.contains("招募情况"), "{}", page.body);
    let enrolled = if month.key() == "2026-10" { 12 } else { 26 };
    assert!(
        page.body.contains(&format!("已入组 {enrolled} / 40 例。")),
        "{}",
        page.body
    );
    assert!(page.body.contains("进行中"));
    assert_eq!(
        al::project_file(w.store.as_ref(), "afib")
            .unwrap()
            .unwrap()
            .stage,
        Stage::Running
    );
}

fn common_fmt(n: u64) -> String {
    qiao_web::i18n::fmt_int(qiao_web::Lang::En, n as i64)
}

/// A form route, its fields, and the roles that may post it.
type FormCase<'a> = (&'a str, &'a [(&'a str, &'a str)], &'a [UserRole]);

const ROLES: [(&str, UserRole); 7] = [
    ("admin", UserRole::AllianceAdmin),
    ("c2", UserRole::CommitteeMember),
    ("stew1", UserRole::SiteDataSteward),
    ("inv1", UserRole::SiteInvestigator),
    ("aud", UserRole::Auditor),
    // Last of the signed-in: the sponsor's submission changes p1's stage.
    ("spon", UserRole::SponsorResearcher),
    ("", UserRole::Auditor), // anonymous
];

/// Every page route × every role (and anonymous): who gets the page, who is refused, who is
/// sent to sign in; and every form route × role: who may post.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn role_matrix_of_the_ui_routes() {
    let w = World::new();
    alliance(&w);
    w.user("aud", UserRole::Auditor, None, None);
    al::import_library(
        w.store.as_ref(),
        std::path::Path::new("../../../shared/data/phenotypes-dev"),
        T,
    )
    .unwrap();
    let spon = common::u(&w, "spon");
    al::create_project(
        w.store.as_ref(),
        &al::ProjectForm {
            id: "p1".into(),
            title: "P1".into(),
            summary: "S".into(),
            target: "10".into(),
        },
        &spon,
        T,
    )
    .unwrap();
    // A cohort attached while drafting (its versions page).
    al::attach_cohort(
        w.store.as_ref(),
        &"p1".parse().unwrap(),
        "",
        "",
        "1003",
        &spon,
        T,
    )
    .unwrap();
    use UserRole::*;
    let all: &[UserRole] = &[
        AllianceAdmin,
        CommitteeMember,
        SponsorResearcher,
        SiteDataSteward,
        SiteInvestigator,
        Auditor,
    ];
    // (path, roles that get 200; the others signed in get 403)
    let pages: Vec<(&str, &[UserRole])> = vec![
        ("/", all),
        ("/projects", all),
        ("/institutions", all),
        ("/committee", &[AllianceAdmin, CommitteeMember, Auditor]),
        ("/library", all),
        ("/library/1003", all),
        ("/sites", all),
        // A draft: its sponsor and the oversight roles; not other sites' people.
        (
            "/projects/p1",
            &[AllianceAdmin, CommitteeMember, SponsorResearcher, Auditor],
        ),
        (
            "/projects/p1/cohorts/1/diff",
            &[AllianceAdmin, CommitteeMember, SponsorResearcher, Auditor],
        ),
        (
            "/projects/p1/reports.csv",
            &[AllianceAdmin, CommitteeMember, SponsorResearcher, Auditor],
        ),
        // Issue 17: every signed-in user's own settings.
        ("/settings", all),
    ];
    let mut checked = 0;
    for (user, role) in ROLES {
        let mut c = w.client();
        if !user.is_empty() {
            c.login(user).await;
        }
        for (path, ok) in &pages {
            let r = c.get(path).await;
            let want = if user.is_empty() {
                StatusCode::SEE_OTHER
            } else if ok.contains(&role) {
                StatusCode::OK
            } else {
                StatusCode::FORBIDDEN
            };
            assert_eq!(r.status, want, "GET {path} as {user:?}");
            checked += 1;
        }
        // Forms restricted to a role: others are refused before anything changes.
        let forms: Vec<FormCase> = vec![
            ("/committee/experts", &[("user", "c2")], &[AllianceAdmin]),
            (
                "/committee/criteria",
                &[("criteria", "a | A | 甲 | 5")],
                &[AllianceAdmin],
            ),
            (
                "/institutions/h1/decide",
                &[("decision", "approve")],
                &[AllianceAdmin],
            ),
            ("/projects", &[("id", "x")], &[SponsorResearcher]),
            ("/committee/quorum", &[("quorum", "2")], &[AllianceAdmin]),
            // Issue 17: collecting recruitment is the project's sponsor's (p1 is a draft: the
            // sponsor is told the stage, the others refused); everyone saves their own zone.
            ("/projects/p1/recruitment", &[], &[SponsorResearcher]),
            ("/settings", &[("zone", "")], all),
        ];
        if !user.is_empty() {
            for (path, fields, ok) in &forms {
                let r = c.submit("/", path, fields).await;
                if ok.contains(&role) {
                    assert_ne!(r.status, StatusCode::FORBIDDEN, "POST {path} as {user}");
                } else {
                    assert_eq!(r.status, StatusCode::FORBIDDEN, "POST {path} as {user}");
                }
                checked += 1;
            }
            // Stage changes of p1 (a draft): only its sponsor may submit it.
            let r = c
                .submit(
                    "/",
                    "/projects/p1/transition",
                    &[("to", "submitted"), ("comment", "x")],
                )
                .await;
            if role == SponsorResearcher {
                assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
            } else {
                assert_eq!(r.status, StatusCode::FORBIDDEN, "transition as {user}");
            }
        }
    }
    assert_eq!(checked, 7 * 11 + 6 * 7);
    assert_eq!(
        al::criteria(w.store.as_ref()).unwrap().len(),
        1,
        "the admin's criteria were saved"
    );
}

/// Bad input: messages next to each field, the values kept, nothing saved.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forms_reject_bad_input_and_save_nothing() {
    let w = World::new();
    alliance(&w);
    let before = w.store.audit_entries(0, 100_000).unwrap().len();
    let mut spon = signed_in(&w, "spon").await;
    // A time zone that is no zone, named in the refusal.
    let r = spon
        .submit("/settings", "/settings", &[("zone", "Mars/Olympus")])
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.body);
    assert!(
        r.body.contains("“Mars/Olympus” is not a time zone"),
        "{}",
        r.body
    );
    let r = spon
        .submit(
            "/projects",
            "/projects",
            &[
                ("id", "Bad Id"),
                ("title", ""),
                ("summary", "ok"),
                ("target", "-3"),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    for f in ["id", "title", "target"] {
        assert!(
            r.body
                .contains(&format!("<p class=\"field-error\" id=\"err-{f}\">")),
            "{f}: {}",
            r.body
        );
        assert!(
            r.body.contains(&format!("aria-describedby=\"err-{f}\"")),
            "{f}"
        );
    }
    assert!(r.body.contains("value=\"Bad Id\""), "the value is kept");
    assert!(al::project_files(w.store.as_ref()).unwrap().is_empty());
    let mut admin = signed_in(&w, "admin").await;
    let r = admin
        .submit(
            "/committee",
            "/committee/experts",
            &[
                ("user", "c2"),
                ("name", "Dr"),
                ("institution", "h1"),
                ("fields", "x"),
                ("start", "2030-01-01"),
                ("end", "2029-01-01"),
                ("letter", "L"),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        r.body.contains("The end is before the start."),
        "{}",
        r.body
    );
    let r = admin
        .submit(
            "/committee",
            "/committee/criteria",
            &[("criteria", "merit | Merit | 价值 | 5\nbad line")],
        )
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(r.body.contains("Line 2:"), "{}", r.body);
    assert_eq!(
        al::criteria(w.store.as_ref()).unwrap(),
        al::default_criteria()
    );
    // The sign-ins were audited; nothing else was.
    let after = w.store.audit_entries(0, 100_000).unwrap();
    assert!(
        after[before..].iter().all(|e| e.action == "user.login"),
        "{:?}",
        after[before..]
            .iter()
            .map(|e| &e.action)
            .collect::<Vec<_>>()
    );
}

/// Every page renders in < 100 ms on demo-sized data (60 projects in every stage, 110
/// library definitions, 2 sites): the median of 5 renders per page, printed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_page_renders_under_100_ms() {
    let w = World::new();
    alliance(&w);
    al::import_library(
        w.store.as_ref(),
        std::path::Path::new("../../../shared/data/phenotypes-dev"),
        T,
    )
    .unwrap();
    let s = w.store.as_ref();
    let (spon, admin) = (common::u(&w, "spon"), common::u(&w, "admin"));
    for i in 0..60 {
        let id = format!("p{i:02}");
        al::create_project(
            s,
            &al::ProjectForm {
                id: id.clone(),
                title: format!("Project {i}"),
                summary: "Summary.".into(),
                target: "100".into(),
            },
            &spon,
            T,
        )
        .unwrap();
        let pid = id.parse().unwrap();
        if i % 3 > 0 {
            al::transition(s, &pid, Stage::Submitted, "go", &spon, T).unwrap();
        }
        if i % 3 > 1 {
            al::transition(s, &pid, Stage::Withdrawn, "stop", &admin, T).unwrap();
        }
    }
    let mut c = signed_in(&w, "admin").await;
    // p01 (submitted) with reviews assigned is a full project page.
    let mut report = Vec::new();
    for path in [
        "/",
        "/projects",
        "/projects/p01",
        "/institutions",
        "/committee",
        "/library",
        "/library/1003",
        "/sites",
        "/login",
        "/apply",
    ] {
        let mut times = Vec::new();
        for _ in 0..5 {
            let t0 = Instant::now();
            let r = c.get(path).await;
            times.push(t0.elapsed().as_secs_f64() * 1000.0);
            // Signed in, /login sends back to the dashboard; every other page is shown.
            let want = if path == "/login" {
                StatusCode::SEE_OTHER
            } else {
                StatusCode::OK
            };
            assert_eq!(r.status, want, "{path}");
            assert!(
                path == "/login" || r.body.len() > 1000,
                "{path}: {}",
                r.body
            );
        }
        times.sort_by(f64::total_cmp);
        let median = times[2];
        report.push(format!("{path}: {median:.2} ms"));
        assert!(median < 100.0, "{path} took {median:.1} ms");
    }
    eprintln!("page render medians (5 runs):\n{}", report.join("\n"));
}

/// Issue 15 item 5: characterization and incidence launched from a project's page, their
/// result pages (pooled and per site) and CSV, by role; the values are the sites' released
/// numbers pooled by the hub.
/// An alliance with two enrolled sites and the sponsor's approved project `rwe` (two cohorts:
/// 1. Back pain, 2. Back pain again), not yet in feasibility.
fn rwe_project(w: &World) -> qiao_hub::protocol::ProjectId {
    alliance(w);
    enroll_sites(w);
    let s = w.store.as_ref();
    let user = |id| common::u(w, id);
    let (spon, c2, c3) = (user("spon"), user("c2"), user("c3"));
    al::create_project(
        s,
        &al::ProjectForm {
            id: "rwe".into(),
            title: "RWE".into(),
            summary: "S".into(),
            target: "10".into(),
        },
        &spon,
        T,
    )
    .unwrap();
    let id: qiao_hub::protocol::ProjectId = "rwe".parse().unwrap();
    al::transition(s, &id, Stage::Submitted, "go", &spon, T).unwrap();
    let ids = [c2.id.clone(), c3.id.clone()];
    al::assign_reviewers(s, &id, &ids, "r", &user("admin"), T).unwrap();
    let good: std::collections::BTreeMap<String, String> =
        [("merit", "5"), ("feasibility", "4"), ("ethics", "4")]
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .into();
    for c in [&c2, &c3] {
        al::submit_review(s, &id, &good, "approve", "ok", c, T).unwrap();
    }
    al::decide_project(s, &id, true, "ok", &c3, T).unwrap();
    let def =
        std::fs::read_to_string("../../../shared/data/phenotypes-dev/cohorts/1173.json").unwrap();
    for name in ["Back pain", "Back pain again"] {
        al::attach_cohort(s, &id, name, &def, "", &spon, T).unwrap();
    }
    id
}

/// The sponsor launches a characterization of cohort 1 against cohort 2 with FE's default set
/// on the `rwe` project (a redirect to the run's page).
async fn launch_characterization(sp: &mut Client) -> common::Resp {
    let r = sp
        .submit(
            "/projects/rwe",
            "/projects/rwe/analyses",
            &[
                ("kind", "characterization"),
                ("target", "1"),
                ("comparator", "2"),
                ("analyses", ""),
                ("covariates", ""),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    r
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn analysis_pages_launch_show_and_export_by_role() {
    use qiao_hub::protocol::{
        CharacterizationResult, ContinuousResult, CovariateResult, IncidenceResult, IncidenceRow,
        Moments, PopulationResult, QueryType,
    };
    let w = World::new();
    let id = rwe_project(&w);
    let s = w.store.as_ref();
    let spon = common::u(&w, "spon");
    let mut sp = signed_in(&w, "spon").await;
    // Approved, not yet in feasibility: no forms, and a post is refused with the stage's reason.
    let page = sp.get("/projects/rwe").await;
    assert!(
        !page.body.contains("Run a characterization"),
        "{}",
        page.body
    );
    al::transition(s, &id, Stage::Feasibility, "f", &spon, T).unwrap();
    let page = sp.get("/projects/rwe").await;
    assert!(
        page.body.contains("Run a characterization")
            && page.body.contains("Run an incidence analysis")
    );
    // Bad input: the fields named, nothing run.
    let r = sp
        .submit(
            "/projects/rwe",
            "/projects/rwe/analyses",
            &[
                ("kind", "incidence"),
                ("target", "1"),
                ("outcome", "2"),
                ("tars", "start+0:later"),
                ("strata", "age"),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.body);
    assert!(
        r.body.contains("“start+0:later” is not a time at risk"),
        "{}",
        r.body
    );
    assert!(al::analysis_runs(s, &id).unwrap().is_empty());
    let r = launch_characterization(&mut sp).await;
    assert_eq!(
        r.location.as_deref(),
        Some("/projects/rwe/analyses/1?flash=flash.saved")
    );
    let r = sp
        .submit(
            "/projects/rwe",
            "/projects/rwe/analyses",
            &[
                ("kind", "incidence"),
                ("target", "1"),
                ("outcome", "2"),
                ("tars", "start+0:end+0\nstart+1:start+365"),
                ("clean_window", "30"),
                ("strata", "gender"),
                ("age_breaks", ""),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    let runs = al::analysis_runs(s, &id).unwrap();
    assert_eq!(runs.len(), 2);
    let job = |k: usize| w.store.job(&runs[k].job).unwrap().unwrap().job;
    let (cj, ij) = (job(0), job(1));
    match (&cj.query, &ij.query) {
        (QueryType::Characterization(c), QueryType::Incidence(i)) => {
            assert!(c.comparator.is_some() && c.analyses.is_empty());
            assert_eq!(
                (i.tars.len(), i.clean_window, i.strata.by_gender),
                (2, 30, true)
            );
            assert_eq!(i.tars[1].end.offset, 365);
        }
        other => panic!("{other:?}"),
    }
    // The sites answer (h1 and h2; threshold 10, counts under it withheld).
    let pop = |e, p| PopulationResult {
        entries: rel(e),
        subjects: rel(p),
    };
    let cov = |id: i64, a, t, c| CovariateResult {
        covariate_id: id,
        analysis_id: a,
        target: rel(t),
        comparator: Some(rel(c)),
    };
    let mom = |n, s, q| Moments {
        count: rel(n),
        sum: rel(s),
        sum_squares: rel(q),
        bin: 0,
        histogram: Vec::new(),
    };
    let char_result = |site: &str, te, ce, covs: Vec<CovariateResult>, cont| JobResult {
        job_id: cj.job_id,
        site_id: site.parse().unwrap(),
        outcome: Outcome::Done {
            payload: Payload::Characterization(CharacterizationResult {
                target: pop(te, te),
                comparator: Some(pop(ce, ce)),
                covariates: covs,
                continuous: cont,
                disclosure: no_disclosure(),
            }),
        },
    };
    let charlson = |t, c| ContinuousResult {
        covariate_id: 1901,
        analysis_id: 901,
        target: Some(t),
        comparator: Some(c),
    };
    w.store
        .put_result(
            &char_result(
                "h1",
                200,
                100,
                vec![
                    cov(8507001, 1, 120, 40),
                    cov(194133102, 102, 5, 30),
                    cov(2012006, 6, 1, 1),
                ],
                vec![charlson(mom(200, 300, 900), mom(100, 100, 250))],
            ),
            T,
        )
        .unwrap();
    w.store
        .put_result(
            &char_result(
                "h2",
                100,
                100,
                vec![cov(8507001, 1, 30, 50), cov(194133102, 102, 20, 10)],
                vec![charlson(mom(100, 100, 200), mom(100, 50, 60))],
            ),
            T,
        )
        .unwrap();
    let row = |g: Option<u32>, tar, par, days, po, out| IncidenceRow {
        tar_id: tar,
        age_group_id: None,
        gender_concept_id: g,
        start_year: None,
        persons_at_risk_pe: rel(par),
        persons_at_risk: rel(par),
        person_days_pe: rel(days),
        person_days: rel(days),
        person_outcomes_pe: rel(po),
        person_outcomes: rel(po),
        outcomes_pe: rel(out),
        outcomes: rel(out),
    };
    for (site, k) in [("h1", 2), ("h2", 1)] {
        let rows = [1, 2]
            .into_iter()
            .flat_map(|tar| {
                [
                    row(None, tar, 50 * k, 18_262 * k, 5 * k, 6 * k),
                    row(Some(8507), tar, 20 * k, 7_000 * k, 2 * k, 2 * k),
                    row(Some(8532), tar, 30 * k, 11_262 * k, 3 * k, 4 * k),
                ]
            })
            .collect();
        w.store
            .put_result(
                &JobResult {
                    job_id: ij.job_id,
                    site_id: site.parse().unwrap(),
                    outcome: Outcome::Done {
                        payload: Payload::Incidence(IncidenceResult {
                            rows,
                            disclosure: no_disclosure(),
                        }),
                    },
                },
                T,
            )
            .unwrap();
    }
    // The characterization page: sizes, the covariates named, the threshold said, the plot.
    let page = sp.get("/projects/rwe/analyses/1").await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    let b = &page.body;
    assert!(
        b.contains("Characterization of 1. Back pain against 2. Back pain again"),
        "{b}"
    );
    assert!(
        b.contains("gender = MALE") && b.contains(": Low back pain"),
        "{b}"
    );
    // Index year 2012: 1 of 300 and 1 of 200 entries at h1 (withheld there), under 1%.
    assert!(
        b.contains("1 covariates under 1.0% prevalence in every cohort are hidden"),
        "{b}"
    );
    assert!(!b.contains("index year: 2012"), "{b}");
    assert!(b.contains("under its minimum cell count (10)"), "{b}");
    assert!(
        b.contains("In this table 3 values are withheld at some site"),
        "{b}"
    );
    assert!(
        b.contains("<svg class=\"chart forest\" id=\"smd-plot\""),
        "{b}"
    );
    assert!(b.contains("<rect class=\"band\""), "{b}");
    let all = sp.get("/projects/rwe/analyses/1?min=0&q=2012").await;
    assert!(
        all.body.contains("index year: 2012") && !all.body.contains("gender = MALE"),
        "{}",
        all.body
    );
    let one = sp.get("/projects/rwe/analyses/1?site=h2").await;
    assert_eq!(one.status, StatusCode::OK);
    assert!(one.body.contains("<strong>h2</strong>"), "{}", one.body);
    assert_eq!(
        sp.get("/projects/rwe/analyses/1?site=nowhere").await.status,
        StatusCode::NOT_FOUND
    );
    // The CSV: the hub's pooled values, then each site's.
    let csv = sp.get("/projects/rwe/analyses/1/covariates.csv").await;
    assert_eq!(csv.status, StatusCode::OK, "{}", csv.body);
    let lines: Vec<&str> = csv.body.lines().collect();
    assert!(
        lines[0]
            .starts_with("scope,covariate_id,analysis_id,concept_id,name,target_shown,target_sum"),
        "{}",
        lines[0]
    );
    // Male: 150 of 300 target entries, 90 of 200 comparator; FE's SMD (comparator minus
    // target, over the pooled sd).
    let smd = (0.45 - 0.5) / ((0.5 * 0.5 + 0.45 * 0.55) / 2.0f64).sqrt();
    let male = lines
        .iter()
        .find(|l| l.starts_with("pooled,8507001,"))
        .expect("pooled male row");
    let f: Vec<&str> = male.split(',').collect();
    assert_eq!(
        &f[1..15],
        [
            "8507001",
            "1",
            "8507",
            "gender = MALE",
            "150",
            "150",
            "150",
            "150",
            "0.5",
            "90",
            "90",
            "90",
            "90",
            "0.45"
        ],
        "{male}"
    );
    assert!(
        (f[15].parse::<f64>().unwrap() - smd).abs() < 1e-12,
        "{male} vs {smd}"
    );
    // Low back pain: h1's 5 withheld (0–9), so the target total is 20 to 29.
    assert!(
        csv.body.contains("pooled,194133102,102,194133,ConditionOccurrenceLongTerm: Low back pain,20 (20–29),20,20,29,"),
        "{}",
        csv.body
    );
    assert!(
        csv.body
            .contains("\nh2,8507001,1,8507,gender = MALE,30,30,30,30,0.3,50,50,50,50,0.5,"),
        "{}",
        csv.body
    );
    let cont = sp.get("/projects/rwe/analyses/1/continuous.csv").await;
    // Charlson: counts 300 and 200, means over entries 400/300 and 150/200.
    assert!(
        cont.body.contains(&format!(
            "pooled,1901,901,CharlsonIndex,300,{},",
            400.0 / 300.0
        )),
        "{}",
        cont.body
    );
    // The incidence page: per time at risk a table and a rate chart with whiskers.
    let page = sp.get("/projects/rwe/analyses/2").await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    assert!(
        page.body.contains("Time at risk 2: start+1 → start+365"),
        "{}",
        page.body
    );
    assert!(page.body.contains("id=\"rate-1\"") && page.body.contains("class=\"whisker\""));
    assert!(page.body.contains("Outcome clean window: 30 days."));
    let inc = sp.get("/projects/rwe/analyses/2/incidence.csv").await;
    assert!(
        inc.body.starts_with(
            "scope,tar_id,age_group_id,gender_concept_id,start_year,persons_at_risk_pe,"
        ),
        "{}",
        inc.body
    );
    // Pooled, all persons, TAR 1: 150 persons, 54,786 days, 15 persons with 18 outcomes
    // (h2's 5 and 6 are under the threshold: withheld, their point 0 → 10 and 12).
    let pooled = inc
        .body
        .lines()
        .find(|l| l.starts_with("pooled,1,,,,"))
        .expect("pooled row");
    let f: Vec<&str> = pooled.split(',').collect();
    assert_eq!(
        &f[5..13],
        ["150", "150", "54786", "54786", "10", "10", "12", "12"],
        "{pooled}"
    );
    let ir: f64 = f[16].parse().unwrap();
    assert!((ir - 1200.0 / (54_786.0 / 365.25)).abs() < 1e-9, "{pooled}");
    let (lo, hi): (f64, f64) = (f[17].parse().unwrap(), f[18].parse().unwrap());
    assert!(lo < ir && ir < hi, "{pooled}");
    assert!(f[19].contains("person_outcomes: 10 (10–19)"), "{pooled}");
    // Issue 16: a survival analysis (target 1 against comparator 2, to outcome 2) on a 30-day
    // grid to 90 days; a bad grid is refused by name first.
    let surv = |grid: &'static str| {
        vec![
            ("kind", "survival"),
            ("target", "1"),
            ("comparator", "2"),
            ("outcome", "2"),
            ("tar", "start+0:obs_end"),
            ("grid_days", grid),
            ("horizon_days", "90"),
        ]
    };
    let r = sp
        .submit("/projects/rwe", "/projects/rwe/analyses", &surv("0"))
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.body);
    assert!(r.body.contains("$.grid_days"), "{}", r.body);
    let r = sp
        .submit("/projects/rwe", "/projects/rwe/analyses", &surv("30"))
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    let runs = al::analysis_runs(s, &id).unwrap();
    let sj = w.store.job(&runs[2].job).unwrap().unwrap().job;
    match &sj.query {
        QueryType::Survival(x) => {
            assert_eq!((x.grid_days, x.horizon_days, x.cells()), (30, 90, 4));
            assert!(x.comparator.is_some() && x.outcome.is_object());
        }
        other => panic!("{other:?}"),
    }
    // Per arm: persons followed, then events and censorings at days 0, 30, 60, 90 (under 10:
    // withheld, read as 0 by the hub).
    let arm = |n, ev: [u64; 4], ce: [u64; 4]| qiao_hub::protocol::RiskSetResult {
        entered: rel(n),
        events: ev.map(rel).to_vec(),
        censored: ce.map(rel).to_vec(),
    };
    for (site, t, c) in [
        (
            "h1",
            arm(100, [0, 20, 10, 0], [0, 10, 10, 50]),
            arm(60, [0, 10, 0, 0], [0, 0, 0, 50]),
        ),
        (
            "h2",
            arm(50, [0, 10, 0, 0], [0, 0, 10, 30]),
            arm(40, [0, 5, 0, 0], [0, 0, 10, 25]),
        ),
    ] {
        w.store
            .put_result(
                &JobResult {
                    job_id: sj.job_id,
                    site_id: site.parse().unwrap(),
                    outcome: Outcome::Done {
                        payload: Payload::Survival(qiao_hub::protocol::SurvivalResult {
                            target: t,
                            comparator: Some(c),
                            disclosure: no_disclosure(),
                        }),
                    },
                },
                T,
            )
            .unwrap();
    }
    let page = sp.get("/projects/rwe/analyses/3").await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    let b = &page.body;
    assert!(
        b.contains("Time to 2. Back pain again: 1. Back pain against 2. Back pain again"),
        "{b}"
    );
    assert!(
        b.contains("<svg class=\"chart km\" id=\"km\"")
            && b.matches("<polygon class=\"band\"").count() == 2,
        "{b}"
    );
    assert!(b.contains("log(−log) scale"), "{b}");
    // What was withheld, per site and arm (zeros are under the threshold too).
    assert!(
        b.contains("h2, 2. Back pain again: 6 of 8 counts withheld (counted as 0), 0 noised."),
        "{b}"
    );
    // The log-rank test on the pooled tables (target 150, comparator 100 — h2's 5 events read
    // as 0): events at day 30 (30 vs 10 of 150 and 100 at risk) and day 60 (10 vs 0 of 110
    // and 90).
    let v = |na: f64, nb: f64, d: f64| {
        let n = na + nb;
        na * nb * d * (n - d) / (n * n * (n - 1.0))
    };
    let chi2 =
        (30.0 - 24.0 + 10.0 - 5.5f64).powi(2) / (v(150.0, 100.0, 40.0) + v(110.0, 90.0, 10.0));
    assert!(
        b.contains(&format!("Log-rank test: χ² {chi2:.3}, 1 df")),
        "{chi2}: {b}"
    );
    // The at-risk table under the plot: days 0, 30, 90 … (past the horizon: 0 at risk).
    assert!(b.contains("Number at risk"), "{b}");
    let csv = sp.get("/projects/rwe/analyses/3/km.csv").await;
    assert_eq!(csv.status, StatusCode::OK, "{}", csv.body);
    assert!(
        csv.body
            .starts_with("scope,arm,time,at_risk,events,censored,survival,std_err,lower,upper\n"),
        "{}",
        csv.body
    );
    // Pooled target: S(30) = 1 − 30/150 with the exponential-Greenwood interval; S(60) =
    // 0.8 · 100/110.
    let row = |scope: &str, arm: &str, time: u32| -> Vec<f64> {
        let head = format!("{scope},{arm},{time},");
        let line = csv
            .body
            .lines()
            .find(|l| l.starts_with(&head))
            .unwrap_or_else(|| panic!("{head}: {}", csv.body));
        line[head.len()..]
            .split(',')
            .map(|x| x.parse().unwrap())
            .collect()
    };
    let r30 = row("pooled", "target", 30);
    let (sv, var) = (0.8f64, 30.0 / (150.0 * 120.0));
    let z = 1.959963984540054f64;
    let se_log = (var / sv.ln().powi(2)).sqrt();
    let want = [
        150.0,
        30.0,
        10.0,
        sv,
        sv * var.sqrt(),
        sv.powf((z * se_log).exp()),
        sv.powf((-z * se_log).exp()),
    ];
    for (got, want) in r30.iter().zip(want) {
        assert!((got - want).abs() < 1e-12, "{r30:?} vs {want}");
    }
    assert!((row("pooled", "target", 60)[3] - 0.8 * 100.0 / 110.0).abs() < 1e-12);
    // h1 alone: its own curve, S(30) = 1 − 20/100.
    assert!((row("h1", "target", 30)[3] - 0.8).abs() < 1e-12);
    let one = sp.get("/projects/rwe/analyses/3?site=h1").await;
    assert_eq!(one.status, StatusCode::OK);
    assert!(
        one.body.contains("<strong>h1</strong>") && !one.body.contains("h2, 2. Back pain again"),
        "{}",
        one.body
    );
    // Who may see them: the oversight roles and the project's sponsor; not other sites'
    // people (not invited), anonymous sent to sign in; a run that does not exist is a 404.
    use UserRole::*;
    let see: &[UserRole] = &[AllianceAdmin, CommitteeMember, SponsorResearcher, Auditor];
    w.user("aud", UserRole::Auditor, None, None);
    let paths = [
        "/projects/rwe/analyses/1",
        "/projects/rwe/analyses/2?site=h1",
        "/projects/rwe/analyses/1/covariates.csv",
        "/projects/rwe/analyses/1/continuous.csv",
        "/projects/rwe/analyses/2/incidence.csv",
        "/projects/rwe/analyses/3/km.csv",
    ];
    let mut checked = 0;
    for (name, role) in ROLES {
        let mut c = w.client();
        if !name.is_empty() {
            c.login(name).await;
        }
        for p in paths {
            let want = if name.is_empty() {
                StatusCode::SEE_OTHER
            } else if see.contains(&role) {
                StatusCode::OK
            } else {
                StatusCode::FORBIDDEN
            };
            assert_eq!(c.get(p).await.status, want, "GET {p} as {name:?}");
            checked += 1;
        }
        if !name.is_empty() {
            // Only the project's sponsor launches.
            let r = c
                .submit(
                    "/",
                    "/projects/rwe/analyses",
                    &[("kind", "characterization"), ("target", "1")],
                )
                .await;
            let want = if role == SponsorResearcher {
                StatusCode::SEE_OTHER
            } else {
                StatusCode::FORBIDDEN
            };
            assert_eq!(r.status, want, "POST as {name}");
            checked += 1;
        }
    }
    assert_eq!(checked, 7 * 6 + 6);
    assert_eq!(
        sp.get("/projects/rwe/analyses/9").await.status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        sp.get("/projects/rwe/analyses/2/covariates.csv")
            .await
            .status,
        StatusCode::NOT_FOUND
    );
}

/// Continuous covariates released under DP: the page states the declared range and bin width
/// of each and shows FE's min, quantiles and max as the hub derives them from the sites' noised
/// histograms added together (en and zh-CN), and the CSV carries them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn characterization_page_shows_dp_quantiles_and_declared_ranges() {
    use qiao_hub::protocol::{
        CharacterizationResult, ContinuousResult, DpParams, Moments, PopulationResult,
    };
    let w = World::new();
    let id = rwe_project(&w);
    let s = w.store.as_ref();
    al::transition(s, &id, Stage::Feasibility, "f", &common::u(&w, "spon"), T).unwrap();
    let mut sp = signed_in(&w, "spon").await;
    launch_characterization(&mut sp).await;
    let run = &al::analysis_runs(s, &id).unwrap()[0];
    let job = w.store.job(&run.job).unwrap().unwrap().job;
    let dp = |v: u64| Released::Dp {
        value: (v >= 10).then_some(v),
        sigma: 2.5,
        threshold: 10,
    };
    // A histogram of `bins` bins holding `n` entries in each of `cells` (bin, n).
    let moments = |bins: usize, bin: u64, cells: &[(usize, u64)]| {
        let mut h = vec![0u64; bins];
        for &(k, n) in cells {
            h[k] += n;
        }
        let k = |i: usize| i as u64;
        Moments {
            count: dp(h.iter().sum()),
            sum: dp(h.iter().enumerate().map(|(i, n)| k(i) * n).sum()),
            sum_squares: dp(h.iter().enumerate().map(|(i, n)| k(i) * k(i) * n).sum()),
            bin,
            histogram: h.into_iter().map(dp).collect(),
        }
    };
    let pop = |n| PopulationResult {
        entries: dp(n),
        subjects: dp(n),
    };
    // Age (0–120 years, bin 1: 121 bins) and prior observation time (0–36,599 days, bins of
    // 366: 100 bins). h1: target ages 40 and 60 (100 each), comparator 30; h2: target 50 and
    // 70 (50 each), comparator 80. Prior observation: h1's target in bin 1, h2's in bin 3.
    let site =
        |name: &str, te, ce, age: [&[(usize, u64)]; 2], prior: [&[(usize, u64)]; 2]| JobResult {
            job_id: job.job_id,
            site_id: name.parse().unwrap(),
            outcome: Outcome::Done {
                payload: Payload::Characterization(CharacterizationResult {
                    target: pop(te),
                    comparator: Some(pop(ce)),
                    covariates: Vec::new(),
                    continuous: vec![
                        ContinuousResult {
                            covariate_id: 1002,
                            analysis_id: 2,
                            target: Some(moments(121, 1, age[0])),
                            comparator: Some(moments(121, 1, age[1])),
                        },
                        ContinuousResult {
                            covariate_id: 1008,
                            analysis_id: 8,
                            target: Some(moments(100, 366, prior[0])),
                            comparator: Some(moments(100, 366, prior[1])),
                        },
                    ],
                    disclosure: DisclosureSummary {
                        min_cell_count: 10,
                        obfuscation: None,
                        secondary_suppression: false,
                        dp: Some(DpParams {
                            rho_spent: 0.5,
                            sigma: 2.5,
                            entries_bound: 1,
                            remaining_rho: 1.0,
                            user_remaining_rho: None,
                            organization_remaining_rho: None,
                        }),
                    },
                }),
            },
        };
    w.store
        .put_result(
            &site(
                "h1",
                200,
                100,
                [&[(40, 100), (60, 100)], &[(30, 100)]],
                [&[(1, 200)], &[(2, 100)]],
            ),
            T,
        )
        .unwrap();
    w.store
        .put_result(
            &site(
                "h2",
                100,
                100,
                [&[(50, 50), (70, 50)], &[(80, 100)]],
                [&[(3, 100)], &[(2, 100)]],
            ),
            T,
        )
        .unwrap();
    let path = format!("/projects/rwe/analyses/{}", run.n);
    let page = sp.get(&path).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    let b = &page.body;
    // The statement, and each covariate's range and bin.
    assert!(
        b.contains("releases a histogram of that range in bins of width w with Gaussian noise")
            && b.contains("The column “Declared range, bin width w” names"),
        "{b}"
    );
    assert!(
        b.contains("<td class=\"range\">0–120 years, w = 1</td>"),
        "{b}"
    );
    assert!(
        b.contains("<td class=\"range\">0–36,599 days, w = 366</td>"),
        "{b}"
    );
    // Age, target: 300 entries (40: 100, 50: 50, 60: 100, 70: 50); FE's rule gives min 40,
    // p10 40, p25 40, median 50 (150 of 300), p75 60, p90 70, max 70; mean 16,000 / 300,
    // sd √((300·890,000 − 16,000²) / (300·299)) = 11.07. Comparator: 30 and 80 (100 each).
    let cells = |xs: &[&str]| {
        xs.iter()
            .map(|x| format!("<td class=\"num\">{x}</td>"))
            .collect::<String>()
    };
    // The counts are DP counts, shown with their 95% range.
    let age_target = cells(&[
        "300 (293–307)†",
        "53.33",
        "11.07",
        "40.00",
        "40.00",
        "40.00",
        "50.00",
        "60.00",
        "70.00",
        "70.00",
    ]);
    let age_comparator = cells(&[
        "200 (193–207)†",
        "55.00",
        "25.06",
        "30.00",
        "30.00",
        "30.00",
        "30.00",
        "80.00",
        "80.00",
        "80.00",
    ]);
    assert!(
        b.contains(&format!("{age_target}{age_comparator}")),
        "{age_target}{age_comparator} not in {b}"
    );
    // Prior observation, target: bin 1 (200) and bin 3 (100), midpoints 366 + 182.5 and
    // 3·366 + 182.5.
    let prior = cells(&[
        "548.50", "548.50", "548.50", "548.50", "1,280.50", "1,280.50", "1,280.50",
    ]);
    assert!(b.contains(&prior), "{prior} not in {b}");
    // The same in Chinese.
    let mut zh = signed_in(&w, "spon").await;
    zh.get(&format!("/lang?to=zh-CN&next={path}")).await;
    let b = zh.get(&path).await.body;
    assert!(b.contains("<html lang=\"zh-CN\">"), "{b}");
    assert!(
        b.contains("按宽度为 w 的分箱发布该范围的直方图")
            && b.contains("<td class=\"range\">0–120 岁，w = 1</td>")
            && b.contains("<td class=\"range\">0–36,599 天，w = 366</td>")
            && b.contains("<th class=\"num\">中位数</th>"),
        "{b}"
    );
    // Chinese shows a DP count's range in full-width parentheses.
    let zh_cells = age_target.replace("300 (293–307)†", "300（293–307）†");
    assert!(b.contains(&zh_cells), "{zh_cells} not in {b}");
    // The CSV: the range and the derived statistics of each side.
    let csv = sp.get(&format!("{path}/continuous.csv")).await.body;
    let header: Vec<&str> = csv.lines().next().unwrap().split(',').collect();
    let row: Vec<&str> = csv
        .lines()
        .find(|l| l.starts_with("pooled,1002,"))
        .expect("pooled age row")
        .split(',')
        .collect();
    let col = |name: &str| row[header.iter().position(|h| *h == name).expect(name)];
    assert_eq!(
        (col("range_max"), col("range_bin"), col("range_unit")),
        ("120", "1", "years")
    );
    let stats = ["min", "p10", "p25", "median", "p75", "p90", "max"];
    let side = |s: &str| stats.map(|q| col(&format!("{s}_{q}")).parse::<f64>().unwrap());
    assert_eq!(side("target"), [40.0, 40.0, 40.0, 50.0, 60.0, 70.0, 70.0]);
    assert_eq!(
        side("comparator"),
        [30.0, 30.0, 30.0, 30.0, 80.0, 80.0, 80.0]
    );
}

/// A site's covariates for the portal's regression test: treatment (target = 1) and age in
/// decades, times and events from a fixed linear congruential sequence (risk rising with both).
fn regression_site(n: usize, seed: u64) -> qiao_analysis::regression::SiteData {
    use qiao_analysis::regression::{Guard, Model, SiteData};
    let mut s = seed;
    let mut next = move || {
        s = s
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (s >> 11) as f64 / (1u64 << 53) as f64
    };
    let (mut treat, mut age, mut time, mut event) = (vec![], vec![], vec![], vec![]);
    for _ in 0..n {
        let t = f64::from(u8::from(next() < 0.5));
        let a = 3.0 + next() * 5.0;
        let risk = (0.6 * t + 0.2 * (a - 5.0)).exp();
        time.push(1 + (next() * 400.0 / risk) as i32);
        event.push(next() < 0.6);
        treat.push(t);
        age.push(a);
    }
    let names = ["treatment".to_string(), "age".to_string()];
    SiteData::new(
        Model::Cox,
        &names,
        &[treat, age],
        &time,
        &event,
        &Guard::new(10),
    )
    .unwrap()
}

/// Issue 16: a federated Cox regression launched from the project page is a run at the hub;
/// its page follows the rounds, names the site a failed round waits on and resumes it, then
/// shows the coefficients and the hazard ratios (forest plot on a log axis) equal to the
/// in-process fit over the same sites, and the coefficients as CSV; by role.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn regression_runs_launch_follow_resume_and_show_the_fit() {
    use qiao_analysis::regression::{fit, Model, SiteSums};
    use qiao_hub::protocol::{
        FailureKind, QueryType, RealSum, RegressionCovariate, RegressionModel, RegressionSums,
    };
    use qiao_hub::service::runs::{self, RunRecord, RunStatus, RUNS};
    let w = World::new();
    let id = rwe_project(&w);
    let s = w.store.as_ref();
    let spon = common::u(&w, "spon");
    al::transition(s, &id, Stage::Feasibility, "f", &spon, T).unwrap();
    let mut sp = signed_in(&w, "spon").await;
    let page = sp.get("/projects/rwe").await;
    assert!(page
        .body
        .contains("Run a regression (logistic or Cox, federated)"));
    // Bad input: every field named, nothing run.
    let form = |model: &'static str, covariates: &'static str| {
        vec![
            ("kind", "regression"),
            ("model", model),
            ("target", "1"),
            ("comparator", "2"),
            ("outcome", "2"),
            ("tar", "start+0:obs_end"),
            ("covariates", covariates),
        ]
    };
    let r = sp
        .submit(
            "/projects/rwe",
            "/projects/rwe/analyses",
            &form("probit", "age, fe:8507001, bmi"),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.body);
    // The first problem of each field is shown at it.
    assert!(
        r.body
            .contains("“fe:8507001”: FeatureExtraction covariates are not yet computed")
            && r.body
                .contains("<p class=\"field-error\" id=\"err-model\">"),
        "{}",
        r.body
    );
    assert!(al::analysis_runs(s, &id).unwrap().is_empty());
    // Cox of outcome 2 in 1 against 2, adjusted for age: treatment first, then age.
    let r = sp
        .submit(
            "/projects/rwe",
            "/projects/rwe/analyses",
            &form("cox", "age"),
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    assert_eq!(
        r.location.as_deref(),
        Some("/projects/rwe/analyses/1?flash=flash.saved")
    );
    let rec = al::analysis_run(s, &id, 1).unwrap().unwrap();
    let run_id = rec.run.expect("a run id");
    let run = |w: &World| -> RunRecord {
        w.store
            .read_with(|tx| qiao_hub::store::get_json(tx, RUNS, &run_id.to_string()))
            .unwrap()
            .unwrap()
    };
    let r0 = run(&w);
    assert_eq!(r0.rounds[0].job_id, rec.job);
    assert_eq!(r0.spec.model, RegressionModel::Cox);
    assert_eq!(r0.spec.covariates, [RegressionCovariate::Age]);
    assert!(r0.spec.comparator.is_some() && r0.spec.outcome.is_object());
    assert_eq!(r0.names.len(), 2);
    assert_eq!(r0.sites.len(), 2);
    let page = sp.get("/projects/rwe/analyses/1").await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    assert!(
        page.body.contains(
            "Cox proportional hazards: 2. Back pain again, 1. Back pain against 2. Back pain again"
        ) && page
            .body
            .contains("Running: round 0, 0 of 2 sites have answered; 1 rounds so far."),
        "{}",
        page.body
    );
    // The sites answer each round with their sums at its coefficients; h2 fails round 1.
    let sites = [
        ("h1", regression_site(300, 1)),
        ("h2", regression_site(250, 2)),
    ];
    let answer = |w: &World, site: &str, data: Option<&qiao_analysis::regression::SiteData>| {
        let r = run(w);
        let round = r.current().unwrap();
        let outcome = match data {
            Some(d) => {
                let x: SiteSums = d.sums(&round.coefficients);
                let real = |value| RealSum { value };
                Outcome::Done {
                    payload: Payload::RegressionRound(RegressionSums {
                        persons: Released::Exact { value: x.n },
                        events: Released::Exact { value: x.events },
                        loglik: real(x.loglik),
                        gradient: x.gradient.iter().copied().map(real).collect(),
                        hessian: x.hessian.iter().copied().map(real).collect(),
                        disclosure: no_disclosure(),
                    }),
                }
            }
            None => Outcome::Failed {
                error: FailureKind::Internal,
            },
        };
        w.store
            .put_result(
                &JobResult {
                    job_id: round.job_id,
                    site_id: site.parse().unwrap(),
                    outcome,
                },
                T,
            )
            .unwrap();
        runs::advance(w.store.as_ref(), &round.job_id, T).unwrap();
    };
    for (site, data) in &sites {
        answer(&w, site, Some(data));
    }
    assert_eq!(run(&w).rounds.len(), 2);
    answer(&w, "h1", Some(&sites[0].1));
    let page = sp.get("/projects/rwe/analyses/1").await;
    assert!(
        page.body
            .contains("Running: round 1, 1 of 2 sites have answered; 2 rounds so far."),
        "{}",
        page.body
    );
    answer(&w, "h2", None);
    assert_eq!(run(&w).status, RunStatus::Failed);
    let page = sp.get("/projects/rwe/analyses/1").await;
    assert!(
        page.body
            .contains("Failed at round 1; without sums from: h2.")
            && page.body.contains("round 1: site h2 failed (internal)")
            && page
                .body
                .contains("action=\"/projects/rwe/analyses/1/resume\""),
        "{}",
        page.body
    );
    // Who may resume: the project's sponsor; every other role is refused, anonymous sent to
    // sign in; and who may see the run and its CSV.
    use UserRole::*;
    let see: &[UserRole] = &[AllianceAdmin, CommitteeMember, SponsorResearcher, Auditor];
    w.user("aud", UserRole::Auditor, None, None);
    let mut checked = 0;
    for (name, role) in ROLES {
        let mut c = w.client();
        if !name.is_empty() {
            c.login(name).await;
        }
        for p in [
            "/projects/rwe/analyses/1",
            "/projects/rwe/analyses/1/coefficients.csv",
        ] {
            let want = if name.is_empty() {
                StatusCode::SEE_OTHER
            } else if see.contains(&role) {
                StatusCode::OK
            } else {
                StatusCode::FORBIDDEN
            };
            assert_eq!(c.get(p).await.status, want, "GET {p} as {name:?}");
            checked += 1;
        }
        if !name.is_empty() && role != SponsorResearcher {
            let r = c.submit("/", "/projects/rwe/analyses/1/resume", &[]).await;
            assert_eq!(r.status, StatusCode::FORBIDDEN, "resume as {name}");
            checked += 1;
        }
    }
    assert_eq!(checked, 7 * 2 + 5);
    assert_eq!(run(&w).status, RunStatus::Failed);
    let r = sp
        .submit(
            "/projects/rwe/analyses/1",
            "/projects/rwe/analyses/1/resume",
            &[],
        )
        .await;
    assert_eq!(
        r.location.as_deref(),
        Some("/projects/rwe/analyses/1?flash=flash.resumed"),
        "{}",
        r.body
    );
    let resumed = run(&w);
    assert_eq!(resumed.status, RunStatus::Running);
    assert_eq!(resumed.rounds.len(), 2);
    assert_eq!(resumed.rounds[1].round, 1);
    match &w
        .store
        .job(&resumed.rounds[1].job_id)
        .unwrap()
        .unwrap()
        .job
        .query
    {
        QueryType::RegressionRound(r) => assert_eq!(r.round, 1),
        other => panic!("{other:?}"),
    }
    // Both answer until the run ends.
    for _ in 0..60 {
        if run(&w).status != RunStatus::Running {
            break;
        }
        for (site, data) in &sites {
            answer(&w, site, Some(data));
        }
    }
    let done = run(&w);
    assert_eq!(done.status, RunStatus::Converged, "{:?}", done.failure);
    // The same fit in process over the two sites.
    let want = fit(
        Model::Cox,
        &done.names,
        &mut sites.iter().map(|(_, d)| d).collect::<Vec<_>>(),
    )
    .unwrap();
    let got = done.fit.clone().unwrap();
    assert_eq!(
        (got.n, got.events, got.iterations),
        (550, want.events, want.iterations)
    );
    let page = sp.get("/projects/rwe/analyses/1").await;
    let b = &page.body;
    let treatment = &want.coefficients[0];
    assert!(treatment.ratio > 1.2, "{want:?}");
    let hr = format!(
        "{:.3} ({:.3}–{:.3})",
        treatment.ratio, treatment.ratio_lower, treatment.ratio_upper
    );
    assert!(
        b.contains(&format!("<td class=\"num ratio\">{hr}</td>")),
        "{hr}: {b}"
    );
    assert!(
        b.contains(&format!(
            "Converged after {} Newton–Raphson iterations",
            want.iterations
        )) && b.contains("550 persons")
            && b.contains("<svg class=\"chart forest log\" id=\"ratio-plot\"")
            && b.contains("Hazard ratios with 95% intervals (log scale")
            && b.matches("class=\"whisker\"").count() == 2
            && b.contains("at least 10 persons in each level of the outcome")
            && !b.contains("action=\"/projects/rwe/analyses/1/resume\""),
        "{b}"
    );
    let csv = sp.get("/projects/rwe/analyses/1/coefficients.csv").await;
    let mut lines = csv.body.lines();
    assert_eq!(
        lines.next(),
        Some("model,name,beta,se,z,p,lower,upper,ratio,ratio_lower,ratio_upper,n,events,iterations,converged")
    );
    for (line, c) in lines.zip(&want.coefficients) {
        let f: Vec<&str> = line.split(',').collect();
        assert_eq!(f[0], "cox");
        let x: Vec<f64> = f[2..11].iter().map(|v| v.parse().unwrap()).collect();
        let w = [
            c.beta,
            c.se,
            c.z,
            c.p,
            c.lower,
            c.upper,
            c.ratio,
            c.ratio_lower,
            c.ratio_upper,
        ];
        for (a, b) in x.iter().zip(w) {
            assert!((a - b).abs() <= 1e-12 * b.abs().max(1.0), "{line} vs {c:?}");
        }
        assert_eq!(
            f[11..],
            [
                "550",
                &want.events.to_string(),
                &want.iterations.to_string(),
                "true"
            ]
        );
    }
    // A converged run does not resume.
    let r = sp
        .submit(
            "/projects/rwe/analyses/1",
            "/projects/rwe/analyses/1/resume",
            &[],
        )
        .await;
    assert_eq!(
        r.location.as_deref(),
        Some("/projects/rwe/analyses/1?flash=flash.err_not_failed")
    );
}
