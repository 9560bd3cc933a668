//! Webhooks: the list, the create form, and each webhook's detail page (edit, rotate the signing
//! secret, send a test, delete). A signing secret is shown once, on the page that answers the
//! create or rotate form, and never again.

use std::collections::BTreeMap;

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::{get, post};
use axum::Router;
use axum_extra::extract::cookie::CookieJar;
use casebridge_app::webhooks::{
    self as svc, AuditEntry, WebhookChanges, WebhookInput, WebhookView,
};
use casebridge_app::AppError;
use casebridge_domain::events::{DeliveryStatus, EventType};
use casebridge_domain::ids::WebhookId;
use casebridge_domain::page::PageRequest;
use jiff::Timestamp;

use crate::error::UiError;
use crate::session::Admin;
use crate::view::{done, page, render, FieldErrors, Form, Shell};
use crate::Ui;

pub fn routes() -> Router<Ui> {
    Router::new()
        .route("/webhooks", get(list).post(create))
        .route("/webhooks/new", get(new_form))
        .route("/webhooks/{id}", get(detail).post(update))
        .route("/webhooks/{id}/rotate-secret", post(rotate))
        .route("/webhooks/{id}/reveal-secret", post(reveal))
        .route("/webhooks/{id}/test", post(send_test))
        .route("/webhooks/{id}/delete", post(delete))
}

/// What an empty event selection means, in the words the list and forms use.
pub const ALL_EVENTS: &str = "All, including future";

pub(crate) fn webhook_id(raw: &str) -> Result<WebhookId, UiError> {
    raw.parse()
        .map_err(|_| UiError::App(AppError::not_found("webhook", raw)))
}

/// The host a URL points at (`hooks.example.com`), for the list.
fn host(url: &str) -> &str {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let authority = rest.split(['/', '?', '#']).next().unwrap_or(rest);
    authority.rsplit('@').next().unwrap_or(authority)
}

