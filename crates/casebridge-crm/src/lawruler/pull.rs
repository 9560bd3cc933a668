//! The hourly pull from Law Ruler (SPEC LR13, SYNC3): the leads and notes that changed in Law
//! Ruler since the last pull. Webhooks bring changes in real time; the pull catches what they
//! do not carry (notes) and what a missed webhook lost (status changes).
//!
//! **What.** A [`KIND`] job on the `crm` queue pulls for one company ([`PullJob`], or [`pull`]
//! directly). It does nothing but log `skipped` with the reason unless the integration is
//! connected, "Enable Integration" is on and "Receive data from LawRuler" is on. Otherwise:
//! 1. Leads changed since `leads_cursor` (`GET …/leads?changedSince=`). Each becomes the field
//!    pairs a Law Ruler webhook carries ([`lead_fields`]) and goes through the webhook's and the
//!    import's path: `parse_lead`, the dedupe receipt, `apply_lead` (client by Primary Contact
//!    ID, case by Lead ID), so later webhooks and imports match the same records. Each lead is
//!    applied in its own transaction, whole or not at all. A lead that cannot be applied
//!    (missing fields, invalid values) is logged as a validation error naming its Lead ID and
//!    does not stop the pull.
//! 2. Notes added since `notes_cursor` (`GET …/notes?changedSince=`), stored with
//!    `crm_notes::insert` (origin `crm`) under the case of their Lead ID. A note of a lead that
//!    has no case here is still stored, with no case and its Lead ID as `record_id`: the cursor
//!    moves past it, so dropping it would lose it for good if the lead is imported later.
//! 3. One transaction: both cursors, `last_pull_at` (and `last_pull_error` cleared)
//!    (`integrations::record_pull`), "last successful status pull" (`touch_health(StatusPull)`),
//!    and one summary line in the sync log: "pulled 3 leads (1 created, 1 updated, 1 unchanged)
//!    and 5 notes (2 new)".
//!
//! **When.** [`schedule_loop`] (one per process that runs workers) calls [`schedule_due`] every
//! twelfth of the interval (at most every 5 minutes), which enqueues a pull for every connected
//! integration with "Receive data" in effect whose last pull is at least `interval` (default
//! [`DEFAULT_INTERVAL`], one hour) old, or that never pulled. [`enqueue_pull`] adds a job only
//! when the company has no pull waiting (a running one does not count: it may have read its
//! cursors already); its ordering key `lawruler-pull/<company>` makes a company's pulls run one
//! at a time, so two pulls never race on the cursors. The scheduling is shared with every CRM
//! ([`crate::pull`]); this module keeps what a Law Ruler pull reads and applies.
//!
//! **Cursors.** Each cursor is Law Ruler's own storage time (`updatedAt`) of the newest record
//! seen, so clock differences between the two systems do not matter. The first pull starts at
//! the connection time, not the epoch: history comes in through the import (LR14). A cursor
//! never moves backwards (it becomes the larger of itself and the newest `updatedAt`) and only
//! moves once the records up to it are stored. `changedSince` is inclusive, so records at
//! exactly the cursor come again next time and are deduped: a lead whose content equals what
//! was last applied for its Lead ID is `unchanged` (the receipt also covers webhooks and
//! imports), and a note whose Law Ruler id is stored is not stored again — including the notes
//! casebridge wrote itself, which the outbound sender stores (origin `platform`) under the id
//! Law Ruler gave them.
//!
//! **Errors.**
//! - 429, 5xx, timeouts: the job is retried (backoff from 30 s, `Retry-After` honoured), the
//!   error is recorded as the integration's `last_pull_error` and logged as a transient error
//!   on the first attempt. After [`MAX_ATTEMPTS`] the pull gives up (logged) until the next
//!   scheduled one, without a dead letter. Leads already applied keep their cursor.
//! - A wrong connection value (Username, Password, Client Secret, Client Root):
//!   `set_config_error` on the integration, a configuration error in the sync log (once per
//!   distinct error, so hourly retries do not flood it), and the job is done. The next
//!   scheduled pull tries again; reconnecting clears the error.
//! - Any other refusal or unexpected answer: logged as a configuration error (it needs a person
//!   to look), recorded as `last_pull_error`, and the job is done.
//! - Database errors: the job is retried; nothing moved the cursors.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use casebridge_domain::clock::Clock;
use casebridge_domain::ids::{CaseId, CompanyId, JobId};
use casebridge_domain::integrations::{ErrorKind, SyncOutcome};
use casebridge_domain::jobs::Job;
use casebridge_domain::retry::RetryPolicy;
use casebridge_queue::{Handler, JobError, Registry};
use casebridge_store::crm_notes::{self, CrmNote};
use casebridge_store::integrations::{self, Health, NewSyncEntry};
use casebridge_store::{cases, Store, StoreError, Tx};
use jiff::Timestamp;
use tokio_util::sync::CancellationToken;

