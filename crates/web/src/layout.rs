//! The page shell and form widgets.
//!
//! A handler builds its body with `maud::html!`, then wraps it in a [`Page`]: title, navigation,
//! the signed-in user and a logout button, the language switch (a plain link to
//! [`crate::assets::LANG_PATH`], works without JavaScript), and a flash message. Forms put
//! [`csrf_field`] first and use the field widgets, which show a field's error message next to
//! it (`aria-describedby`), keeping the submitted value.

use std::collections::BTreeMap;

use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use maud::{html, Markup, DOCTYPE};

use crate::assets::{CSS_PATH, FAVICON_PATH, LANG_PATH};
use crate::i18n::{t, t_dyn, Lang};
use crate::session::CSRF_FIELD;

/// One navigation link.
#[derive(Clone, Debug)]
pub struct NavItem {
    /// Target path.
    pub href: String,
    /// Catalog key of the label.
    pub key: &'static str,
}

impl NavItem {
    /// A link to `href` labelled by catalog key `key`.
    pub fn new(href: impl Into<String>, key: &'static str) -> Self {
        Self {
            href: href.into(),
            key,
        }
    }
}

/// A message shown once at the top of the page (after a POST-redirect-GET).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Flash {
    /// Success or error.
    pub ok: bool,
    /// The message (already translated).
    pub text: String,
}

impl Flash {
    /// The flash of a `?flash=KEY` query value: only catalog keys under `flash.` are shown
    /// (so a link cannot inject text); keys under `flash.err_` show as errors.
    pub fn from_query(lang: Lang, key: Option<&str>) -> Option<Flash> {
        let key = key?;
        if !key.starts_with("flash.") || !crate::i18n::catalog(lang).contains_key(key) {
            return None;
        }
        Some(Flash {
            ok: !key.starts_with("flash.err_"),
            text: t_dyn(lang, key),
        })
    }
}

/// The signed-in user shown in the header.
#[derive(Clone, Debug)]
pub struct UserBadge {
    /// Login name.
    pub name: String,
    /// The role, translated.
    pub role: String,
    /// The CSRF token for the logout form.
    pub csrf: String,
    /// Where the logout form posts.
    pub logout_action: String,
}

/// The options of a time-zone select: the page language's zone (value `""`), every zone the
/// settings pages offer ([`crate::zone::CHOICES`]) and `chosen` (a saved zone not offered), each
/// with its offset at `now` (`Europe/Berlin (UTC+01:00)`).
pub fn zone_options(lang: Lang, chosen: &str, now: i64) -> Vec<(String, String)> {
    let extra = (!chosen.is_empty() && !crate::zone::CHOICES.contains(&chosen)).then_some(chosen);
    std::iter::once((String::new(), t(lang, "zone.by_language").to_owned()))
        .chain(
            crate::zone::CHOICES
                .iter()
                .copied()
                .chain(extra)
                .filter_map(crate::zone::parse)
                .map(|z| (z.name().to_owned(), z.describe(now))),
        )
        .collect()
}

/// Where a signed-in user's own settings are (the time zone): the portal and the site pages
/// serve it; the user badge links there.
pub const SETTINGS_PATH: &str = "/settings";

/// A page: everything around the body.
#[derive(Clone, Debug)]
pub struct Page {
    /// Language of the page.
    pub lang: Lang,
    /// Title (translated).
    pub title: String,
    /// The current path with query (the language switch returns here).
    pub path: String,
    /// Catalog key of the product name in the header (`app.portal` or `app.site`).
    pub brand_key: &'static str,
    /// Navigation links.
    pub nav: Vec<NavItem>,
    /// The signed-in user.
    pub user: Option<UserBadge>,
    /// A message for the top of the page.
    pub flash: Option<Flash>,
}

impl Page {
    /// A page titled by catalog key `title_key`, at `path`.
    pub fn new(lang: Lang, title_key: &'static str, path: impl Into<String>) -> Self {
        Self {
            lang,
            title: t(lang, title_key).to_owned(),
            path: path.into(),
            brand_key: "app.portal",
            nav: Vec::new(),
            user: None,
            flash: None,
        }
    }

