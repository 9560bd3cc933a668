//! The initial import of existing SmartAdvocate cases (SA4), through the import machinery Law
//! Ruler's API import uses: an `imports` row (origin `api`) and a [`KIND`] job on the `crm`
//! queue.
//!
//! [`enqueue`] (through `Connector::enqueue_api_import`) needs a connected integration and
//! stores the import with its job. The job first fetches the cases changed since the import's
//! `since` (every case when none: the search from the epoch) with their plaintiffs' contact
//! details, and stores them in the import as one JSON line of case-record fields per case
//! ([`record::case_fields`]), oldest change first, with the count as `total_rows`. Then it
//! applies them [`BATCH_ROWS`] per transaction, each batch together with the import's progress
//! counters, through the hook's and the pull's path ([`record::apply_fields`]: parse, dedupe
//! receipt, apply), so a second import of the same cases is all `unchanged` and later pulls and
//! hooks match the same records. A run that dies resumes after the last committed batch (the
//! fetched rows are kept until the import ends). A batch whose row fails after writing is
//! applied again a row per transaction, so the bad row alone is dropped and recorded with its
//! 1-based number. A fetch that fails with 429 or 5xx is retried by the queue; a configuration
//! error shows on the integration and fails the import; any other refusal fails it with
//! SmartAdvocate's reason.

use std::sync::Arc;

use async_trait::async_trait;
use casebridge_domain::clock::Clock;
use casebridge_domain::ids::CompanyId;
use casebridge_domain::integrations::{ErrorKind, SyncOutcome};
use casebridge_domain::jobs::{Job, NewJob};
use casebridge_domain::retry::RetryPolicy;
use casebridge_queue::{Handler, JobError, Registry};
use casebridge_store::imports::{self, Counts, Import, ImportOrigin, ImportStatus, RowError};
use casebridge_store::integrations::{self, Health, NewSyncEntry};
use casebridge_store::{jobs, Store, StoreError, Tx};
use jiff::Timestamp;
use serde_json::json;
use uuid::Uuid;

use super::client::SmartAdvocateError;
use super::connection::Clients;
use super::record;
use super::PROVIDER;
use crate::ingest::{Outcome, RowFailure};

/// The job kind; its payload is `{"import_id": "<uuid>"}`.
pub const KIND: &str = "smartadvocate.import";
/// Cases applied per transaction (and per progress update).
pub const BATCH_ROWS: usize = 200;

/// Why an import cannot start.
#[derive(Debug, thiserror::Error)]
pub enum EnqueueError {
    #[error(
        "SmartAdvocate is not connected; connect it (base URL, username, password) before \
         importing its cases"
    )]
    NotConnected,
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Stores an import of the cases changed since `since` (every case when `None`) and its job, in
/// the caller's transaction. Needs a connected integration.
pub async fn enqueue(
    tx: &mut Tx,
    company: CompanyId,
    since: Option<Timestamp>,
    now: Timestamp,
) -> Result<Import, EnqueueError> {
    let connected = integrations::get(tx, company, PROVIDER)
        .await?
        .is_some_and(|i| i.credentials_sealed.is_some());
    if !connected {
        return Err(EnqueueError::NotConnected);
    }
    let import = imports::create_from_api(tx, company, PROVIDER, since, now).await?;
    jobs::enqueue(
        tx,
        &NewJob::new(
            crate::connector::QUEUE,
            KIND,
            json!({ "import_id": import.id.to_string() }),
        )
        .company(company)
        // One import of a company at a time, in the order asked for.
        .ordering_key(format!("{KIND}/{company}")),
        now,
    )
    .await?;
    Ok(import)
}

type Fields = Vec<(String, String)>;

fn to_lines(rows: &[Fields]) -> String {
    rows.iter()
        .map(|r| serde_json::to_string(r).expect("serializable"))
        .collect::<Vec<_>>()
        .join("\n")
}