use super::client::{LawRulerError, LeadRecord, NoteRecord};
use super::connection::Clients;
use super::ingest::PROVIDER;
use super::lead::{apply_row, lead_fields, Outcome, RowFailure};
use super::outbound::toggles;
use crate::counters;
use crate::pull::{FailureClass, PullSchedule};

/// The queue pulls run on.
pub const QUEUE: &str = "crm";
/// The job kind; its payload is `{}` (the company is the job's).
pub const KIND: &str = "lawruler.pull";
/// How often each integration is pulled unless configured otherwise (LR13: hourly).
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(3600);
/// Attempts of one pull before it gives up until the next scheduled pull.
pub const MAX_ATTEMPTS: u32 = crate::pull::MAX_ATTEMPTS;
/// Notes stored per transaction.
const NOTES_PER_TX: usize = 200;

/// Law Ruler's pull job, as the shared scheduling ([`crate::pull`]) knows it.
pub const SCHEDULE: PullSchedule = PullSchedule {
    provider: PROVIDER,
    kind: KIND,
    name: "Law Ruler",
};

/// The ordering key of a company's pulls.
pub fn ordering_key(company: CompanyId) -> String {
    SCHEDULE.ordering_key(company)
}

/// Enqueues a pull for `company` in the caller's transaction, unless one is already waiting or
/// the company has no Law Ruler integration ([`PullSchedule::enqueue`]).
pub async fn enqueue_pull(
    tx: &mut Tx,
    company: CompanyId,
    now: Timestamp,
) -> Result<Option<JobId>, StoreError> {
    SCHEDULE.enqueue(tx, company, now).await
}

/// Enqueues a pull for every connected integration with "Receive data" in effect whose last
/// pull is at least `interval` old ([`PullSchedule::schedule_due`]).
pub async fn schedule_due(
    store: &Store,
    clock: &dyn Clock,
    interval: Duration,
) -> Result<Vec<CompanyId>, StoreError> {
    SCHEDULE.schedule_due(store, clock, interval).await
}

/// Runs the Law Ruler pull scheduler until `shutdown` ([`PullSchedule::run_loop`]).
pub async fn schedule_loop(
    store: Store,
    clock: Arc<dyn Clock>,
    interval: Duration,
    shutdown: CancellationToken,
) {
    SCHEDULE.run_loop(store, clock, interval, shutdown).await
}

/// What a pull did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PullOutcome {
    /// Nothing was pulled; the reason was logged.
    Skipped(String),
    Pulled(PullSummary),
}

/// The counts of a pull, as its summary line reports them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PullSummary {
    /// Leads Law Ruler returned.
    pub leads: u64,
    pub created: u64,
    pub updated: u64,
    /// Same content as last applied for their Lead ID (also leads seen again at the cursor).
    pub unchanged: u64,
    /// Logged as validation errors.
    pub failed: u64,
    /// Notes Law Ruler returned.
    pub notes: u64,
    /// Of those, notes not stored before.
    pub new_notes: u64,
    pub leads_cursor: Option<Timestamp>,
    pub notes_cursor: Option<Timestamp>,
}

impl PullSummary {
    fn leads_text(&self) -> String {
        let mut text = format!(
            "{} leads ({} created, {} updated, {} unchanged",
            self.leads, self.created, self.updated, self.unchanged
        );
        if self.failed > 0 {
            text.push_str(&format!(", {} failed", self.failed));
        }
        text.push(')');
        text
    }

