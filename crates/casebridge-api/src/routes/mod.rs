use axum::routing::get;
use axum::Router;
use utoipa_axum::router::OpenApiRouter;

use crate::AppState;

mod activity;
pub(crate) use activity::event_examples;
mod cases;
mod clients;
mod company;
mod documents;
mod exports;
mod import;
mod integrations;
mod lists;
mod named;
mod record_import;
mod scheduling;
mod sync;
mod webhooks;

/// Everything under `/api/v1`.
pub fn api() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .merge(company::routes())
        .merge(named::routes())
        .merge(clients::routes())
        .merge(cases::routes())
        .merge(lists::routes())
        .merge(activity::routes())
        .merge(webhooks::routes())
        .merge(integrations::routes())
        .merge(sync::routes())
        .merge(import::routes())
        .merge(documents::routes())
        .merge(exports::routes())
        .merge(record_import::routes())
        .merge(scheduling::routes())
}

/// Inbound webhooks from CRMs, authenticated by the token in their URL.
pub fn hooks() -> OpenApiRouter<AppState> {
    integrations::hooks()
}

/// Health and metrics, outside the versioned API and without authentication.
pub fn ops() -> Router<AppState> {
    Router::new()
        .route(
            "/healthz",
            get(|| async { axum::Json(crate::dto::HealthOut { status: "ok" }) }),
        )
        .route("/readyz", get(crate::ready))
        .route("/metrics", get(crate::scrape::metrics))
}
