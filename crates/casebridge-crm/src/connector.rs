//! The one interface every CRM sits behind.
//!
//! The service layer knows CRMs only through [`Connector`]: it asks [`Connectors`] for the
//! provider of a request, or fans a platform change out to all of them. Everything a CRM's
//! protocol needs (paths, field names, failure bodies, what its toggles mean) stays in that
//! CRM's module; a connector translates between that module and the provider-neutral types here.

use std::sync::Arc;

use async_trait::async_trait;
use casebridge_domain::activity::{Call, Message};
use casebridge_domain::ids::CompanyId;
use casebridge_domain::integrations::Provider;
use casebridge_domain::model::{Case, Client};
use casebridge_store::documents::Document;
use casebridge_store::{StoreError, Tx};
use jiff::Timestamp;

use crate::lawruler;

/// A change on the platform that CRMs may need to hear about. The connector decides, from its
/// integration's settings, whether it becomes an outbound operation.
#[derive(Debug, Clone, Copy)]
pub enum PlatformChange<'a> {
    /// A case was created (`before` is `None`) or updated.
    Case {
        before: Option<&'a Case>,
        after: &'a Case,
    },
    Client {
        before: &'a Client,
        after: &'a Client,
    },
    /// A message was sent or received, or its delivery status changed.
    Message(&'a Message),
    /// A call's analysis arrived (`revised` when it replaces an earlier one).
    CallAnalyzed { call: &'a Call, revised: bool },
    RecordingStored {
        call: &'a Call,
        recording: &'a Document,
    },
    DocumentStored {
        case: &'a Case,
        document: &'a Document,
    },
}

/// One CRM, as the service layer sees it.
#[async_trait]
pub trait Connector: Send + Sync {
    fn provider(&self) -> Provider;

    /// Records the outbound operations a platform change causes, in the change's transaction
    /// (the CRM outbox). Does nothing when the integration is not connected, not enabled, or the
    /// change's kind is turned off.
    async fn record_change(
        &self,
        tx: &mut Tx,
        company: CompanyId,
        change: &PlatformChange<'_>,
        now: Timestamp,
    ) -> Result<(), StoreError>;
}

/// Every CRM casebridge can connect, by provider.
#[derive(Clone)]
pub struct Connectors {
    all: Vec<Arc<dyn Connector>>,
}

impl Connectors {
    pub fn new(lawruler: lawruler::connection::Clients) -> Self {
        Self {
            all: vec![Arc::new(lawruler::LawRuler::new(lawruler))],
        }
    }

    /// The connector of a provider; `None` for one casebridge cannot connect yet.
    pub fn get(&self, provider: Provider) -> Option<&Arc<dyn Connector>> {
        self.all.iter().find(|c| c.provider() == provider)
    }

    pub fn all(&self) -> impl Iterator<Item = &Arc<dyn Connector>> {
        self.all.iter()
    }
}
