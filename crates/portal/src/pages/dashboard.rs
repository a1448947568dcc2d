//! The dashboard.

use axum::response::Response;
use qiao_web::{html, tf};

use crate::web::Ctx;

/// `GET /`: the dashboard, or the sign-in page for anonymous visitors.
pub async fn dashboard(ctx: Ctx) -> Response {
    let user = match ctx.require(&[]) {
        Ok(u) => u,
        Err(r) => return r,
    };
    let lang = ctx.lang;
    let body = html! {
        p { (tf(lang, "dashboard.welcome", &[("name", user.id.as_str())])) }
    };
    ctx.page("dashboard.title").respond(body)
}
