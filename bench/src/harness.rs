//! The pieces every scenario shares, all built from the project's own crates: a fresh migrated
//! database (`casebridge_testkit::TestDb`), companies and webhooks created through
//! `casebridge_store`, events recorded with the webhook outbox (`record_event`), and the real
//! `webhooks` queue worker (`WebhookRuntime` + `casebridge_queue::Worker`). The Law Ruler
//! scenarios add the real API server and the `crm` worker (`server.rs`).

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use casebridge_crypto::{Keyring, MasterKey};
use casebridge_domain::clock::{Clock, SystemClock};
use casebridge_domain::company::NewCompany;
use casebridge_domain::events::{EventType, NewEvent, Subscription};
use casebridge_domain::ids::{CompanyId, EventId, WebhookId};
use casebridge_queue::{Worker, WorkerConfig};
use casebridge_store::webhooks::NewWebhook;
use casebridge_store::{companies, jobs, webhooks, Store, StoreOptions};
use casebridge_testkit::{TestBackend, TestDb};
use casebridge_webhooks::delivery::{secret_aad, WebhookRuntime, ATTEMPT_TIMEOUT};
use casebridge_webhooks::outbox::{record_event, QUEUE};
use casebridge_webhooks::policy::UrlPolicy;
use casebridge_webhooks::signing::SigningSecret;
use serde_json::json;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// The `max_in_flight` of the webhooks a scenario creates (`--max-in-flight`; the product's
/// default unless set).
static MAX_IN_FLIGHT: std::sync::OnceLock<u32> = std::sync::OnceLock::new();

/// Sets the `max_in_flight` of every webhook the scenarios create; once, before any.
pub fn set_max_in_flight(n: u32) {
    MAX_IN_FLIGHT.set(n).expect("set once");
}

pub fn max_in_flight() -> u32 {
    *MAX_IN_FLIGHT.get_or_init(|| casebridge_domain::events::DEFAULT_MAX_IN_FLIGHT)
}

/// Worker settings shared by every scenario (from the command line).
#[derive(Debug, Clone, Copy)]
pub struct WorkerOpts {
    pub concurrency: usize,
    pub poll_interval: Duration,
}

/// A fresh database with the store, keyring and clock the worker will use.
pub struct Bench {
    /// Kept alive for the run: dropping it deletes the SQLite file or drops the PostgreSQL
    /// database.
    db: TestDb,
    /// A pool with the production default size (16), on both backends (`TestDb`'s own
    /// PostgreSQL pool is capped at 8 for tests).
    pub store: Store,
    pub keyring: Keyring,
    pub clock: Arc<SystemClock>,
    /// A local object store in a temporary folder (removed with the bench).
    pub files: casebridge_files::Files,
    _files_dir: tempfile::TempDir,
}

impl Bench {
    pub async fn new(backend: TestBackend) -> anyhow::Result<Self> {
        let db = TestDb::new(backend).await;
        let store = Store::connect(&db.url, StoreOptions::default())
            .await
            .context("connect to the benchmark database")?;
        let files_dir = tempfile::tempdir().context("a folder for the object store")?;
        let files = casebridge_files::Files::open(&Default::default(), files_dir.path())?;
        Ok(Self {
            db,
            store,
            keyring: Keyring::new(MasterKey::generate(), vec![]),
            clock: Arc::new(SystemClock),
            files,
            _files_dir: files_dir,
        })
    }

    pub fn now(&self) -> jiff::Timestamp {
        self.clock.now()
    }

    pub async fn company(&self, name: &str) -> anyhow::Result<CompanyId> {
        let mut tx = self.store.begin().await?;
        let company =
            companies::create(&mut tx, &NewCompany::parse(name, None)?, self.now()).await?;
        tx.commit().await?;
        Ok(company.id)
    }

    /// Creates an active webhook subscribed to every event type, with a sealed signing secret.
    pub async fn webhook(&self, company: CompanyId, url: &str) -> anyhow::Result<WebhookId> {
        let id = WebhookId::new();
        let sealed = self.keyring.seal(
            &SigningSecret::generate().to_whsec(),
            &secret_aad(company, id),
        );
        let mut tx = self.store.begin().await?;
        webhooks::create(
            &mut tx,
            company,
            &NewWebhook {
                id,
                name: format!("bench {id}"),
                url: url.to_owned(),
                subscription: Subscription::default(),
                app_key_sealed: None,
                active: true,
                max_in_flight: max_in_flight(),
            },
            &sealed,
            self.now(),
        )
        .await?;
        tx.commit().await?;
        Ok(id)
    }

    /// Records `n` events, `batch` per transaction, printing progress now and then.
    pub async fn record_batched(
        &self,
        company: CompanyId,
        n: usize,
        batch: usize,
    ) -> anyhow::Result<Vec<EventId>> {
        let mut ids = Vec::with_capacity(n);
        let started = Instant::now();
        let mut last_print = Instant::now();
        while ids.len() < n {
            let take = batch.min(n - ids.len());
            let mut tx = self.store.begin().await?;
            for _ in 0..take {
                let e = record_event(&mut tx, company, &event(ids.len()), self.now()).await?;
                ids.push(e.id);
            }
            tx.commit().await?;
            if last_print.elapsed() >= Duration::from_secs(2) {
                progress(&format!(
                    "recorded {}/{n} events ({:.0}/s)",
                    ids.len(),
                    ids.len() as f64 / started.elapsed().as_secs_f64()
                ));
                last_print = Instant::now();
            }
        }
        Ok(ids)
    }

