//! Webhooks, their signing secrets, deliveries and the attempt log.

use casebridge_domain::events::{
    Attempt, Delivery, DeliveryFilter, DeliveryStatus, EventType, Subscription, Trigger, Webhook,
};
use casebridge_domain::ids::{
    CampaignId, CompanyId, DeliveryId, EventId, JobId, WebhookId, WebhookSecretId,
};
use casebridge_domain::page::{Page, PageRequest};
use jiff::Timestamp;
use serde::de::DeserializeOwned;
use sqlx::any::AnyArguments;
use sqlx::{Arguments, FromRow};

use crate::{for_update, jobs, parse_id, parse_opt_id, ts, Conn, Result, StoreError, Tx};
use casebridge_domain::jobs::Job;

const COLUMNS: &str = "id, company_id, scope_campaign_id, name, url, event_types,
    filter_campaign_ids, filter_case_type_ids, app_key_sealed, active, disabled_reason,
    max_in_flight, version, created_at, updated_at";

fn json_col<T: DeserializeOwned>(column: &str, raw: &str) -> Result<T> {
    serde_json::from_str(raw).map_err(|e| StoreError::Corrupt(format!("{column}: {e}")))
}

#[derive(FromRow)]
struct Row {
    id: String,
    company_id: String,
    scope_campaign_id: Option<String>,
    name: String,
    url: String,
    event_types: String,
    filter_campaign_ids: String,
    filter_case_type_ids: String,
    app_key_sealed: Option<String>,
    active: i64,
    disabled_reason: Option<String>,
    max_in_flight: i64,
    version: i64,
    created_at: i64,
    updated_at: i64,
}

impl Row {
    fn into_model(self) -> Result<Webhook> {
        let types: Vec<String> = json_col("webhooks.event_types", &self.event_types)?;
        let event_types = types
            .iter()
            .map(|t| {
                EventType::parse(t)
                    .ok_or_else(|| StoreError::Corrupt(format!("webhooks.event_types `{t}`")))
            })
            .collect::<Result<Vec<_>>>()?;
        let ids = |column: &str, raw: &str| -> Result<Vec<String>> { json_col(column, raw) };
        Ok(Webhook {
            id: parse_id("webhooks.id", &self.id)?,
            company_id: parse_id("webhooks.company_id", &self.company_id)?,
            name: self.name,
            url: self.url,
            subscription: Subscription {
                event_types,
                scope_campaign_id: parse_opt_id(
                    "webhooks.scope_campaign_id",
                    self.scope_campaign_id.as_deref(),
                )?,
                campaign_ids: ids("webhooks.filter_campaign_ids", &self.filter_campaign_ids)?
                    .iter()
                    .map(|i| parse_id("webhooks.filter_campaign_ids", i))
                    .collect::<Result<_>>()?,
                case_type_ids: ids("webhooks.filter_case_type_ids", &self.filter_case_type_ids)?
                    .iter()
                    .map(|i| parse_id("webhooks.filter_case_type_ids", i))
                    .collect::<Result<_>>()?,
            },
            active: self.active != 0,
            disabled_reason: self.disabled_reason,
            app_key_sealed: self.app_key_sealed,
            max_in_flight: u32::try_from(self.max_in_flight)
                .map_err(|_| StoreError::Corrupt("webhooks.max_in_flight".into()))?,
            version: u64::try_from(self.version)
                .map_err(|_| StoreError::Corrupt("webhooks.version".into()))?,
            created_at: ts(self.created_at)?,
            updated_at: ts(self.updated_at)?,
        })
    }
}

fn types_json(s: &Subscription) -> String {
    serde_json::to_string(&s.event_types.iter().map(|t| t.as_str()).collect::<Vec<_>>())
        .expect("strings serialize")
}

fn ids_json<T: std::fmt::Display>(ids: &[T]) -> String {
    serde_json::to_string(&ids.iter().map(|i| i.to_string()).collect::<Vec<_>>())
        .expect("strings serialize")
}

/// What a new webhook is made of, already validated.
#[derive(Debug, Clone)]
pub struct NewWebhook {
    /// Chosen by the caller, so secrets can be sealed to the webhook before it is stored.
    pub id: WebhookId,
    pub name: String,
    pub url: String,
    pub subscription: Subscription,
    pub app_key_sealed: Option<String>,
    pub active: bool,
    /// Validated (1..=64).
    pub max_in_flight: u32,
}

/// A partial update; `app_key_sealed: Some(None)` removes the App Key.
#[derive(Debug, Clone, Default)]
pub struct WebhookPatch {
    pub name: Option<String>,
    pub url: Option<String>,
    pub event_types: Option<Vec<EventType>>,
    pub campaign_ids: Option<Vec<CampaignId>>,
    pub case_type_ids: Option<Vec<casebridge_domain::ids::CaseTypeId>>,
    pub app_key_sealed: Option<Option<String>>,
    pub active: Option<bool>,
    pub max_in_flight: Option<u32>,
}

