//! Translations and locale formatting.
//!
//! The catalogs `i18n/en.toml` and `i18n/zh-CN.toml` are flat `key = "text"` files (TOML basic
//! strings; `{name}` placeholders), compiled into the binary and parsed once. [`t`] looks a key
//! up; [`tf`] also fills placeholders. A missing key renders as the key itself (so a page never
//! fails), and the tests in this module fail the build's test run if any key is missing in
//! either language or any key used in the source is missing from a catalog.

use std::collections::HashMap;
use std::sync::OnceLock;

use axum::http::{header, HeaderMap};

/// A UI language.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Lang {
    /// English.
    En,
    /// Simplified Chinese.
    ZhCn,
}

impl Lang {
    /// Every language, in the order the switch shows them.
    pub const ALL: [Lang; 2] = [Lang::ZhCn, Lang::En];

    /// The BCP 47 tag (`en`, `zh-CN`): the `lang` attribute and the cookie value.
    pub fn code(self) -> &'static str {
        match self {
            Lang::En => "en",
            Lang::ZhCn => "zh-CN",
        }
    }

    /// The language's own name (shown in the switch).
    pub fn native_name(self) -> &'static str {
        t(self, "lang.native")
    }

    /// Parses a tag: `zh`, `zh-CN`, `zh-Hans`, `zh_cn`, ... are Chinese; `en`, `en-GB`, ...
    /// English; anything else `None`.
    pub fn from_tag(tag: &str) -> Option<Lang> {
        let tag = tag.trim().to_ascii_lowercase();
        let primary = tag.split(['-', '_']).next().unwrap_or("");
        match primary {
            "zh" => Some(Lang::ZhCn),
            "en" => Some(Lang::En),
            _ => None,
        }
    }

    /// The first supported language of an `Accept-Language` value, by quality.
    pub fn from_accept_language(value: &str) -> Option<Lang> {
        let mut best: Option<(f32, usize, Lang)> = None;
        for (i, part) in value.split(',').enumerate().take(32) {
            let mut it = part.split(';');
            let tag = it.next().unwrap_or("");
            let q = it
                .find_map(|p| p.trim().strip_prefix("q="))
                .and_then(|q| q.trim().parse::<f32>().ok())
                .unwrap_or(1.0);
            if q.is_nan() || q <= 0.0 {
                continue;
            }
            if let Some(lang) = Lang::from_tag(tag) {
                let better = match best {
                    None => true,
                    Some((bq, bi, _)) => q > bq || (q == bq && i < bi),
                };
                if better {
                    best = Some((q, i, lang));
                }
            }
        }
        best.map(|(_, _, l)| l)
    }

    /// The request's language: the `lang` cookie, else `Accept-Language`, else English.
    pub fn negotiate(headers: &HeaderMap) -> Lang {
        if let Some(l) = crate::session::cookie(headers, crate::session::LANG_COOKIE)
            .and_then(|v| Lang::from_tag(&v))
        {
            return l;
        }
        headers
            .get_all(header::ACCEPT_LANGUAGE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .find_map(Lang::from_accept_language)
            .unwrap_or(Lang::En)
    }
}

/// The English catalog's source.
pub const EN_SOURCE: &str = include_str!("../i18n/en.toml");
/// The Chinese catalog's source.
pub const ZH_CN_SOURCE: &str = include_str!("../i18n/zh-CN.toml");

/// A parsed catalog: key → text.
pub type Catalog = HashMap<String, String>;

/// A syntax error in a catalog, with its line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {reason}")]
pub struct CatalogError {
    /// 1-based line number.
    pub line: usize,
    /// What is wrong.
    pub reason: String,
}

/// Parses a flat catalog: `# comments`, blank lines and `key = "text"` lines (a TOML basic
/// string with `\" \\ \n \t \uXXXX` escapes). Keys are `[a-z0-9_.-]+`; a repeated key is an
/// error.
pub fn parse_catalog(src: &str) -> Result<Catalog, CatalogError> {
    let mut out = Catalog::new();
    for (i, raw) in src.lines().enumerate() {
        let line = i + 1;
        let err = |reason: &str| CatalogError {
            line,
            reason: reason.to_owned(),
        };
        let s = raw.trim();
        if s.is_empty() || s.starts_with('#') {
            continue;
        }
        let (key, rest) = s
            .split_once('=')
            .ok_or_else(|| err("expected key = \"text\""))?;
        let key = key.trim();
        if key.is_empty()
            || !key
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "_.-".contains(c))
        {
            return Err(err("a key is [a-z0-9_.-]+"));
        }
        let rest = rest.trim();
        let body = rest
            .strip_prefix('"')
            .ok_or_else(|| err("the text must be a \"quoted\" string"))?;
        let mut text = String::new();
        let mut chars = body.chars();
        let mut closed = false;
        while let Some(c) = chars.next() {
            match c {
                '"' => {
                    closed = true;
                    break;
                }
                '\\' => match chars.next() {
                    Some('"') => text.push('"'),
                    Some('\\') => text.push('\\'),
                    Some('n') => text.push('\n'),
                    Some('t') => text.push('\t'),
                    Some('u') => {
                        let hex: String = chars.by_ref().take(4).collect();
                        let c = u32::from_str_radix(&hex, 16)
                            .ok()
                            .and_then(char::from_u32)
                            .ok_or_else(|| err("bad \\uXXXX escape"))?;
                        text.push(c);
                    }
                    _ => return Err(err("unknown escape")),
                },
                c => text.push(c),
            }
        }
        if !closed {
            return Err(err("unterminated string"));
        }
        let tail = chars.as_str().trim();
        if !(tail.is_empty() || tail.starts_with('#')) {
            return Err(err("text after the closing quote"));
        }
        if out.insert(key.to_owned(), text).is_some() {
            return Err(err(&format!("key {key} repeated")));
        }
    }
    Ok(out)
}

