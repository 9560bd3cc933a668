//! Manual imports (SPEC LR14): an uploaded file, its progress counters and its row errors.
//! The file itself is kept (`source`) until the import finishes, so a job that dies half-way
//! resumes from `processed_rows`.
//!
//! An import comes from an uploaded CSV file ([`ImportOrigin::Csv`], created with its `source`)
//! or from the CRM's API ([`ImportOrigin::Api`], created without one: its job fetches the
//! records, stores them as CSV with [`set_fetched`], then applies them as an upload).

use casebridge_domain::ids::CompanyId;
use casebridge_domain::page::{Page, PageRequest};
use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use sqlx::FromRow;
use uuid::Uuid;

use crate::{parse_id, ts, Conn, Result, StoreError};

/// At most this many row errors are kept per import; `failed` still counts them all.
pub const MAX_ERRORS: usize = 1000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImportStatus {
    Queued,
    Running,
    Done,
    Failed,
}

impl ImportStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            ImportStatus::Queued => "queued",
            ImportStatus::Running => "running",
            ImportStatus::Done => "done",
            ImportStatus::Failed => "failed",
        }
    }

    fn parse(raw: &str) -> Option<Self> {
        Some(match raw {
            "queued" => ImportStatus::Queued,
            "running" => ImportStatus::Running,
            "done" => ImportStatus::Done,
            "failed" => ImportStatus::Failed,
            _ => return None,
        })
    }
}

/// Where an import's rows come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImportOrigin {
    /// An uploaded CSV file.
    Csv,
    /// Fetched from the CRM's API by the import's job.
    Api,
}

impl ImportOrigin {
    pub fn as_str(self) -> &'static str {
        match self {
            ImportOrigin::Csv => "csv",
            ImportOrigin::Api => "api",
        }
    }

    fn parse(raw: &str) -> Option<Self> {
        Some(match raw {
            "csv" => ImportOrigin::Csv,
            "api" => ImportOrigin::Api,
            _ => return None,
        })
    }
}

/// A row that could not be imported: its 1-based data row number (the header is not counted)
/// and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RowError {
    pub row: u64,
    pub message: String,
}

/// What the rows did so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    pub processed: u64,
    pub created: u64,
    pub updated: u64,
    pub unchanged: u64,
    pub failed: u64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Import {
    pub id: Uuid,
    pub company_id: CompanyId,
    pub provider: String,
    pub status: ImportStatus,
    pub origin: ImportOrigin,
    /// For an API import: the time its records were fetched changed since (`None`: all).
    pub fetch_since: Option<Timestamp>,
    /// For an API import: when the fetched records were stored; until then `total_rows` is 0.
    pub fetched_at: Option<Timestamp>,
    pub file_name: Option<String>,
    pub total_rows: u64,
    pub counts: Counts,
    pub errors: Vec<RowError>,
    /// Why the import as a whole failed (not a row error).
    pub failure: Option<String>,
    pub created_at: Timestamp,
    pub started_at: Option<Timestamp>,
    pub finished_at: Option<Timestamp>,
}

const COLUMNS: &str = "id, company_id, provider, status, origin, fetch_since, fetched_at,
    file_name, total_rows, processed_rows, created_count, updated_count, unchanged_count,
    failed_count, errors, failure, created_at, started_at, finished_at";

#[derive(FromRow)]
struct Row {
    id: String,
    company_id: String,
    provider: String,
    status: String,
    origin: String,
    fetch_since: Option<i64>,
    fetched_at: Option<i64>,
    file_name: Option<String>,
    total_rows: i64,
    processed_rows: i64,
    created_count: i64,
    updated_count: i64,
    unchanged_count: i64,
    failed_count: i64,
    errors: String,
    failure: Option<String>,
    created_at: i64,
    started_at: Option<i64>,
    finished_at: Option<i64>,
}

