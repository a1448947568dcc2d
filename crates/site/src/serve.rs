//! Enrollment and the pull loop.
//!
//! The site opens no port: it long-polls the hub for jobs, verifies every job envelope
//! (pinned hub key, addressee, timestamp window, nonce), decides by its policy (auto, manual
//! approval through the steward's queue, deny), runs approved jobs on its store, applies
//! disclosure control, journals the result, and posts it signed until the hub acknowledges it.
//!
//! Idempotence: a job in the journal is never computed again; after a crash its stored result is
//! re-sent (sealed afresh) until acknowledged. Network errors back off exponentially and never
//! stop the loop.

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};
use qiao_audit::{Actor, EntryDraft};
use qiao_protocol::keys::{generate_signing_key, load_signing_key, save_signing_key};
use qiao_protocol::{
    EnrollRequest, Envelope, Job, JobId, Message, RefusalReason, ReplayGuard, Signer, SiteId,
    SiteStatus, Verifier,
};
use qiao_store::Store;

use crate::cdm::SiteCdm;
use sha2::{Digest, Sha256};

use crate::audit;
use crate::client::{HubClient, HubError, TlsOptions};
use crate::data::{now_unix, write_json, SiteConfig, SiteDir};
use crate::exec::{self, Executed};
use crate::policy::{Approval, SitePolicy};
use crate::queue::{ApprovalState, Approvals, Journal, JournalEntry};
use crate::replay::{Recorded, SeenNonces};
use crate::run::journal_and_audit;
use crate::workers::{Finished, Limits, Pool};

/// Jobs taken from the hub and waiting for a worker, beyond which the site stops polling for
/// more until one finishes.
const MAX_WAITING: usize = 64;

/// `qiao site enroll`.
#[derive(Clone, Debug)]
pub struct EnrollOptions {
    /// The hub's base URL.
    pub hub: String,
    /// The one-time enrollment token from the alliance admin.
    pub token: String,
    /// The site name asked for.
    pub name: String,
    /// The site's data directory.
    pub data: PathBuf,
    /// The hub key's fingerprint (`SHA256:…`), given out of band; enrollment fails if the hub
    /// presents another key.
    pub hub_fingerprint: Option<String>,
    /// TLS settings.
    pub tls: TlsOptions,
}

/// Generates the site's key pair (kept, 0600, if an earlier attempt left one), registers it
/// with the hub, pins the hub's key and saves the enrollment in the data directory.
pub async fn enroll(o: &EnrollOptions) -> anyhow::Result<SiteConfig> {
    let dir = SiteDir::create(&o.data)?;
    if dir.config_path().exists() {
        bail!(
            "{} is already enrolled; use a new data directory to enroll again",
            dir.root().display()
        );
    }
    let name = SiteId::new(o.name.clone()).context("site name")?;
    let key_path = dir.key_path();
    let key = if key_path.exists() {
        load_signing_key(&key_path)?
    } else {
        let key = generate_signing_key();
        save_signing_key(&key_path, &key)?;
        key
    };
    // The disclosure secret, created now so that it exists before any job.
    dir.secret()?;
    let client = HubClient::new(&o.hub, &o.tls)?;
    let request = EnrollRequest::new(&o.token, name.clone(), &key)?;
    let response = client.enroll(&request).await?;
    let hub_key = response
        .pin(o.hub_fingerprint.as_deref())
        .context("pinning the hub's key")?;
    let hub_public_key = qiao_protocol::PublicKey::new(hub_key)?;
    // The hub key must be usable by a site verifier.
    Verifier::for_site(response.site_id.clone(), hub_key)?;
    let config = SiteConfig {
        site_id: response.site_id.clone(),
        name: o.name.clone(),
        hub_url: client.base().to_owned(),
        hub_fingerprint: hub_public_key.fingerprint(),
        hub_public_key,
        enrolled_at: now_unix(),
    };
    write_json(&dir.config_path(), &config)?;
    if !dir.policy_path().exists() {
        SitePolicy::default().save(&dir)?;
    }
    audit::append(
        &dir,
        EntryDraft::new(
            now_unix(),
            Actor::Site(config.site_id.to_string()),
            "site.enroll",
        )
        .decision(format!(
            "enrolled at {} as {}; hub key {}",
            config.hub_url, config.site_id, config.hub_fingerprint
        )),
    )?;
    Ok(config)
}