fn catalogs() -> &'static [Catalog; 2] {
    static CATALOGS: OnceLock<[Catalog; 2]> = OnceLock::new();
    CATALOGS.get_or_init(|| {
        let load = |name: &str, src: &str| {
            parse_catalog(src).unwrap_or_else(|e| {
                // The catalogs are compiled in and checked by the tests; a broken one is a
                // build defect, reported once, and pages fall back to showing keys.
                tracing::error!("i18n catalog {name}: {e}");
                Catalog::new()
            })
        };
        [load("en", EN_SOURCE), load("zh-CN", ZH_CN_SOURCE)]
    })
}

/// The catalog of a language.
pub fn catalog(lang: Lang) -> &'static Catalog {
    let [en, zh] = catalogs();
    match lang {
        Lang::En => en,
        Lang::ZhCn => zh,
    }
}

/// The text of `key` in `lang` (the key itself if missing — a test keeps that from happening).
pub fn t(lang: Lang, key: &'static str) -> &'static str {
    lookup(lang, key).unwrap_or(key)
}

/// The text of a key computed at run time (e.g. `"stage." + stage`), or the key.
pub fn t_dyn(lang: Lang, key: &str) -> String {
    lookup(lang, key).unwrap_or(key).to_owned()
}

/// The text of `key` if the catalog has it (keys made at run time, e.g. from a code).
pub fn lookup_opt(lang: Lang, key: &str) -> Option<&'static str> {
    lookup(lang, key)
}

fn lookup(lang: Lang, key: &str) -> Option<&'static str> {
    catalog(lang).get(key).map(String::as_str)
}

/// The text of `key` with `{name}` placeholders replaced by `args` (values are plain text;
/// templates escape them when rendering).
pub fn tf(lang: Lang, key: &'static str, args: &[(&str, &str)]) -> String {
    fill(t(lang, key), args)
}

/// Replaces `{name}` placeholders in `template`.
pub fn fill(template: &str, args: &[(&str, &str)]) -> String {
    let mut out = String::with_capacity(template.len() + 16);
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let after = &rest[open + 1..];
        match after.find('}') {
            Some(close) => {
                let name = &after[..close];
                match args.iter().find(|(n, _)| *n == name) {
                    Some((_, v)) => out.push_str(v),
                    None => {
                        out.push('{');
                        out.push_str(name);
                        out.push('}');
                    }
                }
                rest = &after[close + 1..];
            }
            None => {
                out.push_str(&rest[open..]);
                rest = "";
            }
        }
    }
    out.push_str(rest);
    out
}

/// Days since 1970-01-01 → (year, month, day), proleptic Gregorian.
pub fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// (year, month, day) → days since 1970-01-01.
pub fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let m = i64::from(m);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

const MONTHS_EN: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// A calendar date in the locale's form: en `25 Nov 2026`, zh-CN `2026年11月25日`.
pub fn fmt_ymd(lang: Lang, y: i64, m: u32, d: u32) -> String {
    match lang {
        Lang::En => {
            let mon = MONTHS_EN
                .get((m as usize).wrapping_sub(1))
                .copied()
                .unwrap_or("?");
            format!("{d} {mon} {y}")
        }
        Lang::ZhCn => format!("{y}年{m}月{d}日"),
    }
}

/// The offset of the zone times are shown in at the unix time `unix_secs`, as seconds east of
/// UTC: the zone the user chose for this request ([`crate::zone`], daylight saving included),
/// else the language's: zh-CN Beijing time (Asia/Shanghai, UTC+8, no daylight saving since
/// 1991), en UTC. Dates stored as a day's UTC midnight (form dates) keep their day in both.
pub fn offset_at(lang: Lang, unix_secs: i64) -> i64 {
    match crate::zone::chosen() {
        Some(z) => z.offset_at(unix_secs),
        None => default_offset(lang),
    }
}

