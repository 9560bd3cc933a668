//! List membership: which cases are on a list. The lists themselves are named records
//! ([`crate::named`] with `NamedKind::List`).

use casebridge_domain::ids::{CaseId, CompanyId, ListId};
use casebridge_domain::model::Case;
use casebridge_domain::page::{Page, PageRequest};
use casebridge_store::lists;

use crate::{App, AppError, OrNotFound, Result};

/// A page of the cases on a list.
pub async fn cases(
    app: &App,
    company: CompanyId,
    list: ListId,
    page: &PageRequest,
) -> Result<Page<Case>> {
    let mut conn = app.store().conn().await?;
    lists::cases(&mut conn, company, list, page)
        .await
        .or_not_found("list", &list.to_string())
}

/// Puts a case on a list. Returns `true` when it was added, `false` when it was already there.
/// A case that does not exist is a validation error on `case_id`.
pub async fn add_case(app: &App, company: CompanyId, list: ListId, case: CaseId) -> Result<bool> {
    let mut tx = app.store().begin().await?;
    let added = lists::add_case(&mut tx, company, list, case, app.now())
        .await
        .or_not_found("list", &list.to_string())?;
    tx.commit().await?;
    Ok(added)
}

/// Takes a case off a list; not found when the list does not exist or the case is not on it.
pub async fn remove_case(app: &App, company: CompanyId, list: ListId, case: CaseId) -> Result<()> {
    let mut tx = app.store().begin().await?;
    let removed = lists::remove_case(&mut tx, company, list, case)
        .await
        .or_not_found("list", &list.to_string())?;
    tx.commit().await?;
    if removed {
        Ok(())
    } else {
        Err(AppError::NotFound(format!(
            "case {case} is not on list {list}"
        )))
    }
}
