//! `GET /projects/{id}/cohorts/{n}/results.csv[?run=K]`: one feasibility run's funnel (per site
//! and the network total) and site ranking as CSV, for whoever may see the project. Every run
//! of a cohort is kept (`CohortRef::runs`), each with the definition version it ran
//! (`FeasibilityRun::version`; replacing a definition makes a new version, the old one kept).
//! Values are written as released, in the portal's one notation, with the range.

use axum::extract::{Path, Query, State};
use axum::response::Response;
use qiao_hub::model::Site;
use qiao_hub::protocol::Payload;
use qiao_hub::view::{site_value, JobView, NetworkTotals, TotalValue};
use qiao_web::Lang;
use serde::Deserialize;

use super::feasibility::uncertain;
use crate::alliance;
use crate::web::{blocking, Ctx, Shared};

/// Which run (0 = the first); the latest without it.
#[derive(Deserialize)]
pub struct RunQuery {
    run: Option<usize>,
}

/// One CSV line: table, site, step, shown, point, low, high.
type Line = [String; 7];

fn line(table: &str, site: &str, step: &str, v: &TotalValue) -> Line {
    [
        table.to_owned(),
        site.to_owned(),
        step.to_owned(),
        uncertain(Lang::En, v).1,
        if v.suppressed_sites == v.sites && v.sites > 0 {
            String::new()
        } else {
            v.point_sum.to_string()
        },
        v.low.to_string(),
        v.high.map_or_else(String::new, |h| h.to_string()),
    ]
}

/// The funnel and ranking lines of a cohort count job's view.
pub fn result_lines(count: &JobView, sites: &[Site]) -> Vec<Line> {
    let name = |id: &str| {
        sites
            .iter()
            .find(|s| s.id.as_str() == id)
            .map_or_else(|| id.to_owned(), |s| s.name.clone())
    };
    let mut out = Vec::new();
    let mut ranking = Vec::new();
    for s in &count.sites {
        let Some(Payload::CohortCount(c)) = &s.payload else {
            continue;
        };
        let site = name(s.site.as_str());
        let v = |r| site_value(r, &c.disclosure);
        if let Some(i) = &c.initial {
            out.push(line("funnel", &site, "qualifying events", &v(i)));
        }
        for r in &c.rules {
            out.push(line("funnel", &site, r.name.as_str(), &v(&r.persons)));
        }
        let fin = v(&c.final_persons);
        out.push(line("funnel", &site, "final cohort", &fin));
        ranking.push((site, fin));
    }
    if let NetworkTotals::CohortCount {
        initial,
        rules,
        final_persons,
        sites_done,
        ..
    } = &count.total
    {
        if *sites_done > 0 {
            if let Some(i) = initial {
                out.push(line("funnel", "total", "qualifying events", i));
            }
            for r in rules {
                out.push(line("funnel", "total", &r.name, &r.persons));
            }
            out.push(line("funnel", "total", "final cohort", final_persons));
        }
    }
    ranking.sort_by(|a, b| b.1.point_sum.cmp(&a.1.point_sum).then(a.0.cmp(&b.0)));
    for (i, (site, v)) in ranking.iter().enumerate() {
        out.push(line("ranking", site, &(i + 1).to_string(), v));
    }
    out
}

/// The CSV text of `lines` with its header and the run's time.
pub fn to_csv(at: i64, cohort: u32, lines: &[Line]) -> Result<String, csv::Error> {
    let mut w = csv::Writer::from_writer(Vec::new());
    w.write_record([
        "run_at", "cohort", "table", "site", "step", "shown", "point", "low", "high",
    ])?;
    let at = qiao_web::i18n::fmt_datetime(Lang::En, at);
    for l in lines {
        let mut rec = vec![at.clone(), cohort.to_string()];
        rec.extend(l.iter().cloned());
        w.write_record(&rec)?;
    }
    let bytes = w.into_inner().map_err(|e| e.into_error())?;
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

/// `GET /projects/{id}/cohorts/{n}/results.csv`.
pub async fn csv(
    State(portal): State<Shared>,
    ctx: Ctx,
    Path((id, n)): Path<(String, u32)>,
    Query(q): Query<RunQuery>,
) -> Response {
    let user = match ctx.require(&[]) {
        Ok(u) => u.clone(),
        Err(r) => return r,
    };
    let p = portal.clone();
    let loaded = blocking(move || -> Result<_, qiao_hub::StoreError> {
        let s = p.hub.store();
        let Some(file) = alliance::project_file(s.as_ref(), &id)? else {
            return Ok(None);
        };
        let Some(project) = s.project(&file.project)? else {
            return Ok(None);
        };
        let run = file
            .cohorts
            .iter()
            .find(|c| c.n == n)
            .and_then(|c| match q.run {
                Some(k) => c.runs.get(k),
                None => c.runs.last(),
            })
            .cloned();
        let view = match &run {
            Some(r) => match s.job(&r.count_job)? {
                Some(rec) => Some(qiao_hub::view::job_view(&rec, &s.results(&r.count_job)?)),
                None => None,
            },
            None => None,
        };
        Ok(Some((file, project.members, run, view, s.sites()?)))
    })
    .await;
    let (file, members, run, view, sites) = match loaded {
        Ok(Ok(Some(x))) => x,
        Ok(Ok(None)) => return ctx.not_found(),
        Ok(Err(e)) => return ctx.internal(e),
        Err(e) => return ctx.internal(e),
    };
    if !alliance::can_see(&user, &file, &members) {
        return ctx.forbidden();
    }
    let (Some(run), Some(view)) = (run, view) else {
        return ctx.not_found();
    };
    let text = match to_csv(run.at, n, &result_lines(&view, &sites)) {
        Ok(t) => t,
        Err(e) => return ctx.internal(e),
    };
    super::common::csv_attachment(text, &format!("{}-cohort{n}-results.csv", file.project))
}
