//! Manual import of existing Law Ruler leads from a CSV file (SPEC LR14).
//!
//! A CSV row with its header is the same list of (field, value) pairs a webhook carries, so each
//! row goes through the webhook's path: [`parse_lead`] (tolerant names, the ten required fields),
//! the dedupe receipt ([`integrations::record_receipt`]: a row whose content equals what was last
//! applied for its Lead ID is `unchanged`) and [`apply_lead`] (client by Primary Contact ID, case
//! by Lead ID). Later webhooks therefore find the imported records by the same external refs.
//!
//! The upload ([`enqueue`]) checks the header and stores the file with an `imports` row and a
//! `lawruler.import` job in one transaction; the job ([`ImportJob`]) applies the rows in batches
//! of [`BATCH_ROWS`], each batch in one transaction together with the import's progress counters,
//! so a run that dies resumes after the last committed batch. Bad rows are recorded with their
//! 1-based data row number (the header row is not counted) and do not stop the import.
//!
//! **From the Law Ruler API** (LR14's "or a pull from the Law Ruler API"): [`enqueue_from_api`]
//! stores an import without a file (origin `api`, with an optional `since`) and the same job.
//! The job first fetches the leads changed since then (all leads without one) with the
//! connection's client, sorts them by creation, and stores them in the import as the CSV an
//! upload of them would be ([`fetch`], [`records_csv`]: the webhook's columns, built by
//! [`lead_fields`](super::lead::lead_fields) as the hourly pull builds them), with the row count
//! (`total_rows` is 0 until then). From there it is a CSV import: same batches, progress, resume,
//! row errors and dedupe, so importing again changes nothing and later webhooks and pulls match
//! the same records. A fetch that fails with 429 or 5xx is retried by the queue; a wrong
//! connection value shows on the integration as a configuration error and fails the import; any
//! other refusal fails the import with Law Ruler's reason. The job needs Law Ruler clients for
//! this ([`ImportJob::clients`], [`register_with_clients`]); a worker registered without them
//! fails API imports with a message saying so, and still runs CSV imports.

use std::sync::Arc;

use async_trait::async_trait;
use casebridge_domain::clock::Clock;
use casebridge_domain::ids::CompanyId;
use casebridge_domain::integrations::{ErrorKind, SyncOutcome};
use casebridge_domain::jobs::{Job, NewJob};
use casebridge_domain::retry::RetryPolicy;
use casebridge_queue::{Handler, JobError, Registry};
use casebridge_store::imports::{
    self, Counts, Import, ImportOrigin, ImportStatus, NewImport, RowError,
};
use casebridge_store::integrations::{self, Health, NewSyncEntry};
use casebridge_store::{jobs, Store, StoreError, Tx};
use jiff::Timestamp;
use serde_json::json;
use uuid::Uuid;

use super::client::{LawRulerError, LeadRecord};
use super::connection::Clients;
use super::inbound::{normalize_key, REQUIRED};
use super::ingest::PROVIDER;
use super::lead::{apply_row, lead_fields, Outcome, RowFailure, WEBHOOK_LABELS};

/// The queue import jobs run on.
pub const QUEUE: &str = "crm";
/// The job kind; its payload is `{"import_id": "<uuid>"}`.
pub const KIND: &str = "lawruler.import";
/// Rows applied per transaction (and per progress update).
pub const BATCH_ROWS: usize = 200;

/// Why an uploaded file cannot be imported at all.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FileError {
    #[error("the file is empty; it needs a header row naming the columns")]
    Empty,
    #[error("the header row cannot be read: {0}")]
    BadHeader(String),
    /// Required columns, by Law Ruler's labels.
    #[error("missing required columns: {}", .0.join(", "))]
    MissingColumns(Vec<&'static str>),
}

/// A data row: its 1-based number (header not counted) and its fields, or why it is unreadable.
type NumberedRow = (u64, Result<Vec<(String, String)>, String>);

/// The file's header and its data rows.
struct Rows {
    header: Vec<String>,
    rows: Vec<NumberedRow>,
}

