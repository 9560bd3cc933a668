//! Files uploaded to the platform: case documents and call recordings. A row holds a file's
//! metadata and the key of its bytes in the object store (`casebridge-files`); rows written
//! before the object store still hold their bytes inline until `casebridge files migrate` moves
//! them. The upload reservations (`file_uploads`) are here too: a key is reserved before its
//! object is written and claimed by the transaction that inserts the row naming it.

use casebridge_domain::ids::{CallId, CaseId, CompanyId};
use casebridge_domain::page::{Page, PageRequest};
use jiff::Timestamp;
use sqlx::FromRow;
use uuid::Uuid;

use crate::{parse_opt_id, ts, Conn, Result, StoreError};

/// What a stored file is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DocumentKind {
    Document,
    Recording,
}

impl DocumentKind {
    pub fn as_str(self) -> &'static str {
        match self {
            DocumentKind::Document => "document",
            DocumentKind::Recording => "recording",
        }
    }
}

/// A stored file's metadata (the bytes are read separately).
#[derive(Debug, Clone, PartialEq)]
pub struct Document {
    pub id: String,
    pub case_id: Option<CaseId>,
    pub call_id: Option<CallId>,
    pub kind: DocumentKind,
    pub file_name: String,
    pub content_type: String,
    pub size: u64,
    /// Hex SHA-256 of the bytes.
    pub sha256: String,
    pub created_at: Timestamp,
}

/// A document whose bytes are already in the object store under `object_key`.
pub struct NewDocument<'a> {
    /// From [`new_id`], chosen before the upload because the object key names it.
    pub id: &'a str,
    pub case_id: Option<CaseId>,
    pub call_id: Option<CallId>,
    pub kind: DocumentKind,
    pub file_name: &'a str,
    pub content_type: &'a str,
    pub size: u64,
    /// Hex SHA-256 of the bytes.
    pub sha256: &'a str,
    pub object_key: &'a str,
}

/// Where a document's bytes are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Content {
    /// In the object store, under this key.
    Object(String),
    /// Still in the row (written before the object store; `casebridge files migrate` moves it).
    Inline(Vec<u8>),
}

/// A fresh document id (time-ordered).
pub fn new_id() -> String {
    Uuid::now_v7().to_string()
}

const COLUMNS: &str =
    "id, case_id, call_id, kind, file_name, content_type, size, sha256, created_at";

#[derive(FromRow)]
struct Row {
    id: String,
    case_id: Option<String>,
    call_id: Option<String>,
    kind: String,
    file_name: String,
    content_type: String,
    size: i64,
    sha256: String,
    created_at: i64,
}

impl Row {
    fn into_model(self) -> Result<Document> {
        Ok(Document {
            case_id: parse_opt_id("documents.case_id", self.case_id.as_deref())?,
            call_id: parse_opt_id("documents.call_id", self.call_id.as_deref())?,
            kind: match self.kind.as_str() {
                "document" => DocumentKind::Document,
                "recording" => DocumentKind::Recording,
                other => return Err(StoreError::Corrupt(format!("documents.kind `{other}`"))),
            },
            file_name: self.file_name,
            content_type: self.content_type,
            size: u64::try_from(self.size).unwrap_or(0),
            sha256: self.sha256,
            created_at: ts(self.created_at)?,
            id: self.id,
        })
    }
}

