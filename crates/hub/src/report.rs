//! A job's results for people: the per-site and total funnel as a table, or one JSON object
//! (`qiao query`, `qiao demo`).

use qiao_analysis::survival::KaplanMeier;
use qiao_protocol::{AgeBand, Gender, Payload, Released};
use serde_json::{json, Value};

use crate::view::{JobView, NetworkTotals, SiteJobView, SiteStatus, TotalValue};

fn status_name(s: SiteStatus) -> &'static str {
    match s {
        SiteStatus::Pending => "pending",
        SiteStatus::Done => "done",
        SiteStatus::Refused => "refused",
        SiteStatus::Failed => "failed",
        SiteStatus::Rejected => "rejected",
    }
}

fn tag<T: serde::Serialize>(v: &T) -> String {
    match serde_json::to_value(v) {
        Ok(Value::String(s)) => s,
        _ => "unknown".into(),
    }
}

fn status_text(s: &SiteJobView) -> String {
    match (s.status, s.reason, s.error) {
        (SiteStatus::Refused, Some(r), _) => format!("refused ({})", tag(&r)),
        (SiteStatus::Failed, _, Some(e)) => format!("failed ({})", tag(&e)),
        (SiteStatus::Rejected, _, _) => s
            .rejected
            .clone()
            .unwrap_or_else(|| "rejected: implausible".into()),
        (st, _, _) => status_name(st).to_owned(),
    }
}

/// An age band as text: `18-27` or `90+`.
pub fn band_text(b: &Option<AgeBand>) -> String {
    match b {
        None => "all".into(),
        Some(AgeBand {
            min_age,
            max_age: Some(max),
        }) => format!("{min_age}-{max}"),
        Some(AgeBand {
            min_age,
            max_age: None,
        }) => format!("{min_age}+"),
    }
}

fn gender_text(g: &Option<Gender>) -> String {
    g.as_ref().map_or_else(|| "all".into(), tag)
}

/// The JSON form: `{"job_id", "project", "query_type", "complete", "sites": [{"site", "status",
/// "entries", ...}], "total": {...}}`; every number is its released text (e.g. `"< 10"`).
pub fn to_json(v: &JobView) -> Value {
    let sites: Vec<Value> = v
        .sites
        .iter()
        .map(|s| {
            let mut o = json!({"site": s.site, "status": status_name(s.status)});
            if let Some(r) = s.reason {
                o["reason"] = json!(r);
            }
            if let Some(e) = s.error {
                o["error"] = json!(e);
            }
            if let Some(why) = &s.rejected {
                o["rejected"] = json!(why);
            }
            match &s.payload {
                Some(Payload::CohortCount(r)) => {
                    o["entries"] = json!(r.entries.to_string());
                    o["subjects"] = json!(r.subjects.to_string());
                    if let Some(i) = &r.initial {
                        o["initial"] = json!(i.to_string());
                    }
                    o["rules"] = r
                        .rules
                        .iter()
                        .map(|x| {
                            json!({"name": x.name.as_str(), "persons": x.persons.to_string(),
                                   "gain": x.gain.to_string()})
                        })
                        .collect();
                    o["final_persons"] = json!(r.final_persons.to_string());
                }
                Some(Payload::Demographics(r)) => {
                    o["total"] = json!(r.total.to_string());
                    o["cells"] = r
                        .cells
                        .iter()
                        .map(|c| {
                            json!({"age_band": band_text(&c.age_band), "gender": gender_text(&c.gender),
                                   "index_year": c.index_year, "count": c.count.to_string()})
                        })
                        .collect();
                }
                Some(
                    p @ (Payload::Characterization(_)
                    | Payload::Incidence(_)
                    | Payload::Survival(_)
                    | Payload::RegressionRound(_)
                    | Payload::Recruitment(_)),
                ) => {
                    o["payload"] = json!(p);
                }
                None => {}
            }
            if s.payload.is_some() {
                o["disclosure"] = json!(s.disclosure);
            }
            o
        })
        .collect();
    let total_value = |t: &TotalValue| json!(t.display);
    let total = match &v.total {
        NetworkTotals::CohortCount {
            sites_done,
            entries,
            subjects,
            initial,
            rules,
            final_persons,
        } => json!({
            "sites_done": sites_done,
            "entries": total_value(entries),
            "subjects": total_value(subjects),
            "initial": initial.as_deref().map(total_value),
            "rules": rules.iter().map(|r| json!({"name": r.name, "persons": total_value(&r.persons)})).collect::<Vec<_>>(),
            "final_persons": total_value(final_persons),
        }),
        NetworkTotals::Demographics {
            sites_done,
            total,
            cells,
        } => json!({
            "sites_done": sites_done,
            "total": total_value(total),
            "cells": cells.iter().map(|c| json!({"age_band": band_text(&c.age_band),
                "gender": gender_text(&c.gender), "index_year": c.index_year,
                "count": total_value(&c.count)})).collect::<Vec<_>>(),
        }),
        NetworkTotals::Characterization(p) => json!(p),
        NetworkTotals::Incidence(p) => json!(p),
        NetworkTotals::Survival(p) => json!(p),
        NetworkTotals::RegressionRound(p) => json!(p),
        NetworkTotals::Recruitment(p) => json!(p),
    };
    json!({
        "job_id": v.job_id,
        "project": v.project_id,
        "query_type": v.query.payload_type(),
        "complete": v.complete,
        "sites": sites,
        "total": total,
    })
}

