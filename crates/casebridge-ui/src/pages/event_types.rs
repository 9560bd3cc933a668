//! The event catalog: every event type a webhook can receive, with its description, the JSON
//! schema of its `data` and an example envelope (the same as `GET /api/v1/event-types`).

use askama::Template;
use axum::extract::State;
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use axum_extra::extract::cookie::CookieJar;
use serde_json::json;

use crate::error::UiError;
use crate::session::Admin;
use crate::view::{page, Shell};
use crate::Ui;

pub fn routes() -> Router<Ui> {
    Router::new().route("/event-types", get(catalog))
}

pub struct Entry {
    pub name: &'static str,
    pub description: &'static str,
    pub call_event: bool,
    /// Pretty JSON.
    pub schema: String,
    /// Pretty JSON: a whole envelope, as a delivery sends it.
    pub example: String,
}

#[derive(Template)]
#[template(path = "event_types.html")]
struct CatalogPage {
    shell: Shell,
    entries: Vec<Entry>,
}

async fn catalog(State(ui): State<Ui>, jar: CookieJar, admin: Admin) -> Result<Response, UiError> {
    let company = admin.session.company_id.to_string();
    let pretty = |v: &serde_json::Value| serde_json::to_string_pretty(v).unwrap_or_default();
    let entries = (ui.catalog)()
        .into_iter()
        .map(|(t, schema, data)| Entry {
            name: t.as_str(),
            description: t.description(),
            call_event: t.is_call_event(),
            schema: pretty(&schema),
            example: pretty(&json!({
                "id": "01a1ff3c-5b0e-7c1a-9f2e-3f6f1d0c2b7a",
                "type": t.as_str(),
                "created_at": "2026-11-21T15:04:05.123Z",
                "company_id": company,
                "data": data,
            })),
        })
        .collect();
    page(
        &ui,
        jar,
        &CatalogPage {
            shell: Shell::new(&admin, "event-types"),
            entries,
        },
    )
}
