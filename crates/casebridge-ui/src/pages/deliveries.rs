//! Deliveries: the filtered list (every filter in the URL, so a link shares the view), the
//! delivery inspector with every attempt, replay of one, and recovery of every failed delivery
//! matching the filters, behind a confirmation that states how many.

use std::collections::BTreeMap;

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use axum_extra::extract::cookie::CookieJar;
use casebridge_app::webhooks::{self as svc, DeliveryDetail};
use casebridge_app::AppError;
use casebridge_domain::error::Validator;
use casebridge_domain::events::{
    Attempt, Delivery, DeliveryFilter, DeliveryStatus, EventType, Trigger,
};
use casebridge_domain::ids::{DeliveryId, EventId};
use casebridge_domain::page::PageRequest;
use jiff::Timestamp;

use crate::error::UiError;
use crate::session::Admin;
use crate::view::{done, page, render, FieldErrors, Form, Shell};
use crate::Ui;

pub fn routes() -> Router<Ui> {
    Router::new()
        .route("/deliveries", get(list))
        .route("/deliveries/recover", get(recover_confirm).post(recover))
        .route("/deliveries/{id}", get(inspect))
        .route("/deliveries/{id}/replay", post(replay))
}

/// The filter fields, by query name, as typed (so the form and links keep them).
const FILTER_FIELDS: [&str; 7] = [
    "webhook",
    "status",
    "event_type",
    "trigger",
    "since",
    "until",
    "event_id",
];

/// The filters as typed.
#[derive(Debug, Clone, Default)]
pub struct FilterForm {
    raw: BTreeMap<String, String>,
}

impl FilterForm {
    fn from_map(map: &BTreeMap<String, String>) -> Self {
        let raw = FILTER_FIELDS
            .iter()
            .filter_map(|k| {
                map.get(*k)
                    .map(|v| v.trim())
                    .filter(|v| !v.is_empty())
                    .map(|v| ((*k).to_owned(), v.to_owned()))
            })
            .collect();
        Self { raw }
    }

    pub fn get(&self, field: &str) -> &str {
        self.raw.get(field).map_or("", String::as_str)
    }

    pub fn is(&self, field: &str, value: &str) -> bool {
        self.get(field) == value
    }

    pub fn is_empty(&self) -> bool {
        self.raw.is_empty()
    }

    /// The filters as a query string (without `?`).
    pub fn query(&self) -> String {
        serde_urlencoded::to_string(&self.raw).unwrap_or_default()
    }

    /// The filters as hidden fields, to send them with a form.
    pub fn pairs(&self) -> Vec<(String, String)> {
        self.raw
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }

    /// A time filter as a `datetime-local` input shows it (in the company's time zone).
    pub fn time_value(&self, shell: &Shell, field: &str) -> String {
        match shell.parse_local(self.get(field)) {
            Some(t) => shell.input_value(&t),
            None => self.get(field).to_owned(),
        }
    }

    /// The filter, or the errors of the fields that could not be read.
    fn parse(&self, shell: &Shell) -> Result<DeliveryFilter, FieldErrors> {
        let mut v = Validator::new();
        let mut f = DeliveryFilter::default();
        let raw = |k: &str| self.raw.get(k).map(String::as_str);
        if let Some(w) = raw("webhook") {
            match w.parse() {
                Ok(id) => f.webhook_id = Some(id),
                Err(_) => v.push("webhook", "is not a webhook id"),
            }
        }
        if let Some(s) = raw("status") {
            match DeliveryStatus::parse(s) {
                Some(s) => f.status = Some(s),
                None => v.push("status", "choose pending, succeeded or failed"),
            }
        }
        if let Some(t) = raw("event_type") {
            match EventType::parse(t) {
                Some(t) => f.event_type = Some(t),
                None => v.push("event_type", "is not an event type"),
            }
        }
        if let Some(t) = raw("trigger") {
            match Trigger::parse(t) {
                Some(t) => f.trigger = Some(t),
                None => v.push("trigger", "choose scheduled, retry, manual or test"),
            }
        }
        for (field, slot) in [("since", &mut f.since), ("until", &mut f.until)] {
            if let Some(t) = raw(field) {
                match shell
                    .parse_local(t)
                    .map(|t| casebridge_domain::input::check_time(field, t))
                {
                    Some(Ok(t)) => *slot = Some(t),
                    _ => v.push(
                        field,
                        "is not a date and time; use the picker or write 2026-12-02T09:14",
                    ),
                }
            }
        }
        if let Some(e) = raw("event_id") {
            match e.parse::<EventId>() {
                Ok(id) => f.event_id = Some(id),
                Err(_) => v.push(
                    "event_id",
                    "is not an event id (it looks like 01a1ff3c-5b0e-7c1a-9f2e-3f6f1d0c2b7a)",
                ),
            }
        }
        match v.finish() {
            Ok(()) => Ok(f),
            Err(e) => Err(
                FieldErrors::from_app(AppError::Validation(e), str::to_owned).unwrap_or_default(),
            ),
        }
    }
}

