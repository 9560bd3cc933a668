//! Outbound webhooks: endpoints, secrets, deliveries, replay and recovery (SPEC §2).
//!
//! Saving a webhook checks its destination (W2) and seals its signing secret and App Key to it;
//! every send (a test, a replay, a recovery) marks the delivery and queues its job in the same
//! transaction, so a delivery is never queued without its record or the other way round.

use casebridge_crypto::mask;
use casebridge_domain::error::Validator;
use casebridge_domain::events::{
    parse_event_types, parse_max_in_flight, parse_webhook_name, Attempt, Delivery, DeliveryFilter,
    DeliveryStatus, EventType, NewEvent, Subscription, Trigger, Webhook, DEFAULT_MAX_IN_FLIGHT,
};
use casebridge_domain::ids::{CampaignId, CaseTypeId, CompanyId, DeliveryId, EventId, WebhookId};
use casebridge_domain::page::{Page, PageRequest};
use casebridge_domain::records::NamedKind;
use casebridge_store::webhooks::{NewWebhook, WebhookPatch};
use casebridge_store::{events, named, webhooks, Conn};
use casebridge_webhooks::delivery::{app_key_aad, enqueue_delivery, secret_aad, set_max_in_flight};
use casebridge_webhooks::signing::SigningSecret;
use jiff::Timestamp;
use secrecy::ExposeSecret;
use serde_json::{json, Value};

pub use casebridge_store::audit::AuditEntry;

use crate::{App, AppError, OrNotFound, Result};

/// A new webhook as asked for, before validation.
#[derive(Debug, Clone)]
pub struct WebhookInput {
    pub name: String,
    pub url: String,
    /// Empty: every event type, including types added later.
    pub event_types: Vec<String>,
    pub campaign_ids: Vec<String>,
    pub case_type_ids: Vec<String>,
    pub app_key: Option<String>,
    pub active: bool,
    /// A `whsec_…` signing secret; generated when absent.
    pub secret: Option<String>,
    /// Deliveries in flight at once, 1 to 64; [`DEFAULT_MAX_IN_FLIGHT`] when absent.
    pub max_in_flight: Option<i64>,
}

/// Changes to a webhook as asked for, before validation; `None` leaves a field as it is.
#[derive(Debug, Clone, Default)]
pub struct WebhookChanges {
    pub name: Option<String>,
    pub url: Option<String>,
    pub event_types: Option<Vec<String>>,
    pub campaign_ids: Option<Vec<String>>,
    pub case_type_ids: Option<Vec<String>>,
    /// `Some(None)` removes the App Key.
    pub app_key: Option<Option<String>>,
    pub active: Option<bool>,
    /// Deliveries in flight at once, 1 to 64.
    pub max_in_flight: Option<i64>,
}

/// A webhook as shown to an admin: its App Key, if any, masked.
#[derive(Debug, Clone)]
pub struct WebhookView {
    pub webhook: Webhook,
    pub app_key_masked: Option<String>,
}

/// A new webhook and its signing secret (shown only now).
#[derive(Debug, Clone)]
pub struct CreatedWebhook {
    pub webhook: WebhookView,
    pub secret: String,
}

/// The new signing secret, and until when the previous ones keep signing alongside it.
#[derive(Debug, Clone)]
pub struct RotatedSecret {
    pub secret: String,
    pub previous_secrets_expire_at: Timestamp,
}

/// A delivery queued for its next attempt.
#[derive(Debug, Clone, Copy)]
pub struct Queued {
    pub delivery_id: DeliveryId,
    pub event_id: EventId,
}

/// A delivery in a list, with when its next attempt is due if it is pending and scheduled.
#[derive(Debug, Clone)]
pub struct ListedDelivery {
    pub delivery: Delivery,
    pub next_attempt_at: Option<Timestamp>,
}

