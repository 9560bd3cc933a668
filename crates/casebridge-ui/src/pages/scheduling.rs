//! Scheduling (SCH1, SCH2): connect the scheduling API key (checked live), Connected badge with
//! the key masked, disconnect; agents with their booking toggle and Event Type ID, and what
//! stops each from booking.

use askama::Template;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::{get, post};
use axum::Router;
use axum_extra::extract::cookie::CookieJar;
use casebridge_app::scheduling::{self as svc, AgentView, SchedulingIntegration};
use casebridge_app::AppError;
use casebridge_domain::error::Validator;
use casebridge_domain::page::PageRequest;
use casebridge_domain::records::Name;
use casebridge_domain::scheduling::{AgentId, AgentPatch, BookingBlocker, EventTypeId, NewAgent};
use serde::Deserialize;

use crate::error::UiError;
use crate::session::Admin;
use crate::view::{done, page, render, FieldErrors, Form, Shell};
use crate::Ui;

pub fn routes() -> Router<Ui> {
    Router::new()
        .route("/scheduling", get(show))
        .route("/scheduling/connect", post(connect))
        .route("/scheduling/disconnect", post(disconnect))
        .route("/scheduling/agents", post(create_agent))
        .route("/scheduling/agents/{id}", post(update_agent))
}

/// An agent row as shown.
pub struct AgentRow {
    pub view: AgentView,
    pub blocker: Option<&'static str>,
}

#[derive(Template)]
#[template(path = "scheduling.html")]
struct SchedulingPage {
    shell: Shell,
    integration: SchedulingIntegration,
    agents: Vec<AgentRow>,
    more_agents: bool,
    errors: FieldErrors,
    /// Which form the errors belong to: `connect`, `new-agent` or an agent id.
    errors_for: String,
}

fn blocker_text(b: BookingBlocker) -> &'static str {
    match b {
        BookingBlocker::BookingOff => "Booking is off for this agent.",
        BookingBlocker::NoEventType => "Set an Event Type ID to let this agent book.",
        BookingBlocker::NotConnected => "Connect the scheduling API key above first.",
    }
}

async fn scheduling_page(
    ui: &Ui,
    admin: &Admin,
    errors: FieldErrors,
    errors_for: &str,
) -> Result<SchedulingPage, UiError> {
    let company = admin.session.company_id;
    let integration = svc::status(&ui.app, company)
        .await
        .map_err(AppError::from)?;
    let agents = svc::list_agents(&ui.app, company, &PageRequest::first(200)).await?;
    Ok(SchedulingPage {
        shell: Shell::new(admin, "scheduling"),
        integration,
        more_agents: agents.next_after.is_some(),
        agents: agents
            .items
            .into_iter()
            .map(|view| AgentRow {
                blocker: view.booking_blocker.map(blocker_text),
                view,
            })
            .collect(),
        errors,
        errors_for: errors_for.to_owned(),
    })
}

async fn show(State(ui): State<Ui>, jar: CookieJar, admin: Admin) -> Result<Response, UiError> {
    let view = scheduling_page(&ui, &admin, FieldErrors::default(), "").await?;
    page(&ui, jar, &view)
}

async fn refused(ui: &Ui, admin: &Admin, e: AppError, form: &str) -> Result<Response, UiError> {
    let errors = match e {
        AppError::Unavailable(m) => FieldErrors::general(format!(
            "The scheduling service could not be reached: {m}. Nothing was saved; try again."
        )),
        other => FieldErrors::from_app(other, |f| f.rsplit('.').next().unwrap_or(f).to_owned())?,
    };
    let view = scheduling_page(ui, admin, errors, form).await?;
    render(StatusCode::UNPROCESSABLE_ENTITY, &view)
}

#[derive(Deserialize)]
struct KeyForm {
    #[serde(default)]
    api_key: String,
}

async fn connect(
    State(ui): State<Ui>,
    jar: CookieJar,
    admin: Admin,
    Form(f): Form<KeyForm>,
) -> Result<Response, UiError> {
    match svc::connect(&ui.app, admin.session.company_id, f.api_key.trim()).await {
        Ok(_) => Ok(done(
            &ui,
            jar,
            "/ui/scheduling",
            "Connected: the scheduling service accepted the key.",
        )),
        Err(e) => refused(&ui, &admin, e.into(), "connect").await,
    }
}

async fn disconnect(
    State(ui): State<Ui>,
    jar: CookieJar,
    admin: Admin,
) -> Result<Response, UiError> {
    svc::disconnect(&ui.app, admin.session.company_id)
        .await
        .map_err(AppError::from)?;
    Ok(done(
        &ui,
        jar,
        "/ui/scheduling",
        "Disconnected: the key was deleted. Agents cannot book until a key is connected again.",
    ))
}

/// The agent form: a name, the booking checkbox and an Event Type ID (empty: none).
#[derive(Deserialize)]
struct AgentForm {
    #[serde(default)]
    name: String,
    appointment_booking: Option<String>,
    #[serde(default)]
    event_type_id: String,
}

fn event_type(raw: &str, v: &mut Validator) -> Option<EventTypeId> {
    let raw = raw.trim();
    if raw.is_empty() {
        return None;
    }
    match raw.parse::<i64>() {
        Ok(n) => v.check(EventTypeId::parse("event_type_id", n)),
        Err(_) => {
            v.push(
                "event_type_id",
                "must be a number: the number at the end of the event type's URL",
            );
            None
        }
    }
}

async fn create_agent(
    State(ui): State<Ui>,
    jar: CookieJar,
    admin: Admin,
    Form(f): Form<AgentForm>,
) -> Result<Response, UiError> {
    let mut v = Validator::new();
    let name = v.check(Name::parse("name", &f.name));
    let event_type_id = event_type(&f.event_type_id, &mut v);
    let parsed = v.finish().map(|()| NewAgent {
        name: name.expect("checked"),
        appointment_booking: f.appointment_booking.is_some(),
        event_type_id,
    });
    let result = match parsed {
        Ok(new) => svc::create_agent(&ui.app, admin.session.company_id, &new).await,
        Err(e) => Err(e.into()),
    };
    match result {
        Ok(a) => Ok(done(
            &ui,
            jar,
            "/ui/scheduling#agents",
            format!("Agent {} added.", a.agent.name),
        )),
        Err(e) => refused(&ui, &admin, e, "new-agent").await,
    }
}

async fn update_agent(
    State(ui): State<Ui>,
    jar: CookieJar,
    admin: Admin,
    Path(id): Path<String>,
    Form(f): Form<AgentForm>,
) -> Result<Response, UiError> {
    let id: AgentId = id.parse().map_err(|_| AppError::not_found("agent", &id))?;
    let mut v = Validator::new();
    let name = v.check(Name::parse("name", &f.name));
    let event_type_id = event_type(&f.event_type_id, &mut v);
    let parsed = v.finish().map(|()| AgentPatch {
        name,
        appointment_booking: Some(f.appointment_booking.is_some()),
        event_type_id: Some(event_type_id),
    });
    let result = match parsed {
        Ok(patch) => svc::update_agent(&ui.app, admin.session.company_id, id, &patch).await,
        Err(e) => Err(e.into()),
    };
    match result {
        Ok(a) => Ok(done(
            &ui,
            jar,
            "/ui/scheduling#agents",
            format!("Agent {} saved.", a.agent.name),
        )),
        Err(e) => refused(&ui, &admin, e, &id.to_string()).await,
    }
}
