//! What every CRM's pull shares (LR13, SA4): when a company is pulled and how a pull job is
//! queued, retried and logged. Each CRM's `pull` module says what a pull reads and applies; a
//! [`PullSchedule`] (provider, job kind, name) gives it the rest:
//!
//! - [`PullSchedule::enqueue`] adds a pull job only when the company has no pull waiting (a
//!   running one does not count: it may have read its cursors already); its ordering key
//!   `<provider>-pull/<company>` makes a company's pulls run one at a time, so two pulls never
//!   race on the cursors. The on-demand pull (`POST /integrations/{provider}/pull`) and the
//!   scheduler both go through it.
//! - [`PullSchedule::schedule_due`] enqueues a pull for every connected integration with
//!   "Receive data" in effect that is due: in real time, when its last pull is at least the
//!   CRM's interval old, or it never pulled; hourly or daily, when its next run
//!   (`integrations.next_run_at`) has come, which then moves on by whole intervals
//!   (`Frequency::next_run`), so runs keep their cadence;
//!   [`PullSchedule::run_loop`] calls it every twelfth of the interval (between 1 s and 5
//!   minutes), one loop per CRM per process that runs workers.
//! - [`retry_policy`]: 30 s doubling up to 15 minutes, [`MAX_ATTEMPTS`] in all; a pull gives up
//!   on its last attempt itself (until the next scheduled pull), so only database failures can
//!   dead-letter one.

use std::sync::Arc;
use std::time::Duration;

use casebridge_domain::clock::Clock;
use casebridge_domain::ids::{CompanyId, JobId};
use casebridge_domain::integrations::{ErrorKind, SyncOutcome, Toggles};
use casebridge_domain::jobs::NewJob;
use casebridge_domain::retry::{Backoff, RetryPolicy};
use casebridge_store::integrations::{self, Integration, NewSyncEntry};
use casebridge_store::{activity, jobs, Store, StoreError, Tx};
use jiff::Timestamp;
use serde_json::json;
use tokio_util::sync::CancellationToken;

/// Attempts of one pull before it gives up until the next scheduled pull.
pub const MAX_ATTEMPTS: u32 = 6;
/// The longest wait between two looks of [`PullSchedule::run_loop`].
const MAX_TICK: Duration = Duration::from_secs(300);

/// One CRM's pull job: its provider slug, job kind (on the `crm` queue) and name for logs.
#[derive(Debug, Clone, Copy)]
pub struct PullSchedule {
    pub provider: &'static str,
    pub kind: &'static str,
    pub name: &'static str,
}

impl PullSchedule {
    /// The ordering key of a company's pulls.
    pub fn ordering_key(&self, company: CompanyId) -> String {
        format!("{}-pull/{company}", self.provider)
    }

    /// Enqueues a pull for `company` in the caller's transaction, unless one is already waiting
    /// (pending, including one waiting for a retry) or the company has no integration of this
    /// CRM. Returns the new job's id. The integration row is read locked (on PostgreSQL; SQLite
    /// write transactions are serial), so two callers cannot both see no pull waiting and both
    /// add one.
    pub async fn enqueue(
        &self,
        tx: &mut Tx,
        company: CompanyId,
        now: Timestamp,
    ) -> Result<Option<JobId>, StoreError> {
        if integrations::get_for_update(tx, company, self.provider)
            .await?
            .is_none()
        {
            return Ok(None);
        }
        if !activity::pending_jobs(tx, company, self.kind)
            .await?
            .is_empty()
        {
            return Ok(None);
        }
        let id = jobs::enqueue(
            tx,
            &NewJob::new(crate::connector::QUEUE, self.kind, json!({}))
                .company(company)
                .ordering_key(self.ordering_key(company)),
            now,
        )
        .await?;
        Ok(Some(id))
    }

