//! The domain operations, written once over [`HubStore`] transactions.

use ed25519_dalek::SigningKey;
use qiao_audit::{verify_entries, Actor, ChainError, Entry, EntryDraft, EntryHash, VerifyReport};
use qiao_protocol::{
    check_against_job, EnrollError, EnrollRequest, Job, JobId, JobResult, Outcome, ProjectId,
    SiteId, StoredToken, UserId,
};
use serde::Serialize;

use super::records::{decode, get_json, insert_new_json, json_sha256, put_json, scan_json};
use super::{seq_key, HubStore, StoreError, Table, Tx};
use crate::model::{Delivery, JobRecord, Project, Site, StoredResult, TokenRecord, User};

const META_SIGNING_KEY: &str = "hub_signing_key";
const META_JOB_SEQ: &str = "job_seq";

/// Appends an audit entry inside the current transaction.
pub fn append_audit(tx: &mut dyn Tx, draft: EntryDraft) -> Result<Entry, StoreError> {
    let (seq, prev) = match tx.last(Table::Audit)? {
        None => (1, EntryHash::GENESIS),
        Some((k, v)) => {
            let head: Entry = decode(Table::Audit, &k, &v)?;
            (head.seq.saturating_add(1), head.hash)
        }
    };
    let entry = Entry::seal(draft, seq, prev);
    put_json(tx, Table::Audit, &seq_key(seq), &entry)?;
    Ok(entry)
}

/// Submission quotas: at most `per_user` jobs per requester and `per_project` per project in
/// any `period_secs`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Quotas {
    /// Jobs per requester per period.
    pub per_user: usize,
    /// Jobs per project per period.
    pub per_project: usize,
    /// The period.
    pub period_secs: i64,
}

impl Default for Quotas {
    /// 120 jobs per user and 600 per project per hour.
    fn default() -> Self {
        Self {
            per_user: 120,
            per_project: 600,
            period_secs: 3600,
        }
    }
}

/// A submission over its quota.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct QuotaExceeded {
    /// `user` or `project`.
    pub what: &'static str,
    /// The limit.
    pub limit: usize,
    /// The period.
    pub period_secs: i64,
    /// When the oldest counted submission leaves the period.
    pub retry_after_secs: i64,
}

/// The uses of the sliding-window quota `key` with one more at `now` (for the caller to store),
/// or `Err(seconds to wait)` if it is spent.
fn quota_use(
    tx: &mut dyn Tx,
    key: &str,
    limit: usize,
    period_secs: i64,
    now: i64,
) -> Result<Result<Vec<i64>, i64>, StoreError> {
    let mut times: Vec<i64> = get_json(tx, Table::Meta, key)?.unwrap_or_default();
    times.retain(|t| now.saturating_sub(*t) < period_secs);
    if times.len() >= limit {
        let oldest = times.first().copied().unwrap_or(now);
        return Ok(Err((oldest + period_secs - now).max(1)));
    }
    times.push(now);
    Ok(Ok(times))
}

fn disabled_key(user: &UserId) -> String {
    format!("user_disabled/{user}")
}

fn pending_key(site: &SiteId, seq: u64) -> String {
    format!("{site}/{}", seq_key(seq))
}

fn result_key(job: &JobId, site: &SiteId) -> String {
    format!("{job}/{site}")
}