/// Creates a webhook with its first signing secret.
pub async fn create(
    conn: &mut Tx,
    company: CompanyId,
    new: &NewWebhook,
    secret_sealed: &str,
    now: Timestamp,
) -> Result<Webhook> {
    let conn: &mut Conn = conn;
    let id = new.id;
    let s = &new.subscription;
    sqlx::query(
        "INSERT INTO webhooks (id, company_id, scope_campaign_id, name, url, event_types,
             filter_campaign_ids, filter_case_type_ids, app_key_sealed, active, max_in_flight,
             created_at, updated_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $12, $11, $11)",
    )
    .bind(id.to_string())
    .bind(company.to_string())
    .bind(s.scope_campaign_id.map(|c| c.to_string()))
    .bind(&new.name)
    .bind(&new.url)
    .bind(types_json(s))
    .bind(ids_json(&s.campaign_ids))
    .bind(ids_json(&s.case_type_ids))
    .bind(new.app_key_sealed.clone())
    .bind(i64::from(new.active))
    .bind(now.as_millisecond())
    .bind(i64::from(new.max_in_flight))
    .execute(&mut *conn)
    .await?;
    insert_secret(conn, company, id, secret_sealed, now).await?;
    get(conn, company, id).await
}

pub async fn get(conn: &mut Conn, company: CompanyId, id: WebhookId) -> Result<Webhook> {
    let row: Row = sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM webhooks WHERE company_id = $1 AND id = $2"
    ))
    .bind(company.to_string())
    .bind(id.to_string())
    .fetch_one(&mut *conn)
    .await?;
    row.into_model()
}

/// The company's webhooks; with `scope`, only those created from that campaign.
pub async fn list(
    conn: &mut Conn,
    company: CompanyId,
    scope: Option<CampaignId>,
    page: &PageRequest,
) -> Result<Page<Webhook>> {
    let rows: Vec<Row> = sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM webhooks
         WHERE company_id = $1 AND id > $2 AND ($3 IS NULL OR scope_campaign_id = $3)
         ORDER BY id LIMIT $4"
    ))
    .bind(company.to_string())
    .bind(page.after.clone().unwrap_or_default())
    .bind(scope.map(|c| c.to_string()))
    .bind(i64::from(page.limit) + 1)
    .fetch_all(&mut *conn)
    .await?;
    let items = rows
        .into_iter()
        .map(Row::into_model)
        .collect::<Result<Vec<_>>>()?;
    Ok(Page::from_overfetch(items, page.limit, |w| {
        w.id.to_string()
    }))
}

/// Every active webhook of a company (for matching an event).
pub async fn active(conn: &mut Conn, company: CompanyId) -> Result<Vec<Webhook>> {
    let rows: Vec<Row> = sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM webhooks WHERE company_id = $1 AND active = 1 ORDER BY id"
    ))
    .bind(company.to_string())
    .fetch_all(&mut *conn)
    .await?;
    rows.into_iter().map(Row::into_model).collect()
}

pub async fn update(
    conn: &mut Tx,
    company: CompanyId,
    id: WebhookId,
    patch: &WebhookPatch,
    now: Timestamp,
) -> Result<Webhook> {
    let conn: &mut Conn = conn;
    // Locked until commit, so a concurrent change (such as a 410 turning the webhook off) is
    // not overwritten with what this update read before it.
    let row: Row = sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM webhooks WHERE company_id = $1 AND id = $2{}",
        for_update(conn)
    ))
    .bind(company.to_string())
    .bind(id.to_string())
    .fetch_one(&mut *conn)
    .await?;
    let mut w = row.into_model()?;
    if let Some(n) = &patch.name {
        w.name = n.clone();
    }
    if let Some(u) = &patch.url {
        w.url = u.clone();
    }
    if let Some(t) = &patch.event_types {
        w.subscription.event_types = t.clone();
    }
    if let Some(c) = &patch.campaign_ids {
        w.subscription.campaign_ids = c.clone();
    }
    if let Some(c) = &patch.case_type_ids {
        w.subscription.case_type_ids = c.clone();
    }
    if let Some(k) = &patch.app_key_sealed {
        w.app_key_sealed = k.clone();
    }
    if let Some(n) = patch.max_in_flight {
        w.max_in_flight = n;
    }
    if let Some(a) = patch.active {
        w.active = a;
        if a {
            w.disabled_reason = None;
        }
    }
    let s = &w.subscription;
    sqlx::query(
        "UPDATE webhooks SET name = $3, url = $4, event_types = $5, filter_campaign_ids = $6,
                filter_case_type_ids = $7, app_key_sealed = $8, active = $9,
                disabled_reason = $10, updated_at = $11, max_in_flight = $12,
                version = version + 1
         WHERE company_id = $1 AND id = $2",
    )
    .bind(company.to_string())
    .bind(id.to_string())
    .bind(&w.name)
    .bind(&w.url)
    .bind(types_json(s))
    .bind(ids_json(&s.campaign_ids))
    .bind(ids_json(&s.case_type_ids))
    .bind(w.app_key_sealed.clone())
    .bind(i64::from(w.active))
    .bind(w.disabled_reason.clone())
    .bind(now.as_millisecond())
    .bind(i64::from(w.max_in_flight))
    .execute(&mut *conn)
    .await?;
    get(conn, company, id).await
}

