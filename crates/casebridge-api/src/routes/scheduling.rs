//! Scheduling (SPEC §6): the company's scheduling connection, agents, and availability and
//! booking during a call.
//!
//! Unlike the rest of the API, availability and booking call the scheduling service while the
//! request waits: the agent is on a live call and needs the answer now (SCH3). Connecting a key
//! also calls it, to check the key. Failures of the service answer in the API's error format
//! with their own codes:
//!
//! | status | code | when |
//! |---|---|---|
//! | 409 | `scheduling_not_connected` | the company has no scheduling key |
//! | 409 | `booking_disabled` | the agent's appointment booking is off |
//! | 409 | `event_type_missing` | the agent has no event type |
//! | 409 | `event_type_not_found` | the service does not know the agent's event type |
//! | 409 | `scheduling_key_rejected` | the service refuses the stored key (reconnect) |
//! | 409 | `slot_unavailable` | the time cannot be booked; `available_slots` lists nearby ones |
//! | 503 | `scheduling_unavailable` | the service cannot be reached, fails, is slow or rate limits (`Retry-After` when known) |
//! | 502 | `scheduling_error` | the service answered in a way its API does not allow |

use axum::extract::State;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use casebridge_app::scheduling::{self, AgentView, SchedulingIntegration};
use casebridge_app::AppError;
use casebridge_domain::error::Validator;
use casebridge_domain::ids::CaseId;
use casebridge_domain::records::Name;
use casebridge_domain::scheduling::{
    company_zone, AgentId, AgentPatch, Booking, BookingBlocker, EventTypeId, NewAgent,
};
use casebridge_domain::ValidationError;
use casebridge_scheduling::slots::{rfc3339, LocalSlot};
use casebridge_scheduling::{AttendeeAsk, BookingAsk, SchedulingError};
use jiff::tz::TimeZone;
use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::dto::{double_option, page_request, PageOut};
use crate::error::{ApiError, ErrorBody};
use crate::extract::{path_id, Auth, Json, Path, Query};
use crate::AppState;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(get_scheduling))
        .routes(routes!(connect, disconnect))
        .routes(routes!(list_agents, create_agent))
        .routes(routes!(get_agent, update_agent))
        .routes(routes!(availability))
        .routes(routes!(list_bookings, book))
}

// ---- errors ----

/// A handler's error: the API's own, or one from scheduling with its specific code.
#[derive(Debug)]
enum RouteError {
    Api(ApiError),
    Scheduling(SchedulingError),
}

impl From<ApiError> for RouteError {
    fn from(e: ApiError) -> Self {
        RouteError::Api(e)
    }
}

impl From<SchedulingError> for RouteError {
    fn from(e: SchedulingError) -> Self {
        RouteError::Scheduling(e)
    }
}

impl From<AppError> for RouteError {
    fn from(e: AppError) -> Self {
        RouteError::Api(e.into())
    }
}

impl From<ValidationError> for RouteError {
    fn from(e: ValidationError) -> Self {
        RouteError::Api(e.into())
    }
}

