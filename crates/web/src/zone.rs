//! The time zone a user reads times in.
//!
//! By default the page language's ([`crate::i18n::offset_at`]: zh-CN Beijing time, en UTC). A
//! user may choose another zone, kept by the server they use (the portal with their account,
//! a site's pages with the site's account) and carried by the [`ZONE_COOKIE`] cookie set when
//! they sign in or change it. A zone is an IANA time zone (`Europe/Berlin`), with its daylight
//! saving rules from the tz database bundled with `jiff` (the same answers on every machine), or
//! a fixed offset written `UTC+05:30`. The settings pages offer [`CHOICES`]; any IANA name is
//! accepted.
//!
//! [`zone_scope`] is a middleware: it reads the cookie and runs the request with the choice in
//! scope, so every time the request's handler formats or parses ([`crate::i18n::fmt_datetime`],
//! the audit filters' day bounds) is in the user's zone without being passed down. Text made
//! outside the request's task (a `spawn_blocking` closure) uses the language's zone.

use axum::extract::Request;
use axum::middleware::Next;
use axum::response::Response;
use jiff::tz::{Offset, TimeZone};
use jiff::Timestamp;
use serde::{Deserialize, Deserializer};

use crate::session::{cookie, CookiePolicy};

/// The zone cookie's name (the zone's [`Zone::name`]).
pub const ZONE_COOKIE: &str = "tz";

/// The zones the settings pages offer, west to east (any other IANA name is accepted too).
pub const CHOICES: &[&str] = &[
    "Pacific/Honolulu",
    "America/Anchorage",
    "America/Los_Angeles",
    "America/Denver",
    "America/Chicago",
    "America/New_York",
    "America/Sao_Paulo",
    "UTC",
    "Europe/London",
    "Europe/Paris",
    "Europe/Berlin",
    "Europe/Zurich",
    "Africa/Johannesburg",
    "Europe/Athens",
    "Europe/Moscow",
    "Asia/Dubai",
    "Asia/Karachi",
    "Asia/Kolkata",
    "Asia/Kathmandu",
    "Asia/Dhaka",
    "Asia/Bangkok",
    "Asia/Shanghai",
    "Asia/Hong_Kong",
    "Asia/Taipei",
    "Asia/Singapore",
    "Asia/Seoul",
    "Asia/Tokyo",
    "Australia/Adelaide",
    "Australia/Sydney",
    "Pacific/Auckland",
];

/// The zone of Beijing time (zh-CN's default).
pub const BEIJING: &str = "Asia/Shanghai";

/// A chosen zone: its name (an IANA name, or `UTC+05:30` / `UTC-03:00` in ASCII for a fixed
/// offset: a valid cookie value either way) and its rules.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Zone {
    name: String,
    tz: TimeZone,
}

impl Zone {
    /// The name it is stored and shown under.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Seconds east of UTC at the unix time `secs` (daylight saving included).
    pub fn offset_at(&self, secs: i64) -> i64 {
        let ts = Timestamp::from_second(secs).unwrap_or(if secs < 0 {
            Timestamp::MIN
        } else {
            Timestamp::MAX
        });
        i64::from(self.tz.to_offset(ts).seconds())
    }

    /// The first second of the day `y-m-d` in this zone (a day a DST change starts at 00:30
    /// begins then), `None` if it is not a date.
    pub fn day_start(&self, y: i16, m: i8, d: i8) -> Option<i64> {
        let date = jiff::civil::Date::new(y, m, d).ok()?;
        let z = date.to_zoned(self.tz.clone()).ok()?;
        Some(z.timestamp().as_second())
    }

    /// Whether this is Beijing time (named so in Chinese).
    pub fn is_beijing(&self) -> bool {
        self.name == BEIJING
    }

    /// `Europe/Berlin (UTC+01:00)`: the name and its offset at `now`.
    pub fn describe(&self, now: i64) -> String {
        let offset = label(self.offset_at(now) / 60);
        if self.name.starts_with("UTC") {
            offset
        } else {
            format!("{} ({offset})", self.name)
        }
    }
}

/// A zone from its form, cookie or stored value: an IANA name the tz database knows (its
/// canonical spelling kept), `UTC±HH:MM` (ASCII `+`/`-` or `−`) for a fixed offset of at most
/// 14 hours, or, as the settings of an earlier version stored them, minutes east of UTC.
/// `None` for anything else (the empty value: the language's zone).
pub fn parse(value: &str) -> Option<Zone> {
    let v = value.trim();
    if v.is_empty() || v.len() > 64 {
        return None;
    }
    if let Some(minutes) = fixed_offset_minutes(v) {
        return fixed(minutes);
    }
    if !v
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'/' | b'_' | b'-' | b'+'))
    {
        return None;
    }
    let tz = TimeZone::get(v).ok()?;
    let name = tz.iana_name().unwrap_or(v).to_owned();
    Some(Zone { name, tz })
}