pub async fn create(
    conn: &mut Conn,
    company: CompanyId,
    doc: &NewDocument<'_>,
    now: Timestamp,
) -> Result<Document> {
    sqlx::query(
        "INSERT INTO documents (id, company_id, case_id, call_id, kind, file_name, content_type,
                                size, sha256, object_key, created_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
    )
    .bind(doc.id)
    .bind(company.to_string())
    .bind(doc.case_id.map(|c| c.to_string()))
    .bind(doc.call_id.map(|c| c.to_string()))
    .bind(doc.kind.as_str())
    .bind(doc.file_name)
    .bind(doc.content_type)
    .bind(i64::try_from(doc.size).unwrap_or(i64::MAX))
    .bind(doc.sha256)
    .bind(doc.object_key)
    .bind(now.as_millisecond())
    .execute(&mut *conn)
    .await?;
    Ok(Document {
        id: doc.id.to_owned(),
        case_id: doc.case_id,
        call_id: doc.call_id,
        kind: doc.kind,
        file_name: doc.file_name.to_owned(),
        content_type: doc.content_type.to_owned(),
        size: doc.size,
        sha256: doc.sha256.to_owned(),
        created_at: now,
    })
}

/// A new version of a document's file whose bytes are already in the object store under
/// `object_key` (a document the CRM changed).
pub struct NewVersion<'a> {
    pub file_name: &'a str,
    pub content_type: &'a str,
    pub size: u64,
    /// Hex SHA-256 of the bytes.
    pub sha256: &'a str,
    pub object_key: &'a str,
}

/// Points a document at a new version of its file; returns the object key it named before
/// (`None` when it had its bytes inline, which are dropped). `NotFound` for an unknown id. Run
/// it in a transaction: it reads, then writes.
pub async fn replace_file(
    conn: &mut Conn,
    company: CompanyId,
    id: &str,
    version: &NewVersion<'_>,
) -> Result<Option<String>> {
    let old = match content(conn, company, id).await? {
        Content::Object(key) => Some(key),
        Content::Inline(_) => None,
    };
    sqlx::query(
        "UPDATE documents SET file_name = $3, content_type = $4, size = $5, sha256 = $6,
                object_key = $7, bytes = NULL
          WHERE company_id = $1 AND id = $2",
    )
    .bind(company.to_string())
    .bind(id)
    .bind(version.file_name)
    .bind(version.content_type)
    .bind(i64::try_from(version.size).unwrap_or(i64::MAX))
    .bind(version.sha256)
    .bind(version.object_key)
    .execute(&mut *conn)
    .await?;
    Ok(old)
}

/// Reserves an object key before its object is written (in its own, committed transaction).
pub async fn reserve_upload(
    conn: &mut Conn,
    company: CompanyId,
    object_key: &str,
    now: Timestamp,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO file_uploads (object_key, company_id, reserved_at) VALUES ($1, $2, $3)",
    )
    .bind(object_key)
    .bind(company.to_string())
    .bind(now.as_millisecond())
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Ends a reservation: in the transaction that inserts the row naming the object, or in the
/// sweep's (then only when reserved before `older_than`). `false` when it was already gone (the
/// sweep took it, so its object may be deleted: the row must not commit), or is too recent.
/// The deletion locks the reservation, so an upload and the sweep cannot both win.
pub async fn end_reservation(
    conn: &mut Conn,
    object_key: &str,
    older_than: Option<Timestamp>,
) -> Result<bool> {
    let done = sqlx::query("DELETE FROM file_uploads WHERE object_key = $1 AND reserved_at < $2")
        .bind(object_key)
        .bind(older_than.map_or(i64::MAX, |t| t.as_millisecond()))
        .execute(&mut *conn)
        .await?;
    Ok(done.rows_affected() == 1)
}

/// Keys reserved before `before` and never claimed: objects whose row never committed.
pub async fn stale_reservations(
    conn: &mut Conn,
    before: Timestamp,
    limit: u32,
) -> Result<Vec<String>> {
    Ok(sqlx::query_scalar(
        "SELECT object_key FROM file_uploads WHERE reserved_at < $1
          ORDER BY reserved_at, object_key LIMIT $2",
    )
    .bind(before.as_millisecond())
    .bind(i64::from(limit))
    .fetch_all(&mut *conn)
    .await?)
}

