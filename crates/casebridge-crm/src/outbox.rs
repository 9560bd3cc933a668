//! The CRM outbox, provider-neutral: how an operation is recorded (pending with its job, or
//! held), retried, resumed, requeued after a configuration error, and settled with its sync-log
//! line. Each CRM's outbound module names itself with an [`Outbox`] and keeps only what is its
//! own: which platform changes become which operations, and how one is sent.
//!
//! Jobs are ordered per CRM record (`<provider>/<company>/<record>`), at most
//! [`CONNECTION_CONCURRENCY`] run at once per connection.
//!
//! Frequency (SYNC1): with an hourly or daily frequency a new operation is recorded and queued
//! at once, as always, but its job is not due until the integration's next run
//! (`Frequency::next_run`; the operation's `batched_until` says so).
//! [`Outbox::release_batched`] brings such jobs forward ("run now", a change of frequency). A
//! retry, a replayed held status change and a requeue after a reconnect go at once (a requeued
//! job that was waiting for a run keeps its time).

use crate::counters;
use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::Mutex;
use std::time::Duration;

use casebridge_domain::clock::Clock;
use casebridge_domain::crm_ops::{OpAction, OpKind, OpState, ResumeMode};
use casebridge_domain::ids::{CaseId, CompanyId};
use casebridge_domain::integrations::{ErrorKind, SyncOutcome, Toggles};
use casebridge_domain::jobs::NewJob;
use casebridge_domain::retry::{Backoff, RetryPolicy};
use casebridge_domain::sync::RecordOutcome;
use casebridge_store::crm_ops::{self, CrmOp, NewOp};
use casebridge_store::integrations::{self, NewSyncEntry};
use casebridge_store::{jobs, sync_state, Conn, Store, StoreError, Tx};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use jiff::Timestamp;
use serde_json::{json, Value};

use crate::connector::QUEUE;

/// What resuming held status changes did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Resumed {
    pub replayed: u64,
    pub skipped: u64,
}

/// Operations of one connection in flight at once (across records).
pub const CONNECTION_CONCURRENCY: u32 = 4;
/// How many held or blocked operations one call moves at a time.
const BATCH: u32 = 500;
/// The longest a job waits in the rate limiter while holding its worker slot.
const MAX_LIMITER_WAIT: Duration = Duration::from_secs(5);

/// How outbound operations are retried: without limit (never dropped), 2 s doubling to 10 min.
pub fn retry_policy() -> RetryPolicy {
    RetryPolicy {
        backoff: Backoff::Exponential {
            initial: Duration::from_secs(2),
            factor: 2.0,
            max: Duration::from_secs(600),
        },
        jitter: 0.2,
        max_attempts: u32::MAX,
        window: None,
    }
}

/// One CRM's outbox: its provider name and the job kind that sends its operations.
#[derive(Debug, Clone, Copy)]
pub struct Outbox {
    pub provider: &'static str,
    /// The job kind; its payload is `{"op_id": "<uuid>"}`.
    pub kind: &'static str,
}

impl Outbox {
    /// The queue's ordering key of a record's operations: one at a time, in order.
    pub fn ordering_key(&self, company: CompanyId, record: &str) -> String {
        format!("{}/{company}/{record}", self.provider)
    }

    /// The queue's concurrency key of a connection's operations.
    fn concurrency_key(&self, company: CompanyId) -> String {
        format!("{}/{company}", self.provider)
    }

    /// Queues an operation's job, due at once.
    pub async fn enqueue_job(
        &self,
        conn: &mut Conn,
        company: CompanyId,
        op_id: &str,
        record: &str,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        self.enqueue_job_at(conn, company, op_id, record, now, now)
            .await
    }