/// Why an enrollment was refused.
#[derive(Debug, thiserror::Error)]
pub enum EnrollFailure {
    /// The token, expiry, single use or proof failed (unknown sites look like a bad token).
    #[error(transparent)]
    Enroll(#[from] EnrollError),
    /// The key is already registered for another site.
    #[error("this public key is already registered for another site")]
    KeyInUse,
    /// Storage failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A job handed to a site by a poll.
#[derive(Clone, Debug, PartialEq)]
pub struct LeasedJob {
    /// The job.
    pub job: Job,
    /// Whether this was the first delivery to the site.
    pub first_delivery: bool,
}

/// What storing a result did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ResultOutcome {
    /// Stored now.
    Stored,
    /// A result for this job and site was already stored; nothing changed.
    Duplicate,
}

/// [`HubStore::create_job`] inside a caller's transaction (with other writes that must commit
/// together).
pub fn create_job_in(
    tx: &mut dyn Tx,
    job: &Job,
    sites: &[SiteId],
    now: i64,
) -> Result<JobRecord, StoreError> {
    let id = job.job_id.to_string();
    let seq = get_json::<u64>(tx, Table::Meta, META_JOB_SEQ)?.unwrap_or(0) + 1;
    put_json(tx, Table::Meta, META_JOB_SEQ, &seq)?;
    let record = JobRecord {
        job: job.clone(),
        sites: sites.to_vec(),
        seq,
        deliveries: sites
            .iter()
            .map(|s| Delivery {
                site: s.clone(),
                first_at: None,
                last_at: None,
                count: 0,
            })
            .collect(),
    };
    super::definitions::insert_new_job(tx, &record)?;
    for s in sites {
        put_json(tx, Table::Pending, &pending_key(s, seq), &id)?;
    }
    let what = serde_json::json!({
        "query": job.query,
        "sites": sites,
        "definition_sha256": json_sha256(&job.definition),
    });
    let d = EntryDraft::new(
        now,
        Actor::User(job.requested_by.user_id.to_string()),
        "job.submit",
    )
    .project(job.project_id.to_string())
    .job(id.clone())
    .decision("accepted")
    .released_json(&what);
    append_audit(tx, d)?;
    Ok(record)
}

impl dyn HubStore + '_ {
    /// Runs `f` in a write transaction and returns its value.
    pub fn write_with<R>(
        &self,
        mut f: impl FnMut(&mut dyn Tx) -> Result<R, StoreError>,
    ) -> Result<R, StoreError> {
        let mut out = None;
        self.write(&mut |tx| {
            out = Some(f(tx)?);
            Ok(())
        })?;
        out.ok_or_else(|| StoreError::backend("transaction produced no result"))
    }

    /// Runs `f` in a read transaction and returns its value.
    pub fn read_with<R>(
        &self,
        mut f: impl FnMut(&mut dyn Tx) -> Result<R, StoreError>,
    ) -> Result<R, StoreError> {
        let mut out = None;
        self.read(&mut |tx| {
            out = Some(f(tx)?);
            Ok(())
        })?;
        out.ok_or_else(|| StoreError::backend("transaction produced no result"))
    }

    /// The hub's Ed25519 signing key, generated and stored on first use.
    pub fn signing_key(&self) -> Result<SigningKey, StoreError> {
        let existing: Option<String> =
            self.read_with(|tx| get_json(tx, Table::Meta, META_SIGNING_KEY))?;
        let hex = match existing {
            Some(h) => h,
            None => self.write_with(|tx| {
                if let Some(h) = get_json::<String>(tx, Table::Meta, META_SIGNING_KEY)? {
                    return Ok(h);
                }
                let key = qiao_protocol::keys::generate_signing_key();
                let h = crate::util::hex(key.as_bytes());
                put_json(tx, Table::Meta, META_SIGNING_KEY, &h)?;
                Ok(h)
            })?,
        };
        let bytes = crate::util::unhex32(&hex).ok_or_else(|| {
            StoreError::corrupt(Table::Meta, META_SIGNING_KEY, "not 64 hex digits")
        })?;
        Ok(SigningKey::from_bytes(&bytes))
    }

    // ---- users and tokens -------------------------------------------------------------------

    /// Creates a user; `Conflict` if the id is taken.
    pub fn create_user(&self, user: &User, actor: &Actor, now: i64) -> Result<(), StoreError> {
        self.write_with(|tx| {
            insert_new_json(tx, Table::Users, "user", user.id.as_str(), user)?;
            let d = EntryDraft::new(now, actor.clone(), "user.create").decision(format!(
                "user {} as {}",
                user.id,
                crate::model::role_name(user.role)
            ));
            append_audit(tx, d)?;
            Ok(())
        })
    }

    /// A user by id.
    pub fn user(&self, id: &UserId) -> Result<Option<User>, StoreError> {
        self.read_with(|tx| get_json(tx, Table::Users, id.as_str()))
    }