fn released(r: Option<&Released>) -> String {
    r.map_or_else(String::new, ToString::to_string)
}

/// The table form: one column per site and one for the network total, one row per funnel step
/// (or breakdown cell), then the disclosure rules each site applied.
pub fn to_table(v: &JobView) -> String {
    let mut rows: Vec<Vec<String>> = Vec::new();
    let mut header = vec![String::new()];
    header.extend(v.sites.iter().map(|s| s.site.to_string()));
    header.push("total".into());
    rows.push(header);
    let mut status = vec!["status".to_owned()];
    status.extend(v.sites.iter().map(status_text));
    let pending = v
        .sites
        .iter()
        .filter(|s| s.status == SiteStatus::Pending)
        .count();
    status.push(format!(
        "{} of {} done",
        v.sites.len() - pending,
        v.sites.len()
    ));
    rows.push(status);
    match &v.total {
        NetworkTotals::CohortCount {
            entries,
            subjects,
            initial,
            rules,
            final_persons,
            ..
        } => {
            let cohort = |s: &SiteJobView| match &s.payload {
                Some(Payload::CohortCount(r)) => Some(r.clone()),
                _ => None,
            };
            let mut line = |label: String,
                            f: &dyn Fn(&qiao_protocol::CohortCountResult) -> Option<Released>,
                            total: &TotalValue| {
                let mut row = vec![label];
                row.extend(
                    v.sites
                        .iter()
                        .map(|s| released(cohort(s).and_then(|r| f(&r)).as_ref())),
                );
                row.push(total.display.clone());
                rows.push(row);
            };
            // The funnel top-down: persons with a qualifying event, persons remaining after
            // each rule, the final persons, then the final cohort's rows (entries) and distinct
            // persons (subjects).
            if let Some(initial) = initial {
                line(
                    "qualifying events".to_owned(),
                    &|r| r.initial.clone(),
                    initial,
                );
            }
            for (i, rule) in rules.iter().enumerate() {
                line(
                    format!("after rule {}: {}", i + 1, rule.name),
                    &move |r| r.rules.get(i).map(|x| x.persons.clone()),
                    &rule.persons,
                );
            }
            line(
                "final persons".into(),
                &|r| Some(r.final_persons.clone()),
                final_persons,
            );
            line(
                "cohort entries".into(),
                &|r| Some(r.entries.clone()),
                entries,
            );
            line(
                "cohort subjects".into(),
                &|r| Some(r.subjects.clone()),
                subjects,
            );
        }
        NetworkTotals::Demographics { total, cells, .. } => {
            let mut row = vec!["persons".to_owned()];
            row.extend(v.sites.iter().map(|s| match &s.payload {
                Some(Payload::Demographics(r)) => r.total.to_string(),
                _ => String::new(),
            }));
            row.push(total.display.clone());
            rows.push(row);
            for c in cells {
                let mut label = format!(
                    "age {} gender {}",
                    band_text(&c.age_band),
                    gender_text(&c.gender)
                );
                if let Some(y) = c.index_year {
                    label.push_str(&format!(" year {y}"));
                }
                let mut row = vec![label];
                row.extend(v.sites.iter().map(|s| {
                    match &s.payload {
                        Some(Payload::Demographics(r)) => r
                            .cells
                            .iter()
                            .find(|x| {
                                (x.age_band, x.gender, x.index_year)
                                    == (c.age_band, c.gender, c.index_year)
                            })
                            .map(|x| x.count.to_string())
                            .unwrap_or_default(),
                        _ => String::new(),
                    }
                }));
                row.push(c.count.display.clone());
                rows.push(row);
            }
        }
        NetworkTotals::Characterization(p) => {
            let per_site =
                |f: &dyn Fn(&qiao_protocol::CharacterizationResult) -> Option<String>| {
                    v.sites
                        .iter()
                        .map(|s| match &s.payload {
                            Some(Payload::Characterization(r)) => f(r).unwrap_or_default(),
                            _ => String::new(),
                        })
                        .collect::<Vec<_>>()
                };
            let mut line = |label: String, sites: Vec<String>, total: String| {
                let mut row = vec![label];
                row.extend(sites);
                row.push(total);
                rows.push(row);
            };
            line(
                "target entries".into(),
                per_site(&|r| Some(r.target.entries.to_string())),
                p.target.entries.display.clone(),
            );
            line(
                "target subjects".into(),
                per_site(&|r| Some(r.target.subjects.to_string())),
                p.target.subjects.display.clone(),
            );
            for c in &p.covariates {
                let id = c.covariate_id;
                let mean = c
                    .target
                    .mean
                    .map_or(String::new(), |m| format!(" ({:.1}%)", 100.0 * m));
                let smd = c.smd.map_or(String::new(), |d| format!(" smd {d:.3}"));
                line(
                    format!("covariate {id}"),
                    per_site(&|r| {
                        r.covariates
                            .iter()
                            .find(|x| x.covariate_id == id)
                            .map(|x| x.target.to_string())
                    }),
                    format!("{}{mean}{smd}", c.target.sum.display),
                );
            }
        }
        NetworkTotals::Survival(p) => survival_rows(v, p, &mut rows),
        NetworkTotals::Recruitment(p) => {
            for (i, m) in p.months.iter().enumerate() {
                for (kind, total) in [
                    ("screened", &m.screened),
                    ("enrolled", &m.enrolled),
                    ("excluded", &m.excluded),
                ] {
                    let mut row = vec![format!("{} {kind}", m.month)];
                    row.extend(v.sites.iter().map(|s| match &s.payload {
                        Some(Payload::Recruitment(r)) => {
                            r.months.get(i).map_or(String::new(), |x| match kind {
                                "screened" => x.screened.to_string(),
                                "enrolled" => x.enrolled.to_string(),
                                _ => x.excluded.to_string(),
                            })
                        }
                        _ => String::new(),
                    }));
                    row.push(total.display.clone());
                    rows.push(row);
                }
            }
        }
        NetworkTotals::RegressionRound(p) => {
            rows.push(vec![
                "persons, events, loglik".into(),
                format!("{}, {}, {}", p.persons, p.events, p.loglik),
            ]);
        }
        NetworkTotals::Incidence(p) => {
            for r in &p.rows {
                let key = r.clone();
                let mut label = format!("tar {}", r.tar_id);
                if let Some(a) = r.age_group_id {
                    label.push_str(&format!(" age group {a}"));
                }
                if let Some(g) = r.gender_concept_id {
                    label.push_str(&format!(" gender {g}"));
                }
                if let Some(y) = r.start_year {
                    label.push_str(&format!(" year {y}"));
                }
                let mut row = vec![label];
                row.extend(v.sites.iter().map(|s| {
                    match &s.payload {
                        Some(Payload::Incidence(x)) => x
                            .rows
                            .iter()
                            .find(|x| {
                                (x.tar_id, x.age_group_id, x.gender_concept_id, x.start_year)
                                    == (
                                        key.tar_id,
                                        key.age_group_id,
                                        key.gender_concept_id,
                                        key.start_year,
                                    )
                            })
                            .map(|x| format!("{} / {} d", x.outcomes, x.person_days))
                            .unwrap_or_default(),
                        _ => String::new(),
                    }
                }));
                row.push(format!(
                    "{} / {} d, IR {} per 100 PY",
                    r.outcomes.display,
                    r.person_days.display,
                    r.incidence_rate_p100py
                        .map_or("-".into(), |x| format!("{x:.2}"))
                ));
                rows.push(row);
            }
        }
    }
    let ncols = rows.first().map_or(0, Vec::len);
    let widths: Vec<usize> = (0..ncols)
        .map(|c| {
            rows.iter()
                .map(|r| r.get(c).map_or(0, |s| s.chars().count()))
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = format!(
        "job {}  project {}  {}\n\n",
        v.job_id,
        v.project_id,
        v.query.payload_type()
    );
    for r in &rows {
        let cells: Vec<String> = r
            .iter()
            .zip(&widths)
            .enumerate()
            .map(|(i, (s, w))| {
                let pad = w.saturating_sub(s.chars().count());
                if i == 0 {
                    format!("{s}{}", " ".repeat(pad))
                } else {
                    format!("{}{s}", " ".repeat(pad))
                }
            })
            .collect();
        out.push_str(cells.join("  ").trim_end());
        out.push('\n');
    }
    let with_rules: Vec<&SiteJobView> = v
        .sites
        .iter()
        .filter(|s| !s.disclosure.is_empty())
        .collect();
    if !with_rules.is_empty() {
        out.push_str("\ndisclosure control applied:\n");
        for s in with_rules {
            out.push_str(&format!("  {}: {}\n", s.site, s.disclosure.join("; ")));
        }
    }
    if let NetworkTotals::Survival(p) = &v.total {
        out.push_str(&format!(
            "\ntime at risk {} (days from time zero), {}-day grid to {} days; {}\n",
            p.method.time_at_risk, p.method.grid_days, p.method.horizon_days, p.method.interval
        ));
        for d in &p.disclosure {
            out.push_str(&format!("  {d}\n"));
        }
    }
    if matches!(v.total, NetworkTotals::CohortCount { .. }) {
        out.push_str(
            "\n\"qualifying events\": persons with an entry event, before the rules;\n\
             \"after rule N\": persons (best event each) passing rules 1..N; entries and subjects:\n\
             rows and distinct persons of the final cohort.",
        );
    }
    out.push_str("\ntotals add released values only (a withheld value adds its range).\n");
    let dp = v.sites.iter().any(|s| {
        s.disclosure
            .iter()
            .any(|d| d.starts_with("differential privacy"))
    });
    if dp {
        out.push_str(
            "\"N ±W\": differentially private value; the true count is within ±W with 95% probability.\n\
             \"< T\": the noisy value fell below the threshold T. Totals add the noisy values and\n\
             combine the noise into one 95% interval (\"between L and H\" when some site is \"< T\").\n",
        );
    }
    out
}

/// The survival rows: per arm the persons followed, the survival and at-risk at the at-risk
/// table's days (per site where its table was released) and the median; then the log-rank test.
fn survival_rows(
    v: &JobView,
    p: &qiao_analysis::network::survival::PooledSurvival,
    rows: &mut Vec<Vec<String>>,
) {
    use qiao_analysis::network::survival::ArmCurve;
    let days = |d: Option<i32>| d.map_or("not reached".to_string(), |d| d.to_string());
    let site_curve = |s: &SiteJobView, arm: usize| -> Option<ArmCurve> {
        let c = p.sites.iter().find(|c| c.site == s.site.to_string())?;
        if arm == 0 {
            c.target.clone()
        } else {
            c.comparator.clone()
        }
    };
    let arms = [
        (
            "target",
            Some((
                &p.km.target,
                &p.at_risk.target,
                p.median.target,
                &p.entered.target,
            )),
        ),
        (
            "comparator",
            p.km.comparator.as_ref().and_then(|k| {
                Some((
                    k,
                    p.at_risk.comparator.as_ref()?,
                    p.median.comparator?,
                    p.entered.comparator.as_ref()?,
                ))
            }),
        ),
    ];
    for (i, (name, arm)) in arms.into_iter().enumerate() {
        let Some((km, at_risk, median, entered)) = arm else {
            continue;
        };
        let mut row = vec![format!("{name} persons followed")];
        row.extend(v.sites.iter().map(|s| match &s.payload {
            Some(Payload::Survival(r)) => {
                let a = if i == 0 {
                    Some(&r.target)
                } else {
                    r.comparator.as_ref()
                };
                a.map_or(String::new(), |a| a.entered.to_string())
            }
            _ => String::new(),
        }));
        row.push(entered.display.clone());
        rows.push(row);
        let fit = KaplanMeier {
            points: km.clone(),
            median,
        };
        for r in at_risk {
            let mut row = vec![format!("{name} day {}: S (at risk)", r.time)];
            row.extend(v.sites.iter().map(|s| {
                site_curve(s, i).map_or(String::new(), |c| {
                    let n = c
                        .at_risk
                        .iter()
                        .find(|x| x.time == r.time)
                        .map_or(0, |x| x.at_risk);
                    format!("{:.4} ({n})", c.km.survival_at(r.time))
                })
            }));
            let k = km.partition_point(|x| x.time <= r.time).saturating_sub(1);
            let (lo, hi) = km.get(k).map_or((1.0, 1.0), |x| (x.lower, x.upper));
            row.push(format!(
                "{:.4} ({lo:.4}–{hi:.4}) ({})",
                fit.survival_at(r.time),
                r.at_risk
            ));
            rows.push(row);
        }
        let mut row = vec![format!("{name} median (95% CI)")];
        row.extend(
            v.sites
                .iter()
                .map(|s| site_curve(s, i).map_or(String::new(), |c| days(c.km.median.time))),
        );
        row.push(format!(
            "{} ({} to {})",
            days(median.time),
            days(median.lower),
            days(median.upper)
        ));
        rows.push(row);
    }
    if p.km.comparator.is_some() {
        let mut row = vec!["log-rank chi2 (p)".to_owned()];
        let text = |t: &Option<qiao_analysis::survival::LogRank>| {
            t.map_or("-".to_string(), |t| format!("{:.4} ({:.4e})", t.chi2, t.p))
        };
        row.extend(v.sites.iter().map(|s| {
            p.sites
                .iter()
                .find(|c| c.site == s.site.to_string())
                .map_or(String::new(), |c| text(&c.logrank))
        }));
        row.push(text(&p.logrank));
        rows.push(row);
    }
}