/// `qiao site serve`.
#[derive(Clone, Debug)]
pub struct ServeOptions {
    /// The site's data directory.
    pub data: PathBuf,
    /// The store.
    pub store: PathBuf,
    /// The hub's URL, if not the one enrolled with.
    pub hub: Option<String>,
    /// TLS settings.
    pub tls: TlsOptions,
    /// Long-poll duration asked of the hub.
    pub wait_secs: u64,
    /// Longest pause between retries when the hub cannot be reached.
    pub max_backoff: Duration,
    /// Workers and the per-job time limit.
    pub limits: Limits,
}

impl ServeOptions {
    /// Defaults: 25 s long polls, back off up to 60 s.
    pub fn new(data: impl Into<PathBuf>, store: impl Into<PathBuf>) -> Self {
        Self {
            data: data.into(),
            store: store.into(),
            hub: None,
            tls: TlsOptions::default(),
            wait_secs: 25,
            max_backoff: Duration::from_secs(60),
            limits: Limits::default(),
        }
    }
}

/// A job waiting for the steward offered again within this many seconds means a hub that
/// re-offers it at once: the loop pauses instead of spinning.
const REOFFER_SPIN_SECS: u64 = 5;

struct Site {
    dir: SiteDir,
    config: SiteConfig,
    signer: Signer,
    verifier: Verifier,
    guard: ReplayGuard,
    seen: SeenNonces,
    /// When each job waiting for the steward was last offered (the last few seconds only).
    offered: std::collections::HashMap<JobId, std::time::Instant>,
    cdm: Arc<dyn SiteCdm>,
    pool: Pool,
    client: HubClient,
    /// The site's audit head signed for each poll, and the hub's heads kept from the answers.
    own_head: crate::audit_heads::OwnHead,
    hub_heads: crate::audit_heads::HubHeads,
    wait_secs: u64,
    max_backoff: Duration,
    backoff: Duration,
}

/// Runs the pull loop on the store `o.store` until `shutdown` completes.
pub async fn serve(o: &ServeOptions, shutdown: impl Future<Output = ()>) -> anyhow::Result<()> {
    let store =
        Store::open(&o.store).with_context(|| format!("opening store {}", o.store.display()))?;
    serve_on(o, Arc::new(store), shutdown).await
}

/// Runs the pull loop on `cdm` (`o.store` is not read) until `shutdown` completes.
pub async fn serve_on(
    o: &ServeOptions,
    cdm: Arc<dyn SiteCdm>,
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<()> {
    let dir = SiteDir::open(&o.data)?;
    let lock_path = dir.root().join("serve.lock");
    let lock = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .with_context(|| format!("opening {}", lock_path.display()))?;
    if rustix::fs::flock(&lock, rustix::fs::FlockOperation::NonBlockingLockExclusive).is_err() {
        bail!(
            "another `qiao site serve` is running on {}",
            dir.root().display()
        );
    }
    let config = dir.config()?;
    let signer = Signer::new(load_signing_key(&dir.key_path())?);
    let verifier = Verifier::for_site(
        config.site_id.clone(),
        *config.hub_public_key.verifying_key(),
    )?;
    // Check the policy and the secret before taking jobs.
    SitePolicy::load(&dir)?.disclosure()?;
    dir.secret()?;
    let hub_url = o.hub.clone().unwrap_or_else(|| config.hub_url.clone());
    let client = HubClient::new(&hub_url, &o.tls)?;
    tracing::info!(site = %config.site_id, hub = %hub_url, "site serving");
    let guard = ReplayGuard::default();
    let seen = SeenNonces::load(&dir, guard.max_skew_secs())?;
    let pool = Pool::new(
        o.limits,
        dir.clone(),
        Arc::clone(&cdm),
        config.site_id.clone(),
    );
    let hub_heads =
        crate::audit_heads::HubHeads::load(&dir, *config.hub_public_key.verifying_key())?;
    let mut site = Site {
        own_head: crate::audit_heads::OwnHead::default(),
        hub_heads,
        dir,
        config,
        signer,
        verifier,
        seen,
        guard,
        offered: std::collections::HashMap::new(),
        pool,
        cdm,
        client,
        wait_secs: o.wait_secs,
        max_backoff: o.max_backoff.max(Duration::from_millis(100)),
        backoff: Duration::ZERO,
    };
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            biased;
            () = &mut shutdown => break,
            pause = site.step() => {
                if !pause.is_zero() {
                    tokio::select! {
                        biased;
                        () = &mut shutdown => break,
                        () = tokio::time::sleep(pause) => {}
                    }
                }
            }
        }
    }
    drop(lock);
    Ok(())
}

