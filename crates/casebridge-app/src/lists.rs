//! List membership: which cases are on a list. The lists themselves are named records
//! ([`crate::named`] with `NamedKind::List`).

use casebridge_domain::ids::{CaseId, CompanyId, ListId};
use casebridge_domain::model::{Case, Named};
use casebridge_domain::page::{Page, PageRequest};
use casebridge_domain::records::NamedKind;
use casebridge_store::integrations::{self as rules_store, StoredRule};
use casebridge_store::{lists, named};

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

/// A list as the admin UI's Lists screen shows it: the list, its first cases, and its auto-add
/// rules (every CRM's).
#[derive(Debug, Clone)]
pub struct ListOverview {
    pub list: Named,
    /// The first cases on the list, oldest first.
    pub first_cases: Vec<Case>,
    /// Whether more cases are on the list than `first_cases`.
    pub more_cases: bool,
    pub rules: Vec<StoredRule>,
}

/// The company's lists (the first `limit`, by id), each with its first `cases_each` cases and
/// its auto-add rules; and whether the company has more lists than those.
pub async fn overview(
    app: &App,
    company: CompanyId,
    limit: u32,
    cases_each: u32,
) -> Result<(Vec<ListOverview>, bool)> {
    let mut conn = app.store().conn().await?;
    let found = named::list(
        &mut conn,
        company,
        NamedKind::List,
        &PageRequest::first(limit),
    )
    .await?;
    let mut rules = rules_store::rules(&mut conn, company, None, None).await?;
    let mut out = Vec::with_capacity(found.items.len());
    for list in found.items {
        let id: ListId = list
            .id
            .parse()
            .map_err(|_| AppError::Internal(format!("list id `{}` is not an id", list.id)))?;
        let cases = lists::cases(&mut conn, company, id, &PageRequest::first(cases_each))
            .await
            .or_not_found("list", &list.id)?;
        let (mine, rest) = rules
            .into_iter()
            .partition(|r: &StoredRule| r.list_id == id);
        rules = rest;
        out.push(ListOverview {
            list,
            first_cases: cases.items,
            more_cases: cases.next_after.is_some(),
            rules: mine,
        });
    }
    Ok((out, found.next_after.is_some()))
}