/// `UTC+05:30` / `UTC−03:00` / `-330` (legacy minutes) as minutes east of UTC.
fn fixed_offset_minutes(v: &str) -> Option<i32> {
    if let Ok(m) = v.parse::<i32>() {
        return Some(m);
    }
    let rest = v.strip_prefix("UTC")?;
    let (sign, hm) = if let Some(r) = rest.strip_prefix('+') {
        (1, r)
    } else if let Some(r) = rest.strip_prefix('-').or_else(|| rest.strip_prefix('−')) {
        (-1, r)
    } else {
        return None;
    };
    let (h, m) = hm.split_once(':')?;
    if h.len() != 2 || m.len() != 2 {
        return None;
    }
    let (h, m): (i32, i32) = (h.parse().ok()?, m.parse().ok()?);
    (m < 60).then_some(sign * (h * 60 + m))
}

fn fixed(minutes: i32) -> Option<Zone> {
    if minutes.abs() > 14 * 60 {
        return None;
    }
    let offset = Offset::from_seconds(minutes * 60).ok()?;
    let name = if minutes == 0 {
        "UTC".to_owned()
    } else {
        let sign = if minutes < 0 { '-' } else { '+' };
        let m = minutes.unsigned_abs();
        format!("UTC{sign}{:02}:{:02}", m / 60, m % 60)
    };
    Some(Zone {
        name,
        tz: TimeZone::fixed(offset),
    })
}

/// Serde: a stored zone, given as its name or (an earlier version's settings) as minutes east
/// of UTC, read as its [`Zone::name`]; a value that is no zone is an error naming it.
pub fn deserialize_name<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Stored {
        Minutes(i32),
        Name(String),
    }
    let Some(stored) = Option::<Stored>::deserialize(d)? else {
        return Ok(None);
    };
    let text = match stored {
        Stored::Minutes(m) => m.to_string(),
        Stored::Name(n) => n,
    };
    parse(&text)
        .map(|z| Some(z.name))
        .ok_or_else(|| serde::de::Error::custom(format!("not a time zone: {text:?}")))
}

tokio::task_local! {
    static CHOSEN: Zone;
}

/// The zone chosen for the current request, if any.
pub fn chosen() -> Option<Zone> {
    CHOSEN.try_with(Zone::clone).ok()
}

/// Runs `f` with `zone` as the chosen zone (`None`: the language's).
pub async fn scoped<F: std::future::Future>(zone: Option<Zone>, f: F) -> F::Output {
    match zone {
        Some(z) => CHOSEN.scope(z, f).await,
        None => f.await,
    }
}

/// Runs `f` synchronously with `zone` as the chosen zone (tests, blocking renderers).
pub fn scoped_sync<R>(zone: Option<Zone>, f: impl FnOnce() -> R) -> R {
    match zone {
        Some(z) => CHOSEN.sync_scope(z, f),
        None => f(),
    }
}

/// Middleware: the request runs in the zone of its [`ZONE_COOKIE`] (if a valid zone).
pub async fn zone_scope(req: Request, next: Next) -> Response {
    let zone = cookie(req.headers(), ZONE_COOKIE).and_then(|v| parse(&v));
    scoped(zone, next.run(req)).await
}

/// `UTC`, `UTC+08:00`, `UTC−03:30` (a minus sign, not a hyphen), from minutes east of UTC.
pub fn label(minutes: i64) -> String {
    if minutes == 0 {
        return "UTC".to_owned();
    }
    let sign = if minutes < 0 { '−' } else { '+' };
    let m = minutes.unsigned_abs();
    format!("UTC{sign}{:02}:{:02}", m / 60, m % 60)
}

/// `Set-Cookie` value carrying a choice for a year (`None`, or a name that is no zone: removes
/// it). A zone's name is ASCII without separators, a valid cookie value as it is.
pub fn zone_cookie(policy: CookiePolicy, zone: Option<&str>) -> String {
    let secure = if policy.secure { "; Secure" } else { "" };
    match zone.and_then(parse) {
        Some(z) => format!(
            "{ZONE_COOKIE}={}; Max-Age=31536000; Path=/; HttpOnly; SameSite=Lax{secure}",
            z.name
        ),
        None => format!("{ZONE_COOKIE}=; Max-Age=0; Path=/; HttpOnly; SameSite=Lax{secure}"),
    }
}
