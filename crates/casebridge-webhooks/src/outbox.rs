//! How events enter the webhook pipeline: recorded in the caller's transaction together with
//! their deliveries to the subscribed webhooks and the jobs that send them (transactional
//! outbox, fanned out inline).

use casebridge_domain::events::{Event, NewEvent};
use casebridge_domain::ids::CompanyId;
use casebridge_domain::jobs::NewJob;
use casebridge_store::{events, jobs, webhooks, Conn, StoreError};
use jiff::Timestamp;

use crate::delivery::delivery_job;
use casebridge_domain::events::Trigger;

/// The queue that webhook work runs on.
pub const QUEUE: &str = "webhooks";
/// Job kind: match an event against the company's webhooks and create deliveries. No longer
/// enqueued (events fan out inline, [`record_event`]); still run for jobs queued before.
pub const DISPATCH: &str = "webhook.dispatch";
/// Job kind: send one delivery.
pub const DELIVER: &str = "webhook.deliver";

/// Records an event on `conn`, which should be the transaction of the change the event reports,
/// and fans it out there: one delivery (`pending`) and one `webhook.deliver` job for each of the
/// company's active webhooks whose subscription matches. The change, the event, its deliveries
/// and their jobs commit together or not at all, and the first delivery can start as soon as
/// they commit (no dispatch job runs first).
///
/// Cost per event: the case-type lookup (events about a case), one query for the company's
/// active webhooks, one round trip for the event with its deliveries (when any webhook matches),
/// and one multi-row insert of jobs (on SQLite the jobs' slots are decided inside it).
pub async fn record_event(
    conn: &mut Conn,
    company: CompanyId,
    new: &NewEvent,
    now: Timestamp,
) -> Result<Event, StoreError> {
    let event = events::prepare(conn, company, new, now).await?;
    let hooks = webhooks::active(conn, company).await?;
    let matched: Vec<_> = hooks
        .iter()
        .filter(|h| h.subscription.matches(&event))
        .collect();
    let ids: Vec<_> = matched.iter().map(|h| h.id).collect();
    let made = events::insert_with_deliveries(conn, &event, &ids).await?;
    if made.is_empty() {
        return Ok(event);
    }
    let jobs: Vec<NewJob> = made
        .iter()
        .filter_map(|(hook, delivery)| {
            let limit = matched.iter().find(|h| h.id == *hook)?.max_in_flight;
            Some(delivery_job(
                company,
                *hook,
                *delivery,
                Trigger::Scheduled,
                limit,
            ))
        })
        .collect();
    jobs::enqueue_many(conn, &jobs, now).await?;
    Ok(event)
}