fn default_offset(lang: Lang) -> i64 {
    match lang {
        Lang::En => 0,
        Lang::ZhCn => 8 * 3600,
    }
}

/// A unix time (seconds, UTC) as a locale date in the user's zone ([`offset_at`]).
pub fn fmt_date(lang: Lang, unix_secs: i64) -> String {
    let local = unix_secs + offset_at(lang, unix_secs);
    let (y, m, d) = civil_from_days(local.div_euclid(86_400));
    fmt_ymd(lang, y, m, d)
}

/// A unix time (seconds, UTC) as a locale date and `HH:MM` time in the user's zone
/// ([`offset_at`]), named: en `25 Nov 2026 13:05 UTC`, zh-CN `2026年11月25日 21:05（北京时间）`;
/// another zone by its offset at that time (`UTC+05:30`; Berlin `UTC+01:00` in winter and
/// `UTC+02:00` in summer).
pub fn fmt_datetime(lang: Lang, unix_secs: i64) -> String {
    let chosen = crate::zone::chosen();
    let offset = offset_at(lang, unix_secs);
    let s = (unix_secs + offset).rem_euclid(86_400);
    let hm = format!("{:02}:{:02}", s / 3600, (s % 3600) / 60);
    let beijing = chosen
        .as_ref()
        .map_or(lang == Lang::ZhCn, |z| z.is_beijing());
    let zone = if lang == Lang::ZhCn && beijing {
        "北京时间".to_owned()
    } else {
        crate::zone::label(offset / 60)
    };
    match lang {
        Lang::En => format!("{} {hm} {zone}", fmt_date(lang, unix_secs)),
        Lang::ZhCn => format!("{} {hm}（{zone}）", fmt_date(lang, unix_secs)),
    }
}

/// The first second of a `YYYY-MM-DD` day in the user's zone (a date filter's bound); `None`
/// if malformed.
pub fn parse_local_ymd(lang: Lang, s: &str) -> Option<i64> {
    let utc_midnight = parse_ymd(s)?;
    match crate::zone::chosen() {
        Some(z) => {
            let (y, m, d) = civil_from_days(utc_midnight.div_euclid(86_400));
            z.day_start(i16::try_from(y).ok()?, m as i8, d as i8)
        }
        None => Some(utc_midnight - default_offset(lang)),
    }
}

/// A month (`2026-11`) in the locale's form: en `Nov 2026`, zh-CN `2026年11月`.
pub fn fmt_month(lang: Lang, y: i64, m: u32) -> String {
    match lang {
        Lang::En => format!(
            "{} {y}",
            MONTHS_EN
                .get((m as usize).wrapping_sub(1))
                .copied()
                .unwrap_or("?")
        ),
        Lang::ZhCn => format!("{y}年{m}月"),
    }
}

/// An integer with thousands separators (`12,345`; both locales group by three with commas).
pub fn fmt_int(_lang: Lang, n: i64) -> String {
    let digits = n.unsigned_abs().to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3 + 1);
    if n < 0 {
        out.push('-');
    }
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// A number with `decimals` digits after the point and thousands separators.
pub fn fmt_decimal(lang: Lang, x: f64, decimals: usize) -> String {
    if !x.is_finite() {
        return "–".to_owned();
    }
    let s = format!("{:.*}", decimals, x.abs());
    let (int, frac) = s.split_once('.').unwrap_or((&s, ""));
    let int: i64 = int.parse().unwrap_or(0);
    let mut out = fmt_int(lang, int);
    if x < 0.0 && s.chars().any(|c| c.is_ascii_digit() && c != '0') {
        out.insert(0, '-');
    }
    if !frac.is_empty() {
        out.push('.');
        out.push_str(frac);
    }
    out
}

/// Parses a `YYYY-MM-DD` form value into a unix time (midnight UTC); `None` if malformed.
pub fn parse_ymd(s: &str) -> Option<i64> {
    let mut it = s.trim().splitn(3, '-');
    let y: i64 = it.next()?.parse().ok()?;
    let m: u32 = it.next()?.parse().ok()?;
    let d: u32 = it.next()?.parse().ok()?;
    if !(1900..=2200).contains(&y) || !(1..=12).contains(&m) || d < 1 {
        return None;
    }
    let days = days_from_civil(y, m, d);
    (civil_from_days(days) == (y, m, d)).then_some(days * 86_400)
}

