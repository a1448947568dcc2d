//! Recruitment filled from the sites' pre-screening marks: the sponsor asks the accepted sites
//! for their released monthly counts (a `recruitment` job on the list's cohort, the project's
//! first attached cohort, for the months since the project started running), and the project's
//! screened / enrolled lines are those counts — a month a site's steward or investigator typed
//! a report for stays the typed one (an explicit override, shown as such).

use qiao_hub::audit::EntryDraft;
use qiao_hub::model::User;
use qiao_hub::protocol::{
    DisclosureSummary, Job, JobId, Payload, ProjectId, QueryType, RecruitmentSpec, Released,
    SiteId, UserRole, YearMonth, MAX_RECRUITMENT_MONTHS,
};
use qiao_hub::store::{append_audit, create_job_in, get_json, put_json};
use qiao_hub::view::JobView;
use qiao_hub::HubStore;

use super::feasibility::{cohort_key, requester};
use super::pipeline::{load, InviteStatus, ProjectFile, RecruitmentRequest, Report, Stage};
use super::refusal::{Outcome, Refusal};
use super::tables::{actor, write, COHORTS, PIPELINE};

/// The months from the one the project started running (its last transition to running, else
/// its creation) to `now`'s, the last [`MAX_RECRUITMENT_MONTHS`].
pub fn months_since(f: &ProjectFile, now: i64) -> Vec<YearMonth> {
    let start = f
        .history
        .iter()
        .rev()
        .find(|t| t.to == Stage::Running)
        .map_or(f.created_at, |t| t.at);
    let ym = |t: i64| {
        let d = qiao_web::i18n::ymd_value(t);
        let y: i32 = d.get(..4).and_then(|s| s.parse().ok()).unwrap_or(2000);
        let m: u32 = d.get(5..7).and_then(|s| s.parse().ok()).unwrap_or(1);
        (y, m)
    };
    let (mut y, mut m) = ym(start);
    let (ey, em) = ym(now);
    let mut out = Vec::new();
    while (y, m) <= (ey, em) {
        if let Ok(year) = u16::try_from(y) {
            out.push(YearMonth {
                year,
                month: m as u8,
            });
        }
        (y, m) = if m == 12 { (y + 1, 1) } else { (y, m + 1) };
    }
    let skip = out.len().saturating_sub(MAX_RECRUITMENT_MONTHS);
    out.split_off(skip)
}

/// How long after a collection the next one may be asked: each collection is a new question
/// every site answers from its privacy budget (three releases: screened, enrolled, excluded), so pressing
/// the button again and again would drain the budgets for nothing — recruitment moves by the
/// day. A rule on time alone, never on the counts.
pub const COLLECT_INTERVAL_SECS: i64 = 24 * 3600;

/// When the project's next collection may be asked (`None`: now).
pub fn next_collection(f: &ProjectFile, now: i64) -> Option<i64> {
    let next = f
        .recruitment
        .last()?
        .at
        .saturating_add(COLLECT_INTERVAL_SECS);
    (next > now).then_some(next)
}

/// The sponsor asks the accepted sites for their recruitment counts (running stage): one job
/// on the project's first attached cohort, the months since it started running, at most once
/// per [`COLLECT_INTERVAL_SECS`]. Audited.
pub fn collect_recruitment(
    store: &dyn HubStore,
    id: &ProjectId,
    by: &User,
    now: i64,
) -> Outcome<RecruitmentRequest> {
    write(store, |tx| {
        let (mut f, p) = load(tx, id)?;
        if by.role != UserRole::SponsorResearcher || !p.members.contains(&by.id) {
            return Err(Refusal::Forbidden);
        }
        if f.stage != Stage::Running {
            return Err(Refusal::State("state.err_not_running"));
        }
        if next_collection(&f, now).is_some() {
            return Err(Refusal::State("recr.err_too_soon"));
        }
        let Some(cohort) = f.cohorts.first().map(|c| c.n) else {
            return Err(Refusal::State("state.err_no_cohort"));
        };
        let definition: serde_json::Value =
            get_json(tx, COHORTS, &cohort_key(id, cohort))?.ok_or(Refusal::NotFound)?;
        let sites: Vec<SiteId> = f
            .invites
            .iter()
            .filter(|i| i.status == InviteStatus::Accepted)
            .map(|i| i.site.clone())
            .collect();
        if sites.is_empty() {
            return Err(Refusal::State("state.err_no_accepted_site"));
        }
        let job = Job {
            job_id: JobId::random(),
            project_id: id.clone(),
            query: QueryType::Recruitment(RecruitmentSpec {
                months: months_since(&f, now),
            }),
            definition,
            requested_by: requester(by),
            created_at: now,
            floors: qiao_hub::floors::stated(tx)?,
        };
        create_job_in(tx, &job, &sites, now)?;
        let request = RecruitmentRequest {
            job: job.job_id,
            cohort,
            by: by.id.clone(),
            at: now,
        };
        f.recruitment.push(request.clone());
        put_json(tx, PIPELINE, id.as_str(), &f)?;
        append_audit(
            tx,
            EntryDraft::new(now, actor(by), "project.recruitment")
                .project(id.to_string())
                .decision(format!(
                    "asked {} for their recruitment counts (job {})",
                    sites
                        .iter()
                        .map(SiteId::as_str)
                        .collect::<Vec<_>>()
                        .join(", "),
                    job.job_id
                )),
        )?;
        Ok(request)
    })
}