    /// Enqueues a pull for every connected integration with "Receive data" in effect that is
    /// due: in real time, when its last pull is at least `interval` old (or it never pulled);
    /// hourly or daily, when its next run has come (the run's anchor then moves to the next
    /// one, in the same transaction). Returns the companies a pull was enqueued for (not those
    /// that already had one waiting).
    pub async fn schedule_due(
        &self,
        store: &Store,
        clock: &dyn Clock,
        interval: Duration,
    ) -> Result<Vec<CompanyId>, StoreError> {
        let now = clock.now();
        let mut due_now = Vec::new();
        {
            let mut conn = store.conn().await?;
            for company in integrations::connected(&mut conn, self.provider).await? {
                if let Some(i) = integrations::get(&mut conn, company, self.provider).await? {
                    if due(&i, now, interval) {
                        due_now.push(company);
                    }
                }
            }
        }
        let mut enqueued = Vec::new();
        for company in due_now {
            let mut tx = store.begin().await?;
            // Read again, locked: a "run now" or a new frequency may have moved the run.
            let Some(i) = integrations::get_for_update(&mut tx, company, self.provider).await?
            else {
                continue;
            };
            if !due(&i, now, interval) {
                continue;
            }
            let added = self.enqueue(&mut tx, company, now).await?;
            let frequency = Toggles::from_settings(&i.settings).frequency;
            if let Some(next) = frequency.next_run(i.next_run_at, now) {
                integrations::set_next_run_at(&mut tx, company, self.provider, Some(next), now)
                    .await?;
            }
            tx.commit().await?;
            if added.is_some() {
                enqueued.push(company);
            }
        }
        Ok(enqueued)
    }

    /// Runs [`PullSchedule::schedule_due`] now and then every twelfth of `interval` (at most
    /// every 5 minutes) until `shutdown` is cancelled. A failing look is logged and tried again
    /// at the next tick. Several loops on one database are harmless (a company never gets a
    /// second waiting pull).
    pub async fn run_loop(
        self,
        store: Store,
        clock: Arc<dyn Clock>,
        interval: Duration,
        shutdown: CancellationToken,
    ) {
        let every = tick(interval);
        let provider = self.provider;
        tracing::info!(
            provider,
            interval_secs = interval.as_secs(),
            "{} pull scheduler started",
            self.name
        );
        while !shutdown.is_cancelled() {
            match self.schedule_due(&store, clock.as_ref(), interval).await {
                Ok(enqueued) if !enqueued.is_empty() => {
                    tracing::info!(
                        provider,
                        count = enqueued.len(),
                        "{} pulls enqueued",
                        self.name
                    );
                }
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(provider, error = %e,
                        "scheduling {} pulls failed; trying again at the next tick", self.name);
                }
            }
            tokio::select! {
                biased;
                _ = shutdown.cancelled() => break,
                _ = tokio::time::sleep(every) => {}
            }
        }
        tracing::info!(provider, "{} pull scheduler stopped", self.name);
    }

    /// Writes one sync-log line of a pull (direction `inbound`, operation `pull`) in a
    /// transaction of its own.
    #[allow(clippy::too_many_arguments)]
    pub async fn log(
        &self,
        store: &Store,
        company: CompanyId,
        record_ref: Option<&str>,
        outcome: SyncOutcome,
        error_kind: Option<ErrorKind>,
        message: &str,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        let mut tx = store.begin().await?;
        integrations::log(
            &mut tx,
            company,
            self.provider,
            &entry(record_ref, outcome, error_kind, message),
            now,
        )
        .await?;
        tx.commit().await
    }
}

/// A pull's sync-log line.
/// What a dead-lettered pull job leaves on its integration (only database failures get that
/// far; a CRM's failures are settled by its handler): the error, as the last pull's outcome.
pub(crate) async fn record_dead(
    store: &Store,
    clock: &dyn Clock,
    provider: &str,
    job: &casebridge_domain::jobs::Job,
    error: &str,
) {
    let Some(company) = job.company_id else {
        return;
    };
    let result = async {
        let mut tx = store.begin().await?;
        integrations::record_pull(
            &mut tx,
            company,
            provider,
            None,
            None,
            Some(error),
            clock.now(),
        )
        .await?;
        tx.commit().await
    }
    .await;
    if let Err(e) = result {
        tracing::error!(company.id = %company, error = %e, "could not record the failed pull");
    }
}

/// How a pull failed, for [`log_failure`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FailureClass {
    /// Worth retrying (a 429, a 5xx, a timeout).
    Transient,
    /// The connection is misconfigured (credentials, permissions).
    Configuration,
    /// Anything else (the CRM answered something unreadable).
    Other,
}