    /// "pulled 3 leads (1 created, 1 updated, 1 unchanged) and 5 notes (2 new)".
    pub fn message(&self) -> String {
        format!(
            "pulled {} and {} notes ({} new)",
            self.leads_text(),
            self.notes,
            self.new_notes
        )
    }
}

/// Why a pull stopped.
#[derive(Debug, thiserror::Error)]
pub enum PullError {
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Law Ruler failed. When the leads were already applied, `leads` holds what they did (and
    /// the leads cursor to keep).
    #[error("{error}")]
    LawRuler {
        error: LawRulerError,
        leads: Option<PullSummary>,
    },
}

fn lr(error: LawRulerError) -> PullError {
    PullError::LawRuler { error, leads: None }
}

async fn log_entry(
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
        PROVIDER,
        &entry(record_ref, outcome, error_kind, message),
        now,
    )
    .await?;
    tx.commit().await
}

fn entry<'a>(
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

async fn skip(
    store: &Store,
    company: CompanyId,
    reason: &str,
    now: Timestamp,
) -> Result<PullOutcome, PullError> {
    let message = format!("pull skipped: {reason}");
    log_entry(
        store,
        company,
        None,
        SyncOutcome::Skipped,
        None,
        &message,
        now,
    )
    .await?;
    Ok(PullOutcome::Skipped(reason.to_owned()))
}

/// Applies one pulled lead in its own transaction. A lead that cannot be applied is logged
/// (naming its Lead ID) and counted as failed.
async fn apply_record(
    store: &Store,
    clock: &dyn Clock,
    company: CompanyId,
    record: &LeadRecord,
    summary: &mut PullSummary,
) -> Result<(), StoreError> {
    let now = clock.now();
    let fields = lead_fields(record);
    let mut tx = store.begin().await?;
    match apply_row(&mut tx, company, &fields, now).await? {
        Ok(outcome) => {
            tx.commit().await?;
            match outcome {
                Outcome::Created => summary.created += 1,
                Outcome::Updated => summary.updated += 1,
                Outcome::Unchanged => summary.unchanged += 1,
            }
        }
        Err(RowFailure { message, .. }) => {
            tx.rollback().await?;
            summary.failed += 1;
            crate::ingest::count_failed(store, company, PROVIDER, Some(&record.lead_id), now)
                .await?;
            let message = if message.starts_with("Lead ID") {
                message
            } else {
                format!("Lead ID {}: {message}", record.lead_id)
            };
            log_entry(
                store,
                company,
                Some(&record.lead_id),
                SyncOutcome::Error,
                Some(ErrorKind::Validation),
                &message,
                now,
            )
            .await?;
        }
    }
    Ok(())
}

/// Stores pulled notes, [`NOTES_PER_TX`] per transaction; returns how many were new.
async fn store_notes(
    store: &Store,
    clock: &dyn Clock,
    company: CompanyId,
    notes: &[NoteRecord],
) -> Result<u64, StoreError> {
    let mut case_of: HashMap<String, Option<CaseId>> = HashMap::new();
    let mut new = 0;
    for chunk in notes.chunks(NOTES_PER_TX) {
        let now = clock.now();
        let mut tx = store.begin().await?;
        for n in chunk {
            let case_id = match case_of.get(&n.lead_id) {
                Some(c) => *c,
                None => {
                    let c = match cases::find_by_ref(&mut tx, company, PROVIDER, &n.lead_id).await {
                        Ok(case) => Some(case.id),
                        Err(StoreError::NotFound) => None,
                        Err(e) => return Err(e),
                    };
                    case_of.insert(n.lead_id.clone(), c);
                    c
                }
            };
            let note = CrmNote {
                crm_note_id: n.id.clone(),
                record_id: n.lead_id.clone(),
                case_id,
                origin: "crm".into(),
                category: n.category.clone(),
                subject: n.subject.clone(),
                body: n.body.clone(),
                noted_at: n.created_at,
            };
            if crm_notes::insert(&mut tx, company, PROVIDER, &note, now).await? {
                new += 1;
            }
        }
        tx.commit().await?;
    }
    Ok(new)
}

