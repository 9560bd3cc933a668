//! How events enter the webhook pipeline: recorded in the caller's transaction together with the
//! job that will fan them out to matching webhooks (transactional outbox).

use casebridge_domain::events::{Event, NewEvent};
use casebridge_domain::ids::CompanyId;
use casebridge_domain::jobs::NewJob;
use casebridge_store::{events, jobs, Conn, StoreError};
use jiff::Timestamp;
use serde_json::json;

/// The queue that webhook work runs on.
pub const QUEUE: &str = "webhooks";
/// Job kind: match an event against the company's webhooks and create deliveries.
pub const DISPATCH: &str = "webhook.dispatch";
/// Job kind: send one delivery.
pub const DELIVER: &str = "webhook.deliver";

/// Records an event and enqueues its dispatch on `conn`, which should be the transaction of the
/// change the event reports: both commit or neither does.
pub async fn record_event(
    conn: &mut Conn,
    company: CompanyId,
    new: &NewEvent,
    now: Timestamp,
) -> Result<Event, StoreError> {
    let event = events::insert(conn, company, new, now).await?;
    jobs::enqueue(
        conn,
        &NewJob::new(QUEUE, DISPATCH, json!({ "event_id": event.id.to_string() })).company(company),
        now,
    )
    .await?;
    Ok(event)
}