/// A unix time as `YYYY-MM-DD` (form values).
pub fn ymd_value(unix_secs: i64) -> String {
    let (y, m, d) = civil_from_days(unix_secs.div_euclid(86_400));
    format!("{y:04}-{m:02}-{d:02}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;
    use std::path::Path;

    fn parsed(src: &str, name: &str) -> Catalog {
        match parse_catalog(src) {
            Ok(c) => c,
            Err(e) => panic!("catalog {name}: {e}"),
        }
    }

    #[test]
    fn every_key_is_in_both_catalogs() {
        let en = parsed(EN_SOURCE, "en");
        let zh = parsed(ZH_CN_SOURCE, "zh-CN");
        let en_keys: BTreeSet<_> = en.keys().collect();
        let zh_keys: BTreeSet<_> = zh.keys().collect();
        let only_en: Vec<_> = en_keys.difference(&zh_keys).collect();
        let only_zh: Vec<_> = zh_keys.difference(&en_keys).collect();
        assert!(
            only_en.is_empty(),
            "keys missing in zh-CN.toml: {only_en:?}"
        );
        assert!(only_zh.is_empty(), "keys missing in en.toml: {only_zh:?}");
        assert!(en.len() >= 40, "{} keys", en.len());
        // Placeholders agree between the languages.
        for (k, v) in &en {
            let ph = |s: &str| -> BTreeSet<String> {
                s.split('{')
                    .skip(1)
                    .filter_map(|p| p.split_once('}').map(|(n, _)| n.to_owned()))
                    .collect()
            };
            assert_eq!(ph(v), ph(&zh[k]), "placeholders of {k} differ");
            assert!(
                !zh[k].trim().is_empty() && !v.trim().is_empty(),
                "{k} is empty"
            );
        }
    }

    /// String literals in Rust source that are catalog keys: the first argument-literal of
    /// `t(`, `tf(`, `t_dyn(`-style calls, and any literal shaped `prefix.rest` whose prefix is
    /// a catalog namespace (so keys passed to helpers are checked too).
    pub(crate) fn keys_used_in(src: &str, namespaces: &BTreeSet<String>) -> BTreeSet<String> {
        let mut out = BTreeSet::new();
        let bytes = src.as_bytes();
        let mut i = 0;
        while i < bytes.len() {
            // Skip line comments (doc examples are not uses).
            if bytes[i] == b'/' && bytes.get(i + 1) == Some(&b'/') {
                while i < bytes.len() && bytes[i] != b'\n' {
                    i += 1;
                }
                continue;
            }
            if bytes[i] == b'"' {
                let start = i + 1;
                let mut j = start;
                while j < bytes.len() && bytes[j] != b'"' {
                    if bytes[j] == b'\\' {
                        j += 1;
                    }
                    j += 1;
                }
                let lit = &src[start..j.min(src.len())];
                let shaped = !lit.is_empty()
                    && lit.contains('.')
                    && !lit.ends_with(['.', '_'])
                    && lit
                        .chars()
                        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "_.".contains(c));
                if shaped {
                    let ns = lit.split('.').next().unwrap_or("");
                    let call = is_lookup_call(&src[..i]);
                    if call || namespaces.contains(ns) {
                        out.insert(lit.to_owned());
                    }
                }
                i = j + 1;
                continue;
            }
            i += 1;
        }
        out
    }

    /// Whether the text before a literal ends inside `t(`, `tf(` or `t_dyn(` (the literal is
    /// the first or second argument).
    fn is_lookup_call(before: &str) -> bool {
        let Some(open) = before.rfind('(') else {
            return false;
        };
        let args = &before[open + 1..];
        if args.contains([')', '"', ';']) || args.len() > 40 {
            return false;
        }
        let ident: String = before[..open]
            .chars()
            .rev()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect::<String>()
            .chars()
            .rev()
            .collect();
        matches!(ident.as_str(), "t" | "tf" | "t_dyn")
    }

    fn rust_files(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
        let Ok(rd) = std::fs::read_dir(dir) else {
            return;
        };
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                rust_files(&p, out);
            } else if p.extension().is_some_and(|x| x == "rs") {
                out.push(p);
            }
        }
    }

    /// The action codes the sources write into an audit log: the first `"a.b"` literal of each
    /// `EntryDraft::new(` call (its third argument; the first two are a time and an actor).
    fn audit_actions_in(src: &str) -> Vec<String> {
        let mut out = Vec::new();
        for (at, _) in src.match_indices("EntryDraft::new(") {
            let call: String = src[at..].chars().take(300).collect();
            let mut lits = call.split('"').skip(1).step_by(2);
            if let Some(lit) = lits.find(|l| {
                l.contains('.')
                    && !l.starts_with('.')
                    && !l.ends_with('.')
                    && l.chars()
                        .all(|c| c.is_ascii_lowercase() || "_.".contains(c))
            }) {
                out.push(lit.to_owned());
            }
        }
        out
    }

    /// Every action an audit page can show has a name in both catalogs (`action.CODE`): the
    /// hub's, the portal's and the site's (issue 17 item 4: localized action names).
    #[test]
    fn every_audit_action_has_a_name() {
        let en = parsed(EN_SOURCE, "en");
        let zh = parsed(ZH_CN_SOURCE, "zh-CN");
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let mut files = Vec::new();
        for c in ["hub/src", "portal/src", "site/src"] {
            rust_files(&root.join(c), &mut files);
        }
        let mut actions = BTreeSet::new();
        for f in &files {
            let src = std::fs::read_to_string(f).unwrap_or_default();
            let src = src.split("#[cfg(test)]").next().unwrap_or("");
            actions.extend(audit_actions_in(src));
        }
        assert!(
            actions.len() >= 40 && actions.contains("project.transition"),
            "{actions:?}"
        );
        let missing: Vec<&String> = actions
            .iter()
            .filter(|a| {
                let k = format!("action.{a}");
                !en.contains_key(&k) || !zh.contains_key(&k)
            })
            .collect();
        assert!(
            missing.is_empty(),
            "audit actions without a name: {missing:?}"
        );
        assert_eq!(
            audit_actions_in(r#"EntryDraft::new(now, actor(by), "site.pages").decision("x.y")"#),
            vec!["site.pages".to_owned()]
        );
    }

    /// Every key used in the UI source (`crates/web/src`, `crates/portal/src`, and the site's
    /// UI code `crates/site/src/ui*`) is in both catalogs.
    #[test]
    fn every_key_used_in_the_source_exists() {
        let en = parsed(EN_SOURCE, "en");
        let zh = parsed(ZH_CN_SOURCE, "zh-CN");
        let namespaces: BTreeSet<String> = en
            .keys()
            .filter_map(|k| k.split('.').next())
            .map(str::to_owned)
            .collect();
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let mut files = Vec::new();
        rust_files(&root.join("web/src"), &mut files);
        rust_files(&root.join("portal/src"), &mut files);
        let mut site = Vec::new();
        rust_files(&root.join("site/src"), &mut site);
        files.extend(site.into_iter().filter(|p| {
            p.components()
                .any(|c| c.as_os_str().to_string_lossy().starts_with("ui"))
        }));
        assert!(files.len() >= 6, "scanned only {files:?}");
        let mut missing = Vec::new();
        let mut used = 0;
        for f in &files {
            let src = std::fs::read_to_string(f).unwrap_or_default();
            // Unit tests use made-up keys on purpose.
            let src = src.split("#[cfg(test)]").next().unwrap_or("");
            for k in keys_used_in(src, &namespaces) {
                used += 1;
                if !en.contains_key(&k) || !zh.contains_key(&k) {
                    missing.push(format!("{}: {k}", f.display()));
                }
            }
        }
        assert!(
            missing.is_empty(),
            "keys used but missing from a catalog:\n{}",
            missing.join("\n")
        );
        assert!(
            used >= 10,
            "only {used} key uses found: the scanner is broken"
        );
    }

    /// Text literals placed as content inside `html!` templates (a literal not used as an
    /// attribute value or a call argument) that contain a letter: user-visible text that
    /// bypasses the catalogs.
    pub(crate) fn template_text_literals(src: &str) -> Vec<String> {
        let mut out = Vec::new();
        let mut rest = src;
        while let Some(start) = rest.find("html! {") {
            let body = &rest[start + 7..];
            // The template ends at the brace that balances its opening one.
            let (mut depth, mut end, mut in_str, mut prev) = (1usize, body.len(), false, ' ');
            for (i, c) in body.char_indices() {
                match (in_str, c) {
                    (true, '"') if prev != '\\' => in_str = false,
                    (true, _) => {}
                    (false, '"') => in_str = true,
                    (false, '{') => depth += 1,
                    (false, '}') => {
                        depth -= 1;
                        if depth == 0 {
                            end = i;
                            break;
                        }
                    }
                    _ => {}
                }
                prev = if prev == '\\' && c == '\\' { ' ' } else { c };
            }
            let tpl = &body[..end];
            let bytes = tpl.as_bytes();
            let mut i = 0;
            while i < bytes.len() {
                if bytes[i] == b'"' {
                    let mut j = i + 1;
                    while j < bytes.len() && bytes[j] != b'"' {
                        if bytes[j] == b'\\' {
                            j += 1;
                        }
                        j += 1;
                    }
                    let lit = &tpl[i + 1..j.min(tpl.len())];
                    let before = tpl[..i].trim_end();
                    let content =
                        before.ends_with('{') || before.ends_with('}') || before.ends_with(';');
                    // Catalog keys (`ns.key`) chosen inside a template are not text.
                    let key = lit.contains('.')
                        && lit.chars().all(|c| {
                            c.is_ascii_lowercase() || c.is_ascii_digit() || "_.".contains(c)
                        });
                    let wordy = !key && lit.chars().any(|c| c.is_alphabetic());
                    if content && wordy {
                        out.push(lit.to_owned());
                    }
                    i = j + 1;
                } else {
                    i += 1;
                }
            }
            rest = &body[end.min(body.len())..];
        }
        out
    }

    /// No user-visible text is written into a template of the portal or this crate: every
    /// word comes from the catalogs.
    #[test]
    fn no_text_literals_in_templates() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let mut files = Vec::new();
        rust_files(&root.join("web/src"), &mut files);
        rust_files(&root.join("portal/src"), &mut files);
        let mut found = Vec::new();
        for f in &files {
            let src = std::fs::read_to_string(f).unwrap_or_default();
            let src = src.split("#[cfg(test)]").next().unwrap_or("");
            for lit in template_text_literals(src) {
                found.push(format!("{}: {lit:?}", f.display()));
            }
        }
        assert!(
            found.is_empty(),
            "text outside the catalogs:\n{}",
            found.join("\n")
        );
        let probe = r#"html! { p { "Hello" } a href="/x" { (t(lang, "k.k")) } span { " · " } }"#;
        assert_eq!(template_text_literals(probe), vec!["Hello".to_owned()]);
    }

    #[test]
    fn scanner_finds_calls_and_namespaced_literals() {
        let ns: BTreeSet<String> = ["nav".to_owned()].into();
        let src = r#"t(lang, "a.b"); tf(lang, "c.d", &[]); x("nav.home"); y("qiao.css"); // t(lang, "z.z")"#;
        let got: Vec<String> = keys_used_in(src, &ns).into_iter().collect();
        assert_eq!(got, vec!["a.b", "c.d", "nav.home"]);
    }

    /// The zh-CN catalog uses full-width punctuation beside Chinese text (`，。：；！？（）`),
    /// never ASCII `, . : ; ! ? ( )` right after a Han character (or `(` right before one); Latin,
    /// formulas and quoted characters keep theirs.
    #[test]
    fn zh_cn_punctuation_is_full_width() {
        let han = |c: char| ('\u{4e00}'..='\u{9fff}').contains(&c);
        let mut found = Vec::new();
        for (k, v) in &parsed(ZH_CN_SOURCE, "zh-CN") {
            let chars: Vec<char> = v.chars().collect();
            for (i, c) in chars.iter().enumerate() {
                if !",.:;!?()".contains(*c) {
                    continue;
                }
                let before = i.checked_sub(1).and_then(|j| chars.get(j));
                let after = chars.get(i + 1);
                let opens = *c == '(';
                let beside_han = if opens {
                    after.is_some_and(|a| han(*a))
                } else {
                    before.is_some_and(|b| han(*b))
                };
                if beside_han {
                    found.push(format!("{k}: {v}"));
                    break;
                }
            }
        }
        assert!(
            found.is_empty(),
            "ASCII punctuation in Chinese text:\n{}",
            found.join("\n")
        );
    }

    #[test]
    fn catalog_syntax_errors_name_the_line() {
        assert_eq!(parse_catalog("a = \"x\"\nb = y").unwrap_err().line, 2);
        assert_eq!(
            parse_catalog("a = \"x").unwrap_err().reason,
            "unterminated string"
        );
        assert!(parse_catalog("a = \"x\"\na = \"y\"").is_err());
        assert!(parse_catalog("A = \"x\"").is_err());
        let c = parse_catalog("# c\n\nk.x = \"say \\\"hi\\\" \\u4e2d\" # note\n").unwrap();
        assert_eq!(c["k.x"], "say \"hi\" 中");
    }

    #[test]
    fn dates_per_locale() {
        // 2026-11-25 00:00 UTC
        let t = days_from_civil(2026, 11, 25) * 86_400;
        assert_eq!(t, 1_795_564_800);
        assert_eq!(fmt_date(Lang::ZhCn, t), "2026年11月25日");
        assert_eq!(fmt_date(Lang::En, t), "25 Nov 2026");
        assert_eq!(fmt_date(Lang::En, t + 86_399), "25 Nov 2026");
        assert_eq!(
            fmt_datetime(Lang::En, t + 3600 * 13 + 60 * 5),
            "25 Nov 2026 13:05 UTC"
        );
        // Beijing time in Chinese: 16:30 UTC is the next morning there.
        assert_eq!(
            fmt_datetime(Lang::ZhCn, t + 3600 * 16 + 60 * 30),
            "2026年11月26日 00:30（北京时间）"
        );
        assert_eq!(fmt_date(Lang::ZhCn, t + 3600 * 16), "2026年11月26日");
        assert_eq!(fmt_date(Lang::En, t + 3600 * 16), "25 Nov 2026");
        // A form date (its day's UTC midnight) keeps its day in both languages.
        assert_eq!(fmt_date(Lang::ZhCn, t), "2026年11月25日");
        assert_eq!(
            parse_local_ymd(Lang::ZhCn, "2026-11-25"),
            Some(t - 8 * 3600)
        );
        assert_eq!(parse_local_ymd(Lang::En, "2026-11-25"), Some(t));
        assert_eq!(parse_local_ymd(Lang::En, "2026-13-25"), None);
        assert_eq!(fmt_date(Lang::En, 0), "1 Jan 1970");
        assert_eq!(fmt_date(Lang::ZhCn, -86_400), "1969年12月31日");
        assert_eq!(fmt_month(Lang::ZhCn, 2026, 3), "2026年3月");
        assert_eq!(fmt_month(Lang::En, 2026, 3), "Mar 2026");
        for d in [-800_000, -1, 0, 59, 60, 11_016, 20_000, 2_932_896] {
            let (y, m, dd) = civil_from_days(d);
            assert_eq!(days_from_civil(y, m, dd), d);
        }
        assert_eq!(parse_ymd("2026-11-25"), Some(t));
        assert_eq!(ymd_value(t), "2026-11-25");
        assert_eq!(parse_ymd("2026-02-30"), None);
        assert_eq!(parse_ymd("2026-13-01"), None);
        assert_eq!(parse_ymd("x"), None);
    }

    #[test]
    fn numbers_per_locale() {
        assert_eq!(fmt_int(Lang::En, 0), "0");
        assert_eq!(fmt_int(Lang::En, 999), "999");
        assert_eq!(fmt_int(Lang::En, 1000), "1,000");
        assert_eq!(fmt_int(Lang::ZhCn, 1_234_567), "1,234,567");
        assert_eq!(fmt_int(Lang::En, -12_345), "-12,345");
        assert_eq!(fmt_int(Lang::En, i64::MIN), "-9,223,372,036,854,775,808");
        assert_eq!(fmt_decimal(Lang::En, 12_345.678, 1), "12,345.7");
        assert_eq!(fmt_decimal(Lang::En, -0.04, 1), "0.0");
        assert_eq!(fmt_decimal(Lang::En, -1234.5, 2), "-1,234.50");
    }

    #[test]
    fn negotiation() {
        let mut h = HeaderMap::new();
        assert_eq!(Lang::negotiate(&h), Lang::En);
        h.insert(
            header::ACCEPT_LANGUAGE,
            "fr;q=1, zh-CN;q=0.9, en;q=0.8".parse().unwrap(),
        );
        assert_eq!(Lang::negotiate(&h), Lang::ZhCn);
        h.insert(header::ACCEPT_LANGUAGE, "en-GB,zh;q=0.5".parse().unwrap());
        assert_eq!(Lang::negotiate(&h), Lang::En);
        h.insert(header::COOKIE, "a=b; lang=zh-CN".parse().unwrap());
        assert_eq!(Lang::negotiate(&h), Lang::ZhCn);
        h.insert(header::COOKIE, "lang=xx".parse().unwrap());
        assert_eq!(Lang::negotiate(&h), Lang::En);
        assert_eq!(
            Lang::from_accept_language("zh;q=0, en;q=0.1"),
            Some(Lang::En)
        );
    }

    #[test]
    fn placeholders() {
        assert_eq!(
            fill("{a} and {b}, {c}", &[("a", "1"), ("b", "2")]),
            "1 and 2, {c}"
        );
        assert_eq!(fill("open { brace", &[]), "open { brace");
        assert_eq!(t(Lang::En, "no.such.key"), "no.such.key");
    }
}

