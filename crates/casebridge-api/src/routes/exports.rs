//! Exports for reports (SPEC P8): `GET /exports/{kind}` streams cases, clients, the sync log or
//! the webhook delivery log as CSV or JSON (`casebridge_app::exports`).

use axum::body::Body;
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use casebridge_app::exports::{self, Export, ExportFormat, ExportKind, ExportRequest};
use casebridge_domain::error::Validator;
use casebridge_domain::integrations::Provider;
use jiff::Timestamp;
use serde::Deserialize;
use utoipa::IntoParams;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::cases::id_field;
use crate::error::{ApiError, ErrorBody};
use crate::extract::{Auth, Path, Query};
use crate::AppState;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(export))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
struct ExportQuery {
    /// `csv` (default) or `json` (one array of objects with the CSV's columns as keys).
    format: Option<String>,
    /// Rows created at or after this time (RFC 3339).
    since: Option<String>,
    /// Rows created before this time (RFC 3339).
    until: Option<String>,
    /// `sync-log` only: the log of one CRM (`lawruler`, `smartadvocate`); default: every CRM.
    provider: Option<String>,
    /// `deliveries` only: the deliveries of one webhook; default: every webhook.
    webhook_id: Option<String>,
}

fn time(v: &mut Validator, field: &str, raw: Option<&str>) -> Option<Timestamp> {
    let raw = raw?;
    match raw.parse::<Timestamp>() {
        Ok(t) => v.check(casebridge_domain::input::check_time(field, t)),
        Err(_) => {
            v.push(
                field,
                "must be an RFC 3339 time with an offset, e.g. 2026-11-01T00:00:00Z",
            );
            None
        }
    }
}

/// Streams an export, oldest row first. `kind`: `cases`, `clients`, `sync-log` or
/// `deliveries`; the columns of each are listed in README ("Exports"). Times are RFC 3339 UTC
/// with milliseconds; `external_refs` and `custom_fields` are JSON (in CSV, a JSON text in the
/// cell). The file is read in chunks while it is sent, so its size does not matter; should the
/// database fail in the middle, the transfer is cut off rather than ended, so a truncated file
/// cannot pass for a whole one.
#[utoipa::path(get, path = "/exports/{kind}", tag = "exports", security(("bearer" = [])),
    params(("kind" = String, Path, description = "`cases`, `clients`, `sync-log` or `deliveries`"),
           ExportQuery),
    responses((status = 200, description = "The file (text/csv or application/json)",
               content_type = "text/csv"),
              (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn export(
    State(s): State<AppState>,
    Auth(company): Auth,
    Path(kind): Path<String>,
    Query(q): Query<ExportQuery>,
) -> Result<Response, ApiError> {
    let kind = ExportKind::parse(&kind)
        .ok_or_else(|| ApiError::NotFound(format!("no export named `{kind}`")))?;
    let mut v = Validator::new();
    let format = match q.format.as_deref() {
        None => Some(ExportFormat::Csv),
        Some(f) => ExportFormat::parse(f).or_else(|| {
            v.push("format", "must be `csv` or `json`");
            None
        }),
    };
    let since = time(&mut v, "since", q.since.as_deref());
    let until = time(&mut v, "until", q.until.as_deref());
    let provider = q.provider.as_deref().and_then(|p| {
        Provider::parse(p).or_else(|| {
            v.push("provider", "must be `lawruler` or `smartadvocate`");
            None
        })
    });
    let webhook_id = id_field(&mut v, "webhook_id", q.webhook_id.as_deref());
    v.finish()?;
    let req = ExportRequest {
        kind,
        format: format.expect("validated"),
        since,
        until,
        provider,
        webhook_id,
    };
    let mut export = exports::start(&s.app, company, req).await?;
    // The first chunk is read before answering, so a failure to read answers in the envelope.
    let first = export.next_chunk().await?;
    let headers = [
        (
            header::CONTENT_TYPE,
            export.format().content_type().to_owned(),
        ),
        (
            header::CONTENT_DISPOSITION,
            format!("attachment; filename=\"{}\"", export.file_name()),
        ),
    ];
    let body = futures::stream::unfold((first, Some(export)), |(ready, export)| async move {
        if let Some(chunk) = ready {
            return Some((Ok(chunk), (None, export)));
        }
        let mut export: Export = export?;
        match export.next_chunk().await {
            Ok(Some(chunk)) => Some((Ok(chunk), (None, Some(export)))),
            Ok(None) => None,
            Err(e) => {
                tracing::warn!(error = %e, "an export failed part-way; cutting the transfer off");
                Some((Err(std::io::Error::other(e.to_string())), (None, None)))
            }
        }
    });
    Ok((headers, Body::from_stream(body)).into_response())
}
