//! The durable job queue's runtime.
//!
//! Jobs live in the database (`casebridge_store::jobs`): they are enqueued in the caller's
//! transaction, so accepted work is never lost. A [`Worker`] claims runnable jobs of one queue with
//! a lease, runs at most `concurrency` of them at once, keeps long jobs' leases alive, and records
//! the outcome: done (deleted), retried at a time its kind's [`RetryPolicy`] chooses, or dead
//! (kept for inspection). A worker that crashes leaves its jobs leased; when the lease expires,
//! another worker runs them again, so handlers must be idempotent (at-least-once).
//!
//! Several workers (in one process or many, on one PostgreSQL database) can serve the same queue;
//! the store's claim guarantees that a job is held by one of them at a time.
//!
//! An idle worker does not wait for a poll: it awaits the store's wake-ups
//! ([`casebridge_store::Store::job_wakeups`]), which fire when a transaction that enqueued a job
//! commits (and, on PostgreSQL, when another process's does), and sleeps at most until the next
//! job falls due or a lease ends. The poll interval is only a fallback.
//!
//! Succession: a running worker that ends a job while it has an idle slot claims, in the
//! transaction that ends it, the job that takes its place (the next job of its ordering key, or
//! the oldest job blocked on the concurrency slot it frees; `casebridge_store::jobs::Take`) and
//! runs it next on the same slot, with no separate claim. With every slot busy it hands the job
//! off as before, so jobs already waiting for a worker are not overtaken. A handler that ends
//! its own job ([`Handler::completes_itself`]) takes part through [`successor_take`] and
//! [`hand_successor`].

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use casebridge_domain::clock::Clock;
use casebridge_domain::ids::JobId;
use casebridge_domain::jobs::Job;
use casebridge_domain::retry::{RetryDecision, RetryPolicy};
use casebridge_store::{jobs, Store};
use rand::Rng;
use tokio::sync::{Notify, Semaphore};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn, Instrument};

tokio::task_local! {
    static SUCCESSION: Succession;
}

/// What a handler run by [`Worker::run`] may claim for its slot's next job (see the module docs).
#[derive(Clone)]
struct Succession {
    inner: Arc<Inner>,
    permits: Arc<Semaphore>,
    shutdown: CancellationToken,
    handed: Arc<Mutex<Option<Job>>>,
}

impl Succession {
    fn take(&self, now: jiff::Timestamp) -> Option<jobs::Take> {
        // A busy worker leaves the successor to the next claim, behind jobs that already wait
        // for a worker; a stopping one claims nothing new.
        (self.permits.available_permits() > 0 && !self.shutdown.is_cancelled()).then_some(
            jobs::Take {
                lease: self.inner.config.lease,
                now,
            },
        )
    }

    fn hand(&self, job: Job) {
        // In flight from now on, so a shutdown that stops before it runs gives it back.
        self.inner
            .in_flight
            .lock()
            .expect("in-flight lock")
            .insert(job.id, job.clone());
        *self.handed.lock().expect("successor lock") = Some(job);
    }
}

/// For a handler that ends its own job ([`Handler::completes_itself`]): the
/// [`jobs::Take`] to pass to `jobs::complete_in_taking` (or `complete_in_after`) at `now`, or
/// `None` when the job does
/// not run under [`Worker::run`], the worker is stopping, or all its slots are busy.
pub fn successor_take(now: jiff::Timestamp) -> Option<jobs::Take> {
    SUCCESSION.try_with(|s| s.take(now)).ok().flatten()
}

/// Gives the worker the job that such a completion claimed, once its transaction has
/// committed: the worker runs it next on the same slot. Call it for every job taken under
/// [`successor_take`] (a job taken and not handed waits for its lease to expire).
pub fn hand_successor(job: Job) {
    if let Err(e) = SUCCESSION.try_with(|s| s.hand(job.clone())) {
        warn!(job.id = %job.id, error = %e, "a successor was taken outside a worker's run");
    }
}