fn read(csv_text: &str) -> Result<Rows, FileError> {
    let text = csv_text.strip_prefix('\u{feff}').unwrap_or(csv_text);
    let mut reader = csv::ReaderBuilder::new()
        .flexible(true)
        .has_headers(true)
        .from_reader(text.as_bytes());
    let header: Vec<String> = reader
        .headers()
        .map_err(|e| FileError::BadHeader(e.to_string()))?
        .iter()
        .map(|h| h.trim().to_owned())
        .collect();
    if header.iter().all(String::is_empty) {
        return Err(FileError::Empty);
    }
    let names: Vec<String> = header.iter().map(|h| normalize_key(h)).collect();
    let missing: Vec<&'static str> = REQUIRED
        .iter()
        .filter(|(k, _)| !names.iter().any(|n| n == k))
        .map(|(_, label)| *label)
        .collect();
    if !missing.is_empty() {
        return Err(FileError::MissingColumns(missing));
    }
    let mut rows = Vec::new();
    for (i, record) in reader.records().enumerate() {
        let n = i as u64 + 1;
        let row = match record {
            Err(e) => Err(format!("the row cannot be read: {e}")),
            Ok(r) if r.len() != header.len() => Err(format!(
                "the row has {} values, the header has {} columns",
                r.len(),
                header.len()
            )),
            Ok(r) => Ok(header
                .iter()
                .cloned()
                .zip(r.iter().map(str::to_owned))
                .collect()),
        };
        rows.push((n, row));
    }
    Ok(Rows { header, rows })
}

/// Checks a file before it is accepted: a header with every required column. Returns the number
/// of data rows.
pub fn check(csv_text: &str) -> Result<u64, FileError> {
    let rows = read(csv_text)?;
    debug_assert!(!rows.header.is_empty());
    Ok(rows.rows.len() as u64)
}

/// Stores an import of `csv_text` and its job, in the caller's transaction. The file must have
/// passed [`check`] (whose row count is `total_rows`).
pub async fn enqueue(
    tx: &mut Tx,
    company: CompanyId,
    file_name: Option<&str>,
    csv_text: &str,
    total_rows: u64,
    now: Timestamp,
) -> Result<Import, StoreError> {
    let import = imports::create(
        tx,
        company,
        &NewImport {
            provider: PROVIDER,
            file_name,
            total_rows,
            source: csv_text,
        },
        now,
    )
    .await?;
    enqueue_job(tx, company, import.id, now).await?;
    Ok(import)
}

async fn enqueue_job(
    tx: &mut Tx,
    company: CompanyId,
    id: Uuid,
    now: Timestamp,
) -> Result<(), StoreError> {
    jobs::enqueue(
        tx,
        &NewJob::new(QUEUE, KIND, json!({ "import_id": id.to_string() }))
            .company(company)
            // One import of a company at a time, in upload order.
            .ordering_key(format!("lawruler.import/{company}")),
        now,
    )
    .await?;
    Ok(())
}

/// Why an import from the Law Ruler API cannot start.
#[derive(Debug, thiserror::Error)]
pub enum ApiImportError {
    #[error(
        "Law Ruler is not connected; connect it (Username, Password, Client Root, Client Secret, \
         Key) before importing from the Law Ruler API"
    )]
    NotConnected,
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Stores an import from the Law Ruler API and its job, in the caller's transaction: the job
/// fetches the leads changed since `since` (every lead when `None`), then applies them as a CSV
/// import. Needs a connected integration.
pub async fn enqueue_from_api(
    tx: &mut Tx,
    company: CompanyId,
    since: Option<Timestamp>,
    now: Timestamp,
) -> Result<Import, ApiImportError> {
    let connected = integrations::get(tx, company, PROVIDER)
        .await?
        .is_some_and(|i| i.credentials_sealed.is_some());
    if !connected {
        return Err(ApiImportError::NotConnected);
    }
    let import = imports::create_from_api(tx, company, PROVIDER, since, now).await?;
    enqueue_job(tx, company, import.id, now).await?;
    Ok(import)
}

/// The CSV an upload of `records` would be: a header of the webhook's columns
/// ([`WEBHOOK_LABELS`]) and one row per lead, in the given order.
pub fn records_csv(records: &[LeadRecord]) -> String {
    let mut w = csv::Writer::from_writer(Vec::new());
    w.write_record(WEBHOOK_LABELS).expect("writing to memory");
    for r in records {
        w.write_record(lead_fields(r).iter().map(|(_, v)| v))
            .expect("writing to memory");
    }
    String::from_utf8(w.into_inner().expect("writing to memory")).expect("UTF-8 in, UTF-8 out")
}

/// Why a fetch stopped without settling the import.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Law Ruler failed in a way worth retrying (429, 5xx, timeout).
    #[error(transparent)]
    Retry(LawRulerError),
}