/// Logs a failed pull in the caller's transaction. A transient failure gets a line on its
/// first attempt ("retrying") and its last ("giving up until the next scheduled pull"), none in
/// between; a configuration error is recorded on the integration and logged when it is new;
/// anything else is logged every time. `prefix` says what the pull did before it failed.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn log_failure(
    tx: &mut Tx,
    company: CompanyId,
    provider: &str,
    class: FailureClass,
    attempts: u32,
    prefix: &str,
    msg: &str,
    now: Timestamp,
) -> Result<(), StoreError> {
    let line: Option<(String, ErrorKind)> = match class {
        FailureClass::Transient if attempts >= MAX_ATTEMPTS => Some((
            format!("{prefix}: {msg}; giving up until the next scheduled pull"),
            ErrorKind::Transient,
        )),
        FailureClass::Transient if attempts <= 1 => {
            Some((format!("{prefix}: {msg}; retrying"), ErrorKind::Transient))
        }
        FailureClass::Transient => None,
        FailureClass::Configuration => {
            let current = integrations::get(tx, company, provider)
                .await?
                .and_then(|i| i.config_error);
            integrations::set_config_error(tx, company, provider, Some(msg), now).await?;
            (current.as_deref() != Some(msg)).then(|| {
                (
                    format!("{prefix}: {msg}; fix the connection (pulls try again as scheduled)"),
                    ErrorKind::Configuration,
                )
            })
        }
        FailureClass::Other => Some((format!("{prefix}: {msg}"), ErrorKind::Configuration)),
    };
    if let Some((message, kind)) = line {
        integrations::log(
            tx,
            company,
            provider,
            &entry(None, SyncOutcome::Error, Some(kind), &message),
            now,
        )
        .await?;
    }
    Ok(())
}

pub fn entry<'a>(
    record_ref: Option<&'a str>,
    outcome: SyncOutcome,
    error_kind: Option<ErrorKind>,
    message: &'a str,
) -> NewSyncEntry<'a> {
    NewSyncEntry {
        direction: "inbound",
        operation: "pull",
        record_ref,
        outcome,
        error_kind,
        message: Some(message),
    }
}

pub(crate) fn older_than(at: Option<Timestamp>, now: Timestamp, interval: Duration) -> bool {
    let interval_ms = i64::try_from(interval.as_millis()).unwrap_or(i64::MAX);
    at.is_none_or(|t| now.as_millisecond() - t.as_millisecond() >= interval_ms)
}

/// Whether `i` should be pulled now: connected, "Receive data" in effect, and due: in real
/// time, not pulled (or tried) within `interval`; hourly or daily, its next run has come (or it
/// has none yet).
fn due(i: &Integration, now: Timestamp, interval: Duration) -> bool {
    let t = Toggles::from_settings(&i.settings);
    i.credentials_sealed.is_some()
        && t.gates().receive
        && match t.frequency.interval() {
            None => older_than(i.last_pull_at, now, interval),
            Some(_) => i.next_run_at.is_none_or(|at| at <= now),
        }
}

/// How often [`PullSchedule::run_loop`] looks: a twelfth of the interval, between 1 s and 5
/// minutes, so an integration is pulled at most that long after it is due.
pub(crate) fn tick(interval: Duration) -> Duration {
    (interval / 12).clamp(Duration::from_secs(1), MAX_TICK)
}

/// How pulls are retried: 30 s doubling up to 15 minutes, [`MAX_ATTEMPTS`] in all.
pub fn retry_policy() -> RetryPolicy {
    RetryPolicy {
        backoff: Backoff::Exponential {
            initial: Duration::from_secs(30),
            factor: 2.0,
            max: Duration::from_secs(900),
        },
        jitter: 0.2,
        max_attempts: MAX_ATTEMPTS,
        window: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    #[test]
    fn due_after_the_interval_or_never_pulled() {
        let hour = Duration::from_secs(3600);
        let now = t("2025-01-15T12:00:00Z");
        assert!(older_than(None, now, hour));
        assert!(older_than(Some(t("2025-01-15T11:00:00Z")), now, hour));
        assert!(!older_than(Some(t("2025-01-15T11:00:01Z")), now, hour));
        assert_eq!(tick(hour), Duration::from_secs(300));
        assert_eq!(tick(Duration::from_secs(60)), Duration::from_secs(5));
        assert_eq!(tick(Duration::from_millis(10)), Duration::from_secs(1));
    }
}
