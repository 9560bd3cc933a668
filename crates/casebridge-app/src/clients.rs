//! Clients: list, find, create, update, delete and attach external refs. Updating a client is a
//! platform change the CRMs may need, fanned out in the same transaction.

use casebridge_crm::PlatformChange;
use casebridge_domain::ids::{ClientId, CompanyId};
use casebridge_domain::model::Client;
use casebridge_domain::page::{Page, PageRequest};
use casebridge_domain::records::{ClientFilter, ClientPatch, ExternalRef, NewClient};
use casebridge_store::clients;

use crate::cases::not_found_by_ref;
use crate::{fanout, App, OrNotFound, Result};

/// A page of the company's clients, optionally filtered by email or phone.
pub async fn list(
    app: &App,
    company: CompanyId,
    filter: &ClientFilter,
    page: &PageRequest,
) -> Result<Page<Client>> {
    let mut conn = app.store().conn().await?;
    Ok(clients::list(&mut conn, company, filter, page).await?)
}

/// Creates a client with its external refs (`(provider, external_id)`, unique per company).
pub async fn create(app: &App, company: CompanyId, new: &NewClient) -> Result<Client> {
    let mut tx = app.store().begin().await?;
    let client = clients::create(&mut tx, company, new, app.now()).await?;
    tx.commit().await?;
    Ok(client)
}

/// The client that carries the external ref `(provider, external_id)`.
pub async fn by_external_ref(
    app: &App,
    company: CompanyId,
    provider: &str,
    external_id: &str,
) -> Result<Client> {
    let mut conn = app.store().conn().await?;
    clients::find_by_ref(&mut conn, company, provider, external_id)
        .await
        .map_err(|e| not_found_by_ref("client", provider, external_id, e))
}

pub async fn get(app: &App, company: CompanyId, id: ClientId) -> Result<Client> {
    let mut conn = app.store().conn().await?;
    clients::get(&mut conn, company, id)
        .await
        .or_not_found("client", &id.to_string())
}

/// Updates a client: omitted fields stay, `Some(None)` clears; the client must keep a name.
pub async fn update(
    app: &App,
    company: CompanyId,
    id: ClientId,
    patch: &ClientPatch,
) -> Result<Client> {
    let now = app.now();
    let id_text = id.to_string();
    let mut tx = app.store().begin().await?;
    let before = clients::get_for_update(&mut tx, company, id)
        .await
        .or_not_found("client", &id_text)?;
    let client = clients::update(&mut tx, company, id, patch, now)
        .await
        .or_not_found("client", &id_text)?;
    let change = PlatformChange::Client {
        before: &before,
        after: &client,
    };
    fanout::platform_change(app, &mut tx, company, change, now).await?;
    tx.commit().await?;
    Ok(client)
}

/// Deletes a client that has no cases (a conflict otherwise).
pub async fn delete(app: &App, company: CompanyId, id: ClientId) -> Result<()> {
    let mut tx = app.store().begin().await?;
    clients::delete(&mut tx, company, id)
        .await
        .or_not_found("client", &id.to_string())?;
    tx.commit().await?;
    Ok(())
}

/// Attaches an external ref to a client; a conflict if another client holds it.
pub async fn add_ref(
    app: &App,
    company: CompanyId,
    id: ClientId,
    external_ref: ExternalRef,
) -> Result<Client> {
    let mut tx = app.store().begin().await?;
    let client = clients::add_refs(&mut tx, company, id, &[external_ref], app.now())
        .await
        .or_not_found("client", &id.to_string())?;
    tx.commit().await?;
    Ok(client)
}