    /// Every user, by id.
    pub fn users(&self) -> Result<Vec<User>, StoreError> {
        self.read_with(|tx| scan_json(tx, Table::Users, ""))
    }

    /// Stores a token (and audits its creation with `action`).
    pub fn put_token(
        &self,
        token: &TokenRecord,
        action: &str,
        actor: &Actor,
        now: i64,
    ) -> Result<(), StoreError> {
        self.write_with(|tx| {
            if tx.get(Table::Users, token.user_id.as_str())?.is_none() {
                return Err(StoreError::not_found(format!("user {}", token.user_id)));
            }
            put_json(tx, Table::Tokens, &token.hash, token)?;
            let kind = match token.kind {
                crate::model::TokenKind::Session => "session",
                crate::model::TokenKind::Api => "api token",
            };
            append_audit(
                tx,
                EntryDraft::new(now, actor.clone(), action)
                    .decision(format!("{kind} for user {}", token.user_id)),
            )?;
            Ok(())
        })
    }

    /// Revokes (deletes) a token by its hash (logout); `false` if there was none.
    pub fn revoke_token(&self, hash: &str, actor: &Actor, now: i64) -> Result<bool, StoreError> {
        self.write_with(|tx| {
            let Some(rec) = get_json::<TokenRecord>(tx, Table::Tokens, hash)? else {
                return Ok(false);
            };
            tx.delete(Table::Tokens, hash)?;
            let kind = match rec.kind {
                crate::model::TokenKind::Session => "session",
                crate::model::TokenKind::Api => "api token",
            };
            append_audit(
                tx,
                EntryDraft::new(now, actor.clone(), "token.revoke")
                    .decision(format!("{kind} of user {} revoked", rec.user_id)),
            )?;
            Ok(true)
        })
    }

    /// A token by its hash.
    pub fn token(&self, hash: &str) -> Result<Option<TokenRecord>, StoreError> {
        self.read_with(|tx| get_json(tx, Table::Tokens, hash))
    }

    /// Every token of `user` (sessions and API tokens, expired ones included), oldest first.
    pub fn tokens_of(&self, user: &UserId) -> Result<Vec<TokenRecord>, StoreError> {
        let mut all: Vec<TokenRecord> = self.read_with(|tx| scan_json(tx, Table::Tokens, ""))?;
        all.retain(|t| &t.user_id == user);
        all.sort_by(|a, b| (a.created_at, &a.hash).cmp(&(b.created_at, &b.hash)));
        Ok(all)
    }

    /// Whether an administrator disabled `user`.
    pub fn user_disabled(&self, user: &UserId) -> Result<bool, StoreError> {
        self.read_with(|tx| Ok(tx.get(Table::Meta, &disabled_key(user))?.is_some()))
    }

    /// Disables (or enables again) an account. Disabling deletes every session and API token
    /// of the user in the same transaction, so all of them stop at once. Returns the number of
    /// tokens revoked.
    pub fn set_user_disabled(
        &self,
        user: &UserId,
        disabled: bool,
        actor: &Actor,
        now: i64,
    ) -> Result<usize, StoreError> {
        self.write_with(|tx| {
            if tx.get(Table::Users, user.as_str())?.is_none() {
                return Err(StoreError::not_found(format!("user {user}")));
            }
            let key = disabled_key(user);
            let mut revoked = 0;
            if disabled {
                put_json(
                    tx,
                    Table::Meta,
                    &key,
                    &serde_json::json!({"at": now, "by": actor.to_string()}),
                )?;
                for (hash, bytes) in tx.scan(Table::Tokens, "")? {
                    let rec: TokenRecord = decode(Table::Tokens, &hash, &bytes)?;
                    if &rec.user_id == user {
                        tx.delete(Table::Tokens, &hash)?;
                        revoked += 1;
                    }
                }
            } else {
                tx.delete(Table::Meta, &key)?;
            }
            append_audit(
                tx,
                EntryDraft::new(
                    now,
                    actor.clone(),
                    if disabled {
                        "user.disable"
                    } else {
                        "user.enable"
                    },
                )
                .decision(if disabled {
                    format!("user {user} disabled; {revoked} tokens revoked")
                } else {
                    format!("user {user} enabled")
                }),
            )?;
            Ok(revoked)
        })
    }

