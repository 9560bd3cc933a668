//! The delivery handler's per-process cache of webhooks: configuration, decrypted signing secrets
//! and App Key, so an attempt neither re-reads them nor decrypts them again.
//!
//! Invalidation is exact, across processes: every change to a webhook or its secrets bumps
//! `webhooks.version` in its own transaction, the query that loads a delivery reads the version
//! its webhook has now (a join, no extra query), and an entry of another version is reloaded. The
//! cache is only a memory of what a version said; a secret's end (a rotation's overlap) is checked
//! when the secret is used, so an entry never signs with a secret that has ended.

use std::sync::Arc;

use casebridge_domain::events::Webhook;
use casebridge_domain::ids::{CompanyId, WebhookId};
use jiff::Timestamp;
use secrecy::SecretString;

use crate::signing::SigningSecret;

/// How many webhooks a process keeps at most (the least recently used go first).
pub const DEFAULT_CAPACITY: usize = 10_000;

/// What a webhook's deliveries are signed and sent with, at one version of the webhook.
pub struct CachedWebhook {
    pub hook: Webhook,
    /// The secrets and App Key, or why they could not be opened (the error the attempt fails
    /// with; kept, since the same version opens the same way).
    signing: Result<Signing, String>,
}

/// A webhook's opened secrets and App Key.
pub struct Signing {
    /// The secrets that had not ended when they were read, newest first, each with when it
    /// stops signing.
    pub secrets: Vec<(SigningSecret, Option<Timestamp>)>,
    pub app_key: Option<SecretString>,
}

impl CachedWebhook {
    pub fn new(hook: Webhook, signing: Result<Signing, String>) -> Self {
        Self { hook, signing }
    }

    /// The secrets that sign at `now` (a secret past its end is left out, whenever the entry
    /// was loaded), newest first, and the App Key.
    pub fn signing_at(
        &self,
        now: Timestamp,
    ) -> Result<(Vec<&SigningSecret>, Option<&SecretString>), String> {
        let s = self.signing.as_ref().map_err(Clone::clone)?;
        let secrets: Vec<&SigningSecret> = s
            .secrets
            .iter()
            .filter(|(_, ends)| ends.is_none_or(|e| e > now))
            .map(|(secret, _)| secret)
            .collect();
        if secrets.is_empty() {
            return Err("the webhook has no signing secret".into());
        }
        Ok((secrets, s.app_key.as_ref()))
    }
}

/// Webhooks by id, bounded (least recently used evicted first), shared by a runtime's handlers.
pub struct WebhookCache {
    entries: quick_cache::sync::Cache<(CompanyId, WebhookId), Arc<CachedWebhook>>,
}

impl WebhookCache {
    pub fn new(capacity: usize) -> Self {
        Self {
            entries: quick_cache::sync::Cache::new(capacity),
        }
    }

    /// The cached webhook if it is at `version` (the version the webhook has now).
    pub fn get(
        &self,
        company: CompanyId,
        id: WebhookId,
        version: u64,
    ) -> Option<Arc<CachedWebhook>> {
        self.entries
            .get(&(company, id))
            .filter(|e| e.hook.version == version)
    }

    pub fn insert(&self, entry: Arc<CachedWebhook>) {
        self.entries
            .insert((entry.hook.company_id, entry.hook.id), entry);
    }

    /// Forgets a webhook (it no longer exists).
    pub fn remove(&self, company: CompanyId, id: WebhookId) {
        self.entries.remove(&(company, id));
    }

    /// How many webhooks are cached.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

impl Default for WebhookCache {
    fn default() -> Self {
        Self::new(DEFAULT_CAPACITY)
    }
}
