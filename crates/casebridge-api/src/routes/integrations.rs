//! CRM integrations (SPEC §3, §5): connection, settings, the CRM catalog, mappings, the sync log,
//! list auto-add rules, and Law Ruler's inbound webhook.
//!
//! Mappings, settings and the sync log are provider-neutral (`/integrations/{provider}/…`);
//! connecting and loading the catalog go through the provider's adapter in `casebridge-crm`.

use std::collections::HashMap;

use axum::body::Bytes;
use axum::extract::{FromRequest, Path, Request, State};
use axum::http::{header, StatusCode};
use casebridge_crm::lawruler::client::{ConnectError, Credentials, LawRulerClient, LawRulerError};
use casebridge_crm::lawruler::connection::{self, StoredCredentials};
use casebridge_crm::lawruler::inbound::{self, InboundError};
use casebridge_crm::lawruler::ingest::{self, IngestError};
use casebridge_crm::lawruler::outbound;
use casebridge_domain::crm_ops::{OpState, ResumeMode};
use casebridge_domain::error::Validator;
use casebridge_domain::ids::{CaseStatusId, CaseTypeId, CompanyId, ListId};
use casebridge_domain::integrations::{
    AutoAddRule, Checklist, ErrorKind, PlatformField, Provider, SyncOutcome, Toggles,
};
use casebridge_domain::records::NamedKind;
use casebridge_domain::ValidationError;
use casebridge_store::integrations::{self as store, CrmField, CrmItem, Integration, NewSyncEntry};
use casebridge_store::{named, Conn};
use rand::RngCore;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::dto::{page_request, PageOut};
use crate::error::{ApiError, ErrorBody, OrNotFound};
use crate::extract::{path_id, Auth, Json, Query};
use crate::AppState;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_integrations))
        .routes(routes!(get_integration))
        .routes(routes!(connect, disconnect))
        .routes(routes!(update_settings))
        .routes(routes!(get_status_sync, put_status_sync))
        .routes(routes!(list_operations))
        .routes(routes!(refresh_catalog))
        .routes(routes!(field_preview))
        .routes(routes!(get_links, put_links))
        .routes(routes!(get_field_mappings, put_field_mappings))
        .routes(routes!(get_status_mappings, put_status_mappings))
        .routes(routes!(get_sync_log))
        .routes(routes!(list_rules, add_rule))
        .routes(routes!(delete_rule))
}

/// Inbound webhooks, authenticated by the token in the path (outside `/api/v1`).
pub fn hooks() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(lawruler_hook))
}

fn provider(raw: &str) -> Result<Provider, ApiError> {
    Provider::parse(raw).ok_or_else(|| {
        ApiError::NotFound(format!(
            "no integration `{raw}`; there are `lawruler` and `smartadvocate`"
        ))
    })
}

/// Features built for Law Ruler only so far: another provider is "not found" there.
fn lawruler_only(raw: &str) -> Result<Provider, ApiError> {
    match provider(raw)? {
        Provider::LawRuler => Ok(Provider::LawRuler),
        other => Err(ApiError::NotFound(format!(
            "{} has no outbound sync in this version",
            other.label()
        ))),
    }
}