    /// Renders the full HTML document around `body`.
    pub fn render(&self, body: Markup) -> Markup {
        let lang = self.lang;
        html! {
            (DOCTYPE)
            html lang=(lang.code()) {
                head {
                    meta charset="utf-8";
                    meta name="viewport" content="width=device-width, initial-scale=1";
                    title { (self.title) " · " (t(lang, self.brand_key)) }
                    link rel="stylesheet" href=(CSS_PATH);
                    link rel="icon" type="image/svg+xml" href=(FAVICON_PATH);
                }
                body {
                    header.top {
                        a.brand href="/" { (t(lang, self.brand_key)) }
                        nav aria-label=(t(lang, "layout.nav")) {
                            ul {
                                @for item in &self.nav {
                                    @let current = self.path == item.href
                                        || (item.href != "/" && self.path.starts_with(&format!("{}/", item.href)));
                                    li {
                                        @if current {
                                            a href=(item.href) aria-current="page" { (t(lang, item.key)) }
                                        } @else {
                                            a href=(item.href) { (t(lang, item.key)) }
                                        }
                                    }
                                }
                            }
                        }
                        div.right {
                            (lang_switch(lang, &self.path))
                            @if let Some(u) = &self.user {
                                a.user href=(SETTINGS_PATH) title=(t(lang, "layout.settings")) { (u.name) " · " (u.role) }
                                form.inline method="post" action=(u.logout_action) {
                                    (csrf_field(&u.csrf))
                                    button.link type="submit" { (t(lang, "layout.logout")) }
                                }
                            }
                        }
                    }
                    main {
                        h1 { (self.title) }
                        @if let Some(f) = &self.flash {
                            @if f.ok {
                                p.flash.ok role="status" { (f.text) }
                            } @else {
                                p.flash.err role="alert" { (f.text) }
                            }
                        }
                        (body)
                    }
                    footer { (t(lang, "layout.footer")) }
                }
            }
        }
    }

    /// Renders and wraps as a `200 text/html` response.
    pub fn respond(&self, body: Markup) -> Response {
        html_response(StatusCode::OK, self.render(body))
    }
}

/// A `text/html; charset=utf-8` response.
pub fn html_response(status: StatusCode, markup: Markup) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        markup.into_string(),
    )
        .into_response()
}

/// A `303 See Other` to a local path (POST-redirect-GET).
pub fn see_other(location: &str) -> Response {
    (
        StatusCode::SEE_OTHER,
        [(header::LOCATION, crate::session::safe_next(Some(location)))],
    )
        .into_response()
}

/// The language switch: one link per other language, to [`LANG_PATH`] with a return path.
pub fn lang_switch(lang: Lang, path: &str) -> Markup {
    html! {
        span.lang-switch {
            @for other in Lang::ALL {
                @if other == lang {
                    span.current lang=(other.code()) { (other.native_name()) }
                } @else {
                    a lang=(other.code()) hreflang=(other.code())
                        href=(format!("{LANG_PATH}?to={}&next={}", other.code(), url_encode(path)))
                        { (other.native_name()) }
                }
            }
        }
    }
}

/// Percent-encodes a query value.
pub fn url_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~/".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The hidden CSRF field; put it in every POST form.
pub fn csrf_field(token: &str) -> Markup {
    html! { input type="hidden" name=(CSRF_FIELD) value=(token); }
}

/// Field errors of a submitted form: field name → translated message.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FormErrors(pub BTreeMap<String, String>);

impl FormErrors {
    /// No errors.
    pub fn new() -> Self {
        Self::default()
    }
    /// Records `message` (translated) for `field` (the first message of a field wins).
    pub fn add(&mut self, field: &str, message: impl Into<String>) {
        self.0
            .entry(field.to_owned())
            .or_insert_with(|| message.into());
    }
    /// Whether there is none.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
    /// The message of a field.
    pub fn get(&self, field: &str) -> Option<&str> {
        self.0.get(field).map(String::as_str)
    }
}

/// What kind of `<input>` a [`field`] is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InputKind {
    /// `type=text`.
    Text,
    /// `type=password`.
    Password,
    /// `type=date` (value `YYYY-MM-DD`).
    Date,
    /// `type=number`.
    Number,
    /// `type=email`.
    Email,
}

impl InputKind {
    fn attr(self) -> &'static str {
        match self {
            InputKind::Text => "text",
            InputKind::Password => "password",
            InputKind::Date => "date",
            InputKind::Number => "number",
            InputKind::Email => "email",
        }
    }
}

fn error_of<'a>(errors: &'a FormErrors, name: &str) -> (Option<&'a str>, String) {
    (errors.get(name), format!("err-{name}"))
}