/// The error envelope of scheduling failures: the API's `{"error": {"code", "message",
/// "details"}}` (`details` is empty), plus `available_slots` when a time could not be booked.
#[derive(Debug, Serialize, ToSchema)]
pub struct SchedulingErrorBody {
    pub error: SchedulingErrorDetail,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SchedulingErrorDetail {
    /// `scheduling_not_connected`, `booking_disabled`, `event_type_missing`,
    /// `event_type_not_found`, `scheduling_key_rejected`, `slot_unavailable`,
    /// `scheduling_unavailable`, `scheduling_error`.
    pub code: &'static str,
    pub message: String,
    /// Always empty: these are not field errors.
    pub details: Vec<crate::error::FieldErrorOut>,
    /// For `slot_unavailable`: open slots near the requested time, in the company's zone.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub available_slots: Option<Vec<SlotOut>>,
}

fn scheduling_error(status: StatusCode, code: &'static str, message: String) -> Response {
    let body = SchedulingErrorBody {
        error: SchedulingErrorDetail {
            code,
            message,
            details: Vec::new(),
            available_slots: None,
        },
    };
    (status, axum::Json(body)).into_response()
}

impl IntoResponse for RouteError {
    fn into_response(self) -> Response {
        let e = match self {
            RouteError::Api(e) => return e.into_response(),
            RouteError::Scheduling(e) => e,
        };
        let message = e.to_string();
        match e {
            SchedulingError::AgentNotFound(id) => ApiError::not_found("agent", id).into_response(),
            SchedulingError::Blocked(b) => {
                let code = match b {
                    BookingBlocker::BookingOff => "booking_disabled",
                    BookingBlocker::NoEventType => "event_type_missing",
                    BookingBlocker::NotConnected => "scheduling_not_connected",
                };
                scheduling_error(StatusCode::CONFLICT, code, message)
            }
            SchedulingError::EventTypeNotFound { .. } => {
                scheduling_error(StatusCode::CONFLICT, "event_type_not_found", message)
            }
            SchedulingError::KeyRejected(_) => {
                tracing::warn!(error = %message, "stored scheduling key rejected");
                scheduling_error(StatusCode::CONFLICT, "scheduling_key_rejected", message)
            }
            SchedulingError::SlotUnavailable { alternatives, .. } => {
                let body = SchedulingErrorBody {
                    error: SchedulingErrorDetail {
                        code: "slot_unavailable",
                        message,
                        details: Vec::new(),
                        available_slots: Some(alternatives.iter().map(SlotOut::from).collect()),
                    },
                };
                (StatusCode::CONFLICT, axum::Json(body)).into_response()
            }
            SchedulingError::Unavailable { retry_after, .. } => {
                tracing::warn!(error = %message, "scheduling service unavailable");
                let mut resp = scheduling_error(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "scheduling_unavailable",
                    message,
                );
                let secs = retry_after.unwrap_or(crate::error::RETRY_AFTER_SECONDS.into());
                resp.headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from(secs));
                resp
            }
            SchedulingError::Upstream(_) => {
                tracing::warn!(error = %message, "scheduling service answered unexpectedly");
                scheduling_error(StatusCode::BAD_GATEWAY, "scheduling_error", message)
            }
            SchedulingError::Invalid(v) => ApiError::Validation(v).into_response(),
            SchedulingError::Store(s) => ApiError::from(AppError::from(s)).into_response(),
            SchedulingError::Sealed(m) => {
                ApiError::Internal(format!("scheduling key: {m}")).into_response()
            }
        }
    }
}

// ---- bodies ----

use crate::dto::time;

/// The scheduling integration as an admin sees it (Settings → Integrations → Scheduling).
#[derive(Debug, Serialize, ToSchema)]
pub struct SchedulingIntegrationOut {
    /// Always `scheduling`.
    pub provider: &'static str,
    pub name: &'static str,
    /// `connected` or `not_connected`.
    pub status: &'static str,
    /// The stored key, masked.
    pub api_key: Option<String>,
    /// The key owner's email, as the scheduling service reported it when the key was checked.
    pub account_email: Option<String>,
    pub connected_at: Option<String>,
    /// The scheduling service casebridge talks to (`CASEBRIDGE_SCHEDULING_URL`).
    pub base_url: String,
    /// Scheduling has no inbound webhook; always `null`.
    pub webhook_url: Option<String>,
}

