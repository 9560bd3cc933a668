//! The company's own profile (name, time zone) and its API keys.

use casebridge_crypto::generate_api_key;
use casebridge_domain::company::CompanyPatch;
use casebridge_domain::ids::{ApiKeyId, CompanyId};
use casebridge_domain::model::{ApiKeyInfo, Company};
use casebridge_domain::page::{Page, PageRequest};
use casebridge_domain::records::Name;
use casebridge_store::{api_keys, companies};
use secrecy::SecretString;

use crate::{App, OrNotFound, Result};

/// The company the caller belongs to.
pub async fn get(app: &App, company: CompanyId) -> Result<Company> {
    let mut conn = app.store().conn().await?;
    Ok(companies::get(&mut conn, company).await?)
}

/// Renames the company or changes its time zone (what the patch leaves out stays).
pub async fn update(app: &App, company: CompanyId, patch: &CompanyPatch) -> Result<Company> {
    let mut tx = app.store().begin().await?;
    let updated = companies::update(&mut tx, company, patch, app.now()).await?;
    tx.commit().await?;
    Ok(updated)
}

/// A page of the company's API keys (their metadata; the keys themselves are never stored).
pub async fn api_keys(
    app: &App,
    company: CompanyId,
    page: &PageRequest,
) -> Result<Page<ApiKeyInfo>> {
    let mut conn = app.store().conn().await?;
    Ok(api_keys::list(&mut conn, company, page).await?)
}

/// A new API key: its metadata and the key itself, which is shown this once and never again.
pub struct CreatedApiKey {
    pub info: ApiKeyInfo,
    pub key: SecretString,
}

/// Creates an API key. Only its prefix and hash are stored.
pub async fn create_api_key(app: &App, company: CompanyId, name: &Name) -> Result<CreatedApiKey> {
    let key = generate_api_key();
    let mut tx = app.store().begin().await?;
    let info = api_keys::create(
        &mut tx,
        company,
        name.as_str(),
        &key.prefix,
        &key.hash,
        app.now(),
    )
    .await?;
    tx.commit().await?;
    Ok(CreatedApiKey {
        info,
        key: key.secret,
    })
}

/// Revokes an API key; requests with it fail from now on. Revoking it again changes nothing.
pub async fn revoke_api_key(app: &App, company: CompanyId, id: ApiKeyId) -> Result<ApiKeyInfo> {
    let mut tx = app.store().begin().await?;
    let info = api_keys::revoke(&mut tx, company, id, app.now())
        .await
        .or_not_found("API key", &id.to_string())?;
    tx.commit().await?;
    Ok(info)
}