pub async fn get(conn: &mut Conn, company: CompanyId, id: &str) -> Result<Document> {
    let row: Option<Row> = sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM documents WHERE company_id = $1 AND id = $2"
    ))
    .bind(company.to_string())
    .bind(id)
    .fetch_optional(&mut *conn)
    .await?;
    row.ok_or(StoreError::NotFound)?.into_model()
}

/// Where a stored file's bytes are.
pub async fn content(conn: &mut Conn, company: CompanyId, id: &str) -> Result<Content> {
    let row: Option<(Option<String>, Option<Vec<u8>>)> =
        sqlx::query_as("SELECT object_key, bytes FROM documents WHERE company_id = $1 AND id = $2")
            .bind(company.to_string())
            .bind(id)
            .fetch_optional(&mut *conn)
            .await?;
    match row.ok_or(StoreError::NotFound)? {
        (Some(key), _) => Ok(Content::Object(key)),
        (None, Some(bytes)) => Ok(Content::Inline(bytes)),
        (None, None) => Err(StoreError::Corrupt(format!(
            "documents.{id} has neither bytes nor an object key"
        ))),
    }
}

/// How many files still have their bytes in the database.
pub async fn inline_count(conn: &mut Conn) -> Result<u64> {
    let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM documents WHERE object_key IS NULL")
        .fetch_one(&mut *conn)
        .await?;
    Ok(u64::try_from(n).unwrap_or(0))
}

/// A file whose bytes are still in the database.
pub struct InlineFile {
    pub id: String,
    pub company: CompanyId,
    pub bytes: Vec<u8>,
}

/// The next file (by id) whose bytes are still in the database, after `after`.
pub async fn next_inline(conn: &mut Conn, after: &str) -> Result<Option<InlineFile>> {
    let row: Option<(String, String, Vec<u8>)> = sqlx::query_as(
        "SELECT id, company_id, bytes FROM documents
          WHERE object_key IS NULL AND id > $1 ORDER BY id LIMIT 1",
    )
    .bind(after)
    .fetch_optional(&mut *conn)
    .await?;
    row.map(|(id, company, bytes)| {
        Ok(InlineFile {
            company: crate::parse_id("documents.company_id", &company)?,
            id,
            bytes,
        })
    })
    .transpose()
}

/// Points a file at its object and drops its inline bytes (once its object is written).
pub async fn moved_to_object(conn: &mut Conn, id: &str, object_key: &str) -> Result<bool> {
    let done = sqlx::query(
        "UPDATE documents SET object_key = $1, bytes = NULL WHERE id = $2 AND object_key IS NULL",
    )
    .bind(object_key)
    .bind(id)
    .execute(&mut *conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// A page of a case's documents (not its call recordings), oldest first.
pub async fn for_case(
    conn: &mut Conn,
    company: CompanyId,
    case: CaseId,
    page: &PageRequest,
) -> Result<Page<Document>> {
    let rows: Vec<Row> = sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM documents WHERE company_id = $1 AND case_id = $2
           AND kind = 'document' AND id > $3 ORDER BY id LIMIT $4"
    ))
    .bind(company.to_string())
    .bind(case.to_string())
    .bind(page.after.clone().unwrap_or_default())
    .bind(i64::from(page.limit) + 1)
    .fetch_all(&mut *conn)
    .await?;
    let items = rows
        .into_iter()
        .map(Row::into_model)
        .collect::<Result<Vec<_>>>()?;
    Ok(Page::from_overfetch(items, page.limit, |d| {
        d.id.to_string()
    }))
}

/// The latest recording of a call.
pub async fn recording_of(
    conn: &mut Conn,
    company: CompanyId,
    call: CallId,
) -> Result<Option<Document>> {
    let row: Option<Row> = sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM documents WHERE company_id = $1 AND call_id = $2
           AND kind = 'recording' ORDER BY id DESC LIMIT 1"
    ))
    .bind(company.to_string())
    .bind(call.to_string())
    .fetch_optional(&mut *conn)
    .await?;
    row.map(Row::into_model).transpose()
}
