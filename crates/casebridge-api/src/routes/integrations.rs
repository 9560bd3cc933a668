//! CRM integrations (SPEC §3, §5): connection, settings, the CRM catalog, mappings, the sync log,
//! list auto-add rules, and the CRMs' inbound webhooks. Every route is served once for every
//! provider; the use cases live in `casebridge_app::integrations` and `casebridge_app::inbound`.

use axum::body::Bytes;
use axum::extract::{FromRequest, Request, State};
use axum::http::{header, StatusCode};
use casebridge_app::inbound::{self, InboundBody, Received};
use casebridge_app::integrations::{
    self as svc, CrmOp, IntegrationView, Link, StoredRule, SyncEntry, TogglesChange,
};
use casebridge_domain::crm_ops::{OpState, ResumeMode};
use casebridge_domain::integrations::{Direction, Frequency, Provider, StatusSlot, Toggles};
use casebridge_domain::sync::ConflictRule;
use casebridge_domain::ValidationError;
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::dto::{page_request, PageOut};
use crate::error::{ApiError, ErrorBody};
use crate::extract::{Auth, Json, Path, Query};
use crate::AppState;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_integrations))
        .routes(routes!(get_integration))
        .routes(routes!(connect, disconnect))
        .routes(routes!(rotate_webhook_token))
        .routes(routes!(update_settings))
        .routes(routes!(get_status_sync, put_status_sync))
        .routes(routes!(list_operations))
        .routes(routes!(retry_operation))
        .routes(routes!(dismiss_operation))
        .routes(routes!(refresh_catalog))
        .routes(routes!(pull_now))
        .routes(routes!(run_now))
        .routes(routes!(field_preview))
        .routes(routes!(get_catalog))
        .routes(routes!(get_links, put_links))
        .routes(routes!(get_field_mappings, put_field_mappings))
        .routes(routes!(get_status_mappings, put_status_mappings))
        .routes(routes!(get_sync_log))
        .routes(routes!(list_rules, add_rule))
        .routes(routes!(delete_rule))
}

/// Inbound webhooks, authenticated by the token in the path (outside `/api/v1`).
pub fn hooks() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(crm_hook))
}

/// The provider named in the path; an unknown one is a 404.
pub(crate) fn provider(raw: &str) -> Result<Provider, ApiError> {
    Ok(svc::provider(raw)?)
}

fn time(t: Option<jiff::Timestamp>) -> Option<String> {
    t.map(crate::dto::time)
}

// ---- views ----