/// Why an attempt failed.
#[derive(Debug, thiserror::Error)]
pub enum JobError {
    /// Worth trying again (timeouts, 5xx, 429). `retry_after` can only lengthen the delay.
    #[error("{error}")]
    Retry {
        error: String,
        retry_after: Option<Duration>,
    },
    /// Trying again cannot help (bad configuration, rejected input): dead letter now.
    #[error("{0}")]
    Permanent(String),
}

impl JobError {
    pub fn retry(error: impl Into<String>) -> Self {
        JobError::Retry {
            error: error.into(),
            retry_after: None,
        }
    }
}

/// Runs jobs of one kind. Must be idempotent: a job can run more than once.
#[async_trait]
pub trait Handler: Send + Sync + 'static {
    async fn run(&self, job: &Job) -> Result<(), JobError>;

    /// Whether `run` ends the job itself when it succeeds, with
    /// `casebridge_store::jobs::complete_in` in the transaction that records its work: the work
    /// and the job's end then commit together, one commit fewer per job. Such a handler must do
    /// so on every path that returns `Ok`; the worker then only counts the outcome. Failures are
    /// still the worker's to record (retry or dead letter).
    fn completes_itself(&self) -> bool {
        false
    }

    /// Called once after the job was dead-lettered (retries spent or a permanent error), so the
    /// record the job works on can say so. Best effort: errors are the handler's to log.
    async fn on_dead(&self, _job: &Job, _error: &str) {}
}

/// The handlers of a queue, by job kind, each with its retry policy.
#[derive(Default, Clone)]
pub struct Registry {
    handlers: HashMap<String, (Arc<dyn Handler>, RetryPolicy)>,
}

impl Registry {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn register(
        mut self,
        kind: impl Into<String>,
        handler: impl Handler,
        policy: RetryPolicy,
    ) -> Self {
        self.handlers
            .insert(kind.into(), (Arc::new(handler), policy));
        self
    }
}

#[derive(Debug, Clone)]
pub struct WorkerConfig {
    pub queue: String,
    /// Jobs run at once by this worker.
    pub concurrency: usize,
    /// How long a claim holds a job before another worker may take it. Renewed every third of
    /// this while the job runs.
    pub lease: Duration,
    /// The longest an idle worker waits before looking again. A fallback: it also wakes when a
    /// job is enqueued (the store's wake-ups, [`Worker::notifier`]) and when the next job it
    /// knows of falls due.
    pub poll_interval: Duration,
    /// How long shutdown waits for running jobs before giving them back.
    pub shutdown_grace: Duration,
}

impl WorkerConfig {
    pub fn new(queue: impl Into<String>) -> Self {
        Self {
            queue: queue.into(),
            concurrency: 16,
            lease: Duration::from_secs(60),
            poll_interval: Duration::from_secs(1),
            shutdown_grace: Duration::from_secs(20),
        }
    }
}

/// Serves one queue.
#[derive(Clone)]
pub struct Worker {
    inner: Arc<Inner>,
}

struct Inner {
    store: Store,
    clock: Arc<dyn Clock>,
    registry: Registry,
    config: WorkerConfig,
    notify: Arc<Notify>,
    in_flight: Mutex<HashMap<JobId, Job>>,
}