/// The choices of the filter selects.
pub struct Choices {
    pub statuses: [&'static str; 3],
    pub triggers: [&'static str; 4],
    pub event_types: Vec<&'static str>,
}

fn choices() -> Choices {
    let mut event_types: Vec<&'static str> =
        EventType::SUBSCRIBABLE.iter().map(|t| t.as_str()).collect();
    event_types.push(EventType::WebhookTest.as_str());
    Choices {
        statuses: ["pending", "succeeded", "failed"],
        triggers: ["scheduled", "retry", "manual", "test"],
        event_types,
    }
}

fn status_class(s: DeliveryStatus) -> &'static str {
    match s {
        DeliveryStatus::Pending => "muted",
        DeliveryStatus::Succeeded => "ok",
        DeliveryStatus::Failed => "warn",
    }
}

// ---- the list ----

#[derive(Template)]
#[template(path = "deliveries.html")]
struct ListPage {
    shell: Shell,
    f: FilterForm,
    errors: FieldErrors,
    choices: Choices,
    rows: Vec<Delivery>,
    next: Option<String>,
}

impl ListPage {
    fn class(&self, s: &DeliveryStatus) -> &'static str {
        status_class(*s)
    }
}

async fn list(
    State(ui): State<Ui>,
    jar: CookieJar,
    admin: Admin,
    Query(q): Query<BTreeMap<String, String>>,
) -> Result<Response, UiError> {
    let shell = Shell::new(&admin, "deliveries");
    let f = FilterForm::from_map(&q);
    let filter = match f.parse(&shell) {
        Ok(filter) => filter,
        Err(errors) => {
            return render(
                StatusCode::UNPROCESSABLE_ENTITY,
                &ListPage {
                    shell,
                    f,
                    errors,
                    choices: choices(),
                    rows: Vec::new(),
                    next: None,
                },
            )
        }
    };
    let cursor = q.get("cursor").filter(|c| !c.is_empty()).cloned();
    let req = PageRequest::new(cursor, Some(50)).map_err(AppError::from)?;
    let found = svc::search_deliveries(&ui.app, admin.session.company_id, &filter, &req).await?;
    let next = found.next_after.map(|after| {
        let mut pairs = f.pairs();
        pairs.push(("cursor".into(), after));
        format!(
            "/ui/deliveries?{}",
            serde_urlencoded::to_string(&pairs).unwrap_or_default()
        )
    });
    page(
        &ui,
        jar,
        &ListPage {
            shell,
            f,
            errors: FieldErrors::default(),
            choices: choices(),
            rows: found.items,
            next,
        },
    )
}

// ---- the inspector ----

#[derive(Template)]
#[template(path = "delivery.html")]
struct InspectPage {
    shell: Shell,
    d: Delivery,
    status_class: &'static str,
    payload: String,
    attempts: Vec<Attempt>,
    next_attempt_at: Option<Timestamp>,
    errors: FieldErrors,
}

fn inspect_page(admin: &Admin, detail: DeliveryDetail, errors: FieldErrors) -> InspectPage {
    InspectPage {
        shell: Shell::new(admin, "deliveries"),
        status_class: status_class(detail.delivery.status),
        payload: serde_json::to_string_pretty(&detail.payload).unwrap_or_default(),
        d: detail.delivery,
        attempts: detail.attempts,
        next_attempt_at: detail.next_attempt_at,
        errors,
    }
}

fn delivery_id(raw: &str) -> Result<DeliveryId, UiError> {
    raw.parse()
        .map_err(|_| UiError::App(AppError::not_found("delivery", raw)))
}

async fn inspect(
    State(ui): State<Ui>,
    jar: CookieJar,
    admin: Admin,
    Path(id): Path<String>,
) -> Result<Response, UiError> {
    let id = delivery_id(&id)?;
    let detail = svc::delivery(&ui.app, admin.session.company_id, id).await?;
    page(
        &ui,
        jar,
        &inspect_page(&admin, detail, FieldErrors::default()),
    )
}

