//! Scheduling (SCH): agents that book appointments, who a booking is for, bookings, and the
//! times a caller gives, read in the company's time zone.
//!
//! Times given without an offset are wall-clock times in the company's zone. A wall-clock time
//! that does not exist there (the clocks jump over it) or that happens twice (the clocks go
//! back) is refused with a message naming the offsets to choose from, never guessed.

use std::fmt;

use jiff::civil::{Date, DateTime};
use jiff::tz::{AmbiguousOffset, TimeZone};
use jiff::{Timestamp, ToSpan, Zoned};

use crate::error::{ValidationError, Validator};
use crate::ids::{CaseId, CompanyId};
use crate::records::{ClientFields, Name};

pub use crate::ids::{AgentId, BookingId};

/// The longest availability range one request may ask for.
pub const MAX_RANGE_DAYS: i64 = 31;

/// A scheduling-service event type id: a positive integer ("the number at the end of your
/// event type URL").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct EventTypeId(i64);

impl EventTypeId {
    pub fn parse(field: &str, raw: i64) -> Result<Self, ValidationError> {
        if raw > 0 {
            Ok(Self(raw))
        } else {
            Err(ValidationError::single(
                field,
                "must be a positive integer: the number at the end of the event type's URL",
            ))
        }
    }

    pub fn get(self) -> i64 {
        self.0
    }
}

impl fmt::Display for EventTypeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

#[derive(Debug, Clone)]
pub struct NewAgent {
    pub name: Name,
    pub appointment_booking: bool,
    pub event_type_id: Option<EventTypeId>,
}

/// A partial update; `event_type_id: Some(None)` clears the event type.
#[derive(Debug, Clone, Default)]
pub struct AgentPatch {
    pub name: Option<Name>,
    pub appointment_booking: Option<bool>,
    pub event_type_id: Option<Option<EventTypeId>>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Agent {
    pub id: AgentId,
    pub company_id: CompanyId,
    pub name: String,
    pub appointment_booking: bool,
    pub event_type_id: Option<EventTypeId>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

/// Why an agent cannot book right now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BookingBlocker {
    /// The agent's appointment booking toggle is off.
    BookingOff,
    /// Booking is on but no event type is set.
    NoEventType,
    /// The company has no scheduling API key (never connected, or disconnected).
    NotConnected,
}

impl BookingBlocker {
    pub fn as_str(self) -> &'static str {
        match self {
            BookingBlocker::BookingOff => "booking_off",
            BookingBlocker::NoEventType => "no_event_type",
            BookingBlocker::NotConnected => "not_connected",
        }
    }
}

impl Agent {
    /// What stops this agent from checking availability or booking, checked in the order an
    /// admin would fix them: the agent's own settings first, then the company's connection.
    pub fn booking_blocker(&self, connected: bool) -> Option<BookingBlocker> {
        if !self.appointment_booking {
            Some(BookingBlocker::BookingOff)
        } else if self.event_type_id.is_none() {
            Some(BookingBlocker::NoEventType)
        } else if !connected {
            Some(BookingBlocker::NotConnected)
        } else {
            None
        }
    }
}

/// The company's connection to the scheduling service. The key is sealed; only its owner's
/// email (from the service, when the key was checked) is kept in the clear.
#[derive(Debug, Clone, PartialEq)]
pub struct SchedulingConnection {
    pub company_id: CompanyId,
    pub api_key_sealed: String,
    pub account_email: Option<String>,
    pub connected_at: Timestamp,
    pub updated_at: Timestamp,
}

/// Where a connection's API key is sealed to (the keyring's associated data), so a sealed key
/// cannot be moved to another company.
pub fn api_key_aad(company: CompanyId) -> String {
    format!("scheduling-key/{company}")
}

/// Who a booking is for. At least one of email and phone; the phone in international form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attendee {
    pub name: String,
    pub email: Option<String>,
    /// E.164, e.g. `+15550102000`.
    pub phone: Option<String>,
    /// IANA time zone the service uses in the attendee's confirmation.
    pub time_zone: String,
}