impl Site {
    /// The status sent with each poll: the store's latest event date, its person count rounded
    /// to the nearest hundred, and the thresholds of the current policy (read again each poll,
    /// so a steward's change shows at once). `None` if the policy cannot be read.
    fn status(&self) -> Option<SiteStatus> {
        let policy = match SitePolicy::load(&self.dir) {
            Ok(p) => p,
            Err(e) => {
                tracing::warn!("reading the policy for the poll status: {e:#}");
                return None;
            }
        };
        Some(site_status(self.cdm.meta(), &policy))
    }

    fn next_backoff(&mut self) -> Duration {
        self.backoff = if self.backoff.is_zero() {
            Duration::from_millis(250)
        } else {
            (self.backoff * 2).min(self.max_backoff)
        };
        self.backoff
    }

    /// One round: decided approvals, unacknowledged results, one poll. Returns how long to
    /// pause before the next round.
    async fn step(&mut self) -> Duration {
        if let Err(e) = self.process_decided().await {
            tracing::error!("approval queue: {e:#}");
        }
        match self.flush_unacked().await {
            Ok(()) => {}
            Err(e) => {
                let pause = self.next_backoff();
                tracing::warn!("sending results: {e:#}; retrying in {pause:?}");
                return pause;
            }
        }
        let status = self.status();
        let head = self
            .own_head
            .sign(&self.dir, &self.signer, &self.config.site_id, now_unix());
        let poll = match self.signer.seal_poll_with_head(
            &self.config.site_id,
            status.as_ref(),
            head.as_ref(),
            now_unix(),
        ) {
            Ok(p) => p,
            Err(e) => {
                tracing::error!("signing a poll: {e}");
                return self.next_backoff();
            }
        };
        // With many jobs waiting for a worker, the site waits for one to finish instead of
        // polling. Otherwise a job that finishes during the long poll has its result sent at
        // once, and the poll goes on: dropping it would lose a job the hub hands to that poll
        // (the hub offers it again only after its redelivery delay).
        if self.pool.waiting() >= MAX_WAITING {
            let done = self.pool.next_done().await;
            return self.finished(done).await;
        }
        let client = self.client.clone();
        let wait_secs = self.wait_secs;
        let in_flight = async move { client.poll_with_head(&poll, wait_secs).await };
        tokio::pin!(in_flight);
        let mut pause = Duration::ZERO;
        let polled = loop {
            tokio::select! {
                r = &mut in_flight => break r,
                done = self.pool.next_done() => {
                    pause = pause.max(self.finished(done).await);
                }
            }
        };
        let polled = polled.map(|(job, hub_head)| {
            if let Some(h) = hub_head {
                if let Err(e) = self.hub_heads.keep(&self.dir, &h, now_unix()) {
                    tracing::warn!("the hub's audit head is not kept: {e:#}");
                }
            }
            job
        });
        // A job the poll brought is handled even when a result could not be sent meanwhile.
        let next = match polled {
            Ok(None) => {
                self.backoff = Duration::ZERO;
                Duration::ZERO
            }
            Ok(Some(env)) => {
                self.backoff = Duration::ZERO;
                match self.handle_envelope(env).await {
                    Ok(waiting) if waiting => Duration::from_secs(self.wait_secs.clamp(1, 5)),
                    Ok(_) => Duration::ZERO,
                    Err(e) => {
                        let pause = self.next_backoff();
                        tracing::warn!("handling a job: {e:#}; retrying in {pause:?}");
                        pause
                    }
                }
            }
            Err(e) => {
                let pause = self.next_backoff();
                if e.is_transient() {
                    tracing::warn!("polling the hub: {e}; retrying in {pause:?}");
                } else {
                    tracing::error!("polling the hub: {e}; retrying in {pause:?}");
                }
                pause
            }
        };
        next.max(pause)
    }