fn events_label(types: &[EventType]) -> String {
    if types.is_empty() {
        ALL_EVENTS.to_owned()
    } else {
        types
            .iter()
            .map(|t| t.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    }
}

fn scope_label(w: &WebhookView) -> String {
    match w.webhook.subscription.scope_campaign_id {
        Some(c) => format!("Campaign {c}"),
        None => "Company".to_owned(),
    }
}

// ---- the list ----

pub struct Row {
    pub id: String,
    pub name: String,
    pub host: String,
    pub events: String,
    pub scope: String,
    pub active: bool,
    pub disabled_reason: Option<String>,
    /// The latest delivery's outcome (`succeeded`, `failed`, `pending`) and HTTP status.
    pub last: Option<(&'static str, &'static str, Option<u16>, String)>,
}

#[derive(Template)]
#[template(path = "webhooks.html")]
struct ListPage {
    shell: Shell,
    rows: Vec<Row>,
    next: Option<String>,
}

#[derive(serde::Deserialize)]
struct ListQuery {
    cursor: Option<String>,
}

async fn list(
    State(ui): State<Ui>,
    jar: CookieJar,
    admin: Admin,
    Query(q): Query<ListQuery>,
) -> Result<Response, UiError> {
    let req =
        PageRequest::new(q.cursor.filter(|c| !c.is_empty()), Some(50)).map_err(AppError::from)?;
    let found = svc::overview(&ui.app, admin.session.company_id, &req).await?;
    let rows = found
        .items
        .iter()
        .map(|s| (&s.webhook, &s.last_delivery))
        .map(|(v, last)| Row {
            id: v.webhook.id.to_string(),
            name: v.webhook.name.clone(),
            host: host(&v.webhook.url).to_owned(),
            events: events_label(&v.webhook.subscription.event_types),
            scope: scope_label(v),
            active: v.webhook.active,
            disabled_reason: v.webhook.disabled_reason.clone(),
            last: last.as_ref().map(|d| {
                let class = match d.status {
                    DeliveryStatus::Succeeded => "ok",
                    DeliveryStatus::Failed => "warn",
                    DeliveryStatus::Pending => "muted",
                };
                (
                    d.status.as_str(),
                    class,
                    d.last_response_status,
                    d.id.to_string(),
                )
            }),
        })
        .collect();
    page(
        &ui,
        jar,
        &ListPage {
            shell: Shell::new(&admin, "webhooks"),
            rows,
            next: found.next_after,
        },
    )
}

// ---- the form (create and edit) ----

/// One event type checkbox.
pub struct EventOption {
    pub value: &'static str,
    pub description: &'static str,
    pub checked: bool,
}

/// What the form shows: what was typed (after an error) or what is stored.
#[derive(Debug, Clone, Default)]
pub struct WebhookForm {
    pub name: String,
    pub url: String,
    pub event_types: Vec<String>,
    pub campaign_ids: String,
    pub case_type_ids: String,
    pub app_key: String,
    pub remove_app_key: bool,
    pub active: bool,
    /// As typed; empty on a new webhook means the default.
    pub max_in_flight: String,
}

impl WebhookForm {
    fn from_fields(fields: &[(String, String)]) -> Self {
        let one = |k: &str| {
            fields
                .iter()
                .find(|(n, _)| n == k)
                .map(|(_, v)| v.clone())
                .unwrap_or_default()
        };
        let on = |k: &str| {
            fields
                .iter()
                .any(|(n, v)| n == k && (v == "on" || v == "true"))
        };
        Self {
            name: one("name"),
            url: one("url"),
            event_types: fields
                .iter()
                .filter(|(n, _)| n == "event_types")
                .map(|(_, v)| v.clone())
                .collect(),
            campaign_ids: one("campaign_ids"),
            case_type_ids: one("case_type_ids"),
            app_key: one("app_key"),
            remove_app_key: on("remove_app_key"),
            active: on("active"),
            max_in_flight: one("max_in_flight"),
        }
    }

    fn stored(v: &WebhookView) -> Self {
        let s = &v.webhook.subscription;
        let join = |ids: Vec<String>| ids.join(", ");
        Self {
            name: v.webhook.name.clone(),
            url: v.webhook.url.clone(),
            event_types: s
                .event_types
                .iter()
                .map(|t| t.as_str().to_owned())
                .collect(),
            campaign_ids: join(s.campaign_ids.iter().map(|c| c.to_string()).collect()),
            case_type_ids: join(s.case_type_ids.iter().map(|c| c.to_string()).collect()),
            app_key: String::new(),
            remove_app_key: false,
            active: v.webhook.active,
            max_in_flight: v.webhook.max_in_flight.to_string(),
        }
    }

    fn options(&self) -> Vec<EventOption> {
        EventType::SUBSCRIBABLE
            .iter()
            .map(|t| EventOption {
                value: t.as_str(),
                description: t.description(),
                checked: self.event_types.iter().any(|e| e == t.as_str()),
            })
            .collect()
    }
}

/// The in-flight bound as typed: empty leaves it (the default on a new webhook); anything that
/// is not a whole number is sent as 0, which the service refuses naming the field's range.
fn in_flight(raw: &str) -> Option<i64> {
    let t = raw.trim();
    (!t.is_empty()).then(|| t.parse().unwrap_or(0))
}

/// Ids typed as a list: separated by commas, spaces or new lines.
fn ids(raw: &str) -> Vec<String> {
    raw.split(|c: char| c == ',' || c.is_whitespace())
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

#[derive(Template)]
#[template(path = "webhook_new.html")]
struct NewPage {
    shell: Shell,
    form: WebhookForm,
    events: Vec<EventOption>,
    errors: FieldErrors,
    all_events: &'static str,
    app_key_masked: Option<String>,
}

async fn new_form(State(ui): State<Ui>, jar: CookieJar, admin: Admin) -> Result<Response, UiError> {
    let form = WebhookForm {
        active: true,
        ..WebhookForm::default()
    };
    page(
        &ui,
        jar,
        &NewPage {
            shell: Shell::new(&admin, "webhooks"),
            events: form.options(),
            form,
            errors: FieldErrors::default(),
            all_events: ALL_EVENTS,
            app_key_masked: None,
        },
    )
}

/// The page that shows a signing secret, once: right after create or rotate.
#[derive(Template)]
#[template(path = "webhook_secret.html")]
struct SecretPage {
    shell: Shell,
    id: String,
    name: String,
    secret: String,
    /// `created`, `rotated` or `revealed`.
    mode: &'static str,
    previous_until: Option<Timestamp>,
}

async fn create(
    State(ui): State<Ui>,
    admin: Admin,
    Form(fields): Form<Vec<(String, String)>>,
) -> Result<Response, UiError> {
    let form = WebhookForm::from_fields(&fields);
    let key = form.app_key.trim();
    let input = WebhookInput {
        name: form.name.clone(),
        url: form.url.clone(),
        event_types: form.event_types.clone(),
        campaign_ids: ids(&form.campaign_ids),
        case_type_ids: ids(&form.case_type_ids),
        app_key: (!key.is_empty()).then(|| key.to_owned()),
        active: form.active,
        secret: None,
        max_in_flight: in_flight(&form.max_in_flight),
    };
    match svc::create(&ui.app, admin.session.company_id, None, input).await {
        Ok(c) => render(
            StatusCode::CREATED,
            &SecretPage {
                shell: Shell::new(&admin, "webhooks"),
                id: c.webhook.webhook.id.to_string(),
                name: c.webhook.webhook.name.clone(),
                secret: c.secret,
                mode: "created",
                previous_until: None,
            },
        ),
        Err(e) => {
            let errors = FieldErrors::from_app(e, str::to_owned)?;
            let form = WebhookForm {
                app_key: String::new(),
                ..form
            };
            render(
                StatusCode::UNPROCESSABLE_ENTITY,
                &NewPage {
                    shell: Shell::new(&admin, "webhooks"),
                    events: form.options(),
                    form,
                    errors,
                    all_events: ALL_EVENTS,
                    app_key_masked: None,
                },
            )
        }
    }
}

// ---- detail ----

#[derive(Template)]
#[template(path = "webhook.html")]
struct DetailPage {
    shell: Shell,
    id: String,
    scope: String,
    disabled_reason: Option<String>,
    app_key_masked: Option<String>,
    form: WebhookForm,
    events: Vec<EventOption>,
    errors: FieldErrors,
    all_events: &'static str,
    last_reveal: Option<AuditEntry>,
}

fn detail_page(
    admin: &Admin,
    v: &WebhookView,
    form: WebhookForm,
    errors: FieldErrors,
) -> DetailPage {
    DetailPage {
        shell: Shell::new(admin, "webhooks"),
        id: v.webhook.id.to_string(),
        scope: scope_label(v),
        disabled_reason: v.webhook.disabled_reason.clone(),
        app_key_masked: v.app_key_masked.clone(),
        events: form.options(),
        form,
        errors,
        all_events: ALL_EVENTS,
        last_reveal: None,
    }
}

async fn detail(
    State(ui): State<Ui>,
    jar: CookieJar,
    admin: Admin,
    Path(id): Path<String>,
) -> Result<Response, UiError> {
    let id = webhook_id(&id)?;
    let d = svc::detail(&ui.app, admin.session.company_id, id).await?;
    let form = WebhookForm::stored(&d.view);
    let view = DetailPage {
        last_reveal: d.last_reveal,
        ..detail_page(&admin, &d.view, form, FieldErrors::default())
    };
    page(&ui, jar, &view)
}

/// Shows the current signing secret (POST only, so it is never in a URL, a history entry or a
/// cache); the reveal is recorded in the audit log with the admin's email.
async fn reveal(
    State(ui): State<Ui>,
    admin: Admin,
    Path(id): Path<String>,
) -> Result<Response, UiError> {
    let id = webhook_id(&id)?;
    let company = admin.session.company_id;
    let secret = svc::reveal_secret(&ui.app, company, id, &admin.session.email).await?;
    let v = svc::get(&ui.app, company, id).await?;
    render(
        StatusCode::OK,
        &SecretPage {
            shell: Shell::new(&admin, "webhooks"),
            id: id.to_string(),
            name: v.webhook.name,
            secret,
            mode: "revealed",
            previous_until: None,
        },
    )
}

async fn update(
    State(ui): State<Ui>,
    jar: CookieJar,
    admin: Admin,
    Path(id): Path<String>,
    Form(fields): Form<Vec<(String, String)>>,
) -> Result<Response, UiError> {
    let id = webhook_id(&id)?;
    let company = admin.session.company_id;
    let form = WebhookForm::from_fields(&fields);
    let key = form.app_key.trim();
    let changes = WebhookChanges {
        name: Some(form.name.clone()),
        url: Some(form.url.clone()),
        event_types: Some(form.event_types.clone()),
        campaign_ids: Some(ids(&form.campaign_ids)),
        case_type_ids: Some(ids(&form.case_type_ids)),
        app_key: if form.remove_app_key {
            Some(None)
        } else if key.is_empty() {
            None
        } else {
            Some(Some(key.to_owned()))
        },
        active: Some(form.active),
        max_in_flight: in_flight(&form.max_in_flight),
    };
    match svc::update(&ui.app, company, id, changes).await {
        Ok(_) => Ok(done(
            &ui,
            jar,
            &format!("/ui/webhooks/{id}"),
            "Webhook saved.",
        )),
        Err(e) => {
            let errors = FieldErrors::from_app(e, str::to_owned)?;
            let v = svc::get(&ui.app, company, id).await?;
            let form = WebhookForm {
                app_key: String::new(),
                ..form
            };
            render(
                StatusCode::UNPROCESSABLE_ENTITY,
                &detail_page(&admin, &v, form, errors),
            )
        }
    }
}

async fn rotate(
    State(ui): State<Ui>,
    admin: Admin,
    Path(id): Path<String>,
    Form(form): Form<BTreeMap<String, String>>,
) -> Result<Response, UiError> {
    let id = webhook_id(&id)?;
    let company = admin.session.company_id;
    let overlap = form.get("overlap_secs").and_then(|v| v.parse::<u64>().ok());
    match svc::rotate_secret(&ui.app, company, id, None, overlap).await {
        Ok(r) => {
            let v = svc::get(&ui.app, company, id).await?;
            render(
                StatusCode::OK,
                &SecretPage {
                    shell: Shell::new(&admin, "webhooks"),
                    id: id.to_string(),
                    name: v.webhook.name,
                    secret: r.secret,
                    mode: "rotated",
                    previous_until: Some(r.previous_secrets_expire_at),
                },
            )
        }
        Err(e) => {
            let errors = FieldErrors::from_app(e, |_| "rotate".to_owned())?;
            let v = svc::get(&ui.app, company, id).await?;
            let form = WebhookForm::stored(&v);
            render(
                StatusCode::UNPROCESSABLE_ENTITY,
                &detail_page(&admin, &v, form, errors),
            )
        }
    }
}

async fn send_test(
    State(ui): State<Ui>,
    jar: CookieJar,
    admin: Admin,
    Path(id): Path<String>,
) -> Result<Response, UiError> {
    let id = webhook_id(&id)?;
    let queued = svc::send_test(&ui.app, admin.session.company_id, id).await?;
    Ok(done(
        &ui,
        jar,
        &format!("/ui/deliveries/{}", queued.delivery_id),
        format!(
            "A signed webhook.test event ({}) was queued. This page shows its attempts once it is sent.",
            queued.event_id
        ),
    ))
}

async fn delete(
    State(ui): State<Ui>,
    jar: CookieJar,
    admin: Admin,
    Path(id): Path<String>,
) -> Result<Response, UiError> {
    let id = webhook_id(&id)?;
    let company = admin.session.company_id;
    svc::delete(&ui.app, company, id).await?;
    Ok(done(
        &ui,
        jar,
        "/ui/webhooks",
        "Webhook deleted, with its deliveries and their log.",
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_is_the_authority_without_credentials() {
        assert_eq!(host("https://hooks.example.com/x?y"), "hooks.example.com");
        assert_eq!(host("https://u:p@h.test:8443/"), "h.test:8443");
        assert_eq!(ids("a, b\nc,,"), ["a", "b", "c"]);
    }
}
