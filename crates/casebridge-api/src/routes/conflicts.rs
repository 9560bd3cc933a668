//! The conflict log of two-way sync (SYNC2): `GET /integrations/{provider}/conflicts` and
//! `POST …/conflicts/{id}/restore`.

use axum::extract::State;
use casebridge_app::sync::{self as svc, Conflict, ConflictFilter};
use casebridge_domain::ids::CaseId;
use casebridge_domain::sync::Side;
use casebridge_domain::ValidationError;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::dto::{page_request, CaseOut, PageOut};
use crate::error::{ApiError, ErrorBody};
use crate::extract::{Auth, Path, Query};
use crate::routes::integrations::provider;
use crate::AppState;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_conflicts))
        .routes(routes!(restore_conflict))
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
