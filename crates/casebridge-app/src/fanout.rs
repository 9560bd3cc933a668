//! The one place a platform change goes out to the CRMs.
//!
//! A use case that changes something a CRM may need (a case or client, a message, a call's
//! analysis, a recording or document) calls [`platform_change`] inside its own transaction. Every
//! CRM connector then records its outbound operations in that transaction, so the change and the
//! CRM operations it causes commit together or not at all (the CRM outbox). Changes that arrive
//! *from* a CRM (webhooks, pulls, imports) never come through here, so nothing echoes back.

use casebridge_crm::PlatformChange;
use casebridge_domain::ids::CompanyId;
use casebridge_store::Tx;
use jiff::Timestamp;

use crate::{App, Result};

/// Hands `change` to every CRM connector, in the caller's transaction.
pub async fn platform_change(
    app: &App,
    tx: &mut Tx,
    company: CompanyId,
    change: PlatformChange<'_>,
    now: Timestamp,
) -> Result<()> {
    for connector in app.connectors().all() {
        connector.record_change(tx, company, &change, now).await?;
    }
    Ok(())
}
