//! casebridge's service layer: one function per use case.
//!
//! A service takes the authenticated company and typed input (domain types), runs the
//! transaction, writes the outbox in it (events with their deliveries and delivery jobs, CRM
//! operations through [`fanout`]) and returns domain output or an [`AppError`]. It knows nothing of HTTP: the JSON
//! API and the admin UI call the same functions, so each rule is written once.
//!
//! Invariants kept here:
//! - only this crate opens transactions (`Store::begin`) and writes the outbox;
//! - a platform change reaches the CRMs only through [`fanout::platform_change`], which asks
//!   every CRM connector in one place;
//! - nothing here calls the network while holding a pooled database connection.

use std::sync::Arc;

use casebridge_crm::Connectors;
use casebridge_crypto::Keyring;
use casebridge_domain::clock::Clock;
use casebridge_store::Store;
use casebridge_webhooks::policy::UrlPolicy;

pub mod error;
pub mod fanout;

pub mod activity;
pub mod admin;
pub mod auth;
pub mod cases;
pub mod clients;
pub mod company;
pub mod documents;
pub mod exports;
pub mod files;
pub mod imports;
pub mod inbound;
pub mod integrations;
pub mod lists;
pub mod named;
pub mod operator;
pub mod record_import;
pub mod scheduling;
pub mod sync;
pub mod webhooks;

pub use error::{AppError, OrNotFound, Result};

/// What an [`App`] is built from (the binary, the testkit and the benches fill it in).
pub struct AppParts {
    pub store: Store,
    pub clock: Arc<dyn Clock>,
    /// Seals secrets at rest (webhook signing secrets, App Keys, CRM credentials).
    pub keyring: Keyring,
    /// Which outbound destinations may be saved (webhook URLs) or called (CRM, scheduling).
    pub url_policy: Arc<UrlPolicy>,
    /// The SSRF-safe client for the few calls a use case must make itself: verifying
    /// credentials when an integration is connected, and live availability and booking.
    pub outbound: reqwest::Client,
    /// Base of the inbound webhook URLs shown to admins (`CASEBRIDGE_PUBLIC_URL`).
    pub public_url: Option<String>,
    /// Base URL of the Cal.com-compatible scheduling API.
    pub scheduling_url: String,
    /// Law Ruler clients (SSRF-safe HTTP client, configured endpoint paths, cached per company).
    pub lawruler: casebridge_crm::lawruler::connection::Clients,
    /// SmartAdvocate clients (SSRF-safe HTTP client, configured endpoint paths, cached per
    /// company).
    pub smartadvocate: casebridge_crm::smartadvocate::connection::Clients,
    /// Where file bytes (documents, recordings) are kept: the object store.
    pub files: casebridge_files::Files,
}

/// The services' shared context. Cheap to clone. Its parts are private: callers reach the
/// database, the keyring and the CRMs only through the use cases.
#[derive(Clone)]
pub struct App {
    inner: Arc<AppParts>,
    connectors: Connectors,
}

impl App {
    pub fn new(parts: AppParts) -> Self {
        Self {
            connectors: Connectors::new(parts.lawruler.clone(), parts.smartadvocate.clone()),
            inner: Arc::new(parts),
        }
    }

    pub(crate) fn store(&self) -> &Store {
        &self.inner.store
    }

    pub(crate) fn now(&self) -> jiff::Timestamp {
        self.inner.clock.now()
    }

    pub(crate) fn clock(&self) -> &Arc<dyn Clock> {
        &self.inner.clock
    }

    pub(crate) fn keyring(&self) -> &Keyring {
        &self.inner.keyring
    }

    pub(crate) fn url_policy(&self) -> &Arc<UrlPolicy> {
        &self.inner.url_policy
    }

    pub(crate) fn outbound(&self) -> &reqwest::Client {
        &self.inner.outbound
    }

    pub(crate) fn public_url(&self) -> Option<&str> {
        self.inner.public_url.as_deref()
    }

    pub(crate) fn scheduling_url(&self) -> &str {
        &self.inner.scheduling_url
    }

    pub(crate) fn files(&self) -> &casebridge_files::Files {
        &self.inner.files
    }

    pub(crate) fn connectors(&self) -> &Connectors {
        &self.connectors
    }

    /// Whether the database answers (`/readyz`).
    pub async fn ready(&self) -> Result<()> {
        self.store()
            .ping()
            .await
            .map_err(|e| AppError::Unavailable(format!("database: {e}")))
    }
}
