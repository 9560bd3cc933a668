//! Recorded events. The payload column holds the exact envelope consumers receive.

use casebridge_domain::events::{Event, EventType, NewEvent};
use casebridge_domain::ids::{CompanyId, DeliveryId, EventId, WebhookId};
use jiff::Timestamp;
use sqlx::FromRow;

use crate::{parse_id, parse_opt_id, ts, Conn, Result, StoreError};

#[derive(FromRow)]
struct Row {
    id: String,
    company_id: String,
    #[sqlx(rename = "type")]
    event_type: String,
    campaign_id: Option<String>,
    case_type_id: Option<String>,
    payload: String,
    created_at: i64,
}

impl Row {
    fn into_model(self) -> Result<Event> {
        let mut envelope: serde_json::Value = serde_json::from_str(&self.payload)
            .map_err(|e| StoreError::Corrupt(format!("events.payload: {e}")))?;
        Ok(Event {
            id: parse_id("events.id", &self.id)?,
            company_id: parse_id("events.company_id", &self.company_id)?,
            event_type: EventType::parse(&self.event_type)
                .ok_or_else(|| StoreError::Corrupt(format!("events.type `{}`", self.event_type)))?,
            campaign_id: parse_opt_id("events.campaign_id", self.campaign_id.as_deref())?,
            case_type_id: parse_opt_id("events.case_type_id", self.case_type_id.as_deref())?,
            data: envelope["data"].take(),
            created_at: ts(self.created_at)?,
        })
    }
}

/// Records an event. The case's type is looked up now, so case-type filters see the case as it
/// was when the event happened.
pub async fn insert(
    conn: &mut Conn,
    company: CompanyId,
    new: &NewEvent,
    now: Timestamp,
) -> Result<Event> {
    let event = prepare(conn, company, new, now).await?;
    insert_with_deliveries(conn, &event, &[]).await?;
    Ok(event)
}

/// The event [`insert`] would record, not written yet: its id, time and the case's type (looked
/// up now, so case-type filters see the case as it was when the event happened). Written with
/// [`insert_with_deliveries`].
pub async fn prepare(
    conn: &mut Conn,
    company: CompanyId,
    new: &NewEvent,
    now: Timestamp,
) -> Result<Event> {
    let case_type_id: Option<String> = match new.case_id {
        Some(case) => {
            sqlx::query_scalar("SELECT case_type_id FROM cases WHERE company_id = $1 AND id = $2")
                .bind(company.to_string())
                .bind(case.to_string())
                .fetch_optional(&mut *conn)
                .await?
        }
        None => None,
    };
    Ok(Event {
        id: EventId::new(),
        company_id: company,
        event_type: new.event_type,
        campaign_id: new.campaign_id,
        case_type_id: parse_opt_id("cases.case_type_id", case_type_id.as_deref())?,
        data: new.data.clone(),
        created_at: Timestamp::from_millisecond(now.as_millisecond())
            .map_err(|e| StoreError::Corrupt(e.to_string()))?,
    })
}

/// Writes a [`prepare`]d event and a `pending` delivery of it to each of `hooks`, in one round
/// trip for up to 100 hooks (on PostgreSQL the event's insert is a data-modifying CTE of the
/// deliveries' insert; on SQLite the two statements are one command). Returns the deliveries
/// made, as [`crate::webhooks::create_deliveries`] does.
pub async fn insert_with_deliveries(
    conn: &mut Conn,
    event: &Event,
    hooks: &[WebhookId],
) -> Result<Vec<(WebhookId, DeliveryId)>> {
    const INSERT: &str = "INSERT INTO events (id, company_id, type, campaign_id, case_type_id,
                                              payload, created_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7)";
    let (first, rest) = hooks.split_at(hooks.len().min(crate::webhooks::DELIVERY_BATCH));
    let ids: Vec<DeliveryId> = first.iter().map(|_| DeliveryId::new()).collect();
    let sql = if first.is_empty() {
        INSERT.to_owned()
    } else {
        let deliveries = crate::webhooks::deliveries_insert(first.len(), 8, "$2", "$1", "$7");
        if conn.backend_name() == "PostgreSQL" {
            format!("WITH event AS ({INSERT}) {deliveries}")
        } else {
            format!("{INSERT}; {deliveries}")
        }
    };
    let mut q = sqlx::query_scalar::<_, String>(&sql)
        .bind(event.id.to_string())
        .bind(event.company_id.to_string())
        .bind(event.event_type.as_str())
        .bind(event.campaign_id.map(|c| c.to_string()))
        .bind(event.case_type_id.map(|c| c.to_string()))
        .bind(event.envelope().to_string())
        .bind(event.created_at.as_millisecond());
    for (id, hook) in ids.iter().zip(first) {
        q = q.bind(id.to_string()).bind(hook.to_string());
    }
    let made: Vec<String> = q.fetch_all(&mut *conn).await?;
    let mut out: Vec<(WebhookId, DeliveryId)> = ids
        .iter()
        .zip(first)
        .filter(|(id, _)| made.contains(&id.to_string()))
        .map(|(id, hook)| (*hook, *id))
        .collect();
    if !rest.is_empty() {
        let now = event.created_at;
        out.extend(
            crate::webhooks::create_deliveries(conn, event.company_id, rest, event.id, now).await?,
        );
    }
    Ok(out)
}

pub async fn get(conn: &mut Conn, company: CompanyId, id: EventId) -> Result<Event> {
    let row: Row = sqlx::query_as(
        "SELECT id, company_id, type, campaign_id, case_type_id, payload, created_at
         FROM events WHERE company_id = $1 AND id = $2",
    )
    .bind(company.to_string())
    .bind(id.to_string())
    .fetch_one(&mut *conn)
    .await?;
    row.into_model()
}

/// The stored envelope text, byte for byte as first recorded.
pub async fn payload(conn: &mut Conn, company: CompanyId, id: EventId) -> Result<String> {
    Ok(
        sqlx::query_scalar("SELECT payload FROM events WHERE company_id = $1 AND id = $2")
            .bind(company.to_string())
            .bind(id.to_string())
            .fetch_one(&mut *conn)
            .await?,
    )
}
