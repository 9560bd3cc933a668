//! The sync engine's own endpoints: monitoring (SYNC3: `GET …/monitoring`), the conflict log of two-way sync (SYNC2: `GET
//! /integrations/{provider}/conflicts`, `POST …/conflicts/{id}/restore`), the dry run with a
//! sample record (SYNC4: `POST …/test`) and the resync of one case it previews (`POST
//! …/resync`).

use axum::extract::State;
use casebridge_app::integrations as svc_integrations;
use casebridge_app::sync::{
    self as svc, Conflict, ConflictFilter, InboundPlan, OutboundPlan, PlannedOperation,
    PlannedRequest, Sample,
};
use casebridge_domain::ids::CaseId;
use casebridge_domain::sync::Side;
use casebridge_domain::ValidationError;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::dto::{page_request, CaseOut, PageOut};
use crate::error::{ApiError, ErrorBody};
use crate::extract::{Auth, Json, Path, Query};
use crate::routes::integrations::{provider, OperationOut, SyncEntryOut};
use crate::AppState;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_conflicts))
        .routes(routes!(restore_conflict))
        .routes(routes!(get_monitoring))
        .routes(routes!(test_sample))
        .routes(routes!(resync_case))
}

/// One conflict: both sides changed a field since they last agreed, and now differ.
#[derive(Debug, Serialize, ToSchema)]
pub struct ConflictOut {
    pub id: String,
    pub case_id: String,
    /// The CRM record (Law Ruler Lead ID, SmartAdvocate case number).
    pub record_ref: String,
    /// The synced field (`status`).
    pub field: String,
    /// The value both sides last agreed on, as the platform names it (`null`: never agreed).
    pub base_value: Option<String>,
    pub platform_value: Option<String>,
    pub crm_value: Option<String>,
    /// The rule that fired: `platform_wins`, `crm_wins`, `most_recent`, or `most_recent,
    /// fallback crm_wins (…)` when a side had no change time.
    pub rule: String,
    /// `platform` or `crm`.
    pub winner: String,
    /// `automatic`: the configured rule decided it.
    pub action: String,
    /// Whether the losing value can be restored (it was not yet, and there is one).
    pub restorable: bool,
    pub restored_at: Option<String>,
    pub restored_by: Option<String>,
    pub created_at: String,
}

impl From<Conflict> for ConflictOut {
    fn from(c: Conflict) -> Self {
        Self {
            restorable: c.restored_at.is_none() && c.restore_value.is_some(),
            id: c.id,
            case_id: c.case_id.to_string(),
            record_ref: c.record_ref,
            field: c.field,
            base_value: c.base_value,
            platform_value: c.platform_value,
            crm_value: c.crm_value,
            rule: c.rule,
            winner: c.winner.as_str().into(),
            action: c.action,
            restored_at: c.restored_at.map(crate::dto::time),
            restored_by: c.restored_by,
            created_at: crate::dto::time(c.created_at),
        }
    }
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
struct ConflictsQuery {
    /// Only this case's conflicts.
    case_id: Option<String>,
    /// Only conflicts on this field (`status`).
    field: Option<String>,
    /// Only conflicts this side won: `platform` or `crm`.
    winner: Option<String>,
    /// `true`: only restored ones; `false`: only those not restored.
    restored: Option<bool>,
    cursor: Option<String>,
    limit: Option<u32>,
}

/// Every conflict with this CRM, newest first, however it was decided (SYNC2).
#[utoipa::path(get, path = "/integrations/{provider}/conflicts", tag = "integrations",
    security(("bearer" = [])), params(("provider" = String, Path), ConflictsQuery),
    responses((status = 200, body = PageOut<ConflictOut>), (status = 422, body = ErrorBody)))]
async fn list_conflicts(
    State(s): State<AppState>,
    Auth(company): Auth,
    Path(raw): Path<String>,
    Query(q): Query<ConflictsQuery>,
) -> Result<axum::Json<PageOut<ConflictOut>>, ApiError> {
    let p = provider(&raw)?;
    let case_id = q
        .case_id
        .as_deref()
        .map(|c| {
            c.parse::<CaseId>()
                .map_err(|_| ValidationError::single("case_id", "is not a case id"))
        })
        .transpose()?;
    let winner = q
        .winner
        .as_deref()
        .map(|w| {
            Side::parse(w).ok_or_else(|| ValidationError::single("winner", "use platform or crm"))
        })
        .transpose()?;
    let filter = ConflictFilter {
        case_id,
        field: q.field,
        winner,
        restored: q.restored,
    };
    let page = page_request(q.cursor, q.limit)?;
    let conflicts = svc::conflicts(&s.app, company, p, &filter, &page).await?;
    Ok(axum::Json(PageOut::from_page(conflicts, ConflictOut::from)))
}

