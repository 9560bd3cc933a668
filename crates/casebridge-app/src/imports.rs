//! Manual import of a CRM's existing records (SPEC LR14), from an export file or from the CRM's
//! API. A file is checked by the provider's connector (a header with every required column) and
//! stored with its job; an import from the API is stored without a file, and its job reads the
//! records first. Either way a worker on the `crm` queue applies the rows and the import's row
//! shows the progress. Nothing here calls the CRM.

use std::sync::Arc;

use casebridge_crm::connector::ApiImportError;
use casebridge_crm::Connector;
use casebridge_domain::error::Validator;
use casebridge_domain::ids::CompanyId;
use casebridge_domain::integrations::Provider;
use casebridge_domain::page::{Page, PageRequest};
use casebridge_domain::ValidationError;
use casebridge_store::imports as store;
use jiff::Timestamp;

pub use casebridge_store::imports::{Import, ImportOrigin, ImportStatus};

use crate::{App, AppError, OrNotFound, Result};

/// The name a request and a response give an import read from `p`'s API: `<provider>_api`.
pub fn api_source(p: Provider) -> String {
    format!("{}_api", p.as_str())
}

/// What to send to start an import of `p`.
pub fn what_to_send(p: Provider) -> String {
    format!(
        "send the file as text/csv or as the `file` part of multipart/form-data, or JSON \
         {{\"source\": \"{}\"}} to import from the {} API",
        api_source(p),
        p.label()
    )
}

fn connector(app: &App, p: Provider) -> Result<&Arc<dyn Connector>> {
    app.connectors()
        .get(p)
        .ok_or_else(|| AppError::NotFound(format!("{} has no import in this version", p.label())))
}

/// Starts an import of an export file (`bytes`, named `file_name` when it came as a form part).
/// A file that is not UTF-8 or misses required columns is refused, and nothing is stored.
pub async fn start_from_file(
    app: &App,
    company: CompanyId,
    p: Provider,
    file_name: Option<&str>,
    bytes: &[u8],
) -> Result<Import> {
    let c = connector(app, p)?;
    let text = std::str::from_utf8(bytes)
        .map_err(|_| ValidationError::single("file", "is not UTF-8 text"))?;
    let total = c.check_import_file(text)?;
    let now = app.now();
    let mut tx = app.store().begin().await?;
    let created = c
        .enqueue_file_import(&mut tx, company, file_name, text, total, now)
        .await?;
    tx.commit().await?;
    Ok(created)
}

/// Starts an import from the CRM's API: `source` must be [`api_source`]; `since` (RFC 3339
/// with an offset) limits it to records created or changed since. Needs a connected
/// integration.
pub async fn start_from_api(
    app: &App,
    company: CompanyId,
    p: Provider,
    source: &str,
    since: Option<&str>,
) -> Result<Import> {
    let c = connector(app, p)?;
    let mut v = Validator::new();
    let expected = api_source(p);
    if source != expected {
        v.push(
            "source",
            format!("must be `{expected}` (a CSV file is sent as text/csv or multipart)"),
        );
    }
    let since = match since.map(str::trim) {
        None | Some("") => None,
        Some(raw) => match raw.parse::<Timestamp>() {
            Ok(t) => v.check(casebridge_domain::input::check_time("since", t)),
            Err(_) => {
                v.push(
                    "since",
                    format!(
                        "`{raw}` is not an RFC 3339 time with an offset, such as \
                         2025-01-01T00:00:00Z"
                    ),
                );
                None
            }
        },
    };
    v.finish()?;
    let now = app.now();
    let mut tx = app.store().begin().await?;
    let created = c
        .enqueue_api_import(&mut tx, company, since, now)
        .await
        .map_err(|e| match e {
            ApiImportError::NotConnected(m) => AppError::Conflict(m),
            ApiImportError::Store(e) => e.into(),
        })?;
    tx.commit().await?;
    Ok(created)
}

/// The company's imports of `p`, newest first.
pub async fn list(
    app: &App,
    company: CompanyId,
    p: Provider,
    page: &PageRequest,
) -> Result<Page<Import>> {
    let mut conn = app.store().conn().await?;
    Ok(store::list(&mut conn, company, p.as_str(), page).await?)
}

/// One import's status and progress.
pub async fn get(app: &App, company: CompanyId, id: &str) -> Result<Import> {
    let uuid: uuid::Uuid = id.parse().map_err(|_| AppError::not_found("import", id))?;
    let mut conn = app.store().conn().await?;
    store::get(&mut conn, company, uuid)
        .await
        .or_not_found("import", id)
}