fn from_lines(text: &str) -> Vec<Result<Fields, String>> {
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).map_err(|e| format!("the stored row cannot be read: {e}")))
        .collect()
}

fn needs_fetch(import: &Import) -> bool {
    import.origin == ImportOrigin::Api
        && import.fetched_at.is_none()
        && matches!(import.status, ImportStatus::Queued | ImportStatus::Running)
}

/// Ends an import that cannot succeed and logs why (a configuration error also shows on the
/// integration).
async fn fetch_failed(
    store: &Store,
    clock: &dyn Clock,
    company: CompanyId,
    id: Uuid,
    message: &str,
    config_error: Option<&str>,
) -> Result<(), StoreError> {
    let now = clock.now();
    let mut tx = store.begin().await?;
    if let Some(e) = config_error {
        integrations::set_config_error(&mut tx, company, PROVIDER, Some(e), now).await?;
    }
    integrations::log(
        &mut tx,
        company,
        PROVIDER,
        &NewSyncEntry {
            direction: "inbound",
            operation: "import",
            record_ref: Some(&id.to_string()),
            outcome: SyncOutcome::Error,
            error_kind: Some(ErrorKind::Configuration),
            message: Some(message),
        },
        now,
    )
    .await?;
    imports::finish(&mut tx, company, id, Some(message), now).await?;
    tx.commit().await
}

#[derive(Debug, thiserror::Error)]
enum RunError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Retry(SmartAdvocateError),
}

/// Reads the cases from SmartAdvocate into the import (once).
async fn fetch(
    store: &Store,
    clock: &dyn Clock,
    clients: &Clients,
    company: CompanyId,
    import: &Import,
) -> Result<bool, RunError> {
    let integration = {
        let mut conn = store.conn().await?;
        integrations::get(&mut conn, company, PROVIDER).await?
    };
    let mut tx = store.begin().await?;
    imports::start(&mut tx, company, import.id, clock.now()).await?;
    tx.commit().await?;
    let client = match integration.filter(|i| i.credentials_sealed.is_some()) {
        Some(i) => clients.for_integration(&i),
        None => Ok(None),
    };
    let client = match client {
        Ok(Some(c)) => c,
        Ok(None) => {
            let m = "SmartAdvocate is no longer connected; connect it and start the import again";
            fetch_failed(store, clock, company, import.id, m, None).await?;
            return Ok(false);
        }
        Err(e) => {
            let m = format!("the stored SmartAdvocate connection cannot be used: {e}");
            fetch_failed(store, clock, company, import.id, &m, None).await?;
            return Ok(false);
        }
    };
    let since = import.fetch_since.unwrap_or(Timestamp::UNIX_EPOCH);
    let cases = match client.cases_changed_since(since).await {
        Ok(c) => c,
        Err(e) if e.is_retryable() => return Err(RunError::Retry(e)),
        Err(e) => {
            let m = format!("reading the cases from SmartAdvocate failed: {e}");
            let config = e.is_config().then(|| e.to_string());
            fetch_failed(store, clock, company, import.id, &m, config.as_deref()).await?;
            return Ok(false);
        }
    };
    let rows: Vec<Fields> = cases.iter().map(record::case_fields).collect();
    let mut tx = store.begin().await?;
    imports::set_fetched(
        &mut tx,
        company,
        import.id,
        &to_lines(&rows),
        rows.len() as u64,
        clock.now(),
    )
    .await?;
    tx.commit().await?;
    Ok(true)
}

fn tally(counts: &mut Counts, outcome: Outcome) {
    match outcome {
        Outcome::Created => counts.created += 1,
        Outcome::Updated => counts.updated += 1,
        Outcome::Unchanged => counts.unchanged += 1,
    }
}

fn fail(counts: &mut Counts, errors: &mut Vec<RowError>, row: u64, message: String) {
    counts.failed += 1;
    if errors.len() < imports::MAX_ERRORS {
        errors.push(RowError { row, message });
    }
}