/// What a restore did: the conflict, now restored, and the case with the restored value.
#[derive(Debug, Serialize, ToSchema)]
pub struct RestoredOut {
    pub conflict: ConflictOut,
    pub case: CaseOut,
}

/// Restores a conflict's losing value: it is applied to the case as a new platform change (and
/// sent to the CRM like any other), recorded in the audit log, and the conflict is marked
/// restored. A conflict restores once (409 again).
#[utoipa::path(post, path = "/integrations/{provider}/conflicts/{id}/restore", tag = "integrations",
    security(("bearer" = [])), params(("provider" = String, Path), ("id" = String, Path)),
    responses((status = 200, body = RestoredOut), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody)))]
async fn restore_conflict(
    State(s): State<AppState>,
    Auth(company): Auth,
    Path((raw, id)): Path<(String, String)>,
) -> Result<axum::Json<RestoredOut>, ApiError> {
    let p = provider(&raw)?;
    let r = svc::restore(&s.app, company, p, &id, "api").await?;
    Ok(axum::Json(RestoredOut {
        conflict: r.conflict.into(),
        case: r.case.into(),
    }))
}

// ---- dry run (SYNC4) and resync ----

/// A sample to test with: a platform case, a CRM record as the CRM's webhook carries it (field
/// name → value), or both.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SampleBody {
    /// What syncing this case to the CRM sends now.
    pub case_id: Option<String>,
    /// What receiving this record changes on the platform (the fields of a webhook).
    #[schema(value_type = Object)]
    pub record: Option<serde_json::Map<String, serde_json::Value>>,
}

/// A request as it would be sent (secrets `[redacted]`).
#[derive(Debug, Serialize, ToSchema)]
pub struct PlannedRequestOut {
    pub operation: String,
    pub method: String,
    pub url: String,
    /// `form`, `query`, `json` or `multipart`.
    pub carried_in: String,
    /// `[name, value]` pairs, in order.
    pub params: Vec<(String, String)>,
    #[schema(value_type = Object)]
    pub body: Option<serde_json::Value>,
    pub authorization: Option<String>,
    pub note: Option<String>,
}

impl From<PlannedRequest> for PlannedRequestOut {
    fn from(r: PlannedRequest) -> Self {
        Self {
            operation: r.operation,
            method: r.method,
            url: r.url,
            carried_in: r.carried_in,
            params: r.params,
            body: r.body,
            authorization: r.authorization,
            note: r.note,
        }
    }
}

/// One operation a sync records: `state` `pending` (sent, at once or at the next run) or `held`
/// (status sync off), and its requests.
#[derive(Debug, Serialize, ToSchema)]
pub struct PlannedOperationOut {
    pub operation: OperationOut,
    pub requests: Vec<PlannedRequestOut>,
    /// Why the requests cannot be shown (not connected), if they cannot.
    pub requests_error: Option<String>,
}

impl From<PlannedOperation> for PlannedOperationOut {
    fn from(p: PlannedOperation) -> Self {
        let (requests, requests_error) = match p.requests {
            Ok(r) => (r.into_iter().map(Into::into).collect(), None),
            Err(e) => (Vec::new(), Some(e)),
        };
        Self {
            operation: p.op.into(),
            requests,
            requests_error,
        }
    }
}

/// A kind of data the settings stop, and why.
#[derive(Debug, Serialize, ToSchema)]
pub struct BlockedOut {
    pub kind: String,
    pub reason: String,
}

/// What syncing the case sends.
#[derive(Debug, Serialize, ToSchema)]
pub struct OutboundPlanOut {
    pub case_id: String,
    /// The CRM record the case is linked to (`null`: not linked, nothing is sent).
    pub record_ref: Option<String>,
    pub operations: Vec<PlannedOperationOut>,
    /// Sync-log lines it writes: what is skipped, and why.
    pub log: Vec<SyncEntryOut>,
    pub blocked: Vec<BlockedOut>,
}

impl From<OutboundPlan> for OutboundPlanOut {
    fn from(p: OutboundPlan) -> Self {
        Self {
            case_id: p.case_id.to_string(),
            record_ref: p.record_ref,
            operations: p.operations.into_iter().map(Into::into).collect(),
            log: p.log.into_iter().map(Into::into).collect(),
            blocked: p
                .blocked
                .into_iter()
                .map(|(k, reason)| BlockedOut {
                    kind: k.as_str().into(),
                    reason,
                })
                .collect(),
        }
    }
}

