//! Running approved jobs: a bounded pool of workers, fair between users, each job under a time
//! limit.
//!
//! - At most [`Limits::workers`] jobs run at once, each on a blocking thread. The rest wait in a
//!   [`FairQueue`]: the next job is that of the user served least recently (a user never served
//!   first), so one user's heavy jobs cannot starve another's.
//! - A job's cohort is computed **outside** the data directory's lock (so jobs run side by
//!   side), on threads of its own (a share of the cores: a heavy job's parallel work never
//!   holds up another job's), with a [`Cancel`] token the pool cancels at [`Limits::time_limit`]; the engine
//!   stops within a span of persons and the job ends as `failed: timeout`, audited, with no
//!   budget charged and nothing released. Admission, release and the ledger then run under the
//!   lock, as before ([`crate::run::compute_and_journal`]).
//! - Before the cohort, admission is tried on a copy of the ledger ([`crate::run::needs_cohort`]):
//!   a job refused by the floors, the rate limit or a budget — decisions that never depend on
//!   the data — is refused without computing its cohort.
//! - A job the hub offers again while it waits or runs is recognised ([`Pool::contains`]) and
//!   not run twice; the journal makes sure of it across restarts.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use qiao_audit::Actor;
use qiao_cohort::exec::Cancel;
use qiao_protocol::{Job, JobId, SiteId};
use tokio::task::JoinSet;

use crate::cdm::SiteCdm;
use crate::data::SiteDir;
use crate::exec::{CohortRun, ExecError};
use crate::queue::{Journal, JournalEntry};

/// How jobs run at this site (`qiao site serve --workers N --job-time-limit SECS`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Jobs computed at once (at least 1).
    pub workers: usize,
    /// A job's cohort computation is stopped after this long.
    pub time_limit: Duration,
}

impl Default for Limits {
    /// Two workers, ten minutes a job.
    fn default() -> Self {
        Self {
            workers: 2,
            time_limit: Duration::from_secs(600),
        }
    }
}

/// Items queued per user; [`FairQueue::pop`] takes the oldest item of the user served least
/// recently (never served first; ties: the user whose oldest item came first).
#[derive(Debug)]
pub struct FairQueue<T> {
    queues: HashMap<String, VecDeque<(u64, T)>>,
    /// When each user was last served (ticks of [`FairQueue::pop`]).
    served: HashMap<String, u64>,
    arrivals: u64,
    ticks: u64,
}

impl<T> Default for FairQueue<T> {
    fn default() -> Self {
        Self {
            queues: HashMap::new(),
            served: HashMap::new(),
            arrivals: 0,
            ticks: 0,
        }
    }
}

impl<T> FairQueue<T> {
    /// Queues `item` for `user`.
    pub fn push(&mut self, user: &str, item: T) {
        self.arrivals += 1;
        self.queues
            .entry(user.to_owned())
            .or_default()
            .push_back((self.arrivals, item));
    }

    /// The next item, and its user.
    pub fn pop(&mut self) -> Option<(String, T)> {
        let user = self
            .queues
            .iter()
            .filter_map(|(u, q)| {
                let (arrived, _) = q.front()?;
                Some(((self.served.get(u).copied().unwrap_or(0), *arrived), u))
            })
            .min()
            .map(|(_, u)| u.clone())?;
        let queue = self.queues.get_mut(&user)?;
        let (_, item) = queue.pop_front()?;
        if queue.is_empty() {
            self.queues.remove(&user);
        }
        self.ticks += 1;
        self.served.insert(user.clone(), self.ticks);
        Some((user, item))
    }

    /// Items waiting.
    pub fn len(&self) -> usize {
        self.queues.values().map(VecDeque::len).sum()
    }

    /// Whether nothing waits.
    pub fn is_empty(&self) -> bool {
        self.queues.is_empty()
    }

    /// Whether some waiting item satisfies `f`.
    pub fn any(&self, f: impl Fn(&T) -> bool) -> bool {
        self.queues.values().flatten().any(|(_, t)| f(t))
    }
}

struct Task {
    job: Job,
    decided_by: Actor,
}

/// What a finished job gives: its journal entry (to send), or why it could not be journaled.
pub type Finished = (JobId, anyhow::Result<JournalEntry>);