fn integration_out(i: SchedulingIntegration) -> SchedulingIntegrationOut {
    let (status, api_key, account_email, connected_at) = match i.connection {
        Some(v) => (
            "connected",
            Some(v.api_key_masked),
            v.connection.account_email,
            Some(time(v.connection.connected_at)),
        ),
        None => ("not_connected", None, None, None),
    };
    SchedulingIntegrationOut {
        provider: "scheduling",
        name: "Scheduling",
        status,
        api_key,
        account_email,
        connected_at,
        base_url: i.base_url,
        webhook_url: None,
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ConnectScheduling {
    /// The scheduling service's API key (Cal.com: Settings → Developer → API Keys).
    #[schema(example = "cal_live_…")]
    pub api_key: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AgentOut {
    pub id: String,
    pub name: String,
    /// Whether the agent may check availability and book appointments during calls.
    pub appointment_booking: bool,
    /// The scheduling service's event type the agent books.
    pub event_type_id: Option<i64>,
    /// `ready`, or what stops the agent from booking: `booking_off`, `no_event_type`,
    /// `not_connected` (the company has no scheduling key).
    pub booking_status: &'static str,
    pub created_at: String,
    pub updated_at: String,
}

fn agent_out(v: AgentView) -> AgentOut {
    let a = v.agent;
    AgentOut {
        booking_status: v.booking_blocker.map_or("ready", BookingBlocker::as_str),
        id: a.id.to_string(),
        name: a.name,
        appointment_booking: a.appointment_booking,
        event_type_id: a.event_type_id.map(EventTypeId::get),
        created_at: time(a.created_at),
        updated_at: time(a.updated_at),
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateAgent {
    #[schema(example = "Intake agent")]
    pub name: String,
    /// Default `false`.
    #[serde(default)]
    pub appointment_booking: bool,
    /// The number at the end of the event type's URL (a number, or a string of digits).
    #[schema(value_type = Option<i64>, example = 1001)]
    pub event_type_id: Option<Value>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateAgent {
    pub name: Option<String>,
    pub appointment_booking: Option<bool>,
    /// `null` clears it.
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<i64>)]
    pub event_type_id: Option<Option<Value>>,
}

fn event_type_field(v: &mut Validator, raw: &Value) -> Option<EventTypeId> {
    let n = match raw {
        Value::Number(n) => n.as_i64(),
        Value::String(s) if !s.trim().is_empty() => s.trim().parse::<i64>().ok(),
        _ => None,
    };
    match n {
        Some(n) => v.check(EventTypeId::parse("event_type_id", n)),
        None => {
            v.push(
                "event_type_id",
                "must be a positive integer: the number at the end of the event type's URL",
            );
            None
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SlotOut {
    /// RFC 3339 in the company's zone, e.g. `2026-03-08T09:00:00-04:00`.
    pub start: String,
    pub end: Option<String>,
    /// Local date in the company's zone.
    #[schema(example = "2026-03-08")]
    pub date: String,
    /// Local wall-clock time in the company's zone.
    #[schema(example = "09:00")]
    pub time: String,
}

impl From<&LocalSlot> for SlotOut {
    fn from(s: &LocalSlot) -> Self {
        Self {
            start: s.start_rfc3339(),
            end: s.end_rfc3339(),
            date: s.date(),
            time: s.time(),
        }
    }
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
struct AvailabilityQuery {
    /// RFC 3339 with offset, a local date-time, or a date (`2026-03-08`: from the start of
    /// that day), in the company's time zone.
    start: Option<String>,
    /// As `start`; a date means through the end of that day. At most 31 days after `start`.
    end: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AvailabilityOut {
    pub agent_id: String,
    pub event_type_id: i64,
    /// The company's IANA time zone; every time here is in it.
    pub timezone: String,
    pub start: String,
    pub end: String,
    /// Open slots starting in `[start, end)`, in order.
    pub slots: Vec<SlotOut>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AttendeeBody {
    pub name: Option<String>,
    pub email: Option<String>,
    /// International form, or a North American number.
    pub phone: Option<String>,
    /// IANA time zone for the attendee's confirmation; default: the company's.
    pub time_zone: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateBooking {
    /// RFC 3339 with an offset (`2026-03-09T10:00:00-04:00`), or a local date-time without one
    /// (`2026-03-09T10:00`), read in the company's time zone. A local time that does not
    /// exist or happens twice there (DST changes) is refused.
    #[schema(example = "2026-03-09T10:00")]
    pub start: String,
    /// The case the appointment is for; without `attendee`, its client is the attendee.
    pub case_id: Option<String>,
    /// Who the appointment is with (name, and email or phone); overrides the case's client.
    pub attendee: Option<AttendeeBody>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AttendeeOut {
    pub name: String,
    pub email: Option<String>,
    pub phone: Option<String>,
    pub time_zone: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct BookingOut {
    pub id: String,
    pub agent_id: String,
    pub case_id: Option<String>,
    pub event_type_id: i64,
    /// `booked`, or `pending`: recorded before the scheduling service answered, and its
    /// outcome is unknown (check the scheduling service).
    pub status: &'static str,
    /// The booking's uid at the scheduling service.
    pub external_uid: Option<String>,
    /// RFC 3339 in the company's zone.
    pub start: String,
    pub end: Option<String>,
    /// The same instant in UTC, as sent to the scheduling service.
    pub start_utc: String,
    pub timezone: String,
    pub attendee: AttendeeOut,
    pub created_at: String,
}

fn booking_out(b: Booking, tz: &TimeZone) -> BookingOut {
    let local = |t: Timestamp| rfc3339(&t.to_zoned(tz.clone()));
    BookingOut {
        id: b.id.to_string(),
        agent_id: b.agent_id.to_string(),
        case_id: b.case_id.map(|c| c.to_string()),
        event_type_id: b.event_type_id.get(),
        status: b.status.as_str(),
        external_uid: b.external_uid,
        start: local(b.start),
        end: b.end.map(local),
        start_utc: time(b.start),
        timezone: tz.iana_name().unwrap_or("UTC").to_owned(),
        attendee: AttendeeOut {
            name: b.attendee.name,
            email: b.attendee.email,
            phone: b.attendee.phone,
            time_zone: b.attendee.time_zone,
        },
        created_at: time(b.created_at),
    }
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
struct BookingQuery {
    /// Only the bookings of this case.
    case_id: Option<String>,
    cursor: Option<String>,
    limit: Option<u32>,
}

// ---- connection ----

/// The scheduling integration: connected or not, the key masked.
#[utoipa::path(get, path = "/integrations/scheduling", tag = "scheduling",
    security(("bearer" = [])),
    responses((status = 200, body = SchedulingIntegrationOut)))]
async fn get_scheduling(
    State(s): State<AppState>,
    Auth(company): Auth,
) -> Result<axum::Json<SchedulingIntegrationOut>, RouteError> {
    let i = scheduling::status(&s.app, company).await?;
    Ok(axum::Json(integration_out(i)))
}

/// Connects the company's scheduling API key (SCH1). The key is checked with the scheduling
/// service first (`GET /v2/me`); a key it refuses is a 422 on `api_key`, and if the service
/// cannot be reached the answer is 503. Either way nothing is stored. A new key replaces the
/// previous one. Stored encrypted; shown masked.
#[utoipa::path(put, path = "/integrations/scheduling/connection", tag = "scheduling",
    operation_id = "connect_scheduling",
    security(("bearer" = [])), request_body = ConnectScheduling,
    responses((status = 200, body = SchedulingIntegrationOut),
              (status = 422, body = ErrorBody),
              (status = 502, body = SchedulingErrorBody),
              (status = 503, body = SchedulingErrorBody)))]
async fn connect(
    State(s): State<AppState>,
    Auth(company): Auth,
    Json(body): Json<ConnectScheduling>,
) -> Result<axum::Json<SchedulingIntegrationOut>, RouteError> {
    let i = scheduling::connect(&s.app, company, &body.api_key).await?;
    Ok(axum::Json(integration_out(i)))
}

/// Disconnects: deletes the stored key. Agents with booking on can no longer check
/// availability or book until a key is connected again.
#[utoipa::path(delete, path = "/integrations/scheduling/connection", tag = "scheduling",
    operation_id = "disconnect_scheduling",
    security(("bearer" = [])),
    responses((status = 200, body = SchedulingIntegrationOut)))]
async fn disconnect(
    State(s): State<AppState>,
    Auth(company): Auth,
) -> Result<axum::Json<SchedulingIntegrationOut>, RouteError> {
    let i = scheduling::disconnect(&s.app, company).await?;
    Ok(axum::Json(integration_out(i)))
}

// ---- agents ----

/// Lists agents with their booking settings.
#[utoipa::path(get, path = "/agents", tag = "scheduling", security(("bearer" = [])),
    params(crate::dto::PageQuery),
    responses((status = 200, body = PageOut<AgentOut>)))]
async fn list_agents(
    State(s): State<AppState>,
    Auth(company): Auth,
    Query(q): Query<crate::dto::PageQuery>,
) -> Result<axum::Json<PageOut<AgentOut>>, RouteError> {
    let page = page_request(q.cursor, q.limit)?;
    let found = scheduling::list_agents(&s.app, company, &page).await?;
    Ok(axum::Json(PageOut::from_page(found, agent_out)))
}

/// Creates an agent. Appointment booking is off unless `appointment_booking` is true; every
/// agent uses the company's scheduling key and time zone (SCH2).
#[utoipa::path(post, path = "/agents", tag = "scheduling", security(("bearer" = [])),
    request_body = CreateAgent,
    responses((status = 201, body = AgentOut), (status = 422, body = ErrorBody)))]
async fn create_agent(
    State(s): State<AppState>,
    Auth(company): Auth,
    Json(body): Json<CreateAgent>,
) -> Result<(StatusCode, axum::Json<AgentOut>), RouteError> {
    let mut v = Validator::new();
    let name = v.check(Name::parse("name", &body.name));
    let event_type_id = body
        .event_type_id
        .as_ref()
        .filter(|e| !e.is_null())
        .and_then(|e| event_type_field(&mut v, e));
    v.finish()?;
    let new = NewAgent {
        name: name.expect("validated"),
        appointment_booking: body.appointment_booking,
        event_type_id,
    };
    let agent = scheduling::create_agent(&s.app, company, &new).await?;
    Ok((StatusCode::CREATED, axum::Json(agent_out(agent))))
}

#[utoipa::path(get, path = "/agents/{id}", tag = "scheduling", security(("bearer" = [])),
    params(("id" = String, Path)),
    responses((status = 200, body = AgentOut), (status = 404, body = ErrorBody)))]
async fn get_agent(
    State(s): State<AppState>,
    Auth(company): Auth,
    Path(id): Path<String>,
) -> Result<axum::Json<AgentOut>, RouteError> {
    let agent_id: AgentId = path_id(&id, "agent")?;
    let agent = scheduling::agent(&s.app, company, agent_id).await?;
    Ok(axum::Json(agent_out(agent)))
}

/// Changes an agent: name, appointment booking on/off, event type (`null` clears it).
#[utoipa::path(patch, path = "/agents/{id}", tag = "scheduling", security(("bearer" = [])),
    params(("id" = String, Path)), request_body = UpdateAgent,
    responses((status = 200, body = AgentOut), (status = 404, body = ErrorBody),
              (status = 422, body = ErrorBody)))]