/// A value that would change.
#[derive(Debug, Serialize, ToSchema)]
pub struct ChangeOut {
    /// `case.name`, `case.case_type`, `case.status`, `client.<field>` or `custom.<name>`.
    pub field: String,
    pub from: Option<String>,
    pub to: Option<String>,
}

/// What receiving the record changes.
#[derive(Debug, Serialize, ToSchema)]
pub struct InboundPlanOut {
    pub record_ref: String,
    /// Why the CRM's webhook would be ignored now (then nothing else is shown).
    pub ignored: Option<String>,
    /// The platform case it updates (`null` when it creates one).
    pub case_id: Option<String>,
    pub creates_case: bool,
    pub creates_client: bool,
    pub changes: Vec<ChangeOut>,
    /// Conflicts it would hit, with the side that would win.
    pub conflicts: Vec<ConflictOut>,
    pub log: Vec<SyncEntryOut>,
    /// Mappings it would make because a CRM value has none.
    pub auto_linked: Vec<String>,
}

impl From<InboundPlan> for InboundPlanOut {
    fn from(p: InboundPlan) -> Self {
        Self {
            record_ref: p.record_ref,
            ignored: p.ignored,
            case_id: p.case_id.map(|c| c.to_string()),
            creates_case: p.creates_case,
            creates_client: p.creates_client,
            changes: p
                .changes
                .into_iter()
                .map(|(field, from, to)| ChangeOut { field, from, to })
                .collect(),
            conflicts: p.conflicts.into_iter().map(Into::into).collect(),
            log: p.log.into_iter().map(Into::into).collect(),
            auto_linked: p.auto_linked,
        }
    }
}

/// A dry run's answer. `changed_nothing` is always true: nothing was written on either side.
#[derive(Debug, Serialize, ToSchema)]
pub struct DryRunOut {
    pub changed_nothing: bool,
    pub outbound: Option<OutboundPlanOut>,
    pub inbound: Option<InboundPlanOut>,
}

/// Test with a sample record (SYNC4): what a sync would do right now, changing nothing on
/// either side. With `case_id`: the operations syncing that case records (its status and mapped
/// fields as they stand, as a resync sends them), each with the exact requests (secrets
/// redacted), the skips with their reasons and the kinds the settings stop. With `record`
/// (fields as the CRM's webhook sends them): what receiving it changes on the platform, the
/// conflicts it hits and who wins. The sync's own code runs in a transaction that is rolled
/// back; no request is sent to the CRM, no job is queued and no cursor moves.
#[utoipa::path(post, path = "/integrations/{provider}/test", tag = "integrations",
    security(("bearer" = [])), params(("provider" = String, Path)), request_body = SampleBody,
    responses((status = 200, body = DryRunOut), (status = 404, body = ErrorBody),
        (status = 422, body = ErrorBody)))]
async fn test_sample(
    State(s): State<AppState>,
    Auth(company): Auth,
    Path(raw): Path<String>,
    Json(b): Json<SampleBody>,
) -> Result<axum::Json<DryRunOut>, ApiError> {
    let p = provider(&raw)?;
    let sample = Sample {
        case_id: b
            .case_id
            .as_deref()
            .map(|c| {
                c.parse::<CaseId>()
                    .map_err(|_| ValidationError::single("case_id", "is not a case id"))
            })
            .transpose()?,
        record: b.record.map(|m| {
            m.into_iter()
                .map(|(k, v)| {
                    let text = match v {
                        serde_json::Value::String(s) => s,
                        serde_json::Value::Null => String::new(),
                        other => other.to_string(),
                    };
                    (k, text)
                })
                .collect()
        }),
    };
    let run = svc::dry_run(&s.app, company, p, &sample).await?;
    Ok(axum::Json(DryRunOut {
        changed_nothing: true,
        outbound: run.outbound.map(Into::into),
        inbound: run.inbound.map(Into::into),
    }))
}

/// The case to resync.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ResyncBody {
    pub case_id: String,
}

/// Syncs one case to the CRM now: its status and mapped fields as they stand, as `POST …/test`
/// with its `case_id` showed (the same planner, committed). The operations go through the CRM
/// outbox like any other (order per record, the settings, retries).
#[utoipa::path(post, path = "/integrations/{provider}/resync", tag = "integrations",
    security(("bearer" = [])), params(("provider" = String, Path)), request_body = ResyncBody,
    responses((status = 202, body = OutboundPlanOut), (status = 404, body = ErrorBody)))]
async fn resync_case(
    State(s): State<AppState>,
    Auth(company): Auth,
    Path(raw): Path<String>,
    Json(b): Json<ResyncBody>,
) -> Result<(axum::http::StatusCode, axum::Json<OutboundPlanOut>), ApiError> {
    let p = provider(&raw)?;
    let case_id: CaseId = b
        .case_id
        .parse()
        .map_err(|_| ValidationError::single("case_id", "is not a case id"))?;
    let plan = svc::resync_case(&s.app, company, p, case_id).await?;
    Ok((axum::http::StatusCode::ACCEPTED, axum::Json(plan.into())))
}