/// Turns a webhook off on the system's initiative (e.g. the endpoint answered 410 Gone).
pub async fn disable(
    conn: &mut Conn,
    company: CompanyId,
    id: WebhookId,
    reason: &str,
    now: Timestamp,
) -> Result<()> {
    sqlx::query(
        "UPDATE webhooks SET active = 0, disabled_reason = $3, updated_at = $4,
                version = version + 1
         WHERE company_id = $1 AND id = $2",
    )
    .bind(company.to_string())
    .bind(id.to_string())
    .bind(reason)
    .bind(now.as_millisecond())
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Deletes a webhook with its secrets, deliveries and attempt log. (No version to bump: a
/// delivery's query finds no webhook, and so nothing to send, once the row is gone.)
pub async fn delete(conn: &mut Conn, company: CompanyId, id: WebhookId) -> Result<()> {
    let done = sqlx::query("DELETE FROM webhooks WHERE company_id = $1 AND id = $2")
        .bind(company.to_string())
        .bind(id.to_string())
        .execute(&mut *conn)
        .await?;
    if done.rows_affected() == 0 {
        return Err(StoreError::NotFound);
    }
    Ok(())
}

/// Adds a signing secret (sealed) on rotation, bumping the webhook's version with it.
pub async fn add_secret(
    conn: &mut Tx,
    company: CompanyId,
    webhook: WebhookId,
    sealed: &str,
    now: Timestamp,
) -> Result<WebhookSecretId> {
    let id = insert_secret(conn, company, webhook, sealed, now).await?;
    bump_version(conn, company, webhook).await?;
    Ok(id)
}

/// Marks a change to a webhook's secrets: the delivery caches reload it.
async fn bump_version(conn: &mut Conn, company: CompanyId, webhook: WebhookId) -> Result<()> {
    sqlx::query("UPDATE webhooks SET version = version + 1 WHERE company_id = $1 AND id = $2")
        .bind(company.to_string())
        .bind(webhook.to_string())
        .execute(&mut *conn)
        .await?;
    Ok(())
}

async fn insert_secret(
    conn: &mut Conn,
    company: CompanyId,
    webhook: WebhookId,
    sealed: &str,
    now: Timestamp,
) -> Result<WebhookSecretId> {
    let id = WebhookSecretId::new();
    sqlx::query(
        "INSERT INTO webhook_secrets (id, company_id, webhook_id, secret_sealed, created_at)
         VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(id.to_string())
    .bind(company.to_string())
    .bind(webhook.to_string())
    .bind(sealed)
    .bind(now.as_millisecond())
    .execute(&mut *conn)
    .await?;
    Ok(id)
}

/// Ends every secret of the webhook other than `keep` at `expires_at` (the rotation's overlap
/// window), unless it already ends sooner, bumping the webhook's version with them.
pub async fn expire_other_secrets(
    conn: &mut Tx,
    company: CompanyId,
    webhook: WebhookId,
    keep: WebhookSecretId,
    expires_at: Timestamp,
) -> Result<()> {
    sqlx::query(
        "UPDATE webhook_secrets SET expires_at = $4
         WHERE company_id = $1 AND webhook_id = $2 AND id <> $3
           AND (expires_at IS NULL OR expires_at > $4)",
    )
    .bind(company.to_string())
    .bind(webhook.to_string())
    .bind(keep.to_string())
    .bind(expires_at.as_millisecond())
    .execute(&mut **conn)
    .await?;
    bump_version(conn, company, webhook).await
}

/// The sealed secrets that sign deliveries now, newest first, with when each ends.
pub async fn active_secrets(
    conn: &mut Conn,
    company: CompanyId,
    webhook: WebhookId,
    now: Timestamp,
) -> Result<Vec<(String, Option<Timestamp>)>> {
    let rows: Vec<(String, Option<i64>)> = sqlx::query_as(
        "SELECT secret_sealed, expires_at FROM webhook_secrets
         WHERE company_id = $1 AND webhook_id = $2 AND (expires_at IS NULL OR expires_at > $3)
         ORDER BY created_at DESC, id DESC",
    )
    .bind(company.to_string())
    .bind(webhook.to_string())
    .bind(now.as_millisecond())
    .fetch_all(&mut *conn)
    .await?;
    rows.into_iter()
        .map(|(s, e)| Ok((s, e.map(ts).transpose()?)))
        .collect()
}

// ---- deliveries ----

const DELIVERY_COLUMNS: &str = "d.id, d.webhook_id, d.event_id, e.type AS event_type, d.status,
    d.attempt_count, d.last_attempt_at, d.last_response_status, d.last_error, d.created_at,
    d.updated_at";

#[derive(FromRow)]
struct DeliveryRow {
    id: String,
    webhook_id: String,
    event_id: String,
    event_type: String,
    status: String,
    attempt_count: i64,
    last_attempt_at: Option<i64>,
    last_response_status: Option<i64>,
    last_error: Option<String>,
    created_at: i64,
    updated_at: i64,
}

impl DeliveryRow {
    fn into_model(self) -> Result<Delivery> {
        Ok(Delivery {
            id: parse_id("webhook_deliveries.id", &self.id)?,
            webhook_id: parse_id("webhook_deliveries.webhook_id", &self.webhook_id)?,
            event_id: parse_id("webhook_deliveries.event_id", &self.event_id)?,
            event_type: EventType::parse(&self.event_type)
                .ok_or_else(|| StoreError::Corrupt(format!("event type `{}`", self.event_type)))?,
            status: DeliveryStatus::parse(&self.status)
                .ok_or_else(|| StoreError::Corrupt(format!("delivery status `{}`", self.status)))?,
            attempt_count: u32::try_from(self.attempt_count).unwrap_or(0),
            last_attempt_at: self.last_attempt_at.map(ts).transpose()?,
            last_response_status: self
                .last_response_status
                .and_then(|s| u16::try_from(s).ok()),
            last_error: self.last_error,
            created_at: ts(self.created_at)?,
            updated_at: ts(self.updated_at)?,
        })
    }
}

/// Creates the delivery of an event to a webhook unless it exists (a legacy dispatch job may run
/// twice).
/// Returns the new delivery's id, or `None` when it already existed.
pub async fn create_delivery(
    conn: &mut Conn,
    company: CompanyId,
    webhook: WebhookId,
    event: EventId,
    now: Timestamp,
) -> Result<Option<DeliveryId>> {
    let id = DeliveryId::new();
    let done = sqlx::query(
        "INSERT INTO webhook_deliveries (id, company_id, webhook_id, event_id, status,
             created_at, updated_at)
         VALUES ($1, $2, $3, $4, 'pending', $5, $5)
         ON CONFLICT (webhook_id, event_id) DO NOTHING",
    )
    .bind(id.to_string())
    .bind(company.to_string())
    .bind(webhook.to_string())
    .bind(event.to_string())
    .bind(now.as_millisecond())
    .execute(&mut *conn)
    .await?;
    Ok((done.rows_affected() == 1).then_some(id))
}

/// Rows per multi-row `INSERT` of deliveries (5 parameters each), well under every backend's
/// parameter limit.
pub(crate) const DELIVERY_BATCH: usize = 100;

/// Creates the deliveries of one fresh event to `hooks` in as few statements as possible (one
/// per 100 webhooks): the fan-out of an event in the transaction that records it. Returns the
/// new deliveries' ids, one per webhook, in `hooks` order; a pair that already has a delivery is
/// left as it is and left out.
pub async fn create_deliveries(
    conn: &mut Conn,
    company: CompanyId,
    hooks: &[WebhookId],
    event: EventId,
    now: Timestamp,
) -> Result<Vec<(WebhookId, DeliveryId)>> {
    let mut out = Vec::with_capacity(hooks.len());
    for chunk in hooks.chunks(DELIVERY_BATCH) {
        let ids: Vec<DeliveryId> = chunk.iter().map(|_| DeliveryId::new()).collect();
        let sql = deliveries_insert(chunk.len(), 4, "$1", "$2", "$3");
        let mut q = sqlx::query_scalar::<_, String>(&sql)
            .bind(company.to_string())
            .bind(event.to_string())
            .bind(now.as_millisecond());
        for (id, hook) in ids.iter().zip(chunk) {
            q = q.bind(id.to_string()).bind(hook.to_string());
        }
        let made: Vec<String> = q.fetch_all(&mut *conn).await?;
        for (id, hook) in ids.iter().zip(chunk) {
            if made.contains(&id.to_string()) {
                out.push((*hook, *id));
            }
        }
    }
    Ok(out)
}

/// The multi-row insert of `n` pending deliveries of one event (at most [`DELIVERY_BATCH`]),
/// returning the ids made: each row's id and webhook id are parameters `$first + 2i` and
/// `$first + 2i + 1`; the company, the event id and the time are the parameters named.
pub(crate) fn deliveries_insert(
    n: usize,
    first: usize,
    company: &str,
    event: &str,
    now: &str,
) -> String {
    let values = (0..n)
        .map(|i| {
            let b = first + 2 * i;
            format!(
                "(${b}, {company}, ${}, {event}, 'pending', {now}, {now})",
                b + 1
            )
        })
        .collect::<Vec<_>>()
        .join(", ");
    format!(
        "INSERT INTO webhook_deliveries (id, company_id, webhook_id, event_id, status,
             created_at, updated_at)
         VALUES {values}
         ON CONFLICT (webhook_id, event_id) DO NOTHING
         RETURNING id"
    )
}

/// What an attempt of a delivery needs, read in one query.
#[derive(Debug, Clone)]
pub struct ToSend {
    pub delivery: Delivery,
    /// The version its webhook has now (what the delivery handler's cache compares its entry
    /// with).
    pub webhook_version: u64,
    /// The event's stored payload: the body sent.
    pub payload: String,
    /// Whether `job` already made a successful attempt (so a re-run after a crash sends
    /// nothing).
    pub already_sent: bool,
}

/// A delivery to send by `job`, with its webhook's version, its event's payload and whether the
/// job already succeeded once, in one query.
pub async fn delivery_to_send(
    conn: &mut Conn,
    company: CompanyId,
    id: DeliveryId,
    job: JobId,
) -> Result<ToSend> {
    #[derive(FromRow)]
    struct Row {
        #[sqlx(flatten)]
        delivery: DeliveryRow,
        webhook_version: i64,
        payload: String,
        already_sent: i64,
    }
    let row: Row = sqlx::query_as(&format!(
        "SELECT {DELIVERY_COLUMNS}, w.version AS webhook_version, e.payload,
                (SELECT COUNT(*) FROM (SELECT 1 FROM webhook_attempts a
                                       WHERE a.job_id = $3 AND a.succeeded = 1 LIMIT 1) s)
                    AS already_sent
         FROM webhook_deliveries d JOIN events e ON e.id = d.event_id
         JOIN webhooks w ON w.company_id = d.company_id AND w.id = d.webhook_id
         WHERE d.company_id = $1 AND d.id = $2"
    ))
    .bind(company.to_string())
    .bind(id.to_string())
    .bind(job.to_string())
    .fetch_one(&mut *conn)
    .await?;
    let webhook_version = u64::try_from(row.webhook_version)
        .map_err(|_| StoreError::Corrupt("webhooks.version".into()))?;
    Ok(ToSend {
        delivery: row.delivery.into_model()?,
        webhook_version,
        payload: row.payload,
        already_sent: row.already_sent > 0,
    })
}

pub async fn delivery(conn: &mut Conn, company: CompanyId, id: DeliveryId) -> Result<Delivery> {
    let row: DeliveryRow = sqlx::query_as(&format!(
        "SELECT {DELIVERY_COLUMNS} FROM webhook_deliveries d JOIN events e ON e.id = d.event_id
         WHERE d.company_id = $1 AND d.id = $2"
    ))
    .bind(company.to_string())
    .bind(id.to_string())
    .fetch_one(&mut *conn)
    .await?;
    row.into_model()
}

/// A webhook's deliveries, newest first, optionally of one status.
pub async fn deliveries(
    conn: &mut Conn,
    company: CompanyId,
    webhook: WebhookId,
    status: Option<DeliveryStatus>,
    page: &PageRequest,
) -> Result<Page<Delivery>> {
    // Newest first: the cursor is the last id seen, and ids are time-ordered.
    let rows: Vec<DeliveryRow> = sqlx::query_as(&format!(
        "SELECT {DELIVERY_COLUMNS} FROM webhook_deliveries d JOIN events e ON e.id = d.event_id
         WHERE d.company_id = $1 AND d.webhook_id = $2 AND ($3 IS NULL OR d.id < $3)
           AND ($4 IS NULL OR d.status = $4)
         ORDER BY d.id DESC LIMIT $5"
    ))
    .bind(company.to_string())
    .bind(webhook.to_string())
    .bind(page.after.clone())
    .bind(status.map(|s| s.as_str()))
    .bind(i64::from(page.limit) + 1)
    .fetch_all(&mut *conn)
    .await?;
    let items = rows
        .into_iter()
        .map(DeliveryRow::into_model)
        .collect::<Result<Vec<_>>>()?;
    Ok(Page::from_overfetch(items, page.limit, |d| {
        d.id.to_string()
    }))
}

/// How many webhooks the company has, and how many of them are on.
pub async fn count(conn: &mut Conn, company: CompanyId) -> Result<(u64, u64)> {
    let (all, on): (i64, i64) = sqlx::query_as(
        "SELECT COUNT(*), COALESCE(SUM(CASE WHEN active <> 0 THEN 1 ELSE 0 END), 0)
         FROM webhooks WHERE company_id = $1",
    )
    .bind(company.to_string())
    .fetch_one(&mut *conn)
    .await?;
    Ok((
        u64::try_from(all).unwrap_or(0),
        u64::try_from(on).unwrap_or(0),
    ))
}

/// The conditions of a [`DeliveryFilter`] on `webhook_deliveries d JOIN events e`, with the
/// company as `$1` and the filter's values as `$2`…`$8` (bound by [`bind_filter`]).
const FILTER_WHERE: &str = "d.company_id = $1
    AND ($2 IS NULL OR d.webhook_id = $2)
    AND ($3 IS NULL OR d.status = $3)
    AND ($4 IS NULL OR e.type = $4)
    AND ($5 IS NULL OR EXISTS (SELECT 1 FROM webhook_attempts a
                               WHERE a.delivery_id = d.id AND a.trigger = $5))
    AND ($6 IS NULL OR d.created_at >= $6)
    AND ($7 IS NULL OR d.created_at < $7)
    AND ($8 IS NULL OR d.event_id = $8)";

fn bind_filter<'q, O>(
    q: sqlx::query::QueryAs<'q, sqlx::Any, O, <sqlx::Any as sqlx::Database>::Arguments<'q>>,
    company: CompanyId,
    f: &DeliveryFilter,
) -> sqlx::query::QueryAs<'q, sqlx::Any, O, <sqlx::Any as sqlx::Database>::Arguments<'q>> {
    q.bind(company.to_string())
        .bind(f.webhook_id.map(|w| w.to_string()))
        .bind(f.status.map(|s| s.as_str()))
        .bind(f.event_type.map(|t| t.as_str()))
        .bind(f.trigger.map(|t| t.as_str()))
        .bind(f.since.map(|t| t.as_millisecond()))
        .bind(f.until.map(|t| t.as_millisecond()))
        .bind(f.event_id.map(|e| e.to_string()))
}