#[derive(Debug, Serialize, ToSchema)]
pub struct IntegrationCard {
    pub provider: String,
    pub name: String,
    /// `connected` or `not_connected`.
    pub status: String,
    /// Whether casebridge can connect this provider yet.
    pub available: bool,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct HealthOut {
    pub last_integration_sync_at: Option<String>,
    pub last_status_pull_at: Option<String>,
    pub last_status_push_at: Option<String>,
    pub last_webhook_at: Option<String>,
    pub catalog_refreshed_at: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct IntegrationOut {
    pub provider: String,
    pub name: String,
    pub status: String,
    pub connected_at: Option<String>,
    /// Masked; absent when not connected.
    #[schema(value_type = Option<Object>)]
    pub credentials: Option<Map<String, Value>>,
    /// Paste this into the CRM (Law Ruler: Setup → Webhooks → API URL). Optional query parameters:
    /// `list_id`, `list_name`, `list_action`, `remove_from_list`, `campaign_id`.
    pub webhook_url: String,
    /// Set while `webhook_url` is a loopback address the CRM cannot reach (casebridge runs
    /// without `CASEBRIDGE_PUBLIC_URL`, and the URL comes from its listen address).
    pub webhook_url_warning: Option<String>,
    /// The toggles as set, by name, the sync `direction` and `frequency` (the body
    /// `PUT …/settings` takes); `toggles` has them in order.
    #[schema(value_type = Object)]
    pub settings: Value,
    /// The toggles in the safe order an admin turns them on (LR7): Enable Integration, Receive,
    /// Send, mapped fields, messages, call records, documents, status sync.
    pub toggles: Vec<ToggleOut>,
    /// Options outside the toggle order: `sync_enriched_phones` (send the phone number that
    /// reached the client with a call's result, LR10).
    #[schema(value_type = Object)]
    pub options: Value,
    /// How often the integration runs (SYNC1), its label, the choices, and the next run.
    pub frequency: FrequencyOut,
    /// Toggles that are on but have no effect because one they depend on is off.
    pub inert_settings: Vec<String>,
    /// The conflict rule (SYNC2) as set, what it means, and where this CRM's change times come
    /// from (for `most_recent`).
    pub conflict_resolution: ConflictResolutionOut,
    /// The import a connect with `"initial_sync": true` just started (`GET …/import/{id}`);
    /// `null` otherwise.
    pub initial_import: Option<String>,
    /// Selective sync (SYNC1): each kind of data, in and out — `on`, `off` (with the setting
    /// that turns it off: `enable_integration`, `direction`, `receive`, `send` or the kind's
    /// toggle) or `not_available` (this CRM's connector does not move it that way). Read off the
    /// toggles and the direction, so it always agrees with them; change those to change it.
    pub selective_sync: Vec<KindFlowOut>,
    #[schema(value_type = Object)]
    pub checklist: Value,
    pub health: HealthOut,
    /// A configuration problem found while syncing (e.g. the Key was rejected).
    pub config_error: Option<String>,
    /// Why the CRM's case types, statuses or fields could not be loaded, if they could not.
    pub catalog_error: Option<String>,
    /// Sync monitoring (SYNC3).
    pub sync: SyncOut,
    /// The rights connecting checks the CRM's API user has (SmartAdvocate: read cases, read
    /// notes, insert note, read case types, read status types), each `passed_at_connect` once
    /// connected (connecting fails naming the one missing) or `not_checked`; empty for a CRM
    /// whose connect checks none separately.
    pub permission_checks: Vec<PermissionCheckOut>,
    /// Until when the CRM token held in memory is used before it is renewed (SmartAdvocate's
    /// JWT: its `exp` less 5 minutes); absent when none is held now (the next call gets one).
    pub token_valid_until: Option<String>,
}

/// The sync frequency (SYNC1). Inbound webhooks are applied at once whatever it is.
/// `real_time`: outbound operations go at once and pulls follow the CRM's own interval.
/// `hourly` / `daily`: the integration runs every hour / 24 hours, counted from when the
/// frequency was set or from the last `POST …/run`; each run pulls (when receiving) and sends
/// the operations recorded since the previous run, in order.
#[derive(Debug, Serialize, ToSchema)]
pub struct FrequencyOut {
    /// `real_time`, `hourly` or `daily`.
    pub value: String,
    pub label: String,
    /// Every value `PUT …/settings` takes as `frequency`, with its label.
    pub choices: Vec<ChoiceOut>,
    /// The next run (hourly or daily): operations recorded until then are not sent before it.
    /// Absent in real time.
    pub next_run_at: Option<String>,
}

/// One value of a setting, with its label.
#[derive(Debug, Serialize, ToSchema)]
pub struct ChoiceOut {
    pub value: String,
    pub label: String,
}

/// One permission connecting checks.
#[derive(Debug, Serialize, ToSchema)]
pub struct PermissionCheckOut {
    pub name: String,
    /// `passed_at_connect` or `not_checked`.
    pub state: String,
}

/// One toggle of the setup screen.
#[derive(Debug, Serialize, ToSchema)]
pub struct ToggleOut {
    /// The name `PUT …/settings` takes.
    pub key: String,
    pub label: String,
    pub description: String,
    pub on: bool,
    /// The toggles that must be on for this one to take effect.
    pub gated_by: Vec<String>,
    /// On, but without effect because a toggle it depends on is off.
    pub inert: bool,
}

/// Sync monitoring (SYNC3): what was synced, what waits, the last error.
#[derive(Debug, Serialize, ToSchema)]
pub struct SyncOut {
    pub last_sync_at: Option<String>,
    /// CRM records received (webhooks, pulls, imports), counted once per record.
    pub records_received: u64,
    /// Outbound operations sent.
    pub operations_done: u64,
    /// Outbound operations waiting to be sent (including retries after transient errors).
    pub operations_pending: u64,
    /// Status changes held while status sync is off (LR11).
    pub operations_held: u64,
    /// Waiting for the connection to be fixed (configuration error).
    pub operations_blocked: u64,
    /// Refused by the CRM; see the sync log for the reasons.
    pub operations_failed: u64,
    pub operations_skipped: u64,
    /// The newest error of the sync log, if any.
    pub last_error: Option<SyncEntryOut>,
    /// The last pull of notes and changed records (LR13), and its error if it failed.
    pub last_pull_at: Option<String>,
    pub last_pull_error: Option<String>,
}

/// One kind of data and how it flows.
#[derive(Debug, Serialize, ToSchema)]
pub struct KindFlowOut {
    /// `cases`, `clients`, `notes_and_messages`, `call_records`, `documents`, `statuses` or
    /// `mapped_fields`.
    pub kind: String,
    pub label: String,
    /// `on`, `off` or `not_available`.
    pub inbound: String,
    pub inbound_off_by: Option<String>,
    pub outbound: String,
    pub outbound_off_by: Option<String>,
}

/// The conflict rule of an integration (SYNC2).
#[derive(Debug, Serialize, ToSchema)]
pub struct ConflictResolutionOut {
    /// `platform_wins`, `crm_wins` or `most_recent`.
    pub rule: String,
    pub label: String,
    /// Where the CRM's change times come from, which `most_recent` compares.
    pub change_times: String,
}

impl From<IntegrationView> for IntegrationOut {
    fn from(v: IntegrationView) -> Self {
        let connected = v.connected();
        let t = v.toggles;
        let i = v.integration;
        let settings = json!(Toggles::ORDER
            .iter()
            .map(|name| (
                name.to_string(),
                serde_json::to_value(t).unwrap()[name].clone()
            ))
            .chain([
                ("direction".to_owned(), json!(t.direction.as_str())),
                (
                    "conflict_resolution".to_owned(),
                    json!(t.conflict_resolution.as_str()),
                ),
                ("frequency".to_owned(), json!(t.frequency.as_str())),
            ])
            .collect::<Map<_, _>>());
        let ops = v.operations;
        let permission_checks = v
            .permission_checks
            .iter()
            .map(|name| PermissionCheckOut {
                name: (*name).into(),
                state: if connected {
                    "passed_at_connect"
                } else {
                    "not_checked"
                }
                .into(),
            })
            .collect();
        let frequency = FrequencyOut {
            value: t.frequency.as_str().into(),
            label: t.frequency.label().into(),
            choices: Frequency::ALL
                .iter()
                .map(|f| ChoiceOut {
                    value: f.as_str().into(),
                    label: f.label().into(),
                })
                .collect(),
            next_run_at: time(v.next_run_at),
        };
        Self {
            frequency,
            permission_checks,
            token_valid_until: time(v.token_valid_until),
            options: json!({"sync_enriched_phones": t.sync_enriched_phones}),
            sync: SyncOut {
                last_sync_at: time(i.last_integration_sync_at),
                records_received: v.records_received,
                operations_done: ops.done,
                operations_pending: ops.pending,
                operations_held: ops.held,
                operations_blocked: ops.blocked,
                operations_failed: ops.failed,
                operations_skipped: ops.skipped,
                last_error: v.last_error.map(SyncEntryOut::from),
                last_pull_at: time(i.last_pull_at),
                last_pull_error: i.last_pull_error.clone(),
            },
            provider: v.provider.as_str().into(),
            name: v.provider.label().into(),
            status: connection_status(connected).into(),
            connected_at: time(i.connected_at),
            credentials: v.credentials,
            webhook_url: v.webhook_url,
            webhook_url_warning: v.webhook_url_warning,
            settings,
            toggles: t
                .listed()
                .into_iter()
                .map(|i| ToggleOut {
                    key: i.key.into(),
                    label: i.label.into(),
                    description: i.description.into(),
                    on: i.on,
                    gated_by: i.gated_by.iter().map(|g| g.to_string()).collect(),
                    inert: t.inert().contains(&i.key),
                })
                .collect(),
            inert_settings: t.inert().into_iter().map(str::to_owned).collect(),
            initial_import: v.initial_import.map(|id| id.to_string()),
            selective_sync: v
                .selective
                .iter()
                .map(|(k, i, o)| KindFlowOut {
                    kind: k.as_str().into(),
                    label: k.label().into(),
                    inbound: i.as_str().into(),
                    inbound_off_by: i.off_by().map(Into::into),
                    outbound: o.as_str().into(),
                    outbound_off_by: o.off_by().map(Into::into),
                })
                .collect(),
            conflict_resolution: ConflictResolutionOut {
                rule: t.conflict_resolution.as_str().into(),
                label: t.conflict_resolution.label().into(),
                change_times: v.provider.change_times().into(),
            },
            checklist: serde_json::to_value(v.checklist).expect("serializable"),
            health: HealthOut {
                last_integration_sync_at: time(i.last_integration_sync_at),
                last_status_pull_at: time(i.last_status_pull_at),
                last_status_push_at: time(i.last_status_push_at),
                last_webhook_at: time(i.last_webhook_at),
                catalog_refreshed_at: time(i.catalog_refreshed_at),
            },
            config_error: i.config_error,
            catalog_error: i.catalog_error,
        }
    }
}

fn connection_status(connected: bool) -> &'static str {
    if connected {
        "connected"
    } else {
        "not_connected"
    }
}

/// The integrations and whether each is connected (Settings → Integrations).
#[utoipa::path(get, path = "/integrations", tag = "integrations", security(("bearer" = [])),
    responses((status = 200, body = Vec<IntegrationCard>)))]
async fn list_integrations(
    State(s): State<AppState>,
    Auth(company): Auth,
) -> Result<axum::Json<Vec<IntegrationCard>>, ApiError> {
    let cards = svc::list(&s.app, company).await?;
    Ok(axum::Json(
        cards
            .into_iter()
            .map(|c| IntegrationCard {
                status: connection_status(c.connected).into(),
                provider: c.provider,
                name: c.name,
                available: c.available,
            })
            .collect(),
    ))
}

/// An integration's setup screen: status, masked credentials, webhook URL, toggles, checklist
/// and sync health (LR12).
#[utoipa::path(get, path = "/integrations/{provider}", tag = "integrations",
    security(("bearer" = [])), params(("provider" = String, Path)),
    responses((status = 200, body = IntegrationOut), (status = 404, body = ErrorBody)))]