fn count(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

fn int(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

impl Row {
    fn into_model(self) -> Result<Import> {
        Ok(Import {
            id: parse_id("imports.id", &self.id)?,
            company_id: parse_id("imports.company_id", &self.company_id)?,
            provider: self.provider,
            status: ImportStatus::parse(&self.status)
                .ok_or_else(|| StoreError::Corrupt(format!("imports.status `{}`", self.status)))?,
            origin: ImportOrigin::parse(&self.origin)
                .ok_or_else(|| StoreError::Corrupt(format!("imports.origin `{}`", self.origin)))?,
            fetch_since: self.fetch_since.map(ts).transpose()?,
            fetched_at: self.fetched_at.map(ts).transpose()?,
            file_name: self.file_name,
            total_rows: count(self.total_rows),
            counts: Counts {
                processed: count(self.processed_rows),
                created: count(self.created_count),
                updated: count(self.updated_count),
                unchanged: count(self.unchanged_count),
                failed: count(self.failed_count),
            },
            errors: serde_json::from_str(&self.errors)
                .map_err(|e| StoreError::Corrupt(format!("imports.errors: {e}")))?,
            failure: self.failure,
            created_at: ts(self.created_at)?,
            started_at: self.started_at.map(ts).transpose()?,
            finished_at: self.finished_at.map(ts).transpose()?,
        })
    }
}

/// A new import, `queued`, holding its source file.
pub struct NewImport<'a> {
    pub provider: &'a str,
    pub file_name: Option<&'a str>,
    pub total_rows: u64,
    pub source: &'a str,
}

pub async fn create(
    conn: &mut Conn,
    company: CompanyId,
    new: &NewImport<'_>,
    now: Timestamp,
) -> Result<Import> {
    let row: Row = sqlx::query_as(&format!(
        "INSERT INTO imports (id, company_id, provider, status, file_name, total_rows, source,
                              created_at, updated_at)
         VALUES ($1, $2, $3, 'queued', $4, $5, $6, $7, $7) RETURNING {COLUMNS}"
    ))
    .bind(Uuid::now_v7().to_string())
    .bind(company.to_string())
    .bind(new.provider)
    .bind(new.file_name.map(str::to_owned))
    .bind(int(new.total_rows))
    .bind(new.source)
    .bind(now.as_millisecond())
    .fetch_one(&mut *conn)
    .await?;
    row.into_model()
}

/// A new import from the CRM's API, `queued`, without rows yet: its job fetches the records
/// changed since `since` (all when `None`) and stores them with [`set_fetched`].
pub async fn create_from_api(
    conn: &mut Conn,
    company: CompanyId,
    provider: &str,
    since: Option<Timestamp>,
    now: Timestamp,
) -> Result<Import> {
    let row: Row = sqlx::query_as(&format!(
        "INSERT INTO imports (id, company_id, provider, status, origin, fetch_since, total_rows,
                              created_at, updated_at)
         VALUES ($1, $2, $3, 'queued', 'api', $4, 0, $5, $5) RETURNING {COLUMNS}"
    ))
    .bind(Uuid::now_v7().to_string())
    .bind(company.to_string())
    .bind(provider)
    .bind(since.map(|t| t.as_millisecond()))
    .bind(now.as_millisecond())
    .fetch_one(&mut *conn)
    .await?;
    row.into_model()
}

/// Stores what an API import fetched (as the CSV an upload would be) and its row count. Only
/// once, and only while the import is unfinished: returns false when it was already stored or
/// the import has ended.
pub async fn set_fetched(
    conn: &mut Conn,
    company: CompanyId,
    id: Uuid,
    source: &str,
    total_rows: u64,
    now: Timestamp,
) -> Result<bool> {
    let done = sqlx::query(
        "UPDATE imports SET source = $3, total_rows = $4, fetched_at = $5, updated_at = $5
         WHERE company_id = $1 AND id = $2 AND origin = 'api' AND fetched_at IS NULL
           AND status IN ('queued', 'running')",
    )
    .bind(company.to_string())
    .bind(id.to_string())
    .bind(source)
    .bind(int(total_rows))
    .bind(now.as_millisecond())
    .execute(&mut *conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// The import, or `NotFound` (also for another company's).
pub async fn get(conn: &mut Conn, company: CompanyId, id: Uuid) -> Result<Import> {
    let row: Option<Row> = sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM imports WHERE company_id = $1 AND id = $2"
    ))
    .bind(company.to_string())
    .bind(id.to_string())
    .fetch_optional(&mut *conn)
    .await?;
    row.ok_or(StoreError::NotFound)?.into_model()
}