/// The bounded, fair pool of workers of a running site.
pub struct Pool {
    limits: Limits,
    dir: SiteDir,
    cdm: Arc<dyn SiteCdm>,
    site_id: SiteId,
    queue: FairQueue<Task>,
    running: HashMap<JobId, Cancel>,
    tasks: JoinSet<Finished>,
    ids: HashMap<tokio::task::Id, JobId>,
    /// Set when the pool is dropped (the site stops): a computation cancelled then is not a
    /// timeout, and nothing is journaled for it.
    stopping: Arc<AtomicBool>,
}

impl Pool {
    /// An idle pool.
    pub fn new(limits: Limits, dir: SiteDir, cdm: Arc<dyn SiteCdm>, site_id: SiteId) -> Self {
        Self {
            limits: Limits {
                workers: limits.workers.max(1),
                ..limits
            },
            dir,
            cdm,
            site_id,
            queue: FairQueue::default(),
            running: HashMap::new(),
            tasks: JoinSet::new(),
            ids: HashMap::new(),
            stopping: Arc::new(AtomicBool::new(false)),
        }
    }

    /// Whether job `id` waits or runs here.
    pub fn contains(&self, id: &JobId) -> bool {
        self.running.contains_key(id) || self.queue.any(|t| t.job.job_id == *id)
    }

    /// Jobs waiting for a worker.
    pub fn waiting(&self) -> usize {
        self.queue.len()
    }

    /// Queues an approved job (decided by `decided_by`) and starts what fits.
    pub fn submit(&mut self, job: Job, decided_by: Actor) {
        if self.contains(&job.job_id) {
            return;
        }
        let user = job.requested_by.user_id.as_str().to_owned();
        self.queue.push(&user, Task { job, decided_by });
        self.start_ready();
    }

    fn start_ready(&mut self) {
        while self.running.len() < self.limits.workers {
            let Some((_, task)) = self.queue.pop() else {
                return;
            };
            let cancel = Cancel::new();
            let id = task.job.job_id;
            self.running.insert(id, cancel.clone());
            let (dir, cdm, site_id) = (
                self.dir.clone(),
                Arc::clone(&self.cdm),
                self.site_id.clone(),
            );
            let limit = self.limits.time_limit;
            let threads = self.threads_per_job();
            let stopping = Arc::clone(&self.stopping);
            let handle = self.tasks.spawn(async move {
                let token = cancel.clone();
                let mut work = tokio::task::spawn_blocking(move || {
                    let run = Run {
                        cancel: token,
                        limit,
                        threads,
                        stopping,
                    };
                    run_job(&dir, &*cdm, &site_id, &task.job, task.decided_by, run)
                });
                let joined = tokio::select! {
                    r = &mut work => r,
                    () = tokio::time::sleep(limit) => {
                        cancel.cancel();
                        work.await
                    }
                };
                let r = joined
                    .map_err(|e| anyhow::anyhow!("job {id}: the execution thread died: {e}"))
                    .and_then(|r| r);
                (id, r)
            });
            self.ids.insert(handle.id(), id);
        }
    }

    /// Threads of each job's computation: the cores shared between the workers.
    fn threads_per_job(&self) -> usize {
        let cores = std::thread::available_parallelism().map_or(1, usize::from);
        (cores / self.limits.workers).max(1)
    }

    /// The next job to finish (pending while none runs); starts the next waiting one.
    pub async fn next_done(&mut self) -> Finished {
        loop {
            let Some(joined) = self.tasks.join_next_with_id().await else {
                return std::future::pending().await;
            };
            let (task, finished) = match joined {
                Ok((task, finished)) => (task, finished),
                Err(e) => {
                    let Some(id) = self.ids.remove(&e.id()) else {
                        continue;
                    };
                    let r = Err(anyhow::anyhow!("job {id}: the worker task ended: {e}"));
                    (e.id(), (id, r))
                }
            };
            self.ids.remove(&task);
            self.running.remove(&finished.0);
            self.start_ready();
            return finished;
        }
    }
}

impl Drop for Pool {
    /// Stops the running computations (their jobs are offered again by the hub).
    fn drop(&mut self) {
        self.stopping.store(true, Ordering::Relaxed);
        for c in self.running.values() {
            c.cancel();
        }
    }
}

