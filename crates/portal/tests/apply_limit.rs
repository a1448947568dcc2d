//! Unauthenticated membership applications (`POST /apply`) are rate limited: 5 an hour from one
//! address and 50 an hour in all; a refused application is answered 429, audited, and not
//! stored.

mod common;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{header, Request, StatusCode};
use common::World;
use tower::ServiceExt;

/// One anonymous application from `ip` (the form fetched first for its CSRF token); the status.
async fn apply_from(w: &World, ip: [u8; 4], id: &str) -> StatusCode {
    let addr = ConnectInfo(SocketAddr::new(IpAddr::V4(Ipv4Addr::from(ip)), 40_000));
    let mut get = Request::get("/apply").body(Body::empty()).unwrap();
    get.extensions_mut().insert(addr);
    let page = w.app.clone().oneshot(get).await.unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    let cookies: Vec<String> = page
        .headers()
        .get_all(header::SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .map(|c| c.split(';').next().unwrap_or("").to_owned())
        .collect();
    let body = axum::body::to_bytes(page.into_body(), 1 << 20)
        .await
        .unwrap();
    let body = String::from_utf8_lossy(&body);
    let marker = "name=\"csrf\" value=\"";
    let i = body.find(marker).expect("csrf field") + marker.len();
    let csrf = body[i..].split('"').next().unwrap().to_owned();
    let form = format!(
        "csrf={csrf}&id={id}&name=Hospital+{id}&kind=hospital&region=Shanghai&contact=rwd%40{id}.example.cn&description=Cardiology.&site="
    );
    let mut post = Request::post("/apply")
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .header(header::COOKIE, cookies.join("; "))
        .body(Body::from(form))
        .unwrap();
    post.extensions_mut().insert(addr);
    w.app.clone().oneshot(post).await.unwrap().status()
}

fn stored(w: &World) -> usize {
    qiao_portal::alliance::institutions(w.store.as_ref())
        .unwrap()
        .len()
}

fn refusals_audited(w: &World) -> usize {
    w.store
        .audit_entries(0, 100_000)
        .unwrap()
        .iter()
        .filter(|e| e.action == "apply.rate_limited")
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_address_may_apply_five_times_an_hour() {
    let w = World::new();
    let before = stored(&w);
    let mut statuses = Vec::new();
    for i in 0..8 {
        statuses.push(apply_from(&w, [203, 0, 113, 7], &format!("spam{i}")).await);
    }
    let see_other = StatusCode::SEE_OTHER;
    let limited = StatusCode::TOO_MANY_REQUESTS;
    assert_eq!(
        statuses,
        [see_other, see_other, see_other, see_other, see_other, limited, limited, limited]
    );
    assert_eq!(stored(&w) - before, 5);
    assert_eq!(refusals_audited(&w), 3);
    // Another address is not held up by the first.
    assert_eq!(apply_from(&w, [198, 51, 100, 9], "other").await, see_other);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_applications_an_hour_in_all() {
    let w = World::new();
    let before = stored(&w);
    let mut accepted = 0;
    let mut refused = 0;
    // 60 addresses, one application each.
    for i in 0..60u8 {
        match apply_from(&w, [10, 1, 0, i], &format!("inst{i}")).await {
            StatusCode::SEE_OTHER => accepted += 1,
            StatusCode::TOO_MANY_REQUESTS => refused += 1,
            other => panic!("application {i}: {other}"),
        }
    }
    assert_eq!((accepted, refused), (50, 10));
    assert_eq!(stored(&w) - before, 50);
    assert_eq!(refusals_audited(&w), 10);
}
