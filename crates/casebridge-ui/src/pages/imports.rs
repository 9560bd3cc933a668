//! Imports tab (LR14): start an import of a CRM's existing records from an export file (a real
//! file upload, read as it streams) or from the CRM's API; the imports with their progress and
//! counts; an import's page with a progress bar that refreshes itself while the import runs
//! (htmx every 2 s, or a `<meta http-equiv="refresh">` without JavaScript) and the rejected rows
//! with their reasons. Importing the same file again changes nothing for unchanged leads (the
//! service's rule); the page shows them as unchanged.

use askama::Template;
use axum::extract::multipart::{MultipartError, MultipartRejection};
use axum::extract::{DefaultBodyLimit, Multipart, Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::{get, post};
use axum::Router;
use axum_extra::extract::cookie::CookieJar;
use casebridge_app::imports::{self as svc, Import, ImportOrigin, ImportStatus};
use casebridge_app::integrations::provider;
use casebridge_app::AppError;
use casebridge_domain::integrations::Provider;
use casebridge_domain::page::PageRequest;
use casebridge_domain::ValidationError;
use serde::Deserialize;

use crate::error::UiError;
use crate::session::Admin;
use crate::view::{done, page, render, FieldErrors, Form, Shell};
use crate::Ui;

/// The largest file accepted: a 10,000-row export is a few megabytes (the API's limit too).
const UPLOAD_LIMIT_BYTES: usize = 64 * 1024 * 1024;
const IMPORTS_SHOWN: u32 = 50;

pub fn routes() -> Router<Ui> {
    Router::new()
        .route("/integrations/{provider}/imports", get(show))
        .route(
            "/integrations/{provider}/imports/file",
            post(upload).layer(DefaultBodyLimit::max(UPLOAD_LIMIT_BYTES)),
        )
        .route("/integrations/{provider}/imports/api", post(from_api))
        .route("/integrations/{provider}/imports/{id}", get(detail))
}

/// An import as shown: its row and what to say about it.
pub struct ImportView {
    pub import: Import,
}

impl ImportView {
    pub fn id(&self) -> String {
        self.import.id.to_string()
    }

    /// Queued or running: the page keeps refreshing.
    pub fn running(&self) -> bool {
        matches!(
            self.import.status,
            ImportStatus::Queued | ImportStatus::Running
        )
    }

    /// An import from the API that has not read the records yet (its total is unknown).
    pub fn fetching(&self) -> bool {
        self.running()
            && self.import.origin == ImportOrigin::Api
            && self.import.fetched_at.is_none()
    }

    pub fn status_label(&self) -> &'static str {
        match self.import.status {
            ImportStatus::Queued => "Queued",
            ImportStatus::Running => "Running",
            ImportStatus::Done => "Done",
            ImportStatus::Failed => "Failed",
        }
    }

    pub fn status_class(&self) -> &'static str {
        match self.import.status {
            ImportStatus::Queued | ImportStatus::Running => "muted",
            ImportStatus::Done if self.import.counts.failed > 0 => "warn",
            ImportStatus::Done => "ok",
            ImportStatus::Failed => "bad",
        }
    }

    pub fn source(&self) -> String {
        let crm = Provider::parse(&self.import.provider).map_or("the CRM", Provider::label);
        match (self.import.origin, &self.import.file_name) {
            (ImportOrigin::Csv, Some(name)) => format!("File {name}"),
            (ImportOrigin::Csv, None) => "CSV file".to_owned(),
            (ImportOrigin::Api, _) => format!("{crm} API"),
        }
    }

    /// The `<progress>` bar's maximum (at least 1, so a finished empty import shows full).
    pub fn progress_max(&self) -> u64 {
        self.import.total_rows.max(1)
    }

    pub fn progress_value(&self) -> u64 {
        if self.import.total_rows == 0 && !self.running() {
            1
        } else {
            self.import.counts.processed.min(self.progress_max())
        }
    }

    pub fn percent(&self) -> u64 {
        self.progress_value() * 100 / self.progress_max()
    }
}

#[derive(Template)]
#[template(path = "imports.html")]
struct ImportsPage {
    shell: Shell,
    label: &'static str,
    slug: &'static str,
    imports: Vec<ImportView>,
    more: bool,
    errors: FieldErrors,
}

#[derive(Template)]
#[template(path = "import.html")]
struct ImportPage {
    shell: Shell,
    label: &'static str,
    slug: &'static str,
    v: ImportView,
}

async fn imports_page(
    ui: &Ui,
    admin: &Admin,
    p: Provider,
    errors: FieldErrors,
) -> Result<ImportsPage, UiError> {
    let found = svc::list(
        &ui.app,
        admin.session.company_id,
        p,
        &PageRequest::first(IMPORTS_SHOWN),
    )
    .await?;
    Ok(ImportsPage {
        shell: Shell::new(admin, "integrations"),
        label: p.label(),
        slug: p.as_str(),
        more: found.next_after.is_some(),
        imports: found
            .items
            .into_iter()
            .map(|import| ImportView { import })
            .collect(),
        errors,
    })
}