/// Where a line's numbers come from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LineSource {
    /// The site's released counts of its marks.
    Marks,
    /// Typed by the site's steward or investigator (overrides the marks of that month).
    Typed,
}

/// One month of one site, as the project page shows it.
#[derive(Clone, Debug, PartialEq)]
pub struct RecruitmentLine {
    /// The site.
    pub site: SiteId,
    /// `YYYY-MM`.
    pub month: String,
    /// Screened: the released value (marks) or the typed number.
    pub screened: Released,
    /// Enrolled.
    pub enrolled: Released,
    /// Excluded (marks only).
    pub excluded: Option<Released>,
    /// Where from.
    pub source: LineSource,
    /// The disclosure control of the site's release (marks only).
    pub disclosure: Option<DisclosureSummary>,
}

/// The view of the project's latest collection of recruitment counts (`None` before the first
/// or when its job is gone): what [`recruitment_lines`] merges with the typed reports.
pub fn latest_view(
    store: &dyn HubStore,
    f: &ProjectFile,
) -> Result<Option<JobView>, qiao_hub::StoreError> {
    let Some(r) = f.recruitment.last() else {
        return Ok(None);
    };
    Ok(match store.job(&r.job)? {
        Some(rec) => Some(qiao_hub::view::job_view(&rec, &store.results(&r.job)?)),
        None => None,
    })
}

/// Enrolled so far: the sum of the lines' enrolled values (a withheld value counts as 0, as in
/// the chart and the forecast). The project list, the stage guide and the progress line all
/// read this one total.
pub fn enrolled(lines: &[RecruitmentLine]) -> u64 {
    lines.iter().map(|l| l.enrolled.point().unwrap_or(0)).sum()
}

/// The project's recruitment lines: each site's released months from the latest collection
/// (`view`, that job's view; months with nothing marked anywhere are left out), and every typed
/// report, which replaces the marks' line of its site and month. By month, then site.
pub fn recruitment_lines(f: &ProjectFile, view: Option<&JobView>) -> Vec<RecruitmentLine> {
    let typed = |r: &Report| RecruitmentLine {
        site: r.site.clone(),
        month: r.month.clone(),
        screened: Released::Exact {
            value: u64::from(r.screened),
        },
        enrolled: Released::Exact {
            value: u64::from(r.enrolled),
        },
        excluded: None,
        source: LineSource::Typed,
        disclosure: None,
    };
    let mut lines: Vec<RecruitmentLine> = f.reports.iter().map(typed).collect();
    for s in view.map(|v| v.sites.as_slice()).unwrap_or_default() {
        let Some(Payload::Recruitment(r)) = &s.payload else {
            continue;
        };
        for m in &r.months {
            let month = format!("{:04}-{:02}", m.year, m.month);
            let zero = |x: &Released| x.point() == Some(0);
            if zero(&m.screened) && zero(&m.enrolled) && zero(&m.excluded) {
                continue;
            }
            if lines
                .iter()
                .any(|l| l.site == s.site && l.month == month && l.source == LineSource::Typed)
            {
                continue;
            }
            lines.push(RecruitmentLine {
                site: s.site.clone(),
                month,
                screened: m.screened.clone(),
                enrolled: m.enrolled.clone(),
                excluded: Some(m.excluded.clone()),
                source: LineSource::Marks,
                disclosure: Some(r.disclosure.clone()),
            });
        }
    }
    lines.sort_by(|a, b| (&a.month, &a.site).cmp(&(&b.month, &b.site)));
    lines
}
