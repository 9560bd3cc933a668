//! CSV import of clients and cases with their external refs (SPEC P8): `POST /imports/{table}`
//! reads the files `GET /exports/{table}` writes (`casebridge_app::record_import`).

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, FromRequest, Request, State};
use axum::http::{header, StatusCode};
use casebridge_app::record_import::{self, Summary, Table, MAX_ROWS};
use casebridge_domain::ValidationError;
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::error::{ApiError, ErrorBody};
use crate::extract::{Auth, Path};
use crate::AppState;

/// The largest file taken (16 MiB: well above 10,000 rows of cases).
pub const LIMIT_BYTES: usize = 16 * 1024 * 1024;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(import))
        .layer(DefaultBodyLimit::max(LIMIT_BYTES))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ImportRowError {
    /// The data row (1 is the first row after the header).
    row: usize,
    message: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RecordImportOut {
    /// Data rows in the file.
    rows: usize,
    created: usize,
    updated: usize,
    /// Rows that matched a record with the same values: nothing was written.
    unchanged: usize,
    failed: usize,
    /// The first 100 failed rows.
    errors: Vec<ImportRowError>,
}

impl From<Summary> for RecordImportOut {
    fn from(s: Summary) -> Self {
        Self {
            rows: s.rows,
            created: s.created,
            updated: s.updated,
            unchanged: s.unchanged,
            failed: s.failed,
            errors: s
                .errors
                .into_iter()
                .map(|e| ImportRowError {
                    row: e.row,
                    message: e.message,
                })
                .collect(),
        }
    }
}

/// Imports clients or cases from CSV (`text/csv`), in the columns of the matching export (see
/// `GET /exports/{kind}`; any subset: clients need `first_name` or `last_name`, cases `name`
/// and `case_type_id` or `case_type`). A row updates the record with its `id`, or else the one
/// holding one of its `external_refs`, and otherwise creates one; so importing an export again
/// changes nothing. Rows are applied one by one, each with the same CRM sync as an API change; a
/// bad row is listed and does not stop the others. At most 10,000 rows per file; a file with an
/// unknown column, a missing one or more rows is a 422 and nothing changes.
#[utoipa::path(post, path = "/imports/{table}", tag = "exports", security(("bearer" = [])),
    params(("table" = String, Path, description = "`clients` or `cases`")),
    request_body(content = String, content_type = "text/csv"),
    responses((status = 200, body = RecordImportOut), (status = 404, body = ErrorBody),
              (status = 413, body = ErrorBody), (status = 415, body = ErrorBody),
              (status = 422, body = ErrorBody)))]
async fn import(
    State(s): State<AppState>,
    Auth(company): Auth,
    Path(table): Path<String>,
    req: Request,
) -> Result<(StatusCode, axum::Json<RecordImportOut>), ApiError> {
    let table = match table.as_str() {
        "clients" => Table::Clients,
        "cases" => Table::Cases,
        other => return Err(ApiError::NotFound(format!("no import of `{other}`"))),
    };
    let content_type = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_ascii_lowercase();
    if !["text/csv", "application/csv", "text/plain"]
        .iter()
        .any(|t| content_type.starts_with(t))
    {
        return Err(ApiError::UnsupportedMediaType(
            "send the file as text/csv".into(),
        ));
    }
    let bytes = Bytes::from_request(req, &s).await.map_err(|e| {
        if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::PayloadTooLarge(format!(
                "the file is larger than {} MiB; split it into files of at most {MAX_ROWS} rows",
                LIMIT_BYTES / (1024 * 1024)
            ))
        } else {
            ApiError::BadRequest(e.body_text())
        }
    })?;
    let text = std::str::from_utf8(&bytes)
        .map_err(|_| ValidationError::single("file", "is not UTF-8 text"))?;
    casebridge_domain::input::check_text("file", text)?;
    let summary = record_import::import(&s.app, company, table, text).await?;
    Ok((StatusCode::OK, axum::Json(summary.into())))
}
