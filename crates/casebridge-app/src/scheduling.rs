//! Scheduling (SPEC §6): the company's scheduling connection, agents, and availability and
//! booking during a call.
//!
//! Unlike the other use cases, availability and booking ask the scheduling service while the
//! caller waits: the agent is on a live call and needs the answer now (SCH3). Connecting a key
//! also asks it, to check the key. These return the scheduling crate's own [`SchedulingError`],
//! whose cases callers answer with their own codes; managing agents returns [`crate::AppError`].

use casebridge_domain::ids::{CaseId, CompanyId};
use casebridge_domain::page::{Page, PageRequest};
use casebridge_domain::scheduling::{
    company_zone, Agent, AgentId, AgentPatch, Booking, BookingBlocker, NewAgent,
};
use casebridge_scheduling::{
    Availability, Booked, BookingAsk, CalClient, ConnectionView, Scheduling, SchedulingError,
};
use casebridge_store::{companies, scheduling as db, Conn};
use jiff::tz::TimeZone;

use crate::{App, OrNotFound, Result};

/// The scheduling integration: the company's connection, if any, and the service it talks to.
#[derive(Debug, Clone)]
pub struct SchedulingIntegration {
    pub connection: Option<ConnectionView>,
    /// The scheduling service's base URL (`CASEBRIDGE_SCHEDULING_URL`).
    pub base_url: String,
}

/// An agent and what stops it from booking right now (`None`: it can book).
#[derive(Debug, Clone)]
pub struct AgentView {
    pub agent: Agent,
    pub booking_blocker: Option<BookingBlocker>,
}

/// A page of an agent's bookings and the company's zone, for showing them.
#[derive(Debug, Clone)]
pub struct Bookings {
    pub page: Page<Booking>,
    pub time_zone: TimeZone,
}

fn service(app: &App) -> Scheduling {
    Scheduling::new(
        app.store().clone(),
        app.keyring().clone(),
        CalClient::new(app.outbound().clone(), app.scheduling_url())
            .with_policy(app.url_policy().clone()),
        app.clock().clone(),
    )
}

fn integration(app: &App, connection: Option<ConnectionView>) -> SchedulingIntegration {
    SchedulingIntegration {
        connection,
        base_url: app.scheduling_url().to_owned(),
    }
}

// ---- connection ----

/// The scheduling integration: connected or not, the key masked.
pub async fn status(
    app: &App,
    company: CompanyId,
) -> Result<SchedulingIntegration, SchedulingError> {
    let view = service(app).status(company).await?;
    Ok(integration(app, view))
}

/// Connects the company's scheduling API key (SCH1). The key is checked with the scheduling
/// service first; a key it refuses is a validation error on `api_key`, and if the service
/// cannot be reached nothing is stored either. A new key replaces the previous one; it is
/// stored sealed.
pub async fn connect(
    app: &App,
    company: CompanyId,
    api_key: &str,
) -> Result<SchedulingIntegration, SchedulingError> {
    let view = service(app).connect(company, api_key).await?;
    Ok(integration(app, Some(view)))
}

/// Deletes the stored key. Agents with booking on can no longer check availability or book
/// until a key is connected again.
pub async fn disconnect(
    app: &App,
    company: CompanyId,
) -> Result<SchedulingIntegration, SchedulingError> {
    service(app).disconnect(company).await?;
    Ok(integration(app, None))
}

// ---- agents ----

/// Whether the company has a scheduling key (an agent's booking status depends on it).
async fn connected(conn: &mut Conn, company: CompanyId) -> Result<bool> {
    Ok(db::connection(conn, company).await?.is_some())
}

fn agent_view(agent: Agent, connected: bool) -> AgentView {
    AgentView {
        booking_blocker: agent.booking_blocker(connected),
        agent,
    }
}

/// The company's agents with their booking status.
pub async fn list_agents(
    app: &App,
    company: CompanyId,
    page: &PageRequest,
) -> Result<Page<AgentView>> {
    let mut conn = app.store().conn().await?;
    let connected = connected(&mut conn, company).await?;
    let found = db::list_agents(&mut conn, company, page).await?;
    Ok(found.map(|a| agent_view(a, connected)))
}