#[cfg(test)]
mod zone_tests {
    use super::*;
    use crate::session::CookiePolicy;
    use crate::zone::{label, parse, scoped_sync, zone_cookie};

    fn z(name: &str) -> Option<crate::zone::Zone> {
        Some(parse(name).unwrap_or_else(|| panic!("{name} is a zone")))
    }

    #[test]
    fn a_chosen_zone_applies_to_formatting_and_day_bounds() {
        // 2026-11-25 13:05 UTC.
        let t = 1_795_611_900;
        assert_eq!(fmt_datetime(Lang::En, t), "25 Nov 2026 13:05 UTC");
        assert_eq!(
            fmt_datetime(Lang::ZhCn, t),
            "2026年11月25日 21:05（北京时间）"
        );
        scoped_sync(z("Asia/Kolkata"), || {
            assert_eq!(fmt_datetime(Lang::En, t), "25 Nov 2026 18:35 UTC+05:30");
            assert_eq!(
                fmt_datetime(Lang::ZhCn, t),
                "2026年11月25日 18:35（UTC+05:30）"
            );
            // A day's first second in that zone.
            assert_eq!(
                parse_local_ymd(Lang::En, "2026-11-25"),
                Some(1_795_564_800 - 330 * 60)
            );
        });
        scoped_sync(z("UTC-05:00"), || {
            // Before midnight UTC the day is still the 25th five hours west.
            assert_eq!(
                fmt_datetime(Lang::En, t + 11 * 3600),
                "25 Nov 2026 19:05 UTC−05:00"
            );
        });
        // A Chinese user choosing UTC, an English one Beijing time; Singapore is UTC+8 too
        // but not Beijing time.
        scoped_sync(z("UTC"), || {
            assert_eq!(fmt_datetime(Lang::ZhCn, t), "2026年11月25日 13:05（UTC）");
        });
        scoped_sync(z("Asia/Shanghai"), || {
            assert_eq!(fmt_datetime(Lang::En, t), "25 Nov 2026 21:05 UTC+08:00");
        });
        scoped_sync(z("Asia/Singapore"), || {
            assert_eq!(
                fmt_datetime(Lang::ZhCn, t),
                "2026年11月25日 21:05（UTC+08:00）"
            );
        });
        // Outside a scope: the language's zone again.
        assert_eq!(fmt_datetime(Lang::En, t), "25 Nov 2026 13:05 UTC");
    }

