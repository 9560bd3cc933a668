//! Files on cases and calls: case documents (`/cases/{id}/documents`), call recordings
//! (`/calls/{id}/recording`), and the CRM notes of a case (`/cases/{id}/notes`). The upload's
//! format (multipart or raw body) is read here; storing it and telling the CRMs is the service's.

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, FromRequest, Request, State};
use axum::http::{header, StatusCode};
use casebridge_app::documents::{self, Document, Upload};
use casebridge_domain::ids::{CallId, CaseId};
use casebridge_domain::ValidationError;
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::dto::{page_request, PageOut, PageQuery};
use crate::error::{ApiError, ErrorBody};
use crate::extract::{path_id, Auth, Path, Query};
use crate::AppState;

/// Documents and recordings may be far larger than other requests.
pub const FILE_LIMIT_BYTES: usize = 100 * 1024 * 1024;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(add_document, list_documents))
        .routes(routes!(add_recording))
        .routes(routes!(list_notes))
        .layer(DefaultBodyLimit::max(FILE_LIMIT_BYTES))
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
        FILE_LIMIT_BYTES / (1024 * 1024)
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

/// An uploaded file: the `file` part of a multipart form, or a raw body with its content type
/// (the name then comes from `Content-Disposition: attachment; filename=…`, else `default_name`).
async fn upload_of(
    state: &AppState,
    req: Request,
    what: &str,
    default_name: &str,
) -> Result<Upload<Bytes>, ApiError> {
    let content_type = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let upload = if content_type
        .to_ascii_lowercase()
        .starts_with("multipart/form-data")
    {
        let mut mp = axum::extract::Multipart::from_request(req, state)
            .await
            .map_err(malformed)?;
        let mut found = None;
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
                let bytes = field.bytes().await.map_err(|e| {
                    if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
                        too_large(what)
                    } else {
                        malformed(e)
                    }
                })?;
                found = Some(Upload {
                    bytes,
                    file_name: file_name.unwrap_or_else(|| default_name.to_owned()),
                    content_type: ct,
                });
                break;
            }
        }
        found.ok_or_else(|| ValidationError::single("file", "the form has no `file` part"))?
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
        let bytes = Bytes::from_request(req, state).await.map_err(|e| {
            if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
                too_large(what)
            } else {
                ApiError::BadRequest(e.body_text())
            }
        })?;
        Upload {
            bytes,
            file_name: name.unwrap_or_else(|| default_name.to_owned()),
            content_type,
        }
    };
    if upload.bytes.is_empty() {
        return Err(ValidationError::single("file", format!("the {what} is empty")).into());
    }
    Ok(upload)
}

/// Adds a document to a case. With "Send documents" on, it is uploaded to the case's Law Ruler
/// lead (form field `File`). Send it as the `file` part of a multipart form, or as the raw body
/// with its `Content-Type` (and `Content-Disposition: attachment; filename="…"`).
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
    let upload = upload_of(&s, req, "document", "document").await?;
    let doc = documents::add_document(&s.app, company, case_id, &upload).await?;
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

#[derive(Debug, Serialize, ToSchema)]
pub struct RecordingOut {
    #[serde(flatten)]
    pub document: DocumentOut,
    /// `WAV`, `MP3`, `M4A/AAC`, `Ogg Vorbis` or `FLAC`.
    pub format: String,
    pub duration_seconds: Option<f64>,
}

/// Stores a call's recording (wav, mp3, m4a/aac, ogg/vorbis or flac). A file that is not audio
/// of those kinds is refused (422) and nothing is stored. With "Send call records" on, it goes
/// to the call's Law Ruler lead as MP3 (transcoded when it is not MP3), in `/recordings`, after
/// the call's notes (LR10).
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
    let upload = upload_of(&s, req, "recording", "recording").await?;
    let stored = documents::add_recording(&s.app, company, call_id, upload).await?;
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
