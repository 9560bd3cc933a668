use std::str::FromStr;

use axum::extract::State;
use axum::http::StatusCode;
use casebridge_app::cases;
use casebridge_domain::error::Validator;
use casebridge_domain::ids::CaseId;
use casebridge_domain::records::{
    parse_external_refs, CaseFilter, CasePatch, CustomFields, ExternalRef, Name, NewCase,
};
use casebridge_domain::ValidationError;
use serde::Deserialize;
use utoipa::IntoParams;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::dto::{
    page_request, ref_pairs, CaseOut, CreateCase, ExternalRefBody, PageOut, RefQuery, UpdateCase,
};
use crate::error::{ApiError, ErrorBody};
use crate::extract::{path_id, Auth, Json, Path, Query};
use crate::AppState;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_cases, create_case))
        .routes(routes!(case_by_external_ref))
        .routes(routes!(get_case, update_case, delete_case))
        .routes(routes!(add_case_ref))
}

/// Parses an id given in a body or query; a malformed one is a validation error on that field.
pub(super) fn id_field<T: FromStr>(v: &mut Validator, field: &str, raw: Option<&str>) -> Option<T> {
    let raw = raw?;
    match raw.parse() {
        Ok(id) => Some(id),
        Err(_) => {
            v.push(field, format!("`{raw}` is not an id"));
            None
        }
    }
}

fn parse_new(body: CreateCase) -> Result<NewCase, ValidationError> {
    let mut v = Validator::new();
    let name = v.check(Name::parse("name", &body.name));
    let case_type_id = id_field(&mut v, "case_type_id", Some(&body.case_type_id));
    let case_status_id = id_field(&mut v, "case_status_id", body.case_status_id.as_deref());
    let client_id = id_field(&mut v, "client_id", body.client_id.as_deref());
    let campaign_id = id_field(&mut v, "campaign_id", body.campaign_id.as_deref());
    let custom_fields = match body.custom_fields {
        None | Some(serde_json::Value::Null) => Some(CustomFields::default()),
        Some(raw) => v.check(CustomFields::parse(raw)),
    };
    let external_refs = parse_external_refs(&ref_pairs(&body.external_refs), &mut v);
    v.finish()?;
    Ok(NewCase {
        name: name.expect("validated"),
        case_type_id: case_type_id.expect("validated"),
        case_status_id,
        client_id,
        campaign_id,
        custom_fields: custom_fields.expect("validated"),
        external_refs,
    })
}

fn parse_patch(body: UpdateCase) -> Result<CasePatch, ValidationError> {
    let mut v = Validator::new();
    let patch = CasePatch {
        name: body.name.and_then(|n| v.check(Name::parse("name", &n))),
        case_type_id: id_field(&mut v, "case_type_id", body.case_type_id.as_deref()),
        case_status_id: body
            .case_status_id
            .map(|o| id_field(&mut v, "case_status_id", o.as_deref())),
        client_id: body
            .client_id
            .map(|o| id_field(&mut v, "client_id", o.as_deref())),
        campaign_id: body
            .campaign_id
            .map(|o| id_field(&mut v, "campaign_id", o.as_deref())),
        custom_fields: body
            .custom_fields
            .and_then(|raw| v.check(CustomFields::parse(raw))),
    };
    v.finish()?;
    Ok(patch)
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
struct CaseQuery {
    case_type_id: Option<String>,
    case_status_id: Option<String>,
    client_id: Option<String>,
    cursor: Option<String>,
    limit: Option<u32>,
}

/// Lists cases, optionally filtered by case type, status and client.
#[utoipa::path(get, path = "/cases", tag = "cases", security(("bearer" = [])),
    params(CaseQuery),
    responses((status = 200, body = PageOut<CaseOut>), (status = 422, body = ErrorBody)))]
async fn list_cases(
    State(s): State<AppState>,
    Auth(company): Auth,
    Query(q): Query<CaseQuery>,
) -> Result<axum::Json<PageOut<CaseOut>>, ApiError> {
    let page = page_request(q.cursor, q.limit)?;
    let mut v = Validator::new();
    let filter = CaseFilter {
        case_type_id: id_field(&mut v, "case_type_id", q.case_type_id.as_deref()),
        case_status_id: id_field(&mut v, "case_status_id", q.case_status_id.as_deref()),
        client_id: id_field(&mut v, "client_id", q.client_id.as_deref()),
        ..CaseFilter::default()
    };
    v.finish()?;
    let found = cases::list(&s.app, company, &filter, &page).await?;
    Ok(axum::Json(PageOut::from_page(found, Into::into)))
}