/// Applies one batch (rows `from+1 ..`) with the progress update, in one transaction; a row
/// failing after it wrote sends the batch a row per transaction. Returns false when another
/// run already recorded it.
async fn apply_batch(
    store: &Store,
    clock: &dyn Clock,
    company: CompanyId,
    id: Uuid,
    batch: &[Result<Fields, String>],
    counts: &mut Counts,
    errors: &mut Vec<RowError>,
) -> Result<bool, StoreError> {
    let now = clock.now();
    let from = counts.processed;
    let (mut next, mut next_errors) = (*counts, errors.clone());
    let mut tx = store.begin().await?;
    let mut clean = true;
    for row in batch {
        next.processed += 1;
        let n = next.processed;
        match row {
            Err(m) => fail(&mut next, &mut next_errors, n, m.clone()),
            Ok(fields) => match record::apply_fields(&mut tx, company, fields, now).await? {
                Ok(o) => tally(&mut next, o),
                Err(RowFailure {
                    message,
                    wrote: false,
                }) => fail(&mut next, &mut next_errors, n, message),
                Err(RowFailure { wrote: true, .. }) => {
                    clean = false;
                    break;
                }
            },
        }
    }
    if clean {
        if !imports::record_progress(&mut tx, company, id, from, &next, &next_errors, now).await? {
            return Ok(false);
        }
        integrations::touch_health(&mut tx, company, PROVIDER, Health::StatusPull, now).await?;
        tx.commit().await?;
        (*counts, *errors) = (next, next_errors);
        return Ok(true);
    }
    tx.rollback().await?;
    for row in batch {
        let from = counts.processed;
        let (mut next, mut next_errors) = (*counts, errors.clone());
        next.processed += 1;
        let n = next.processed;
        let mut tx = store.begin().await?;
        let result = match row {
            Ok(f) => record::apply_fields(&mut tx, company, f, now).await?,
            Err(m) => Err(RowFailure {
                message: m.clone(),
                wrote: false,
            }),
        };
        match result {
            Ok(o) => tally(&mut next, o),
            Err(RowFailure { message, wrote }) => {
                if wrote {
                    tx.rollback().await?;
                    tx = store.begin().await?;
                }
                fail(&mut next, &mut next_errors, n, message);
            }
        }
        if !imports::record_progress(&mut tx, company, id, from, &next, &next_errors, now).await? {
            return Ok(false);
        }
        tx.commit().await?;
        (*counts, *errors) = (next, next_errors);
    }
    Ok(true)
}

