//! casebridge's admin UI (SPEC §7): server-rendered pages under `/ui` for firm admins.
//!
//! Pages are askama templates rendered from typed view models; every action is a real
//! `<form method="post">` that works without JavaScript (the vendored htmx and `app.js` only
//! improve it: copy buttons, live refresh). Handlers extract, call `casebridge-app` services
//! (one per action; a page that shows several things reads one service per thing) and render:
//! pages never touch the store, a CRM module or the JSON API.
//!
//! Invariants:
//! - every page but sign-in needs a live session ([`session::Admin`]); without one it answers
//!   303 to `/ui/login`;
//! - every request that changes something carries the session's CSRF token, checked by
//!   [`session::require_csrf`] before any handler runs;
//! - a page shows only the signed-in admin's company (services take the session's company);
//! - secrets are never rendered in full (services return them masked);
//! - times are shown in the company's time zone, with UTC in the `datetime` attribute.

use axum::extract::{Path, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use axum::Router;
use casebridge_app::App;
use casebridge_domain::events::EventType;
use serde_json::Value;

pub mod error;
mod pages;
pub mod session;
pub mod view;

/// The event catalog (W3): each subscribable event type with the JSON schema of its `data` and
/// an example `data`. They are derived from the API's types, so the server passes them in (the
/// same function answers `GET /api/v1/event-types`).
pub type EventCatalog = fn() -> Vec<(EventType, Value, Value)>;

/// The UI's state: the service layer, whether cookies are marked `Secure`, the event catalog.
#[derive(Clone)]
pub struct Ui {
    pub app: App,
    pub secure_cookies: bool,
    pub catalog: EventCatalog,
}

/// The admin UI's routes (`/ui/…`, and `/` sending a browser there), ready to merge into the
/// server's router.
pub fn router(app: App, catalog: EventCatalog) -> Router {
    let ui = Ui {
        secure_cookies: casebridge_app::admin::secure_cookies(&app),
        app,
        catalog,
    };
    let pages = Router::new()
        .route("/", get(|| async { Redirect::to("/ui/integrations") }))
        .route("/assets/{file}", get(asset))
        .merge(pages::routes())
        .fallback(not_found)
        .layer(axum::middleware::from_fn_with_state(
            ui.clone(),
            session::require_csrf,
        ))
        .layer(axum::middleware::map_response(security_headers))
        .with_state(ui);
    Router::new()
        .route("/", get(|| async { Redirect::to("/ui/") }))
        .route("/ui/", get(|| async { Redirect::to("/ui/integrations") }))
        .nest("/ui", pages)
}

async fn not_found() -> Response {
    error::error_page(
        StatusCode::NOT_FOUND,
        "Page not found",
        "There is no page at this address.".into(),
        "Use the navigation above to find what you are looking for.",
    )
}

/// No framing, no sniffing, scripts and styles only from our own assets (no inline script).
async fn security_headers(mut resp: Response) -> Response {
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        header::HeaderValue::from_static(
            "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
             connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        ),
    );
    h.insert(
        header::X_FRAME_OPTIONS,
        header::HeaderValue::from_static("DENY"),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        header::HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        header::HeaderValue::from_static("same-origin"),
    );
    if !h.contains_key(header::CACHE_CONTROL) {
        h.insert(
            header::CACHE_CONTROL,
            header::HeaderValue::from_static("no-store"),
        );
    }
    resp
}

/// The embedded assets. Their names carry their version, so they are cached for a year.
const ASSETS: &[(&str, &str, &[u8])] = &[
    (
        "htmx-2.0.8.min.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../assets/htmx-2.0.8.min.js"),
    ),
    (
        "app-1.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../assets/app.js"),
    ),
    (
        "app-1.css",
        "text/css; charset=utf-8",
        include_bytes!("../assets/app.css"),
    ),
];

async fn asset(Path(file): Path<String>, State(_): State<Ui>) -> Response {
    match ASSETS.iter().find(|(name, _, _)| *name == file) {
        Some((_, mime, bytes)) => (
            [
                (header::CONTENT_TYPE, *mime),
                (header::CACHE_CONTROL, "public, max-age=31536000, immutable"),
            ],
            *bytes,
        )
            .into_response(),
        None => not_found().await,
    }
}
