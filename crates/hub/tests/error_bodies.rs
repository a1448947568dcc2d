//! What an API client reads when the hub refuses: status and JSON body of every kind of error
//! (401, 403, 404, 409, 400 and 422 with the JSON path of the bad field, 413, 429), pinned by
//! the golden file `tests/golden/error_bodies.txt`. `QIAO_BLESS=1` rewrites it; a diff fails.

mod common;

use common::*;
use qiao_hub::api::HubConfig;
use qiao_hub::audit::Actor;
use qiao_hub::client::HubClient;
use qiao_hub::protocol::UserRole;
use serde_json::json;

/// One refusal: what was asked, as whom, and the answer.
fn case(
    out: &mut String,
    name: &str,
    client: &HubClient,
    method: &str,
    path: &str,
    body: Option<&str>,
) {
    let r = client
        .raw(method, path, body.map(str::as_bytes))
        .expect("request");
    let text = serde_json::to_string_pretty(&r.json()).expect("JSON");
    out.push_str(&format!("== {name}\n{method} {path}\n"));
    if let Some(b) = body {
        out.push_str(&format!("{}\n", b.chars().take(200).collect::<String>()));
    }
    out.push_str(&format!("-> {}\n{text}\n\n", r.status));
}

#[test]
fn error_bodies_match_the_golden_file() {
    let ts = redb();
    let store = ts.store.clone();
    let sys = Actor::System;
    store.create_site(&site("h1"), &sys, 1).unwrap();
    let mut tokens = Vec::new();
    for (name, role) in [
        ("admin", UserRole::AllianceAdmin),
        ("alice", UserRole::SponsorResearcher),
        ("bob", UserRole::SponsorResearcher),
    ] {
        store.create_user(&user(name, role), &sys, 1).unwrap();
        let token = api_token(store.as_ref(), &format!("qiao-t-golden-{name}"), name);
        tokens.push(token);
    }
    store
        .create_project(&project("p1", true, &["alice"]), &sys, 1)
        .unwrap();
    let hub = start_hub(store.clone(), HubConfig::default());
    let url = hub.url();
    let client = || HubClient::new(&url, None).unwrap();
    let anon = client();
    let admin = client().with_token(tokens[0].clone());
    let alice = client().with_token(tokens[1].clone());
    let bob = client().with_token(tokens[2].clone());
    let forged = client().with_token("qiao-t-not-a-token");
    let query = json!({"query_type": "cohort_count", "definition": definition()}).to_string();

    let mut out = String::new();
    let o = &mut out;
    case(o, "401 no token", &anon, "GET", "/api/v1/me", None);
    case(o, "401 unknown token", &forged, "GET", "/api/v1/me", None);
    let wrong = json!({"username": "alice", "password": "not her password"}).to_string();
    case(
        o,
        "401 wrong password",
        &anon,
        "POST",
        "/api/v1/login",
        Some(&wrong),
    );
    case(
        o,
        "403 role",
        &alice,
        "POST",
        "/api/v1/sites",
        Some(r#"{"id": "h9", "name": "H9"}"#),
    );
    case(
        o,
        "403 not a member",
        &bob,
        "POST",
        "/api/v1/projects/p1/queries",
        Some(&query),
    );
    case(
        o,
        "404 endpoint",
        &alice,
        "GET",
        "/api/v1/nothing-here",
        None,
    );
    case(o, "404 project", &admin, "GET", "/api/v1/projects/p9", None);
    case(
        o,
        "404 job",
        &alice,
        "GET",
        "/api/v1/jobs/00000000000000000000000000000000",
        None,
    );
    case(
        o,
        "409 existing site",
        &admin,
        "POST",
        "/api/v1/sites",
        Some(r#"{"id": "h1", "name": "Again"}"#),
    );
    case(
        o,
        "400 invalid id",
        &admin,
        "GET",
        "/api/v1/projects/Not%20An%20Id",
        None,
    );
    case(
        o,
        "400 invalid JSON",
        &alice,
        "POST",
        "/api/v1/projects/p1/queries",
        Some("{\"query_type\": "),
    );
    case(
        o,
        "422 unknown field",
        &alice,
        "POST",
        "/api/v1/projects/p1/queries",
        Some(r#"{"query_type": "cohort_count", "definition": {}, "colour": 1}"#),
    );
    case(
        o,
        "422 wrong type in a list",
        &alice,
        "POST",
        "/api/v1/projects/p1/queries",
        Some(r#"{"query_type": "cohort_count", "definition": {}, "sites": ["h1", 7]}"#),
    );
    case(
        o,
        "422 unknown query type",
        &alice,
        "POST",
        "/api/v1/projects/p1/queries",
        Some(r#"{"query_type": "everything", "definition": {}}"#),
    );
    case(
        o,
        "422 missing field",
        &admin,
        "POST",
        "/api/v1/users",
        Some(r#"{"id": "carol", "role": "auditor"}"#),
    );
    let big = format!("{{\"pad\": \"{}\"}}", "x".repeat(3 * 1024 * 1024));
    case(
        o,
        "413 body too large",
        &admin,
        "POST",
        "/api/v1/users",
        Some(&big),
    );
    for _ in 0..5 {
        let _ = anon.raw("POST", "/api/v1/login", Some(wrong.as_bytes()));
    }
    case(
        o,
        "429 sign-in limit",
        &anon,
        "POST",
        "/api/v1/login",
        Some(&wrong),
    );
    // The wait left depends on the clock: the golden file keeps its shape.
    let out = redact_seconds(&out);
    golden("error_bodies.txt", &out);
}

/// `retry in 59 s` → `retry in N s`.
fn redact_seconds(s: &str) -> String {
    let re = "retry in ";
    let mut out = String::new();
    let mut rest = s;
    while let Some(i) = rest.find(re) {
        out.push_str(&rest[..i + re.len()]);
        rest = rest[i + re.len()..].trim_start_matches(|c: char| c.is_ascii_digit());
        out.push('N');
    }
    out.push_str(rest);
    out
}
