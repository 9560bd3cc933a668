//! Connecting a key, availability and booking: the store, the keyring and the client together.
//!
//! These are the only places where a request waits on the network (SCH3: the agent is on a
//! call and needs the answer now). No pooled database connection is held across a call to the
//! scheduling service.

use std::collections::BTreeMap;
use std::sync::Arc;

use casebridge_crypto::{mask, Keyring};
use casebridge_domain::clock::Clock;
use casebridge_domain::error::Validator;
use casebridge_domain::ids::{CaseId, CompanyId};
use casebridge_domain::scheduling::{
    api_key_aad, company_zone, parse_instant, Agent, AgentId, Attendee, AttendeeInput, Booking,
    BookingBlocker, EventTypeId, NewBooking, SchedulingConnection, TimeWindow,
};
use casebridge_domain::ValidationError;
use casebridge_store::{cases, clients, companies, scheduling as db, Store, StoreError};
use jiff::tz::TimeZone;
use secrecy::{ExposeSecret, SecretString};

use crate::calcom::{BookingRequest, CalClient, CalError};
use crate::slots::{localize, nearest, LocalSlot, ALTERNATIVES};

/// Why a scheduling request could not be served, classified for the API.
#[derive(Debug, thiserror::Error)]
pub enum SchedulingError {
    #[error("no agent with id {0}")]
    AgentNotFound(String),
    /// The agent or the company is not set up to book (see [`BookingBlocker`]).
    #[error("{}", blocker_message(*.0))]
    Blocked(BookingBlocker),
    /// The service does not know the agent's event type.
    #[error(
        "the scheduling service has no event type {event_type_id} for the connected key \
         ({message}); set the agent's event_type_id to the number at the end of the event \
         type's URL"
    )]
    EventTypeNotFound {
        event_type_id: EventTypeId,
        message: String,
    },
    /// The stored key no longer works.
    #[error(
        "the scheduling service rejected the stored API key ({0}); an admin must connect a \
         valid key (PUT /api/v1/integrations/scheduling/connection)"
    )]
    KeyRejected(String),
    /// The time cannot be booked; `alternatives` are open slots near it.
    #[error("that time can no longer be booked ({message}); choose one of the nearby open slots")]
    SlotUnavailable {
        message: String,
        alternatives: Vec<LocalSlot>,
    },
    /// The service cannot be reached, is failing, slow or rate limiting.
    #[error("{message}")]
    Unavailable {
        message: String,
        retry_after: Option<u64>,
    },
    /// The service answered in a way it should not have.
    #[error("the scheduling service answered unexpectedly: {0}")]
    Upstream(String),
    #[error(transparent)]
    Invalid(#[from] ValidationError),
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The stored key cannot be decrypted (the master key changed?).
    #[error("the stored scheduling key cannot be read: {0}")]
    Sealed(String),
}

fn blocker_message(b: BookingBlocker) -> &'static str {
    match b {
        BookingBlocker::BookingOff => {
            "appointment booking is turned off for this agent; turn on appointment_booking \
             (PATCH /api/v1/agents/{id}) to let it check availability and book"
        }
        BookingBlocker::NoEventType => {
            "this agent has no event type; set event_type_id (the number at the end of the \
             event type's URL) with PATCH /api/v1/agents/{id}"
        }
        BookingBlocker::NotConnected => {
            "scheduling is not connected for this company; an admin must connect a scheduling \
             API key (PUT /api/v1/integrations/scheduling/connection)"
        }
    }
}

impl SchedulingError {
    fn from_cal(e: CalError, event_type_id: Option<EventTypeId>) -> Self {
        match e {
            CalError::Unauthorized(m) => SchedulingError::KeyRejected(m),
            CalError::NotFound(message) => match event_type_id {
                Some(event_type_id) => SchedulingError::EventTypeNotFound {
                    event_type_id,
                    message,
                },
                None => SchedulingError::Upstream(message),
            },
            CalError::SlotUnavailable(message) => SchedulingError::SlotUnavailable {
                message,
                alternatives: Vec::new(),
            },
            // The service refused the content; name the field when its message says which.
            CalError::Rejected { message, .. } => {
                let field = if message.to_ascii_lowercase().contains("in the past") {
                    "start"
                } else {
                    "scheduling_service"
                };
                ValidationError::single(field, message).into()
            }
            CalError::RateLimited { retry_after } => SchedulingError::Unavailable {
                message: format!(
                    "the scheduling service is rate limiting this company's key; try again in \
                     {} s",
                    retry_after.unwrap_or(60)
                ),
                retry_after: Some(retry_after.unwrap_or(60)),
            },
            e @ (CalError::Timeout(_) | CalError::Unavailable(_)) => SchedulingError::Unavailable {
                message: format!("{e}; try again shortly"),
                retry_after: None,
            },
            CalError::Protocol(m) | CalError::Refused(m) => SchedulingError::Upstream(m),
        }
    }
}