/// Creates a case. The case type, status and client must exist in the company.
#[utoipa::path(post, path = "/cases", tag = "cases", security(("bearer" = [])),
    request_body = CreateCase,
    responses((status = 201, body = CaseOut), (status = 409, body = ErrorBody),
              (status = 422, body = ErrorBody)))]
async fn create_case(
    State(s): State<AppState>,
    Auth(company): Auth,
    Json(body): Json<CreateCase>,
) -> Result<(StatusCode, axum::Json<CaseOut>), ApiError> {
    let new = parse_new(body)?;
    let case = cases::create(&s.app, company, &new).await?;
    Ok((StatusCode::CREATED, axum::Json(case.into())))
}

/// Finds the case that carries an external ref, e.g. a Law Ruler Lead ID.
#[utoipa::path(get, path = "/cases/by-external-ref", tag = "cases", security(("bearer" = [])),
    params(RefQuery),
    responses((status = 200, body = CaseOut), (status = 404, body = ErrorBody)))]
async fn case_by_external_ref(
    State(s): State<AppState>,
    Auth(company): Auth,
    Query(q): Query<RefQuery>,
) -> Result<axum::Json<CaseOut>, ApiError> {
    let case = cases::by_external_ref(&s.app, company, &q.provider, &q.external_id).await?;
    Ok(axum::Json(case.into()))
}

#[utoipa::path(get, path = "/cases/{id}", tag = "cases", security(("bearer" = [])),
    params(("id" = String, Path)),
    responses((status = 200, body = CaseOut), (status = 404, body = ErrorBody)))]
async fn get_case(
    State(s): State<AppState>,
    Auth(company): Auth,
    Path(id): Path<String>,
) -> Result<axum::Json<CaseOut>, ApiError> {
    let case_id: CaseId = path_id(&id, "case")?;
    let case = cases::get(&s.app, company, case_id).await?;
    Ok(axum::Json(case.into()))
}

/// Updates a case. `custom_fields` is merged; `null` clears status or client.
#[utoipa::path(patch, path = "/cases/{id}", tag = "cases", security(("bearer" = [])),
    params(("id" = String, Path)), request_body = UpdateCase,
    responses((status = 200, body = CaseOut), (status = 404, body = ErrorBody),
              (status = 422, body = ErrorBody)))]
async fn update_case(
    State(s): State<AppState>,
    Auth(company): Auth,
    Path(id): Path<String>,
    Json(body): Json<UpdateCase>,
) -> Result<axum::Json<CaseOut>, ApiError> {
    let case_id: CaseId = path_id(&id, "case")?;
    let patch = parse_patch(body)?;
    let case = cases::update(&s.app, company, case_id, &patch).await?;
    Ok(axum::Json(case.into()))
}

/// Deletes a case, its list memberships and its external refs.
#[utoipa::path(delete, path = "/cases/{id}", tag = "cases", security(("bearer" = [])),
    params(("id" = String, Path)),
    responses((status = 204), (status = 404, body = ErrorBody)))]
async fn delete_case(
    State(s): State<AppState>,
    Auth(company): Auth,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let case_id: CaseId = path_id(&id, "case")?;
    cases::delete(&s.app, company, case_id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Attaches an external ref to a case. 409 if another case holds it.
#[utoipa::path(post, path = "/cases/{id}/external-refs", tag = "cases",
    security(("bearer" = [])), params(("id" = String, Path)), request_body = ExternalRefBody,
    responses((status = 200, body = CaseOut), (status = 404, body = ErrorBody),
              (status = 409, body = ErrorBody)))]
async fn add_case_ref(
    State(s): State<AppState>,
    Auth(company): Auth,
    Path(id): Path<String>,
    Json(body): Json<ExternalRefBody>,
) -> Result<axum::Json<CaseOut>, ApiError> {
    let case_id: CaseId = path_id(&id, "case")?;
    let r = ExternalRef::parse("external_ref", &body.provider, &body.external_id)?;
    let case = cases::add_ref(&s.app, company, case_id, r).await?;
    Ok(axum::Json(case.into()))
}
