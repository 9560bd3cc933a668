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

use std::sync::Arc;

use async_trait::async_trait;
use casebridge_domain::clock::Clock;
use casebridge_domain::ids::CompanyId;
use casebridge_domain::integrations::{ErrorKind, SyncOutcome};
use casebridge_domain::jobs::{Job, NewJob};
use casebridge_domain::retry::RetryPolicy;
use casebridge_queue::{Handler, JobError, Registry};
use casebridge_store::imports::{self, Counts, Import, NewImport, RowError};
use casebridge_store::integrations::{self, NewSyncEntry};
use casebridge_store::{jobs, Store, StoreError, Tx};
use jiff::Timestamp;
use serde_json::json;
use uuid::Uuid;

use super::inbound::{content_hash, normalize_key, parse_lead, REQUIRED};
use super::ingest::{apply_lead, IngestError, PROVIDER};

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
    jobs::enqueue(
        tx,
        &NewJob::new(QUEUE, KIND, json!({ "import_id": import.id.to_string() }))
            .company(company)
            // One import of a company at a time, in upload order.
            .ordering_key(format!("lawruler.import/{company}")),
        now,
    )
    .await?;
    Ok(import)
}

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What one row did.
enum Outcome {
    Created,
    Updated,
    Unchanged,
}

/// A row's own failure: the message for the report, and whether it happened after the row
/// started writing (the transaction must then be rolled back).
struct RowFailure {
    message: String,
    wrote: bool,
}

/// Applies one row inside `tx`.
async fn apply_row(
    tx: &mut Tx,
    company: CompanyId,
    fields: &[(String, String)],
    now: Timestamp,
) -> Result<Result<Outcome, RowFailure>, StoreError> {
    let lead = match parse_lead(&[], fields) {
        Ok(l) => l,
        Err(e) => {
            return Ok(Err(RowFailure {
                message: e.to_string(),
                wrote: false,
            }))
        }
    };
    let failed = |message: String| {
        Ok(Err(RowFailure {
            message,
            wrote: true,
        }))
    };
    let hash = content_hash(&[], fields);
    if !integrations::record_receipt(tx, company, PROVIDER, &lead.lead_id, &hash, now).await? {
        return Ok(Ok(Outcome::Unchanged));
    }
    match apply_lead(tx, company, &lead, now).await {
        Ok(a) if a.case_created => Ok(Ok(Outcome::Created)),
        Ok(_) => Ok(Ok(Outcome::Updated)),
        Err(IngestError::Invalid(v)) => failed(format!("Lead ID {}: {v}", lead.lead_id)),
        Err(IngestError::Store(StoreError::Conflict(m))) => failed(format!(
            "Lead ID {}: conflicts with an existing record ({m})",
            lead.lead_id
        )),
        Err(IngestError::Store(e)) => Err(e),
    }
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
/// progress half-way). Returns the import as it then is.
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
    if matches!(
        import.status,
        imports::ImportStatus::Done | imports::ImportStatus::Failed
    ) {
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
    let message = format!(
        "import of {} rows: {} created, {} updated, {} unchanged, {} failed",
        rows.len(),
        counts.created,
        counts.updated,
        counts.unchanged,
        counts.failed
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
}

impl ImportJob {
    pub fn new(store: Store, clock: Arc<dyn Clock>) -> Self {
        Self {
            store,
            clock,
            batch_rows: BATCH_ROWS,
        }
    }

    /// Rows per transaction (default [`BATCH_ROWS`]).
    pub fn batch_rows(mut self, rows: usize) -> Self {
        self.batch_rows = rows.max(1);
        self
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
            Err(RunError::Store(StoreError::NotFound)) => {
                Err(JobError::Permanent("the import no longer exists".into()))
            }
            Err(RunError::Store(e)) => Err(JobError::retry(e.to_string())),
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

/// Adds the import job to a queue's registry (the `crm` queue).
pub fn register(registry: Registry, store: Store, clock: Arc<dyn Clock>) -> Registry {
    registry.register(KIND, ImportJob::new(store, clock), RetryPolicy::standard())
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
