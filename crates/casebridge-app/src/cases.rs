//! Cases: list, find, create, update, delete and attach external refs. Creating or updating a
//! case is a platform change the CRMs may need (mapped fields and status), fanned out in the
//! same transaction.

use casebridge_crm::PlatformChange;
use casebridge_domain::ids::{CaseId, CompanyId};
use casebridge_domain::model::Case;
use casebridge_domain::page::{Page, PageRequest};
use casebridge_domain::records::{CaseFilter, CasePatch, ExternalRef, NewCase};
use casebridge_store::{cases, StoreError};

use crate::{fanout, App, AppError, OrNotFound, Result};

/// A page of the company's cases, optionally filtered by case type, status and client.
pub async fn list(
    app: &App,
    company: CompanyId,
    filter: &CaseFilter,
    page: &PageRequest,
) -> Result<Page<Case>> {
    let mut conn = app.store().conn().await?;
    Ok(cases::list(&mut conn, company, filter, page).await?)
}

/// Creates a case; the case type, status and client must exist in the company.
pub async fn create(app: &App, company: CompanyId, new: &NewCase) -> Result<Case> {
    let now = app.now();
    let mut tx = app.store().begin().await?;
    let case = cases::create(&mut tx, company, new, now).await?;
    let change = PlatformChange::Case {
        before: None,
        after: &case,
    };
    fanout::platform_change(app, &mut tx, company, change, now).await?;
    tx.commit().await?;
    Ok(case)
}

/// The case that carries the external ref `(provider, external_id)`, e.g. a CRM's lead id.
pub async fn by_external_ref(
    app: &App,
    company: CompanyId,
    provider: &str,
    external_id: &str,
) -> Result<Case> {
    let mut conn = app.store().conn().await?;
    cases::find_by_ref(&mut conn, company, provider, external_id)
        .await
        .map_err(|e| not_found_by_ref("case", provider, external_id, e))
}

/// A store's `NotFound` for a lookup by external ref, named after the ref.
pub(crate) fn not_found_by_ref(
    what: &str,
    provider: &str,
    external_id: &str,
    e: StoreError,
) -> AppError {
    match e {
        StoreError::NotFound => AppError::NotFound(format!(
            "no {what} with external ref {provider}/{external_id}"
        )),
        e => e.into(),
    }
}

pub async fn get(app: &App, company: CompanyId, id: CaseId) -> Result<Case> {
    let mut conn = app.store().conn().await?;
    cases::get(&mut conn, company, id)
        .await
        .or_not_found("case", &id.to_string())
}

/// Updates a case (`custom_fields` merged, `None` inside an option clears).
pub async fn update(app: &App, company: CompanyId, id: CaseId, patch: &CasePatch) -> Result<Case> {
    let now = app.now();
    let id_text = id.to_string();
    let mut tx = app.store().begin().await?;
    let before = cases::get_for_update(&mut tx, company, id)
        .await
        .or_not_found("case", &id_text)?;
    let case = cases::update(&mut tx, company, id, patch, now)
        .await
        .or_not_found("case", &id_text)?;
    // Mapped fields and status go to the CRM in the same transaction (LR9).
    let change = PlatformChange::Case {
        before: Some(&before),
        after: &case,
    };
    fanout::platform_change(app, &mut tx, company, change, now).await?;
    tx.commit().await?;
    Ok(case)
}

/// Deletes a case, its list memberships and its external refs.
pub async fn delete(app: &App, company: CompanyId, id: CaseId) -> Result<()> {
    let mut tx = app.store().begin().await?;
    cases::delete(&mut tx, company, id)
        .await
        .or_not_found("case", &id.to_string())?;
    tx.commit().await?;
    Ok(())
}

/// Attaches an external ref to a case; a conflict if another case holds it.
pub async fn add_ref(
    app: &App,
    company: CompanyId,
    id: CaseId,
    external_ref: ExternalRef,
) -> Result<Case> {
    let mut tx = app.store().begin().await?;
    let case = cases::add_refs(&mut tx, company, id, &[external_ref], app.now())
        .await
        .or_not_found("case", &id.to_string())?;
    tx.commit().await?;
    Ok(case)
}
