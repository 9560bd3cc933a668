//! Files uploaded to the platform: case documents and call recordings. The bytes are stored in
//! the database so a file commits together with the CRM operation that will send it.

use casebridge_domain::ids::{CallId, CaseId, CompanyId};
use casebridge_domain::page::{Page, PageRequest};
use jiff::Timestamp;
use sha2::{Digest, Sha256};
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

pub struct NewDocument<'a> {
    pub case_id: Option<CaseId>,
    pub call_id: Option<CallId>,
    pub kind: DocumentKind,
    pub file_name: &'a str,
    pub content_type: &'a str,
    pub bytes: &'a [u8],
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
    let id = Uuid::now_v7().to_string();
    let sha256 = hex(&Sha256::digest(doc.bytes));
    sqlx::query(
        "INSERT INTO documents (id, company_id, case_id, call_id, kind, file_name, content_type,
                                size, sha256, bytes, created_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
    )
    .bind(&id)
    .bind(company.to_string())
    .bind(doc.case_id.map(|c| c.to_string()))
    .bind(doc.call_id.map(|c| c.to_string()))
    .bind(doc.kind.as_str())
    .bind(doc.file_name)
    .bind(doc.content_type)
    .bind(i64::try_from(doc.bytes.len()).unwrap_or(i64::MAX))
    .bind(&sha256)
    .bind(doc.bytes.to_vec())
    .bind(now.as_millisecond())
    .execute(&mut *conn)
    .await?;
    Ok(Document {
        id,
        case_id: doc.case_id,
        call_id: doc.call_id,
        kind: doc.kind,
        file_name: doc.file_name.to_owned(),
        content_type: doc.content_type.to_owned(),
        size: doc.bytes.len() as u64,
        sha256,
        created_at: now,
    })
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

/// A stored file's bytes.
pub async fn bytes(conn: &mut Conn, company: CompanyId, id: &str) -> Result<Vec<u8>> {
    let b: Option<Vec<u8>> =
        sqlx::query_scalar("SELECT bytes FROM documents WHERE company_id = $1 AND id = $2")
            .bind(company.to_string())
            .bind(id)
            .fetch_optional(&mut *conn)
            .await?;
    b.ok_or(StoreError::NotFound)
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

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