    /// Verifies a job envelope and handles the job. `Ok(true)` when a job still waiting for
    /// the steward is offered again within seconds (a hub that keeps re-offering it: pause
    /// before polling again rather than spin). The real hub re-offers an unanswered job only
    /// after its redelivery interval, so a queued job never delays the jobs behind it.
    async fn handle_envelope(&mut self, env: Envelope) -> anyhow::Result<bool> {
        let now = now_unix();
        let verified = self
            .guard
            .open(&self.verifier, &env, now)
            .map_err(|e| e.to_string());
        // The in-memory guard forgets at a restart: the persisted nonces do not.
        let opened = match verified {
            Ok(o) => match self.seen.record(&env.nonce, env.timestamp, now)? {
                Recorded::New => Ok(o),
                Recorded::Replay => Err(format!(
                    "replayed message: nonce {} was accepted before (by an earlier serve)",
                    env.nonce
                )),
            },
            Err(e) => Err(e),
        };
        let opened = match opened {
            Ok(o) => o,
            Err(e) => {
                tracing::warn!("rejected an envelope from the hub: {e}");
                // Not attributed to the hub: the envelope does not prove who sent it.
                let mut draft = EntryDraft::new(now, Actor::Unverified, "envelope.reject")
                    .decision(format!("rejected, not executed: {e}"));
                if let Some(id) = env.job_id {
                    draft = draft.job(format!("{id} (claimed)"));
                }
                audit::append(&self.dir, draft)?;
                return Ok(false);
            }
        };
        let Message::Job(job) = opened.message else {
            tracing::warn!("the hub sent a {} where a job was expected", opened.kind);
            return Ok(false);
        };
        self.handle_job(job).await
    }

    async fn handle_job(&mut self, job: Job) -> anyhow::Result<bool> {
        if self.pool.contains(&job.job_id) {
            // Offered again while it waits for a worker or runs.
            return Ok(false);
        }
        let journal = Journal::new(&self.dir);
        if let Some(mut entry) = journal.get(&job.job_id)? {
            // Finished before (and perhaps not acknowledged, or the ack was lost): re-send the
            // stored result, never recompute.
            entry.acked = false;
            entry.hub_rejected = None;
            journal.put(&entry)?;
            self.send(entry).await?;
            return Ok(false);
        }
        let approvals = Approvals::new(&self.dir);
        let queued = approvals.get(&job.job_id)?;
        if queued.is_none() {
            audit::append(&self.dir, received(&job))?;
            // What a local investigator's pre-screening list can be run on (`qiao site ui`).
            crate::cohorts::remember(&self.dir, &job, now_unix())?;
        }
        if let Err(why) = crate::limits::check_job(&job) {
            let e = exec::refused(
                &job,
                &self.config.site_id,
                RefusalReason::DefinitionTooComplex,
                why,
            );
            self.finish(&job, e, Actor::System).await?;
            return Ok(false);
        }
        let policy = SitePolicy::load(&self.dir)?;
        match policy.approval(&job.query) {
            Approval::Deny => {
                let e = exec::refused(
                    &job,
                    &self.config.site_id,
                    RefusalReason::QueryTypeDenied,
                    format!("site policy denies {} queries", job.query.payload_type()),
                );
                self.finish(&job, e, Actor::System).await?;
                Ok(false)
            }
            Approval::Auto => {
                self.pool.submit(job, Actor::System);
                Ok(false)
            }
            Approval::Manual => match queued.map(|q| q.state) {
                None => {
                    approvals.enqueue(&job, now_unix())?;
                    audit::append(
                        &self.dir,
                        EntryDraft::new(now_unix(), Actor::System, "job.queue")
                            .project(job.project_id.to_string())
                            .job(job.job_id.to_string())
                            .decision("waiting for the data steward (manual approval)"),
                    )?;
                    Ok(self.reoffered_soon(job.job_id))
                }
                Some(ApprovalState::Pending) => Ok(self.reoffered_soon(job.job_id)),
                // Decided: the queue processing at the top of the next round finishes it.
                Some(_) => {
                    self.process_decided().await?;
                    Ok(false)
                }
            },
        }
    }