    #[test]
    fn daylight_saving_follows_the_zone_rules() {
        // 2026-11-25 13:05 UTC (winter) and 2026-07-01 12:00 UTC (summer).
        let winter = 1_795_611_900;
        let summer = 1_782_907_200;
        scoped_sync(z("Europe/Berlin"), || {
            assert_eq!(
                fmt_datetime(Lang::En, winter),
                "25 Nov 2026 14:05 UTC+01:00"
            );
            assert_eq!(fmt_datetime(Lang::En, summer), "1 Jul 2026 14:00 UTC+02:00");
            // Midnight of a summer day is 22:00 UTC the day before.
            assert_eq!(
                parse_local_ymd(Lang::En, "2026-07-01"),
                Some(1_782_864_000 - 2 * 3600)
            );
        });
        scoped_sync(z("America/New_York"), || {
            assert_eq!(fmt_datetime(Lang::En, summer), "1 Jul 2026 08:00 UTC−04:00");
            assert_eq!(
                fmt_datetime(Lang::En, winter),
                "25 Nov 2026 08:05 UTC−05:00"
            );
            // 2026-03-08, the day clocks go forward at 02:00: it still starts at 00:00 EST.
            assert_eq!(
                parse_local_ymd(Lang::En, "2026-03-08"),
                Some(1_772_928_000 + 5 * 3600)
            );
        });
        // Sydney's summer is December.
        scoped_sync(z("Australia/Sydney"), || {
            assert_eq!(
                fmt_datetime(Lang::En, winter),
                "26 Nov 2026 00:05 UTC+11:00"
            );
            assert_eq!(fmt_datetime(Lang::En, summer), "1 Jul 2026 22:00 UTC+10:00");
        });
    }