/// One delivery with the envelope every attempt sends and every attempt made.
#[derive(Debug, Clone)]
pub struct DeliveryDetail {
    pub delivery: Delivery,
    pub payload: Value,
    pub attempts: Vec<Attempt>,
    /// When a pending delivery's next retry is due, if one is scheduled.
    pub next_attempt_at: Option<Timestamp>,
}

// ---- webhooks ----

/// The company's webhooks; with `campaign`, only those scoped to it (the campaign must exist).
pub async fn list(
    app: &App,
    company: CompanyId,
    campaign: Option<CampaignId>,
    page: &PageRequest,
) -> Result<Page<WebhookView>> {
    let mut conn = app.store().conn().await?;
    if let Some(campaign) = campaign {
        require_campaign(&mut conn, company, campaign).await?;
    }
    let found = webhooks::list(&mut conn, company, campaign, page).await?;
    Ok(found.map(|w| view(app, w)))
}

/// A webhook for the list of webhooks: with its latest delivery, if any.
#[derive(Debug, Clone)]
pub struct WebhookSummary {
    pub webhook: WebhookView,
    pub last_delivery: Option<Delivery>,
}

/// The company's webhooks (company-level and campaign-scoped), each with its latest delivery
/// (one indexed lookup per webhook on the page).
pub async fn overview(
    app: &App,
    company: CompanyId,
    page: &PageRequest,
) -> Result<Page<WebhookSummary>> {
    let mut conn = app.store().conn().await?;
    let found = webhooks::list(&mut conn, company, None, page).await?;
    let mut items = Vec::with_capacity(found.items.len());
    for w in found.items {
        let last = webhooks::deliveries(&mut conn, company, w.id, None, &PageRequest::first(1))
            .await?
            .items
            .pop();
        items.push(WebhookSummary {
            webhook: view(app, w),
            last_delivery: last,
        });
    }
    Ok(Page {
        items,
        next_after: found.next_after,
    })
}

/// Creates a webhook; with `scope`, one that receives only that campaign's events. Every
/// field is checked at once, so the error names each bad one.
pub async fn create(
    app: &App,
    company: CompanyId,
    scope: Option<CampaignId>,
    input: WebhookInput,
) -> Result<CreatedWebhook> {
    let mut v = Validator::new();
    let name = v.check(parse_webhook_name(&input.name));
    let url = vet_url(app, &input.url, &mut v).await;
    let event_types = parse_event_types(&input.event_types, &mut v);
    let secret = parse_secret(input.secret.as_deref(), &mut v);
    let max_in_flight = match input.max_in_flight {
        Some(n) => v.check(parse_max_in_flight(n)),
        None => Some(DEFAULT_MAX_IN_FLIGHT),
    };
    let app_key = input
        .app_key
        .as_deref()
        .and_then(|k| parse_app_key(k, &mut v));
    let now = app.now();
    let mut tx = app.store().begin().await?;
    if let Some(scope) = scope {
        require_campaign(&mut tx, company, scope).await?;
    }
    let (campaign_ids, case_type_ids) = filter_ids(
        &mut tx,
        company,
        Some(&input.campaign_ids),
        Some(&input.case_type_ids),
        &mut v,
    )
    .await?;
    v.finish()?;
    let (name, url, secret) = (
        name.expect("validated"),
        url.expect("validated"),
        secret.expect("validated"),
    );
    let id = WebhookId::new();
    let new = NewWebhook {
        id,
        name,
        url,
        subscription: Subscription {
            event_types,
            scope_campaign_id: scope,
            campaign_ids: campaign_ids.unwrap_or_default(),
            case_type_ids: case_type_ids.unwrap_or_default(),
        },
        app_key_sealed: app_key.map(|k| app.keyring().seal(&k, &app_key_aad(company, id))),
        active: input.active,
        max_in_flight: max_in_flight.expect("validated"),
    };
    let whsec = secret.to_whsec();
    let sealed = app.keyring().seal(&whsec, &secret_aad(company, id));
    let created = webhooks::create(&mut tx, company, &new, &sealed, now).await?;
    tx.commit().await?;
    Ok(CreatedWebhook {
        webhook: view(app, created),
        secret: whsec,
    })
}