/// The company's deliveries matching `filter`, newest first.
pub async fn search_deliveries(
    conn: &mut Conn,
    company: CompanyId,
    filter: &DeliveryFilter,
    page: &PageRequest,
) -> Result<Page<Delivery>> {
    let sql = format!(
        "SELECT {DELIVERY_COLUMNS} FROM webhook_deliveries d JOIN events e ON e.id = d.event_id
         WHERE {FILTER_WHERE} AND ($9 IS NULL OR d.id < $9)
         ORDER BY d.id DESC LIMIT $10"
    );
    let rows: Vec<DeliveryRow> = bind_filter(sqlx::query_as(&sql), company, filter)
        .bind(page.after.clone())
        .bind(i64::from(page.limit) + 1)
        .fetch_all(&mut *conn)
        .await?;
    let items = rows
        .into_iter()
        .map(DeliveryRow::into_model)
        .collect::<Result<Vec<_>>>()?;
    Ok(Page::from_overfetch(items, page.limit, |d| {
        d.id.to_string()
    }))
}

/// The deliveries matching `filter`, oldest first, after the cursor `after` (a delivery id): what
/// an export reads, a chunk at a time.
pub async fn deliveries_range(
    conn: &mut Conn,
    company: CompanyId,
    filter: &DeliveryFilter,
    after: Option<&str>,
    limit: u32,
) -> Result<Vec<Delivery>> {
    let sql = format!(
        "SELECT {DELIVERY_COLUMNS} FROM webhook_deliveries d JOIN events e ON e.id = d.event_id
         WHERE {FILTER_WHERE} AND d.id > $9
         ORDER BY d.id LIMIT $10"
    );
    let rows: Vec<DeliveryRow> = bind_filter(sqlx::query_as(&sql), company, filter)
        .bind(after.unwrap_or_default().to_owned())
        .bind(i64::from(limit))
        .fetch_all(&mut *conn)
        .await?;
    rows.into_iter().map(DeliveryRow::into_model).collect()
}