/// Pulls once for `company` (see the module docs). Law Ruler's failures come back as
/// [`PullError::LawRuler`] without having been recorded: [`PullJob`] records them.
pub async fn pull(
    store: &Store,
    clock: &dyn Clock,
    clients: &Clients,
    company: CompanyId,
) -> Result<PullOutcome, PullError> {
    let now = clock.now();
    let integration = {
        let mut conn = store.conn().await?;
        integrations::get(&mut conn, company, PROVIDER).await?
    };
    let Some(i) = integration.filter(|i| i.credentials_sealed.is_some()) else {
        return skip(store, company, "Law Ruler is not connected", now).await;
    };
    let t = toggles(&i);
    if !t.enable_integration {
        return skip(store, company, "the integration is turned off", now).await;
    }
    if !t.receive {
        return skip(store, company, "\"Receive data from LawRuler\" is off", now).await;
    }
    let client = match clients.for_integration(&i).map_err(lr)? {
        Some(c) => c,
        None => return skip(store, company, "Law Ruler is not connected", now).await,
    };
    // First pull: from the connection time; history comes in through the import.
    let start = i.connected_at.unwrap_or(now);

    let leads_since = i.leads_cursor.unwrap_or(start);
    let mut records = client.leads_changed_since(leads_since).await.map_err(lr)?;
    records.sort_by(|a, b| (a.updated_at, &a.lead_id).cmp(&(b.updated_at, &b.lead_id)));
    let mut summary = PullSummary {
        leads: records.len() as u64,
        ..PullSummary::default()
    };
    let mut leads_cursor = leads_since;
    for r in &records {
        apply_record(store, clock, company, r, &mut summary).await?;
        leads_cursor = leads_cursor.max(r.updated_at);
    }
    summary.leads_cursor = Some(leads_cursor);

    let notes_since = i.notes_cursor.unwrap_or(start);
    let notes = match client.notes_changed_since(notes_since).await {
        Ok(n) => n,
        Err(error) => {
            return Err(PullError::LawRuler {
                error,
                leads: Some(summary),
            })
        }
    };
    summary.notes = notes.len() as u64;
    summary.new_notes = store_notes(store, clock, company, &notes).await?;
    let notes_cursor = notes
        .iter()
        .map(|n| n.updated_at)
        .fold(notes_since, Timestamp::max);
    summary.notes_cursor = Some(notes_cursor);

    let now = clock.now();
    let mut tx = store.begin().await?;
    integrations::record_pull(
        &mut tx,
        company,
        PROVIDER,
        Some(leads_cursor),
        Some(notes_cursor),
        None,
        now,
    )
    .await?;
    integrations::touch_health(&mut tx, company, PROVIDER, Health::StatusPull, now).await?;
    let message = summary.message();
    let (outcome, kind) = if summary.failed == 0 {
        (SyncOutcome::Ok, None)
    } else {
        (SyncOutcome::Error, Some(ErrorKind::Validation))
    };
    integrations::log(
        &mut tx,
        company,
        PROVIDER,
        &entry(None, outcome, kind, &message),
        now,
    )
    .await?;
    tx.commit().await?;
    Ok(PullOutcome::Pulled(summary))
}

/// How pulls are retried ([`crate::pull::retry_policy`]).
pub fn retry_policy() -> RetryPolicy {
    crate::pull::retry_policy()
}

/// The `lawruler.pull` job.
pub struct PullJob {
    store: Store,
    clock: Arc<dyn Clock>,
    clients: Clients,
}

impl PullJob {
    pub fn new(store: Store, clock: Arc<dyn Clock>, clients: Clients) -> Self {
        Self {
            store,
            clock,
            clients,
        }
    }