/// A labelled `<input>` with its error (if any) right after it.
pub fn field(
    lang: Lang,
    kind: InputKind,
    name: &str,
    label_key: &'static str,
    value: &str,
    errors: &FormErrors,
) -> Markup {
    let (err, err_id) = error_of(errors, name);
    html! {
        div.field.invalid[err.is_some()] {
            label for=(name) { (t(lang, label_key)) }
            @if err.is_some() {
                input id=(name) name=(name) type=(kind.attr()) value=(value)
                    aria-invalid="true" aria-describedby=(err_id);
            } @else {
                input id=(name) name=(name) type=(kind.attr()) value=(value);
            }
            @if let Some(e) = err { p.field-error id=(err_id) { (e) } }
        }
    }
}

/// A labelled `<textarea>` with its error (if any) right after it.
pub fn textarea(
    lang: Lang,
    name: &str,
    label_key: &'static str,
    value: &str,
    rows: u32,
    errors: &FormErrors,
) -> Markup {
    let (err, err_id) = error_of(errors, name);
    html! {
        div.field.invalid[err.is_some()] {
            label for=(name) { (t(lang, label_key)) }
            @if err.is_some() {
                textarea id=(name) name=(name) rows=(rows) aria-invalid="true"
                    aria-describedby=(err_id) { (value) }
            } @else {
                textarea id=(name) name=(name) rows=(rows) { (value) }
            }
            @if let Some(e) = err { pre.field-error id=(err_id) { (e) } }
        }
    }
}

/// A labelled `<select>`: `options` are (value, translated label).
pub fn select(
    lang: Lang,
    name: &str,
    label_key: &'static str,
    options: &[(String, String)],
    selected: &str,
    errors: &FormErrors,
) -> Markup {
    let (err, err_id) = error_of(errors, name);
    html! {
        div.field.invalid[err.is_some()] {
            label for=(name) { (t(lang, label_key)) }
            select id=(name) name=(name) aria-describedby=[err.map(|_| err_id.clone())] {
                @for (v, l) in options {
                    option value=(v) selected[v == selected] { (l) }
                }
            }
            @if let Some(e) = err { p.field-error id=(err_id) { (e) } }
        }
    }
}

/// A submit button labelled by catalog key `key`.
pub fn submit(lang: Lang, key: &'static str) -> Markup {
    html! { button type="submit" { (t(lang, key)) } }
}

/// The mark on a disclosure-controlled number (with its explanation as a tooltip and for
/// screen readers).
pub fn controlled_mark(lang: Lang) -> Markup {
    html! { abbr.sdc title=(t(lang, "sdc.mark_title")) { "†" } }
}

/// A number that went through disclosure control, marked as such.
pub fn controlled(lang: Lang, text: &str) -> Markup {
    html! { span.controlled { (text) (controlled_mark(lang)) } }
}

/// An error page (403, 404, ...) with a translated message.
pub fn error_page(
    lang: Lang,
    status: StatusCode,
    title_key: &'static str,
    message: &str,
) -> Response {
    let page = Page::new(lang, title_key, "/");
    html_response(status, page.render(html! { p.error { (message) } }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_escapes_and_marks_errors() {
        let mut errors = FormErrors::new();
        errors.add("title", "<b>bad</b>");
        let body = field(
            Lang::En,
            InputKind::Text,
            "title",
            "layout.nav",
            "<x>",
            &errors,
        );
        let s = body.into_string();
        assert!(s.contains("aria-invalid=\"true\""), "{s}");
        assert!(s.contains("&lt;b&gt;bad&lt;/b&gt;"), "{s}");
        assert!(s.contains("value=\"&lt;x&gt;\""), "{s}");
        let mut page = Page::new(Lang::ZhCn, "layout.nav", "/projects?x=1");
        page.nav.push(NavItem::new("/projects", "layout.nav"));
        let html = page.render(html! { p { "x" } }).into_string();
        assert!(
            html.starts_with("<!DOCTYPE html><html lang=\"zh-CN\">"),
            "{html}"
        );
        assert!(
            html.contains("/lang?to=en&amp;next=/projects%3Fx%3D1"),
            "{html}"
        );
        assert!(!html.contains("<script"), "{html}");
    }

    #[test]
    fn flash_only_from_catalog_keys() {
        assert_eq!(Flash::from_query(Lang::En, Some("<script>")), None);
        assert_eq!(Flash::from_query(Lang::En, Some("layout.nav")), None);
        let f = Flash::from_query(Lang::En, Some("flash.saved")).unwrap();
        assert!(f.ok);
        assert_eq!(f.text, t(Lang::En, "flash.saved"));
    }
}
