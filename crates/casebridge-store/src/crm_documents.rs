//! Documents pulled from a CRM, keyed by the CRM's document id, so a pull never stores a
//! document twice: which platform document each became (or why it was skipped), and the CRM's
//! change time of the version handled.

use casebridge_domain::ids::CompanyId;
use jiff::Timestamp;

use crate::{ts, Conn, Result, StoreError};

/// What became of a CRM document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Handled {
    /// Stored as this platform document.
    Stored(String),
    /// Not stored, for this reason (a short code the CRM module defines, such as
    /// `unknown_case`).
    Skipped(String),
}

/// A CRM document as last handled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CrmDocument {
    pub crm_document_id: String,
    /// The CRM record it belongs to (SmartAdvocate: the case number).
    pub record_id: String,
    /// The CRM's change time of the version handled.
    pub crm_modified_at: Option<Timestamp>,
    pub handled: Handled,
}

/// `record_id, crm_modified_at, document_id, skipped`.
type Row = (String, Option<i64>, Option<String>, Option<String>);

/// The CRM document with this id, as last handled.
pub async fn get(
    conn: &mut Conn,
    company: CompanyId,
    provider: &str,
    crm_document_id: &str,
) -> Result<Option<CrmDocument>> {
    let row: Option<Row> = sqlx::query_as(
        "SELECT record_id, crm_modified_at, document_id, skipped FROM crm_documents
          WHERE company_id = $1 AND provider = $2 AND crm_document_id = $3",
    )
    .bind(company.to_string())
    .bind(provider)
    .bind(crm_document_id)
    .fetch_optional(&mut *conn)
    .await?;
    row.map(|(record_id, modified, document_id, skipped)| {
        let handled = match (document_id, skipped) {
            (Some(d), None) => Handled::Stored(d),
            (None, Some(s)) => Handled::Skipped(s),
            _ => {
                return Err(StoreError::Corrupt(format!(
                    "crm_documents.{crm_document_id} is neither stored nor skipped"
                )))
            }
        };
        Ok(CrmDocument {
            crm_document_id: crm_document_id.to_owned(),
            record_id,
            crm_modified_at: modified.map(ts).transpose()?,
            handled,
        })
    })
    .transpose()
}

/// Records how a CRM document was handled, replacing what was recorded for its id.
pub async fn record(
    conn: &mut Conn,
    company: CompanyId,
    provider: &str,
    doc: &CrmDocument,
    now: Timestamp,
) -> Result<()> {
    let (document_id, skipped) = match &doc.handled {
        Handled::Stored(d) => (Some(d.as_str()), None),
        Handled::Skipped(s) => (None, Some(s.as_str())),
    };
    sqlx::query(
        "INSERT INTO crm_documents (company_id, provider, crm_document_id, record_id,
                                    crm_modified_at, document_id, skipped, pulled_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
         ON CONFLICT (company_id, provider, crm_document_id) DO UPDATE
            SET record_id = excluded.record_id, crm_modified_at = excluded.crm_modified_at,
                document_id = excluded.document_id, skipped = excluded.skipped,
                pulled_at = excluded.pulled_at",
    )
    .bind(company.to_string())
    .bind(provider)
    .bind(&doc.crm_document_id)
    .bind(&doc.record_id)
    .bind(doc.crm_modified_at.map(|t| t.as_millisecond()))
    .bind(document_id)
    .bind(skipped)
    .bind(now.as_millisecond())
    .execute(&mut *conn)
    .await?;
    Ok(())
}
