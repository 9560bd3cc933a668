//! Manual import of a CRM's existing records (SPEC LR14), from an export file or from the
//! CRM's API. The handlers read the request; `casebridge_app::imports` checks and stores the
//! import with its job, and a worker applies the rows. The handler never calls the CRM.

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, FromRequest, Request, State};
use axum::http::{header, StatusCode};
use casebridge_app::imports::{self as svc, Import, ImportOrigin, ImportStatus};
use casebridge_app::integrations::provider;
use casebridge_domain::integrations::Provider;
use casebridge_domain::ValidationError;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::dto::{page_request, PageOut};
use crate::error::{ApiError, ErrorBody};
use crate::extract::{Auth, Path, Query};
use crate::AppState;

/// Uploads may be larger than other requests: a 10,000-row export is a few megabytes.
pub const UPLOAD_LIMIT_BYTES: usize = 64 * 1024 * 1024;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(upload, list_imports))
        .routes(routes!(get_import))
        .layer(DefaultBodyLimit::max(UPLOAD_LIMIT_BYTES))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RowErrorOut {
    /// The 1-based data row number; the header row is not counted (data row 1 is the file's
    /// second line when no value spans lines).
    pub row: u64,
    pub message: String,
}

/// Starts an import from the Law Ruler API instead of a file.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ImportFromApiIn {
    /// `<provider>_api`: the provider of the path, then `_api`.
    pub source: String,
    /// RFC 3339 with an offset (`2025-01-01T00:00:00Z`): import only the leads created or
    /// changed in Law Ruler at or after this time. Default: every lead.
    pub since: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ImportOut {
    pub id: String,
    pub provider: String,
    /// `queued`, `running`, `done` or `failed`.
    pub status: String,
    /// Where the rows come from: `csv` (an uploaded file) or `<provider>_api` (read from Law
    /// Ruler by the import's job).
    pub source: String,
    /// What the import is doing: `fetching` (an import from the Law Ruler API that has not read
    /// the leads yet; `total_rows` is 0 until it has), `applying` (queued or applying rows), or
    /// `finished` (`status` is `done` or `failed`).
    pub phase: String,
    /// For `<provider>_api`: the `since` asked for (none: every lead).
    pub since: Option<String>,
    /// For `<provider>_api`: when the leads were read from Law Ruler.
    pub fetched_at: Option<String>,
    pub file_name: Option<String>,
    /// Data rows in the file (the header is not counted), or leads read from Law Ruler (0 while
    /// `phase` is `fetching`).
    pub total_rows: u64,
    pub processed_rows: u64,
    /// Cases created.
    pub created: u64,
    /// Existing cases (same Lead ID) updated.
    pub updated: u64,
    /// Rows identical to what was last applied for their Lead ID: nothing changed.
    pub unchanged: u64,
    pub failed: u64,
    /// The failed rows (the first 1000), in file order.
    pub errors: Vec<RowErrorOut>,
    /// Why the import as a whole failed, when `status` is `failed`.
    pub failure: Option<String>,
    pub created_at: String,
    pub started_at: Option<String>,
    pub finished_at: Option<String>,
}

/// `<provider>_api`: an import read from the CRM's API.
fn return_api_source(provider: &str) -> String {
    Provider::parse(provider).map_or_else(|| format!("{provider}_api"), svc::api_source)
}

impl From<Import> for ImportOut {
    fn from(i: Import) -> Self {
        let phase = match (i.status, i.origin, i.fetched_at) {
            (ImportStatus::Done | ImportStatus::Failed, _, _) => "finished",
            (_, ImportOrigin::Api, None) => "fetching",
            _ => "applying",
        };
        let source = match i.origin {
            ImportOrigin::Csv => "csv".to_owned(),
            ImportOrigin::Api => return_api_source(&i.provider),
        };
        Self {
            id: i.id.to_string(),
            provider: i.provider,
            status: i.status.as_str().to_owned(),
            source,
            phase: phase.to_owned(),
            since: i.fetch_since.map(crate::dto::time),
            fetched_at: i.fetched_at.map(crate::dto::time),
            file_name: i.file_name,
            total_rows: i.total_rows,
            processed_rows: i.counts.processed,
            created: i.counts.created,
            updated: i.counts.updated,
            unchanged: i.counts.unchanged,
            failed: i.counts.failed,
            errors: i
                .errors
                .into_iter()
                .map(|e| RowErrorOut {
                    row: e.row,
                    message: e.message,
                })
                .collect(),
            failure: i.failure,
            created_at: crate::dto::time(i.created_at),
            started_at: i.started_at.map(crate::dto::time),
            finished_at: i.finished_at.map(crate::dto::time),
        }
    }
}

fn malformed(e: impl std::fmt::Display) -> ApiError {
    ApiError::BadRequest(format!("the multipart body is malformed: {e}"))
}

fn too_large() -> ApiError {
    ApiError::PayloadTooLarge(format!(
        "the file is larger than {} MiB",
        UPLOAD_LIMIT_BYTES / (1024 * 1024)
    ))
}

fn too_large_or_bad(e: axum::extract::rejection::BytesRejection) -> ApiError {
    if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
        too_large()
    } else {
        ApiError::BadRequest(e.body_text())
    }
}

fn multipart_error(e: axum::extract::multipart::MultipartError) -> ApiError {
    if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
        too_large()
    } else {
        malformed(e)
    }
}

fn content_type(req: &Request) -> String {
    req.headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_ascii_lowercase()
}

/// An import request, read from the body: a file, or a JSON request to read from the CRM's API.
enum ImportRequest {
    File(Bytes, Option<String>),
    Api(ImportFromApiIn),
}

