//! List membership. Lists themselves are [`crate::named`] records of kind `List`.

use casebridge_domain::ids::{CaseId, CompanyId, ListId};
use casebridge_domain::model::Case;
use casebridge_domain::page::{Page, PageRequest};
use casebridge_domain::records::NamedKind;
use jiff::Timestamp;

use crate::{cases, named, Conn, Result, StoreError};

async fn require_list(conn: &mut Conn, company: CompanyId, list: ListId) -> Result<()> {
    if named::exists(conn, company, NamedKind::List, &list.to_string()).await? {
        Ok(())
    } else {
        Err(StoreError::NotFound)
    }
}

/// Puts a case on a list. Adding a case that is already there changes nothing.
/// Returns whether the case was newly added.
pub async fn add_case(
    conn: &mut Conn,
    company: CompanyId,
    list: ListId,
    case: CaseId,
    now: Timestamp,
) -> Result<bool> {
    require_list(conn, company, list).await?;
    if !cases::exists(conn, company, case).await? {
        return Err(StoreError::Invalid(
            casebridge_domain::ValidationError::single(
                "case_id",
                format!("no case with id {case}"),
            ),
        ));
    }
    let done = sqlx::query(
        "INSERT INTO list_cases (company_id, list_id, case_id, added_at) VALUES ($1, $2, $3, $4)
         ON CONFLICT (list_id, case_id) DO NOTHING",
    )
    .bind(company.to_string())
    .bind(list.to_string())
    .bind(case.to_string())
    .bind(now.as_millisecond())
    .execute(&mut *conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Takes a case off a list. Returns whether it was on it.
pub async fn remove_case(
    conn: &mut Conn,
    company: CompanyId,
    list: ListId,
    case: CaseId,
) -> Result<bool> {
    require_list(conn, company, list).await?;
    let done = sqlx::query(
        "DELETE FROM list_cases WHERE company_id = $1 AND list_id = $2 AND case_id = $3",
    )
    .bind(company.to_string())
    .bind(list.to_string())
    .bind(case.to_string())
    .execute(&mut *conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

pub async fn cases(
    conn: &mut Conn,
    company: CompanyId,
    list: ListId,
    page: &PageRequest,
) -> Result<Page<Case>> {
    require_list(conn, company, list).await?;
    cases::list_rows_on_list(conn, company, &list.to_string(), page).await
}