    /// Appends a stand-alone audit entry (e.g. a failed login).
    pub fn audit(&self, draft: EntryDraft) -> Result<Entry, StoreError> {
        self.write_with(|tx| append_audit(tx, draft.clone()))
    }

    // ---- sites ------------------------------------------------------------------------------

    /// Creates a site; `Conflict` if the id is taken.
    pub fn create_site(&self, site: &Site, actor: &Actor, now: i64) -> Result<(), StoreError> {
        self.write_with(|tx| {
            insert_new_json(tx, Table::Sites, "site", site.id.as_str(), site)?;
            let d = EntryDraft::new(now, actor.clone(), "site.create")
                .decision(format!("site {}", site.id));
            append_audit(tx, d)?;
            Ok(())
        })
    }

    /// A site by id.
    pub fn site(&self, id: &SiteId) -> Result<Option<Site>, StoreError> {
        self.read_with(|tx| get_json(tx, Table::Sites, id.as_str()))
    }

    /// Every site, by id.
    pub fn sites(&self) -> Result<Vec<Site>, StoreError> {
        self.read_with(|tx| scan_json(tx, Table::Sites, ""))
    }

    /// Replaces the site's enrollment token (the previous one stops working).
    pub fn set_enrollment_token(
        &self,
        site: &SiteId,
        token: &StoredToken,
        actor: &Actor,
        now: i64,
    ) -> Result<(), StoreError> {
        self.write_with(|tx| {
            let mut s: Site = get_json(tx, Table::Sites, site.as_str())?
                .ok_or_else(|| StoreError::not_found(format!("site {site}")))?;
            s.enrollment = Some(token.clone());
            put_json(tx, Table::Sites, site.as_str(), &s)?;
            let d = EntryDraft::new(now, actor.clone(), "site.enrollment_token").decision(format!(
                "issued for site {site}, expires {}",
                token.expires_at
            ));
            append_audit(tx, d)?;
            Ok(())
        })
    }

    /// Enrolls a site: checks the one-time token (constant time), expiry, single use and the
    /// proof of possession, then registers the key and marks the token used, in one
    /// transaction. An unknown site is reported as an invalid token.
    pub fn enroll(&self, req: &EnrollRequest, now: i64) -> Result<Site, EnrollFailure> {
        let mut failure: Option<EnrollFailure> = None;
        let site = self.write_with(|tx| {
            failure = None;
            let Some(mut site) = get_json::<Site>(tx, Table::Sites, req.site_name.as_str())? else {
                failure = Some(EnrollFailure::Enroll(EnrollError::InvalidToken));
                return Ok(None);
            };
            let Some(mut stored) = site.enrollment.clone() else {
                failure = Some(EnrollFailure::Enroll(EnrollError::InvalidToken));
                return Ok(None);
            };
            let key = match qiao_protocol::enroll(&mut stored, req, now) {
                Ok(k) => k,
                Err(e) => {
                    failure = Some(EnrollFailure::Enroll(e));
                    return Ok(None);
                }
            };
            let all: Vec<Site> = scan_json(tx, Table::Sites, "")?;
            if all.iter().any(|other| {
                other.id != site.id && other.public_key.is_some_and(|k| k.verifying_key() == &key)
            }) {
                failure = Some(EnrollFailure::KeyInUse);
                return Ok(None);
            }
            site.public_key = Some(req.public_key);
            site.enrolled_at = Some(now);
            site.enrollment = Some(stored);
            put_json(tx, Table::Sites, site.id.as_str(), &site)?;
            let d = EntryDraft::new(now, Actor::Site(site.id.to_string()), "site.enroll")
                .decision(format!("key {}", req.public_key.fingerprint()));
            append_audit(tx, d)?;
            Ok(Some(site))
        })?;
        match (site, failure) {
            (Some(s), _) => Ok(s),
            (None, Some(f)) => Err(f),
            (None, None) => Err(EnrollFailure::Enroll(EnrollError::InvalidToken)),
        }
    }

    // ---- projects ---------------------------------------------------------------------------

