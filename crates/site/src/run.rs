//! One approved job, end to end at the site: under the data directory's lock the policy, the
//! disclosure secret and the ledger are read, the job is executed ([`crate::exec`]: floors,
//! admission and charge, release) with its cohort from an engine, the ledger is saved; then the
//! result is journaled (durably, before it is sent) and the decision audited.

use qiao_audit::{Actor, EntryDraft};
use qiao_disclosure::{Discloser, QueryLedger};
use qiao_protocol::{Job, Outcome, SiteId};

use crate::audit;
use crate::cdm::SiteCdm;
use crate::data::{now_unix, read_json, write_json, SiteDir};
use crate::exec::{self, ExecContext, Executed};
use crate::policy::SitePolicy;
use crate::queue::{Journal, JournalEntry};

/// Runs an approved job under the data directory's lock (the ledger is read, updated and saved
/// around the run), its cohort given by `engine`, journals and audits the result.
pub fn compute_and_journal(
    dir: &SiteDir,
    cdm: &dyn SiteCdm,
    site_id: &SiteId,
    job: &Job,
    decided_by: Actor,
    engine: &mut exec::Engine<'_>,
) -> anyhow::Result<JournalEntry> {
    let executed = dir.locked(|| {
        if let Some(done) = Journal::new(dir).get(&job.job_id)? {
            return Ok(Err(done));
        }
        let policy = SitePolicy::load(dir)?.disclosure()?;
        let discloser = Discloser::new(policy, dir.secret()?)
            .map_err(|e| anyhow::anyhow!("invalid site policy: {e}"))?;
        let mut ledger: QueryLedger = read_json(&dir.ledger_path())?.unwrap_or_default();
        let now = now_unix();
        let started = std::time::Instant::now();
        // A recruitment job reads the project's marks (under the same lock as their writes).
        let marks = match &job.query {
            qiao_protocol::QueryType::Recruitment(_) => {
                crate::recruitment::dates(&crate::recruitment::load(dir, job.project_id.as_str())?)
            }
            _ => Vec::new(),
        };
        let executed = {
            let mut cx = ExecContext {
                site_id,
                cdm,
                discloser: &discloser,
                ledger: &mut ledger,
                now,
                recruitment: &marks,
            };
            let job = job.clone();
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                exec::execute_with(&job, &mut cx, engine)
            }))
            .unwrap_or_else(|_| {
                exec::failed(
                    &job,
                    site_id,
                    qiao_protocol::FailureKind::Internal,
                    "the cohort engine panicked".into(),
                )
            })
        };
        ledger.prune_all(discloser.policy(), u64::try_from(now).unwrap_or(0));
        write_json(&dir.ledger_path(), &ledger)?;
        tracing::info!(job = %job.job_id, millis = started.elapsed().as_millis() as u64, note = %executed.note, "job executed");
        Ok(Ok(executed))
    })?;
    match executed {
        Ok(e) => journal_and_audit(dir, job, e, decided_by),
        Err(done) => Ok(done),
    }
}

/// Journals a result (durably, before it is sent) and audits the decision and what is
/// released.
pub fn journal_and_audit(
    dir: &SiteDir,
    job: &Job,
    e: Executed,
    decided_by: Actor,
) -> anyhow::Result<JournalEntry> {
    let entry = JournalEntry {
        result: e.result,
        finished_at: now_unix(),
        acked: false,
        sends: 0,
        hub_rejected: None,
    };
    Journal::new(dir).put(&entry)?;
    let (decision, released) = match &entry.result.outcome {
        Outcome::Done { payload } => (
            "done".to_owned(),
            Some(serde_json::to_value(payload).unwrap_or_default()),
        ),
        Outcome::Refused { reason } => (
            format!(
                "refused:{}",
                serde_json::to_value(reason)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_owned))
                    .unwrap_or_default()
            ),
            None,
        ),
        Outcome::Failed { error } => (
            format!(
                "failed:{}",
                serde_json::to_value(error)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_owned))
                    .unwrap_or_default()
            ),
            None,
        ),
    };
    let mut draft = EntryDraft::new(now_unix(), decided_by, "job.decide")
        .project(job.project_id.to_string())
        .job(job.job_id.to_string())
        .decision(format!("{decision} ({})", e.note));
    if let Some(r) = &released {
        draft = draft.released_json(r);
    }
    audit::append(dir, draft)?;
    Ok(entry)
}

/// Whether `job` gets as far as needing its cohort now: the floors, the query's parameters and
/// admission (the rate limit and the budgets) are decided on the policy, the signed job and the
/// ledger alone — never on the data — so they are tried first, on a copy of the ledger (nothing
/// is charged or saved). A job refused there costs no cohort computation.
pub fn needs_cohort(
    dir: &SiteDir,
    cdm: &dyn SiteCdm,
    site_id: &SiteId,
    job: &Job,
) -> anyhow::Result<bool> {
    dir.locked(|| {
        if Journal::new(dir).get(&job.job_id)?.is_some() {
            return Ok(false);
        }
        let policy = SitePolicy::load(dir)?.disclosure()?;
        let discloser = Discloser::new(policy, dir.secret()?)
            .map_err(|e| anyhow::anyhow!("invalid site policy: {e}"))?;
        let mut ledger: QueryLedger = read_json(&dir.ledger_path())?.unwrap_or_default();
        let mut asked = false;
        let mut cx = ExecContext {
            site_id,
            cdm,
            discloser: &discloser,
            ledger: &mut ledger,
            now: now_unix(),
            recruitment: &[],
        };
        let _ = exec::execute_with(job, &mut cx, &mut |_, _| {
            asked = true;
            Err(exec::ExecError::Internal(
                "not computed (admission tried first)".into(),
            ))
        });
        Ok(asked)
    })
}