/// The connection as shown to an admin.
#[derive(Debug, Clone)]
pub struct ConnectionView {
    pub connection: SchedulingConnection,
    /// The key, masked (`cal_••••`).
    pub api_key_masked: String,
}

/// Open slots for an agent.
#[derive(Debug, Clone)]
pub struct Availability {
    pub agent: Agent,
    pub event_type_id: EventTypeId,
    pub time_zone: String,
    pub window: TimeWindow,
    pub slots: Vec<LocalSlot>,
}

/// A booking as asked for, before validation.
#[derive(Debug, Clone, Default)]
pub struct BookingAsk {
    /// RFC 3339 with an offset, or a local date-time in the company's zone.
    pub start: String,
    pub case_id: Option<String>,
    pub attendee: Option<AttendeeAsk>,
}

#[derive(Debug, Clone, Default)]
pub struct AttendeeAsk {
    pub name: Option<String>,
    pub email: Option<String>,
    pub phone: Option<String>,
    pub time_zone: Option<String>,
}

/// A confirmed booking and the company's zone, for showing it.
#[derive(Debug, Clone)]
pub struct Booked {
    pub booking: Booking,
    pub time_zone: TimeZone,
}

/// Scheduling for every company, over one store, keyring and client. Cheap to build per
/// request.
#[derive(Clone)]
pub struct Scheduling {
    store: Store,
    keyring: Keyring,
    client: CalClient,
    clock: Arc<dyn Clock>,
}

/// The agent, the company's zone and its key, once every precondition holds.
struct Ready {
    agent: Agent,
    event_type_id: EventTypeId,
    tz: TimeZone,
    key: SecretString,
}

fn check_key_shape(raw: &str) -> Result<&str, ValidationError> {
    let key = raw.trim();
    if key.is_empty() {
        return Err(ValidationError::single("api_key", "must not be empty"));
    }
    if key.len() > 512 || key.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(ValidationError::single(
            "api_key",
            "is not an API key: at most 512 characters, no spaces",
        ));
    }
    Ok(key)
}

impl Scheduling {
    pub fn new(store: Store, keyring: Keyring, client: CalClient, clock: Arc<dyn Clock>) -> Self {
        Self {
            store,
            keyring,
            client,
            clock,
        }
    }

    fn mask(&self, c: &SchedulingConnection) -> String {
        self.keyring
            .open(&c.api_key_sealed, &api_key_aad(c.company_id))
            .map(|k| mask(k.expose_secret()))
            .unwrap_or_else(|_| "••••".to_owned())
    }

    /// The company's connection, if any.
    pub async fn status(
        &self,
        company: CompanyId,
    ) -> Result<Option<ConnectionView>, SchedulingError> {
        let mut conn = self.store.conn().await?;
        let found = db::connection(&mut conn, company).await?;
        Ok(found.map(|c| ConnectionView {
            api_key_masked: self.mask(&c),
            connection: c,
        }))
    }

    /// Checks `raw_key` with the service and stores it sealed. A key the service refuses is a
    /// validation error on `api_key`; if the service cannot be asked, nothing is stored either.
    pub async fn connect(
        &self,
        company: CompanyId,
        raw_key: &str,
    ) -> Result<ConnectionView, SchedulingError> {
        let key = check_key_shape(raw_key)?;
        let account = self.client.me(key).await.map_err(|e| match e {
            CalError::Unauthorized(m) => ValidationError::single(
                "api_key",
                format!("the scheduling service did not accept this key: {m}"),
            )
            .into(),
            other => SchedulingError::from_cal(other, None),
        })?;
        let sealed = self.keyring.seal(key, &api_key_aad(company));
        let mut tx = self.store.begin().await?;
        let c = db::put_connection(
            &mut tx,
            company,
            &sealed,
            account.email.as_deref(),
            self.clock.now(),
        )
        .await?;
        tx.commit().await?;
        tracing::info!(company.id = %company, "scheduling connected");
        Ok(ConnectionView {
            api_key_masked: mask(key),
            connection: c,
        })
    }

    /// Deletes the company's key. Returns whether there was one.
    pub async fn disconnect(&self, company: CompanyId) -> Result<bool, SchedulingError> {
        let mut tx = self.store.begin().await?;
        let removed = db::delete_connection(&mut tx, company).await?;
        tx.commit().await?;
        if removed {
            tracing::info!(company.id = %company, "scheduling disconnected");
        }
        Ok(removed)
    }