/// Runs (or resumes) an import: fetches its cases if it has not, then applies the rows after
/// `processed_rows`, stopping after `max_batches` when given (to look at progress half-way).
/// Returns the import as it then is.
pub async fn run(
    store: &Store,
    clock: &dyn Clock,
    clients: &Clients,
    company: CompanyId,
    id: Uuid,
    batch_rows: usize,
    max_batches: Option<usize>,
) -> Result<Import, JobError> {
    let get = |store: Store| async move {
        let mut conn = store.conn().await?;
        imports::get(&mut conn, company, id).await
    };
    let import = get(store.clone()).await.map_err(run_error)?;
    if needs_fetch(&import) {
        match fetch(store, clock, clients, company, &import).await {
            Ok(true) => {}
            Ok(false) => return get(store.clone()).await.map_err(run_error),
            Err(RunError::Retry(e)) => {
                let retry_after = match &e {
                    SmartAdvocateError::RateLimited { retry_after } => *retry_after,
                    _ => None,
                };
                return Err(JobError::Retry {
                    error: e.to_string(),
                    retry_after,
                });
            }
            Err(RunError::Store(e)) => return Err(run_error(e)),
        }
    }
    let import = get(store.clone()).await.map_err(run_error)?;
    if matches!(import.status, ImportStatus::Done | ImportStatus::Failed) {
        return Ok(import);
    }
    let source = {
        let mut conn = store.conn().await.map_err(run_error)?;
        imports::source(&mut conn, company, id)
            .await
            .map_err(run_error)?
    };
    let Some(source) = source else {
        return Ok(import);
    };
    let rows = from_lines(&source);
    let mut tx = store.begin().await.map_err(run_error)?;
    imports::start(&mut tx, company, id, clock.now())
        .await
        .map_err(run_error)?;
    tx.commit().await.map_err(run_error)?;
    let (mut counts, mut errors) = (import.counts, import.errors);
    let mut batches = 0;
    while (counts.processed as usize) < rows.len() {
        if max_batches.is_some_and(|m| batches >= m) {
            return get(store.clone()).await.map_err(run_error);
        }
        batches += 1;
        let start = counts.processed as usize;
        let batch = &rows[start..(start + batch_rows.max(1)).min(rows.len())];
        if !apply_batch(store, clock, company, id, batch, &mut counts, &mut errors)
            .await
            .map_err(run_error)?
        {
            return get(store.clone()).await.map_err(run_error);
        }
    }
    let now = clock.now();
    let message = format!(
        "import of {} cases from SmartAdvocate: {} created, {} updated, {} unchanged, {} failed",
        rows.len(),
        counts.created,
        counts.updated,
        counts.unchanged,
        counts.failed
    );
    let finish = async {
        let mut tx = store.begin().await?;
        imports::finish(&mut tx, company, id, None, now).await?;
        integrations::log(
            &mut tx,
            company,
            PROVIDER,
            &NewSyncEntry {
                direction: "inbound",
                operation: "import",
                record_ref: Some(&id.to_string()),
                outcome: if counts.failed == 0 {
                    SyncOutcome::Ok
                } else {
                    SyncOutcome::Error
                },
                error_kind: (counts.failed > 0).then_some(ErrorKind::Validation),
                message: Some(&message),
            },
            now,
        )
        .await?;
        tx.commit().await
    };
    finish.await.map_err(run_error)?;
    get(store.clone()).await.map_err(run_error)
}

fn run_error(e: StoreError) -> JobError {
    match e {
        StoreError::NotFound => JobError::Permanent("the import no longer exists".into()),
        e => JobError::retry(e.to_string()),
    }
}

/// The `smartadvocate.import` job.
pub struct ImportJob {
    store: Store,
    clock: Arc<dyn Clock>,
    clients: Clients,
}

fn target(job: &Job) -> Result<(CompanyId, Uuid), JobError> {
    let company = job
        .company_id
        .ok_or_else(|| JobError::Permanent("job has no company".into()))?;
    let id = job.payload["import_id"]
        .as_str()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| JobError::Permanent("job payload has no import_id".into()))?;
    Ok((company, id))
}

#[async_trait]
impl Handler for ImportJob {
    async fn run(&self, job: &Job) -> Result<(), JobError> {
        let (company, id) = target(job)?;
        run(
            &self.store,
            self.clock.as_ref(),
            &self.clients,
            company,
            id,
            BATCH_ROWS,
            None,
        )
        .await
        .map(drop)
    }

    async fn on_dead(&self, job: &Job, error: &str) {
        let Ok((company, id)) = target(job) else {
            return;
        };
        let result = async {
            let mut tx = self.store.begin().await?;
            imports::finish(&mut tx, company, id, Some(error), self.clock.now()).await?;
            tx.commit().await
        }
        .await;
        if let Err(e) = result {
            tracing::error!(import.id = %id, error = %e, "could not mark the import failed");
        }
    }
}

/// Adds the import job to the `crm` queue's registry.
pub fn register(
    registry: Registry,
    store: Store,
    clock: Arc<dyn Clock>,
    clients: Clients,
) -> Registry {
    registry.register(
        KIND,
        ImportJob {
            store,
            clock,
            clients,
        },
        RetryPolicy::standard(),
    )
}