/// Ends an import whose fetch cannot succeed and logs why; a wrong connection value also shows
/// on the integration as its configuration error.
async fn fetch_failed(
    store: &Store,
    clock: &dyn Clock,
    company: CompanyId,
    id: Uuid,
    message: &str,
    config_error: Option<&str>,
) -> Result<Import, StoreError> {
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
    let import = imports::get(&mut tx, company, id).await?;
    tx.commit().await?;
    Ok(import)
}

/// The fetch step of an import from the Law Ruler API: reads the leads and stores them in the
/// import as CSV with the row count. Does nothing for a CSV import, an import that already
/// fetched, or one that has ended. A failure that retrying cannot fix ends the import as
/// `failed` (and returns it); a retryable one is [`FetchError::Retry`], with the import left
/// `running` for the next attempt.
pub async fn fetch(
    store: &Store,
    clock: &dyn Clock,
    clients: &Clients,
    company: CompanyId,
    id: Uuid,
) -> Result<Import, FetchError> {
    let (import, integration) = {
        let mut conn = store.conn().await?;
        let import = imports::get(&mut conn, company, id).await?;
        let integration = integrations::get(&mut conn, company, PROVIDER).await?;
        (import, integration)
    };
    if !needs_fetch(&import) {
        return Ok(import);
    }
    let mut tx = store.begin().await?;
    imports::start(&mut tx, company, id, clock.now()).await?;
    tx.commit().await?;

    let client = match integration.filter(|i| i.credentials_sealed.is_some()) {
        Some(i) => clients.for_integration(&i),
        None => Ok(None),
    };
    let since = import.fetch_since.unwrap_or(Timestamp::UNIX_EPOCH);
    let fetched = match client {
        Ok(Some(c)) => c.leads_changed_since(since).await,
        Ok(None) => {
            let message = "Law Ruler is no longer connected; connect it and start the import again";
            return Ok(fetch_failed(store, clock, company, id, message, None).await?);
        }
        Err(e) => Err(e),
    };
    let mut records = match fetched {
        Ok(r) => r,
        Err(e) if e.is_retryable() => return Err(FetchError::Retry(e)),
        Err(e) => {
            let message = format!("reading the leads from Law Ruler failed: {e}");
            let config = e.is_config().then(|| e.to_string());
            return Ok(fetch_failed(store, clock, company, id, &message, config.as_deref()).await?);
        }
    };
    // Oldest lead first, so row numbers follow the leads' creation.
    records.sort_by(|a, b| (a.created_at, &a.lead_id).cmp(&(b.created_at, &b.lead_id)));
    let text = records_csv(&records);
    let mut tx = store.begin().await?;
    imports::set_fetched(
        &mut tx,
        company,
        id,
        &text,
        records.len() as u64,
        clock.now(),
    )
    .await?;
    let import = imports::get(&mut tx, company, id).await?;
    tx.commit().await?;
    Ok(import)
}

