//! A scheduling service compatible with the parts of the Cal.com API v2 that casebridge uses
//! (SPEC §8), for tests and for `casebridge sim scheduling`.
//!
//! Served, as Cal.com serves them:
//! - `GET /v2/me` — the key owner's profile (casebridge validates a key with it).
//! - `GET /v2/slots` with `cal-api-version: 2024-09-04` — `eventTypeId`, `start`, `end` (UTC ISO
//!   8601 dates or date-times), `timeZone` (default UTC), `format` (`time` or `range`). Answers
//!   `{"status":"success","data":{"2026-03-08":[{"start":"2026-03-08T09:00:00.000-04:00"}]}}`,
//!   keyed by date in `timeZone`, starts in that zone.
//! - `POST /v2/bookings` with `cal-api-version: 2024-08-13` — `start` (UTC ISO 8601),
//!   `eventTypeId`, `attendee {name, email or phoneNumber, timeZone}`. 201 with the booking.
//!
//! Every `/v2` request needs `Authorization: Bearer <key>` with a key configured here. Errors are
//! Cal.com's envelope: `{"status":"error","timestamp","path","error":{"code","message"}}` with
//! the NestJS exception name as `code` (`UnauthorizedException`, `BadRequestException`,
//! `NotFoundException`, `ThrottlerException`). A slot that is taken, outside working hours or
//! not on the slot grid is refused as Cal.com refuses it: `400 BadRequestException` "User either
//! already has booking at this time or is not available". Each key may make
//! [`DEFAULT_RATE_LIMIT`] requests a minute; more get `429` with `Retry-After`.
//!
//! For tests: [`SchedulingSim::set_faults`] (down → 503, a delay before every answer), a request
//! log ([`SchedulingSim::requests`]), the bookings made ([`SchedulingSim::bookings`]), a settable
//! clock ([`SchedulingSim::set_now`]), and the same controls over HTTP under `/_sim/` (no key):
//! `GET /_sim/requests`, `GET /_sim/bookings`, `PUT /_sim/faults {"down","delay_ms"}`.

mod calendar;
mod http;

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use jiff::{SignedDuration, Timestamp};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

pub use calendar::WeeklyHours;

/// The only `cal-api-version` of `GET /v2/slots` served here.
pub const SLOTS_API_VERSION: &str = "2024-09-04";
/// The only `cal-api-version` of `POST /v2/bookings` served here.
pub const BOOKINGS_API_VERSION: &str = "2024-08-13";
/// Requests per minute per key, Cal.com's default for API keys.
pub const DEFAULT_RATE_LIMIT: u32 = 120;
/// The message Cal.com gives when the requested time cannot be booked.
pub const SLOT_UNAVAILABLE_MESSAGE: &str =
    "User either already has booking at this time or is not available";

/// The key of [`SchedulingSim::demo`].
pub const DEMO_API_KEY: &str = "cal_sim_demo_key";

/// The owner of keys and event types (a Cal.com user).
#[derive(Debug, Clone, Serialize)]
pub struct SimUser {
    pub id: i64,
    pub username: String,
    pub email: String,
    pub time_zone: String,
}

/// An event type: what is booked, how long it lasts, and when its host works.
#[derive(Debug, Clone)]
pub struct EventTypeSpec {
    pub id: i64,
    pub owner: i64,
    pub slug: String,
    pub title: String,
    pub length_minutes: i64,
    pub hours: WeeklyHours,
    /// Slots starting sooner than this after "now" are not offered or bookable.
    pub minimum_notice_minutes: i64,
}

impl EventTypeSpec {
    pub fn new(id: i64, owner: i64, length_minutes: i64, hours: WeeklyHours) -> Self {
        Self {
            id,
            owner,
            slug: format!("{length_minutes}min"),
            title: format!("{length_minutes} Min Meeting"),
            length_minutes,
            hours,
            minimum_notice_minutes: 0,
        }
    }

    pub fn titled(mut self, slug: &str, title: &str) -> Self {
        self.slug = slug.to_owned();
        self.title = title.to_owned();
        self
    }

