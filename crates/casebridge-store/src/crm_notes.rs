//! Notes on CRM records: pulled from the CRM (LR13) and written there by casebridge, keyed by
//! the CRM's note id so a pull never stores a note twice.

use casebridge_domain::ids::{CaseId, CompanyId};
use jiff::Timestamp;

use crate::{parse_opt_id, ts, Conn, Result};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CrmNote {
    pub crm_note_id: String,
    pub record_id: String,
    pub case_id: Option<CaseId>,
    /// `crm` (pulled) or `platform` (written by casebridge).
    pub origin: String,
    pub category: String,
    pub subject: String,
    pub body: String,
    pub noted_at: Timestamp,
}

/// Stores a note unless one with its CRM id is already stored. Returns whether it was new.
pub async fn insert(
    conn: &mut Conn,
    company: CompanyId,
    provider: &str,
    note: &CrmNote,
    now: Timestamp,
) -> Result<bool> {
    let done = sqlx::query(
        "INSERT INTO crm_notes (company_id, provider, crm_note_id, record_id, case_id, origin,
                                category, subject, body, noted_at, pulled_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
         ON CONFLICT (company_id, provider, crm_note_id) DO NOTHING",
    )
    .bind(company.to_string())
    .bind(provider)
    .bind(&note.crm_note_id)
    .bind(&note.record_id)
    .bind(note.case_id.map(|c| c.to_string()))
    .bind(&note.origin)
    .bind(&note.category)
    .bind(&note.subject)
    .bind(&note.body)
    .bind(note.noted_at.as_millisecond())
    .bind(now.as_millisecond())
    .execute(&mut *conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// What [`upsert`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stored {
    New,
    /// Its subject, body, category or time changed in the CRM.
    Updated,
    /// The same as stored, or a note casebridge wrote (origin `platform`), which a pull never
    /// overwrites.
    Unchanged,
}

/// Stores a pulled note, or updates the stored one with its CRM id when the CRM changed it
/// (a note without a case gets `note.case_id`). Run it in a transaction: it reads, then writes.
pub async fn upsert(
    conn: &mut Conn,
    company: CompanyId,
    provider: &str,
    note: &CrmNote,
    now: Timestamp,
) -> Result<Stored> {
    let existing: Option<(String, String, String, i64, String)> = sqlx::query_as(
        "SELECT origin, category, subject, noted_at, body FROM crm_notes
         WHERE company_id = $1 AND provider = $2 AND crm_note_id = $3",
    )
    .bind(company.to_string())
    .bind(provider)
    .bind(&note.crm_note_id)
    .fetch_optional(&mut *conn)
    .await?;
    let Some((origin, category, subject, noted_at, body)) = existing else {
        insert(conn, company, provider, note, now).await?;
        return Ok(Stored::New);
    };
    let same = category == note.category
        && subject == note.subject
        && body == note.body
        && noted_at == note.noted_at.as_millisecond();
    if origin == "platform" || same {
        return Ok(Stored::Unchanged);
    }
    sqlx::query(
        "UPDATE crm_notes SET category = $4, subject = $5, body = $6, noted_at = $7,
                case_id = COALESCE(case_id, $8), pulled_at = $9
         WHERE company_id = $1 AND provider = $2 AND crm_note_id = $3",
    )
    .bind(company.to_string())
    .bind(provider)
    .bind(&note.crm_note_id)
    .bind(&note.category)
    .bind(&note.subject)
    .bind(&note.body)
    .bind(note.noted_at.as_millisecond())
    .bind(note.case_id.map(|c| c.to_string()))
    .bind(now.as_millisecond())
    .execute(&mut *conn)
    .await?;
    Ok(Stored::Updated)
}

type NoteRow = (
    String,
    String,
    Option<String>,
    String,
    String,
    String,
    String,
    i64,
);

/// A case's notes, in the CRM's note order (oldest first).
pub async fn for_case(
    conn: &mut Conn,
    company: CompanyId,
    provider: &str,
    case: CaseId,
) -> Result<Vec<CrmNote>> {
    let rows: Vec<NoteRow> = sqlx::query_as(
        "SELECT crm_note_id, record_id, case_id, origin, category, subject, body, noted_at
         FROM crm_notes WHERE company_id = $1 AND provider = $2 AND case_id = $3
         ORDER BY noted_at, crm_note_id",
    )
    .bind(company.to_string())
    .bind(provider)
    .bind(case.to_string())
    .fetch_all(&mut *conn)
    .await?;
    rows.into_iter()
        .map(
            |(crm_note_id, record_id, case_id, origin, category, subject, body, noted_at)| {
                Ok(CrmNote {
                    crm_note_id,
                    record_id,
                    case_id: parse_opt_id("crm_notes.case_id", case_id.as_deref())?,
                    origin,
                    category,
                    subject,
                    body,
                    noted_at: ts(noted_at)?,
                })
            },
        )
        .collect()
}

#[derive(sqlx::FromRow)]
struct AnyNoteRow {
    provider: String,
    crm_note_id: String,
    record_id: String,
    case_id: Option<String>,
    origin: String,
    category: String,
    subject: String,
    body: String,
    noted_at: i64,
}

/// A case's notes from every CRM, each with its provider, oldest first.
pub async fn for_case_all(
    conn: &mut Conn,
    company: CompanyId,
    case: CaseId,
) -> Result<Vec<(String, CrmNote)>> {
    let rows: Vec<AnyNoteRow> = sqlx::query_as(
        "SELECT provider, crm_note_id, record_id, case_id, origin, category, subject, body,
                    noted_at
             FROM crm_notes WHERE company_id = $1 AND case_id = $2
             ORDER BY noted_at, provider, crm_note_id",
    )
    .bind(company.to_string())
    .bind(case.to_string())
    .fetch_all(&mut *conn)
    .await?;
    rows.into_iter()
        .map(|r| {
            Ok((
                r.provider,
                CrmNote {
                    crm_note_id: r.crm_note_id,
                    record_id: r.record_id,
                    case_id: parse_opt_id("crm_notes.case_id", r.case_id.as_deref())?,
                    origin: r.origin,
                    category: r.category,
                    subject: r.subject,
                    body: r.body,
                    noted_at: ts(r.noted_at)?,
                },
            ))
        })
        .collect()
}

/// Links the notes of a CRM record that arrived before its case existed to that case.
pub async fn attach_to_case(
    conn: &mut Conn,
    company: CompanyId,
    provider: &str,
    record_id: &str,
    case: CaseId,
) -> Result<u64> {
    let done = sqlx::query(
        "UPDATE crm_notes SET case_id = $4
         WHERE company_id = $1 AND provider = $2 AND record_id = $3 AND case_id IS NULL",
    )
    .bind(company.to_string())
    .bind(provider)
    .bind(record_id)
    .bind(case.to_string())
    .execute(&mut *conn)
    .await?;
    Ok(done.rows_affected())
}