async fn show(
    State(ui): State<Ui>,
    jar: CookieJar,
    admin: Admin,
    Path(raw): Path<String>,
) -> Result<Response, UiError> {
    let p = provider(&raw)?;
    let view = imports_page(&ui, &admin, p, FieldErrors::default()).await?;
    page(&ui, jar, &view)
}

/// A refused start: the Imports tab again, the reason next to the form it belongs to (422).
async fn refused(
    ui: &Ui,
    admin: &Admin,
    p: Provider,
    e: AppError,
    form: &str,
) -> Result<Response, UiError> {
    let errors = FieldErrors::from_app(e, str::to_owned)?.under(form);
    let view = imports_page(ui, admin, p, errors).await?;
    render(StatusCode::UNPROCESSABLE_ENTITY, &view)
}

fn file_refused(message: impl Into<String>) -> AppError {
    AppError::Validation(ValidationError::single("file", message))
}

fn unreadable(e: &MultipartError) -> AppError {
    if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
        file_refused(format!(
            "the file is larger than {} MiB; split the export into smaller files",
            UPLOAD_LIMIT_BYTES / (1024 * 1024)
        ))
    } else {
        file_refused(format!(
            "the upload could not be read ({}); choose the file and send it again",
            e.body_text()
        ))
    }
}

/// Reads the form's `file` part: its name and bytes. No file chosen is a refusal.
async fn read_file(mp: &mut Multipart) -> Result<(Option<String>, Vec<u8>), AppError> {
    while let Some(field) = mp.next_field().await.map_err(|e| unreadable(&e))? {
        if field.name() != Some("file") {
            continue;
        }
        let name = field
            .file_name()
            .map(str::to_owned)
            .filter(|n| !n.is_empty());
        let bytes = field.bytes().await.map_err(|e| unreadable(&e))?;
        if name.is_none() && bytes.is_empty() {
            break;
        }
        return Ok((name, bytes.to_vec()));
    }
    Err(file_refused("choose a CSV file to import"))
}

async fn upload(
    State(ui): State<Ui>,
    jar: CookieJar,
    admin: Admin,
    Path(raw): Path<String>,
    mp: Result<Multipart, MultipartRejection>,
) -> Result<Response, UiError> {
    let p = provider(&raw)?;
    let mut mp = mp.map_err(|e| {
        AppError::BadRequest(format!(
            "the upload could not be read ({}); reload the page and send it again",
            e.body_text()
        ))
    })?;
    let started = match read_file(&mut mp).await {
        Ok((name, bytes)) => {
            svc::start_from_file(
                &ui.app,
                admin.session.company_id,
                p,
                name.as_deref(),
                &bytes,
            )
            .await
        }
        Err(e) => Err(e),
    };
    match started {
        Ok(i) => Ok(done(
            &ui,
            jar,
            &format!("/ui/integrations/{}/imports/{}", p.as_str(), i.id),
            format!(
                "Import started: {} row(s) to apply. This page follows its progress.",
                i.total_rows
            ),
        )),
        Err(e) => refused(&ui, &admin, p, e, "file").await,
    }
}

#[derive(Deserialize)]
struct ApiForm {
    #[serde(default)]
    since: String,
}

async fn from_api(
    State(ui): State<Ui>,
    jar: CookieJar,
    admin: Admin,
    Path(raw): Path<String>,
    Form(f): Form<ApiForm>,
) -> Result<Response, UiError> {
    let p = provider(&raw)?;
    let shell = Shell::new(&admin, "integrations");
    let since = match f.since.trim() {
        "" => Ok(None),
        typed => shell.parse_local(typed).map(|t| Some(t.to_string())).ok_or_else(|| {
            AppError::Validation(ValidationError::single(
                "since",
                format!("`{typed}` is not a date and time; pick one, or leave it empty to import every lead"),
            ))
        }),
    };
    let started = match since {
        Ok(since) => {
            svc::start_from_api(
                &ui.app,
                admin.session.company_id,
                p,
                &svc::api_source(p),
                since.as_deref(),
            )
            .await
        }
        Err(e) => Err(e),
    };
    match started {
        Ok(i) => Ok(done(
            &ui,
            jar,
            &format!("/ui/integrations/{}/imports/{}", p.as_str(), i.id),
            format!(
                "Import started: casebridge reads the leads from {}, then applies them.",
                p.label()
            ),
        )),
        Err(e) => refused(&ui, &admin, p, e, "api").await,
    }
}

async fn detail(
    State(ui): State<Ui>,
    jar: CookieJar,
    admin: Admin,
    Path((raw, id)): Path<(String, String)>,
) -> Result<Response, UiError> {
    let p = provider(&raw)?;
    let import = svc::get(&ui.app, admin.session.company_id, &id).await?;
    if import.provider != p.as_str() {
        return Err(AppError::not_found("import", &id).into());
    }
    page(
        &ui,
        jar,
        &ImportPage {
            shell: Shell::new(&admin, "integrations"),
            label: p.label(),
            slug: p.as_str(),
            v: ImportView { import },
        },
    )
}