async fn get_integration(
    State(s): State<AppState>,
    Auth(company): Auth,
    Path(raw): Path<String>,
) -> Result<axum::Json<IntegrationOut>, ApiError> {
    let view = svc::get(&s.app, company, provider(&raw)?).await?;
    Ok(axum::Json(view.into()))
}

/// Optional body of a webhook URL rotation.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RotateTokenBody {
    /// How long the previous URL keeps receiving webhooks: 0–720 hours, default 24.
    #[schema(minimum = 0, maximum = 720, example = 24)]
    pub grace_hours: Option<u32>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RotatedTokenOut {
    /// The new inbound URL to paste into the CRM.
    pub webhook_url: String,
    /// Until then the previous URL still receives; afterwards it answers 404 like an unknown
    /// token.
    pub previous_url_expires_at: String,
}

/// Gives the inbound webhook URL a new token (when the URL may have leaked, or routinely). The
/// previous URL keeps working for a grace period (`grace_hours`, default 24) so the CRM can be
/// given the new one without losing webhooks.
#[utoipa::path(post, path = "/integrations/{provider}/webhook-token/rotate", tag = "integrations",
    security(("bearer" = [])), params(("provider" = String, Path)),
    request_body(content = Option<RotateTokenBody>),
    responses((status = 200, body = RotatedTokenOut), (status = 404, body = ErrorBody),
              (status = 422, body = ErrorBody)))]
async fn rotate_webhook_token(
    State(s): State<AppState>,
    Auth(company): Auth,
    Path(raw): Path<String>,
    body: Option<Json<RotateTokenBody>>,
) -> Result<axum::Json<RotatedTokenOut>, ApiError> {
    let p = provider(&raw)?;
    let grace = body
        .and_then(|Json(b)| b.grace_hours)
        .map(|h| jiff::SignedDuration::from_hours(i64::from(h)));
    let rotated = svc::rotate_webhook_token(&s.app, company, p, grace).await?;
    Ok(axum::Json(RotatedTokenOut {
        webhook_url: rotated.webhook_url,
        previous_url_expires_at: crate::dto::time(rotated.previous_url_expires_at),
    }))
}

// ---- connection ----

/// The connect form of the provider, as a JSON object. Law Ruler: `username`, `password`,
/// `client_root` (the firm's subdomain, `yourfirm`, or the full address of its site),
/// `client_secret` (issued with Advanced API access) and `key` (the lead-API Key, Setup → API).
#[derive(Debug, Deserialize, ToSchema)]
#[schema(value_type = Object)]
pub struct ConnectBody(pub Map<String, Value>);

/// Connects a CRM: the values are checked against the CRM, and a wrong one is named. Stored
/// encrypted. Reconnecting replaces them. With `"initial_sync": true` beside the values, the
/// initial sync starts at once (an import of every existing CRM record through its API, in the
/// same transaction; `initial_import` names it, `GET …/import/{id}` shows its progress).
#[utoipa::path(put, path = "/integrations/{provider}/connection", tag = "integrations",
    operation_id = "connect_integration",
    security(("bearer" = [])), params(("provider" = String, Path)), request_body = ConnectBody,
    responses((status = 200, body = IntegrationOut), (status = 409, body = ErrorBody),
              (status = 422, body = ErrorBody), (status = 503, body = ErrorBody)))]
async fn connect(
    State(s): State<AppState>,
    Auth(company): Auth,
    Path(raw): Path<String>,
    Json(body): Json<ConnectBody>,
) -> Result<axum::Json<IntegrationOut>, ApiError> {
    let p = provider(&raw)?;
    let mut values = body.0;
    let initial_sync = match values.remove("initial_sync") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => b,
        Some(_) => {
            return Err(ValidationError::single("initial_sync", "must be true or false").into())
        }
    };
    let view = svc::connect(&s.app, company, p, &Value::Object(values), initial_sync).await?;
    Ok(axum::Json(view.into()))
}

/// Disconnects: the stored credentials are deleted; mappings and settings stay.
#[utoipa::path(delete, path = "/integrations/{provider}/connection", tag = "integrations",
    operation_id = "disconnect_integration",
    security(("bearer" = [])), params(("provider" = String, Path)),
    responses((status = 200, body = IntegrationOut)))]
async fn disconnect(
    State(s): State<AppState>,
    Auth(company): Auth,
    Path(raw): Path<String>,
) -> Result<axum::Json<IntegrationOut>, ApiError> {
    let view = svc::disconnect(&s.app, company, provider(&raw)?).await?;
    Ok(axum::Json(view.into()))
}

// ---- settings ----

/// The toggles to change (LR7); omitted ones stay as they are.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SettingsBody {
    pub enable_integration: Option<bool>,
    pub receive: Option<bool>,
    /// Sending to the CRM; for SmartAdvocate this is "Send mapping to SmartAdvocate" (SA3):
    /// off, nothing is pushed and mappings stay; status changes are held meanwhile.
    pub send: Option<bool>,
    pub send_mapped_fields: Option<bool>,
    pub send_messages: Option<bool>,
    pub send_call_records: Option<bool>,
    pub send_documents: Option<bool>,
    pub sync_statuses: Option<bool>,
    /// Call records: send the phone number that reached the client as `CellPhone` (LR10).
    pub sync_enriched_phones: Option<bool>,
    /// Which way data flows (SYNC1): `both` (the default), `one_way_in` (nothing is sent,
    /// whatever the toggles say) or `one_way_out` (nothing is received).
    pub direction: Option<String>,
    /// What wins when both sides changed a field since they last agreed (SYNC2):
    /// `platform_wins`, `crm_wins` or `most_recent` (the default; when a side has no change
    /// time, the CRM wins). Each conflict is logged (`GET …/conflicts`).
    pub conflict_resolution: Option<String>,
    /// How often the integration runs (SYNC1): `real_time` (the default: changes go at once),
    /// `hourly` or `daily` (changes wait for the next run, an hour / 24 hours from now and then
    /// every interval; the CRM is pulled at each run). Back to `real_time`, the waiting changes
    /// go at once; changes already due are never delayed. Inbound webhooks are real time.
    pub frequency: Option<String>,
}

/// Changes the toggles. Turning the integration on needs a connection; turning status sync on
/// needs at least one status mapping (the safe order). A change that starts sending status
/// changes again while some are held (status sync on; for SmartAdvocate also `send`) is a 409
/// until they are resolved with `PUT …/status-sync` and a `mode`. Toggles whose parents are off are kept
/// but reported in `inert_settings`, and the engine ignores them.
#[utoipa::path(put, path = "/integrations/{provider}/settings", tag = "integrations",
    security(("bearer" = [])), params(("provider" = String, Path)), request_body = SettingsBody,
    responses((status = 200, body = IntegrationOut), (status = 409, body = ErrorBody),
        (status = 422, body = ErrorBody)))]
