//! A regression result (issue 16): the run's progress at the hub (its rounds, its state, the
//! sites a failed round waits on and the resume action), then the fit — the coefficients with
//! their standard errors, z, p and 95% intervals, the odds or hazard ratios with theirs, a
//! forest plot of the ratios on a log axis — what the sites' disclosure control did, and the
//! coefficients as CSV.

use axum::extract::{Path, State};
use axum::response::Response;
use qiao_analysis::regression::Fit;
use qiao_hub::model::User;
use qiao_hub::protocol::{JobId, RegressionModel, UserRole};
use qiao_hub::service::runs::{RunRecord, RunStatus, RUNS};
use qiao_hub::store::get_json;
use qiao_hub::util::now;
use qiao_web::chart::{self, Interval};
use qiao_web::i18n::{fmt_decimal, tf};
use qiao_web::layout::csrf_field;
use qiao_web::{html, t, Lang, Markup};

use super::{num, site_name, Loaded};
use crate::alliance::{self, AnalysisKind};
use crate::web::{blocking, redirect_flash, Ctx, PostForm, Shared};

/// The job of a run's current round (`None`: no such run).
pub(super) fn current_job(
    store: &dyn qiao_hub::HubStore,
    run: &JobId,
) -> Result<Option<JobId>, qiao_hub::StoreError> {
    let rec: Option<RunRecord> = store.read_with(|tx| get_json(tx, RUNS, &run.to_string()))?;
    Ok(rec.and_then(|r| r.current().map(|c| c.job_id)))
}

/// A model's name.
pub(super) fn model_name(lang: Lang, m: RegressionModel) -> &'static str {
    match m {
        RegressionModel::Logistic => t(lang, "ana.model_logistic"),
        RegressionModel::Cox => t(lang, "ana.model_cox"),
    }
}

/// The form's model choices.
pub(super) fn models(lang: Lang) -> Vec<(String, String)> {
    [
        ("cox", RegressionModel::Cox),
        ("logistic", RegressionModel::Logistic),
    ]
    .map(|(v, m)| (v.to_owned(), model_name(lang, m).to_owned()))
    .to_vec()
}

/// The ratio's name: odds ratio (logistic) or hazard ratio (Cox).
fn ratio_name(lang: Lang, m: RegressionModel) -> &'static str {
    match m {
        RegressionModel::Logistic => t(lang, "ana.or"),
        RegressionModel::Cox => t(lang, "ana.hr"),
    }
}

/// A two-sided p value: four decimals, or in scientific notation under 10⁻⁴.
fn p_text(p: f64) -> String {
    if p.is_finite() && p > 0.0 && p < 1e-4 {
        format!("{p:.1e}")
    } else {
        format!("{p:.4}")
    }
}

/// The run's progress: state, rounds, the sites a round waits on or that failed it, resume.
fn progress(
    lang: Lang,
    base: &str,
    l: &Loaded,
    run: &RunRecord,
    user: &User,
    csrf: &str,
) -> Markup {
    let current = run.current();
    let round = current.map_or(0, |r| r.round).to_string();
    let answered: Vec<&qiao_hub::protocol::SiteId> = current
        .map(|r| r.sites.iter().map(|s| &s.site).collect())
        .unwrap_or_default();
    let missing: Vec<String> = run
        .sites
        .iter()
        .filter(|s| !answered.contains(s))
        .map(|s| site_name(&l.sites, s.as_str()))
        .collect();
    let rounds = run.rounds.len().to_string();
    let iterations = run.fit.as_ref().map_or(0, |f| f.iterations).to_string();
    let state = match run.status {
        RunStatus::Running => tf(
            lang,
            "ana.reg_running",
            &[
                ("round", &round),
                ("answered", &answered.len().to_string()),
                ("sites", &run.sites.len().to_string()),
                ("rounds", &rounds),
            ],
        ),
        RunStatus::Failed => tf(
            lang,
            "ana.reg_failed",
            &[("round", &round), ("sites", &missing.join(", "))],
        ),
        RunStatus::Converged => tf(
            lang,
            "ana.reg_converged",
            &[("iterations", &iterations), ("rounds", &rounds)],
        ),
        RunStatus::NotConverged => tf(
            lang,
            "ana.reg_not_converged",
            &[("iterations", &iterations), ("rounds", &rounds)],
        ),
        RunStatus::Completed => tf(lang, "ana.reg_completed", &[("rounds", &rounds)]),
    };
    let class = match run.status {
        RunStatus::Running => "running",
        RunStatus::Failed => "failed",
        RunStatus::Converged => "converged",
        RunStatus::NotConverged => "not-converged",
        RunStatus::Completed => "completed",
    };
    let can_resume = run.status == RunStatus::Failed && user.role == UserRole::SponsorResearcher;
    html! {
        h3 { (t(lang, "ana.reg_progress")) }
        p class=(format!("run-state {class}")) { (state) }
        @if let Some(why) = &run.failure {
            p.muted { (t(lang, "ana.reg_hub_said")) " " q.failure translate="no" { (why) } }
        }
        @if can_resume {
            form.resume method="post" action=(format!("{base}/resume")) {
                (csrf_field(csrf))
                p.muted { (t(lang, "ana.reg_resume_note")) }
                button type="submit" { (t(lang, "ana.reg_resume")) }
            }
        }
        @if run.status == RunStatus::Running {
            p.muted { (t(lang, "ana.reg_reload")) }
        }
    }
}

