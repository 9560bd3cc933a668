//! Law Ruler behind the [`Connector`] interface.

use async_trait::async_trait;
use casebridge_domain::ids::CompanyId;
use casebridge_domain::integrations::Provider;
use casebridge_store::{StoreError, Tx};
use jiff::Timestamp;

use super::connection::Clients;
use super::outbound;
use crate::connector::{Connector, PlatformChange};

/// The Law Ruler connector.
pub struct LawRuler {
    clients: Clients,
}

impl LawRuler {
    pub fn new(clients: Clients) -> Self {
        Self { clients }
    }

    pub fn clients(&self) -> &Clients {
        &self.clients
    }
}

#[async_trait]
impl Connector for LawRuler {
    fn provider(&self) -> Provider {
        Provider::LawRuler
    }

    async fn record_change(
        &self,
        tx: &mut Tx,
        company: CompanyId,
        change: &PlatformChange<'_>,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        match *change {
            PlatformChange::Case { before, after } => {
                outbound::case_changed(tx, company, before, after, now).await
            }
            PlatformChange::Client { before, after } => {
                outbound::client_changed(tx, company, before, after, now).await
            }
            PlatformChange::Message(m) => outbound::message_recorded(tx, company, m, now).await,
            PlatformChange::CallAnalyzed { call, revised } => {
                outbound::call_analyzed(tx, company, call, revised, now).await
            }
            PlatformChange::RecordingStored { call, recording } => {
                outbound::recording_stored(tx, company, call, recording, now).await
            }
            PlatformChange::DocumentStored { case, document } => {
                outbound::document_stored(tx, company, case, document, now).await
            }
        }
    }
}