    /// Records `n` events one per transaction at `rate` per second, on a fixed schedule (a late
    /// event does not push the later ones back). Returns each event with the instant taken just
    /// before its transaction began.
    pub async fn record_paced(
        &self,
        company: CompanyId,
        n: usize,
        rate: f64,
    ) -> anyhow::Result<Vec<(EventId, Instant)>> {
        let start = tokio::time::Instant::now();
        let period = Duration::from_secs_f64(1.0 / rate);
        let mut out = Vec::with_capacity(n);
        for i in 0..n {
            tokio::time::sleep_until(start + period.mul_f64(i as f64)).await;
            let before = Instant::now();
            let mut tx = self.store.begin().await?;
            let e = record_event(&mut tx, company, &event(i), self.now()).await?;
            tx.commit().await?;
            out.push((e.id, before));
        }
        Ok(out)
    }

    /// Starts the `webhooks` queue worker, as `casebridge serve` runs it, but allowed to reach
    /// the loopback receiver over plain http.
    pub fn start_worker(&self, opts: WorkerOpts) -> anyhow::Result<RunningWorker> {
        let clock: Arc<dyn Clock> = self.clock.clone();
        let rt = WebhookRuntime::new(
            self.store.clone(),
            self.keyring.clone(),
            clock.clone(),
            UrlPolicy {
                allow_http: true,
                allowed_private: vec!["127.0.0.0/8".parse()?],
            },
            ATTEMPT_TIMEOUT,
        );
        let worker = Worker::new(
            self.store.clone(),
            clock,
            rt.registry(),
            WorkerConfig {
                concurrency: opts.concurrency,
                poll_interval: opts.poll_interval,
                // Short, so stopping after a run with hanging requests does not wait long.
                shutdown_grace: Duration::from_secs(1),
                ..WorkerConfig::new(QUEUE)
            },
        );
        let cancel = CancellationToken::new();
        let started = Instant::now();
        let handle = tokio::spawn(worker.run(cancel.clone()));
        Ok(RunningWorker::new(cancel, handle, started))
    }

    /// Jobs left in the table, by status (finished jobs are deleted).
    pub async fn job_counts(&self) -> anyhow::Result<Vec<(String, i64)>> {
        let mut conn = self.store.conn().await?;
        Ok(jobs::counts(&mut conn)
            .await?
            .into_iter()
            .map(|(_, status, n)| (status, n))
            .collect())
    }

    /// Jobs left in one queue, by status.
    pub async fn job_counts_in(&self, queue: &str) -> anyhow::Result<Vec<(String, i64)>> {
        let mut conn = self.store.conn().await?;
        Ok(jobs::counts(&mut conn)
            .await?
            .into_iter()
            .filter(|(q, _, _)| q == queue)
            .map(|(_, status, n)| (status, n))
            .collect())
    }

    pub async fn close(self) {
        self.store.close().await;
        self.db.store.close().await;
        drop(self.db);
    }
}

pub struct RunningWorker {
    cancel: CancellationToken,
    handle: JoinHandle<()>,
    /// Taken just before the worker task was spawned.
    pub started: Instant,
}

impl RunningWorker {
    pub fn new(cancel: CancellationToken, handle: JoinHandle<()>, started: Instant) -> Self {
        Self {
            cancel,
            handle,
            started,
        }
    }

    /// Stops claiming, gives running jobs a second, then releases the rest.
    pub async fn stop(self) {
        self.cancel.cancel();
        let _ = tokio::time::timeout(Duration::from_secs(10), self.handle).await;
    }
}

/// The event every scenario records: a small `call_started`, as the voice agent would report.
pub fn event(i: usize) -> NewEvent {
    NewEvent {
        event_type: EventType::CallStarted,
        data: json!({
            "call_id": format!("bench-call-{i}"),
            "direction": "inbound",
            "from_number": "+15550102000",
            "to_number": "+15550103000",
        }),
        campaign_id: None,
        case_id: None,
    }
}

/// This process's resident set size in MiB (`VmRSS` in `/proc/self/status`).
pub fn rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

/// CPU seconds (user + system) used so far by this process and by every PostgreSQL server
/// process on the machine (`/proc/<pid>/stat`, fields 14 and 15, in the kernel's `USER_HZ` =
/// 100 ticks per second): the service and its database, plus the bench's own client and
/// receiver, which the caller subtracts from a run of them alone.
pub fn cpu_s() -> (f64, f64) {
    fn ticks(stat: &str) -> Option<(String, f64)> {
        // `pid (comm) state ...`: comm may hold spaces, so split after its closing parenthesis.
        let open = stat.find('(')?;
        let close = stat.rfind(')')?;
        let comm = stat[open + 1..close].to_owned();
        let rest: Vec<&str> = stat[close + 2..].split_whitespace().collect();
        // rest[0] is field 3 (state): utime is field 14, stime 15.
        let utime: f64 = rest.get(11)?.parse().ok()?;
        let stime: f64 = rest.get(12)?.parse().ok()?;
        Some((comm, (utime + stime) / 100.0))
    }
    let own = std::fs::read_to_string("/proc/self/stat")
        .ok()
        .and_then(|s| ticks(&s))
        .map_or(f64::NAN, |(_, t)| t);
    let mut postgres = 0.0;
    if let Ok(dir) = std::fs::read_dir("/proc") {
        for entry in dir.flatten() {
            let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
                continue;
            };
            if let Some((comm, t)) = ticks(&stat) {
                if comm == "postgres" {
                    postgres += t;
                }
            }
        }
    }
    (own, postgres)
}

/// The machine's 1-minute load average (`/proc/loadavg`): how busy the other processes on this
/// shared machine were when a run started.
pub fn loadavg() -> f64 {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next().and_then(|v| v.parse().ok()))
        .unwrap_or(f64::NAN)
}

/// A progress line on stderr, so stdout keeps only the tables.
pub fn progress(msg: &str) {
    eprintln!("  .. {msg}");
}
