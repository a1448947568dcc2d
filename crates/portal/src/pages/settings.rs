//! `GET|POST /settings`: the signed-in user's own settings — the time zone every page and the
//! audit filters use ([`qiao_web::zone`]), kept with their account and carried by the zone
//! cookie (set here and at sign-in).

use axum::extract::State;
use axum::response::Response;
use qiao_web::i18n::fmt_datetime;
use qiao_web::layout::{csrf_field, select, submit, FormErrors};
use qiao_web::{html, t, tf, zone};

use crate::alliance;
use crate::web::{blocking, redirect_flash, Ctx, PostForm, Shared};

/// `GET /settings` (any signed-in user).
pub async fn settings(State(portal): State<Shared>, ctx: Ctx) -> Response {
    let user = match ctx.require(&[]) {
        Ok(u) => u.clone(),
        Err(r) => return r,
    };
    let store = portal.hub.store().clone();
    let id = user.id.to_string();
    let saved = match blocking(move || alliance::user_settings(store.as_ref(), &id)).await {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => return ctx.internal(e),
        Err(e) => return ctx.internal(e),
    };
    page(&ctx, &saved.zone.unwrap_or_default(), &FormErrors::new())
}

/// The settings page with `chosen` selected and the form's `errors`.
fn page(ctx: &Ctx, chosen: &str, errors: &FormErrors) -> Response {
    let lang = ctx.lang;
    let now = qiao_hub::util::now();
    let body = html! {
        form.card #zone-form method="post" action="/settings" {
            (csrf_field(&ctx.csrf()))
            (select(lang, "zone", "settings.zone", &qiao_web::layout::zone_options(lang, chosen, now), chosen, errors))
            p.muted { (t(lang, "settings.zone_note")) }
            (submit(lang, "settings.save"))
        }
        p #now { (tf(lang, "settings.now", &[("time", &fmt_datetime(lang, now))])) }
    };
    ctx.page("settings.title").respond(body)
}

/// `POST /settings`: saves the zone (empty: the language's) and sets the zone cookie; a value
/// that is no zone is refused, naming it, and nothing is saved.
pub async fn save(State(portal): State<Shared>, ctx: Ctx, form: PostForm) -> Response {
    let user = match ctx.require(&[]) {
        Ok(u) => u.clone(),
        Err(r) => return r,
    };
    let value = form.get("zone").trim();
    let chosen = zone::parse(value);
    if chosen.is_none() && !value.is_empty() {
        let mut errors = FormErrors::new();
        errors.add(
            "zone",
            tf(ctx.lang, "settings.err_zone", &[("value", value)]),
        );
        return super::common::unprocessable(page(&ctx, "", &errors));
    }
    let store = portal.hub.store().clone();
    let saving = chosen.clone();
    let r = blocking(move || {
        alliance::set_zone(
            store.as_ref(),
            &user,
            saving.as_ref(),
            qiao_hub::util::now(),
        )
    })
    .await;
    match r {
        Ok(Ok(_)) => super::auth::with_cookie(
            redirect_flash("/settings", "flash.saved"),
            &zone::zone_cookie(portal.cookies, chosen.as_ref().map(|z| z.name())),
        ),
        Ok(Err(e)) => ctx.internal(format!("{e:?}")),
        Err(e) => ctx.internal(e),
    }
}
