//! Scheduling: the company's connection to the scheduling service, agents and their bookings.

use casebridge_domain::ids::{CaseId, CompanyId};
use casebridge_domain::page::{Page, PageRequest};
use casebridge_domain::scheduling::{
    Agent, AgentId, AgentPatch, Attendee, Booking, BookingId, BookingStatus, EventTypeId, NewAgent,
    NewBooking, SchedulingConnection,
};
use jiff::Timestamp;
use sqlx::FromRow;

use crate::{parse_id, parse_opt_id, ts, Conn, Result, StoreError, Tx};

// ---- connection ----

#[derive(FromRow)]
struct ConnectionRow {
    company_id: String,
    api_key_sealed: String,
    account_email: Option<String>,
    connected_at: i64,
    updated_at: i64,
}

impl ConnectionRow {
    fn into_model(self) -> Result<SchedulingConnection> {
        Ok(SchedulingConnection {
            company_id: parse_id("scheduling_connections.company_id", &self.company_id)?,
            api_key_sealed: self.api_key_sealed,
            account_email: self.account_email,
            connected_at: ts(self.connected_at)?,
            updated_at: ts(self.updated_at)?,
        })
    }
}

const CONNECTION_COLUMNS: &str =
    "company_id, api_key_sealed, account_email, connected_at, updated_at";

/// The company's connection, if it has one.
pub async fn connection(
    conn: &mut Conn,
    company: CompanyId,
) -> Result<Option<SchedulingConnection>> {
    let row: Option<ConnectionRow> = sqlx::query_as(&format!(
        "SELECT {CONNECTION_COLUMNS} FROM scheduling_connections WHERE company_id = $1"
    ))
    .bind(company.to_string())
    .fetch_optional(&mut *conn)
    .await?;
    row.map(ConnectionRow::into_model).transpose()
}

/// Stores the company's (sealed) key, replacing a previous one; `connected_at` is now.
pub async fn put_connection(
    conn: &mut Conn,
    company: CompanyId,
    api_key_sealed: &str,
    account_email: Option<&str>,
    now: Timestamp,
) -> Result<SchedulingConnection> {
    let row: ConnectionRow = sqlx::query_as(&format!(
        "INSERT INTO scheduling_connections
             (company_id, api_key_sealed, account_email, connected_at, updated_at)
         VALUES ($1, $2, $3, $4, $4)
         ON CONFLICT (company_id) DO UPDATE SET api_key_sealed = excluded.api_key_sealed,
             account_email = excluded.account_email, connected_at = excluded.connected_at,
             updated_at = excluded.updated_at
         RETURNING {CONNECTION_COLUMNS}"
    ))
    .bind(company.to_string())
    .bind(api_key_sealed)
    .bind(account_email.map(str::to_owned))
    .bind(now.as_millisecond())
    .fetch_one(&mut *conn)
    .await?;
    row.into_model()
}

/// Deletes the company's key. Returns whether there was one.
pub async fn delete_connection(conn: &mut Conn, company: CompanyId) -> Result<bool> {
    let done = sqlx::query("DELETE FROM scheduling_connections WHERE company_id = $1")
        .bind(company.to_string())
        .execute(&mut *conn)
        .await?;
    Ok(done.rows_affected() > 0)
}

// ---- agents ----

const AGENT_COLUMNS: &str =
    "id, company_id, name, appointment_booking, event_type_id, created_at, updated_at";

#[derive(FromRow)]
struct AgentRow {
    id: String,
    company_id: String,
    name: String,
    appointment_booking: i64,
    event_type_id: Option<i64>,
    created_at: i64,
    updated_at: i64,
}

impl AgentRow {
    fn into_model(self) -> Result<Agent> {
        Ok(Agent {
            id: parse_id("agents.id", &self.id)?,
            company_id: parse_id("agents.company_id", &self.company_id)?,
            name: self.name,
            appointment_booking: self.appointment_booking != 0,
            event_type_id: self
                .event_type_id
                .map(|e| {
                    EventTypeId::parse("agents.event_type_id", e)
                        .map_err(|_| StoreError::Corrupt(format!("agents.event_type_id {e}")))
                })
                .transpose()?,
            created_at: ts(self.created_at)?,
            updated_at: ts(self.updated_at)?,
        })
    }
}

