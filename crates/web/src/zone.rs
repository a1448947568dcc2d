//! The time zone a user reads times in.
//!
//! By default the page language's ([`crate::i18n::utc_offset`]: zh-CN Beijing time, en UTC). A
//! user may choose another zone, kept by the server they use (the portal with their account,
//! a site's pages with the site's account) and carried by the [`ZONE_COOKIE`] cookie set when
//! they sign in or change it. The choice is a fixed UTC offset from [`CHOICES`] (the offsets
//! zones use today; no daylight saving rule, said on the settings pages).
//!
//! [`zone_scope`] is a middleware: it reads the cookie and runs the request with the choice in
//! scope, so every time the request's handler formats or parses ([`crate::i18n::fmt_datetime`],
//! the audit filters' day bounds) is in the user's zone without being passed down. Text made
//! outside the request's task (a `spawn_blocking` closure) uses the language's zone.

use axum::extract::Request;
use axum::middleware::Next;
use axum::response::Response;

use crate::session::{cookie, CookiePolicy};

/// The zone cookie's name (minutes east of UTC, one of [`CHOICES`]).
pub const ZONE_COOKIE: &str = "tz";

/// The offsets a user may choose, in minutes east of UTC.
pub const CHOICES: &[i32] = &[
    -720, -660, -600, -570, -540, -480, -420, -360, -300, -240, -210, -180, -120, -60, 0, 60, 120,
    180, 210, 240, 270, 300, 330, 345, 360, 390, 420, 480, 525, 540, 570, 600, 630, 660, 720, 765,
    780, 840,
];

tokio::task_local! {
    static CHOSEN: i32;
}

/// A chosen offset from its form or cookie value (minutes, one of [`CHOICES`]); `None` for
/// anything else (the empty value: the language's zone).
pub fn parse(value: &str) -> Option<i32> {
    value
        .trim()
        .parse::<i32>()
        .ok()
        .filter(|m| CHOICES.contains(m))
}

/// The offset chosen for the current request (seconds east of UTC), if any.
pub fn chosen_secs() -> Option<i64> {
    CHOSEN.try_with(|m| i64::from(*m) * 60).ok()
}

/// Runs `f` with `minutes` as the chosen zone (`None`: the language's).
pub async fn scoped<F: std::future::Future>(minutes: Option<i32>, f: F) -> F::Output {
    match minutes {
        Some(m) => CHOSEN.scope(m, f).await,
        None => f.await,
    }
}

/// Runs `f` synchronously with `minutes` as the chosen zone (tests, blocking renderers).
pub fn scoped_sync<R>(minutes: Option<i32>, f: impl FnOnce() -> R) -> R {
    match minutes {
        Some(m) => CHOSEN.sync_scope(m, f),
        None => f(),
    }
}

/// Middleware: the request runs in the zone of its [`ZONE_COOKIE`] (if a valid choice).
pub async fn zone_scope(req: Request, next: Next) -> Response {
    let minutes = cookie(req.headers(), ZONE_COOKIE).and_then(|v| parse(&v));
    scoped(minutes, next.run(req)).await
}

/// `UTC`, `UTC+08:00`, `UTC−03:30` (a minus sign, not a hyphen).
pub fn label(minutes: i32) -> String {
    if minutes == 0 {
        return "UTC".to_owned();
    }
    let sign = if minutes < 0 { '−' } else { '+' };
    let m = minutes.unsigned_abs();
    format!("UTC{sign}{:02}:{:02}", m / 60, m % 60)
}

/// `Set-Cookie` value carrying a choice for a year (`None`: removes it).
pub fn zone_cookie(policy: CookiePolicy, minutes: Option<i32>) -> String {
    let secure = if policy.secure { "; Secure" } else { "" };
    match minutes {
        Some(m) => {
            format!("{ZONE_COOKIE}={m}; Max-Age=31536000; Path=/; HttpOnly; SameSite=Lax{secure}")
        }
        None => format!("{ZONE_COOKIE}=; Max-Age=0; Path=/; HttpOnly; SameSite=Lax{secure}"),
    }
}