pub async fn get(app: &App, company: CompanyId, id: WebhookId) -> Result<WebhookView> {
    let mut conn = app.store().conn().await?;
    Ok(view(app, webhook(&mut conn, company, id).await?))
}

/// Changes a webhook. A new URL is checked like on creation; turning a webhook back on clears
/// why it was turned off.
pub async fn update(
    app: &App,
    company: CompanyId,
    id: WebhookId,
    changes: WebhookChanges,
) -> Result<WebhookView> {
    let mut v = Validator::new();
    let name = changes.name.and_then(|n| v.check(parse_webhook_name(&n)));
    let url = match &changes.url {
        Some(u) => vet_url(app, u, &mut v).await,
        None => None,
    };
    let event_types = changes.event_types.map(|t| parse_event_types(&t, &mut v));
    let app_key = changes
        .app_key
        .map(|k| k.and_then(|k| parse_app_key(&k, &mut v)));
    let max_in_flight = changes
        .max_in_flight
        .and_then(|n| v.check(parse_max_in_flight(n)));
    let mut tx = app.store().begin().await?;
    let before = webhook(&mut tx, company, id).await?;
    let (campaign_ids, case_type_ids) = filter_ids(
        &mut tx,
        company,
        changes.campaign_ids.as_deref(),
        changes.case_type_ids.as_deref(),
        &mut v,
    )
    .await?;
    v.finish()?;
    let patch = WebhookPatch {
        name,
        url,
        event_types,
        campaign_ids,
        case_type_ids,
        app_key_sealed: app_key
            .map(|k| k.map(|k| app.keyring().seal(&k, &app_key_aad(company, id)))),
        active: changes.active,
        max_in_flight,
    };
    let updated = webhooks::update(&mut tx, company, id, &patch, app.now()).await?;
    if updated.max_in_flight != before.max_in_flight {
        set_max_in_flight(&mut tx, id, updated.max_in_flight).await?;
    }
    tx.commit().await?;
    Ok(view(app, updated))
}

/// Deletes a webhook with its deliveries and their log.
pub async fn delete(app: &App, company: CompanyId, id: WebhookId) -> Result<()> {
    let mut tx = app.store().begin().await?;
    webhooks::delete(&mut tx, company, id)
        .await
        .or_not_found("webhook", &id.to_string())?;
    tx.commit().await?;
    Ok(())
}

/// Starts signing with a new secret (`secret`, or a generated one); the old ones keep signing
/// alongside it for `overlap_secs` (default a day, at most a week; 0 ends them now).
pub async fn rotate_secret(
    app: &App,
    company: CompanyId,
    id: WebhookId,
    secret: Option<&str>,
    overlap_secs: Option<u64>,
) -> Result<RotatedSecret> {
    let mut v = Validator::new();
    let secret = parse_secret(secret, &mut v);
    let overlap = overlap_secs.unwrap_or(86_400);
    if overlap > 7 * 86_400 {
        v.push("overlap_secs", "must be at most 604800 (a week)");
    }
    v.finish()?;
    let secret = secret.expect("validated");
    let now = app.now();
    let until = Timestamp::from_second(now.as_second() + overlap as i64)
        .map_err(|e| AppError::Internal(e.to_string()))?;
    let mut tx = app.store().begin().await?;
    webhook(&mut tx, company, id).await?;
    let whsec = secret.to_whsec();
    let new_id = webhooks::add_secret(
        &mut tx,
        company,
        id,
        &app.keyring().seal(&whsec, &secret_aad(company, id)),
        now,
    )
    .await?;
    webhooks::expire_other_secrets(&mut tx, company, id, new_id, until).await?;
    tx.commit().await?;
    Ok(RotatedSecret {
        secret: whsec,
        previous_secrets_expire_at: until,
    })
}

/// What the audit log says a signing-secret reveal is.
const REVEAL: &str = "webhook.secret_revealed";