async fn update_agent(
    State(s): State<AppState>,
    Auth(company): Auth,
    Path(id): Path<String>,
    Json(body): Json<UpdateAgent>,
) -> Result<axum::Json<AgentOut>, RouteError> {
    let agent_id: AgentId = path_id(&id, "agent")?;
    let mut v = Validator::new();
    let patch = AgentPatch {
        name: body.name.and_then(|n| v.check(Name::parse("name", &n))),
        appointment_booking: body.appointment_booking,
        event_type_id: body.event_type_id.map(|e| match e {
            None | Some(Value::Null) => None,
            Some(raw) => event_type_field(&mut v, &raw),
        }),
    };
    v.finish()?;
    let agent = scheduling::update_agent(&s.app, company, agent_id, &patch).await?;
    Ok(axum::Json(agent_out(agent)))
}

// ---- availability and booking ----

/// Open slots of the agent's event type, in the company's time zone (SCH3). Asks the
/// scheduling service now. `start`/`end` without an offset are read in the company's zone; a
/// date means the whole day. Clear 409s when the company has no key, the agent's booking is off
/// or it has no event type; 503 when the service cannot be reached.
#[utoipa::path(get, path = "/agents/{id}/availability", tag = "scheduling",
    security(("bearer" = [])), params(("id" = String, Path), AvailabilityQuery),
    responses((status = 200, body = AvailabilityOut), (status = 404, body = ErrorBody),
              (status = 409, body = SchedulingErrorBody), (status = 422, body = ErrorBody),
              (status = 502, body = SchedulingErrorBody),
              (status = 503, body = SchedulingErrorBody)))]