async fn update_settings(
    State(s): State<AppState>,
    Auth(company): Auth,
    Path(raw): Path<String>,
    Json(b): Json<SettingsBody>,
) -> Result<axum::Json<IntegrationOut>, ApiError> {
    let change = TogglesChange {
        enable_integration: b.enable_integration,
        receive: b.receive,
        send: b.send,
        send_mapped_fields: b.send_mapped_fields,
        send_messages: b.send_messages,
        send_call_records: b.send_call_records,
        send_documents: b.send_documents,
        sync_statuses: b.sync_statuses,
        sync_enriched_phones: b.sync_enriched_phones,
        direction: b
            .direction
            .as_deref()
            .map(|d| Direction::parse("direction", d))
            .transpose()?,
        conflict_resolution: b
            .conflict_resolution
            .as_deref()
            .map(|r| ConflictRule::parse("conflict_resolution", r))
            .transpose()?,
        frequency: b
            .frequency
            .as_deref()
            .map(|f| Frequency::parse("frequency", f))
            .transpose()?,
    };
    let view = svc::change_settings(&s.app, company, provider(&raw)?, &change).await?;
    Ok(axum::Json(view.into()))
}

// ---- status sync (LR11) ----

#[derive(Debug, Serialize, ToSchema)]
pub struct StatusSyncOut {
    /// Whether status sync is on (the `sync_statuses` toggle).
    pub enabled: bool,
    /// Status changes made while it was off, waiting for the admin's choice.
    pub held: u64,
    /// What turning it on just did with the held changes, when it did.
    pub replayed: Option<u64>,
    pub skipped: Option<u64>,
    /// Set when held changes were replayed: they may overwrite newer Law Ruler statuses.
    pub warning: Option<String>,
}

impl From<svc::StatusSync> for StatusSyncOut {
    fn from(s: svc::StatusSync) -> Self {
        Self {
            enabled: s.enabled,
            held: s.held,
            replayed: s.replayed,
            skipped: s.skipped,
            warning: s.warning,
        }
    }
}

/// Whether status sync is on and how many status changes are held.
#[utoipa::path(get, path = "/integrations/{provider}/status-sync", tag = "integrations",
    security(("bearer" = [])), params(("provider" = String, Path)),
    responses((status = 200, body = StatusSyncOut)))]
async fn get_status_sync(
    State(s): State<AppState>,
    Auth(company): Auth,
    Path(raw): Path<String>,
) -> Result<axum::Json<StatusSyncOut>, ApiError> {
    let out = svc::status_sync(&s.app, company, provider(&raw)?).await?;
    Ok(axum::Json(out.into()))
}

/// Turns status sync on or off.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StatusSyncBody {
    pub enabled: bool,
    /// Required when turning it on while status changes are held: `non_retroactive` (the
    /// default choice: the held changes are skipped, only new ones are sent) or `retroactive`
    /// (the held changes are sent in the order they were made).
    pub mode: Option<String>,
}

/// Turns status sync off (status changes are then held) or on. Turning it on while changes
/// are held requires a `mode`: `non_retroactive` skips them, `retroactive` replays them in order
/// and warns that they may overwrite newer statuses in the CRM.
#[utoipa::path(put, path = "/integrations/{provider}/status-sync", tag = "integrations",
    security(("bearer" = [])), params(("provider" = String, Path)), request_body = StatusSyncBody,
    responses((status = 200, body = StatusSyncOut), (status = 409, body = ErrorBody),
              (status = 422, body = ErrorBody)))]
async fn put_status_sync(
    State(s): State<AppState>,
    Auth(company): Auth,
    Path(raw): Path<String>,
    Json(body): Json<StatusSyncBody>,
) -> Result<axum::Json<StatusSyncOut>, ApiError> {
    let p = provider(&raw)?;
    let mode = match body.mode.as_deref() {
        None => None,
        Some(m) => Some(ResumeMode::parse(m).ok_or_else(|| {
            ValidationError::single(
                "mode",
                format!("`{m}` is not a mode: use `non_retroactive` or `retroactive`"),
            )
        })?),
    };
    let out = svc::set_status_sync(&s.app, company, p, body.enabled, mode).await?;
    Ok(axum::Json(out.into()))
}

// ---- outbound operations (SYNC3) ----

#[derive(Debug, Serialize, ToSchema)]
pub struct OperationOut {
    pub id: String,
    /// `mapped_fields`, `status`, `message`, `call_record` or `document`.
    pub kind: String,
    /// `held`, `pending`, `done`, `skipped`, `failed` or `blocked`.
    pub state: String,
    pub case_id: Option<String>,
    /// The Law Ruler Lead ID.
    pub record_id: String,
    /// What is sent, e.g. `add note "Call Analysis Summary"`.
    pub description: String,
    /// What is sent, as stored.
    #[schema(value_type = Object)]
    pub payload: Value,
    pub attempts: u32,
    pub last_error: Option<String>,
    /// Set while a pending operation waits for the integration's next run (hourly or daily
    /// frequency): it is not sent before this time. `POST …/run` sends it now.
    pub batched_until: Option<String>,
    pub created_at: String,
    pub finished_at: Option<String>,
}

impl From<CrmOp> for OperationOut {
    fn from(o: CrmOp) -> Self {
        Self {
            description: o.action.describe(),
            payload: shorten_payload(serde_json::to_value(&o.action).expect("json")),
            id: o.id,
            kind: o.kind.as_str().into(),
            state: o.state.as_str().into(),
            case_id: o.case_id.map(|c| c.to_string()),
            record_id: o.record_id,
            attempts: o.attempts,
            last_error: o.last_error,
            batched_until: time(o.batched_until),
            created_at: crate::dto::time(o.created_at),
            finished_at: time(o.finished_at),
        }
    }
}

/// Note bodies are cut to 500 characters in listings. (Payloads carry no secrets: the Key is
/// added when sending.)
fn shorten_payload(mut v: Value) -> Value {
    if let Some(body) = v.get_mut("body") {
        if let Some(text) = body.as_str() {
            if text.chars().count() > 500 {
                *body = Value::String(text.chars().take(500).collect::<String>() + "…");
            }
        }
    }
    v
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct OperationsQuery {
    /// Only operations in this state.
    pub state: Option<String>,
    pub cursor: Option<String>,
    pub limit: Option<u32>,
}

/// Outbound operations, newest first: what was sent, what waits and why.
#[utoipa::path(get, path = "/integrations/{provider}/operations", tag = "integrations",
    security(("bearer" = [])), params(("provider" = String, Path), OperationsQuery),
    responses((status = 200, body = PageOut<OperationOut>)))]
async fn list_operations(
    State(s): State<AppState>,
    Auth(company): Auth,
    Path(raw): Path<String>,
    Query(q): Query<OperationsQuery>,
) -> Result<axum::Json<PageOut<OperationOut>>, ApiError> {
    let p = provider(&raw)?;
    let state = match q.state.as_deref() {
        None => None,
        Some(raw) => Some(OpState::parse(raw).ok_or_else(|| {
            ValidationError::single(
                "state",
                "use held, pending, done, skipped, failed or blocked",
            )
        })?),
    };
    let page = page_request(q.cursor, q.limit)?;
    let ops = svc::operations(&s.app, company, p, state, &page).await?;
    Ok(axum::Json(PageOut::from_page(ops, OperationOut::from)))
}

/// Sends a failed operation again: it becomes `pending`, queued behind the lead's other
/// operations (409 unless it is `failed`).
#[utoipa::path(post, path = "/integrations/{provider}/operations/{id}/retry", tag = "integrations",
    security(("bearer" = [])), params(("provider" = String, Path), ("id" = String, Path)),
    responses((status = 200, body = OperationOut), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody)))]