/// A random, unguessable token for the inbound webhook URL (LR2).
fn new_token() -> String {
    let mut bytes = [0u8; 24];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

async fn ensure(
    state: &AppState,
    company: CompanyId,
    p: Provider,
) -> Result<Integration, ApiError> {
    let mut tx = state.store.begin().await?;
    let i = store::ensure(
        &mut tx,
        company,
        p.as_str(),
        &new_token(),
        state.clock.now(),
    )
    .await?;
    tx.commit().await?;
    Ok(i)
}

fn toggles(i: &Integration) -> Toggles {
    Toggles::from_settings(&i.settings)
}

fn open_credentials(
    state: &AppState,
    i: &Integration,
) -> Result<Option<StoredCredentials>, ApiError> {
    connection::open(&state.keyring, i).map_err(ApiError::Internal)
}

fn lawruler_client(state: &AppState, creds: Credentials) -> Result<LawRulerClient, ApiError> {
    state
        .lawruler
        .build(creds)
        .map_err(|e| ValidationError::single("client_root", e.to_string()).into())
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
pub struct MaskedCredentials {
    pub username: String,
    pub password: String,
    pub client_root: String,
    pub client_secret: String,
    pub key: String,
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
    pub credentials: Option<MaskedCredentials>,
    /// Paste this into Law Ruler (Setup → Webhooks → API URL). Optional query parameters:
    /// `list_id`, `list_name`, `list_action`, `remove_from_list`, `campaign_id`.
    pub webhook_url: String,
    /// The toggles as set, in the safe order.
    #[schema(value_type = Object)]
    pub settings: Value,
    /// Options outside the toggle order: `sync_enriched_phones` (send the phone number that
    /// reached the client with a call's result, LR10).
    #[schema(value_type = Object)]
    pub options: Value,
    /// Toggles that are on but have no effect because one they depend on is off.
    pub inert_settings: Vec<String>,
    #[schema(value_type = Object)]
    pub checklist: Value,
    pub health: HealthOut,
    /// A configuration problem found while syncing (e.g. the Key was rejected).
    pub config_error: Option<String>,
    /// Why the CRM's case types, statuses or fields could not be loaded, if they could not.
    pub catalog_error: Option<String>,
    /// Sync monitoring (SYNC3).
    pub sync: SyncOut,
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

const SECRET_MASK: &str = "••••••••";

fn time(t: Option<jiff::Timestamp>) -> Option<String> {
    t.map(|t| t.to_string())
}

async fn view(state: &AppState, p: Provider, i: Integration) -> Result<IntegrationOut, ApiError> {
    let mut conn = state.store.conn().await?;
    let creds = open_credentials(state, &i)?;
    let t = toggles(&i);
    let crm_types = store::crm_case_types(&mut conn, i.company_id, p.as_str()).await?;
    let links = store::links(&mut conn, i.company_id, p.as_str()).await?;
    let checklist = Checklist {
        connected: creds.is_some(),
        first_webhook_received: i.first_webhook_at.is_some(),
        case_types_linked: !links.is_empty()
            && crm_types
                .iter()
                .all(|c| links.iter().any(|(l, _)| *l == c.crm_id)),
        sync_enabled: t.enable_integration,
    };
    let base = state
        .public_url
        .clone()
        .unwrap_or_else(|| "http://127.0.0.1:8080".into());
    let settings = json!(Toggles::ORDER
        .iter()
        .map(|name| (
            name.to_string(),
            serde_json::to_value(t).unwrap()[name].clone()
        ))
        .collect::<serde_json::Map<_, _>>());
    let counts = casebridge_store::crm_ops::counts(&mut conn, i.company_id, p.as_str()).await?;
    let count = |st: OpState| counts.iter().find(|(s, _)| *s == st).map_or(0, |(_, n)| *n);
    let last_error = store::sync_log(
        &mut conn,
        i.company_id,
        p.as_str(),
        Some("error"),
        &page_request(None, Some(1))?,
    )
    .await?
    .items
    .into_iter()
    .next()
    .map(sync_entry_out);
    let sync = SyncOut {
        last_sync_at: time(i.last_integration_sync_at),
        records_received: store::records_received(&mut conn, i.company_id, p.as_str()).await?,
        operations_done: count(OpState::Done),
        operations_pending: count(OpState::Pending),
        operations_held: count(OpState::Held),
        operations_blocked: count(OpState::Blocked),
        operations_failed: count(OpState::Failed),
        operations_skipped: count(OpState::Skipped),
        last_error,
        last_pull_at: time(i.last_pull_at),
        last_pull_error: i.last_pull_error.clone(),
    };
    Ok(IntegrationOut {
        options: json!({"sync_enriched_phones": t.sync_enriched_phones}),
        sync,
        provider: p.as_str().into(),
        name: p.label().into(),
        status: if creds.is_some() {
            "connected"
        } else {
            "not_connected"
        }
        .into(),
        connected_at: time(i.connected_at),
        // Secrets are shown as a fixed mask: not even their first characters.
        credentials: creds.map(|c| MaskedCredentials {
            username: c.username,
            password: SECRET_MASK.into(),
            client_root: c.client_root,
            client_secret: SECRET_MASK.into(),
            key: SECRET_MASK.into(),
        }),
        webhook_url: format!(
            "{}/hooks/{}/{}",
            base.trim_end_matches('/'),
            p.as_str(),
            i.webhook_token
        ),
        settings,
        inert_settings: t.inert().into_iter().map(str::to_owned).collect(),
        checklist: serde_json::to_value(checklist).expect("serializable"),
        health: HealthOut {
            last_integration_sync_at: time(i.last_integration_sync_at),
            last_status_pull_at: time(i.last_status_pull_at),
            last_status_push_at: time(i.last_status_push_at),
            last_webhook_at: time(i.last_webhook_at),
            catalog_refreshed_at: time(i.catalog_refreshed_at),
        },
        config_error: i.config_error,
        catalog_error: i.catalog_error,
    })
}

/// The integrations and whether each is connected (Settings → Integrations).
#[utoipa::path(get, path = "/integrations", tag = "integrations", security(("bearer" = [])),
    responses((status = 200, body = Vec<IntegrationCard>)))]
async fn list_integrations(
    State(s): State<AppState>,
    Auth(company): Auth,
) -> Result<axum::Json<Vec<IntegrationCard>>, ApiError> {
    let mut conn = s.store.conn().await?;
    let mut out = Vec::new();
    for p in [Provider::LawRuler, Provider::SmartAdvocate] {
        let connected = store::get(&mut conn, company, p.as_str())
            .await?
            .is_some_and(|i| i.credentials_sealed.is_some());
        out.push(IntegrationCard {
            provider: p.as_str().into(),
            name: p.label().into(),
            status: if connected {
                "connected"
            } else {
                "not_connected"
            }
            .into(),
            available: p == Provider::LawRuler,
        });
    }
    let scheduling = casebridge_store::scheduling::connection(&mut conn, company).await?;
    out.push(IntegrationCard {
        provider: "scheduling".into(),
        name: "Scheduling".into(),
        status: if scheduling.is_some() {
            "connected"
        } else {
            "not_connected"
        }
        .into(),
        available: true,
    });
    Ok(axum::Json(out))
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
    let p = provider(&raw)?;
    let i = ensure(&s, company, p).await?;
    Ok(axum::Json(view(&s, p, i).await?))
}

// ---- connection ----

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ConnectBody {
    /// Your Law Ruler user name.
    pub username: String,
    /// The password of that user.
    pub password: String,
    /// Your firm's Law Ruler address: the subdomain (`yourfirm`) or the full URL
    /// (`https://yourfirm.lawruler.com`).
    pub client_root: String,
    /// The Client Secret Law Ruler issued with Advanced API access.
    pub client_secret: String,
    /// The lead-API Key from Law Ruler (Setup → API).
    pub key: String,
}

/// Connects Law Ruler: the five values are checked against Law Ruler, and a wrong one is named.
/// Stored encrypted. Reconnecting replaces them.
#[utoipa::path(put, path = "/integrations/{provider}/connection", tag = "integrations",
    security(("bearer" = [])), params(("provider" = String, Path)), request_body = ConnectBody,
    responses((status = 200, body = IntegrationOut), (status = 422, body = ErrorBody),
              (status = 503, body = ErrorBody)))]