    /// Whether the company has a key (for showing an agent's booking status).
    pub async fn connected(&self, company: CompanyId) -> Result<bool, SchedulingError> {
        let mut conn = self.store.conn().await?;
        Ok(db::connection(&mut conn, company).await?.is_some())
    }

    /// Loads what a request needs and checks that the agent may book: the agent exists, has
    /// booking on and an event type, and the company has a readable key.
    async fn ready(&self, company: CompanyId, agent_id: &str) -> Result<Ready, SchedulingError> {
        let id: AgentId = agent_id
            .parse()
            .map_err(|_| SchedulingError::AgentNotFound(agent_id.to_owned()))?;
        let mut conn = self.store.conn().await?;
        let agent = db::agent(&mut conn, company, id)
            .await
            .map_err(|e| match e {
                StoreError::NotFound => SchedulingError::AgentNotFound(agent_id.to_owned()),
                other => other.into(),
            })?;
        let connection = db::connection(&mut conn, company).await?;
        let tz = company_zone(&companies::get(&mut conn, company).await?.timezone);
        if let Some(b) = agent.booking_blocker(connection.is_some()) {
            return Err(SchedulingError::Blocked(b));
        }
        let connection = connection.expect("checked by booking_blocker");
        let key = self
            .keyring
            .open(&connection.api_key_sealed, &api_key_aad(company))
            .map_err(|e| SchedulingError::Sealed(e.to_string()))?;
        Ok(Ready {
            event_type_id: agent.event_type_id.expect("checked by booking_blocker"),
            agent,
            tz,
            key,
        })
    }

    /// Open slots of the agent's event type starting within `[start, end)`, in the company's
    /// zone. `start`/`end`: see [`TimeWindow::parse`].
    pub async fn availability(
        &self,
        company: CompanyId,
        agent_id: &str,
        start: &str,
        end: &str,
    ) -> Result<Availability, SchedulingError> {
        let ready = self.ready(company, agent_id).await?;
        let window = TimeWindow::parse(start, end, &ready.tz)?;
        let zone_name = ready.tz.iana_name().unwrap_or("UTC").to_owned();
        let slots = self
            .client
            .slots(
                ready.key.expose_secret(),
                ready.event_type_id.get(),
                window.start,
                window.end,
                &zone_name,
            )
            .await
            .map_err(|e| SchedulingError::from_cal(e, Some(ready.event_type_id)))?;
        Ok(Availability {
            slots: localize(&slots, &ready.tz, &window),
            agent: ready.agent,
            event_type_id: ready.event_type_id,
            time_zone: zone_name,
            window,
        })
    }

    /// Books `ask.start` for the agent's event type. The booking is recorded `pending` first,
    /// then confirmed with the service's uid, or removed when the service refuses it. A time
    /// that cannot be booked comes back with up to [`ALTERNATIVES`] open slots near it.
    pub async fn book(
        &self,
        company: CompanyId,
        agent_id: &str,
        ask: &BookingAsk,
    ) -> Result<Booked, SchedulingError> {
        let ready = self.ready(company, agent_id).await?;
        let zone_name = ready.tz.iana_name().unwrap_or("UTC").to_owned();
        let (start, case_id, attendee) =
            self.parse_ask(company, ask, &ready.tz, &zone_name).await?;

        let new = NewBooking {
            agent_id: ready.agent.id,
            case_id,
            event_type_id: ready.event_type_id,
            start,
            attendee,
        };
        let mut tx = self.store.begin().await?;
        let pending = db::create_pending_booking(&mut tx, company, &new, self.clock.now()).await?;
        tx.commit().await?;

        let mut metadata = BTreeMap::new();
        metadata.insert("casebridge_booking_id".to_owned(), pending.id.to_string());
        metadata.insert("casebridge_agent_id".to_owned(), ready.agent.id.to_string());
        if let Some(c) = case_id {
            metadata.insert("casebridge_case_id".to_owned(), c.to_string());
        }
        let asked = self
            .client
            .create_booking(
                ready.key.expose_secret(),
                &BookingRequest {
                    event_type_id: ready.event_type_id.get(),
                    start,
                    attendee: &new.attendee,
                    metadata,
                },
            )
            .await;
        match asked {
            Ok(confirmed) => {
                let mut tx = self.store.begin().await?;
                let booking = db::confirm_booking(
                    &mut tx,
                    company,
                    pending.id,
                    &confirmed.uid,
                    confirmed.start,
                    confirmed.end,
                    self.clock.now(),
                )
                .await
                .inspect_err(|e| {
                    tracing::error!(company.id = %company, booking.id = %pending.id,
                        external_uid = %confirmed.uid, error = %e,
                        "booked with the scheduling service but not recorded as booked");
                })?;
                tx.commit().await?;
                tracing::info!(company.id = %company, booking.id = %booking.id, "booked");
                Ok(Booked {
                    booking,
                    time_zone: ready.tz,
                })
            }
            Err(CalError::Timeout(secs)) => {
                // The service may have booked it: keep the `pending` record as the trace.
                tracing::warn!(company.id = %company, booking.id = %pending.id,
                    "booking request timed out; outcome unknown, kept as pending");
                Err(SchedulingError::Unavailable {
                    message: format!(
                        "the scheduling service did not answer within {secs} s; the booking \
                         may or may not have been made (recorded as pending, id {}); check \
                         availability before trying again",
                        pending.id
                    ),
                    retry_after: None,
                })
            }
            Err(e) => {
                let mut tx = self.store.begin().await?;
                db::delete_pending_booking(&mut tx, company, pending.id).await?;
                tx.commit().await?;
                match SchedulingError::from_cal(e, Some(ready.event_type_id)) {
                    SchedulingError::SlotUnavailable { message, .. } => {
                        let alternatives = self.alternatives(&ready, &zone_name, start).await;
                        Err(SchedulingError::SlotUnavailable {
                            message,
                            alternatives,
                        })
                    }
                    other => Err(other),
                }
            }
        }
    }