/// A webhook's detail page: the webhook, and who last revealed its signing secret.
#[derive(Debug, Clone)]
pub struct WebhookDetail {
    pub view: WebhookView,
    pub last_reveal: Option<AuditEntry>,
}

pub async fn detail(app: &App, company: CompanyId, id: WebhookId) -> Result<WebhookDetail> {
    let mut conn = app.store().conn().await?;
    let w = webhook(&mut conn, company, id).await?;
    let last_reveal =
        casebridge_store::audit::latest(&mut conn, company, REVEAL, &id.to_string()).await?;
    Ok(WebhookDetail {
        view: view(app, w),
        last_reveal,
    })
}

/// The secret that signs this webhook's deliveries now (the newest), for an admin who asked to
/// see it. Each reveal is recorded in the audit log with who asked, in the same transaction.
pub async fn reveal_secret(
    app: &App,
    company: CompanyId,
    id: WebhookId,
    actor: &str,
) -> Result<String> {
    let now = app.now();
    let mut tx = app.store().begin().await?;
    webhook(&mut tx, company, id).await?;
    let secrets = webhooks::active_secrets(&mut tx, company, id, now).await?;
    let (sealed, _) = secrets
        .first()
        .ok_or_else(|| AppError::Internal(format!("webhook {id} has no active secret")))?;
    let secret = app
        .keyring()
        .open(sealed, &secret_aad(company, id))
        .map_err(|e| AppError::Internal(format!("the signing secret cannot be read: {e}")))?;
    casebridge_store::audit::record(&mut tx, company, actor, REVEAL, &id.to_string(), now).await?;
    tx.commit().await?;
    Ok(secret.expose_secret().to_owned())
}

// ---- deliveries ----

/// Records a `webhook.test` event and queues its delivery to this webhook alone, whatever its
/// subscription (W8).
pub async fn send_test(app: &App, company: CompanyId, id: WebhookId) -> Result<Queued> {
    let now = app.now();
    let mut tx = app.store().begin().await?;
    let hook = webhook(&mut tx, company, id).await?;
    let event = events::insert(
        &mut tx,
        company,
        &NewEvent {
            event_type: EventType::WebhookTest,
            data: json!({
                "webhook_id": hook.id.to_string(),
                "message": "This is a test event from casebridge.",
            }),
            campaign_id: None,
            case_id: None,
        },
        now,
    )
    .await?;
    let delivery = webhooks::create_delivery(&mut tx, company, id, event.id, now)
        .await?
        .ok_or_else(|| AppError::Internal("fresh event already delivered".into()))?;
    enqueue_delivery(&mut tx, &hook, delivery, Trigger::Test, now).await?;
    tx.commit().await?;
    Ok(Queued {
        delivery_id: delivery,
        event_id: event.id,
    })
}

/// A webhook's deliveries, newest first, optionally only those in `status`; each pending one
/// with when its next attempt is due.
pub async fn deliveries(
    app: &App,
    company: CompanyId,
    id: WebhookId,
    status: Option<DeliveryStatus>,
    page: &PageRequest,
) -> Result<Page<ListedDelivery>> {
    let mut conn = app.store().conn().await?;
    webhook(&mut conn, company, id).await?;
    let found = webhooks::deliveries(&mut conn, company, id, status, page).await?;
    let mut items = Vec::with_capacity(found.items.len());
    for delivery in found.items {
        let next_attempt_at = next_attempt(&mut conn, company, &delivery).await?;
        items.push(ListedDelivery {
            delivery,
            next_attempt_at,
        });
    }
    Ok(Page {
        items,
        next_after: found.next_after,
    })
}

/// When a pending delivery's next attempt is due; none for a finished one.
async fn next_attempt(
    conn: &mut Conn,
    company: CompanyId,
    delivery: &Delivery,
) -> Result<Option<Timestamp>> {
    if delivery.status != DeliveryStatus::Pending {
        return Ok(None);
    }
    Ok(webhooks::next_attempt_at(conn, company, delivery.id).await?)
}

