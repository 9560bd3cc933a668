use axum::extract::State;
use axum::http::StatusCode;
use casebridge_app::company as companies;
use casebridge_domain::company::{CompanyPatch, TimeZoneName};
use casebridge_domain::error::Validator;
use casebridge_domain::ids::ApiKeyId;
use casebridge_domain::records::Name;
use secrecy::ExposeSecret;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::dto::{
    page_request, ApiKeyOut, CompanyOut, CreateApiKey, CreatedApiKeyOut, PageOut, PageQuery,
    UpdateCompany,
};
use crate::error::{ApiError, ErrorBody};
use crate::extract::{path_id, Auth, Json, Path, Query};
use crate::AppState;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(get_company, update_company))
        .routes(routes!(list_api_keys, create_api_key))
        .routes(routes!(revoke_api_key))
}

/// The company the API key belongs to.
#[utoipa::path(get, path = "/company", tag = "company", security(("bearer" = [])),
    responses((status = 200, body = CompanyOut), (status = 401, body = ErrorBody)))]
async fn get_company(
    State(s): State<AppState>,
    Auth(company): Auth,
) -> Result<axum::Json<CompanyOut>, ApiError> {
    Ok(axum::Json(companies::get(&s.app, company).await?.into()))
}

/// Renames the company or changes its time zone.
#[utoipa::path(patch, path = "/company", tag = "company", security(("bearer" = [])),
    request_body = UpdateCompany,
    responses((status = 200, body = CompanyOut), (status = 422, body = ErrorBody)))]
async fn update_company(
    State(s): State<AppState>,
    Auth(company): Auth,
    Json(body): Json<UpdateCompany>,
) -> Result<axum::Json<CompanyOut>, ApiError> {
    let mut v = Validator::new();
    let patch = CompanyPatch {
        name: body.name.and_then(|n| v.check(Name::parse("name", &n))),
        timezone: body
            .timezone
            .and_then(|t| v.check(TimeZoneName::parse("timezone", &t))),
    };
    v.finish()?;
    let updated = companies::update(&s.app, company, &patch).await?;
    Ok(axum::Json(updated.into()))
}

/// The company's API keys (never the keys themselves).
#[utoipa::path(get, path = "/api-keys", tag = "company", security(("bearer" = [])),
    params(PageQuery), responses((status = 200, body = PageOut<ApiKeyOut>)))]
async fn list_api_keys(
    State(s): State<AppState>,
    Auth(company): Auth,
    Query(q): Query<PageQuery>,
) -> Result<axum::Json<PageOut<ApiKeyOut>>, ApiError> {
    let page = page_request(q.cursor, q.limit)?;
    let keys = companies::api_keys(&s.app, company, &page).await?;
    Ok(axum::Json(PageOut::from_page(keys, Into::into)))
}

/// Creates an API key. The response is the only time the key is shown.
#[utoipa::path(post, path = "/api-keys", tag = "company", security(("bearer" = [])),
    request_body = CreateApiKey,
    responses((status = 201, body = CreatedApiKeyOut), (status = 422, body = ErrorBody)))]
async fn create_api_key(
    State(s): State<AppState>,
    Auth(company): Auth,
    Json(body): Json<CreateApiKey>,
) -> Result<(StatusCode, axum::Json<CreatedApiKeyOut>), ApiError> {
    let name = Name::parse("name", &body.name)?;
    let created = companies::create_api_key(&s.app, company, &name).await?;
    Ok((
        StatusCode::CREATED,
        axum::Json(CreatedApiKeyOut {
            info: created.info.into(),
            key: created.key.expose_secret().to_owned(),
        }),
    ))
}

/// Revokes an API key; requests with it fail from now on.
#[utoipa::path(delete, path = "/api-keys/{id}", tag = "company", security(("bearer" = [])),
    params(("id" = String, Path)),
    responses((status = 200, body = ApiKeyOut), (status = 404, body = ErrorBody)))]
async fn revoke_api_key(
    State(s): State<AppState>,
    Auth(company): Auth,
    Path(id): Path<String>,
) -> Result<axum::Json<ApiKeyOut>, ApiError> {
    let key: ApiKeyId = path_id(&id, "API key")?;
    let info = companies::revoke_api_key(&s.app, company, key).await?;
    Ok(axum::Json(info.into()))
}