    fn length(&self) -> SignedDuration {
        SignedDuration::from_mins(self.length_minutes)
    }
}

/// A booking the simulator accepted.
#[derive(Debug, Clone, Serialize)]
pub struct SimBooking {
    pub id: i64,
    pub uid: String,
    pub event_type_id: i64,
    pub host: i64,
    pub start: Timestamp,
    pub end: Timestamp,
    /// The `attendee` object as received.
    pub attendee: Value,
    pub created_at: Timestamp,
}

/// One request as received (not the `/_sim/` controls).
#[derive(Debug, Clone, Serialize)]
pub struct RecordedRequest {
    pub method: String,
    pub path: String,
    pub query: Option<String>,
    /// The `cal-api-version` header.
    pub api_version: Option<String>,
    /// The bearer token (this is a test tool; real services never echo keys).
    pub bearer: Option<String>,
    pub body: Option<Value>,
    pub status: u16,
}

/// Injected failures.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Faults {
    /// Every `/v2` request answers `503`.
    #[serde(default)]
    pub down: bool,
    /// Every `/v2` request waits this long before it is handled.
    #[serde(default)]
    pub delay_ms: u64,
}

#[derive(Debug, Default)]
struct State {
    users: BTreeMap<i64, SimUser>,
    keys: HashMap<String, i64>,
    event_types: BTreeMap<i64, EventTypeSpec>,
    bookings: Vec<SimBooking>,
    requests: Vec<RecordedRequest>,
    now: Option<Timestamp>,
    faults: Faults,
    rate_limit: u32,
    hits: HashMap<String, VecDeque<std::time::Instant>>,
}

/// The simulator's state and controls. Clones share one state, so a test keeps a clone while
/// the server runs.
#[derive(Debug, Clone)]
pub struct SchedulingSim {
    inner: Arc<Mutex<State>>,
}

impl Default for SchedulingSim {
    fn default() -> Self {
        Self::new()
    }
}

impl SchedulingSim {
    /// An empty service: no keys, no event types.
    pub fn new() -> Self {
        Self {
            inner: Arc::new(Mutex::new(State {
                rate_limit: DEFAULT_RATE_LIMIT,
                ..State::default()
            })),
        }
    }

    /// A ready-made service for trying casebridge by hand: key [`DEMO_API_KEY`], event type
    /// 1001 (30 minutes, Monday–Friday 09:00–17:00 America/New_York) and 1002 (60 minutes,
    /// Monday–Friday 10:00–16:00 America/Chicago).
    pub fn demo() -> Self {
        let sim = Self::new();
        let user = sim.add_user("demo", "scheduling@demo.example", "America/New_York");
        sim.add_key(user, DEMO_API_KEY);
        sim.add_event_type(
            EventTypeSpec::new(
                1001,
                user,
                30,
                WeeklyHours::weekdays("America/New_York", "09:00", "17:00"),
            )
            .titled("consultation", "30 Min Consultation"),
        );
        sim.add_event_type(
            EventTypeSpec::new(
                1002,
                user,
                60,
                WeeklyHours::weekdays("America/Chicago", "10:00", "16:00"),
            )
            .titled("case-review", "60 Min Case Review"),
        );
        sim
    }