/// Creates an agent. Every agent uses the company's scheduling key and time zone (SCH2).
pub async fn create_agent(app: &App, company: CompanyId, new: &NewAgent) -> Result<AgentView> {
    let mut tx = app.store().begin().await?;
    let connected = connected(&mut tx, company).await?;
    let agent = db::create_agent(&mut tx, company, new, app.now()).await?;
    tx.commit().await?;
    Ok(agent_view(agent, connected))
}

pub async fn agent(app: &App, company: CompanyId, id: AgentId) -> Result<AgentView> {
    let mut conn = app.store().conn().await?;
    let connected = connected(&mut conn, company).await?;
    let agent = db::agent(&mut conn, company, id)
        .await
        .or_not_found("agent", &id.to_string())?;
    Ok(agent_view(agent, connected))
}

/// Changes an agent: name, appointment booking on/off, event type (`Some(None)` clears it).
pub async fn update_agent(
    app: &App,
    company: CompanyId,
    id: AgentId,
    patch: &AgentPatch,
) -> Result<AgentView> {
    let mut tx = app.store().begin().await?;
    let connected = connected(&mut tx, company).await?;
    let agent = db::update_agent(&mut tx, company, id, patch, app.now())
        .await
        .or_not_found("agent", &id.to_string())?;
    tx.commit().await?;
    Ok(agent_view(agent, connected))
}

// ---- availability and booking ----

/// Open slots of the agent's event type starting within `[start, end)`, in the company's zone
/// (SCH3), asked of the scheduling service now. `start`/`end` without an offset are read in
/// the company's zone; a date means the whole day.
pub async fn availability(
    app: &App,
    company: CompanyId,
    agent_id: &str,
    start: &str,
    end: &str,
) -> Result<Availability, SchedulingError> {
    service(app)
        .availability(company, agent_id, start, end)
        .await
}

/// Books an appointment with the agent's event type (SCH3); the attendee is the case's client
/// or the one given. A time taken meanwhile is refused with open slots nearby; nothing is
/// double-booked. The booking is recorded with the case.
pub async fn book(
    app: &App,
    company: CompanyId,
    agent_id: &str,
    ask: &BookingAsk,
) -> Result<Booked, SchedulingError> {
    service(app).book(company, agent_id, ask).await
}

/// The agent's bookings in creation order, optionally only one case's.
pub async fn bookings(
    app: &App,
    company: CompanyId,
    agent: AgentId,
    case: Option<CaseId>,
    page: &PageRequest,
) -> Result<Bookings> {
    let mut conn = app.store().conn().await?;
    db::agent(&mut conn, company, agent)
        .await
        .or_not_found("agent", &agent.to_string())?;
    let time_zone = company_zone(&companies::get(&mut conn, company).await?.timezone);
    let page = db::list_bookings(&mut conn, company, agent, case, page).await?;
    Ok(Bookings { page, time_zone })
}

/// A scheduling failure as the other use cases report theirs (for callers, such as the admin UI,
/// that show every failure the same way).
impl From<SchedulingError> for crate::AppError {
    fn from(e: SchedulingError) -> Self {
        use crate::AppError as A;
        match e {
            SchedulingError::AgentNotFound(_) => A::NotFound(e.to_string()),
            SchedulingError::Invalid(v) => A::Validation(v),
            SchedulingError::Store(s) => s.into(),
            SchedulingError::Unavailable { .. } => A::Unavailable(e.to_string()),
            SchedulingError::KeyRejected(_)
            | SchedulingError::Upstream(_)
            | SchedulingError::EventTypeNotFound { .. } => A::BadGateway(e.to_string()),
            SchedulingError::Blocked(_) | SchedulingError::SlotUnavailable { .. } => {
                A::Conflict(e.to_string())
            }
            SchedulingError::Sealed(_) => A::Internal(e.to_string()),
        }
    }
}
