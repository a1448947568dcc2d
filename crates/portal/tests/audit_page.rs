//! The auditor's page: filters, paging, CSV export, the chain verification result, the roles.

mod common;

use axum::http::StatusCode;
use common::{alliance, World};
use qiao_hub::audit::{Actor, EntryDraft};
use qiao_hub::protocol::UserRole;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_audit_page_filters_pages_exports_and_verifies() {
    let w = World::new();
    alliance(&w);
    w.user("aud", UserRole::Auditor, None, None);
    for i in 0..120 {
        w.store
            .audit(
                EntryDraft::new(1_790_000_000 + i, Actor::User("spon".into()), "demo.event")
                    .project(if i % 2 == 0 { "p-even" } else { "p-odd" })
                    .decision(format!("=event {i}, \"quoted\"")),
            )
            .unwrap();
    }
    let mut aud = w.client();
    aud.login("aud").await;
    let r = aud.get("/audit?action=demo.&project=p-even").await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(r.body.contains("Hash chain verified"), "{}", r.body);
    assert!(
        r.body.contains("60 entries selected · page 1 of 1"),
        "{}",
        r.body
    );
    let r = aud.get("/audit?action=demo.").await;
    assert!(
        r.body.contains("120 entries selected · page 1 of 2"),
        "{}",
        r.body
    );
    // Newest first: page 1 has event 119, page 2 has event 0.
    assert!(r.body.contains("=event 119") && !r.body.contains("=event 0,"));
    let r2 = aud.get("/audit?action=demo.&page=2").await;
    assert!(r2.body.contains("=event 0,") && r2.body.contains("id=\"prev\""));
    // Dates: the day of 1_790_000_000 (2026-09-21) only.
    let r = aud.get("/audit?action=demo.&from=2026-09-22").await;
    assert!(r.body.contains("0 entries selected"), "{}", r.body);
    let r = aud
        .get("/audit?actor=user:spon&from=2026-09-21&to=2026-09-21")
        .await;
    assert!(r.body.contains("120 entries selected"), "{}", r.body);
    // CSV of the selection: quoted, formula-safe.
    let csv = aud
        .get("/audit?action=demo.&project=p-odd&format=csv")
        .await;
    assert_eq!(csv.status, StatusCode::OK);
    assert!(csv.headers["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/csv"));
    let lines: Vec<&str> = csv.body.lines().collect();
    assert_eq!(lines.len(), 61);
    assert!(lines[0].starts_with("seq,time_utc,actor,action,project"));
    assert!(
        lines[1].contains(",p-odd,,\"'=event 119, \"\"quoted\"\"\","),
        "{}",
        lines[1]
    );
    // Chinese.
    aud.lang = Some("zh-CN");
    let zh = aud.get("/audit").await;
    assert!(zh.body.contains("哈希链已验证"), "{}", zh.body);
    // Times and date filters in the page language's zone: 2026-09-21 22:33 UTC is the 22nd in
    // Beijing time, the 21st in UTC (the English page).
    w.store
        .audit(EntryDraft::new(1_790_030_000, Actor::System, "late.event"))
        .unwrap();
    let zh = aud.get("/audit?action=late.&from=2026-09-22").await;
    assert!(zh.body.contains("已选 1 条"), "{}", zh.body);
    assert!(
        zh.body.contains("2026年9月22日 06:33（北京时间）"),
        "{}",
        zh.body
    );
    aud.lang = Some("en");
    let en = aud.get("/audit?action=late.&from=2026-09-22").await;
    assert!(en.body.contains("0 entries selected"), "{}", en.body);
    let en = aud.get("/audit?action=late.&to=2026-09-21").await;
    assert!(en.body.contains("21 Sep 2026 22:33 UTC"), "{}", en.body);
    aud.lang = Some("zh-CN");
    // Roles: auditors and admins only.
    for (user, want) in [
        ("admin", StatusCode::OK),
        ("spon", StatusCode::FORBIDDEN),
        ("c2", StatusCode::FORBIDDEN),
        ("stew1", StatusCode::FORBIDDEN),
        ("inv1", StatusCode::FORBIDDEN),
    ] {
        let mut c = w.client();
        c.login(user).await;
        assert_eq!(c.get("/audit").await.status, want, "{user}");
        assert_eq!(c.get("/audit?format=csv").await.status, want, "{user} csv");
    }
    assert_eq!(w.client().get("/audit").await.status, StatusCode::SEE_OTHER);
}