async fn availability(
    State(s): State<AppState>,
    Auth(company): Auth,
    Path(id): Path<String>,
    Query(q): Query<AvailabilityQuery>,
) -> Result<axum::Json<AvailabilityOut>, RouteError> {
    let mut v = Validator::new();
    if q.start.as_deref().is_none_or(|s| s.trim().is_empty()) {
        v.push("start", "is required");
    }
    if q.end.as_deref().is_none_or(|s| s.trim().is_empty()) {
        v.push("end", "is required");
    }
    v.finish()?;
    let a = scheduling::availability(
        &s.app,
        company,
        &id,
        q.start.as_deref().unwrap_or_default(),
        q.end.as_deref().unwrap_or_default(),
    )
    .await?;
    let tz = company_zone(&a.time_zone);
    Ok(axum::Json(AvailabilityOut {
        agent_id: a.agent.id.to_string(),
        event_type_id: a.event_type_id.get(),
        start: rfc3339(&a.window.start.to_zoned(tz.clone())),
        end: rfc3339(&a.window.end.to_zoned(tz)),
        timezone: a.time_zone,
        slots: a.slots.iter().map(SlotOut::from).collect(),
    }))
}

/// Books an appointment with the agent's event type (SCH3). `start` is converted to UTC for
/// the scheduling service. The attendee is the case's client (`case_id`) or `attendee`. A time
/// taken meanwhile answers 409 `slot_unavailable` with open slots nearby; nothing is
/// double-booked. The booking is recorded with the case.
#[utoipa::path(post, path = "/agents/{id}/bookings", tag = "scheduling",
    security(("bearer" = [])), params(("id" = String, Path)), request_body = CreateBooking,
    responses((status = 201, body = BookingOut), (status = 404, body = ErrorBody),
              (status = 409, body = SchedulingErrorBody), (status = 422, body = ErrorBody),
              (status = 502, body = SchedulingErrorBody),
              (status = 503, body = SchedulingErrorBody)))]