async fn retry_operation(
    State(s): State<AppState>,
    Auth(company): Auth,
    Path((raw, id)): Path<(String, String)>,
) -> Result<axum::Json<OperationOut>, ApiError> {
    let p = provider(&raw)?;
    let op = svc::settle_operation(&s.app, company, p, &id, svc::Settle::Retry).await?;
    Ok(axum::Json(op.into()))
}

/// Gives up on a failed operation: it becomes `skipped` and is not sent (409 unless it is
/// `failed`).
#[utoipa::path(post, path = "/integrations/{provider}/operations/{id}/dismiss", tag = "integrations",
    security(("bearer" = [])), params(("provider" = String, Path), ("id" = String, Path)),
    responses((status = 200, body = OperationOut), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody)))]
async fn dismiss_operation(
    State(s): State<AppState>,
    Auth(company): Auth,
    Path((raw, id)): Path<(String, String)>,
) -> Result<axum::Json<OperationOut>, ApiError> {
    let p = provider(&raw)?;
    let op = svc::settle_operation(&s.app, company, p, &id, svc::Settle::Dismiss).await?;
    Ok(axum::Json(op.into()))
}

// ---- catalog ----

#[derive(Debug, Serialize, ToSchema)]
pub struct CatalogOut {
    pub case_types: usize,
    pub statuses: usize,
    pub fields: usize,
    pub refreshed_at: String,
}

/// Loads the CRM's case types, statuses and custom fields again. Saved mappings are kept. If
/// the CRM cannot be reached or refuses, the error is shown here and on the integration, and
/// the previous catalog stays.
#[utoipa::path(post, path = "/integrations/{provider}/fields/refresh", tag = "integrations",
    security(("bearer" = [])), params(("provider" = String, Path)),
    responses((status = 200, body = CatalogOut), (status = 409, body = ErrorBody),
              (status = 502, body = ErrorBody)))]
async fn refresh_catalog(
    State(s): State<AppState>,
    Auth(company): Auth,
    Path(raw): Path<String>,
) -> Result<axum::Json<CatalogOut>, ApiError> {
    let loaded = svc::refresh_catalog(&s.app, company, provider(&raw)?).await?;
    Ok(axum::Json(CatalogOut {
        case_types: loaded.case_types,
        statuses: loaded.statuses,
        fields: loaded.fields,
        refreshed_at: crate::dto::time(loaded.refreshed_at),
    }))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct PullOut {
    /// Whether a pull job was added; false when a pull was already waiting (it reads
    /// everything changed up to when it runs).
    pub queued: bool,
    pub job_id: Option<String>,
}

/// Pulls the CRM's changes now, beside the schedule: the records changed since the last pull
/// (Law Ruler: leads and notes; SmartAdvocate: cases, contacts and notes). A worker runs it;
/// its outcome, with created/updated/unchanged counts, is in the sync log. 409 when nothing
/// would be received (not connected, turned off, receiving off).
#[utoipa::path(post, path = "/integrations/{provider}/pull", tag = "integrations",
    security(("bearer" = [])), params(("provider" = String, Path)),
    responses((status = 202, body = PullOut), (status = 404, body = ErrorBody),
              (status = 409, body = ErrorBody)))]
async fn pull_now(
    State(s): State<AppState>,
    Auth(company): Auth,
    Path(raw): Path<String>,
) -> Result<(StatusCode, axum::Json<PullOut>), ApiError> {
    let r = svc::pull_now(&s.app, company, provider(&raw)?).await?;
    Ok((
        StatusCode::ACCEPTED,
        axum::Json(PullOut {
            queued: r.job_id.is_some(),
            job_id: r.job_id,
        }),
    ))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RunOut {
    /// Whether a pull job was added.
    pub pull_queued: bool,
    pub pull_job_id: Option<String>,
    /// Why no pull was added: nothing would be received (not connected, turned off, receiving
    /// off), or a pull is already waiting.
    pub no_pull_reason: Option<String>,
    /// Operations that were waiting for the next run and are sent now, in order.
    pub operations_released: u64,
    /// The next run (hourly or daily: an interval from now); absent in real time.
    pub next_run_at: Option<String>,
}

/// Runs the integration now (SYNC1 "Run now"): pulls the CRM's changes (as `POST …/pull`,
/// unless nothing would be received or a pull is waiting; the answer says which) and makes
/// every outbound operation waiting for the next run (hourly or daily frequency) due at once,
/// in order per record. With an hourly or daily frequency it re-bases the schedule: the next
/// run is an interval from now. `POST …/pull` only pulls and leaves the schedule alone.
#[utoipa::path(post, path = "/integrations/{provider}/run", tag = "integrations",
    security(("bearer" = [])), params(("provider" = String, Path)),
    responses((status = 202, body = RunOut), (status = 404, body = ErrorBody),
              (status = 409, body = ErrorBody)))]
async fn run_now(
    State(s): State<AppState>,
    Auth(company): Auth,
    Path(raw): Path<String>,
) -> Result<(StatusCode, axum::Json<RunOut>), ApiError> {
    let r = svc::run_now(&s.app, company, provider(&raw)?).await?;
    Ok((
        StatusCode::ACCEPTED,
        axum::Json(RunOut {
            pull_queued: r.pull_job_id.is_some(),
            pull_job_id: r.pull_job_id,
            no_pull_reason: r.no_pull,
            operations_released: r.released,
            next_run_at: time(r.next_run_at),
        }),
    ))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
struct FieldQuery {
    /// The CRM case type to show fields for.
    crm_case_type_id: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct FieldOut {
    /// The CRM field key (what mappings refer to), e.g. `custom1234`.
    pub key: String,
    pub label: String,
    pub input_type: String,
    pub form_section: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct FieldPreviewOut {
    pub crm_case_type_id: String,
    pub fields: Vec<FieldOut>,
    pub refreshed_at: Option<String>,
    /// The last load error; the fields shown are from the last successful load.
    pub error: Option<String>,
}

/// A CRM case type or status: its id in the CRM and its name.
#[derive(Debug, Serialize, ToSchema)]
pub struct CrmItemOut {
    pub crm_id: String,
    pub name: String,
}

/// A CRM status: its id in the CRM, its name, and the second-status type it is a value of.
#[derive(Debug, Serialize, ToSchema)]
pub struct CrmStatusOut {
    pub crm_id: String,
    pub name: String,
    /// The name of the second-status type this status is a value of (SmartAdvocate's "Dialer
    /// Status" for `Dialer Status = To Dial`); `null` for a primary status. A platform status
    /// maps to one primary status and at most one value of each type.
    pub status_type: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CatalogListOut {
    /// By name.
    pub case_types: Vec<CrmItemOut>,
    /// By name.
    pub statuses: Vec<CrmStatusOut>,
    pub refreshed_at: Option<String>,
    /// The last load error; the lists are from the last successful load.
    pub error: Option<String>,
}

/// The CRM's case types and statuses with their ids, as last loaded by `POST …/fields/refresh`:
/// the ids that case type links, status mappings and auto-add rules take.
#[utoipa::path(get, path = "/integrations/{provider}/catalog", tag = "integrations",
    security(("bearer" = [])), params(("provider" = String, Path)),
    responses((status = 200, body = CatalogListOut), (status = 404, body = ErrorBody)))]
async fn get_catalog(
    State(s): State<AppState>,
    Auth(company): Auth,
    Path(raw): Path<String>,
) -> Result<axum::Json<CatalogListOut>, ApiError> {
    let p = provider(&raw)?;
    let c = svc::catalog(&s.app, company, p).await?;
    Ok(axum::Json(CatalogListOut {
        case_types: c
            .case_types
            .into_iter()
            .map(|i| CrmItemOut {
                crm_id: i.crm_id,
                name: i.name,
            })
            .collect(),
        statuses: c
            .statuses
            .into_iter()
            .map(|s| CrmStatusOut {
                crm_id: s.crm_id,
                name: s.name,
                status_type: match s.slot {
                    StatusSlot::Primary => None,
                    StatusSlot::Second { type_name, .. } => Some(type_name),
                },
            })
            .collect(),
        refreshed_at: time(c.refreshed_at),
        error: c.error,
    }))
}

/// The CRM fields of one case type: key, input type and form section (field preview, LR8).
#[utoipa::path(get, path = "/integrations/{provider}/fields", tag = "integrations",
    security(("bearer" = [])), params(("provider" = String, Path), FieldQuery),
    responses((status = 200, body = FieldPreviewOut), (status = 404, body = ErrorBody)))]