/// A company's imports with a provider, newest first.
pub async fn list(
    conn: &mut Conn,
    company: CompanyId,
    provider: &str,
    page: &PageRequest,
) -> Result<Page<Import>> {
    let rows: Vec<Row> = sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM imports
         WHERE company_id = $1 AND provider = $2 AND ($3 IS NULL OR id < $3)
         ORDER BY id DESC LIMIT $4"
    ))
    .bind(company.to_string())
    .bind(provider)
    .bind(page.after.clone())
    .bind(i64::from(page.limit) + 1)
    .fetch_all(&mut *conn)
    .await?;
    let items = rows
        .into_iter()
        .map(Row::into_model)
        .collect::<Result<Vec<_>>>()?;
    Ok(Page::from_overfetch(items, page.limit, |i| {
        i.id.to_string()
    }))
}

/// The uploaded (or fetched) file, while the import has not finished (`None` afterwards, and
/// for an API import that has not fetched yet).
pub async fn source(conn: &mut Conn, company: CompanyId, id: Uuid) -> Result<Option<String>> {
    let row: Option<(Option<String>,)> =
        sqlx::query_as("SELECT source FROM imports WHERE company_id = $1 AND id = $2")
            .bind(company.to_string())
            .bind(id.to_string())
            .fetch_optional(&mut *conn)
            .await?;
    Ok(row.ok_or(StoreError::NotFound)?.0)
}

/// Marks the import running (keeping the first start time).
pub async fn start(conn: &mut Conn, company: CompanyId, id: Uuid, now: Timestamp) -> Result<()> {
    sqlx::query(
        "UPDATE imports SET status = 'running', started_at = COALESCE(started_at, $3),
                updated_at = $3
         WHERE company_id = $1 AND id = $2 AND status IN ('queued', 'running')",
    )
    .bind(company.to_string())
    .bind(id.to_string())
    .bind(now.as_millisecond())
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Records the progress after a batch, in the batch's transaction. Only moves forward from
/// `from` processed rows: returns false (write nothing else) when another run already did.
pub async fn record_progress(
    conn: &mut Conn,
    company: CompanyId,
    id: Uuid,
    from: u64,
    counts: &Counts,
    errors: &[RowError],
    now: Timestamp,
) -> Result<bool> {
    let errors = serde_json::to_string(&errors[..errors.len().min(MAX_ERRORS)])
        .map_err(|e| StoreError::Corrupt(format!("imports.errors: {e}")))?;
    let done = sqlx::query(
        "UPDATE imports SET processed_rows = $4, created_count = $5, updated_count = $6,
                unchanged_count = $7, failed_count = $8, errors = $9, updated_at = $10
         WHERE company_id = $1 AND id = $2 AND processed_rows = $3 AND status = 'running'",
    )
    .bind(company.to_string())
    .bind(id.to_string())
    .bind(int(from))
    .bind(int(counts.processed))
    .bind(int(counts.created))
    .bind(int(counts.updated))
    .bind(int(counts.unchanged))
    .bind(int(counts.failed))
    .bind(errors)
    .bind(now.as_millisecond())
    .execute(&mut *conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Ends the import (`done`, or `failed` with the reason) and drops the stored file.
pub async fn finish(
    conn: &mut Conn,
    company: CompanyId,
    id: Uuid,
    failure: Option<&str>,
    now: Timestamp,
) -> Result<()> {
    sqlx::query(
        "UPDATE imports SET status = CASE WHEN $3 IS NULL THEN 'done' ELSE 'failed' END,
                failure = $3, source = NULL, finished_at = $4, updated_at = $4
         WHERE company_id = $1 AND id = $2 AND status IN ('queued', 'running')",
    )
    .bind(company.to_string())
    .bind(id.to_string())
    .bind(failure.map(str::to_owned))
    .bind(now.as_millisecond())
    .execute(&mut *conn)
    .await?;
    Ok(())
}