/// How many deliveries match `filter` (for an export's progress).
pub async fn count_matching(
    conn: &mut Conn,
    company: CompanyId,
    filter: &DeliveryFilter,
) -> Result<u64> {
    let sql = format!(
        "SELECT COUNT(*) FROM webhook_deliveries d JOIN events e ON e.id = d.event_id
         WHERE {FILTER_WHERE}"
    );
    let (n,): (i64,) = bind_filter(sqlx::query_as(&sql), company, filter)
        .fetch_one(&mut *conn)
        .await?;
    Ok(u64::try_from(n).unwrap_or(0))
}

/// The failed deliveries matching `filter` (whatever status it asks for), oldest first, with
/// their webhooks: what a recovery of that filter queues again.
pub async fn failed_matching(
    conn: &mut Conn,
    company: CompanyId,
    filter: &DeliveryFilter,
) -> Result<Vec<(DeliveryId, WebhookId)>> {
    if filter.status.is_some_and(|s| s != DeliveryStatus::Failed) {
        return Ok(Vec::new());
    }
    let sql = format!(
        "SELECT d.id, d.webhook_id FROM webhook_deliveries d JOIN events e ON e.id = d.event_id
         WHERE {FILTER_WHERE} AND d.status = 'failed'
         ORDER BY d.id"
    );
    let rows: Vec<(String, String)> = bind_filter(sqlx::query_as(&sql), company, filter)
        .fetch_all(&mut *conn)
        .await?;
    rows.iter()
        .map(|(d, w)| {
            Ok((
                parse_id("webhook_deliveries.id", d)?,
                parse_id("webhook_deliveries.webhook_id", w)?,
            ))
        })
        .collect()
}