/// Queues again every failed delivery of this webhook created at or after `since` (W8).
/// Returns how many were queued.
pub async fn recover(
    app: &App,
    company: CompanyId,
    id: WebhookId,
    since: Timestamp,
) -> Result<usize> {
    let filter = DeliveryFilter {
        webhook_id: Some(id),
        since: Some(since),
        ..DeliveryFilter::default()
    };
    recover_matching(app, company, &filter).await
}

/// The company's deliveries matching `filter`, newest first (the filter's webhook, when given,
/// must be the company's).
pub async fn search_deliveries(
    app: &App,
    company: CompanyId,
    filter: &DeliveryFilter,
    page: &PageRequest,
) -> Result<Page<Delivery>> {
    let mut conn = app.store().conn().await?;
    if let Some(id) = filter.webhook_id {
        webhook(&mut conn, company, id).await?;
    }
    Ok(webhooks::search_deliveries(&mut conn, company, filter, page).await?)
}

/// How many deliveries [`recover_matching`] would queue again for `filter` now: the failed ones
/// among those it matches.
pub async fn recoverable(app: &App, company: CompanyId, filter: &DeliveryFilter) -> Result<usize> {
    let mut conn = app.store().conn().await?;
    if let Some(id) = filter.webhook_id {
        webhook(&mut conn, company, id).await?;
    }
    Ok(webhooks::failed_matching(&mut conn, company, filter)
        .await?
        .len())
}

/// Queues again every failed delivery matching `filter` (W8), in one transaction. Returns how
/// many were queued.
pub async fn recover_matching(
    app: &App,
    company: CompanyId,
    filter: &DeliveryFilter,
) -> Result<usize> {
    let now = app.now();
    let mut tx = app.store().begin().await?;
    if let Some(id) = filter.webhook_id {
        webhook(&mut tx, company, id).await?;
    }
    let failed = webhooks::failed_matching(&mut tx, company, filter).await?;
    let mut recovered = 0;
    let mut hooks: Vec<Webhook> = Vec::new();
    for (d, hook) in &failed {
        if webhooks::mark_pending(&mut tx, company, *d, now).await? {
            if !hooks.iter().any(|h| h.id == *hook) {
                hooks.push(webhook(&mut tx, company, *hook).await?);
            }
            let hook = hooks.iter().find(|h| h.id == *hook).expect("just read");
            enqueue_delivery(&mut tx, hook, *d, Trigger::Manual, now).await?;
            recovered += 1;
        }
    }
    tx.commit().await?;
    Ok(recovered)
}

/// One delivery with its payload and every attempt (W9).
pub async fn delivery(app: &App, company: CompanyId, id: DeliveryId) -> Result<DeliveryDetail> {
    let mut conn = app.store().conn().await?;
    let delivery = webhooks::delivery(&mut conn, company, id)
        .await
        .or_not_found("delivery", &id.to_string())?;
    let payload = events::payload(&mut conn, company, delivery.event_id).await?;
    let attempts = webhooks::attempts(&mut conn, company, id).await?;
    let next_attempt_at = next_attempt(&mut conn, company, &delivery).await?;
    Ok(DeliveryDetail {
        next_attempt_at,
        delivery,
        payload: serde_json::from_str(&payload).unwrap_or(Value::String(payload)),
        attempts,
    })
}

/// Queues one delivery again, with the same event id (W8). A delivery that is still pending is
/// already queued for its next attempt: a conflict.
pub async fn replay(app: &App, company: CompanyId, id: DeliveryId) -> Result<Queued> {
    let now = app.now();
    let mut tx = app.store().begin().await?;
    let delivery = webhooks::delivery(&mut tx, company, id)
        .await
        .or_not_found("delivery", &id.to_string())?;
    if !webhooks::mark_pending(&mut tx, company, id, now).await? {
        return Err(AppError::Conflict(
            "this delivery is still pending: its next attempt is already queued".into(),
        ));
    }
    let hook = webhook(&mut tx, company, delivery.webhook_id).await?;
    enqueue_delivery(&mut tx, &hook, id, Trigger::Manual, now).await?;
    tx.commit().await?;
    Ok(Queued {
        delivery_id: id,
        event_id: delivery.event_id,
    })
}