/// Whether an import still has to fetch its rows from the Law Ruler API.
fn needs_fetch(import: &Import) -> bool {
    import.origin == ImportOrigin::Api
        && import.fetched_at.is_none()
        && matches!(import.status, ImportStatus::Queued | ImportStatus::Running)
}

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    Store(#[from] StoreError),
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

/// Runs (or resumes) an import: applies the rows after `processed_rows` in batches of
/// `batch_rows`, stopping after `max_batches` when given (tests and tools use that to look at
/// progress half-way). Returns the import as it then is. An import from the Law Ruler API that
/// has not fetched its rows yet ([`fetch`]) is returned as it is.
pub async fn run(
    store: &Store,
    clock: &dyn Clock,
    company: CompanyId,
    id: Uuid,
    batch_rows: usize,
    max_batches: Option<usize>,
) -> Result<Import, RunError> {
    let batch_rows = batch_rows.max(1);
    let mut conn = store.conn().await?;
    let import = imports::get(&mut conn, company, id).await?;
    if matches!(import.status, ImportStatus::Done | ImportStatus::Failed) {
        return Ok(import);
    }
    let Some(source) = imports::source(&mut conn, company, id).await? else {
        return Ok(import);
    };
    drop(conn);
    let mut tx = store.begin().await?;
    imports::start(&mut tx, company, id, clock.now()).await?;
    tx.commit().await?;
    let rows = match read(&source) {
        Ok(r) => r.rows,
        Err(e) => {
            // Checked at upload; only a changed parser could get here.
            let mut tx = store.begin().await?;
            imports::finish(&mut tx, company, id, Some(&e.to_string()), clock.now()).await?;
            let import = imports::get(&mut tx, company, id).await?;
            tx.commit().await?;
            return Ok(import);
        }
    };

    let mut counts = import.counts;
    let mut errors = import.errors;
    let mut batches = 0;
    while (counts.processed as usize) < rows.len() {
        if max_batches.is_some_and(|m| batches >= m) {
            let mut conn = store.conn().await?;
            return Ok(imports::get(&mut conn, company, id).await?);
        }
        batches += 1;
        let start = counts.processed as usize;
        let batch = &rows[start..(start + batch_rows).min(rows.len())];
        if !apply_batch(store, clock, company, id, batch, &mut counts, &mut errors).await? {
            // Another run of this import moved it on: leave the rest to it.
            let mut conn = store.conn().await?;
            return Ok(imports::get(&mut conn, company, id).await?);
        }
    }

    let now = clock.now();
    let mut tx = store.begin().await?;
    imports::finish(&mut tx, company, id, None, now).await?;
    let what = match import.origin {
        ImportOrigin::Csv => format!("import of {} rows", rows.len()),
        ImportOrigin::Api => format!("import of {} leads from the Law Ruler API", rows.len()),
    };
    let message = format!(
        "{what}: {} created, {} updated, {} unchanged, {} failed",
        counts.created, counts.updated, counts.unchanged, counts.failed
    );
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
    tx.commit().await?;
    let mut conn = store.conn().await?;
    Ok(imports::get(&mut conn, company, id).await?)
}

/// Applies one batch in one transaction with the progress update. If a row fails once it has
/// started writing, the batch is rolled back and applied again a row per transaction, so the
/// bad row's partial writes are dropped and the good rows are kept. Returns false when another
/// run already recorded this batch.
async fn apply_batch(
    store: &Store,
    clock: &dyn Clock,
    company: CompanyId,
    id: Uuid,
    batch: &[NumberedRow],
    counts: &mut Counts,
    errors: &mut Vec<RowError>,
) -> Result<bool, RunError> {
    let now = clock.now();
    let from = counts.processed;
    let mut next = *counts;
    let mut next_errors = errors.clone();
    let mut tx = store.begin().await?;
    let mut clean = true;
    for (row, fields) in batch {
        next.processed += 1;
        let fields = match fields {
            Ok(f) => f,
            Err(msg) => {
                fail(&mut next, &mut next_errors, *row, msg.clone());
                continue;
            }
        };
        match apply_row(&mut tx, company, fields, now).await? {
            Ok(outcome) => tally(&mut next, outcome),
            Err(RowFailure {
                message,
                wrote: false,
            }) => fail(&mut next, &mut next_errors, *row, message),
            Err(RowFailure { wrote: true, .. }) => {
                clean = false;
                break;
            }
        }
    }
    if clean {
        if !imports::record_progress(&mut tx, company, id, from, &next, &next_errors, now).await? {
            return Ok(false);
        }
        // The batch brought Law Ruler statuses with it (health, LR12), once per batch.
        integrations::touch_health(&mut tx, company, PROVIDER, Health::StatusPull, now).await?;
        tx.commit().await?;
        *counts = next;
        *errors = next_errors;
        return Ok(true);
    }
    tx.rollback().await?;

    // A row per transaction, each with its progress.
    for (row, fields) in batch {
        let from = counts.processed;
        let mut next = *counts;
        let mut next_errors = errors.clone();
        next.processed += 1;
        let mut tx = store.begin().await?;
        let result = match fields {
            Ok(f) => apply_row(&mut tx, company, f, now).await?,
            Err(message) => Err(RowFailure {
                message: message.clone(),
                wrote: false,
            }),
        };
        match result {
            Ok(outcome) => tally(&mut next, outcome),
            Err(RowFailure { message, wrote }) => {
                if wrote {
                    tx.rollback().await?;
                    tx = store.begin().await?;
                }
                fail(&mut next, &mut next_errors, *row, message);
            }
        }
        if !imports::record_progress(&mut tx, company, id, from, &next, &next_errors, now).await? {
            return Ok(false);
        }
        integrations::touch_health(&mut tx, company, PROVIDER, Health::StatusPull, now).await?;
        tx.commit().await?;
        *counts = next;
        *errors = next_errors;
    }
    Ok(true)
}

/// The `lawruler.import` job.
pub struct ImportJob {
    store: Store,
    clock: Arc<dyn Clock>,
    batch_rows: usize,
    clients: Option<Clients>,
}

impl ImportJob {
    /// A job that runs CSV imports; add [`ImportJob::clients`] for imports from the Law Ruler
    /// API.
    pub fn new(store: Store, clock: Arc<dyn Clock>) -> Self {
        Self {
            store,
            clock,
            batch_rows: BATCH_ROWS,
            clients: None,
        }
    }

    /// The Law Ruler clients imports from the Law Ruler API fetch with.
    pub fn clients(mut self, clients: Clients) -> Self {
        self.clients = Some(clients);
        self
    }

    /// Rows per transaction (default [`BATCH_ROWS`]).
    pub fn batch_rows(mut self, rows: usize) -> Self {
        self.batch_rows = rows.max(1);
        self
    }
}

fn run_error(e: StoreError) -> JobError {
    match e {
        StoreError::NotFound => JobError::Permanent("the import no longer exists".into()),
        e => JobError::retry(e.to_string()),
    }
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
        let import = {
            let mut conn = self.store.conn().await.map_err(run_error)?;
            imports::get(&mut conn, company, id)
                .await
                .map_err(run_error)?
        };
        if needs_fetch(&import) {
            let Some(clients) = &self.clients else {
                return Err(JobError::Permanent(
                    "this worker cannot import from the Law Ruler API: its import job was \
                     registered without Law Ruler clients (import::register_with_clients)"
                        .into(),
                ));
            };
            match fetch(&self.store, self.clock.as_ref(), clients, company, id).await {
                Ok(_) => {}
                Err(FetchError::Retry(e)) => {
                    return Err(JobError::Retry {
                        error: e.to_string(),
                        retry_after: e.retry_after(),
                    })
                }
                Err(FetchError::Store(e)) => return Err(run_error(e)),
            }
        }
        match run(
            &self.store,
            self.clock.as_ref(),
            company,
            id,
            self.batch_rows,
            None,
        )
        .await
        {
            Ok(_) => Ok(()),
            Err(RunError::Store(e)) => Err(run_error(e)),
        }
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

/// Adds the import job to a queue's registry (the `crm` queue), for CSV imports only: imports
/// from the Law Ruler API fail on it with a message naming [`register_with_clients`].
pub fn register(registry: Registry, store: Store, clock: Arc<dyn Clock>) -> Registry {
    registry.register(KIND, ImportJob::new(store, clock), RetryPolicy::standard())
}

/// Adds the import job to a queue's registry (the `crm` queue), for CSV imports and imports
/// from the Law Ruler API.
pub fn register_with_clients(
    registry: Registry,
    store: Store,
    clock: Arc<dyn Clock>,
    clients: Clients,
) -> Registry {
    registry.register(
        KIND,
        ImportJob::new(store, clock).clients(clients),
        RetryPolicy::standard(),
    )
}

/// A registry with only the import job, for the `crm` queue.
pub fn registry(store: Store, clock: Arc<dyn Clock>) -> Registry {
    register(Registry::new(), store, clock)
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEADER: &str = "Lead ID,Case Type ID,Case Type,Status ID,Status,Full Name,Created Date,Primary Contact ID,First Name,Last Name";

    #[test]
    fn header_names_every_missing_column() {
        assert_eq!(check(""), Err(FileError::Empty));
        assert_eq!(
            check("lead_id,casetypeid,Case Type,Status ID,Full Name\n"),
            Err(FileError::MissingColumns(vec![
                "Status",
                "Created Date",
                "Primary Contact ID",
                "First Name",
                "Last Name"
            ]))
        );
        assert_eq!(check(&format!("\u{feff}{HEADER}\n")), Ok(0));
    }

    #[test]
    fn rows_are_numbered_from_one_without_the_header() {
        let text = format!(
            "{HEADER}\n1,12,Auto,7,Intake,Jane Doe,2026-11-01,PC-1,Jane,Doe\n2,12,Auto\n\"3\",12,Auto,7,Intake,\"Doe, John\",2026-11-01,PC-3,John,Doe\n"
        );
        let rows = read(&text).unwrap().rows;
        assert_eq!(rows.len(), 3);
        assert!(rows[0].1.is_ok());
        assert_eq!(rows[1].0, 2);
        assert_eq!(
            rows[1].1.as_ref().unwrap_err(),
            "the row has 3 values, the header has 10 columns"
        );
        let third = rows[2].1.as_ref().unwrap();
        assert_eq!(third[5], ("Full Name".to_owned(), "Doe, John".to_owned()));
    }
}