async fn connect(
    State(s): State<AppState>,
    Auth(company): Auth,
    Path(raw): Path<String>,
    Json(body): Json<ConnectBody>,
) -> Result<axum::Json<IntegrationOut>, ApiError> {
    let p = provider(&raw)?;
    if p != Provider::LawRuler {
        return Err(ApiError::Conflict(format!(
            "{} cannot be connected in this version yet",
            p.label()
        )));
    }
    let mut v = Validator::new();
    for (field, value) in [
        ("username", &body.username),
        ("password", &body.password),
        ("client_root", &body.client_root),
        ("client_secret", &body.client_secret),
        ("key", &body.key),
    ] {
        if value.trim().is_empty() {
            v.push(field, "is required");
        }
    }
    v.finish()?;
    let stored = StoredCredentials {
        username: body.username.trim().to_owned(),
        password: body.password,
        client_root: body.client_root.trim().to_owned(),
        client_secret: body.client_secret.trim().to_owned(),
        key: body.key.trim().to_owned(),
    };
    let client = lawruler_client(&s, stored.clone().into_credentials())?;
    // Where the Client Root points is checked like any outbound destination (W2), so a refusal
    // reads as such rather than as "cannot connect".
    s.url_policy
        .vet(client.client_root().as_str())
        .await
        .map_err(|e| ValidationError::single("client_root", e.to_string()))?;
    client.verify().await.map_err(|e| match e {
        ConnectError::WrongValue { field, message } => {
            ApiError::Validation(ValidationError::single(field.as_str(), message))
        }
        other => ApiError::Unavailable(other.to_string()),
    })?;
    let sealed = connection::seal(&s.keyring, company, &stored);
    let now = s.clock.now();
    let mut tx = s.store.begin().await?;
    store::ensure(&mut tx, company, p.as_str(), &new_token(), now).await?;
    store::set_credentials(&mut tx, company, p.as_str(), Some(&sealed), now).await?;
    // Operations parked by a configuration error go out again, in order.
    let requeued = outbound::requeue_blocked(&mut tx, company, now).await?;
    let connected_msg = if requeued == 0 {
        "connected; credentials verified".to_owned()
    } else {
        format!("connected; credentials verified; {requeued} waiting operation(s) sent again")
    };
    store::log(
        &mut tx,
        company,
        p.as_str(),
        &NewSyncEntry {
            direction: "outbound",
            operation: "connect",
            record_ref: None,
            outcome: SyncOutcome::Ok,
            error_kind: None,
            message: Some(&connected_msg),
        },
        now,
    )
    .await?;
    let i = store::get(&mut tx, company, p.as_str())
        .await?
        .ok_or_else(|| ApiError::Internal("integration vanished".into()))?;
    tx.commit().await?;
    Ok(axum::Json(view(&s, p, i).await?))
}

/// Disconnects: the stored credentials are deleted; mappings and settings stay.
#[utoipa::path(delete, path = "/integrations/{provider}/connection", tag = "integrations",
    security(("bearer" = [])), params(("provider" = String, Path)),
    responses((status = 200, body = IntegrationOut)))]
async fn disconnect(
    State(s): State<AppState>,
    Auth(company): Auth,
    Path(raw): Path<String>,
) -> Result<axum::Json<IntegrationOut>, ApiError> {
    let p = provider(&raw)?;
    let i = ensure(&s, company, p).await?;
    let mut tx = s.store.begin().await?;
    store::set_credentials(&mut tx, company, p.as_str(), None, s.clock.now()).await?;
    tx.commit().await?;
    let i = Integration {
        credentials_sealed: None,
        connected_at: None,
        ..i
    };
    Ok(axum::Json(view(&s, p, i).await?))
}

// ---- settings ----

/// The toggles to change (LR7); omitted ones stay as they are.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SettingsBody {
    pub enable_integration: Option<bool>,
    pub receive: Option<bool>,
    pub send: Option<bool>,
    pub send_mapped_fields: Option<bool>,
    pub send_messages: Option<bool>,
    pub send_call_records: Option<bool>,
    pub send_documents: Option<bool>,
    pub sync_statuses: Option<bool>,
    /// Call records: send the phone number that reached the client as `CellPhone` (LR10).
    pub sync_enriched_phones: Option<bool>,
}

/// Changes the toggles. Turning the integration on needs a connection; turning status sync on
/// needs at least one status mapping (the safe order). Toggles whose parents are off are kept
/// but reported in `inert_settings`, and the engine ignores them.
#[utoipa::path(put, path = "/integrations/{provider}/settings", tag = "integrations",
    security(("bearer" = [])), params(("provider" = String, Path)), request_body = SettingsBody,
    responses((status = 200, body = IntegrationOut), (status = 409, body = ErrorBody)))]