async fn field_preview(
    State(s): State<AppState>,
    Auth(company): Auth,
    Path(raw): Path<String>,
    Query(q): Query<FieldQuery>,
) -> Result<axum::Json<FieldPreviewOut>, ApiError> {
    let p = provider(&raw)?;
    let preview = svc::field_preview(&s.app, company, p, &q.crm_case_type_id).await?;
    Ok(axum::Json(FieldPreviewOut {
        crm_case_type_id: q.crm_case_type_id,
        fields: preview
            .fields
            .into_iter()
            .map(|f| FieldOut {
                key: f.key,
                label: f.label,
                input_type: f.input_type,
                form_section: f.form_section,
            })
            .collect(),
        refreshed_at: time(preview.refreshed_at),
        error: preview.error,
    }))
}

// ---- case type links ----

#[derive(Debug, Serialize, ToSchema)]
pub struct LinkOut {
    pub crm_case_type_id: String,
    pub crm_case_type_name: Option<String>,
    pub case_type_id: Option<String>,
    /// Mapped-field sync works for a case type only when it is linked (LR8).
    pub ready: bool,
    pub reason: Option<String>,
}

impl From<Link> for LinkOut {
    fn from(l: Link) -> Self {
        // A link to a case type no longer in the catalog is ready; an unlinked one says why not.
        let ready = l.ready();
        Self {
            reason: (!ready)
                .then(|| "not ready: this case type is not linked to a platform case type".into()),
            ready,
            crm_case_type_id: l.crm_case_type_id,
            crm_case_type_name: l.crm_case_type_name,
            case_type_id: l.case_type_id.map(|c| c.to_string()),
        }
    }
}

fn links_out(links: Vec<Link>) -> axum::Json<Vec<LinkOut>> {
    axum::Json(links.into_iter().map(LinkOut::from).collect())
}

/// Every CRM case type with the platform case type it is linked to, and whether it is ready.
#[utoipa::path(get, path = "/integrations/{provider}/case-type-links", tag = "integrations",
    security(("bearer" = [])), params(("provider" = String, Path)),
    responses((status = 200, body = Vec<LinkOut>)))]
async fn get_links(
    State(s): State<AppState>,
    Auth(company): Auth,
    Path(raw): Path<String>,
) -> Result<axum::Json<Vec<LinkOut>>, ApiError> {
    Ok(links_out(
        svc::links(&s.app, company, provider(&raw)?).await?,
    ))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LinkBody {
    pub crm_case_type_id: String,
    /// `null` removes the link.
    pub case_type_id: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LinksBody {
    pub links: Vec<LinkBody>,
}

/// Links (or unlinks) CRM case types to platform case types.
#[utoipa::path(put, path = "/integrations/{provider}/case-type-links", tag = "integrations",
    security(("bearer" = [])), params(("provider" = String, Path)), request_body = LinksBody,
    responses((status = 200, body = Vec<LinkOut>), (status = 422, body = ErrorBody)))]
async fn put_links(
    State(s): State<AppState>,
    Auth(company): Auth,
    Path(raw): Path<String>,
    Json(body): Json<LinksBody>,
) -> Result<axum::Json<Vec<LinkOut>>, ApiError> {
    let p = provider(&raw)?;
    let changes: Vec<svc::LinkChange> = body
        .links
        .into_iter()
        .map(|l| svc::LinkChange {
            crm_case_type_id: l.crm_case_type_id,
            case_type_id: l.case_type_id,
        })
        .collect();
    Ok(links_out(
        svc::set_links(&s.app, company, p, &changes).await?,
    ))
}

// ---- field mappings ----

#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FieldMapping {
    /// `case.name`, `client.first_name`, `client.last_name`, `client.email`, `client.phone` or
    /// `custom.<name>`.
    pub platform_field: String,
    /// The CRM field key from the field preview, e.g. `custom1234`.
    pub crm_field_key: String,
    /// How the field syncs: `two_way` (the default), `prefer_crm_unless_blank` (written only
    /// while casebridge never gave the CRM a value of it), `always_crm` (never written),
    /// `prefer_platform_unless_blank` (a blank value is not written), `always_platform`, or
    /// `dont_sync`. A change a rule withholds is named in the sync log as skipped.
    #[serde(default)]
    pub rule: Option<String>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FieldMappingsBody {
    pub crm_case_type_id: String,
    pub mappings: Vec<FieldMapping>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
struct MappingQuery {
    crm_case_type_id: String,
}

/// The field mappings of one CRM case type.
#[utoipa::path(get, path = "/integrations/{provider}/field-mappings", tag = "integrations",
    security(("bearer" = [])), params(("provider" = String, Path), MappingQuery),
    responses((status = 200, body = FieldMappingsBody)))]
async fn get_field_mappings(
    State(s): State<AppState>,
    Auth(company): Auth,
    Path(raw): Path<String>,
    Query(q): Query<MappingQuery>,
) -> Result<axum::Json<FieldMappingsBody>, ApiError> {
    let p = provider(&raw)?;
    let rows = svc::field_mappings(&s.app, company, p, &q.crm_case_type_id).await?;
    Ok(axum::Json(FieldMappingsBody {
        crm_case_type_id: q.crm_case_type_id,
        mappings: rows
            .into_iter()
            .map(|m| FieldMapping {
                platform_field: m.platform_field,
                crm_field_key: m.crm_field_key,
                rule: m.rule,
            })
            .collect(),
    }))
}

/// Replaces the field mappings of one CRM case type. Every CRM field must exist in the loaded
/// catalog for that case type.
#[utoipa::path(put, path = "/integrations/{provider}/field-mappings", tag = "integrations",
    security(("bearer" = [])), params(("provider" = String, Path)), request_body = FieldMappingsBody,
    responses((status = 200, body = FieldMappingsBody), (status = 422, body = ErrorBody)))]