    /// What is configured, for printing when the simulator starts.
    pub fn describe(&self) -> Value {
        let s = self.state();
        serde_json::json!({
            "api_keys": s.keys.keys().collect::<Vec<_>>(),
            "event_types": s.event_types.values().map(|e| serde_json::json!({
                "id": e.id,
                "slug": e.slug,
                "title": e.title,
                "length_minutes": e.length_minutes,
                "time_zone": e.hours.time_zone().iana_name(),
            })).collect::<Vec<_>>(),
            "rate_limit_per_minute": s.rate_limit,
        })
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock leaves plain data behind; keep serving it.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Adds a user and returns its id.
    pub fn add_user(&self, username: &str, email: &str, time_zone: &str) -> i64 {
        let mut s = self.state();
        let id = s.users.keys().next_back().map_or(1, |k| k + 1);
        s.users.insert(
            id,
            SimUser {
                id,
                username: username.to_owned(),
                email: email.to_owned(),
                time_zone: time_zone.to_owned(),
            },
        );
        id
    }

    /// Accepts `key` as the user's API key.
    pub fn add_key(&self, user: i64, key: &str) {
        self.state().keys.insert(key.to_owned(), user);
    }

    /// Stops accepting `key` (as if it were revoked in Cal.com).
    pub fn revoke_key(&self, key: &str) {
        self.state().keys.remove(key);
    }

    pub fn add_event_type(&self, spec: EventTypeSpec) {
        self.state().event_types.insert(spec.id, spec);
    }

    /// Fixes "now" (slots before it are not offered; bookings before it are refused).
    pub fn set_now(&self, now: Timestamp) {
        self.state().now = Some(now);
    }

    pub fn set_faults(&self, faults: Faults) {
        self.state().faults = faults;
    }

    pub fn set_rate_limit(&self, per_minute: u32) {
        self.state().rate_limit = per_minute;
    }

    /// Every `/v2` request so far, oldest first.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.state().requests.clone()
    }

    pub fn clear_requests(&self) {
        self.state().requests.clear();
    }

    pub fn bookings(&self) -> Vec<SimBooking> {
        self.state().bookings.clone()
    }

    /// Books a slot directly, as someone using the booking page would. Returns the uid, or the
    /// reason it was refused.
    pub fn book_directly(&self, event_type_id: i64, start: Timestamp) -> Result<String, String> {
        let mut s = self.state();
        let attendee = serde_json::json!({"name": "Walk-in", "email": "walk-in@example.com",
            "timeZone": "UTC"});
        s.book(event_type_id, start, attendee)
            .map(|b| b.uid)
            .map_err(|e| e.message().to_owned())
    }

    /// Binds `127.0.0.1:0` and serves in the background until the returned handle is dropped.
    pub async fn start(&self) -> RunningSim {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind 127.0.0.1:0");
        let addr = listener.local_addr().expect("local address");
        let shutdown = CancellationToken::new();
        tokio::spawn(serve_until(listener, self.clone(), shutdown.clone()));
        RunningSim {
            sim: self.clone(),
            addr,
            base_url: format!("http://{addr}"),
            shutdown,
        }
    }
}

/// Why a booking was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
enum BookError {
    NoEventType(i64),
    InThePast,
    Unavailable,
}

impl BookError {
    fn message(&self) -> &str {
        match self {
            BookError::NoEventType(_) => "event type not found",
            BookError::InThePast => "Attempting to book a meeting in the past.",
            BookError::Unavailable => SLOT_UNAVAILABLE_MESSAGE,
        }
    }
}

impl State {
    fn now(&self) -> Timestamp {
        self.now.unwrap_or_else(Timestamp::now)
    }

    /// Open slot starts of an event type within `[from, to]`: on the working-hours grid, after
    /// the minimum notice, not overlapping any booking of the host.
    fn open_slots(&self, e: &EventTypeSpec, from: Timestamp, to: Timestamp) -> Vec<Timestamp> {
        let earliest = self
            .now()
            .checked_add(SignedDuration::from_mins(e.minimum_notice_minutes))
            .unwrap_or_else(|_| self.now());
        let from = from.max(earliest);
        e.hours
            .slot_starts(e.length(), from, to)
            .into_iter()
            .filter(|s| {
                let end = *s + e.length();
                !self
                    .bookings
                    .iter()
                    .any(|b| b.host == e.owner && b.start < end && *s < b.end)
            })
            .collect()
    }

    /// Checks and records a booking in one step (the caller holds the lock), so two requests
    /// for one slot cannot both win.
    fn book(
        &mut self,
        event_type_id: i64,
        start: Timestamp,
        attendee: Value,
    ) -> Result<SimBooking, BookError> {
        let e = self
            .event_types
            .get(&event_type_id)
            .cloned()
            .ok_or(BookError::NoEventType(event_type_id))?;
        if start < self.now() {
            return Err(BookError::InThePast);
        }
        if !self.open_slots(&e, start, start).contains(&start) {
            return Err(BookError::Unavailable);
        }
        let booking = SimBooking {
            id: self.bookings.len() as i64 + 1,
            uid: uuid::Uuid::new_v4().simple().to_string(),
            event_type_id,
            host: e.owner,
            start,
            end: start + e.length(),
            attendee,
            created_at: self.now(),
        };
        self.bookings.push(booking.clone());
        Ok(booking)
    }