/// How one job's cohort is computed.
#[derive(Clone, Debug)]
pub struct Run {
    /// Cancelled by the pool at the time limit.
    pub cancel: Cancel,
    /// The time limit (for the audit).
    pub limit: Duration,
    /// Threads of the computation.
    pub threads: usize,
    /// Set when the site stops (a cancellation then is not a timeout).
    pub stopping: Arc<AtomicBool>,
}

/// Runs one approved job on this thread: the cohort on `run.threads` threads of its own, under
/// `run.cancel`, then admission, release and the journal under the data directory's lock. A
/// cancelled computation is admitted (charged) like any job, then journaled and audited as
/// `failed: timeout`.
pub fn run_job(
    dir: &SiteDir,
    cdm: &dyn SiteCdm,
    site_id: &SiteId,
    job: &Job,
    decided_by: Actor,
    run: Run,
) -> anyhow::Result<JournalEntry> {
    if let Some(done) = Journal::new(dir).get(&job.job_id)? {
        return Ok(done);
    }
    // Admission first: a job refused before its cohort is needed costs no computation.
    if !crate::run::needs_cohort(dir, cdm, site_id, job)? {
        return crate::run::compute_and_journal(
            dir,
            cdm,
            site_id,
            job,
            decided_by,
            &mut |cdm, d| {
                // Admitted after all (a steward raised a budget meanwhile): computed now, under the
                // lock.
                cdm.run(d, Some(run.cancel.clone()))
            },
        );
    }
    let started = std::time::Instant::now();
    let limit = run.limit;
    let stopping = Arc::clone(&run.stopping);
    let threads = rayon::ThreadPoolBuilder::new()
        .num_threads(run.threads.max(1))
        .thread_name(|i| format!("qiao-job-{i}"))
        .build()?;
    let cancel = run.cancel;
    // Whether a job ends in time can depend on the data, so a timeout is an answer too: it
    // goes through admission like any other (the job's charge is spent, or it is refused when a
    // budget cannot pay it), and nothing else is released.
    let timed = |r: Result<CohortRun, ExecError>| match r {
        Err(ExecError::Cancelled(_)) => Err(ExecError::Cancelled(format!(
            "stopped after {:.1} s at this site's time limit of {} s; charged, nothing released",
            started.elapsed().as_secs_f64(),
            limit.as_secs_f64()
        ))),
        other => other,
    };
    let run: Result<CohortRun, ExecError> = threads.install(|| {
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            cdm.run(&job.definition, Some(cancel.clone()))
        }))
        .unwrap_or_else(|_| Err(ExecError::Internal("the cohort engine panicked".into())))
    });
    if matches!(run, Err(ExecError::Cancelled(_))) && stopping.load(Ordering::Relaxed) {
        anyhow::bail!("job {}: stopped, the site is shutting down", job.job_id)
    }
    let mut run = Some(timed(run));
    crate::run::compute_and_journal(dir, cdm, site_id, job, decided_by, &mut |cdm, def| {
        // The job's own cohort was computed above; an analysis's other cohorts (comparator,
        // outcome) are computed here, under the same token: the time limit covers the job.
        match (def == &job.definition, run.take()) {
            (true, Some(r)) => r,
            (_, r) => {
                run = r;
                timed(cdm.run(def, Some(cancel.clone())))
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_user_served_least_recently_goes_first() {
        let mut q = FairQueue::default();
        q.push("mallory", 1);
        assert_eq!(q.pop(), Some(("mallory".into(), 1)));
        // Mallory was served; her next jobs arrive before Alice's and Bob's.
        q.push("mallory", 2);
        q.push("mallory", 3);
        q.push("alice", 10);
        q.push("mallory", 4);
        q.push("bob", 20);
        q.push("alice", 11);
        assert_eq!(q.len(), 6);
        let order: Vec<i32> = std::iter::from_fn(|| q.pop().map(|(_, x)| x)).collect();
        // Never-served users first, in arrival order; then round by round.
        assert_eq!(order, [10, 20, 2, 11, 3, 4]);
        assert!(q.is_empty());
    }

    #[test]
    fn one_user_alone_is_served_in_arrival_order() {
        let mut q = FairQueue::default();
        for i in 0..5 {
            q.push("alice", i);
        }
        assert!(q.any(|x| *x == 3));
        let order: Vec<i32> = std::iter::from_fn(|| q.pop().map(|(_, x)| x)).collect();
        assert_eq!(order, [0, 1, 2, 3, 4]);
    }
}