async fn put_field_mappings(
    State(s): State<AppState>,
    Auth(company): Auth,
    Path(raw): Path<String>,
    Json(body): Json<FieldMappingsBody>,
) -> Result<axum::Json<FieldMappingsBody>, ApiError> {
    let p = provider(&raw)?;
    let mappings: Vec<svc::FieldMapping> = body
        .mappings
        .iter()
        .map(|m| svc::FieldMapping {
            platform_field: m.platform_field.clone(),
            crm_field_key: m.crm_field_key.clone(),
            rule: m.rule.clone(),
        })
        .collect();
    svc::set_field_mappings(&s.app, company, p, &body.crm_case_type_id, &mappings).await?;
    let rows = svc::field_mappings(&s.app, company, p, &body.crm_case_type_id).await?;
    Ok(axum::Json(FieldMappingsBody {
        crm_case_type_id: body.crm_case_type_id,
        mappings: rows
            .into_iter()
            .map(|m| FieldMapping {
                platform_field: m.platform_field,
                crm_field_key: m.crm_field_key,
                rule: m.rule,
            })
            .collect(),
    }))
}

// ---- status mappings ----

/// A platform status and one CRM status it maps to (a `crm_id` of `GET …/catalog`'s statuses).
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StatusMapping {
    pub case_status_id: String,
    pub crm_status_id: String,
}

/// Every status mapping. A platform status appears once per CRM status it maps to: with Law
/// Ruler once; with SmartAdvocate once for its primary status and once per second-status type
/// it sets (e.g. "Signed" → `2` "Signed Up" and `10:103` "Dialer Status = Do not Dial").
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StatusMappingsBody {
    pub mappings: Vec<StatusMapping>,
}

impl From<Vec<svc::StatusMapping>> for StatusMappingsBody {
    fn from(rows: Vec<svc::StatusMapping>) -> Self {
        Self {
            mappings: rows
                .into_iter()
                .map(|m| StatusMapping {
                    case_status_id: m.case_status_id,
                    crm_status_id: m.crm_status_id,
                })
                .collect(),
        }
    }
}

/// How platform statuses and CRM statuses correspond: every mapping, by CRM status id.
#[utoipa::path(get, path = "/integrations/{provider}/status-mappings", tag = "integrations",
    security(("bearer" = [])), params(("provider" = String, Path)),
    responses((status = 200, body = StatusMappingsBody)))]
async fn get_status_mappings(
    State(s): State<AppState>,
    Auth(company): Auth,
    Path(raw): Path<String>,
) -> Result<axum::Json<StatusMappingsBody>, ApiError> {
    let rows = svc::status_mappings(&s.app, company, provider(&raw)?).await?;
    Ok(axum::Json(rows.into()))
}

/// Replaces the status mappings, whole or not at all. A platform status maps to one primary CRM
/// status and, where the CRM has second statuses (SmartAdvocate), to at most one value of each
/// status type; each CRM status maps from one platform status (so an arriving record's status
/// names one). A 422 names the offending entry (`mappings[i]`, or its `case_status_id` /
/// `crm_status_id` when unknown) and changes nothing. A status change is then sent as its
/// primary status write followed by each second-status write, in order.
#[utoipa::path(put, path = "/integrations/{provider}/status-mappings", tag = "integrations",
    security(("bearer" = [])), params(("provider" = String, Path)), request_body = StatusMappingsBody,
    responses((status = 200, body = StatusMappingsBody), (status = 422, body = ErrorBody)))]
async fn put_status_mappings(
    State(s): State<AppState>,
    Auth(company): Auth,
    Path(raw): Path<String>,
    Json(body): Json<StatusMappingsBody>,
) -> Result<axum::Json<StatusMappingsBody>, ApiError> {
    let p = provider(&raw)?;
    let mappings: Vec<svc::StatusMapping> = body
        .mappings
        .iter()
        .map(|m| svc::StatusMapping {
            case_status_id: m.case_status_id.clone(),
            crm_status_id: m.crm_status_id.clone(),
        })
        .collect();
    svc::set_status_mappings(&s.app, company, p, &mappings).await?;
    let rows = svc::status_mappings(&s.app, company, p).await?;
    Ok(axum::Json(rows.into()))
}

// ---- sync log ----

#[derive(Debug, Serialize, ToSchema)]
pub struct SyncEntryOut {
    pub id: String,
    pub direction: String,
    pub operation: String,
    pub record_ref: Option<String>,
    /// `ok`, `skipped` or `error`.
    pub outcome: String,
    /// For errors: `transient` (will pass on retry), `configuration` (needs an admin) or
    /// `validation` (the record itself is unusable).
    pub error_kind: Option<String>,
    pub message: Option<String>,
    pub created_at: String,
}

impl From<SyncEntry> for SyncEntryOut {
    fn from(e: SyncEntry) -> Self {
        Self {
            id: e.id,
            direction: e.direction,
            operation: e.operation,
            record_ref: e.record_ref,
            outcome: e.outcome,
            error_kind: e.error_kind,
            message: e.message,
            created_at: crate::dto::time(e.created_at),
        }
    }
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
struct SyncLogQuery {
    /// `ok`, `skipped` or `error`.
    outcome: Option<String>,
    cursor: Option<String>,
    limit: Option<u32>,
}

/// What was synced, skipped or failed, newest first (SYNC3).
#[utoipa::path(get, path = "/integrations/{provider}/sync-log", tag = "integrations",
    security(("bearer" = [])), params(("provider" = String, Path), SyncLogQuery),
    responses((status = 200, body = PageOut<SyncEntryOut>)))]
async fn get_sync_log(
    State(s): State<AppState>,
    Auth(company): Auth,
    Path(raw): Path<String>,
    Query(q): Query<SyncLogQuery>,
) -> Result<axum::Json<PageOut<SyncEntryOut>>, ApiError> {
    let p = provider(&raw)?;
    let page = page_request(q.cursor, q.limit)?;
    let entries = svc::sync_log(&s.app, company, p, q.outcome.as_deref(), &page).await?;
    Ok(axum::Json(PageOut::from_page(entries, SyncEntryOut::from)))
}

// ---- list auto-add rules ----

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RuleBody {
    /// The CRM whose records the rule matches; default: Law Ruler.
    pub provider: Option<String>,
    /// The CRM case type's id or name.
    pub case_type: Option<String>,
    /// The CRM status's id or name.
    pub status: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RuleOut {
    pub id: String,
    pub list_id: String,
    pub provider: String,
    pub case_type: Option<String>,
    pub status: Option<String>,
    pub created_at: String,
}

impl From<StoredRule> for RuleOut {
    fn from(r: StoredRule) -> Self {
        Self {
            id: r.id,
            list_id: r.list_id.to_string(),
            provider: r.provider,
            case_type: r.rule.case_type,
            status: r.rule.status,
            created_at: crate::dto::time(r.created_at),
        }
    }
}

/// A list's auto-add rules: CRM records whose case type and/or status match are put on the list.
#[utoipa::path(get, path = "/lists/{id}/auto-add-rules", tag = "lists", security(("bearer" = [])),
    params(("id" = String, Path)),
    responses((status = 200, body = Vec<RuleOut>), (status = 404, body = ErrorBody)))]
async fn list_rules(
    State(s): State<AppState>,
    Auth(company): Auth,
    Path(id): Path<String>,
) -> Result<axum::Json<Vec<RuleOut>>, ApiError> {
    let rules = svc::rules(&s.app, company, &id).await?;
    Ok(axum::Json(rules.into_iter().map(RuleOut::from).collect()))
}

