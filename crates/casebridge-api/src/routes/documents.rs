//! Files on cases and calls: case documents (`/cases/{id}/documents`), call recordings
//! (`/calls/{id}/recording`), their bytes (`/documents/{id}/content`), and the CRM notes of a
//! case (`/cases/{id}/notes`). The upload's format (multipart or raw body) is read here and
//! handed on as a stream; storing it and telling the CRMs is the service's.

use axum::body::{Body, Bytes};
use axum::extract::{DefaultBodyLimit, FromRequest, Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use casebridge_app::documents::{self, Document, Upload};
use casebridge_app::AppError;
use casebridge_domain::ids::{CallId, CaseId};
use casebridge_domain::ValidationError;
use futures::future::BoxFuture;
use futures::stream::BoxStream;
use futures::{StreamExt, TryStreamExt};
use percent_encoding::{utf8_percent_encode, NON_ALPHANUMERIC};
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::dto::{page_request, PageOut, PageQuery};
use crate::error::{ApiError, ErrorBody};
use crate::extract::{path_id, Auth, Path, Query};
use crate::AppState;

/// Documents and recordings may be far larger than other requests: the service stops a file at
/// [`documents::FILE_LIMIT_BYTES`]; a multipart form may carry a little more around it.
pub const BODY_LIMIT_BYTES: usize = documents::FILE_LIMIT_BYTES as usize + 1024 * 1024;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(add_document, list_documents))
        .routes(routes!(add_recording))
        .routes(routes!(get_document))
        .routes(routes!(download_document))
        .routes(routes!(list_notes))
        .layer(DefaultBodyLimit::max(BODY_LIMIT_BYTES))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DocumentOut {
    pub id: String,
    pub case_id: Option<String>,
    pub call_id: Option<String>,
    /// `document` or `recording`.
    pub kind: String,
    pub file_name: String,
    pub content_type: String,
    pub size: u64,
    /// Hex SHA-256 of the content.
    pub sha256: String,
    pub created_at: String,
}

impl From<Document> for DocumentOut {
    fn from(d: Document) -> Self {
        Self {
            id: d.id,
            case_id: d.case_id.map(|c| c.to_string()),
            call_id: d.call_id.map(|c| c.to_string()),
            kind: d.kind.as_str().into(),
            file_name: d.file_name,
            content_type: d.content_type,
            size: d.size,
            sha256: d.sha256,
            created_at: crate::dto::time(d.created_at),
        }
    }
}

fn malformed(e: impl std::fmt::Display) -> ApiError {
    ApiError::BadRequest(format!("the multipart body is malformed: {e}"))
}

fn too_large(what: &str) -> ApiError {
    ApiError::PayloadTooLarge(format!(
        "the {what} is larger than {} MiB",
        documents::FILE_LIMIT_BYTES / (1024 * 1024)
    ))
}

/// The last path component, without control characters, at most 255 characters.
fn clean_name(raw: &str) -> Option<String> {
    let base = raw.rsplit(['/', '\\']).next().unwrap_or(raw);
    let name: String = base.chars().filter(|c| !c.is_control()).take(255).collect();
    let name = name.trim().to_owned();
    (!name.is_empty() && name != "." && name != "..").then_some(name)
}

fn disposition_name(v: &str) -> Option<String> {
    v.split(';')
        .map(str::trim)
        .find_map(|p| p.strip_prefix("filename="))
        .map(|n| n.trim_matches('"').to_owned())
}

/// The upload body handed to a service: chunks of the request body or of the `file` part.
type Chunks<'a> = BoxStream<'a, Result<Bytes, String>>;