/// When a pending delivery's job runs next (its retry), if the job that made its last attempt
/// is still waiting.
pub async fn next_attempt_at(
    conn: &mut Conn,
    company: CompanyId,
    delivery: DeliveryId,
) -> Result<Option<Timestamp>> {
    let at: Option<i64> = sqlx::query_scalar(
        "SELECT j.run_at FROM jobs j
         WHERE j.status IN ('pending', 'scheduled', 'blocked') AND j.id = (
             SELECT a.job_id FROM webhook_attempts a
             WHERE a.company_id = $1 AND a.delivery_id = $2
             ORDER BY a.attempt_no DESC, a.started_at DESC LIMIT 1)",
    )
    .bind(company.to_string())
    .bind(delivery.to_string())
    .fetch_optional(&mut *conn)
    .await?;
    at.map(ts).transpose()
}

/// Puts a finished delivery back to pending (a replay is about to be queued). Returns false when
/// it is already pending: its next attempt is queued, and a second job must not be.
pub async fn mark_pending(
    conn: &mut Conn,
    company: CompanyId,
    id: DeliveryId,
    now: Timestamp,
) -> Result<bool> {
    let done = sqlx::query(
        "UPDATE webhook_deliveries SET status = 'pending', updated_at = $3
         WHERE company_id = $1 AND id = $2 AND status <> 'pending'",
    )
    .bind(company.to_string())
    .bind(id.to_string())
    .bind(now.as_millisecond())
    .execute(&mut *conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Marks a pending delivery failed (its webhook was turned off, or its job was dead-lettered).
/// A delivery that already succeeded or failed is left as it is; returns whether this call
/// failed it.
pub async fn mark_failed(
    conn: &mut Conn,
    company: CompanyId,
    id: DeliveryId,
    error: &str,
    now: Timestamp,
) -> Result<bool> {
    let done = sqlx::query(
        "UPDATE webhook_deliveries SET status = 'failed', last_error = $3, updated_at = $4
         WHERE company_id = $1 AND id = $2 AND status = 'pending'",
    )
    .bind(company.to_string())
    .bind(id.to_string())
    .bind(error)
    .bind(now.as_millisecond())
    .execute(&mut *conn)
    .await?;
    Ok(done.rows_affected() > 0)
}

fn headers_json(h: &[(String, String)]) -> String {
    serde_json::to_string(h).expect("strings serialize")
}

/// Logs an attempt and moves its delivery to `status`, in one round trip on the caller's
/// connection (the caller wraps it in a transaction).
pub async fn record_attempt(
    conn: &mut Conn,
    company: CompanyId,
    attempt: &Attempt,
    status: DeliveryStatus,
) -> Result<()> {
    let (sql, args) = attempt_statements(conn, company, attempt, status)?;
    sqlx::query_with(&sql, args).execute(&mut *conn).await?;
    Ok(())
}

/// [`record_attempt`] of a successful attempt together with its job's end
/// ([`jobs::complete_in_after`]: on SQLite one round trip for both), with `take` claiming the
/// job that takes the freed slot.
pub async fn record_attempt_completing(
    tx: &mut Tx,
    company: CompanyId,
    attempt: &Attempt,
    job: &Job,
    take: Option<jobs::Take>,
) -> Result<jobs::Ended> {
    let (sql, args) = attempt_statements(tx, company, attempt, DeliveryStatus::Succeeded)?;
    jobs::complete_in_after(tx, job, take, &sql, args).await
}

/// The statements of [`record_attempt`] and their parameters: on PostgreSQL the attempt's
/// insert is a data-modifying CTE of the delivery's update; on SQLite they are two statements
/// of one command (its `$N` parameters are shared).
fn attempt_statements<'q>(
    conn: &Conn,
    company: CompanyId,
    attempt: &'q Attempt,
    status: DeliveryStatus,
) -> Result<(String, AnyArguments<'q>)> {
    const INSERT: &str = "INSERT INTO webhook_attempts (id, company_id, delivery_id, job_id,
             attempt_no, trigger, request_url, request_headers, request_body, response_status,
             response_headers, response_body, error, duration_ms, succeeded, started_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)";
    const UPDATE: &str = "UPDATE webhook_deliveries SET status = $17,
                attempt_count = attempt_count + 1, last_attempt_at = $16,
                last_response_status = $10, last_error = $13, updated_at = $16
         WHERE company_id = $2 AND id = $3";
    let sql = if conn.backend_name() == "PostgreSQL" {
        format!("WITH attempt AS ({INSERT}) {UPDATE}")
    } else {
        format!("{INSERT}; {UPDATE}")
    };
    let mut args = AnyArguments::default();
    let added = [
        args.add(attempt.id.to_string()),
        args.add(company.to_string()),
        args.add(attempt.delivery_id.to_string()),
        args.add(attempt.job_id.to_string()),
        args.add(i64::from(attempt.attempt_no)),
        args.add(attempt.trigger.as_str()),
        args.add(attempt.request_url.as_str()),
        args.add(headers_json(&attempt.request_headers)),
        args.add(attempt.request_body.as_str()),
        args.add(attempt.response_status.map(i64::from)),
        args.add(headers_json(&attempt.response_headers)),
        args.add(attempt.response_body.clone()),
        args.add(attempt.error.clone()),
        args.add(i64::try_from(attempt.duration_ms).unwrap_or(i64::MAX)),
        args.add(i64::from(attempt.succeeded)),
        args.add(attempt.started_at.as_millisecond()),
        args.add(status.as_str()),
    ];
    for a in added {
        a.map_err(|e| StoreError::Database(sqlx::Error::Encode(e)))?;
    }
    Ok((sql, args))
}