/// Adds an auto-add rule to a list.
#[utoipa::path(post, path = "/lists/{id}/auto-add-rules", tag = "lists", security(("bearer" = [])),
    params(("id" = String, Path)), request_body = RuleBody,
    responses((status = 201, body = RuleOut), (status = 404, body = ErrorBody),
              (status = 422, body = ErrorBody)))]
async fn add_rule(
    State(s): State<AppState>,
    Auth(company): Auth,
    Path(id): Path<String>,
    Json(body): Json<RuleBody>,
) -> Result<(StatusCode, axum::Json<RuleOut>), ApiError> {
    let rule = svc::NewRule {
        provider: body.provider.as_deref(),
        case_type: body.case_type.as_deref(),
        status: body.status.as_deref(),
    };
    let stored = svc::add_rule(&s.app, company, &id, &rule).await?;
    Ok((StatusCode::CREATED, axum::Json(stored.into())))
}

/// Removes an auto-add rule.
#[utoipa::path(delete, path = "/lists/{id}/auto-add-rules/{rule_id}", tag = "lists",
    security(("bearer" = [])), params(("id" = String, Path), ("rule_id" = String, Path)),
    responses((status = 204), (status = 404, body = ErrorBody)))]
async fn delete_rule(
    State(s): State<AppState>,
    Auth(company): Auth,
    Path((id, rule_id)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    svc::delete_rule(&s.app, company, &id, &rule_id).await?;
    Ok(StatusCode::NO_CONTENT)
}

// ---- inbound webhooks ----

#[derive(Debug, Serialize, ToSchema)]
pub struct HookOut {
    /// `applied`, `duplicate` (the same content was applied before) or `ignored` (receiving is
    /// turned off; see `reason`).
    pub status: String,
    pub reason: Option<String>,
    /// The case the record was applied to (for a duplicate: the case it matched).
    pub case_id: Option<String>,
    pub client_id: Option<String>,
    pub case_created: Option<bool>,
    pub lists_added: Vec<String>,
    pub lists_removed: Vec<String>,
}

impl HookOut {
    fn bare(status: &str, reason: String) -> Self {
        Self {
            status: status.into(),
            reason: Some(reason),
            case_id: None,
            client_id: None,
            case_created: None,
            lists_added: Vec::new(),
            lists_removed: Vec::new(),
        }
    }
}

impl From<Received> for HookOut {
    fn from(r: Received) -> Self {
        match r {
            Received::Ignored { reason } => HookOut::bare("ignored", reason),
            Received::Duplicate {
                reason,
                case_id,
                client_id,
            } => HookOut {
                case_id: case_id.map(|c| c.to_string()),
                client_id: client_id.map(|c| c.to_string()),
                ..HookOut::bare("duplicate", reason)
            },
            Received::Applied(a) => HookOut {
                status: "applied".into(),
                reason: None,
                case_id: Some(a.case_id.to_string()),
                client_id: Some(a.client_id.to_string()),
                case_created: Some(a.case_created),
                lists_added: a.lists_added.iter().map(|l| l.to_string()).collect(),
                lists_removed: a.lists_removed.iter().map(|l| l.to_string()).collect(),
            },
        }
    }
}

fn malformed_multipart(e: axum::extract::multipart::MultipartError) -> InboundBody {
    let too_large = e.status() == StatusCode::PAYLOAD_TOO_LARGE;
    InboundBody::Unreadable {
        message: if too_large {
            TOO_LARGE.into()
        } else {
            format!("the multipart body is malformed: {e}")
        },
        too_large,
    }
}

const TOO_LARGE: &str = "the request body is larger than the limit";

/// Reads the body whatever its format: JSON, form-encoded or multipart (its text fields). A
/// body that cannot be read is passed on as such, so that the token is checked first.
async fn read_body(state: &AppState, req: Request) -> InboundBody {
    let content_type = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_ascii_lowercase();
    if content_type.starts_with("multipart/form-data") {
        let mut mp = match axum::extract::Multipart::from_request(req, state).await {
            Ok(mp) => mp,
            Err(e) => {
                return InboundBody::Unreadable {
                    message: format!("the multipart body is malformed: {}", e.body_text()),
                    too_large: false,
                }
            }
        };
        let mut out = Vec::new();
        loop {
            let field = match mp.next_field().await {
                Ok(Some(f)) => f,
                Ok(None) => return InboundBody::Fields(out),
                Err(e) => return malformed_multipart(e),
            };
            let name = field.name().map(str::to_owned).or_else(|| {
                field
                    .headers()
                    .get(header::CONTENT_DISPOSITION)
                    .and_then(|v| v.to_str().ok())
                    .and_then(inbound::multipart_field_name)
            });
            let Some(name) = name else {
                continue;
            };
            if field.file_name().is_some() {
                continue; // files are not part of a record
            }
            match field.text().await {
                Ok(text) => out.push((name, text)),
                Err(e) => return malformed_multipart(e),
            }
        }
    }
    let bytes = match Bytes::from_request(req, state).await {
        Ok(b) => b,
        Err(e) => {
            let too_large = e.status() == StatusCode::PAYLOAD_TOO_LARGE;
            return InboundBody::Unreadable {
                message: if too_large {
                    TOO_LARGE.into()
                } else {
                    e.body_text()
                },
                too_large,
            };
        }
    };
    if content_type.starts_with("application/x-www-form-urlencoded") {
        InboundBody::Form(bytes.to_vec())
    } else if content_type.starts_with("application/json") || content_type.is_empty() {
        InboundBody::Json(bytes.to_vec())
    } else {
        InboundBody::Unsupported
    }
}

/// A CRM's webhook. Law Ruler (LR2–LR6): paste `webhook_url` from
/// `GET /api/v1/integrations/{provider}` into the CRM. Accepts JSON, form-encoded and multipart
/// bodies; field names match ignoring case, spaces, underscores and hyphens. Optional `list_id`,
/// `list_name`, `list_action` (add | attach | detach | remove), `remove_from_list`,
/// `campaign_id` in the URL or the body. Missing required fields → 422 naming them. When
/// receiving is turned off the answer is 200 `ignored` with the reason (so the CRM does not
/// retry), and nothing changes.
#[utoipa::path(post, path = "/hooks/{provider}/{token}", tag = "inbound",
    params(("provider" = String, Path), ("token" = String, Path)),
    request_body(description = "The lead's fields, as JSON, form-encoded or multipart text fields.",
        content((Object = "application/json"), (Object = "application/x-www-form-urlencoded"),
                (Object = "multipart/form-data"))),
    responses((status = 200, body = HookOut), (status = 404, body = ErrorBody),
              (status = 422, body = ErrorBody)))]
async fn crm_hook(
    State(s): State<AppState>,
    Path((raw, token)): Path<(String, String)>,
    req: Request,
) -> Result<axum::Json<HookOut>, ApiError> {
    let p = provider(&raw)?;
    let query = req.uri().query().unwrap_or("").to_owned();
    let body = read_body(&s, req).await;
    let (company, received) = inbound::receive(&s.app, p, &token, &query, body).await?;
    tracing::Span::current().record("company.id", tracing::field::display(company));
    Ok(axum::Json(received.into()))
}