    /// Queues an operation's job, due at `run_at` (not before `now`).
    async fn enqueue_job_at(
        &self,
        conn: &mut Conn,
        company: CompanyId,
        op_id: &str,
        record: &str,
        run_at: Timestamp,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        jobs::enqueue(
            conn,
            &NewJob::new(QUEUE, self.kind, json!({ "op_id": op_id }))
                .company(company)
                .ordering_key(self.ordering_key(company, record))
                .concurrency(self.concurrency_key(company), CONNECTION_CONCURRENCY)
                .run_at(run_at.max(now)),
            now,
        )
        .await?;
        Ok(())
    }

    /// When a new operation of this integration is due: at the next run with an hourly or
    /// daily frequency, else `None` (at once). The row is share-locked, so a concurrent change
    /// of frequency or "run now" either comes first and is seen, or waits for this transaction
    /// and then releases what it queued.
    async fn batched_until(
        &self,
        tx: &mut Tx,
        company: CompanyId,
        now: Timestamp,
    ) -> Result<Option<Timestamp>, StoreError> {
        let Some(i) = integrations::get_for_share(tx, company, self.provider).await? else {
            return Ok(None);
        };
        let frequency = Toggles::from_settings(&i.settings).frequency;
        Ok(frequency
            .next_run(i.next_run_at, now)
            .filter(|at| *at > now))
    }

    /// Makes the integration's operations that wait for a run later than `at` due by `at`
    /// (`at` = `now`: at once). Call in the transaction of a "run now" or a change of frequency.
    /// Returns how many operations were brought forward.
    pub async fn release_batched(
        &self,
        tx: &mut Tx,
        company: CompanyId,
        at: Timestamp,
        now: Timestamp,
    ) -> Result<u64, StoreError> {
        let moved = jobs::bring_forward(
            tx,
            company,
            QUEUE,
            self.kind,
            &self.concurrency_key(company),
            at,
            now,
        )
        .await?;
        crm_ops::bring_forward(tx, company, self.provider, at, now).await?;
        Ok(moved)
    }

    /// Records one operation: pending with its job when `state` says so, or held. `None`
    /// state records nothing.
    #[allow(clippy::too_many_arguments)]
    pub async fn insert(
        &self,
        tx: &mut Tx,
        company: CompanyId,
        state: OpState,
        kind: OpKind,
        case_id: Option<CaseId>,
        record: &str,
        action: &OpAction,
        now: Timestamp,
    ) -> Result<String, StoreError> {
        let batched_until = if state == OpState::Pending {
            self.batched_until(tx, company, now).await?
        } else {
            None
        };
        let id = crm_ops::insert(
            tx,
            company,
            &NewOp {
                provider: self.provider,
                kind,
                case_id,
                record_id: record,
                action,
                state,
                batched_until,
            },
            now,
        )
        .await?;
        if state == OpState::Pending {
            self.enqueue_job_at(tx, company, &id, record, batched_until.unwrap_or(now), now)
                .await?;
        }
        Ok(id)
    }

    /// Records one operation as the toggles allow: pending when its kind is on, held when it
    /// is a status change (status sync off), nothing otherwise.
    #[allow(clippy::too_many_arguments)]
    pub async fn record(
        &self,
        tx: &mut Tx,
        company: CompanyId,
        t: &Toggles,
        kind: OpKind,
        case_id: Option<CaseId>,
        record: &str,
        action: &OpAction,
        now: Timestamp,
    ) -> Result<Option<String>, StoreError> {
        let state = if kind.allowed(&t.gates()) {
            OpState::Pending
        } else if kind == OpKind::Status {
            OpState::Held
        } else {
            return Ok(None);
        };
        self.insert(tx, company, state, kind, case_id, record, action, now)
            .await
            .map(Some)
    }

    /// One outbound line of the sync log.
    #[allow(clippy::too_many_arguments)]
    pub async fn log(
        &self,
        conn: &mut Conn,
        company: CompanyId,
        record_ref: Option<&str>,
        operation: &str,
        outcome: SyncOutcome,
        error_kind: Option<ErrorKind>,
        message: &str,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        integrations::log(
            conn,
            company,
            self.provider,
            &NewSyncEntry {
                direction: "outbound",
                operation,
                record_ref,
                outcome,
                error_kind,
                message: Some(message),
            },
            now,
        )
        .await
    }