#[derive(FromRow)]
struct AttemptRow {
    id: String,
    delivery_id: String,
    job_id: String,
    attempt_no: i64,
    trigger: String,
    request_url: String,
    request_headers: String,
    request_body: String,
    response_status: Option<i64>,
    response_headers: Option<String>,
    response_body: Option<String>,
    error: Option<String>,
    duration_ms: i64,
    succeeded: i64,
    started_at: i64,
}

/// A delivery's attempts, first to last.
pub async fn attempts(
    conn: &mut Conn,
    company: CompanyId,
    delivery: DeliveryId,
) -> Result<Vec<Attempt>> {
    let rows: Vec<AttemptRow> = sqlx::query_as(
        "SELECT id, delivery_id, job_id, attempt_no, trigger, request_url, request_headers,
                request_body, response_status, response_headers, response_body, error,
                duration_ms, succeeded, started_at
         FROM webhook_attempts WHERE company_id = $1 AND delivery_id = $2
         ORDER BY attempt_no, started_at",
    )
    .bind(company.to_string())
    .bind(delivery.to_string())
    .fetch_all(&mut *conn)
    .await?;
    rows.into_iter()
        .map(|r| {
            Ok(Attempt {
                id: parse_id("webhook_attempts.id", &r.id)?,
                delivery_id: parse_id("webhook_attempts.delivery_id", &r.delivery_id)?,
                job_id: parse_id("webhook_attempts.job_id", &r.job_id)?,
                attempt_no: u32::try_from(r.attempt_no).unwrap_or(0),
                trigger: Trigger::parse(&r.trigger)
                    .ok_or_else(|| StoreError::Corrupt(format!("trigger `{}`", r.trigger)))?,
                request_url: r.request_url,
                request_headers: json_col("webhook_attempts.request_headers", &r.request_headers)?,
                request_body: r.request_body,
                response_status: r.response_status.and_then(|s| u16::try_from(s).ok()),
                response_headers: r
                    .response_headers
                    .map(|h| json_col("webhook_attempts.response_headers", &h))
                    .transpose()?
                    .unwrap_or_default(),
                response_body: r.response_body,
                error: r.error,
                duration_ms: u64::try_from(r.duration_ms).unwrap_or(0),
                succeeded: r.succeeded != 0,
                started_at: ts(r.started_at)?,
            })
        })
        .collect()
}

/// Deletes log data older than `before`: attempts, finished deliveries, and events no delivery
/// refers to any more. Pending deliveries are never pruned. Returns rows deleted per table.
pub async fn prune(conn: &mut Conn, before: Timestamp) -> Result<(u64, u64, u64)> {
    let at = before.as_millisecond();
    let attempts = sqlx::query("DELETE FROM webhook_attempts WHERE started_at < $1")
        .bind(at)
        .execute(&mut *conn)
        .await?
        .rows_affected();
    let deliveries =
        sqlx::query("DELETE FROM webhook_deliveries WHERE status <> 'pending' AND updated_at < $1")
            .bind(at)
            .execute(&mut *conn)
            .await?
            .rows_affected();
    let events = sqlx::query(
        "DELETE FROM events WHERE created_at < $1
           AND NOT EXISTS (SELECT 1 FROM webhook_deliveries d WHERE d.event_id = events.id)",
    )
    .bind(at)
    .execute(&mut *conn)
    .await?
    .rows_affected();
    Ok((attempts, deliveries, events))
}
