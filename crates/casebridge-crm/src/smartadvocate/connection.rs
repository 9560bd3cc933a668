//! A company's SmartAdvocate connection at rest: base URL, username and password, sealed with
//! the keyring under an AAD naming the company and provider (so a sealed blob copied to another
//! company or provider does not open), and one client per company (so a token is fetched per
//! connection, not per call).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use casebridge_crypto::Keyring;
use casebridge_domain::ids::CompanyId;
use casebridge_store::integrations::Integration;
use casebridge_webhooks::policy::UrlPolicy;
use secrecy::ExposeSecret;
use serde::{Deserialize, Serialize};

use super::client::{Credentials, SmartAdvocateClient, SmartAdvocateError, SmartAdvocatePaths};
use super::PROVIDER;

/// The connect values as stored (sealed). `base_url` is the normalised one.
#[derive(Clone, Serialize, Deserialize)]
pub struct StoredCredentials {
    pub base_url: String,
    pub username: String,
    pub password: String,
}

impl std::fmt::Debug for StoredCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoredCredentials")
            .field("base_url", &self.base_url)
            .field("username", &self.username)
            .finish_non_exhaustive()
    }
}

impl StoredCredentials {
    pub fn into_credentials(self) -> Credentials {
        Credentials::new(self.base_url, self.username, self.password)
    }
}

fn aad(company: CompanyId, provider: &str) -> String {
    format!("integration/{company}/{provider}")
}

/// Seals the credentials for the company's integration row.
pub fn seal(keyring: &Keyring, company: CompanyId, creds: &StoredCredentials) -> String {
    keyring.seal(
        &serde_json::to_string(creds).expect("serializable"),
        &aad(company, PROVIDER),
    )
}

/// The stored credentials of an integration; `Ok(None)` when it is not connected.
pub fn open(keyring: &Keyring, i: &Integration) -> Result<Option<StoredCredentials>, String> {
    let Some(sealed) = &i.credentials_sealed else {
        return Ok(None);
    };
    let plain = keyring
        .open(sealed, &aad(i.company_id, &i.provider))
        .map_err(|e| format!("opening stored credentials: {e}"))?;
    serde_json::from_str(plain.expose_secret())
        .map(Some)
        .map_err(|e| format!("stored credentials: {e}"))
}

/// A company's client and the sealed credentials it was built from.
type Cached = (String, Arc<SmartAdvocateClient>);

/// SmartAdvocate clients per company, replaced when the stored credentials change.
#[derive(Clone)]
pub struct Clients {
    http: reqwest::Client,
    policy: Arc<UrlPolicy>,
    paths: SmartAdvocatePaths,
    keyring: Keyring,
    cache: Arc<Mutex<HashMap<CompanyId, Cached>>>,
}

impl Clients {
    /// `http` should be the SSRF-safe client over `policy`; every request is also vetted
    /// against `policy` right before it is sent.
    pub fn new(
        http: reqwest::Client,
        policy: Arc<UrlPolicy>,
        paths: SmartAdvocatePaths,
        keyring: Keyring,
    ) -> Self {
        Self {
            http,
            policy,
            paths,
            keyring,
            cache: Arc::default(),
        }
    }

    pub fn keyring(&self) -> &Keyring {
        &self.keyring
    }

    /// A client built from raw credentials (not cached): for verifying a connection.
    pub fn build(&self, creds: Credentials) -> Result<SmartAdvocateClient, SmartAdvocateError> {
        SmartAdvocateClient::new(self.http.clone(), creds, self.paths.clone())
            .map(|c| c.with_policy(self.policy.clone()))
    }

    /// The client of a connected integration; `Ok(None)` when it is not connected.
    pub fn for_integration(
        &self,
        i: &Integration,
    ) -> Result<Option<Arc<SmartAdvocateClient>>, String> {
        let Some(sealed) = &i.credentials_sealed else {
            return Ok(None);
        };
        if let Some((s, c)) = self.cache.lock().expect("lock").get(&i.company_id) {
            if s == sealed {
                return Ok(Some(c.clone()));
            }
        }
        let creds = open(&self.keyring, i)?.ok_or("not connected")?;
        let client = Arc::new(
            self.build(creds.into_credentials())
                .map_err(|e| e.to_string())?,
        );
        self.cache
            .lock()
            .expect("lock")
            .insert(i.company_id, (sealed.clone(), client.clone()));
        Ok(Some(client))
    }
}