    /// Open slots near a time that could not be booked. Best effort: if the service cannot
    /// list them now, the refusal is still reported, with no alternatives.
    async fn alternatives(
        &self,
        ready: &Ready,
        zone_name: &str,
        around: jiff::Timestamp,
    ) -> Vec<LocalSlot> {
        let window = TimeWindow::around(around);
        match self
            .client
            .slots(
                ready.key.expose_secret(),
                ready.event_type_id.get(),
                window.start,
                window.end,
                zone_name,
            )
            .await
        {
            Ok(slots) => nearest(&localize(&slots, &ready.tz, &window), around, ALTERNATIVES),
            Err(e) => {
                tracing::warn!(error = %e, "could not list alternatives for a refused booking");
                Vec::new()
            }
        }
    }

    /// Validates a booking request: the start, the case and who the attendee is.
    async fn parse_ask(
        &self,
        company: CompanyId,
        ask: &BookingAsk,
        tz: &TimeZone,
        zone_name: &str,
    ) -> Result<(jiff::Timestamp, Option<CaseId>, Attendee), SchedulingError> {
        let mut v = Validator::new();
        let start = v.check(parse_instant("start", &ask.start, tz));
        let case_id: Option<CaseId> = match ask.case_id.as_deref() {
            None => None,
            Some(raw) => match raw.parse() {
                Ok(id) => Some(id),
                Err(_) => {
                    v.push("case_id", format!("`{raw}` is not an id"));
                    None
                }
            },
        };
        if ask.case_id.is_none() && ask.attendee.is_none() {
            v.push(
                "attendee",
                "give `case_id` (the attendee is the case's client) or `attendee`",
            );
        }
        let explicit = ask.attendee.as_ref().and_then(|a| {
            v.check(Attendee::parse(
                "attendee",
                AttendeeInput {
                    name: a.name.as_deref(),
                    email: a.email.as_deref(),
                    phone: a.phone.as_deref(),
                    time_zone: a.time_zone.as_deref(),
                },
                zone_name,
            ))
        });
        let mut from_case = None;
        if let Some(case_id) = case_id {
            let mut conn = self.store.conn().await?;
            match cases::get(&mut conn, company, case_id).await {
                Ok(case) => {
                    if explicit.is_none() && ask.attendee.is_none() {
                        match case.client_id {
                            None => v.push(
                                "case_id",
                                "the case has no client to book for; give `attendee`",
                            ),
                            Some(client_id) => {
                                let client = clients::get(&mut conn, company, client_id).await?;
                                from_case =
                                    v.check(Attendee::from_client(&client.fields, zone_name));
                            }
                        }
                    }
                }
                Err(StoreError::NotFound) => {
                    v.push("case_id", format!("no case with id {case_id}"));
                }
                Err(e) => return Err(e.into()),
            }
        }
        v.finish()?;
        let attendee = explicit
            .or(from_case)
            .expect("validated: one of them is set");
        Ok((start.expect("validated"), case_id, attendee))
    }
}
