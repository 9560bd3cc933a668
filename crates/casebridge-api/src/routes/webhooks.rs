//! Outbound webhooks: endpoints, secrets, deliveries, replay and recovery (SPEC §2).

use axum::extract::State;
use axum::http::StatusCode;
use casebridge_app::webhooks::{
    self, CreatedWebhook, Queued, WebhookChanges, WebhookInput, WebhookView,
};
use casebridge_domain::events::{Attempt, Delivery, DeliveryStatus};
use casebridge_domain::ids::{CampaignId, DeliveryId, WebhookId};
use casebridge_domain::ValidationError;
use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::dto::{double_option, page_request, PageOut, PageQuery};
use crate::error::{ApiError, ErrorBody};
use crate::extract::{path_id, Auth, Json, Path, Query};
use crate::AppState;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_webhooks, create_webhook))
        .routes(routes!(list_campaign_webhooks, create_campaign_webhook))
        .routes(routes!(get_webhook, update_webhook, delete_webhook))
        .routes(routes!(rotate_secret))
        .routes(routes!(send_test))
        .routes(routes!(list_deliveries))
        .routes(routes!(recover))
        .routes(routes!(get_delivery))
        .routes(routes!(replay))
        .routes(routes!(event_types))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct EventTypeOut {
    #[serde(rename = "type")]
    pub event_type: String,
    pub description: &'static str,
    /// Whether the campaign filter applies to it (call events only).
    pub call_event: bool,
    /// JSON schema of the envelope's `data`.
    #[schema(value_type = Object)]
    pub schema: Value,
    /// An example envelope.
    #[schema(value_type = Object)]
    pub example: Value,
}

/// Every event type a webhook can subscribe to, with the schema of its `data` and an example
/// envelope (W3). An empty subscription receives all of them, including types added later.
#[utoipa::path(get, path = "/event-types", tag = "webhooks", security(("bearer" = [])),
    responses((status = 200, body = Vec<EventTypeOut>)))]
async fn event_types(Auth(company): Auth) -> axum::Json<Vec<EventTypeOut>> {
    let out = super::activity::event_examples()
        .into_iter()
        .map(|(t, schema, data)| EventTypeOut {
            event_type: t.as_str().to_owned(),
            description: t.description(),
            call_event: t.is_call_event(),
            schema,
            example: json!({
                "id": "01a1ff3c-5b0e-7c1a-9f2e-3f6f1d0c2b7a",
                "type": t.as_str(),
                "created_at": "2026-11-21T15:04:05.123Z",
                "company_id": company.to_string(),
                "data": data,
            }),
        })
        .collect();
    axum::Json(out)
}

// ---- bodies ----

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateWebhook {
    /// At least 3 characters.
    #[schema(example = "Zapier – new intakes")]
    pub name: String,
    /// `https://` and public (W2).
    #[schema(example = "https://hooks.example.com/casebridge")]
    pub url: String,
    /// Event types to receive; empty or absent: all, including types added later.
    #[serde(default)]
    pub event_types: Vec<String>,
    /// Call events only from these campaigns (other events pass).
    #[serde(default)]
    pub campaign_ids: Vec<String>,
    /// Only events whose case has one of these case types.
    #[serde(default)]
    pub case_type_ids: Vec<String>,
    /// Sent as `X-Public-Api-Key` with every delivery.
    pub app_key: Option<String>,
    #[serde(default = "yes")]
    pub active: bool,
    /// A `whsec_…` signing secret; generated when absent.
    pub secret: Option<String>,
    /// At most this many deliveries to this webhook are in flight at once (1 to 64; default 4).
    /// A hanging endpoint holds at most this many of the workers; raise it for an endpoint that
    /// answers quickly and needs more rate.
    #[schema(minimum = 1, maximum = 64, example = 4)]
    pub max_in_flight: Option<i64>,
}