pub async fn create_agent(
    conn: &mut Conn,
    company: CompanyId,
    new: &NewAgent,
    now: Timestamp,
) -> Result<Agent> {
    let row: AgentRow = sqlx::query_as(&format!(
        "INSERT INTO agents (id, company_id, name, appointment_booking, event_type_id,
             created_at, updated_at)
         VALUES ($1, $2, $3, $4, $5, $6, $6) RETURNING {AGENT_COLUMNS}"
    ))
    .bind(AgentId::new().to_string())
    .bind(company.to_string())
    .bind(new.name.as_str())
    .bind(i64::from(new.appointment_booking))
    .bind(new.event_type_id.map(EventTypeId::get))
    .bind(now.as_millisecond())
    .fetch_one(&mut *conn)
    .await?;
    row.into_model()
}

pub async fn agent(conn: &mut Conn, company: CompanyId, id: AgentId) -> Result<Agent> {
    let row: AgentRow = sqlx::query_as(&format!(
        "SELECT {AGENT_COLUMNS} FROM agents WHERE company_id = $1 AND id = $2"
    ))
    .bind(company.to_string())
    .bind(id.to_string())
    .fetch_one(&mut *conn)
    .await?;
    row.into_model()
}

pub async fn list_agents(
    conn: &mut Conn,
    company: CompanyId,
    page: &PageRequest,
) -> Result<Page<Agent>> {
    let rows: Vec<AgentRow> = sqlx::query_as(&format!(
        "SELECT {AGENT_COLUMNS} FROM agents WHERE company_id = $1 AND id > $2
         ORDER BY id LIMIT $3"
    ))
    .bind(company.to_string())
    .bind(page.after.clone().unwrap_or_default())
    .bind(i64::from(page.limit) + 1)
    .fetch_all(&mut *conn)
    .await?;
    let items = rows
        .into_iter()
        .map(AgentRow::into_model)
        .collect::<Result<Vec<_>>>()?;
    Ok(Page::from_overfetch(items, page.limit, |a| {
        a.id.to_string()
    }))
}

/// Applies a partial update (read, change, write).
pub async fn update_agent(
    conn: &mut Tx,
    company: CompanyId,
    id: AgentId,
    patch: &AgentPatch,
    now: Timestamp,
) -> Result<Agent> {
    let conn: &mut Conn = conn;
    let mut a = agent(conn, company, id).await?;
    if let Some(n) = &patch.name {
        a.name = n.as_str().to_owned();
    }
    if let Some(b) = patch.appointment_booking {
        a.appointment_booking = b;
    }
    if let Some(e) = patch.event_type_id {
        a.event_type_id = e;
    }
    let row: AgentRow = sqlx::query_as(&format!(
        "UPDATE agents SET name = $3, appointment_booking = $4, event_type_id = $5,
             updated_at = $6
         WHERE company_id = $1 AND id = $2 RETURNING {AGENT_COLUMNS}"
    ))
    .bind(company.to_string())
    .bind(id.to_string())
    .bind(&a.name)
    .bind(i64::from(a.appointment_booking))
    .bind(a.event_type_id.map(EventTypeId::get))
    .bind(now.as_millisecond())
    .fetch_one(&mut *conn)
    .await?;
    row.into_model()
}

// ---- bookings ----

const BOOKING_COLUMNS: &str = "id, company_id, agent_id, case_id, event_type_id, status,
    external_uid, start_at, end_at, attendee_name, attendee_email, attendee_phone,
    attendee_time_zone, created_at, updated_at";

#[derive(FromRow)]
struct BookingRow {
    id: String,
    company_id: String,
    agent_id: String,
    case_id: Option<String>,
    event_type_id: i64,
    status: String,
    external_uid: Option<String>,
    start_at: i64,
    end_at: Option<i64>,
    attendee_name: String,
    attendee_email: Option<String>,
    attendee_phone: Option<String>,
    attendee_time_zone: String,
    created_at: i64,
    updated_at: i64,
}

impl BookingRow {
    fn into_model(self) -> Result<Booking> {
        Ok(Booking {
            id: parse_id("bookings.id", &self.id)?,
            company_id: parse_id("bookings.company_id", &self.company_id)?,
            agent_id: parse_id("bookings.agent_id", &self.agent_id)?,
            case_id: parse_opt_id("bookings.case_id", self.case_id.as_deref())?,
            event_type_id: EventTypeId::parse("bookings.event_type_id", self.event_type_id)
                .map_err(|_| {
                    StoreError::Corrupt(format!("bookings.event_type_id {}", self.event_type_id))
                })?,
            status: BookingStatus::parse(&self.status)
                .ok_or_else(|| StoreError::Corrupt(format!("bookings.status `{}`", self.status)))?,
            external_uid: self.external_uid,
            start: ts(self.start_at)?,
            end: self.end_at.map(ts).transpose()?,
            attendee: Attendee {
                name: self.attendee_name,
                email: self.attendee_email,
                phone: self.attendee_phone,
                time_zone: self.attendee_time_zone,
            },
            created_at: ts(self.created_at)?,
            updated_at: ts(self.updated_at)?,
        })
    }
}

