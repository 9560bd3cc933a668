//! Case types, case statuses, campaigns and lists share one shape (an id and a name unique
//! within the company), so one set of use cases serves every [`NamedKind`]. A missing record is
//! named after its kind ("no case type with id …").

use casebridge_domain::ids::CompanyId;
use casebridge_domain::model::Named;
use casebridge_domain::page::{Page, PageRequest};
use casebridge_domain::records::{Name, NamedKind};
use casebridge_store::named;

use crate::{App, OrNotFound, Result};

/// A page of the company's records of `kind`.
pub async fn list(
    app: &App,
    company: CompanyId,
    kind: NamedKind,
    page: &PageRequest,
) -> Result<Page<Named>> {
    let mut conn = app.store().conn().await?;
    Ok(named::list(&mut conn, company, kind, page).await?)
}

/// Creates a record of `kind`; a conflict if the name is taken.
pub async fn create(app: &App, company: CompanyId, kind: NamedKind, name: &Name) -> Result<Named> {
    let mut tx = app.store().begin().await?;
    let created = named::create(&mut tx, company, kind, name, app.now()).await?;
    tx.commit().await?;
    Ok(created)
}

pub async fn get(app: &App, company: CompanyId, kind: NamedKind, id: &str) -> Result<Named> {
    let mut conn = app.store().conn().await?;
    named::get(&mut conn, company, kind, id)
        .await
        .or_not_found(kind.label(), id)
}

pub async fn rename(
    app: &App,
    company: CompanyId,
    kind: NamedKind,
    id: &str,
    name: &Name,
) -> Result<Named> {
    let mut tx = app.store().begin().await?;
    let renamed = named::rename(&mut tx, company, kind, id, name, app.now())
        .await
        .or_not_found(kind.label(), id)?;
    tx.commit().await?;
    Ok(renamed)
}

/// Deletes a record of `kind` that no case uses (a conflict otherwise).
pub async fn delete(app: &App, company: CompanyId, kind: NamedKind, id: &str) -> Result<()> {
    let mut tx = app.store().begin().await?;
    named::delete(&mut tx, company, kind, id)
        .await
        .or_not_found(kind.label(), id)?;
    tx.commit().await?;
    Ok(())
}