fn yes() -> bool {
    true
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateWebhook {
    pub name: Option<String>,
    pub url: Option<String>,
    pub event_types: Option<Vec<String>>,
    pub campaign_ids: Option<Vec<String>>,
    pub case_type_ids: Option<Vec<String>>,
    /// `null` removes the App Key.
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<String>)]
    pub app_key: Option<Option<String>>,
    /// Turning a webhook back on clears `disabled_reason`.
    pub active: Option<bool>,
    /// Deliveries in flight at once, 1 to 64. Applies to deliveries already queued too: a
    /// raised bound at once, a lowered one as those in flight finish.
    #[schema(minimum = 1, maximum = 64, example = 8)]
    pub max_in_flight: Option<i64>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct WebhookOut {
    pub id: String,
    pub name: String,
    pub url: String,
    /// Set for campaign-scoped webhooks: they receive only that campaign's events.
    pub campaign_id: Option<String>,
    pub event_types: Vec<String>,
    pub campaign_ids: Vec<String>,
    pub case_type_ids: Vec<String>,
    /// Masked.
    pub app_key: Option<String>,
    pub active: bool,
    /// Why casebridge turned the webhook off (e.g. the endpoint answered 410 Gone).
    pub disabled_reason: Option<String>,
    /// At most this many deliveries to this webhook are in flight at once (1 to 64).
    #[schema(minimum = 1, maximum = 64, example = 4)]
    pub max_in_flight: u32,
    pub created_at: String,
    pub updated_at: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CreatedWebhookOut {
    #[serde(flatten)]
    pub webhook: WebhookOut,
    /// The signing secret. Shown only now; rotate it to get a new one.
    pub secret: String,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RotateSecret {
    /// A `whsec_…` secret to use; generated when absent.
    pub secret: Option<String>,
    /// How long the previous secret keeps signing alongside the new one. Default 86400 (a day),
    /// at most 604800 (a week); 0 ends it now.
    pub overlap_secs: Option<u64>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RotatedSecretOut {
    pub secret: String,
    /// Until then deliveries carry signatures from the old and the new secret.
    pub previous_secrets_expire_at: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DeliveryOut {
    pub id: String,
    pub webhook_id: String,
    /// Also the `webhook-id` header and the payload's `id`: stable across retries and replays.
    pub event_id: String,
    pub event_type: String,
    /// `pending`, `succeeded` or `failed`.
    pub status: String,
    pub attempt_count: u32,
    pub last_attempt_at: Option<String>,
    pub last_response_status: Option<u16>,
    pub last_error: Option<String>,
    /// When the next attempt of a pending delivery is due; null when none is scheduled
    /// (succeeded, failed, or an attempt running now).
    pub next_attempt_at: Option<String>,
    pub created_at: String,
    pub updated_at: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct HttpExchangeOut {
    pub url: Option<String>,
    pub status: Option<u16>,
    /// `[name, value]` pairs; the App Key is masked.
    pub headers: Vec<(String, String)>,
    pub body: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AttemptOut {
    pub id: String,
    pub attempt_no: u32,
    /// `scheduled`, `retry`, `manual` or `test`.
    pub trigger: String,
    pub request: HttpExchangeOut,
    /// Body truncated to 64 KiB.
    pub response: HttpExchangeOut,
    pub error: Option<String>,
    pub duration_ms: u64,
    pub succeeded: bool,
    pub started_at: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DeliveryDetailOut {
    #[serde(flatten)]
    pub delivery: DeliveryOut,
    /// The envelope every attempt sends.
    #[schema(value_type = Object)]
    pub payload: Value,
    pub attempts: Vec<AttemptOut>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct QueuedOut {
    pub delivery_id: String,
    pub event_id: String,
    pub status: String,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RecoverBody {
    /// Failed deliveries created at or after this time are sent again (RFC 3339).
    #[schema(example = "2026-11-20T00:00:00Z")]
    pub since: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RecoveredOut {
    pub recovered: usize,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
struct DeliveryQuery {
    /// `pending`, `succeeded` or `failed`.
    status: Option<String>,
    cursor: Option<String>,
    limit: Option<u32>,
}

// ---- mapping ----

use crate::dto::time;

impl From<WebhookView> for WebhookOut {
    fn from(v: WebhookView) -> Self {
        let w = v.webhook;
        let s = w.subscription;
        WebhookOut {
            id: w.id.to_string(),
            name: w.name,
            url: w.url,
            campaign_id: s.scope_campaign_id.map(|c| c.to_string()),
            event_types: s
                .event_types
                .iter()
                .map(|t| t.as_str().to_owned())
                .collect(),
            campaign_ids: s.campaign_ids.iter().map(|c| c.to_string()).collect(),
            case_type_ids: s.case_type_ids.iter().map(|c| c.to_string()).collect(),
            app_key: v.app_key_masked,
            active: w.active,
            disabled_reason: w.disabled_reason,
            max_in_flight: w.max_in_flight,
            created_at: time(w.created_at),
            updated_at: time(w.updated_at),
        }
    }
}

impl From<Queued> for QueuedOut {
    fn from(q: Queued) -> Self {
        Self {
            delivery_id: q.delivery_id.to_string(),
            event_id: q.event_id.to_string(),
            status: "pending".into(),
        }
    }
}

impl DeliveryOut {
    fn new(d: Delivery, next_attempt_at: Option<Timestamp>) -> Self {
        Self {
            id: d.id.to_string(),
            webhook_id: d.webhook_id.to_string(),
            event_id: d.event_id.to_string(),
            event_type: d.event_type.as_str().to_owned(),
            status: d.status.as_str().to_owned(),
            attempt_count: d.attempt_count,
            last_attempt_at: d.last_attempt_at.map(time),
            last_response_status: d.last_response_status,
            last_error: d.last_error,
            next_attempt_at: next_attempt_at.map(time),
            created_at: time(d.created_at),
            updated_at: time(d.updated_at),
        }
    }
}

impl From<Attempt> for AttemptOut {
    fn from(a: Attempt) -> Self {
        Self {
            id: a.id.to_string(),
            attempt_no: a.attempt_no,
            trigger: a.trigger.as_str().to_owned(),
            request: HttpExchangeOut {
                url: Some(a.request_url),
                status: None,
                headers: a.request_headers,
                body: Some(a.request_body),
            },
            response: HttpExchangeOut {
                url: None,
                status: a.response_status,
                headers: a.response_headers,
                body: a.response_body,
            },
            error: a.error,
            duration_ms: a.duration_ms,
            succeeded: a.succeeded,
            started_at: time(a.started_at),
        }
    }
}

impl From<CreateWebhook> for WebhookInput {
    fn from(b: CreateWebhook) -> Self {
        Self {
            name: b.name,
            url: b.url,
            event_types: b.event_types,
            campaign_ids: b.campaign_ids,
            case_type_ids: b.case_type_ids,
            app_key: b.app_key,
            active: b.active,
            secret: b.secret,
            max_in_flight: b.max_in_flight,
        }
    }
}

impl From<UpdateWebhook> for WebhookChanges {
    fn from(b: UpdateWebhook) -> Self {
        Self {
            name: b.name,
            url: b.url,
            event_types: b.event_types,
            campaign_ids: b.campaign_ids,
            case_type_ids: b.case_type_ids,
            app_key: b.app_key,
            active: b.active,
            max_in_flight: b.max_in_flight,
        }
    }
}

fn created(c: CreatedWebhook) -> (StatusCode, axum::Json<CreatedWebhookOut>) {
    (
        StatusCode::CREATED,
        axum::Json(CreatedWebhookOut {
            webhook: c.webhook.into(),
            secret: c.secret,
        }),
    )
}

// ---- handlers ----

/// Lists the company's webhooks (company-level and campaign-scoped).
#[utoipa::path(get, path = "/webhooks", tag = "webhooks", security(("bearer" = [])),
    params(PageQuery), responses((status = 200, body = PageOut<WebhookOut>)))]
async fn list_webhooks(
    State(s): State<AppState>,
    Auth(company): Auth,
    Query(q): Query<PageQuery>,
) -> Result<axum::Json<PageOut<WebhookOut>>, ApiError> {
    let page = page_request(q.cursor, q.limit)?;
    let found = webhooks::list(&s.app, company, None, &page).await?;
    Ok(axum::Json(PageOut::from_page(found, Into::into)))
}

/// Creates a company-level webhook. The response carries the signing secret, once.
#[utoipa::path(post, path = "/webhooks", tag = "webhooks", security(("bearer" = [])),
    request_body = CreateWebhook,
    responses((status = 201, body = CreatedWebhookOut), (status = 422, body = ErrorBody)))]
async fn create_webhook(
    State(s): State<AppState>,
    Auth(company): Auth,
    Json(body): Json<CreateWebhook>,
) -> Result<(StatusCode, axum::Json<CreatedWebhookOut>), ApiError> {
    Ok(created(
        webhooks::create(&s.app, company, None, body.into()).await?,
    ))
}

/// A campaign's webhooks.
#[utoipa::path(get, path = "/campaigns/{id}/webhooks", tag = "webhooks",
    security(("bearer" = [])), params(("id" = String, Path), PageQuery),
    responses((status = 200, body = PageOut<WebhookOut>), (status = 404, body = ErrorBody)))]
async fn list_campaign_webhooks(
    State(s): State<AppState>,
    Auth(company): Auth,
    Path(id): Path<String>,
    Query(q): Query<PageQuery>,
) -> Result<axum::Json<PageOut<WebhookOut>>, ApiError> {
    let campaign: CampaignId = path_id(&id, "campaign")?;
    let page = page_request(q.cursor, q.limit)?;
    let found = webhooks::list(&s.app, company, Some(campaign), &page).await?;
    Ok(axum::Json(PageOut::from_page(found, Into::into)))
}

/// Creates a webhook scoped to a campaign: it receives only that campaign's events.
#[utoipa::path(post, path = "/campaigns/{id}/webhooks", tag = "webhooks",
    security(("bearer" = [])), params(("id" = String, Path)), request_body = CreateWebhook,
    responses((status = 201, body = CreatedWebhookOut), (status = 404, body = ErrorBody),
              (status = 422, body = ErrorBody)))]
async fn create_campaign_webhook(
    State(s): State<AppState>,
    Auth(company): Auth,
    Path(id): Path<String>,
    Json(body): Json<CreateWebhook>,
) -> Result<(StatusCode, axum::Json<CreatedWebhookOut>), ApiError> {
    let campaign: CampaignId = path_id(&id, "campaign")?;
    Ok(created(
        webhooks::create(&s.app, company, Some(campaign), body.into()).await?,
    ))
}

#[utoipa::path(get, path = "/webhooks/{id}", tag = "webhooks", security(("bearer" = [])),
    params(("id" = String, Path)),
    responses((status = 200, body = WebhookOut), (status = 404, body = ErrorBody)))]
async fn get_webhook(
    State(s): State<AppState>,
    Auth(company): Auth,
    Path(id): Path<String>,
) -> Result<axum::Json<WebhookOut>, ApiError> {
    let wid: WebhookId = path_id(&id, "webhook")?;
    let w = webhooks::get(&s.app, company, wid).await?;
    Ok(axum::Json(w.into()))
}

/// Changes a webhook. A new URL is checked like on creation.
#[utoipa::path(patch, path = "/webhooks/{id}", tag = "webhooks", security(("bearer" = [])),
    params(("id" = String, Path)), request_body = UpdateWebhook,
    responses((status = 200, body = WebhookOut), (status = 404, body = ErrorBody),
              (status = 422, body = ErrorBody)))]
