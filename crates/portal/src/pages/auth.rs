//! Sign-in and sign-out.

use axum::extract::State;
use axum::http::{header, HeaderValue};
use axum::response::Response;
use qiao_hub::api::LoginRefused;
use qiao_web::layout::{csrf_field, field, see_other, submit, FormErrors, InputKind};
use qiao_web::session::{self, safe_next};
use qiao_web::{html, t, tf};

use crate::web::{blocking, Ctx, PostForm, Shared};

pub(crate) fn with_cookie(mut resp: Response, cookie: &str) -> Response {
    if let Ok(v) = HeaderValue::from_str(cookie) {
        resp.headers_mut().append(header::SET_COOKIE, v);
    }
    resp
}

fn render_login(
    ctx: &Ctx,
    pre: &str,
    username: &str,
    errors: &FormErrors,
    status: axum::http::StatusCode,
) -> Response {
    let lang = ctx.lang;
    let next = safe_next(ctx.query.get("next").map(String::as_str));
    let csrf = session::csrf_token(pre);
    let body = html! {
        p.muted { (t(lang, "login.intro")) }
        @if let Some(e) = errors.get("form") { p.flash.err role="alert" { (e) } }
        form.card method="post" action=(format!("/login?next={}", qiao_web::layout::url_encode(&next))) {
            (csrf_field(&csrf))
            (field(lang, InputKind::Text, "username", "login.username", username, errors))
            (field(lang, InputKind::Password, "password", "login.password", "", errors))
            (submit(lang, "login.submit"))
        }
        p { a href="/apply" #apply-link { (t(lang, "login.apply")) } " · " a href="/apply/status" { (t(lang, "login.apply_status")) } }
    };
    let mut resp = ctx.page("login.title").respond(body);
    *resp.status_mut() = status;
    resp
}

/// `GET /login`: the sign-in form (sets the pre-login CSRF cookie if missing).
pub async fn login_page(State(portal): State<Shared>, ctx: Ctx) -> Response {
    if ctx.user.is_some() {
        return see_other(&safe_next(ctx.query.get("next").map(String::as_str)));
    }
    let (pre, fresh) = match &ctx.pre {
        Some(p) => (p.clone(), false),
        None => (session::random_secret(), true),
    };
    let resp = render_login(
        &ctx,
        &pre,
        "",
        &FormErrors::new(),
        axum::http::StatusCode::OK,
    );
    if fresh {
        with_cookie(resp, &session::pre_cookie(portal.cookies, &pre))
    } else {
        resp
    }
}

/// `POST /login`: checks the password through the hub (rate limit, argon2, audit) and sets the
/// session cookie.
pub async fn login_submit(State(portal): State<Shared>, ctx: Ctx, form: PostForm) -> Response {
    let lang = ctx.lang;
    let username = form.get("username").to_owned();
    let password = form.raw("password").to_owned();
    let pre = ctx.pre.clone().unwrap_or_default();
    let mut errors = FormErrors::new();
    if username.is_empty() {
        errors.add("username", t(lang, "login.required"));
    }
    if password.is_empty() {
        errors.add("password", t(lang, "login.required"));
    }
    if !errors.is_empty() {
        return render_login(
            &ctx,
            &pre,
            &username,
            &errors,
            axum::http::StatusCode::UNPROCESSABLE_ENTITY,
        );
    }
    let hub = portal.hub.clone();
    let ip = ctx.ip;
    let u2 = username.clone();
    let result = match blocking(move || hub.password_login(&u2, &password, ip)).await {
        Ok(r) => r,
        Err(e) => return ctx.internal(e),
    };
    match result {
        Ok(resp) => {
            let max_age = resp
                .expires_at
                .map(|e| e.saturating_sub(qiao_hub::util::now()))
                .unwrap_or(12 * 3600);
            let next = safe_next(ctx.query.get("next").map(String::as_str));
            // The user's zone from their settings (from now on, in this browser).
            let store = portal.hub.store().clone();
            let zone = blocking(move || crate::alliance::user_settings(store.as_ref(), &username))
                .await
                .ok()
                .and_then(Result::ok)
                .and_then(|s| s.zone);
            with_cookie(
                with_cookie(
                    see_other(&next),
                    &session::session_cookie(portal.cookies, &resp.token, max_age),
                ),
                &qiao_web::zone::zone_cookie(portal.cookies, zone.as_deref()),
            )
        }
        Err(LoginRefused::InvalidCredentials | LoginRefused::Disabled) => {
            errors.add("form", t(lang, "login.failed"));
            render_login(
                &ctx,
                &pre,
                &username,
                &errors,
                axum::http::StatusCode::UNAUTHORIZED,
            )
        }
        Err(LoginRefused::RateLimited(secs)) => {
            errors.add(
                "form",
                tf(lang, "login.rate_limited", &[("secs", &secs.to_string())]),
            );
            render_login(
                &ctx,
                &pre,
                &username,
                &errors,
                axum::http::StatusCode::TOO_MANY_REQUESTS,
            )
        }
        Err(LoginRefused::Failed(e)) => ctx.internal(e),
    }
}

/// `POST /logout`: ends the session at the hub (the token is revoked, audited) and forgets
/// the cookie.
pub async fn logout(State(portal): State<Shared>, ctx: Ctx, _form: PostForm) -> Response {
    if let (Some(token), Some(user)) = (ctx.session_token(), &ctx.user) {
        let hub = portal.hub.clone();
        let token = token.to_owned();
        let who = qiao_hub::audit::Actor::User(user.id.to_string());
        match blocking(move || hub.revoke_token(&token, &who)).await {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => return ctx.internal(e),
            Err(e) => return ctx.internal(e),
        }
    }
    with_cookie(
        see_other("/login?flash=flash.signed_out"),
        &session::clear_session_cookie(portal.cookies),
    )
}