    /// Creates a project; `Conflict` if the id is taken.
    pub fn create_project(
        &self,
        project: &Project,
        actor: &Actor,
        now: i64,
    ) -> Result<(), StoreError> {
        self.write_with(|tx| {
            // A member missing rolls the insert back with the transaction.
            insert_new_json(tx, Table::Projects, "project", project.id.as_str(), project)?;
            for m in &project.members {
                if tx.get(Table::Users, m.as_str())?.is_none() {
                    return Err(StoreError::not_found(format!("user {m}")));
                }
            }
            let d = EntryDraft::new(now, actor.clone(), "project.create")
                .project(project.id.to_string())
                .decision(if project.approved {
                    "approved"
                } else {
                    "pending"
                });
            append_audit(tx, d)?;
            Ok(())
        })
    }

    /// A project by id.
    pub fn project(&self, id: &ProjectId) -> Result<Option<Project>, StoreError> {
        self.read_with(|tx| get_json(tx, Table::Projects, id.as_str()))
    }

    /// Every project, by id.
    pub fn projects(&self) -> Result<Vec<Project>, StoreError> {
        self.read_with(|tx| scan_json(tx, Table::Projects, ""))
    }

    /// Sets the approval flag.
    pub fn set_project_approved(
        &self,
        id: &ProjectId,
        approved: bool,
        actor: &Actor,
        now: i64,
    ) -> Result<Project, StoreError> {
        self.write_with(|tx| {
            let mut p: Project = get_json(tx, Table::Projects, id.as_str())?
                .ok_or_else(|| StoreError::not_found(format!("project {id}")))?;
            p.approved = approved;
            put_json(tx, Table::Projects, id.as_str(), &p)?;
            let d = EntryDraft::new(
                now,
                actor.clone(),
                if approved {
                    "project.approve"
                } else {
                    "project.revoke"
                },
            )
            .project(id.to_string());
            append_audit(tx, d)?;
            Ok(p)
        })
    }

    /// Adds a member (idempotent).
    pub fn add_project_member(
        &self,
        id: &ProjectId,
        user: &UserId,
        actor: &Actor,
        now: i64,
    ) -> Result<Project, StoreError> {
        self.write_with(|tx| {
            let mut p: Project = get_json(tx, Table::Projects, id.as_str())?
                .ok_or_else(|| StoreError::not_found(format!("project {id}")))?;
            if tx.get(Table::Users, user.as_str())?.is_none() {
                return Err(StoreError::not_found(format!("user {user}")));
            }
            if !p.members.contains(user) {
                p.members.push(user.clone());
                put_json(tx, Table::Projects, id.as_str(), &p)?;
                let d = EntryDraft::new(now, actor.clone(), "project.member_add")
                    .project(id.to_string())
                    .decision(format!("user {user}"));
                append_audit(tx, d)?;
            }
            Ok(p)
        })
    }

    // ---- jobs and results -------------------------------------------------------------------

    /// Stores a new job for `sites` (assigning its sequence number) and audits the submission.
    /// `Conflict` if the job id exists.
    pub fn create_job(
        &self,
        job: &Job,
        sites: &[SiteId],
        now: i64,
    ) -> Result<JobRecord, StoreError> {
        self.write_with(|tx| create_job_in(tx, job, sites, now))
    }

    /// [`create_job`](Self::create_job) if the requester and the project are within their
    /// submission quotas; the quota counters are updated in the same transaction, so parallel
    /// submissions cannot overrun them. `Ok(Err(..))` names the quota that is spent.
    pub fn create_job_within(
        &self,
        job: &Job,
        sites: &[SiteId],
        quotas: &Quotas,
        now: i64,
    ) -> Result<Result<JobRecord, QuotaExceeded>, StoreError> {
        self.write_with(|tx| {
            let user = format!("quota/user/{}", job.requested_by.user_id);
            let project = format!("quota/project/{}", job.project_id);
            let u = quota_use(tx, &user, quotas.per_user, quotas.period_secs, now)?;
            let p = quota_use(tx, &project, quotas.per_project, quotas.period_secs, now)?;
            match (u, p) {
                (Err(retry), _) => Ok(Err(QuotaExceeded {
                    what: "user",
                    limit: quotas.per_user,
                    period_secs: quotas.period_secs,
                    retry_after_secs: retry,
                })),
                (_, Err(retry)) => Ok(Err(QuotaExceeded {
                    what: "project",
                    limit: quotas.per_project,
                    period_secs: quotas.period_secs,
                    retry_after_secs: retry,
                })),
                (Ok(u), Ok(p)) => {
                    put_json(tx, Table::Meta, &user, &u)?;
                    put_json(tx, Table::Meta, &project, &p)?;
                    create_job_in(tx, job, sites, now).map(Ok)
                }
            }
        })
    }