// ---- helpers ----

fn view(app: &App, webhook: Webhook) -> WebhookView {
    let app_key_masked = webhook.app_key_sealed.as_ref().map(|sealed| {
        app.keyring()
            .open(sealed, &app_key_aad(webhook.company_id, webhook.id))
            .map(|k| mask(k.expose_secret()))
            .unwrap_or_else(|_| "••••".to_owned())
    });
    WebhookView {
        webhook,
        app_key_masked,
    }
}

async fn webhook(conn: &mut Conn, company: CompanyId, id: WebhookId) -> Result<Webhook> {
    webhooks::get(conn, company, id)
        .await
        .or_not_found("webhook", &id.to_string())
}

async fn require_campaign(conn: &mut Conn, company: CompanyId, id: CampaignId) -> Result<()> {
    if named::exists(conn, company, NamedKind::Campaign, &id.to_string()).await? {
        Ok(())
    } else {
        Err(AppError::not_found("campaign", id))
    }
}

/// The campaign and case type filters, each when given: every id must name a record of the
/// company; each bad one is named.
async fn filter_ids(
    conn: &mut Conn,
    company: CompanyId,
    campaign_ids: Option<&[String]>,
    case_type_ids: Option<&[String]>,
    v: &mut Validator,
) -> Result<(Option<Vec<CampaignId>>, Option<Vec<CaseTypeId>>)> {
    Ok((
        existing_ids(
            conn,
            company,
            NamedKind::Campaign,
            "campaign_ids",
            campaign_ids,
            v,
        )
        .await?,
        existing_ids(
            conn,
            company,
            NamedKind::CaseType,
            "case_type_ids",
            case_type_ids,
            v,
        )
        .await?,
    ))
}

/// Parses ids (when given) that must name records of `kind` in the company; each bad one is
/// named.
async fn existing_ids<T: std::str::FromStr + std::fmt::Display>(
    conn: &mut Conn,
    company: CompanyId,
    kind: NamedKind,
    field: &str,
    raw: Option<&[String]>,
    v: &mut Validator,
) -> Result<Option<Vec<T>>> {
    let Some(raw) = raw else {
        return Ok(None);
    };
    let mut out = Vec::new();
    for (i, r) in raw.iter().enumerate() {
        match r.parse::<T>() {
            Ok(id) if named::exists(conn, company, kind, r).await? => out.push(id),
            _ => v.push(
                format!("{field}[{i}]"),
                format!("no {} with id {r}", kind.label()),
            ),
        }
    }
    Ok(Some(out))
}

/// Checks a destination when it is saved: shape, then (by DNS) where it points (W2).
async fn vet_url(app: &App, raw: &str, v: &mut Validator) -> Option<String> {
    let max = casebridge_domain::input::MAX_URL_CHARS;
    if raw.trim().chars().count() > max {
        v.push("url", format!("must be at most {max} characters"));
        return None;
    }
    match app.url_policy().vet(raw.trim()).await {
        Ok(u) => Some(u.to_string()),
        Err(e) => {
            v.push("url", e.to_string());
            None
        }
    }
}

fn parse_secret(raw: Option<&str>, v: &mut Validator) -> Option<SigningSecret> {
    match raw {
        None => Some(SigningSecret::generate()),
        Some(s) => match SigningSecret::parse(s) {
            Ok(s) => Some(s),
            Err(e) => {
                v.push("secret", e.to_string());
                None
            }
        },
    }
}

fn parse_app_key(raw: &str, v: &mut Validator) -> Option<String> {
    let k = raw.trim();
    if k.is_empty() || k.len() > 500 {
        v.push("app_key", "must be 1-500 characters");
        return None;
    }
    Some(k.to_owned())
}