/// The attendee as a caller gives it, before validation.
#[derive(Debug, Clone, Default)]
pub struct AttendeeInput<'a> {
    pub name: Option<&'a str>,
    pub email: Option<&'a str>,
    pub phone: Option<&'a str>,
    pub time_zone: Option<&'a str>,
}

fn valid_email(e: &str) -> bool {
    match e.split_once('@') {
        Some((local, domain)) => {
            !local.is_empty()
                && domain.contains('.')
                && !domain.starts_with('.')
                && !domain.ends_with('.')
                && !e.contains(char::is_whitespace)
        }
        None => false,
    }
}

/// A phone number in international (E.164) form. `+` numbers keep their country code; numbers
/// without one are read as North American (10 digits, or 11 starting with 1), the platform's
/// market. `None` when it cannot be made international.
pub fn international_phone(raw: &str) -> Option<String> {
    let raw = raw.trim();
    if raw
        .chars()
        .any(|c| !(c.is_ascii_digit() || " +-().".contains(c)))
    {
        return None;
    }
    let digits: String = raw.chars().filter(char::is_ascii_digit).collect();
    let e164 = if raw.starts_with('+') {
        format!("+{digits}")
    } else if digits.len() == 10 {
        format!("+1{digits}")
    } else if digits.len() == 11 && digits.starts_with('1') {
        format!("+{digits}")
    } else {
        return None;
    };
    (9..=16).contains(&e164.len()).then_some(e164)
}

impl Attendee {
    /// An attendee given explicitly; fields are named `{prefix}.name` etc. The time zone
    /// defaults to `default_tz` (the company's).
    pub fn parse(
        prefix: &str,
        input: AttendeeInput<'_>,
        default_tz: &str,
    ) -> Result<Self, ValidationError> {
        let mut v = Validator::new();
        let field = |f: &str| format!("{prefix}.{f}");
        let name = input.name.map(str::trim).filter(|n| !n.is_empty());
        if name.is_none() {
            v.push(field("name"), "must not be empty");
        } else if name.is_some_and(|n| n.chars().count() > 200) {
            v.push(field("name"), "must be at most 200 characters");
        }
        let email = input.email.map(str::trim).filter(|e| !e.is_empty());
        if email.is_some_and(|e| !valid_email(e) || e.len() > 254) {
            v.push(field("email"), "is not an email address");
        }
        let phone_raw = input.phone.map(str::trim).filter(|p| !p.is_empty());
        let phone = phone_raw.and_then(international_phone);
        if phone_raw.is_some() && phone.is_none() {
            v.push(
                field("phone"),
                "is not a phone number in international form (for example +1 555 010 2000)",
            );
        }
        if email.is_none() && phone_raw.is_none() {
            v.push(prefix, "needs an email or a phone number");
        }
        let time_zone = match input.time_zone.map(str::trim) {
            None | Some("") => default_tz.to_owned(),
            Some(tz) if TimeZone::get(tz).is_ok() => tz.to_owned(),
            Some(tz) => {
                v.push(
                    field("time_zone"),
                    format!("`{tz}` is not a known IANA time zone"),
                );
                String::new()
            }
        };
        v.finish()?;
        Ok(Self {
            name: name.expect("validated").to_owned(),
            email: email.map(str::to_owned),
            phone,
            time_zone,
        })
    }

    /// The attendee of a case: its client's name, email and phone. Errors name `case_id`,
    /// because that is what the caller gave.
    pub fn from_client(client: &ClientFields, time_zone: &str) -> Result<Self, ValidationError> {
        let phone = client.phone.as_deref().and_then(international_phone);
        let email = client.email.clone().filter(|e| valid_email(e));
        if email.is_none() && phone.is_none() {
            return Err(ValidationError::single(
                "case_id",
                "the case's client has no email or international phone number to book with; \
                 add one to the client or give `attendee`",
            ));
        }
        Ok(Self {
            name: client.display_name(),
            email,
            phone,
            time_zone: time_zone.to_owned(),
        })
    }
}

