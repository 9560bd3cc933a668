//! List membership: `/lists/{id}/cases`.

use axum::extract::State;
use axum::http::StatusCode;
use casebridge_app::lists;
use casebridge_domain::ids::{CaseId, ListId};
use casebridge_domain::ValidationError;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::dto::{page_request, AddCaseToList, CaseOut, PageOut, PageQuery};
use crate::error::{ApiError, ErrorBody};
use crate::extract::{path_id, Auth, Json, Path, Query};
use crate::AppState;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_members, add_member))
        .routes(routes!(remove_member))
}

/// The cases on a list.
#[utoipa::path(get, path = "/lists/{id}/cases", tag = "lists", security(("bearer" = [])),
    params(("id" = String, Path), PageQuery),
    responses((status = 200, body = PageOut<CaseOut>), (status = 404, body = ErrorBody)))]
async fn list_members(
    State(s): State<AppState>,
    Auth(company): Auth,
    Path(id): Path<String>,
    Query(q): Query<PageQuery>,
) -> Result<axum::Json<PageOut<CaseOut>>, ApiError> {
    let list: ListId = path_id(&id, "list")?;
    let page = page_request(q.cursor, q.limit)?;
    let found = lists::cases(&s.app, company, list, &page).await?;
    Ok(axum::Json(PageOut::from_page(found, Into::into)))
}

/// Puts a case on a list: 201 when added, 200 when it was already there.
#[utoipa::path(post, path = "/lists/{id}/cases", tag = "lists", security(("bearer" = [])),
    params(("id" = String, Path)), request_body = AddCaseToList,
    responses((status = 201), (status = 200), (status = 404, body = ErrorBody),
              (status = 422, body = ErrorBody)))]
async fn add_member(
    State(s): State<AppState>,
    Auth(company): Auth,
    Path(id): Path<String>,
    Json(body): Json<AddCaseToList>,
) -> Result<StatusCode, ApiError> {
    let list: ListId = path_id(&id, "list")?;
    let case: CaseId = body.case_id.parse().map_err(|_| {
        ValidationError::single("case_id", format!("`{}` is not an id", body.case_id))
    })?;
    let added = lists::add_case(&s.app, company, list, case).await?;
    Ok(if added {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    })
}

/// Takes a case off a list.
#[utoipa::path(delete, path = "/lists/{id}/cases/{case_id}", tag = "lists",
    security(("bearer" = [])), params(("id" = String, Path), ("case_id" = String, Path)),
    responses((status = 204), (status = 404, body = ErrorBody)))]
async fn remove_member(
    State(s): State<AppState>,
    Auth(company): Auth,
    Path((id, case_id)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    let list: ListId = path_id(&id, "list")?;
    let case: CaseId = path_id(&case_id, "case")?;
    lists::remove_case(&s.app, company, list, case).await?;
    Ok(StatusCode::NO_CONTENT)
}