/// Reads an uploaded file as a stream, never whole: the `file` part of a multipart form, or a
/// raw body with its content type (the name then comes from `Content-Disposition: attachment;
/// filename=…`, else `default_name`), and hands it to `store` (which calls the service).
async fn with_upload<T>(
    state: &AppState,
    req: Request,
    what: &str,
    default_name: &str,
    store: impl for<'a> FnOnce(Upload<Chunks<'a>>) -> BoxFuture<'a, Result<T, AppError>>,
) -> Result<T, ApiError> {
    let content_type = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    if content_type
        .to_ascii_lowercase()
        .starts_with("multipart/form-data")
    {
        let mut mp = axum::extract::Multipart::from_request(req, state)
            .await
            .map_err(malformed)?;
        while let Some(field) = mp.next_field().await.map_err(|e| {
            if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
                too_large(what)
            } else {
                malformed(e)
            }
        })? {
            if field.name() == Some("file") {
                let file_name = field.file_name().and_then(clean_name);
                let ct = field
                    .content_type()
                    .unwrap_or("application/octet-stream")
                    .to_owned();
                let upload = Upload {
                    file_name: file_name.unwrap_or_else(|| default_name.to_owned()),
                    content_type: ct,
                    body: field
                        .map_err(|e| format!("the multipart body is malformed: {e}"))
                        .boxed(),
                };
                return Ok(store(upload).await?);
            }
        }
        Err(ValidationError::single("file", "the form has no `file` part").into())
    } else {
        if content_type.is_empty() {
            return Err(ApiError::UnsupportedMediaType(format!(
                "send the {what} as the `file` part of multipart/form-data, or as the body with \
                 its Content-Type"
            )));
        }
        let name = req
            .headers()
            .get(header::CONTENT_DISPOSITION)
            .and_then(|v| v.to_str().ok())
            .and_then(disposition_name)
            .and_then(|n| clean_name(&n));
        let upload = Upload {
            file_name: name.unwrap_or_else(|| default_name.to_owned()),
            content_type,
            body: req
                .into_body()
                .into_data_stream()
                .map_err(|e| e.to_string())
                .boxed(),
        };
        Ok(store(upload).await?)
    }
}

/// Adds a document to a case. With "Send documents" on, it is uploaded to the case's Law Ruler
/// lead (form field `File`). Send it as the `file` part of a multipart form, or as the raw body
/// with its `Content-Type` (and `Content-Disposition: attachment; filename="…"`). The body is
/// streamed to the object store; up to 512 MiB.
#[utoipa::path(post, path = "/cases/{id}/documents", tag = "cases", security(("bearer" = [])),
    params(("id" = String, Path)),
    request_body(content = Vec<u8>, content_type = "multipart/form-data"),
    responses((status = 201, body = DocumentOut), (status = 404, body = ErrorBody),
              (status = 413, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn add_document(
    State(s): State<AppState>,
    Auth(company): Auth,
    Path(id): Path<String>,
    req: Request,
) -> Result<(StatusCode, axum::Json<DocumentOut>), ApiError> {
    let case_id: CaseId = path_id(&id, "case")?;
    let app = s.app.clone();
    let doc = with_upload(&s, req, "document", "document", move |upload| {
        Box::pin(async move { documents::add_document(&app, company, case_id, upload).await })
    })
    .await?;
    Ok((StatusCode::CREATED, axum::Json(doc.into())))
}

/// A case's documents (metadata), oldest first.
#[utoipa::path(get, path = "/cases/{id}/documents", tag = "cases", security(("bearer" = [])),
    params(("id" = String, Path), PageQuery),
    responses((status = 200, body = PageOut<DocumentOut>), (status = 404, body = ErrorBody),
              (status = 422, body = ErrorBody)))]
async fn list_documents(
    State(s): State<AppState>,
    Auth(company): Auth,
    Path(id): Path<String>,
    Query(q): Query<PageQuery>,
) -> Result<axum::Json<PageOut<DocumentOut>>, ApiError> {
    let case_id: CaseId = path_id(&id, "case")?;
    let page = page_request(q.cursor, q.limit)?;
    let docs = documents::for_case(&s.app, company, case_id, &page).await?;
    Ok(axum::Json(PageOut::from_page(docs, Into::into)))
}

/// A stored file's metadata: a case document or a call recording.
#[utoipa::path(get, path = "/documents/{id}", tag = "cases", security(("bearer" = [])),
    params(("id" = String, Path)),
    responses((status = 200, body = DocumentOut), (status = 404, body = ErrorBody)))]
async fn get_document(
    State(s): State<AppState>,
    Auth(company): Auth,
    Path(id): Path<String>,
) -> Result<axum::Json<DocumentOut>, ApiError> {
    let id = document_id(&id)?;
    Ok(axum::Json(
        documents::get(&s.app, company, &id).await?.into(),
    ))
}

/// A stored file's bytes (a case document or a call recording), streamed from the object store,
/// with its `Content-Type`, `Content-Length`, the file name as an attachment, and its SHA-256 as
/// the `ETag`.
#[utoipa::path(get, path = "/documents/{id}/content", tag = "cases", security(("bearer" = [])),
    params(("id" = String, Path)),
    responses((status = 200, body = Vec<u8>, content_type = "application/octet-stream"),
              (status = 404, body = ErrorBody)))]