async fn update_settings(
    State(s): State<AppState>,
    Auth(company): Auth,
    Path(raw): Path<String>,
    Json(body): Json<SettingsBody>,
) -> Result<axum::Json<IntegrationOut>, ApiError> {
    let p = provider(&raw)?;
    ensure(&s, company, p).await?;
    // Read and write the toggles in one transaction, the row locked, so concurrent changes of
    // different toggles do not undo each other.
    let mut tx = s.store.begin().await?;
    let i = store::get_for_update(&mut tx, company, p.as_str())
        .await?
        .ok_or_else(|| ApiError::Internal("integration vanished".into()))?;
    let mut t = toggles(&i);
    let set = |slot: &mut bool, v: Option<bool>| {
        if let Some(v) = v {
            *slot = v;
        }
    };
    set(&mut t.enable_integration, body.enable_integration);
    set(&mut t.receive, body.receive);
    set(&mut t.send, body.send);
    set(&mut t.send_mapped_fields, body.send_mapped_fields);
    set(&mut t.send_messages, body.send_messages);
    set(&mut t.send_call_records, body.send_call_records);
    set(&mut t.send_documents, body.send_documents);
    let resuming = body.sync_statuses == Some(true) && !t.sync_statuses;
    set(&mut t.sync_statuses, body.sync_statuses);
    set(&mut t.sync_enriched_phones, body.sync_enriched_phones);
    if resuming && p == Provider::LawRuler && outbound::held_count(&mut tx, company).await? > 0 {
        return Err(ApiError::Conflict(
            "status changes were held while status sync was off: turn it on with \
             PUT /integrations/lawruler/status-sync and choose `non_retroactive` or `retroactive`"
                .into(),
        ));
    }
    if t.enable_integration && i.credentials_sealed.is_none() {
        return Err(ApiError::Conflict(format!(
            "connect {} before enabling the integration",
            p.label()
        )));
    }
    if t.sync_statuses
        && body.sync_statuses == Some(true)
        && store::status_mappings(&mut tx, company, p.as_str())
            .await?
            .is_empty()
    {
        return Err(ApiError::Conflict(
            "map statuses before turning on status sync (CRM Mappings → Status Mapping)".into(),
        ));
    }
    store::set_settings(
        &mut tx,
        company,
        p.as_str(),
        &serde_json::to_value(t).expect("json"),
        s.clock.now(),
    )
    .await?;
    let i = store::get(&mut tx, company, p.as_str())
        .await?
        .ok_or_else(|| ApiError::Internal("integration vanished".into()))?;
    tx.commit().await?;
    Ok(axum::Json(view(&s, p, i).await?))
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

/// Whether status sync is on and how many status changes are held.
#[utoipa::path(get, path = "/integrations/{provider}/status-sync", tag = "integrations",
    security(("bearer" = [])), params(("provider" = String, Path)),
    responses((status = 200, body = StatusSyncOut)))]
async fn get_status_sync(
    State(s): State<AppState>,
    Auth(company): Auth,
    Path(raw): Path<String>,
) -> Result<axum::Json<StatusSyncOut>, ApiError> {
    let p = lawruler_only(&raw)?;
    let i = ensure(&s, company, p).await?;
    let mut conn = s.store.conn().await?;
    Ok(axum::Json(StatusSyncOut {
        enabled: toggles(&i).sync_statuses,
        held: outbound::held_count(&mut conn, company).await?,
        replayed: None,
        skipped: None,
        warning: None,
    }))
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
/// and warns that they may overwrite newer Law Ruler statuses.
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
    let p = lawruler_only(&raw)?;
    let mode = match body.mode.as_deref() {
        None => None,
        Some(m) => Some(ResumeMode::parse(m).ok_or_else(|| {
            ValidationError::single(
                "mode",
                format!("`{m}` is not a mode: use `non_retroactive` or `retroactive`"),
            )
        })?),
    };
    ensure(&s, company, p).await?;
    let now = s.clock.now();
    let mut tx = s.store.begin().await?;
    let i = store::get_for_update(&mut tx, company, p.as_str())
        .await?
        .ok_or_else(|| ApiError::Internal("integration vanished".into()))?;
    let mut t = toggles(&i);
    let mut out = StatusSyncOut {
        enabled: body.enabled,
        held: 0,
        replayed: None,
        skipped: None,
        warning: None,
    };
    if body.enabled
        && !t.sync_statuses
        && store::status_mappings(&mut tx, company, p.as_str())
            .await?
            .is_empty()
    {
        return Err(ApiError::Conflict(
            "map statuses before turning on status sync (CRM Mappings → Status Mapping)".into(),
        ));
    }
    // Held changes are resolved whenever status sync is (or stays) on: a change recorded by a
    // request that raced the switch is held too, and must not stay stuck.
    if body.enabled {
        let held = outbound::held_count(&mut tx, company).await?;
        if held > 0 {
            let mode = mode.ok_or_else(|| {
                ValidationError::single(
                    "mode",
                    format!(
                        "{held} status change(s) were made while status sync was off: choose \
                         `non_retroactive` (skip them; the default choice) or `retroactive` \
                         (send them in order; they may overwrite newer Law Ruler statuses)"
                    ),
                )
            })?;
            let r = outbound::resume_status_sync(&mut tx, company, mode, now).await?;
            out.replayed = Some(r.replayed);
            out.skipped = Some(r.skipped);
            if mode == ResumeMode::Retroactive && r.replayed > 0 {
                out.warning = Some(format!(
                    "{} held status change(s) will be sent in the order they were made; they \
                     may overwrite statuses changed in Law Ruler since",
                    r.replayed
                ));
            }
        }
    }
    t.sync_statuses = body.enabled;
    store::set_settings(
        &mut tx,
        company,
        p.as_str(),
        &serde_json::to_value(t).expect("json"),
        now,
    )
    .await?;
    out.held = outbound::held_count(&mut tx, company).await?;
    tx.commit().await?;
    Ok(axum::Json(out))
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
    pub created_at: String,
    pub finished_at: Option<String>,
}