impl Worker {
    pub fn new(
        store: Store,
        clock: Arc<dyn Clock>,
        registry: Registry,
        config: WorkerConfig,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                store,
                clock,
                registry,
                config,
                notify: Arc::new(Notify::new()),
                in_flight: Mutex::new(HashMap::new()),
            }),
        }
    }

    /// Wakes an idle worker at once, e.g. after enqueueing in this process.
    pub fn notifier(&self) -> Arc<Notify> {
        self.inner.notify.clone()
    }

    /// Claims and runs jobs until `shutdown` is cancelled; then stops claiming, waits up to the
    /// grace period for running jobs, and gives back (releases) those still running.
    pub async fn run(self, shutdown: CancellationToken) {
        let cfg = &self.inner.config;
        let permits = Arc::new(Semaphore::new(cfg.concurrency));
        let mut tasks = JoinSet::new();
        let mut failures = 0u32;
        let mut wakeups = self.inner.store.job_wakeups();
        info!(queue = %cfg.queue, concurrency = cfg.concurrency, "worker started");
        while !shutdown.is_cancelled() {
            while tasks.try_join_next().is_some() {}
            let free = permits.available_permits();
            if free == 0 {
                tokio::select! {
                    _ = tasks.join_next() => {}
                    _ = shutdown.cancelled() => break,
                }
                continue;
            }
            let now = self.inner.clock.now();
            // Wake-ups from here on are kept: a job committed while this claim runs wakes the
            // wait below at once.
            wakeups.mark_seen();
            let claimed =
                jobs::claim(&self.inner.store, &cfg.queue, free as u32, cfg.lease, now).await;
            let claimed = match claimed {
                Ok(c) => {
                    failures = 0;
                    c
                }
                Err(e) => {
                    failures += 1;
                    let wait = cfg.poll_interval * failures.min(10);
                    error!(queue = %cfg.queue, error = %e, "claiming jobs failed; will retry");
                    tokio::select! {
                        _ = tokio::time::sleep(wait) => {}
                        _ = shutdown.cancelled() => break,
                    }
                    continue;
                }
            };
            if claimed.is_empty() {
                // Nothing runnable now. Look again when a job is enqueued (wake-ups), when the
                // next known job falls due, as soon as a running job ends (its end may hand its
                // key to the next job), or after the poll interval at the latest.
                let wait = self.idle_wait().await;
                tokio::select! {
                    _ = tokio::time::sleep(wait) => {}
                    _ = wakeups.changed() => {}
                    _ = self.inner.notify.notified() => {}
                    Some(_) = tasks.join_next(), if !tasks.is_empty() => {}
                    _ = shutdown.cancelled() => break,
                }
                continue;
            }
            for job in claimed {
                let permit = permits
                    .clone()
                    .acquire_owned()
                    .await
                    .expect("semaphore never closed");
                let this = self.clone();
                let succession = Succession {
                    inner: self.inner.clone(),
                    permits: permits.clone(),
                    shutdown: shutdown.clone(),
                    handed: Arc::default(),
                };
                tasks.spawn(async move {
                    let mut next = Some(job);
                    while let Some(job) = next {
                        next = this.execute(job, Some(&succession)).await;
                        // A successor not run (shutdown) stays in flight: `stop` gives it back.
                        if succession.shutdown.is_cancelled() {
                            break;
                        }
                    }
                    drop(permit);
                });
            }
        }
        self.stop(tasks).await;
    }

    /// How long an idle worker may sleep: until the queue's next due time, capped by the poll
    /// interval (which is also the answer when that time cannot be read or has passed, e.g. a
    /// due job another process holds).
    async fn idle_wait(&self) -> Duration {
        let poll = self.inner.config.poll_interval;
        let next = match self.inner.store.conn().await {
            Ok(mut conn) => jobs::next_due(&mut conn, &self.inner.config.queue).await,
            Err(e) => Err(e),
        };
        let Ok(Some(at)) = next else {
            return poll;
        };
        let now = self.inner.clock.now();
        if at <= now {
            return poll;
        }
        let until = Duration::try_from(at.duration_since(now)).unwrap_or(poll);
        // A millisecond late rather than early: times are stored in whole milliseconds.
        (until + Duration::from_millis(1)).min(poll)
    }

    async fn stop(&self, mut tasks: JoinSet<()>) {
        let cfg = &self.inner.config;
        let grace = tokio::time::sleep(cfg.shutdown_grace);
        tokio::pin!(grace);
        loop {
            tokio::select! {
                next = tasks.join_next() => if next.is_none() { break },
                _ = &mut grace => {
                    tasks.abort_all();
                    while tasks.join_next().await.is_some() {}
                    break;
                }
            }
        }
        let left: Vec<Job> = self
            .inner
            .in_flight
            .lock()
            .expect("in-flight lock")
            .drain()
            .map(|(_, j)| j)
            .collect();
        for job in left {
            match jobs::release(&self.inner.store, &job, self.inner.clock.now()).await {
                Ok(_) => info!(job.id = %job.id, "released unfinished job at shutdown"),
                Err(e) => warn!(job.id = %job.id, error = %e,
                    "could not release job; it runs again when its lease expires"),
            }
        }
        info!(queue = %cfg.queue, "worker stopped");
    }

    /// Claims once and runs what it got to completion. Returns how many jobs ran.
    pub async fn run_once(&self) -> Result<usize, casebridge_store::StoreError> {
        let cfg = &self.inner.config;
        let claimed = jobs::claim(
            &self.inner.store,
            &cfg.queue,
            cfg.concurrency as u32,
            cfg.lease,
            self.inner.clock.now(),
        )
        .await?;
        let n = claimed.len();
        futures::future::join_all(claimed.into_iter().map(|j| self.execute(j, None))).await;
        Ok(n)
    }

    /// Runs jobs until none is runnable at the clock's current time (for tests and tools).
    pub async fn drain(&self) -> Result<usize, casebridge_store::StoreError> {
        let mut total = 0;
        loop {
            let n = self.run_once().await?;
            if n == 0 {
                return Ok(total);
            }
            total += n;
        }
    }

    /// Runs one job and records its outcome; returns its successor when `succession` (only
    /// under [`Worker::run`]) claimed one.
    async fn execute(&self, job: Job, succession: Option<&Succession>) -> Option<Job> {
        let span = tracing::info_span!("job", job.id = %job.id, job.kind = %job.kind,
            company.id = ?job.company_id.map(|c| c.to_string()), attempt = job.attempts);
        self.inner
            .in_flight
            .lock()
            .expect("in-flight lock")
            .insert(job.id, job.clone());
        self.execute_inner(&job, succession).instrument(span).await;
        self.inner
            .in_flight
            .lock()
            .expect("in-flight lock")
            .remove(&job.id);
        succession.and_then(|s| s.handed.lock().expect("successor lock").take())
    }

    async fn execute_inner(&self, job: &Job, succession: Option<&Succession>) {
        let inner = &self.inner;
        let queue = inner.config.queue.clone();
        let started = std::time::Instant::now();
        let Some((handler, policy)) = inner.registry.handlers.get(&job.kind).cloned() else {
            let msg = format!("no handler for job kind `{}`", job.kind);
            error!("{msg}");
            self.record(job, "dead", started);
            let _ = jobs::bury(&inner.store, job, inner.clock.now(), &msg).await;
            return;
        };

        // Keep the lease alive while the handler runs; run the handler in its own task so a
        // panic becomes a failed attempt instead of taking the worker down. Both tasks are
        // aborted when this future is dropped (shutdown past its grace period), so a released
        // job is never still running here while another worker takes it.
        let mut heartbeat = AbortOnDrop(self.heartbeat(job.clone()));
        let handler_dead = handler.clone();
        let mut run = AbortOnDrop({
            let job = job.clone();
            match succession.cloned() {
                Some(s) => {
                    tokio::spawn(SUCCESSION.scope(s, async move { handler.run(&job).await }))
                }
                None => tokio::spawn(async move { handler.run(&job).await }),
            }
        });
        let result = tokio::select! {
            r = &mut run.0 => match r {
                Ok(r) => r,
                Err(e) if e.is_panic() => Err(JobError::retry("the job handler panicked")),
                Err(_) => Err(JobError::retry("the job was cancelled")),
            },
            // The heartbeat ends only when the lease is lost: another worker may own the job
            // now, so this run stops rather than race it.
            _ = &mut heartbeat.0 => {
                warn!("lease lost while running; stopping this run");
                self.record(job, "lease_lost", started);
                return;
            }
        };
        drop(heartbeat);

        let now = inner.clock.now();
        let handler_for_dead = handler_dead;
        let result_error = match &result {
            Ok(()) => None,
            Err(e) => Some(e.to_string()),
        };
        let outcome = match result {
            Ok(()) if handler_for_dead.completes_itself() => Ok((true, "done")),
            Ok(()) => {
                let take = succession.and_then(|s| s.take(now));
                match jobs::complete_taking(&inner.store, job, take).await {
                    Ok(ended) => {
                        if let (Some(next), Some(s)) = (ended.next, succession) {
                            s.hand(next);
                        }
                        Ok((ended.held, "done"))
                    }
                    Err(e) => Err(e),
                }
            }
            Err(JobError::Permanent(msg)) => {
                warn!(error = %msg, "job failed permanently");
                jobs::bury(&inner.store, job, now, &msg)
                    .await
                    .map(|h| (h, "dead"))
            }
            Err(JobError::Retry { error, retry_after }) => {
                let first = job.first_attempt_at.unwrap_or(now);
                let random: f64 = rand::thread_rng().gen();
                match policy.decide(job.attempts, first, now, retry_after, random) {
                    RetryDecision::RetryAt(at) => {
                        warn!(error = %error, retry_at = %at, "job attempt failed; will retry");
                        jobs::retry(&inner.store, job, at, &error, now)
                            .await
                            .map(|h| (h, "retry"))
                    }
                    RetryDecision::GiveUp => {
                        warn!(error = %error, "job attempt failed; retries spent, dead letter");
                        jobs::bury(&inner.store, job, now, &error)
                            .await
                            .map(|h| (h, "dead"))
                    }
                }
            }
        };
        match outcome {
            Ok((true, "dead")) => {
                self.record(job, "dead", started);
                let error = match &result_error {
                    Some(e) => e.as_str(),
                    None => "dead-lettered",
                };
                handler_for_dead.on_dead(job, error).await;
            }
            Ok((true, label)) => self.record(job, label, started),
            Ok((false, _)) => {
                warn!("lease lost before the outcome was recorded; another worker owns the job");
                self.record(job, "lease_lost", started);
            }
            Err(e) => error!(error = %e, queue = %queue,
                "could not record the job outcome; it runs again when its lease expires"),
        }
    }

    /// Renews the lease every third of its length; returns only if the lease is lost.
    fn heartbeat(&self, job: Job) -> tokio::task::JoinHandle<()> {
        let this = self.clone();
        tokio::spawn(async move {
            let lease = this.inner.config.lease;
            let mut tick = tokio::time::interval(lease / 3);
            tick.tick().await;
            loop {
                tick.tick().await;
                let until = this
                    .inner
                    .clock
                    .now()
                    .checked_add(lease)
                    .unwrap_or(jiff::Timestamp::MAX);
                match jobs::extend(&this.inner.store, &job, until).await {
                    Ok(true) => {}
                    Ok(false) => {
                        warn!(job.id = %job.id, "lease lost while running");
                        return;
                    }
                    Err(e) => warn!(job.id = %job.id, error = %e, "could not extend lease"),
                }
            }
        })
    }
}

/// Aborts a spawned task when dropped.
struct AbortOnDrop<T>(tokio::task::JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl Worker {
    fn record(&self, job: &Job, outcome: &'static str, started: std::time::Instant) {
        let labels = [
            ("queue", self.inner.config.queue.clone()),
            ("kind", job.kind.clone()),
            ("outcome", outcome.to_owned()),
        ];
        metrics::counter!("casebridge_jobs_total", &labels).increment(1);
        metrics::histogram!("casebridge_job_duration_seconds", &labels)
            .record(started.elapsed().as_secs_f64());
    }
}