async fn update_webhook(
    State(s): State<AppState>,
    Auth(company): Auth,
    Path(id): Path<String>,
    Json(body): Json<UpdateWebhook>,
) -> Result<axum::Json<WebhookOut>, ApiError> {
    let wid: WebhookId = path_id(&id, "webhook")?;
    let updated = webhooks::update(&s.app, company, wid, body.into()).await?;
    Ok(axum::Json(updated.into()))
}

/// Deletes a webhook with its deliveries and their log.
#[utoipa::path(delete, path = "/webhooks/{id}", tag = "webhooks", security(("bearer" = [])),
    params(("id" = String, Path)),
    responses((status = 204), (status = 404, body = ErrorBody)))]
async fn delete_webhook(
    State(s): State<AppState>,
    Auth(company): Auth,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let wid: WebhookId = path_id(&id, "webhook")?;
    webhooks::delete(&s.app, company, wid).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Starts signing with a new secret; the old one keeps signing alongside it for the overlap.
#[utoipa::path(post, path = "/webhooks/{id}/rotate-secret", tag = "webhooks",
    security(("bearer" = [])), params(("id" = String, Path)), request_body = RotateSecret,
    responses((status = 200, body = RotatedSecretOut), (status = 404, body = ErrorBody),
              (status = 422, body = ErrorBody)))]