/// Whether a booking is confirmed by the service yet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BookingStatus {
    /// Recorded before the service was asked; its outcome is unknown (the process stopped in
    /// between). Check the scheduling service.
    Pending,
    /// The service accepted it; `external_uid` is its id there.
    Booked,
}

impl BookingStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            BookingStatus::Pending => "pending",
            BookingStatus::Booked => "booked",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        match raw {
            "pending" => Some(BookingStatus::Pending),
            "booked" => Some(BookingStatus::Booked),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Booking {
    pub id: BookingId,
    pub company_id: CompanyId,
    pub agent_id: AgentId,
    pub case_id: Option<CaseId>,
    pub event_type_id: EventTypeId,
    pub status: BookingStatus,
    pub external_uid: Option<String>,
    pub start: Timestamp,
    pub end: Option<Timestamp>,
    pub attendee: Attendee,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

/// A booking about to be asked for.
#[derive(Debug, Clone)]
pub struct NewBooking {
    pub agent_id: AgentId,
    pub case_id: Option<CaseId>,
    pub event_type_id: EventTypeId,
    pub start: Timestamp,
    pub attendee: Attendee,
}

/// The company's time zone, as stored. An unknown name (it was checked when saved, so only a
/// newer or older tz database could cause it) falls back to UTC rather than failing a call.
pub fn company_zone(name: &str) -> TimeZone {
    TimeZone::get(name).unwrap_or(TimeZone::UTC)
}

/// Reads a wall-clock time in `tz`, refusing one that does not exist or happens twice.
fn civil_in_zone(field: &str, dt: DateTime, tz: &TimeZone) -> Result<Timestamp, ValidationError> {
    let zone = tz.iana_name().unwrap_or("the company's time zone");
    match tz.to_ambiguous_timestamp(dt).offset() {
        AmbiguousOffset::Unambiguous { offset } => offset
            .to_timestamp(dt)
            .map_err(|e| ValidationError::single(field, e.to_string())),
        AmbiguousOffset::Gap { before, after } => Err(ValidationError::single(
            field,
            format!(
                "{dt} does not exist in {zone}: the clocks move from {before} to {after} \
                 then; choose another time"
            ),
        )),
        AmbiguousOffset::Fold { before, after } => Err(ValidationError::single(
            field,
            format!(
                "{dt} happens twice in {zone} (the clocks go back); add the offset, \
                 {dt}{before} or {dt}{after}"
            ),
        )),
    }
}

/// An instant: RFC 3339 with an offset (`2026-03-09T10:00:00-04:00`, `…Z`), or a wall-clock
/// date-time without one (`2026-03-09T10:00`), read in `tz`.
pub fn parse_instant(field: &str, raw: &str, tz: &TimeZone) -> Result<Timestamp, ValidationError> {
    let raw = raw.trim();
    if let Ok(t) = raw.parse::<Timestamp>() {
        return crate::input::check_time(field, t);
    }
    match raw.parse::<DateTime>() {
        Ok(dt) if raw.len() > 10 => {
            civil_in_zone(field, dt, tz).and_then(|t| crate::input::check_time(field, t))
        }
        _ => Err(ValidationError::single(
            field,
            format!(
                "`{raw}` is not a time: give RFC 3339 with an offset \
                 (2026-03-09T10:00:00-04:00) or a local time in the company's time zone \
                 (2026-03-09T10:00)"
            ),
        )),
    }
}

/// A range of time to look for open slots in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimeWindow {
    pub start: Timestamp,
    pub end: Timestamp,
}

impl TimeWindow {
    /// `start` and `end` are instants as [`parse_instant`] reads them, or dates (`2026-03-08`)
    /// in `tz`: a start date means the start of that day, an end date the end of it. The end
    /// must be after the start and at most [`MAX_RANGE_DAYS`] calendar days later.
    pub fn parse(start: &str, end: &str, tz: &TimeZone) -> Result<Self, ValidationError> {
        let mut v = Validator::new();
        let start = v.check(bound("start", start, tz, false));
        let end = v.check(bound("end", end, tz, true));
        v.finish()?;
        let (start, end) = (start.expect("checked"), end.expect("checked"));
        if end <= start {
            return Err(ValidationError::single("end", "must be after start"));
        }
        let latest = start
            .to_zoned(tz.clone())
            .checked_add(MAX_RANGE_DAYS.days())
            .map(|z| z.timestamp())
            .unwrap_or(Timestamp::MAX);
        if end > latest {
            return Err(ValidationError::single(
                "end",
                format!("the range may be at most {MAX_RANGE_DAYS} days"),
            ));
        }
        Ok(Self { start, end })
    }

    /// A window around `at`: a day before to two days after, for offering alternatives.
    pub fn around(at: Timestamp) -> Self {
        let day = jiff::SignedDuration::from_hours(24);
        Self {
            start: at.checked_sub(day).unwrap_or(at),
            end: at.checked_add(day * 2).unwrap_or(at),
        }
    }
}

fn bound(field: &str, raw: &str, tz: &TimeZone, end: bool) -> Result<Timestamp, ValidationError> {
    let raw = raw.trim();
    if raw.len() == 10 {
        if let Ok(d) = raw.parse::<Date>() {
            let day = if end { d.tomorrow() } else { Ok(d) };
            return day
                .and_then(|d| d.to_zoned(tz.clone()))
                .and_then(|z: Zoned| z.start_of_day())
                .map(|z| z.timestamp())
                .map_err(|e| ValidationError::single(field, e.to_string()));
        }
    }
    parse_instant(field, raw, tz)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ny() -> TimeZone {
        TimeZone::get("America/New_York").unwrap()
    }

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    #[test]
    fn local_times_are_read_in_the_company_zone() {
        // Before and after the spring change (2026-03-08 02:00 EST → 03:00 EDT).
        assert_eq!(
            parse_instant("start", "2026-03-07T10:00", &ny()).unwrap(),
            ts("2026-03-07T15:00:00Z")
        );
        assert_eq!(
            parse_instant("start", "2026-03-09T10:00:00", &ny()).unwrap(),
            ts("2026-03-09T14:00:00Z")
        );
        // An explicit offset wins over the zone.
        assert_eq!(
            parse_instant("start", "2026-03-09T10:00:00+01:00", &ny()).unwrap(),
            ts("2026-03-09T09:00:00Z")
        );
        assert_eq!(
            parse_instant("start", "2026-03-09T14:00:00Z", &ny()).unwrap(),
            ts("2026-03-09T14:00:00Z")
        );
    }

    #[test]
    fn missing_and_repeated_local_times_are_refused() {
        let gap = parse_instant("start", "2026-03-08T02:30", &ny()).unwrap_err();
        assert!(gap.to_string().contains("does not exist"), "{gap}");
        let fold = parse_instant("start", "2026-11-01T01:30", &ny()).unwrap_err();
        let msg = fold.to_string();
        assert!(
            msg.contains("happens twice") && msg.contains("-04") && msg.contains("-05"),
            "{msg}"
        );
        assert!(parse_instant("start", "tomorrow", &ny()).is_err());
        assert!(parse_instant("start", "2026-03-09", &ny()).is_err());
    }

    #[test]
    fn windows_take_dates_in_the_zone_and_are_bounded() {
        let w = TimeWindow::parse("2026-03-07", "2026-03-08", &ny()).unwrap();
        assert_eq!(w.start, ts("2026-03-07T05:00:00Z"));
        // The end date is included: up to midnight starting 2026-03-09, which is EDT.
        assert_eq!(w.end, ts("2026-03-09T04:00:00Z"));

        let e = TimeWindow::parse("2026-03-09", "2026-03-08", &ny()).unwrap_err();
        assert_eq!(e.errors[0].field, "end");
        let e = TimeWindow::parse("2026-03-09T10:00", "2026-03-09T10:00", &ny()).unwrap_err();
        assert_eq!(e.errors[0].message, "must be after start");
        // 31 calendar days, even across a DST change, is allowed; 32 is not.
        assert!(TimeWindow::parse("2026-10-15", "2026-11-14", &ny()).is_ok());
        let e = TimeWindow::parse("2026-10-15", "2026-11-15", &ny()).unwrap_err();
        assert!(e.errors[0].message.contains("31 days"));
        let e = TimeWindow::parse("soon", "later", &ny()).unwrap_err();
        assert_eq!(e.errors.len(), 2);
    }

    #[test]
    fn phones_become_international() {
        assert_eq!(
            international_phone("+1 (555) 010-2000").as_deref(),
            Some("+15550102000")
        );
        assert_eq!(
            international_phone("555.010.2000").as_deref(),
            Some("+15550102000")
        );
        assert_eq!(
            international_phone("1 555 010 2000").as_deref(),
            Some("+15550102000")
        );
        assert_eq!(
            international_phone("+44 20 7946 0958").as_deref(),
            Some("+442079460958")
        );
        assert_eq!(international_phone("010 2000"), None);
        assert_eq!(international_phone("call me"), None);
    }

    #[test]
    fn attendees_need_a_name_and_a_way_to_reach_them() {
        let a = Attendee::parse(
            "attendee",
            AttendeeInput {
                name: Some(" Jane Doe "),
                phone: Some("(555) 010-2000"),
                ..Default::default()
            },
            "America/Chicago",
        )
        .unwrap();
        assert_eq!(
            (a.name.as_str(), a.phone.as_deref(), a.time_zone.as_str()),
            ("Jane Doe", Some("+15550102000"), "America/Chicago")
        );
        let e = Attendee::parse("attendee", AttendeeInput::default(), "UTC").unwrap_err();
        let fields: Vec<_> = e.errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, ["attendee.name", "attendee"]);
        let e = Attendee::parse(
            "attendee",
            AttendeeInput {
                name: Some("J"),
                email: Some("nope"),
                time_zone: Some("Mars/Base"),
                ..Default::default()
            },
            "UTC",
        )
        .unwrap_err();
        let fields: Vec<_> = e.errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, ["attendee.email", "attendee.time_zone"]);
    }

    #[test]
    fn a_client_without_contact_cannot_be_booked() {
        let client = ClientFields {
            first_name: Some("Jane".into()),
            last_name: Some("Doe".into()),
            email: None,
            phone: Some("010 2000".into()),
        };
        let e = Attendee::from_client(&client, "UTC").unwrap_err();
        assert_eq!(e.errors[0].field, "case_id");
        let client = ClientFields {
            email: Some("jane@example.com".into()),
            ..client
        };
        let a = Attendee::from_client(&client, "UTC").unwrap();
        assert_eq!((a.name.as_str(), a.phone), ("Jane Doe", None));
    }

    #[test]
    fn blockers_are_reported_in_order() {
        let mut agent = Agent {
            id: AgentId::new(),
            company_id: CompanyId::new(),
            name: "Intake".into(),
            appointment_booking: false,
            event_type_id: None,
            created_at: Timestamp::UNIX_EPOCH,
            updated_at: Timestamp::UNIX_EPOCH,
        };
        assert_eq!(
            agent.booking_blocker(false),
            Some(BookingBlocker::BookingOff)
        );
        agent.appointment_booking = true;
        assert_eq!(
            agent.booking_blocker(true),
            Some(BookingBlocker::NoEventType)
        );
        agent.event_type_id = Some(EventTypeId::parse("e", 7).unwrap());
        assert_eq!(
            agent.booking_blocker(false),
            Some(BookingBlocker::NotConnected)
        );
        assert_eq!(agent.booking_blocker(true), None);
        assert!(EventTypeId::parse("e", 0).is_err());
    }
}
