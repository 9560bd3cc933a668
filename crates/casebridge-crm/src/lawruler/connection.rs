//! A company's Law Ruler connection at rest: the five values, sealed with the keyring under an
//! AAD naming the company and provider (so a sealed blob copied to another company or provider
//! does not open), and the client built from them.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use casebridge_crypto::Keyring;
use casebridge_domain::ids::CompanyId;
use casebridge_store::integrations::Integration;
use casebridge_webhooks::policy::UrlPolicy;
use serde::{Deserialize, Serialize};

use super::client::{Credentials, LawRulerClient, LawRulerError, LawRulerPaths};
use super::ingest::PROVIDER;

/// The five connect values as stored (sealed).
#[derive(Clone, Serialize, Deserialize)]
pub struct StoredCredentials {
    pub username: String,
    pub password: String,
    pub client_root: String,
    pub client_secret: String,
    pub key: String,
}

impl std::fmt::Debug for StoredCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoredCredentials")
            .field("username", &self.username)
            .finish_non_exhaustive()
    }
}

impl StoredCredentials {
    pub fn into_credentials(self) -> Credentials {
        Credentials::new(
            self.username,
            self.password,
            self.client_root,
            self.client_secret,
            self.key,
        )
    }
}

fn aad(company: CompanyId, provider: &str) -> String {
    format!("integration/{company}/{provider}")
}

/// Seals the credentials for storage on the company's integration row.
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
    use secrecy::ExposeSecret;
    let plain = keyring
        .open(sealed, &aad(i.company_id, &i.provider))
        .map_err(|e| format!("opening stored credentials: {e}"))?;
    serde_json::from_str(plain.expose_secret())
        .map(Some)
        .map_err(|e| format!("stored credentials: {e}"))
}

/// A company's client and the sealed credentials it was built from.
type Cached = (String, Arc<LawRulerClient>);

/// Law Ruler clients per company, reused across jobs so the access token is fetched once per
/// connection rather than once per operation. A client is replaced when the stored credentials
/// change (reconnect).
#[derive(Clone)]
pub struct Clients {
    http: reqwest::Client,
    policy: Arc<UrlPolicy>,
    paths: LawRulerPaths,
    keyring: Keyring,
    cache: Arc<Mutex<HashMap<CompanyId, Cached>>>,
}

impl Clients {
    /// `http` should be the SSRF-safe client over `policy`; every request is also vetted
    /// against `policy` right before it is sent.
    pub fn new(
        http: reqwest::Client,
        policy: Arc<UrlPolicy>,
        paths: LawRulerPaths,
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

    pub fn paths(&self) -> &LawRulerPaths {
        &self.paths
    }

    /// A client built from raw credentials (not cached): for verifying a connection.
    pub fn build(&self, creds: Credentials) -> Result<LawRulerClient, LawRulerError> {
        LawRulerClient::new(self.http.clone(), creds, self.paths.clone())
            .map(|c| c.with_policy(self.policy.clone()))
    }

    /// The client of a connected integration; `Ok(None)` when it is not connected.
    pub fn for_integration(
        &self,
        i: &Integration,
    ) -> Result<Option<Arc<LawRulerClient>>, LawRulerError> {
        let Some(sealed) = &i.credentials_sealed else {
            return Ok(None);
        };
        if let Some((s, c)) = self.cache.lock().expect("lock").get(&i.company_id) {
            if s == sealed {
                return Ok(Some(c.clone()));
            }
        }
        let creds = open(&self.keyring, i)
            .map_err(LawRulerError::Unexpected)?
            .expect("sealed credentials present");
        let client = Arc::new(self.build(creds.into_credentials())?);
        self.cache
            .lock()
            .expect("lock")
            .insert(i.company_id, (sealed.clone(), client.clone()));
        Ok(Some(client))
    }
}
