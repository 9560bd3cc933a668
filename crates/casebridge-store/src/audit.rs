//! The audit log: what admins did that must be traceable, only ever appended to.

use casebridge_domain::ids::CompanyId;
use jiff::Timestamp;

use crate::{ts, Conn, Result};

/// One recorded action.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditEntry {
    pub actor: String,
    pub action: String,
    pub subject: String,
    pub at: Timestamp,
}

/// Records that `actor` did `action` to `subject` (a record's id).
pub async fn record(
    conn: &mut Conn,
    company: CompanyId,
    actor: &str,
    action: &str,
    subject: &str,
    now: Timestamp,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO audit_log (id, company_id, actor, action, subject, created_at)
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(uuid::Uuid::now_v7().to_string())
    .bind(company.to_string())
    .bind(actor)
    .bind(action)
    .bind(subject)
    .bind(now.as_millisecond())
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// The newest `action` recorded on `subject`, if any.
pub async fn latest(
    conn: &mut Conn,
    company: CompanyId,
    action: &str,
    subject: &str,
) -> Result<Option<AuditEntry>> {
    let row: Option<(String, i64)> = sqlx::query_as(
        "SELECT actor, created_at FROM audit_log
         WHERE company_id = $1 AND subject = $2 AND action = $3
         ORDER BY created_at DESC, id DESC LIMIT 1",
    )
    .bind(company.to_string())
    .bind(subject)
    .bind(action)
    .fetch_optional(&mut *conn)
    .await?;
    row.map(|(actor, at)| {
        Ok(AuditEntry {
            actor,
            action: action.to_owned(),
            subject: subject.to_owned(),
            at: ts(at)?,
        })
    })
    .transpose()
}
