//! Who is calling: an API key names its company.

use casebridge_crypto::hash_api_key;
use casebridge_domain::ids::CompanyId;
use casebridge_store::api_keys;

use crate::{App, Result};

/// The company whose API key this is, or `None` for an unknown or revoked key.
pub async fn company_for_api_key(app: &App, key: &str) -> Result<Option<CompanyId>> {
    let mut conn = app.store().conn().await?;
    Ok(api_keys::authenticate(&mut conn, &hash_api_key(key)).await?)
}