    /// Records a failed pull on the integration (`last_pull_error`, the leads cursor if the leads
    /// were applied, a configuration error) and in the sync log.
    async fn failed(
        &self,
        job: &Job,
        company: CompanyId,
        error: LawRulerError,
        leads: Option<PullSummary>,
    ) -> Result<(), StoreError> {
        let now = self.clock.now();
        let msg = error.to_string();
        let prefix = match &leads {
            Some(s) => format!("pulled {}, then reading notes failed", s.leads_text()),
            None => "pull failed".to_owned(),
        };
        let mut tx = self.store.begin().await?;
        let leads_cursor = leads.as_ref().and_then(|s| s.leads_cursor);
        integrations::record_pull(
            &mut tx,
            company,
            PROVIDER,
            leads_cursor,
            None,
            Some(&msg),
            now,
        )
        .await?;
        if leads_cursor.is_some() {
            integrations::touch_health(&mut tx, company, PROVIDER, Health::StatusPull, now).await?;
        }
        let class = if error.is_retryable() {
            FailureClass::Transient
        } else if error.is_config() {
            FailureClass::Configuration
        } else {
            FailureClass::Other
        };
        crate::pull::log_failure(
            &mut tx,
            company,
            PROVIDER,
            class,
            job.attempts,
            &prefix,
            &msg,
            now,
        )
        .await?;
        tx.commit().await
    }
}

fn store_retry(e: StoreError) -> JobError {
    JobError::retry(format!("database: {e}"))
}

#[async_trait]
impl Handler for PullJob {
    async fn run(&self, job: &Job) -> Result<(), JobError> {
        let company = job
            .company_id
            .ok_or_else(|| JobError::Permanent("job has no company".into()))?;
        match pull(&self.store, self.clock.as_ref(), &self.clients, company).await {
            Ok(_) => {
                counters::pull(PROVIDER, "ok");
                Ok(())
            }
            Err(PullError::Store(e)) => {
                counters::pull(PROVIDER, "retried");
                Err(store_retry(e))
            }
            Err(PullError::LawRuler { error, leads }) => {
                let retry = error.is_retryable() && job.attempts < MAX_ATTEMPTS;
                counters::pull(PROVIDER, if retry { "retried" } else { "failed" });
                let retry_after = error.retry_after();
                let text = error.to_string();
                self.failed(job, company, error, leads)
                    .await
                    .map_err(store_retry)?;
                if retry {
                    Err(JobError::Retry {
                        error: text,
                        retry_after,
                    })
                } else {
                    Ok(())
                }
            }
        }
    }

    async fn on_dead(&self, job: &Job, error: &str) {
        crate::pull::record_dead(&self.store, self.clock.as_ref(), PROVIDER, job, error).await;
    }
}

/// Adds the pull job to the `crm` queue's registry.
pub fn register(
    registry: Registry,
    store: Store,
    clock: Arc<dyn Clock>,
    clients: Clients,
) -> Registry {
    registry.register(KIND, PullJob::new(store, clock, clients), retry_policy())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_record_becomes_the_webhook_fields() {
        let r: LeadRecord = serde_json::from_value(json!({
            "leadId": 10001, "primaryContactId": "50001", "caseTypeId": "12",
            "caseType": "Auto Accident", "statusId": "7", "status": "Intake",
            "firstName": "Jane", "lastName": "Doe", "email": "jane@example.com",
            "createdAt": "2025-01-15T14:30:05Z", "updatedAt": "2025-01-16T09:00:00Z",
            "fields": {"list_id": "L1", "custom1234": "x"}
        }))
        .unwrap();
        let f = lead_fields(&r);
        let get = |k: &str| f.iter().find(|(n, _)| n == k).unwrap().1.clone();
        assert_eq!(get("Lead ID"), "10001");
        assert_eq!(get("Full Name"), "Jane Doe");
        assert_eq!(get("Created Date"), "01/15/2025 02:30:05 PM");
        assert_eq!(get("Cell Phone"), "");
        assert!(f.iter().all(|(k, _)| k != "list_id" && k != "custom1234"));
        let lead = super::super::inbound::parse_lead(&[], &f).unwrap();
        assert_eq!(lead.primary_contact_id, "50001");
        assert_eq!(lead.list, None);
    }

    #[test]
    fn summary_line() {
        let s = PullSummary {
            leads: 3,
            created: 1,
            updated: 1,
            unchanged: 1,
            notes: 5,
            new_notes: 2,
            ..PullSummary::default()
        };
        assert_eq!(
            s.message(),
            "pulled 3 leads (1 created, 1 updated, 1 unchanged) and 5 notes (2 new)"
        );
        let s = PullSummary { failed: 1, ..s };
        assert!(s.message().contains(", 1 failed)"));
    }
}