impl From<casebridge_store::crm_ops::CrmOp> for OperationOut {
    fn from(o: casebridge_store::crm_ops::CrmOp) -> Self {
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
            created_at: o.created_at.to_string(),
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
    let mut conn = s.store.conn().await?;
    let ops = casebridge_store::crm_ops::list(&mut conn, company, p.as_str(), state, &page).await?;
    Ok(axum::Json(PageOut::from_page(ops, OperationOut::from)))
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
/// Law Ruler cannot be reached or refuses, the error is shown here and on the integration, and
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
    let p = provider(&raw)?;
    let i = ensure(&s, company, p).await?;
    let creds = open_credentials(&s, &i)?
        .ok_or_else(|| ApiError::Conflict(format!("connect {} first", p.label())))?;
    let client = lawruler_client(&s, creds.into_credentials())?;
    let loaded = async {
        let case_types = client.case_types().await?;
        let statuses = client.statuses().await?;
        let mut fields = Vec::new();
        for ct in &case_types {
            for f in client.custom_fields(&ct.id).await? {
                fields.push(CrmField {
                    crm_case_type_id: ct.id.clone(),
                    key: f.key,
                    crm_field_id: f.id,
                    label: f.label,
                    input_type: f.input_type,
                    form_section: f.form_section,
                });
            }
        }
        Ok::<_, LawRulerError>((case_types, statuses, fields))
    }
    .await;
    let now = s.clock.now();
    let (case_types, statuses, fields) = match loaded {
        Ok(l) => l,
        Err(e) => {
            let message = format!("could not load fields from {}: {e}", p.label());
            let mut tx = s.store.begin().await?;
            store::set_catalog_error(&mut tx, company, p.as_str(), &message, now).await?;
            tx.commit().await?;
            return Err(ApiError::BadGateway(message));
        }
    };
    let item = |id: &str, name: &str| CrmItem {
        crm_id: id.to_owned(),
        name: name.to_owned(),
    };
    let ct: Vec<CrmItem> = case_types.iter().map(|c| item(&c.id, &c.name)).collect();
    let st: Vec<CrmItem> = statuses.iter().map(|c| item(&c.id, &c.name)).collect();
    let mut tx = s.store.begin().await?;
    store::replace_catalog(&mut tx, company, p.as_str(), &ct, &st, &fields, now).await?;
    tx.commit().await?;
    Ok(axum::Json(CatalogOut {
        case_types: ct.len(),
        statuses: st.len(),
        fields: fields.len(),
        refreshed_at: now.to_string(),
    }))
}

#[derive(Debug, Deserialize, IntoParams)]
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
    let i = ensure(&s, company, p).await?;
    let mut conn = s.store.conn().await?;
    let types = store::crm_case_types(&mut conn, company, p.as_str()).await?;
    if !types.iter().any(|t| t.crm_id == q.crm_case_type_id) {
        // Never a silent empty list: if loading failed, say so.
        if let Some(error) = i.catalog_error {
            return Err(ApiError::BadGateway(error));
        }
        return Err(ApiError::NotFound(format!(
            "no {} case type {} (refresh the fields if it was added recently)",
            p.label(),
            q.crm_case_type_id
        )));
    }
    let fields = store::crm_fields(&mut conn, company, p.as_str(), &q.crm_case_type_id).await?;
    Ok(axum::Json(FieldPreviewOut {
        crm_case_type_id: q.crm_case_type_id,
        fields: fields
            .into_iter()
            .map(|f| FieldOut {
                key: f.key,
                label: f.label,
                input_type: f.input_type,
                form_section: f.form_section,
            })
            .collect(),
        refreshed_at: time(i.catalog_refreshed_at),
        error: i.catalog_error,
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

/// Every CRM case type with the platform case type it is linked to, and whether it is ready.
#[utoipa::path(get, path = "/integrations/{provider}/case-type-links", tag = "integrations",
    security(("bearer" = [])), params(("provider" = String, Path)),
    responses((status = 200, body = Vec<LinkOut>)))]
async fn get_links(
    State(s): State<AppState>,
    Auth(company): Auth,
    Path(raw): Path<String>,
) -> Result<axum::Json<Vec<LinkOut>>, ApiError> {
    let p = provider(&raw)?;
    let mut conn = s.store.conn().await?;
    Ok(axum::Json(links_view(&mut conn, company, p).await?))
}

async fn links_view(
    conn: &mut Conn,
    company: CompanyId,
    p: Provider,
) -> Result<Vec<LinkOut>, ApiError> {
    let types = store::crm_case_types(conn, company, p.as_str()).await?;
    let links: HashMap<String, CaseTypeId> = store::links(conn, company, p.as_str())
        .await?
        .into_iter()
        .collect();
    let mut out: Vec<LinkOut> = types
        .iter()
        .map(|t| {
            let linked = links.get(&t.crm_id);
            LinkOut {
                crm_case_type_id: t.crm_id.clone(),
                crm_case_type_name: Some(t.name.clone()),
                case_type_id: linked.map(|c| c.to_string()),
                ready: linked.is_some(),
                reason: linked.is_none().then(|| {
                    "not ready: this case type is not linked to a platform case type".into()
                }),
            }
        })
        .collect();
    // Links whose CRM case type is no longer in the catalog are still shown.
    for (crm, ct) in &links {
        if !types.iter().any(|t| &t.crm_id == crm) {
            out.push(LinkOut {
                crm_case_type_id: crm.clone(),
                crm_case_type_name: None,
                case_type_id: Some(ct.to_string()),
                ready: true,
                reason: None,
            });
        }
    }
    Ok(out)
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
    let mut tx = s.store.begin().await?;
    let known = store::crm_case_types(&mut tx, company, p.as_str()).await?;
    let mut v = Validator::new();
    let mut parsed = Vec::new();
    for (i, l) in body.links.iter().enumerate() {
        if !known.iter().any(|k| k.crm_id == l.crm_case_type_id) {
            v.push(
                format!("links[{i}].crm_case_type_id"),
                format!(
                    "no {} case type {}; refresh the fields first",
                    p.label(),
                    l.crm_case_type_id
                ),
            );
            continue;
        }
        let ct = match &l.case_type_id {
            None => None,
            Some(raw) => match raw.parse::<CaseTypeId>() {
                Ok(id) if named::exists(&mut tx, company, NamedKind::CaseType, raw).await? => {
                    Some(id)
                }
                _ => {
                    v.push(
                        format!("links[{i}].case_type_id"),
                        format!("no case type with id {raw}"),
                    );
                    continue;
                }
            },
        };
        parsed.push((l.crm_case_type_id.clone(), ct));
    }
    v.finish()?;
    for (crm, ct) in parsed {
        store::set_link(&mut tx, company, p.as_str(), &crm, ct).await?;
    }
    let out = links_view(&mut tx, company, p).await?;
    tx.commit().await?;
    Ok(axum::Json(out))
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
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FieldMappingsBody {
    pub crm_case_type_id: String,
    pub mappings: Vec<FieldMapping>,
}

#[derive(Debug, Deserialize, IntoParams)]
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
    let mut conn = s.store.conn().await?;
    let rows = store::field_mappings(&mut conn, company, p.as_str(), &q.crm_case_type_id).await?;
    Ok(axum::Json(FieldMappingsBody {
        crm_case_type_id: q.crm_case_type_id,
        mappings: rows
            .into_iter()
            .map(|(platform_field, crm_field_key)| FieldMapping {
                platform_field,
                crm_field_key,
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
    let mut tx = s.store.begin().await?;
    let fields = store::crm_fields(&mut tx, company, p.as_str(), &body.crm_case_type_id).await?;
    let mut v = Validator::new();
    let mut rows = Vec::new();
    for (i, m) in body.mappings.iter().enumerate() {
        match PlatformField::parse(&m.platform_field) {
            Ok(f) => {
                if rows
                    .iter()
                    .any(|(pf, _): &(String, String)| *pf == f.as_string())
                {
                    v.push(format!("mappings[{i}].platform_field"), "mapped twice");
                }
                if fields.iter().any(|cf| cf.key == m.crm_field_key) {
                    rows.push((f.as_string(), m.crm_field_key.clone()));
                } else {
                    v.push(
                        format!("mappings[{i}].crm_field_key"),
                        format!(
                            "no field `{}` on {} case type {}",
                            m.crm_field_key,
                            p.label(),
                            body.crm_case_type_id
                        ),
                    );
                }
            }
            Err(e) => v.push(
                format!("mappings[{i}].platform_field"),
                e.errors[0].message.clone(),
            ),
        }
    }
    v.finish()?;
    store::replace_field_mappings(&mut tx, company, p.as_str(), &body.crm_case_type_id, &rows)
        .await?;
    tx.commit().await?;
    Ok(axum::Json(body))
}

// ---- status mappings ----

#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StatusMapping {
    pub case_status_id: String,
    pub crm_status_id: String,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StatusMappingsBody {
    pub mappings: Vec<StatusMapping>,
}

/// How platform statuses and CRM statuses correspond.
#[utoipa::path(get, path = "/integrations/{provider}/status-mappings", tag = "integrations",
    security(("bearer" = [])), params(("provider" = String, Path)),
    responses((status = 200, body = StatusMappingsBody)))]
async fn get_status_mappings(
    State(s): State<AppState>,
    Auth(company): Auth,
    Path(raw): Path<String>,
) -> Result<axum::Json<StatusMappingsBody>, ApiError> {
    let p = provider(&raw)?;
    let mut conn = s.store.conn().await?;
    let rows = store::status_mappings(&mut conn, company, p.as_str()).await?;
    Ok(axum::Json(StatusMappingsBody {
        mappings: rows
            .into_iter()
            .map(|(st, crm)| StatusMapping {
                case_status_id: st.to_string(),
                crm_status_id: crm,
            })
            .collect(),
    }))
}

/// Replaces the status mappings. Each platform status and each CRM status appears at most once.
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
    let mut tx = s.store.begin().await?;
    let crm = store::crm_statuses(&mut tx, company, p.as_str()).await?;
    let mut v = Validator::new();
    let mut rows: Vec<(CaseStatusId, String)> = Vec::new();
    for (i, m) in body.mappings.iter().enumerate() {
        let status = match m.case_status_id.parse::<CaseStatusId>() {
            Ok(id)
                if named::exists(&mut tx, company, NamedKind::CaseStatus, &m.case_status_id)
                    .await? =>
            {
                id
            }
            _ => {
                v.push(
                    format!("mappings[{i}].case_status_id"),
                    format!("no case status with id {}", m.case_status_id),
                );
                continue;
            }
        };
        if !crm.iter().any(|c| c.crm_id == m.crm_status_id) {
            v.push(
                format!("mappings[{i}].crm_status_id"),
                format!(
                    "no {} status {}; refresh the fields first",
                    p.label(),
                    m.crm_status_id
                ),
            );
            continue;
        }
        if rows
            .iter()
            .any(|(s, c)| *s == status || *c == m.crm_status_id)
        {
            v.push(format!("mappings[{i}]"), "each status may be mapped once");
            continue;
        }
        rows.push((status, m.crm_status_id.clone()));
    }
    v.finish()?;
    store::replace_status_mappings(&mut tx, company, p.as_str(), &rows).await?;
    tx.commit().await?;
    Ok(axum::Json(body))
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

#[derive(Debug, Deserialize, IntoParams)]
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
    if let Some(o) = &q.outcome {
        if !["ok", "skipped", "error"].contains(&o.as_str()) {
            return Err(ValidationError::single("outcome", "must be ok, skipped or error").into());
        }
    }
    let mut conn = s.store.conn().await?;
    let entries =
        store::sync_log(&mut conn, company, p.as_str(), q.outcome.as_deref(), &page).await?;
    Ok(axum::Json(PageOut::from_page(entries, sync_entry_out)))
}

fn sync_entry_out(e: store::SyncEntry) -> SyncEntryOut {
    SyncEntryOut {
        id: e.id,
        direction: e.direction,
        operation: e.operation,
        record_ref: e.record_ref,
        outcome: e.outcome,
        error_kind: e.error_kind,
        message: e.message,
        created_at: e.created_at.to_string(),
    }
}

// ---- list auto-add rules ----

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RuleBody {
    /// Default `lawruler`.
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

fn rule_out(r: store::StoredRule) -> RuleOut {
    RuleOut {
        id: r.id,
        list_id: r.list_id.to_string(),
        provider: r.provider,
        case_type: r.rule.case_type,
        status: r.rule.status,
        created_at: r.created_at.to_string(),
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
    let list: ListId = path_id(&id, "list")?;
    let mut conn = s.store.conn().await?;
    named::get(&mut conn, company, NamedKind::List, &id)
        .await
        .or_not_found("list", &id)?;
    let rules = store::rules(&mut conn, company, Some(list), None).await?;
    Ok(axum::Json(rules.into_iter().map(rule_out).collect()))
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
    let list: ListId = path_id(&id, "list")?;
    let p = match body.provider.as_deref() {
        None => Provider::LawRuler,
        Some(raw) => Provider::parse(raw).ok_or_else(|| {
            ValidationError::single("provider", "must be lawruler or smartadvocate")
        })?,
    };
    let rule = AutoAddRule::parse(body.case_type.as_deref(), body.status.as_deref())?;
    let mut tx = s.store.begin().await?;
    named::get(&mut tx, company, NamedKind::List, &id)
        .await
        .or_not_found("list", &id)?;
    let stored = store::add_rule(&mut tx, company, list, p.as_str(), &rule, s.clock.now()).await?;
    tx.commit().await?;
    Ok((StatusCode::CREATED, axum::Json(rule_out(stored))))
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
    let list: ListId = path_id(&id, "list")?;
    let mut tx = s.store.begin().await?;
    store::delete_rule(&mut tx, company, list, &rule_id)
        .await
        .or_not_found("auto-add rule", &rule_id)?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}

// ---- inbound webhook ----

#[derive(Debug, Serialize, ToSchema)]
pub struct HookOut {
    /// `applied`, `duplicate` (the same content was applied before) or `ignored` (receiving is
    /// turned off; see `reason`).
    pub status: String,
    pub reason: Option<String>,
    pub case_id: Option<String>,
    pub client_id: Option<String>,
    pub case_created: Option<bool>,
    pub lists_added: Vec<String>,
    pub lists_removed: Vec<String>,
}

impl HookOut {
    fn bare(status: &str, reason: Option<String>) -> Self {
        Self {
            status: status.into(),
            reason,
            case_id: None,
            client_id: None,
            case_created: None,
            lists_added: Vec::new(),
            lists_removed: Vec::new(),
        }
    }
}

/// Reads the body's fields whatever its format: JSON, form-encoded or multipart.
async fn body_fields(state: &AppState, req: Request) -> Result<Vec<(String, String)>, ApiError> {
    let content_type = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_ascii_lowercase();
    if content_type.starts_with("multipart/form-data") {
        let mut mp = axum::extract::Multipart::from_request(req, state)
            .await
            .map_err(|e| ApiError::BadRequest(format!("the multipart body is malformed: {e}")))?;
        let mut out = Vec::new();
        while let Some(field) = mp
            .next_field()
            .await
            .map_err(|e| ApiError::BadRequest(format!("the multipart body is malformed: {e}")))?
        {
            let Some(name) = field.name().map(str::to_owned) else {
                continue;
            };
            if field.file_name().is_some() {
                continue; // files are not part of a lead
            }
            let text = field.text().await.map_err(|e| {
                ApiError::BadRequest(format!("the multipart body is malformed: {e}"))
            })?;
            out.push((name, text));
        }
        return Ok(out);
    }
    let bytes = Bytes::from_request(req, state).await.map_err(|e| {
        if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::PayloadTooLarge("the request body is larger than the limit".into())
        } else {
            ApiError::BadRequest(e.body_text())
        }
    })?;
    if content_type.starts_with("application/x-www-form-urlencoded") {
        return Ok(inbound::pairs_from_form(&bytes));
    }
    if content_type.starts_with("application/json") || content_type.is_empty() {
        return inbound::pairs_from_json(&bytes).map_err(|e| ApiError::BadRequest(e.to_string()));
    }
    Err(ApiError::UnsupportedMediaType(
        "send the lead as JSON, form-encoded or multipart/form-data".into(),
    ))
}

async fn log_hook(
    state: &AppState,
    company: CompanyId,
    outcome: SyncOutcome,
    kind: Option<ErrorKind>,
    record: Option<&str>,
    message: &str,
) -> Result<(), ApiError> {
    let mut tx = state.store.begin().await?;
    store::log(
        &mut tx,
        company,
        ingest::PROVIDER,
        &NewSyncEntry {
            direction: "inbound",
            operation: "webhook",
            record_ref: record,
            outcome,
            error_kind: kind,
            message: Some(message),
        },
        state.clock.now(),
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

/// Law Ruler's webhook (LR2–LR6). Paste `webhook_url` from `GET /api/v1/integrations/lawruler`
/// into Law Ruler. Accepts JSON, form-encoded and multipart bodies; field names match ignoring
/// case, spaces, underscores and hyphens. Optional `list_id`, `list_name`, `list_action`
/// (add | attach | detach | remove), `remove_from_list`, `campaign_id` in the URL or the body.
/// Missing required fields → 422 naming them. When receiving is turned off the answer is
/// 200 `ignored` with the reason (so Law Ruler does not retry), and nothing changes.
#[utoipa::path(post, path = "/hooks/lawruler/{token}", tag = "inbound",
    params(("token" = String, Path)),
    responses((status = 200, body = HookOut), (status = 404, body = ErrorBody),
              (status = 422, body = ErrorBody)))]
async fn lawruler_hook(
    State(s): State<AppState>,
    Path(token): Path<String>,
    req: Request,
) -> Result<axum::Json<HookOut>, ApiError> {
    let query: Vec<(String, String)> = req
        .uri()
        .query()
        .map(|q| inbound::pairs_from_form(q.as_bytes()))
        .unwrap_or_default();
    let integration = {
        let mut conn = s.store.conn().await?;
        store::by_token(&mut conn, ingest::PROVIDER, &token)
            .await?
            .ok_or_else(|| ApiError::NotFound("no such webhook".into()))?
    };
    let company = integration.company_id;
    tracing::Span::current().record("company.id", tracing::field::display(company));
    let body = body_fields(&s, req).await?;

    let t = toggles(&integration);
    let reason = if integration.credentials_sealed.is_none() {
        Some("Law Ruler is not connected".to_owned())
    } else if !t.enable_integration {
        Some("the integration is turned off (Enable Integration)".to_owned())
    } else if !t.gates().receive {
        Some("receiving data from Law Ruler is turned off".to_owned())
    } else {
        None
    };
    if let Some(reason) = reason {
        log_hook(
            &s,
            company,
            SyncOutcome::Skipped,
            Some(ErrorKind::Configuration),
            None,
            &reason,
        )
        .await?;
        return Ok(axum::Json(HookOut::bare("ignored", Some(reason))));
    }

    let lead = match inbound::parse_lead(&query, &body) {
        Ok(l) => l,
        Err(e) => {
            let record = body
                .iter()
                .find(|(k, _)| inbound::normalize_key(k) == "leadid")
                .map(|(_, v)| v.clone());
            log_hook(
                &s,
                company,
                SyncOutcome::Error,
                Some(ErrorKind::Validation),
                record.as_deref(),
                &e.to_string(),
            )
            .await?;
            let field = match &e {
                InboundError::Missing(_) => "body",
                InboundError::BadListAction(_) | InboundError::ListActionWithoutList(_) => {
                    "list_action"
                }
                InboundError::BadRemoveFlag(_) => "remove_from_list",
                InboundError::BadJson(_) | InboundError::NotAnObject => "body",
            };
            return Err(ValidationError::single(field, e.to_string()).into());
        }
    };

    let now = s.clock.now();
    let hash = inbound::content_hash(&query, &body);
    let mut tx = s.store.begin().await?;
    if !store::record_receipt(
        &mut tx,
        company,
        ingest::PROVIDER,
        &lead.lead_id,
        &hash,
        now,
    )
    .await?
    {
        // Nothing changes, but a webhook did arrive (the checklist's "first webhook received").
        store::touch_webhook(&mut tx, company, ingest::PROVIDER, now).await?;
        tx.commit().await?;
        return Ok(axum::Json(HookOut::bare(
            "duplicate",
            Some("identical to the last webhook applied for this lead".into()),
        )));
    }
    let applied = match ingest::apply_lead(&mut tx, company, &lead, now).await {
        Ok(a) => a,
        Err(e) => {
            drop(tx); // rolled back: nothing of this webhook is kept
            let (kind, err) = match e {
                IngestError::Invalid(v) => (ErrorKind::Validation, ApiError::Validation(v)),
                // A uniqueness conflict here means another webhook for the same contact or
                // mapping won a race: Law Ruler should simply send again, so 503, not 409.
                IngestError::Store(casebridge_store::StoreError::Conflict(m)) => (
                    ErrorKind::Transient,
                    ApiError::Unavailable(format!(
                        "a concurrent update got there first ({m}); send again"
                    )),
                ),
                IngestError::Store(e) => (ErrorKind::Transient, ApiError::from(e)),
            };
            log_hook(
                &s,
                company,
                SyncOutcome::Error,
                Some(kind),
                Some(&lead.lead_id),
                &err.to_string(),
            )
            .await?;
            return Err(err);
        }
    };
    store::touch_webhook(&mut tx, company, ingest::PROVIDER, now).await?;
    let message = if applied.auto_linked.is_empty() {
        format!("lead {} applied", lead.lead_id)
    } else {
        format!(
            "lead {} applied; {}",
            lead.lead_id,
            applied.auto_linked.join("; ")
        )
    };
    store::log(
        &mut tx,
        company,
        ingest::PROVIDER,
        &NewSyncEntry {
            direction: "inbound",
            operation: "webhook",
            record_ref: Some(&lead.lead_id),
            outcome: SyncOutcome::Ok,
            error_kind: None,
            message: Some(&message),
        },
        now,
    )
    .await?;
    tx.commit().await?;
    Ok(axum::Json(HookOut {
        status: "applied".into(),
        reason: None,
        case_id: Some(applied.case_id.to_string()),
        client_id: Some(applied.client_id.to_string()),
        case_created: Some(applied.case_created),
        lists_added: applied.lists_added.iter().map(|l| l.to_string()).collect(),
        lists_removed: applied
            .lists_removed
            .iter()
            .map(|l| l.to_string())
            .collect(),
    }))
}