    /// Records that a job waiting for the steward was offered now; whether it had been
    /// offered less than [`REOFFER_SPIN_SECS`] ago.
    fn reoffered_soon(&mut self, id: JobId) -> bool {
        let now = std::time::Instant::now();
        self.offered
            .retain(|_, t| now.duration_since(*t) < Duration::from_secs(REOFFER_SPIN_SECS));
        self.offered.insert(id, now).is_some()
    }

    /// Finishes every job the steward has decided.
    async fn process_decided(&mut self) -> anyhow::Result<()> {
        let dir = self.dir.clone();
        let approvals = Approvals::new(&dir);
        for item in approvals.list()? {
            let id = item.job.job_id;
            if Journal::new(&self.dir).get(&id)?.is_some() {
                approvals.remove(&id)?;
                continue;
            }
            match item.state {
                ApprovalState::Pending => {}
                ApprovalState::Approved { by, .. } => {
                    // Removed from the queue once journaled (above, next round).
                    self.pool.submit(item.job, audit::user(&by));
                }
                ApprovalState::Denied { by, reason, .. } => {
                    let e = exec::refused(
                        &item.job,
                        &self.config.site_id,
                        RefusalReason::RejectedBySteward,
                        format!("denied by the data steward {by}: {reason}"),
                    );
                    self.finish(&item.job, e, audit::user(&by)).await?;
                    approvals.remove(&id)?;
                }
            }
        }
        Ok(())
    }

    /// Sends the result of a job the pool finished; how long to pause before the next round.
    async fn finished(&mut self, (id, r): Finished) -> Duration {
        let sent = match r {
            Ok(entry) => self.send(entry).await,
            Err(e) => Err(e),
        };
        match sent {
            Ok(()) => Duration::ZERO,
            Err(e) => {
                let pause = self.next_backoff();
                tracing::warn!("job {id}: {e:#}; retrying in {pause:?}");
                pause
            }
        }
    }

    /// Journals a result decided without running anything (refusals), then sends it.
    async fn finish(&mut self, job: &Job, e: Executed, decided_by: Actor) -> anyhow::Result<()> {
        let entry = journal_and_audit(&self.dir, job, e, decided_by)?;
        self.send(entry).await
    }

    /// Re-sends every result the hub has not acknowledged yet.
    async fn flush_unacked(&mut self) -> anyhow::Result<()> {
        for entry in Journal::new(&self.dir).unacked()? {
            self.send(entry).await?;
        }
        Ok(())
    }