/// What the sites' disclosure control did to the sums of the run's last round, and the guards
/// every site applied before computing any sum.
fn disclosure(lang: Lang, l: &Loaded) -> Markup {
    let mut noised = Vec::new();
    let mut threshold = None;
    for s in &l.view.sites {
        let Some(d) = s.payload.as_ref().map(|p| p.disclosure()) else {
            continue;
        };
        threshold = threshold.max(Some(d.min_cell_count));
        if d.dp.is_some() || d.obfuscation.is_some() {
            noised.push(site_name(&l.sites, s.site.as_str()));
        }
    }
    let privacy = l
        .regression
        .as_ref()
        .and_then(|r| r.fit.as_ref())
        .and_then(|f| f.privacy.as_ref());
    html! {
        p.muted.controlled {
            @if let Some(p) = privacy {
                (tf(lang, "ana.reg_dp", &[
                    ("rounds", &p.rounds.to_string()),
                    ("rho", &format!("{:.4}", p.rho_per_round)),
                    ("count_sd", &fmt_decimal(lang, p.count_noise_sd, 1)),
                ]))
            } @else if noised.is_empty() {
                (t(lang, "ana.reg_exact"))
            } @else {
                (tf(lang, "ana.reg_noised", &[("sites", &noised.join(", "))]))
            }
            " "
            @if let Some(n) = threshold {
                (tf(lang, "ana.reg_guards", &[("n", &n.to_string())]))
            }
        }
    }
}

/// The coefficients' table and the forest plot of their ratios (the intercept left out).
fn fit_tables(lang: Lang, base: &str, model: RegressionModel, fit: &Fit) -> Markup {
    let ratio = ratio_name(lang, model);
    let d = |x: f64, k: usize| fmt_decimal(lang, x, k);
    let ci = |x: f64, lo: f64, hi: f64, k: usize| {
        tf(
            lang,
            "ana.ci",
            &[("x", &d(x, k)), ("low", &d(lo, k)), ("high", &d(hi, k))],
        )
    };
    let rows: Vec<Interval> = fit
        .coefficients
        .iter()
        .filter(|c| !(model == RegressionModel::Logistic && c.name == "(intercept)"))
        .map(|c| Interval {
            label: c.name.clone(),
            point: c.ratio,
            low: Some(c.ratio_lower),
            high: Some(c.ratio_upper),
            display: ci(c.ratio, c.ratio_lower, c.ratio_upper, 3),
        })
        .collect();
    let yes_no = if fit.converged {
        t(lang, "ana.yes")
    } else {
        t(lang, "ana.no")
    };
    html! {
        p { a href=(format!("{base}/coefficients.csv")) download { (t(lang, "ana.csv_coefficients")) } }
        p.fit-summary {
            (tf(lang, "ana.reg_summary", &[
                ("n", &fit.n.to_string()),
                ("events", &fit.events.to_string()),
                ("iterations", &fit.iterations.to_string()),
                ("converged", yes_no),
            ]))
        }
        div.scroll { table.coefficients {
            thead { tr {
                th { (t(lang, "ana.coefficient")) }
                th.num { (t(lang, "ana.beta")) } th.num { (t(lang, "ana.se")) }
                th.num { (t(lang, "ana.z")) } th.num { (t(lang, "ana.p")) }
                th.num { (t(lang, "ana.beta_ci")) }
                th.num { (tf(lang, "ana.ratio_ci", &[("ratio", ratio)])) }
            } }
            tbody { @for c in &fit.coefficients { tr {
                td translate="no" { (c.name) }
                td.num { (d(c.beta, 4)) }
                td.num { (d(c.se, 4)) }
                td.num { (d(c.z, 3)) }
                td.num { (p_text(c.p)) }
                td.num { (ci(c.beta, c.lower, c.upper, 4)) }
                td.num.ratio { (ci(c.ratio, c.ratio_lower, c.ratio_upper, 3)) }
            } } }
        } }
        p.muted { (t(lang, "ana.reg_method")) }
        @if !rows.is_empty() {
            (chart::ratio_forest("ratio-plot", &tf(lang, "ana.ratio_plot", &[("ratio", ratio)]), &rows))
        }
    }
}

