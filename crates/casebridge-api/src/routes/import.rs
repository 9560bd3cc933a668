//! Manual import of existing Law Ruler leads from a CSV file (SPEC LR14). The upload is checked
//! (a header with every required column) and stored with its job; a worker on the `crm` queue
//! applies the rows (`casebridge_crm::lawruler::import`) and the import's row shows the progress.

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, FromRequest, Path, Request, State};
use axum::http::{header, StatusCode};
use casebridge_crm::lawruler::import::{self, FileError};
use casebridge_crm::lawruler::ingest;
use casebridge_domain::ValidationError;
use casebridge_store::imports::{self as store, Import};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::dto::{page_request, PageOut};
use crate::error::{ApiError, ErrorBody, OrNotFound};
use crate::extract::{path_id, Auth, Query};
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

#[derive(Debug, Serialize, ToSchema)]
pub struct ImportOut {
    pub id: String,
    pub provider: String,
    /// `queued`, `running`, `done` or `failed`.
    pub status: String,
    pub file_name: Option<String>,
    /// Data rows in the file (the header is not counted).
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

impl From<Import> for ImportOut {
    fn from(i: Import) -> Self {
        Self {
            id: i.id.to_string(),
            provider: i.provider,
            status: i.status.as_str().to_owned(),
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
            created_at: i.created_at.to_string(),
            started_at: i.started_at.map(|t| t.to_string()),
            finished_at: i.finished_at.map(|t| t.to_string()),
        }
    }
}

fn malformed(e: impl std::fmt::Display) -> ApiError {
    ApiError::BadRequest(format!("the multipart body is malformed: {e}"))
}

fn too_large_or_bad(e: axum::extract::rejection::BytesRejection) -> ApiError {
    if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
        ApiError::PayloadTooLarge(format!(
            "the file is larger than {} MiB",
            UPLOAD_LIMIT_BYTES / (1024 * 1024)
        ))
    } else {
        ApiError::BadRequest(e.body_text())
    }
}

/// The file's bytes and name: a `text/csv` body, or the `file` part of a multipart form.
async fn file_of(state: &AppState, req: Request) -> Result<(Bytes, Option<String>), ApiError> {
    let content_type = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_ascii_lowercase();
    if content_type.starts_with("multipart/form-data") {
        let mut mp = axum::extract::Multipart::from_request(req, state)
            .await
            .map_err(malformed)?;
        while let Some(field) = mp.next_field().await.map_err(malformed)? {
            if field.name() == Some("file") {
                let name = field.file_name().map(str::to_owned);
                let bytes = field.bytes().await.map_err(malformed)?;
                return Ok((bytes, name));
            }
        }
        return Err(ValidationError::single("file", "the form has no `file` part").into());
    }
    let csv_like = ["text/csv", "application/csv", "text/plain"]
        .iter()
        .any(|t| content_type.starts_with(t));
    if !csv_like {
        return Err(ApiError::UnsupportedMediaType(
            "send the file as text/csv, or as the `file` part of multipart/form-data".into(),
        ));
    }
    let bytes = Bytes::from_request(req, state)
        .await
        .map_err(too_large_or_bad)?;
    Ok((bytes, None))
}

/// Starts an import of Law Ruler leads from a CSV file (LR14): one row per lead, a header row
/// naming the columns as Law Ruler does (the ten required fields: Lead ID, Case Type ID, Case
/// Type, Status ID, Status, Full Name, Created Date, Primary Contact ID, First Name, Last Name;
/// names match ignoring case, spaces, underscores and hyphens; other columns such as Email,
/// Cell Phone, list_name, campaign_id are read as the webhook reads them). Send the file as
/// `text/csv` or as the `file` part of a multipart form. A file missing required columns → 422
/// naming them, and nothing is stored. Otherwise 202: the rows are applied in the background;
/// follow `GET /integrations/lawruler/import/{id}`. Importing a file again changes nothing for
/// rows whose content is unchanged.
#[utoipa::path(post, path = "/integrations/lawruler/import", tag = "integrations",
    security(("bearer" = [])),
    request_body(content = String, content_type = "text/csv"),
    responses((status = 202, body = ImportOut), (status = 413, body = ErrorBody),
              (status = 415, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn upload(
    State(s): State<AppState>,
    Auth(company): Auth,
    req: Request,
) -> Result<(StatusCode, axum::Json<ImportOut>), ApiError> {
    let (bytes, file_name) = file_of(&s, req).await?;
    let text = std::str::from_utf8(&bytes)
        .map_err(|_| ValidationError::single("file", "is not UTF-8 text"))?;
    let total = import::check(text).map_err(|e| {
        let field = match e {
            FileError::MissingColumns(_) => "columns",
            FileError::Empty | FileError::BadHeader(_) => "file",
        };
        ValidationError::single(field, e.to_string())
    })?;
    let now = s.clock.now();
    let mut tx = s.store.begin().await?;
    let created = import::enqueue(&mut tx, company, file_name.as_deref(), text, total, now).await?;
    tx.commit().await?;
    Ok((StatusCode::ACCEPTED, axum::Json(created.into())))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
struct ListQuery {
    cursor: Option<String>,
    limit: Option<u32>,
}

/// The company's Law Ruler imports, newest first.
#[utoipa::path(get, path = "/integrations/lawruler/import", tag = "integrations",
    security(("bearer" = [])), params(ListQuery),
    responses((status = 200, body = PageOut<ImportOut>)))]
async fn list_imports(
    State(s): State<AppState>,
    Auth(company): Auth,
    Query(q): Query<ListQuery>,
) -> Result<axum::Json<PageOut<ImportOut>>, ApiError> {
    let page = page_request(q.cursor, q.limit)?;
    let mut conn = s.store.conn().await?;
    let imports = store::list(&mut conn, company, ingest::PROVIDER, &page).await?;
    Ok(axum::Json(PageOut::from_page(imports, ImportOut::from)))
}

/// An import's status and progress: rows processed of the total, what they did, and the rows
/// that failed with their row numbers and reasons.
#[utoipa::path(get, path = "/integrations/lawruler/import/{id}", tag = "integrations",
    security(("bearer" = [])), params(("id" = String, Path)),
    responses((status = 200, body = ImportOut), (status = 404, body = ErrorBody)))]
async fn get_import(
    State(s): State<AppState>,
    Auth(company): Auth,
    Path(raw): Path<String>,
) -> Result<axum::Json<ImportOut>, ApiError> {
    let id: uuid::Uuid = path_id(&raw, "import")?;
    let mut conn = s.store.conn().await?;
    let found = store::get(&mut conn, company, id)
        .await
        .or_not_found("import", &raw)?;
    Ok(axum::Json(found.into()))
}