    /// Seals the result afresh (new nonce and timestamp) and posts it; records the
    /// acknowledgement. A transient failure is an error (the caller backs off); a permanent
    /// refusal by the hub is recorded and not retried.
    async fn send(&mut self, mut entry: JournalEntry) -> anyhow::Result<()> {
        let dir = self.dir.clone();
        let journal = Journal::new(&dir);
        let id = entry.result.job_id;
        let env = self
            .signer
            .seal_result(&entry.result, now_unix())
            .with_context(|| format!("sealing the result of job {id}"))?;
        entry.sends = entry.sends.saturating_add(1);
        match self.client.send_result(&env).await {
            Ok(ack) => {
                self.check_ack(&ack, id)?;
                entry.acked = true;
                journal.put(&entry)?;
                audit::append(
                    &self.dir,
                    EntryDraft::new(now_unix(), Actor::Hub, "result.ack")
                        .job(id.to_string())
                        .decision("the hub acknowledged the result"),
                )?;
                tracing::info!(job = %id, "result acknowledged by the hub");
                Ok(())
            }
            Err(e) if e.is_transient() => {
                journal.put(&entry)?;
                Err(e).with_context(|| format!("sending the result of job {id}"))
            }
            Err(e) => {
                tracing::error!(job = %id, "the hub refused the result: {e}");
                entry.hub_rejected = Some(e.to_string());
                journal.put(&entry)?;
                audit::append(
                    &self.dir,
                    EntryDraft::new(now_unix(), Actor::Hub, "result.reject")
                        .job(id.to_string())
                        .decision(format!("the hub refused the result: {e}")),
                )?;
                Ok(())
            }
        }
    }

    fn check_ack(&mut self, ack: &Envelope, id: JobId) -> anyhow::Result<()> {
        let opened = self
            .guard
            .open(&self.verifier, ack, now_unix())
            .map_err(|e| HubError::Protocol(format!("result acknowledgement rejected: {e}")))?;
        match opened.message {
            Message::ResultAck if opened.job_id == Some(id) => Ok(()),
            _ => Err(HubError::Protocol(format!(
                "expected a result_ack for job {id}, got a {} for {:?}",
                opened.kind, opened.job_id
            ))
            .into()),
        }
    }
}

/// The audit entry for a job seen for the first time: who asked what, under which project.
fn received(job: &Job) -> EntryDraft {
    let definition = Sha256::digest(job.definition.to_string().as_bytes());
    let query = serde_json::to_string(&job.query).unwrap_or_default();
    EntryDraft::new(
        now_unix(),
        audit::user(job.requested_by.user_id.as_str()),
        "job.receive",
    )
    .project(job.project_id.to_string())
    .job(job.job_id.to_string())
    .decision(format!(
        "received {query} as {} (created at {}, definition sha256:{})",
        serde_json::to_value(job.requested_by.role)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default(),
        job.created_at,
        crate::data::hex_encode(&definition)
    ))
}

/// A site's status from its store's metadata and its policy (see [`SiteStatus`]).
pub fn site_status(meta: &qiao_store::Meta, policy: &SitePolicy) -> SiteStatus {
    SiteStatus {
        data_as_of: meta.last_date.clone(),
        persons_rounded: SiteStatus::round_persons(meta.persons),
        min_cell_count: policy.min_cell_count,
        obfuscation: policy.release == qiao_disclosure::ReleaseMode::Shrine,
        dp: policy.release == qiao_disclosure::ReleaseMode::Dp,
    }
}

#[cfg(test)]
mod status_tests {
    use super::*;

    #[test]
    fn the_poll_status_rounds_persons_and_reports_the_policy() {
        let meta = qiao_store::Meta {
            persons: 2_349,
            person_universe: 2_400,
            first_date: Some("2001-01-01".into()),
            last_date: Some("2020-06-30".into()),
            ..Default::default()
        };
        let policy = SitePolicy::default();
        assert_eq!(
            site_status(&meta, &policy),
            SiteStatus {
                data_as_of: Some("2020-06-30".into()),
                persons_rounded: 2_300,
                min_cell_count: 10,
                obfuscation: false,
                dp: true,
            }
        );
        let policy = SitePolicy {
            min_cell_count: 5,
            release: qiao_disclosure::ReleaseMode::Exact,
            ..SitePolicy::default()
        };
        let empty = qiao_store::Meta::default();
        assert_eq!(
            site_status(&empty, &policy),
            SiteStatus {
                data_as_of: None,
                persons_rounded: 0,
                min_cell_count: 5,
                obfuscation: false,
                dp: false,
            }
        );
    }
}