/// Records a booking as `pending`, before the scheduling service is asked for it.
pub async fn create_pending_booking(
    conn: &mut Conn,
    company: CompanyId,
    new: &NewBooking,
    now: Timestamp,
) -> Result<Booking> {
    let a = &new.attendee;
    let row: BookingRow = sqlx::query_as(&format!(
        "INSERT INTO bookings (id, company_id, agent_id, case_id, event_type_id, status,
             start_at, attendee_name, attendee_email, attendee_phone, attendee_time_zone,
             created_at, updated_at)
         VALUES ($1, $2, $3, $4, $5, 'pending', $6, $7, $8, $9, $10, $11, $11)
         RETURNING {BOOKING_COLUMNS}"
    ))
    .bind(BookingId::new().to_string())
    .bind(company.to_string())
    .bind(new.agent_id.to_string())
    .bind(new.case_id.map(|c| c.to_string()))
    .bind(new.event_type_id.get())
    .bind(new.start.as_millisecond())
    .bind(&a.name)
    .bind(a.email.clone())
    .bind(a.phone.clone())
    .bind(&a.time_zone)
    .bind(now.as_millisecond())
    .fetch_one(&mut *conn)
    .await?;
    row.into_model()
}

/// Marks a pending booking as booked, with the service's uid and the times it confirmed.
pub async fn confirm_booking(
    conn: &mut Conn,
    company: CompanyId,
    id: BookingId,
    external_uid: &str,
    start: Timestamp,
    end: Option<Timestamp>,
    now: Timestamp,
) -> Result<Booking> {
    let row: BookingRow = sqlx::query_as(&format!(
        "UPDATE bookings SET status = 'booked', external_uid = $3, start_at = $4, end_at = $5,
             updated_at = $6
         WHERE company_id = $1 AND id = $2 AND status = 'pending' RETURNING {BOOKING_COLUMNS}"
    ))
    .bind(company.to_string())
    .bind(id.to_string())
    .bind(external_uid)
    .bind(start.as_millisecond())
    .bind(end.map(|e| e.as_millisecond()))
    .bind(now.as_millisecond())
    .fetch_one(&mut *conn)
    .await?;
    row.into_model()
}

/// Removes a pending booking the service refused (or that could not be asked for).
pub async fn delete_pending_booking(
    conn: &mut Conn,
    company: CompanyId,
    id: BookingId,
) -> Result<()> {
    sqlx::query("DELETE FROM bookings WHERE company_id = $1 AND id = $2 AND status = 'pending'")
        .bind(company.to_string())
        .bind(id.to_string())
        .execute(&mut *conn)
        .await?;
    Ok(())
}

pub async fn booking(conn: &mut Conn, company: CompanyId, id: BookingId) -> Result<Booking> {
    let row: BookingRow = sqlx::query_as(&format!(
        "SELECT {BOOKING_COLUMNS} FROM bookings WHERE company_id = $1 AND id = $2"
    ))
    .bind(company.to_string())
    .bind(id.to_string())
    .fetch_one(&mut *conn)
    .await?;
    row.into_model()
}

/// An agent's bookings in creation order, optionally only those of one case.
pub async fn list_bookings(
    conn: &mut Conn,
    company: CompanyId,
    agent: AgentId,
    case: Option<CaseId>,
    page: &PageRequest,
) -> Result<Page<Booking>> {
    let rows: Vec<BookingRow> = sqlx::query_as(&format!(
        "SELECT {BOOKING_COLUMNS} FROM bookings
         WHERE company_id = $1 AND agent_id = $2 AND id > $3
           AND ($4 IS NULL OR case_id = $4)
         ORDER BY id LIMIT $5"
    ))
    .bind(company.to_string())
    .bind(agent.to_string())
    .bind(page.after.clone().unwrap_or_default())
    .bind(case.map(|c| c.to_string()))
    .bind(i64::from(page.limit) + 1)
    .fetch_all(&mut *conn)
    .await?;
    let items = rows
        .into_iter()
        .map(BookingRow::into_model)
        .collect::<Result<Vec<_>>>()?;
    Ok(Page::from_overfetch(items, page.limit, |b| {
        b.id.to_string()
    }))
}