async fn book(
    State(s): State<AppState>,
    Auth(company): Auth,
    Path(id): Path<String>,
    Json(body): Json<CreateBooking>,
) -> Result<(StatusCode, axum::Json<BookingOut>), RouteError> {
    let ask = BookingAsk {
        start: body.start,
        case_id: body.case_id,
        attendee: body.attendee.map(|a| AttendeeAsk {
            name: a.name,
            email: a.email,
            phone: a.phone,
            time_zone: a.time_zone,
        }),
    };
    let booked = scheduling::book(&s.app, company, &id, &ask).await?;
    Ok((
        StatusCode::CREATED,
        axum::Json(booking_out(booked.booking, &booked.time_zone)),
    ))
}

/// The agent's bookings in creation order, optionally only one case's.
#[utoipa::path(get, path = "/agents/{id}/bookings", tag = "scheduling",
    security(("bearer" = [])), params(("id" = String, Path), BookingQuery),
    responses((status = 200, body = PageOut<BookingOut>), (status = 404, body = ErrorBody)))]
async fn list_bookings(
    State(s): State<AppState>,
    Auth(company): Auth,
    Path(id): Path<String>,
    Query(q): Query<BookingQuery>,
) -> Result<axum::Json<PageOut<BookingOut>>, RouteError> {
    let agent_id: AgentId = path_id(&id, "agent")?;
    let page = page_request(q.cursor, q.limit)?;
    let case_id: Option<CaseId> = q
        .case_id
        .as_deref()
        .map(|raw| {
            raw.parse()
                .map_err(|_| ValidationError::single("case_id", format!("`{raw}` is not an id")))
        })
        .transpose()?;
    let found = scheduling::bookings(&s.app, company, agent_id, case_id, &page).await?;
    let tz = found.time_zone;
    Ok(axum::Json(PageOut::from_page(found.page, |b| {
        booking_out(b, &tz)
    })))
}