// ---- monitoring (SYNC3) ----

/// Records synced from the CRM over a period, each counted once when it was applied or refused.
#[derive(Debug, Serialize, ToSchema)]
pub struct InboundCountsOut {
    pub created: u64,
    pub updated: u64,
    /// The same content again: nothing changed.
    pub unchanged: u64,
    /// Ignored by the settings (Enable Integration or Receive off, one way out).
    pub skipped: u64,
    /// Refused: the sync log says why.
    pub failed: u64,
}

/// Operations sent to the CRM over a period, counted when they ended.
#[derive(Debug, Serialize, ToSchema)]
pub struct OutboundCountsOut {
    pub sent: u64,
    /// Not sent: a toggle went off, a conflict the CRM won superseded it, or a non-retroactive
    /// resume dropped it.
    pub skipped: u64,
    /// Refused by the CRM.
    pub failed: u64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RecordCountsOut {
    pub inbound: InboundCountsOut,
    pub outbound: OutboundCountsOut,
}

impl From<svc_integrations::RecordCounts> for RecordCountsOut {
    fn from(c: svc_integrations::RecordCounts) -> Self {
        Self {
            inbound: InboundCountsOut {
                created: c.created,
                updated: c.updated,
                unchanged: c.unchanged,
                skipped: c.skipped,
                failed: c.failed,
            },
            outbound: OutboundCountsOut {
                sent: c.sent,
                skipped: c.sent_skipped,
                failed: c.sent_failed,
            },
        }
    }
}

/// One kind of problem, with how often it happened and what to do.
#[derive(Debug, Serialize, ToSchema)]
pub struct ProblemOut {
    /// `inbound` or `outbound`.
    pub direction: String,
    /// `transient` (passes on retry), `configuration` (needs an admin) or `validation` (the
    /// record itself); `null` for lines logged without one.
    pub class: Option<String>,
    pub count: u64,
    pub first_seen: String,
    pub last_seen: String,
    /// The newest line of the kind: its record and readable reason.
    pub example: SyncEntryOut,
    /// `open`, or `resolved` once the same operation succeeded after it.
    pub state: String,
    pub hint: String,
}

/// An integration's sync, measured (SYNC3).
#[derive(Debug, Serialize, ToSchema)]
pub struct MonitoringOut {
    /// The newest of: a webhook received, a pull, an operation sent.
    pub last_sync_at: Option<String>,
    pub last_hour: RecordCountsOut,
    pub last_day: RecordCountsOut,
    /// `null` when not connected.
    pub since_connect: Option<RecordCountsOut>,
    /// Operations waiting to be sent (pending, held or blocked); `GET …/operations` lists them.
    pub pending_operations: u64,
    pub problems: Vec<ProblemOut>,
}

/// What the sync did, measured (SYNC3): records created, updated, unchanged, skipped and failed
/// from the CRM and operations sent, skipped and failed to it, over the last hour, the last day
/// and since connecting (each record counted once, in the transaction that applied, sent or
/// refused it); the operations waiting; and the problems grouped by kind, each with a count,
/// first and last seen, an example record with its reason, its class, a fix hint and whether it
/// is still open.
#[utoipa::path(get, path = "/integrations/{provider}/monitoring", tag = "integrations",
    security(("bearer" = [])), params(("provider" = String, Path)),
    responses((status = 200, body = MonitoringOut), (status = 404, body = ErrorBody)))]
async fn get_monitoring(
    State(s): State<AppState>,
    Auth(company): Auth,
    Path(raw): Path<String>,
) -> Result<axum::Json<MonitoringOut>, ApiError> {
    let p = provider(&raw)?;
    let m = svc_integrations::monitoring(&s.app, company, p).await?;
    Ok(axum::Json(MonitoringOut {
        last_sync_at: m.last_sync_at.map(crate::dto::time),
        last_hour: m.records_last_hour.into(),
        last_day: m.records_last_day.into(),
        since_connect: m.records_since_connect.map(Into::into),
        pending_operations: m.pending,
        problems: m
            .issues
            .into_iter()
            .map(|i| ProblemOut {
                direction: i.direction,
                class: i.error_kind,
                count: i.count,
                first_seen: crate::dto::time(i.first_seen),
                last_seen: crate::dto::time(i.last_seen),
                example: i.example.into(),
                state: if i.resolved { "resolved" } else { "open" }.into(),
                hint: i.hint,
            })
            .collect(),
    }))
}