    /// An admin's retry of a failed operation: pending again, with a new job behind the
    /// record's other operations. False when it is not a failed operation of this CRM.
    pub async fn retry_failed(
        &self,
        tx: &mut Tx,
        company: CompanyId,
        op_id: &str,
        now: Timestamp,
    ) -> Result<bool, StoreError> {
        let op = crm_ops::get(tx, company, op_id).await?;
        if op.provider != self.provider
            || !crm_ops::transition(
                tx,
                company,
                op_id,
                OpState::Failed,
                OpState::Pending,
                false,
                None,
                now,
            )
            .await?
        {
            return Ok(false);
        }
        self.enqueue_job(tx, company, op_id, &op.record_id, now)
            .await?;
        Ok(true)
    }

    /// The held status changes, handled as the admin chose: skipped (non-retroactive) or
    /// replayed in the order they were made (retroactive). Call in the transaction that turns
    /// sending on again.
    pub async fn resume_status_sync(
        &self,
        tx: &mut Tx,
        company: CompanyId,
        mode: ResumeMode,
        now: Timestamp,
    ) -> Result<Resumed, StoreError> {
        let mut out = Resumed::default();
        loop {
            let held = crm_ops::in_state(
                tx,
                company,
                self.provider,
                OpState::Held,
                Some(OpKind::Status),
                BATCH,
            )
            .await?;
            if held.is_empty() {
                break;
            }
            for op in &held {
                let (to, reason) = match mode {
                    ResumeMode::NonRetroactive => (
                        OpState::Skipped,
                        Some(
                            "status sync resumed non-retroactively: change made while it was \
                             off was not sent",
                        ),
                    ),
                    ResumeMode::Retroactive => (OpState::Pending, None),
                };
                if crm_ops::transition(tx, company, &op.id, OpState::Held, to, false, reason, now)
                    .await?
                {
                    if to == OpState::Pending {
                        self.enqueue_job(tx, company, &op.id, &op.record_id, now)
                            .await?;
                        out.replayed += 1;
                    } else {
                        count_settled(tx, op, OpState::Skipped, now).await?;
                        out.skipped += 1;
                    }
                }
            }
        }
        if out != Resumed::default() {
            let msg = match mode {
                ResumeMode::NonRetroactive => format!(
                    "status sync resumed (non-retroactive): {} held status change(s) skipped",
                    out.skipped
                ),
                ResumeMode::Retroactive => format!(
                    "status sync resumed (retroactive): {} held status change(s) replayed in \
                     order",
                    out.replayed
                ),
            };
            self.log(
                tx,
                company,
                None,
                "resume status sync",
                SyncOutcome::Ok,
                None,
                &msg,
                now,
            )
            .await?;
        }
        Ok(out)
    }

    /// How many status changes are held.
    pub async fn held_count(&self, conn: &mut Conn, company: CompanyId) -> Result<u64, StoreError> {
        Ok(crm_ops::counts(conn, company, self.provider)
            .await?
            .into_iter()
            .find(|(s, _)| *s == OpState::Held)
            .map_or(0, |(_, n)| n))
    }