async fn download_document(
    State(s): State<AppState>,
    Auth(company): Auth,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let id = document_id(&id)?;
    let download = documents::download(&s.app, company, &id).await?;
    let d = &download.document;
    let disposition = format!(
        "attachment; filename=\"{}\"; filename*=UTF-8''{}",
        // The plain `filename` is the ASCII fallback; `filename*` (RFC 6266) carries the name.
        d.file_name
            .chars()
            .map(
                |c| if c.is_ascii_graphic() && c != '"' && c != '\\' || c == ' ' {
                    c
                } else {
                    '_'
                }
            )
            .collect::<String>(),
        utf8_percent_encode(&d.file_name, NON_ALPHANUMERIC)
    );
    let headers = [
        (header::CONTENT_TYPE, header_value(&d.content_type)),
        (header::CONTENT_LENGTH, HeaderValue::from(d.size)),
        (header::CONTENT_DISPOSITION, header_value(&disposition)),
        (header::ETAG, header_value(&format!("\"{}\"", d.sha256))),
    ];
    Ok((headers, Body::from_stream(download.body)).into_response())
}

fn header_value(v: &str) -> HeaderValue {
    HeaderValue::from_str(v)
        .unwrap_or_else(|_| HeaderValue::from_static("application/octet-stream"))
}

/// A document id from the path: a UUID, else 404 (ids are never guessed at).
fn document_id(raw: &str) -> Result<String, ApiError> {
    uuid::Uuid::parse_str(raw)
        .map(|u| u.to_string())
        .map_err(|_| ApiError::from(AppError::not_found("document", raw)))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RecordingOut {
    #[serde(flatten)]
    pub document: DocumentOut,
    /// `WAV`, `MP3`, `M4A/AAC`, `Ogg Vorbis` or `FLAC`.
    pub format: String,
    pub duration_seconds: Option<f64>,
}

/// Stores a call's recording (wav, mp3, m4a/aac, ogg/vorbis or flac), up to 512 MiB, streamed to
/// the object store. A file that is not audio of those kinds is refused (422) and nothing is
/// stored. With "Send call records" on, it goes to the call's Law Ruler lead as MP3 (transcoded
/// when it is not MP3), in `/recordings`, after the call's notes (LR10).
#[utoipa::path(post, path = "/calls/{id}/recording", tag = "calls", security(("bearer" = [])),
    params(("id" = String, Path)),
    request_body(content = Vec<u8>, content_type = "audio/wav"),
    responses((status = 201, body = RecordingOut), (status = 404, body = ErrorBody),
              (status = 413, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn add_recording(
    State(s): State<AppState>,
    Auth(company): Auth,
    Path(id): Path<String>,
    req: Request,
) -> Result<(StatusCode, axum::Json<RecordingOut>), ApiError> {
    let call_id: CallId = path_id(&id, "call")?;
    let app = s.app.clone();
    let stored = with_upload(&s, req, "recording", "recording", move |upload| {
        Box::pin(async move { documents::add_recording(&app, company, call_id, upload).await })
    })
    .await?;
    Ok((
        StatusCode::CREATED,
        axum::Json(RecordingOut {
            document: stored.document.into(),
            format: stored.audio.format.name().into(),
            duration_seconds: stored.audio.duration.map(|d| d.as_secs_f64()),
        }),
    ))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct NoteOut {
    /// The CRM the note is in: `lawruler` or `smartadvocate`.
    pub provider: String,
    /// The note's id in the CRM.
    pub crm_note_id: String,
    /// The CRM record: Law Ruler Lead ID, SmartAdvocate case number.
    pub record_id: String,
    /// `crm`: written in the CRM and pulled; `platform`: written by casebridge.
    pub origin: String,
    pub category: String,
    pub subject: String,
    pub body: String,
    pub noted_at: String,
}

/// The CRM notes of a case, oldest first: notes pulled from Law Ruler (LR13) and SmartAdvocate
/// (SA4), and the notes casebridge wrote there (messages, call records).
#[utoipa::path(get, path = "/cases/{id}/notes", tag = "cases", security(("bearer" = [])),
    params(("id" = String, Path)),
    responses((status = 200, body = Vec<NoteOut>), (status = 404, body = ErrorBody)))]
async fn list_notes(
    State(s): State<AppState>,
    Auth(company): Auth,
    Path(id): Path<String>,
) -> Result<axum::Json<Vec<NoteOut>>, ApiError> {
    let case_id: CaseId = path_id(&id, "case")?;
    let notes = documents::notes(&s.app, company, case_id).await?;
    Ok(axum::Json(
        notes
            .into_iter()
            .map(|(provider, n)| NoteOut {
                provider,
                crm_note_id: n.crm_note_id,
                record_id: n.record_id,
                origin: n.origin,
                category: n.category,
                subject: n.subject,
                body: n.body,
                noted_at: crate::dto::time(n.noted_at),
            })
            .collect(),
    ))
}