    /// A job by id.
    pub fn job(&self, id: &JobId) -> Result<Option<JobRecord>, StoreError> {
        self.read_with(|tx| super::definitions::get_job(tx, &id.to_string()))
    }

    /// Every job, in submission order.
    pub fn jobs(&self) -> Result<Vec<JobRecord>, StoreError> {
        let mut jobs: Vec<JobRecord> = self.read_with(super::definitions::scan_jobs)?;
        jobs.sort_by_key(|j| j.seq);
        Ok(jobs)
    }

    /// Whether `site` has a job it could be handed now (cheap, read-only).
    pub fn has_deliverable(
        &self,
        site: &SiteId,
        now: i64,
        redeliver_secs: i64,
    ) -> Result<bool, StoreError> {
        self.read_with(|tx| Ok(next_deliverable(tx, site, now, redeliver_secs)?.is_some()))
    }

    /// Hands `site` its oldest job still waiting for its result that was never delivered, or
    /// last delivered at least `redeliver_secs` ago, and records the delivery. A job stays
    /// pending for the site until its result is stored, so a site that lost a job gets it again.
    pub fn lease_job(
        &self,
        site: &SiteId,
        now: i64,
        redeliver_secs: i64,
    ) -> Result<Option<LeasedJob>, StoreError> {
        if !self.has_deliverable(site, now, redeliver_secs)? {
            return Ok(None);
        }
        self.write_with(|tx| {
            let Some(mut record) = next_deliverable(tx, site, now, redeliver_secs)? else {
                return Ok(None);
            };
            let mut first = false;
            if let Some(d) = record.deliveries.iter_mut().find(|d| &d.site == site) {
                first = d.first_at.is_none();
                d.first_at.get_or_insert(now);
                d.last_at = Some(now);
                d.count = d.count.saturating_add(1);
            }
            super::definitions::put_job(tx, &record)?;
            if first {
                let d = EntryDraft::new(now, Actor::Site(site.to_string()), "job.deliver")
                    .project(record.job.project_id.to_string())
                    .job(record.job.job_id.to_string());
                append_audit(tx, d)?;
            }
            Ok(Some(LeasedJob {
                job: record.job,
                first_delivery: first,
            }))
        })
    }

    /// Stores a site's verified result once: a second result for the same job and site is a
    /// [`ResultOutcome::Duplicate`] and changes nothing. The result must be for a job sent to
    /// that site and pass [`check_against_job`].
    pub fn put_result(&self, result: &JobResult, now: i64) -> Result<ResultOutcome, StoreError> {
        self.put_result_marked(result, None, now)
    }