async fn rotate_secret(
    State(s): State<AppState>,
    Auth(company): Auth,
    Path(id): Path<String>,
    Json(body): Json<RotateSecret>,
) -> Result<axum::Json<RotatedSecretOut>, ApiError> {
    let wid: WebhookId = path_id(&id, "webhook")?;
    let rotated = webhooks::rotate_secret(
        &s.app,
        company,
        wid,
        body.secret.as_deref(),
        body.overlap_secs,
    )
    .await?;
    Ok(axum::Json(RotatedSecretOut {
        secret: rotated.secret,
        previous_secrets_expire_at: time(rotated.previous_secrets_expire_at),
    }))
}

/// Sends a signed `webhook.test` event to this webhook, whatever its subscription (W8).
#[utoipa::path(post, path = "/webhooks/{id}/test", tag = "webhooks", security(("bearer" = [])),
    params(("id" = String, Path)),
    responses((status = 202, body = QueuedOut), (status = 404, body = ErrorBody)))]
async fn send_test(
    State(s): State<AppState>,
    Auth(company): Auth,
    Path(id): Path<String>,
) -> Result<(StatusCode, axum::Json<QueuedOut>), ApiError> {
    let wid: WebhookId = path_id(&id, "webhook")?;
    let queued = webhooks::send_test(&s.app, company, wid).await?;
    Ok((StatusCode::ACCEPTED, axum::Json(queued.into())))
}