/// Reads the request: JSON `{"source": …}` (a JSON body without `source` is not an import
/// request: 415, as for any other unsupported body), a `text/csv` body, or the `file` part of a
/// multipart form.
async fn read_request(
    state: &AppState,
    p: Provider,
    req: Request,
) -> Result<ImportRequest, ApiError> {
    let content_type = content_type(&req);
    let unsupported = || ApiError::UnsupportedMediaType(svc::what_to_send(p));
    if content_type.starts_with("application/json") {
        let body = Bytes::from_request(req, state)
            .await
            .map_err(too_large_or_bad)?;
        let value: serde_json::Value = crate::extract::json_body(&body)?;
        if value.get("source").is_none() {
            return Err(unsupported());
        }
        let api: ImportFromApiIn = serde_json::from_value(value)
            .map_err(|e| ValidationError::single("body", e.to_string()))?;
        return Ok(ImportRequest::Api(api));
    }
    if content_type.starts_with("multipart/form-data") {
        let mut mp = axum::extract::Multipart::from_request(req, state)
            .await
            .map_err(|e| malformed(e.body_text()))?;
        while let Some(field) = mp.next_field().await.map_err(multipart_error)? {
            if field.name() == Some("file") {
                let name = field.file_name().map(str::to_owned);
                let bytes = field.bytes().await.map_err(multipart_error)?;
                return Ok(ImportRequest::File(bytes, name));
            }
        }
        return Err(ValidationError::single("file", "the form has no `file` part").into());
    }
    let csv_like = ["text/csv", "application/csv", "text/plain"]
        .iter()
        .any(|t| content_type.starts_with(t));
    if !csv_like {
        return Err(unsupported());
    }
    let bytes = Bytes::from_request(req, state)
        .await
        .map_err(too_large_or_bad)?;
    Ok(ImportRequest::File(bytes, None))
}

/// Starts an import of existing Law Ruler leads (LR14), from a CSV file or from the Law Ruler API.
///
/// **CSV file**: one row per lead, a header row naming the columns as Law Ruler does (the ten
/// required fields: Lead ID, Case Type ID, Case Type, Status ID, Status, Full Name, Created Date,
/// Primary Contact ID, First Name, Last Name; names match ignoring case, spaces, underscores and
/// hyphens; other columns such as Email, Cell Phone, list_name, campaign_id are read as the
/// webhook reads them). Send the file as `text/csv` or as the `file` part of a multipart form. A
/// file missing required columns → 422 naming them, and nothing is stored.
///
/// **Law Ruler API**: JSON `{"source": "<provider>_api", "since": "<RFC 3339, optional>"}`. Needs
/// a connected Law Ruler integration (409 otherwise). The import's job reads the leads created
/// or changed since `since` (every lead without it) from Law Ruler, then applies them as a file
/// with the webhook's columns would be; while it reads, `phase` is `fetching` and `total_rows`
/// is 0.
///
/// Either way: 202, the rows are applied in the background; follow
/// `GET /integrations/{provider}/import/{id}`. Importing the same leads again changes nothing for
/// leads whose content is unchanged, and later webhooks update the same cases.
#[utoipa::path(post, path = "/integrations/{provider}/import", tag = "integrations",
    security(("bearer" = [])), params(("provider" = String, Path)),
    request_body(content(
        (String = "text/csv"),
        (ImportFromApiIn = "application/json"),
    )),
    responses((status = 202, body = ImportOut), (status = 400, body = ErrorBody),
              (status = 404, body = ErrorBody),
              (status = 409, body = ErrorBody), (status = 413, body = ErrorBody),
              (status = 415, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn upload(
    State(s): State<AppState>,
    Auth(company): Auth,
    Path(raw): Path<String>,
    req: Request,
) -> Result<(StatusCode, axum::Json<ImportOut>), ApiError> {
    let p = provider(&raw)?;
    let created = match read_request(&s, p, req).await? {
        ImportRequest::Api(r) => {
            svc::start_from_api(&s.app, company, p, &r.source, r.since.as_deref()).await?
        }
        ImportRequest::File(bytes, name) => {
            svc::start_from_file(&s.app, company, p, name.as_deref(), &bytes).await?
        }
    };
    Ok((StatusCode::ACCEPTED, axum::Json(created.into())))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
struct ListQuery {
    cursor: Option<String>,
    limit: Option<u32>,
}

/// The company's imports from a CRM, newest first.
#[utoipa::path(get, path = "/integrations/{provider}/import", tag = "integrations",
    security(("bearer" = [])), params(("provider" = String, Path), ListQuery),
    responses((status = 200, body = PageOut<ImportOut>)))]
async fn list_imports(
    State(s): State<AppState>,
    Auth(company): Auth,
    Path(raw): Path<String>,
    Query(q): Query<ListQuery>,
) -> Result<axum::Json<PageOut<ImportOut>>, ApiError> {
    let p = provider(&raw)?;
    let page = page_request(q.cursor, q.limit)?;
    let imports = svc::list(&s.app, company, p, &page).await?;
    Ok(axum::Json(PageOut::from_page(imports, ImportOut::from)))
}

/// An import's status and progress: rows processed of the total, what they did, and the rows
/// that failed with their row numbers and reasons.
#[utoipa::path(get, path = "/integrations/{provider}/import/{id}", tag = "integrations",
    security(("bearer" = [])), params(("provider" = String, Path), ("id" = String, Path)),
    responses((status = 200, body = ImportOut), (status = 404, body = ErrorBody)))]
async fn get_import(
    State(s): State<AppState>,
    Auth(company): Auth,
    Path((raw, id)): Path<(String, String)>,
) -> Result<axum::Json<ImportOut>, ApiError> {
    provider(&raw)?;
    Ok(axum::Json(svc::get(&s.app, company, &id).await?.into()))
}