    /// [`Self::put_result`], marking the result "rejected: implausible" with the reason when
    /// `rejected` is given (audited as such). The site's budget report of an accepted result is
    /// kept for `GET /api/v1/budget` ([`crate::store::budget::record`]).
    pub fn put_result_marked(
        &self,
        result: &JobResult,
        rejected: Option<&str>,
        now: i64,
    ) -> Result<ResultOutcome, StoreError> {
        self.write_with(|tx| {
            let id = result.job_id.to_string();
            let record: JobRecord = super::definitions::get_job(tx, &id)?
                .ok_or_else(|| StoreError::not_found(format!("job {id}")))?;
            if !record.sites.contains(&result.site_id) {
                return Err(StoreError::forbidden(format!(
                    "job {id} was not sent to site {}",
                    result.site_id
                )));
            }
            let key = result_key(&result.job_id, &result.site_id);
            if tx.get(Table::Results, &key)?.is_some() {
                return Ok(ResultOutcome::Duplicate);
            }
            check_against_job(&record.job, result)
                .map_err(|e| StoreError::invalid(format!("result does not answer the job: {e}")))?;
            put_json(
                tx,
                Table::Results,
                &key,
                &StoredResult {
                    result: result.clone(),
                    received_at: now,
                    rejected: rejected.map(str::to_owned),
                },
            )?;
            if rejected.is_none() {
                crate::store::budget::record(tx, &record.job, result, now)?;
            }
            tx.delete(Table::Pending, &pending_key(&result.site_id, record.seq))?;
            let decision = match (&result.outcome, rejected) {
                (_, Some(why)) => format!("rejected: implausible: {why}"),
                (Outcome::Done { .. }, None) => "done".to_owned(),
                (Outcome::Refused { reason }, None) => format!("refused:{}", json_tag(reason)),
                (Outcome::Failed { error }, None) => format!("failed:{}", json_tag(error)),
            };
            let mut d = EntryDraft::new(
                now,
                Actor::Site(result.site_id.to_string()),
                "result.receive",
            )
            .project(record.job.project_id.to_string())
            .job(id.clone())
            .decision(decision);
            if let Outcome::Done { payload } = &result.outcome {
                if let Ok(v) = serde_json::to_value(payload) {
                    d = d.released_json(&v);
                }
            }
            append_audit(tx, d)?;
            Ok(ResultOutcome::Stored)
        })
    }

    /// The stored results of a job, by site.
    pub fn results(&self, job: &JobId) -> Result<Vec<StoredResult>, StoreError> {
        self.read_with(|tx| scan_json(tx, Table::Results, &format!("{job}/")))
    }

    // ---- audit ------------------------------------------------------------------------------

    /// Audit entries with `seq > after`, at most `limit`.
    pub fn audit_entries(&self, after: u64, limit: usize) -> Result<Vec<Entry>, StoreError> {
        // Keys are zero-padded, so all entries scan in order; fine for the sizes a hub keeps.
        let all: Vec<Entry> = self.read_with(|tx| scan_json(tx, Table::Audit, ""))?;
        Ok(all
            .into_iter()
            .filter(|e| e.seq > after)
            .take(limit)
            .collect())
    }

    /// Reads and verifies the whole audit chain.
    pub fn verify_audit(
        &self,
    ) -> Result<(Vec<Entry>, Result<VerifyReport, ChainError>), StoreError> {
        let all: Vec<Entry> = self.read_with(|tx| scan_json(tx, Table::Audit, ""))?;
        let report = verify_entries(&all, None);
        Ok((all, report))
    }
}

fn next_deliverable(
    tx: &mut dyn Tx,
    site: &SiteId,
    now: i64,
    redeliver_secs: i64,
) -> Result<Option<JobRecord>, StoreError> {
    for (k, v) in tx.scan(Table::Pending, &format!("{site}/"))? {
        let id: String = decode(Table::Pending, &k, &v)?;
        let Some(record) = super::definitions::get_job(tx, &id)? else {
            continue;
        };
        let due = record
            .deliveries
            .iter()
            .find(|d| &d.site == site)
            .is_none_or(|d| {
                d.last_at
                    .is_none_or(|t| now.saturating_sub(t) >= redeliver_secs)
            });
        if due {
            return Ok(Some(record));
        }
    }
    Ok(None)
}

fn json_tag<T: Serialize>(v: &T) -> String {
    match serde_json::to_value(v) {
        Ok(serde_json::Value::String(s)) => s,
        _ => "unknown".into(),
    }
}

/// A job's record inside a caller's transaction.
pub fn job_in(tx: &mut dyn Tx, id: &JobId) -> Result<Option<JobRecord>, StoreError> {
    super::definitions::get_job(tx, &id.to_string())
}

/// Withdraws `record`'s job from the sites that have not answered it (a failed multi-round run:
/// a site that comes back must not answer a round the run has left).
pub fn withdraw_job_in(tx: &mut dyn Tx, record: &JobRecord) -> Result<(), StoreError> {
    for s in &record.sites {
        tx.delete(Table::Pending, &pending_key(s, record.seq))?;
    }
    Ok(())
}