async fn replay(
    State(ui): State<Ui>,
    jar: CookieJar,
    admin: Admin,
    Path(id): Path<String>,
) -> Result<Response, UiError> {
    let id = delivery_id(&id)?;
    let company = admin.session.company_id;
    match svc::replay(&ui.app, company, id).await {
        Ok(q) => Ok(done(
            &ui,
            jar,
            &format!("/ui/deliveries/{id}"),
            format!(
                "Queued again, with the same event id {}: the next attempt is sent shortly.",
                q.event_id
            ),
        )),
        Err(e) => {
            let errors = FieldErrors::from_app(e, str::to_owned)?;
            let detail = svc::delivery(&ui.app, company, id).await?;
            render(StatusCode::CONFLICT, &inspect_page(&admin, detail, errors))
        }
    }
}

// ---- recovery ----

#[derive(Template)]
#[template(path = "recover.html")]
struct RecoverPage {
    shell: Shell,
    f: FilterForm,
    errors: FieldErrors,
    choices: Choices,
    /// How many failed deliveries would be queued again; `None` until a start time is given.
    count: Option<usize>,
}

/// Recovery sends again failed deliveries created since a time, like `POST
/// /api/v1/webhooks/{id}/recover`: without a start time it is refused.
fn require_since(filter: &DeliveryFilter) -> Result<(), FieldErrors> {
    if filter.since.is_none() {
        let mut v = Validator::new();
        v.push(
            "since",
            "choose since when: recovery sends again the failed deliveries created since then",
        );
        let e = v.finish().expect_err("an error was pushed");
        return Err(
            FieldErrors::from_app(AppError::Validation(e), str::to_owned).unwrap_or_default(),
        );
    }
    Ok(())
}

/// The filters of a recovery, checked (a `since` time is required); or the confirmation page
/// again, with the errors next to the filters (422).
fn recovery_filter(
    shell: Shell,
    f: FilterForm,
) -> Result<(Shell, FilterForm, DeliveryFilter), Box<Response>> {
    match f
        .parse(&shell)
        .and_then(|filter| require_since(&filter).map(|()| filter))
    {
        Ok(filter) => Ok((shell, f, filter)),
        Err(errors) => Err(Box::new(
            render(
                StatusCode::UNPROCESSABLE_ENTITY,
                &RecoverPage {
                    shell,
                    f,
                    errors,
                    choices: choices(),
                    count: None,
                },
            )
            .unwrap_or_else(IntoResponse::into_response),
        )),
    }
}

async fn recover_confirm(
    State(ui): State<Ui>,
    jar: CookieJar,
    admin: Admin,
    Query(q): Query<BTreeMap<String, String>>,
) -> Result<Response, UiError> {
    let shell = Shell::new(&admin, "deliveries");
    // Arriving from the deliveries list without a start time is not a mistake: the page asks
    // for one (200); any other refused filter is a 422.
    let asks_since = q.get("since").is_none_or(|s| s.trim().is_empty());
    let (shell, f, filter) = match recovery_filter(shell, FilterForm::from_map(&q)) {
        Ok(checked) => checked,
        Err(mut refused) => {
            if asks_since && refused.status() == StatusCode::UNPROCESSABLE_ENTITY {
                *refused.status_mut() = StatusCode::OK;
            }
            return Ok(*refused);
        }
    };
    let count = svc::recoverable(&ui.app, admin.session.company_id, &filter).await?;
    page(
        &ui,
        jar,
        &RecoverPage {
            shell,
            f,
            errors: FieldErrors::default(),
            choices: choices(),
            count: Some(count),
        },
    )
}

async fn recover(
    State(ui): State<Ui>,
    jar: CookieJar,
    admin: Admin,
    Form(form): Form<BTreeMap<String, String>>,
) -> Result<Response, UiError> {
    let shell = Shell::new(&admin, "deliveries");
    let (_, f, filter) = match recovery_filter(shell, FilterForm::from_map(&form)) {
        Ok(checked) => checked,
        Err(refused) => return Ok(*refused),
    };
    let n = svc::recover_matching(&ui.app, admin.session.company_id, &filter).await?;
    Ok(done(
        &ui,
        jar,
        &format!("/ui/deliveries?{}", f.query()),
        format!("{n} requeued: each failed delivery matching the filters will be sent again."),
    ))
}