    /// Sends the operations parked by a configuration error again, in order. Call in the
    /// transaction that saves a working connection.
    ///
    /// Order per record is kept: a record's operations that were still waiting unclaimed
    /// (enqueued after the first one was parked) are taken out of the queue and enqueued again
    /// together with the parked ones, in creation order.
    pub async fn requeue_blocked(
        &self,
        tx: &mut Tx,
        company: CompanyId,
        now: Timestamp,
    ) -> Result<u64, StoreError> {
        let mut n = 0;
        loop {
            let blocked =
                crm_ops::in_state(tx, company, self.provider, OpState::Blocked, None, BATCH)
                    .await?;
            if blocked.is_empty() {
                break;
            }
            let mut records: Vec<&str> = blocked.iter().map(|o| o.record_id.as_str()).collect();
            records.sort_unstable();
            records.dedup();
            for record in records {
                let key = self.ordering_key(company, record);
                // (op id, was blocked, due at); UUIDv7 ids sort in creation order. A taken
                // job keeps its time (one waiting for the next run still waits for it).
                let mut ops: Vec<(String, bool, Timestamp)> = blocked
                    .iter()
                    .filter(|o| o.record_id == record)
                    .map(|o| (o.id.clone(), true, now))
                    .collect();
                for job in jobs::take_pending(tx, QUEUE, &key).await? {
                    if let Some(id) = job.payload.get("op_id").and_then(Value::as_str) {
                        ops.push((id.to_owned(), false, job.run_at));
                    }
                }
                ops.sort();
                for (id, was_blocked, run_at) in ops {
                    if was_blocked {
                        if !crm_ops::transition(
                            tx,
                            company,
                            &id,
                            OpState::Blocked,
                            OpState::Pending,
                            false,
                            None,
                            now,
                        )
                        .await?
                        {
                            continue;
                        }
                        n += 1;
                    }
                    self.enqueue_job_at(tx, company, &id, record, run_at, now)
                        .await?;
                }
            }
        }
        Ok(n)
    }

    /// Moves a pending operation to `to` and logs why, in one transaction.
    #[allow(clippy::too_many_arguments)]
    pub async fn settle(
        &self,
        store: &Store,
        now: Timestamp,
        op: &CrmOp,
        to: OpState,
        attempted: bool,
        error: Option<&str>,
        outcome: SyncOutcome,
        kind: Option<ErrorKind>,
        message: &str,
    ) -> Result<bool, StoreError> {
        let mut tx = store.begin().await?;
        let moved = crm_ops::transition(
            &mut tx,
            op.company_id,
            &op.id,
            OpState::Pending,
            to,
            attempted,
            error,
            now,
        )
        .await?;
        if moved {
            self.log(
                &mut tx,
                op.company_id,
                Some(&op.record_id),
                &op.action.describe(),
                outcome,
                kind,
                message,
                now,
            )
            .await?;
            count_settled(&mut tx, op, to, now).await?;
        }
        tx.commit().await?;
        if moved {
            counters::operation(self.provider, op.kind.as_str(), to.as_str());
        }
        Ok(moved)
    }

    /// Counts a failed attempt that will be retried; the first one is logged (once per
    /// operation, so an outage does not flood the sync log).
    pub async fn transient(
        &self,
        store: &Store,
        now: Timestamp,
        op: &CrmOp,
        message: &str,
    ) -> Result<(), StoreError> {
        let mut tx = store.begin().await?;
        crm_ops::record_retry(&mut tx, op.company_id, &op.id, message, now).await?;
        if op.attempts == 0 {
            self.log(
                &mut tx,
                op.company_id,
                Some(&op.record_id),
                &op.action.describe(),
                SyncOutcome::Error,
                Some(ErrorKind::Transient),
                &format!("{message}; retrying until it goes through"),
                now,
            )
            .await?;
        }
        tx.commit().await?;
        counters::operation(self.provider, op.kind.as_str(), "retried");
        Ok(())
    }

