//! Shared page helpers: refusals to field errors, stage badges, option lists.

use axum::http::StatusCode;
use axum::response::Response;
use qiao_web::i18n::{fill, t_dyn};
use qiao_web::layout::FormErrors;
use qiao_web::{html, t, Lang, Markup};

use crate::alliance::{Refusal, Stage};
use crate::web::Ctx;

/// Field errors of refusals (field → message). A refusal that is not about a field becomes
/// the page's response (403, 404, 500), or a form-level message under `"form"`.
pub fn errors_of(ctx: &Ctx, refusals: &[Refusal]) -> Result<FormErrors, Response> {
    let lang = ctx.lang;
    let mut errors = FormErrors::new();
    for r in refusals {
        match r {
            Refusal::Field { field, key, args } => {
                let args: Vec<(&str, &str)> = args.iter().map(|(k, v)| (*k, v.as_str())).collect();
                errors.add(field, fill(t(lang, key), &args));
            }
            Refusal::State(key) => errors.add("form", t(lang, key)),
            Refusal::Forbidden => return Err(ctx.forbidden()),
            Refusal::NotFound => return Err(ctx.not_found()),
            Refusal::Store(e) => return Err(ctx.internal(e)),
        }
    }
    Ok(errors)
}

/// A form-level error (from [`errors_of`]'s `"form"` entry).
pub fn form_error(errors: &FormErrors) -> Markup {
    html! { @if let Some(e) = errors.get("form") { p.flash.err role="alert" { (e) } } }
}

/// A stage badge.
pub fn stage_badge(lang: Lang, s: Stage) -> Markup {
    html! { span class=(format!("badge {}", s.as_str())) { (t_dyn(lang, &format!("stage.{}", s.as_str()))) } }
}

/// A stage's name.
pub fn stage_name(lang: Lang, s: Stage) -> String {
    t_dyn(lang, &format!("stage.{}", s.as_str()))
}

/// A 422 re-render of a page with errors.
pub fn unprocessable(mut r: Response) -> Response {
    *r.status_mut() = StatusCode::UNPROCESSABLE_ENTITY;
    r
}

/// A CSV download: `text` as `text/csv` with `filename` as the attachment's name.
pub fn csv_attachment(text: String, filename: &str) -> Response {
    use axum::http::{header, HeaderValue};
    use axum::response::IntoResponse;
    let mut resp = (StatusCode::OK, text).into_response();
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/csv; charset=utf-8"),
    );
    if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"{filename}\"")) {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    resp
}