/// A webhook's deliveries, newest first.
#[utoipa::path(get, path = "/webhooks/{id}/deliveries", tag = "webhooks",
    security(("bearer" = [])), params(("id" = String, Path), DeliveryQuery),
    responses((status = 200, body = PageOut<DeliveryOut>), (status = 404, body = ErrorBody)))]
async fn list_deliveries(
    State(s): State<AppState>,
    Auth(company): Auth,
    Path(id): Path<String>,
    Query(q): Query<DeliveryQuery>,
) -> Result<axum::Json<PageOut<DeliveryOut>>, ApiError> {
    let wid: WebhookId = path_id(&id, "webhook")?;
    let page = page_request(q.cursor, q.limit)?;
    let status = q
        .status
        .map(|st| {
            DeliveryStatus::parse(&st).ok_or_else(|| {
                ValidationError::single("status", "must be pending, succeeded or failed")
            })
        })
        .transpose()?;
    let found = webhooks::deliveries(&s.app, company, wid, status, &page).await?;
    Ok(axum::Json(PageOut::from_page(found, |d| {
        DeliveryOut::new(d.delivery, d.next_attempt_at)
    })))
}

/// Sends again every failed delivery of this webhook created since a time (W8).
#[utoipa::path(post, path = "/webhooks/{id}/recover", tag = "webhooks",
    security(("bearer" = [])), params(("id" = String, Path)), request_body = RecoverBody,
    responses((status = 202, body = RecoveredOut), (status = 404, body = ErrorBody),
              (status = 422, body = ErrorBody)))]
async fn recover(
    State(s): State<AppState>,
    Auth(company): Auth,
    Path(id): Path<String>,
    Json(body): Json<RecoverBody>,
) -> Result<(StatusCode, axum::Json<RecoveredOut>), ApiError> {
    let wid: WebhookId = path_id(&id, "webhook")?;
    let since: Timestamp = body.since.parse().map_err(|_| {
        ValidationError::single(
            "since",
            "must be an RFC 3339 time, e.g. 2026-11-20T00:00:00Z",
        )
    })?;
    let since = casebridge_domain::input::check_time("since", since)?;
    let recovered = webhooks::recover(&s.app, company, wid, since).await?;
    Ok((StatusCode::ACCEPTED, axum::Json(RecoveredOut { recovered })))
}

/// One delivery with its payload and every attempt (W9).
#[utoipa::path(get, path = "/deliveries/{id}", tag = "webhooks", security(("bearer" = [])),
    params(("id" = String, Path)),
    responses((status = 200, body = DeliveryDetailOut), (status = 404, body = ErrorBody)))]
async fn get_delivery(
    State(s): State<AppState>,
    Auth(company): Auth,
    Path(id): Path<String>,
) -> Result<axum::Json<DeliveryDetailOut>, ApiError> {
    let did: DeliveryId = path_id(&id, "delivery")?;
    let d = webhooks::delivery(&s.app, company, did).await?;
    Ok(axum::Json(DeliveryDetailOut {
        delivery: DeliveryOut::new(d.delivery, d.next_attempt_at),
        payload: d.payload,
        attempts: d.attempts.into_iter().map(Into::into).collect(),
    }))
}

/// Sends one delivery again, with the same event id (W8). A delivery that is still pending is
/// already queued for its next attempt: 409.
#[utoipa::path(post, path = "/deliveries/{id}/replay", tag = "webhooks",
    security(("bearer" = [])), params(("id" = String, Path)),
    responses((status = 202, body = QueuedOut), (status = 404, body = ErrorBody),
              (status = 409, body = ErrorBody)))]
async fn replay(
    State(s): State<AppState>,
    Auth(company): Auth,
    Path(id): Path<String>,
) -> Result<(StatusCode, axum::Json<QueuedOut>), ApiError> {
    let did: DeliveryId = path_id(&id, "delivery")?;
    let queued = webhooks::replay(&s.app, company, did).await?;
    Ok((StatusCode::ACCEPTED, axum::Json(queued.into())))
}