    /// Counts a request against `tracker`'s minute; `Err(seconds)` when over the limit.
    fn hit(&mut self, tracker: &str) -> Result<u32, u64> {
        let limit = self.rate_limit;
        let window = Duration::from_secs(60);
        let now = std::time::Instant::now();
        let hits = self.hits.entry(tracker.to_owned()).or_default();
        while hits
            .front()
            .is_some_and(|t| now.duration_since(*t) >= window)
        {
            hits.pop_front();
        }
        if hits.len() >= limit as usize {
            let wait = hits.front().map_or(window, |oldest| {
                window.saturating_sub(now.duration_since(*oldest))
            });
            return Err(wait.as_secs().max(1));
        }
        hits.push_back(now);
        Ok(limit - hits.len() as u32)
    }
}

/// A simulator serving on a local port; stops when dropped.
#[derive(Debug)]
pub struct RunningSim {
    pub sim: SchedulingSim,
    pub addr: SocketAddr,
    /// `http://127.0.0.1:<port>`: what casebridge's scheduling URL should be.
    pub base_url: String,
    shutdown: CancellationToken,
}

impl Drop for RunningSim {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

/// Serves the simulator on `listener` until the process ends (for `casebridge sim scheduling`).
pub async fn serve(listener: TcpListener, sim: SchedulingSim) -> std::io::Result<()> {
    serve_until(listener, sim, CancellationToken::new()).await
}

/// Serves until `shutdown` is cancelled, then stops accepting and finishes open requests.
pub async fn serve_until(
    listener: TcpListener,
    sim: SchedulingSim,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    axum::serve(listener, http::router(sim))
        .with_graceful_shutdown(async move { shutdown.cancelled().await })
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_booked_slot_is_gone_and_cannot_be_booked_twice() {
        let sim = SchedulingSim::new();
        let user = sim.add_user("u", "u@example.com", "UTC");
        sim.add_event_type(EventTypeSpec::new(
            7,
            user,
            30,
            WeeklyHours::every_day("UTC", "09:00", "10:00"),
        ));
        sim.set_now("2026-03-01T00:00:00Z".parse().unwrap());
        let at: Timestamp = "2026-03-02T09:30:00Z".parse().unwrap();
        assert!(sim.book_directly(7, at).is_ok());
        assert_eq!(
            sim.book_directly(7, at).unwrap_err(),
            SLOT_UNAVAILABLE_MESSAGE
        );
        // Off the grid and outside the hours are refused the same way.
        assert!(sim
            .book_directly(7, "2026-03-02T09:10:00Z".parse().unwrap())
            .is_err());
        assert!(sim
            .book_directly(7, "2026-03-02T11:00:00Z".parse().unwrap())
            .is_err());
        let s = sim.state();
        let e = s.event_types[&7].clone();
        let open = s.open_slots(
            &e,
            "2026-03-02T00:00:00Z".parse().unwrap(),
            "2026-03-02T23:00:00Z".parse().unwrap(),
        );
        assert_eq!(open, ["2026-03-02T09:00:00Z".parse::<Timestamp>().unwrap()]);
    }

    #[test]
    fn the_past_is_not_bookable() {
        let sim = SchedulingSim::new();
        let user = sim.add_user("u", "u@example.com", "UTC");
        sim.add_event_type(EventTypeSpec::new(
            7,
            user,
            30,
            WeeklyHours::every_day("UTC", "09:00", "10:00"),
        ));
        sim.set_now("2026-03-05T00:00:00Z".parse().unwrap());
        let err = sim
            .book_directly(7, "2026-03-02T09:00:00Z".parse().unwrap())
            .unwrap_err();
        assert!(err.contains("past"), "{err}");
    }
}