    #[test]
    fn zones_are_iana_names_or_fixed_offsets() {
        assert_eq!(parse("Europe/Berlin").unwrap().name(), "Europe/Berlin");
        assert_eq!(parse(" asia/shanghai ").unwrap().name(), "Asia/Shanghai");
        assert_eq!(parse("UTC+05:30").unwrap().name(), "UTC+05:30");
        assert_eq!(parse("UTC−03:00").unwrap().name(), "UTC-03:00");
        // The minutes an earlier version stored.
        assert_eq!(parse("480").unwrap().name(), "UTC+08:00");
        assert_eq!(parse("0").unwrap().name(), "UTC");
        for bad in [
            "",
            "Mars/Olympus",
            "UTC+8",
            "UTC+15:00",
            "UTC+05:60",
            "99999999999",
            "-720.0",
            "Europe/Berlin; Path=/",
            "../../etc/passwd",
        ] {
            assert!(parse(bad).is_none(), "{bad}");
        }
        for name in crate::zone::CHOICES {
            assert_eq!(
                parse(name).map(|z| z.name().to_owned()).as_deref(),
                Some(*name)
            );
        }
        assert_eq!(label(-570), "UTC−09:30");
        assert_eq!(label(765), "UTC+12:45");
        let p = CookiePolicy { secure: true };
        assert!(zone_cookie(p, Some("Europe/Berlin")).starts_with("tz=Europe/Berlin;"));
        assert!(zone_cookie(p, Some("UTC−03:00")).starts_with("tz=UTC-03:00;"));
        assert!(zone_cookie(p, Some("nowhere")).starts_with("tz=;"));
        assert_eq!(
            parse("Europe/Berlin").unwrap().describe(1_795_611_900),
            "Europe/Berlin (UTC+01:00)"
        );
        assert_eq!(parse("UTC-03:00").unwrap().describe(0), "UTC−03:00");
    }
}