    /// Parks a pending operation as `blocked` (setting the integration's configuration error
    /// when `set_error`), unless the connection changed since the worker read it (`seen`: the
    /// sealed credentials and configuration error it acted on): then nothing is parked, the
    /// caller retries, and the fixed connection is used. Returns whether it parked.
    #[allow(clippy::too_many_arguments)]
    pub async fn block(
        &self,
        store: &Store,
        now: Timestamp,
        op: &CrmOp,
        seen: &(Option<String>, Option<String>),
        message: &str,
        set_error: bool,
        attempted: bool,
    ) -> Result<bool, StoreError> {
        let mut tx = store.begin().await?;
        // Locked: a connection save (which clears the error and requeues blocked operations)
        // either comes before this, and is seen, or after, and requeues this one.
        let current = integrations::get_for_update(&mut tx, op.company_id, self.provider)
            .await?
            .map(|i| (i.credentials_sealed, i.config_error))
            .unwrap_or((None, None));
        let changed = if set_error {
            current.0 != seen.0
        } else {
            current != *seen
        };
        if changed {
            tx.rollback().await?;
            return Ok(false);
        }
        if crm_ops::transition(
            &mut tx,
            op.company_id,
            &op.id,
            OpState::Pending,
            OpState::Blocked,
            attempted,
            Some(message),
            now,
        )
        .await?
        {
            counters::operation(self.provider, op.kind.as_str(), "blocked");
            if set_error {
                integrations::set_config_error(
                    &mut tx,
                    op.company_id,
                    self.provider,
                    Some(message),
                    now,
                )
                .await?;
            }
            self.log(
                &mut tx,
                op.company_id,
                Some(&op.record_id),
                &op.action.describe(),
                SyncOutcome::Error,
                Some(ErrorKind::Configuration),
                &format!("{message}; sending is paused until the connection is saved again"),
                now,
            )
            .await?;
        }
        tx.commit().await?;
        Ok(true)
    }
}

/// Counts an operation that reached a final state (SYNC3's measured counters: outbound `sent`,
/// `failed` or `skipped`), in the transaction that moved it.
pub async fn count_settled(
    conn: &mut Conn,
    op: &CrmOp,
    to: OpState,
    now: Timestamp,
) -> Result<(), StoreError> {
    let outcome = match to {
        OpState::Done => RecordOutcome::Sent,
        OpState::Failed => RecordOutcome::Failed,
        OpState::Skipped => RecordOutcome::Skipped,
        _ => return Ok(()),
    };
    let record = Some(op.record_id.as_str());
    sync_state::count_record(
        conn,
        op.company_id,
        &op.provider,
        "outbound",
        outcome,
        record,
        now,
    )
    .await
}

/// A per-connection rate limiter plus the CRM's own `Retry-After`, applied to the whole
/// connection.
pub struct Throttle {
    limiter: Option<DefaultKeyedRateLimiter<CompanyId>>,
    /// Per connection: no request before this time (the CRM answered 429 with Retry-After).
    cooldown: Mutex<HashMap<CompanyId, Timestamp>>,
}

impl Throttle {
    /// `requests_per_minute`: the per-connection limit; 0 means no limit.
    pub fn new(requests_per_minute: u32) -> Self {
        let limiter = NonZeroU32::new(requests_per_minute).map(|n| {
            // Allow a short burst of up to a tenth of the minute's budget.
            let burst = NonZeroU32::new((n.get() / 10).max(1)).expect("nonzero");
            RateLimiter::keyed(Quota::per_minute(n).allow_burst(burst))
        });
        Self {
            limiter,
            cooldown: Mutex::new(HashMap::new()),
        }
    }

    /// Waits for the connection's rate limiter; `Err` with the remaining wait while the CRM's
    /// own `Retry-After` is in force, or when the limiter's gap is longer than a worker should
    /// hold its slot.
    pub async fn wait(&self, clock: &dyn Clock, company: CompanyId) -> Result<(), Duration> {
        let now = clock.now();
        if let Some(until) = self.cooldown.lock().expect("lock").get(&company) {
            if *until > now {
                return Err(until.duration_since(now).unsigned_abs());
            }
        }
        if let Some(l) = &self.limiter {
            if tokio::time::timeout(MAX_LIMITER_WAIT, l.until_key_ready(&company))
                .await
                .is_err()
            {
                return Err(MAX_LIMITER_WAIT);
            }
        }
        Ok(())
    }

    /// No request on this connection for `wait` (the CRM's `Retry-After`).
    pub fn cool_down(&self, clock: &dyn Clock, company: CompanyId, wait: Duration) {
        let until = clock.now() + wait;
        self.cooldown.lock().expect("lock").insert(company, until);
    }
}