/// The covariates' names (the coefficients' but the intercept).
fn covariate_names(run: &RunRecord) -> Vec<&str> {
    run.names
        .iter()
        .map(String::as_str)
        .filter(|n| *n != "(intercept)")
        .collect()
}

/// The page body.
pub(super) fn render(lang: Lang, base: &str, l: &Loaded, user: &User, csrf: &str) -> Markup {
    let (Some(run), AnalysisKind::Regression { model, .. }) = (&l.regression, &l.run.kind) else {
        return html! { p.muted { (t(lang, "ana.no_result")) } };
    };
    html! {
        (progress(lang, base, l, run, user, csrf))
        p.muted {
            (tf(lang, "ana.reg_design", &[("model", model_name(lang, *model)), ("tar", &run.spec.tar), ("covariates", &covariate_names(run).join(", "))]))
        }
        (disclosure(lang, l))
        @if let Some(fit) = &run.fit {
            (fit_tables(lang, base, *model, fit))
        }
    }
}

/// The fit's coefficients (statsmodels' and lifelines' summary columns), with the fit's n,
/// events, iterations and convergence on every row; only the header while the run has not
/// ended.
pub(super) fn coefficients_csv(l: &Loaded) -> Vec<Vec<String>> {
    let mut out = vec![[
        "model",
        "name",
        "beta",
        "se",
        "z",
        "p",
        "lower",
        "upper",
        "ratio",
        "ratio_lower",
        "ratio_upper",
        "n",
        "events",
        "iterations",
        "converged",
    ]
    .map(str::to_owned)
    .to_vec()];
    let Some(fit) = l.regression.as_ref().and_then(|r| r.fit.as_ref()) else {
        return out;
    };
    let model = match fit.model {
        qiao_analysis::regression::Model::Logistic => "logistic",
        qiao_analysis::regression::Model::Cox => "cox",
    };
    for c in &fit.coefficients {
        out.push(vec![
            model.to_owned(),
            c.name.clone(),
            num(Some(c.beta)),
            num(Some(c.se)),
            num(Some(c.z)),
            num(Some(c.p)),
            num(Some(c.lower)),
            num(Some(c.upper)),
            num(Some(c.ratio)),
            num(Some(c.ratio_lower)),
            num(Some(c.ratio_upper)),
            fit.n.to_string(),
            fit.events.to_string(),
            fit.iterations.to_string(),
            fit.converged.to_string(),
        ]);
    }
    out
}

/// `POST /projects/{id}/analyses/{n}/resume`: resumes a failed regression run (its failed round
/// issued again to the same sites), then shows the result page.
pub async fn resume(
    State(portal): State<Shared>,
    ctx: Ctx,
    Path((id, n)): Path<(String, u32)>,
    _form: PostForm,
) -> Response {
    let (user, pid) = match ctx.require_project(&id) {
        Ok(x) => x,
        Err(r) => return r,
    };
    let p = portal.clone();
    let r = blocking(move || {
        let r = alliance::resume_regression(p.hub.store().as_ref(), &pid, n, &user, now());
        if r.is_ok() {
            p.hub.notify_jobs();
        }
        r
    })
    .await;
    let page = format!("/projects/{id}/analyses/{n}");
    match r {
        Ok(Ok(_)) => redirect_flash(&page, "flash.resumed"),
        Ok(Err(alliance::Refusal::State("ana.err_not_failed"))) => {
            redirect_flash(&page, "flash.err_not_failed")
        }
        Ok(Err(alliance::Refusal::State(_))) => redirect_flash(&page, "flash.err_forbidden"),
        Ok(Err(alliance::Refusal::Forbidden)) => ctx.forbidden(),
        Ok(Err(alliance::Refusal::NotFound | alliance::Refusal::Field { .. })) => ctx.not_found(),
        Ok(Err(alliance::Refusal::Store(e))) => ctx.internal(e),
        Err(e) => ctx.internal(e),
    }
}
