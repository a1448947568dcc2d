//! `GET /budget`: the signed-in user's remaining privacy budget per site, and their
//! organization's, as the sites last reported them (`qiao_hub::budget`, the same data as
//! `GET /api/v1/budget`).

use axum::extract::State;
use axum::response::Response;
use qiao_hub::budget::{view_of, SiteBudget};
use qiao_web::i18n::{fmt_datetime, fmt_decimal, tf};
use qiao_web::{html, t, Lang, Markup};

use crate::web::{blocking, Ctx, Shared};

/// `GET /budget` (any signed-in user; their own budgets only).
pub async fn budget(State(portal): State<Shared>, ctx: Ctx) -> Response {
    let user = match ctx.require(&[]) {
        Ok(u) => u.clone(),
        Err(r) => return r,
    };
    let lang = ctx.lang;
    let store = portal.hub.store().clone();
    let view = match blocking(move || view_of(store.as_ref(), &user)).await {
        Ok(Ok(v)) => v,
        Ok(Err(e)) => return ctx.internal(e),
        Err(e) => return ctx.internal(e),
    };
    let body = html! {
        p { (tf(lang, "budget.intro", &[("organization", &view.organization)])) }
        h2 { (t(lang, "budget.yours")) }
        (table(lang, &view.sites, false))
        h2 { (t(lang, "budget.organization")) }
        (table(lang, &view.organization_sites, true))
        p.muted { (t(lang, "budget.note")) }
    };
    ctx.page("budget.title").respond(body)
}

fn rho(lang: Lang, x: Option<f64>) -> String {
    x.map_or_else(|| "–".into(), |v| fmt_decimal(lang, v, 4))
}

fn table(lang: Lang, rows: &[SiteBudget], by_org: bool) -> Markup {
    html! {
        @if rows.is_empty() {
            p.empty { (t(lang, "budget.none")) }
        } @else {
            table.budget {
                thead { tr {
                    th { (t(lang, "budget.site")) }
                    @if by_org {
                        th { (t(lang, "budget.org_remaining")) }
                        th { (t(lang, "budget.last_user")) }
                    } @else {
                        th { (t(lang, "budget.remaining")) }
                        th { (t(lang, "budget.user_remaining")) }
                        th { (t(lang, "budget.org_remaining")) }
                    }
                    th { (t(lang, "budget.as_of")) }
                } }
                tbody { @for b in rows {
                    tr id=(format!("budget-{}", b.site)) {
                        td { (b.site) }
                        @if by_org {
                            td { (rho(lang, b.organization_remaining_rho)) }
                            td { (b.user) }
                        } @else {
                            td { (rho(lang, Some(b.remaining_rho))) }
                            td { (rho(lang, b.user_remaining_rho)) }
                            td { (rho(lang, b.organization_remaining_rho)) }
                        }
                        td { (fmt_datetime(lang, b.as_of)) }
                    }
                } }
            }
        }
    }
}
