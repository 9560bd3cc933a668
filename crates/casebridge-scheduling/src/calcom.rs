//! The Cal.com API v2 client: the three calls casebridge makes and how their answers are read.
//!
//! - `GET /v2/me` checks a key when an admin connects it.
//! - `GET /v2/slots` (`cal-api-version: 2024-09-04`) lists open slots.
//! - `POST /v2/bookings` (`cal-api-version: 2024-08-13`) books one, `start` in UTC.
//!
//! Errors are classified for the caller ([`CalError`]): a refused key, a slot that cannot be
//! booked (Cal.com answers `400` "User either already has booking at this time or is not
//! available"; a `409` is read the same way), other refusals, rate limiting, and the service
//! being unreachable, slow or failing (5xx). The key goes only in the `Authorization` header;
//! it is never logged or put in an error message.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use casebridge_domain::scheduling::Attendee;
use casebridge_webhooks::policy::UrlPolicy;
use jiff::Timestamp;
use reqwest::header::RETRY_AFTER;
use reqwest::{RequestBuilder, StatusCode};
use serde_json::{json, Map, Value};

pub const SLOTS_API_VERSION: &str = "2024-09-04";
pub const BOOKINGS_API_VERSION: &str = "2024-08-13";
/// How long one call may take. The agent runtime is on a live call: a slow answer is a failure.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// Error bodies are read up to this size, so a misbehaving service cannot flood memory.
const MAX_BODY: usize = 1024 * 1024;

/// What went wrong talking to the scheduling service.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CalError {
    /// 401/403: the key is not (or no longer) valid.
    #[error("the scheduling service rejected the API key: {0}")]
    Unauthorized(String),
    /// 404: usually an event type that does not exist.
    #[error("the scheduling service has no such record: {0}")]
    NotFound(String),
    /// The requested time cannot be booked (taken, outside working hours, too soon).
    #[error("the slot cannot be booked: {0}")]
    SlotUnavailable(String),
    /// Another 4xx: the service refused the request's content.
    #[error("the scheduling service refused the request ({status}): {message}")]
    Rejected { status: u16, message: String },
    /// 429, with the wait the service asked for (seconds).
    #[error("the scheduling service is rate limiting this key")]
    RateLimited { retry_after: Option<u64> },
    /// No answer within [`REQUEST_TIMEOUT`]. For a booking the outcome is unknown.
    #[error("the scheduling service did not answer within {0} s")]
    Timeout(u64),
    /// Could not connect, or a 5xx.
    #[error("the scheduling service is unavailable: {0}")]
    Unavailable(String),
    /// The outbound URL policy refuses the base URL (checked before every request).
    #[error("{0}")]
    Refused(String),
    /// A 2xx whose body is not what the API documents.
    #[error("the scheduling service answered in an unexpected format: {0}")]
    Protocol(String),
}

/// The owner of a key (`GET /v2/me`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    pub id: Option<i64>,
    pub email: Option<String>,
    pub username: Option<String>,
    pub time_zone: Option<String>,
}

/// An open slot as the service gives it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Slot {
    pub start: Timestamp,
    pub end: Option<Timestamp>,
}

/// A booking to ask for.
#[derive(Debug, Clone)]
pub struct BookingRequest<'a> {
    pub event_type_id: i64,
    pub start: Timestamp,
    pub attendee: &'a Attendee,
    /// Stored by the service with the booking (at most 50 keys).
    pub metadata: BTreeMap<String, String>,
}

/// A booking the service accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Confirmed {
    pub uid: String,
    pub start: Timestamp,
    pub end: Option<Timestamp>,
    pub status: Option<String>,
}

/// A client for one base URL (e.g. `https://api.cal.com`). Cheap to clone.
#[derive(Debug, Clone)]
pub struct CalClient {
    http: reqwest::Client,
    /// When set, every request's URL is vetted against it right before it is sent.
    policy: Option<Arc<UrlPolicy>>,
    base: String,
    timeout: Duration,
}

impl CalClient {
    /// `http` should be the SSRF-safe outbound client (it decides which addresses may be
    /// reached and follows no redirects).
    pub fn new(http: reqwest::Client, base_url: &str) -> Self {
        Self {
            http,
            policy: None,
            base: base_url.trim_end_matches('/').to_owned(),
            timeout: REQUEST_TIMEOUT,
        }
    }

    /// Vets every request's URL against `policy` right before it is sent, as webhook
    /// deliveries are (an IP-literal base URL never reaches the safe client's resolver).
    pub fn with_policy(mut self, policy: Arc<UrlPolicy>) -> Self {
        self.policy = Some(policy);
        self
    }

    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    pub fn base_url(&self) -> &str {
        &self.base
    }

    /// Checks a key: the profile of its owner.
    pub async fn me(&self, key: &str) -> Result<Account, CalError> {
        let data = self
            .send(self.http.get(format!("{}/v2/me", self.base)), key)
            .await?;
        let text = |k: &str| data.get(k).and_then(Value::as_str).map(str::to_owned);
        Ok(Account {
            id: data.get("id").and_then(Value::as_i64),
            email: text("email"),
            username: text("username"),
            time_zone: text("timeZone"),
        })
    }

    /// Open slots of an event type starting within `[start, end]`, in order.
    pub async fn slots(
        &self,
        key: &str,
        event_type_id: i64,
        start: Timestamp,
        end: Timestamp,
        time_zone: &str,
    ) -> Result<Vec<Slot>, CalError> {
        let req = self
            .http
            .get(format!("{}/v2/slots", self.base))
            .header("cal-api-version", SLOTS_API_VERSION)
            .query(&[
                ("eventTypeId", event_type_id.to_string()),
                ("start", start.to_string()),
                ("end", end.to_string()),
                ("timeZone", time_zone.to_owned()),
                ("format", "range".to_owned()),
            ]);
        let data = self.send(req, key).await?;
        parse_slots(&data)
    }

    /// Books a slot. `start` is sent in UTC.
    pub async fn create_booking(
        &self,
        key: &str,
        booking: &BookingRequest<'_>,
    ) -> Result<Confirmed, CalError> {
        let a = booking.attendee;
        let mut attendee = Map::new();
        attendee.insert("name".into(), json!(a.name));
        attendee.insert("timeZone".into(), json!(a.time_zone));
        if let Some(e) = &a.email {
            attendee.insert("email".into(), json!(e));
        }
        if let Some(p) = &a.phone {
            attendee.insert("phoneNumber".into(), json!(p));
        }
        let body = json!({
            "start": booking.start.to_string(),
            "eventTypeId": booking.event_type_id,
            "attendee": attendee,
            "metadata": booking.metadata,
        });
        let req = self
            .http
            .post(format!("{}/v2/bookings", self.base))
            .header("cal-api-version", BOOKINGS_API_VERSION)
            .json(&body);
        let data = self.send(req, key).await?;
        parse_confirmed(&data)
    }

    /// Sends a request and returns the `data` of a success envelope, or the classified error.
    async fn send(&self, req: RequestBuilder, key: &str) -> Result<Value, CalError> {
        let req = req.bearer_auth(key).timeout(self.timeout);
        if let Some(policy) = &self.policy {
            let (client, built) = req.build_split();
            let built = built.map_err(|e| self.transport(&e))?;
            policy.vet(built.url().as_str()).await.map_err(|e| {
                CalError::Refused(format!("the scheduling base URL is refused: {e}"))
            })?;
            return self.answer(client.execute(built).await).await;
        }
        self.answer(req.send().await).await
    }

    async fn answer(
        &self,
        sent: Result<reqwest::Response, reqwest::Error>,
    ) -> Result<Value, CalError> {
        let resp = sent.map_err(|e| self.transport(&e))?;
        let status = resp.status();
        let retry_after = resp
            .headers()
            .get(RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok());
        let body = read_limited(resp).await.map_err(|e| self.transport(&e))?;
        if status.is_success() {
            let v: Value = serde_json::from_slice(&body)
                .map_err(|e| CalError::Protocol(format!("the body is not JSON: {e}")))?;
            if v.get("status").and_then(Value::as_str) == Some("error") {
                return Err(CalError::Protocol(error_message(&body)));
            }
            return v
                .get("data")
                .cloned()
                .ok_or_else(|| CalError::Protocol("no `data` in the answer".into()));
        }
        Err(classify(status, &error_message(&body), retry_after))
    }

    fn transport(&self, e: &reqwest::Error) -> CalError {
        if e.is_timeout() {
            return CalError::Timeout(self.timeout.as_secs().max(1));
        }
        let mut cause: &dyn std::error::Error = e;
        while let Some(next) = cause.source() {
            cause = next;
        }
        let what = if e.is_connect() {
            "could not connect"
        } else {
            "the request failed"
        };
        CalError::Unavailable(format!("{what}: {cause}"))
    }
}

async fn read_limited(mut resp: reqwest::Response) -> Result<Vec<u8>, reqwest::Error> {
    let mut body = Vec::new();
    while let Some(chunk) = resp.chunk().await? {
        let room = MAX_BODY.saturating_sub(body.len());
        body.extend_from_slice(&chunk[..chunk.len().min(room)]);
        if room <= chunk.len() {
            break;
        }
    }
    Ok(body)
}

/// Messages with which Cal.com refuses a time that cannot be booked.
fn is_slot_refusal(message: &str) -> bool {
    let m = message.to_ascii_lowercase();
    m.contains("already has booking at this time")
        || m.contains("no_available_users_found_error")
        || m.contains("no available users")
        || m.contains("can't be booked at the \"start\" time")
        || m.contains("hosts_unavailable_for_booking")
}

/// Turns a non-2xx answer into an error.
pub fn classify(status: StatusCode, message: &str, retry_after: Option<u64>) -> CalError {
    let message = message.to_owned();
    match status.as_u16() {
        401 | 403 => CalError::Unauthorized(message),
        404 => CalError::NotFound(message),
        409 => CalError::SlotUnavailable(message),
        429 => CalError::RateLimited { retry_after },
        400 | 422 if is_slot_refusal(&message) => CalError::SlotUnavailable(message),
        s @ 400..=499 => CalError::Rejected { status: s, message },
        s => CalError::Unavailable(format!("HTTP {s}: {message}")),
    }
}

/// The readable message of an error body: Cal.com's `error.message` (a string or a list), a
/// top-level `message`, or the start of the text.
pub fn error_message(body: &[u8]) -> String {
    let from_json = serde_json::from_slice::<Value>(body).ok().and_then(|v| {
        let m = v
            .pointer("/error/message")
            .or_else(|| v.get("message"))
            .cloned()?;
        match m {
            Value::String(s) => Some(s),
            Value::Array(items) => Some(
                items
                    .iter()
                    .map(|i| i.as_str().map_or_else(|| i.to_string(), str::to_owned))
                    .collect::<Vec<_>>()
                    .join("; "),
            ),
            other => Some(other.to_string()),
        }
    });
    let mut m = from_json.unwrap_or_else(|| String::from_utf8_lossy(body).trim().to_owned());
    if m.is_empty() {
        m = "no details given".into();
    }
    if m.chars().count() > 300 {
        m = m.chars().take(300).collect::<String>() + "…";
    }
    m
}

fn timestamp(v: &Value) -> Option<Timestamp> {
    v.as_str()?.parse().ok()
}

/// `data` of `GET /v2/slots`: dates mapped to lists of `{start[, end]}` (older versions used
/// `time`).
pub fn parse_slots(data: &Value) -> Result<Vec<Slot>, CalError> {
    let days = data
        .as_object()
        .ok_or_else(|| CalError::Protocol("slots: `data` is not an object of dates".into()))?;
    let mut out = Vec::new();
    for (day, slots) in days {
        let slots = slots
            .as_array()
            .ok_or_else(|| CalError::Protocol(format!("slots: `{day}` is not a list")))?;
        for s in slots {
            let start = s
                .get("start")
                .or_else(|| s.get("time"))
                .and_then(timestamp)
                .ok_or_else(|| {
                    CalError::Protocol(format!("slots: a slot on `{day}` has no valid start"))
                })?;
            out.push(Slot {
                start,
                end: s.get("end").and_then(timestamp),
            });
        }
    }
    out.sort_by_key(|s| s.start);
    out.dedup_by_key(|s| s.start);
    Ok(out)
}

/// `data` of `POST /v2/bookings`: the booking (or, for a recurring event, the first of them).
pub fn parse_confirmed(data: &Value) -> Result<Confirmed, CalError> {
    let b = match data {
        Value::Array(items) => items.first().unwrap_or(&Value::Null),
        other => other,
    };
    let uid = b
        .get("uid")
        .and_then(Value::as_str)
        .filter(|u| !u.is_empty())
        .ok_or_else(|| CalError::Protocol("booking: no `uid`".into()))?;
    let start = b
        .get("start")
        .and_then(timestamp)
        .ok_or_else(|| CalError::Protocol("booking: no valid `start`".into()))?;
    Ok(Confirmed {
        uid: uid.to_owned(),
        start,
        end: b.get("end").and_then(timestamp),
        status: b.get("status").and_then(Value::as_str).map(str::to_owned),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_are_classified() {
        let slot = classify(
            StatusCode::BAD_REQUEST,
            "User either already has booking at this time or is not available",
            None,
        );
        assert!(matches!(slot, CalError::SlotUnavailable(_)));
        assert!(matches!(
            classify(StatusCode::CONFLICT, "taken", None),
            CalError::SlotUnavailable(_)
        ));
        assert!(matches!(
            classify(StatusCode::BAD_REQUEST, "Invalid email format", None),
            CalError::Rejected { status: 400, .. }
        ));
        assert!(matches!(
            classify(StatusCode::UNAUTHORIZED, "Your api key is not valid", None),
            CalError::Unauthorized(_)
        ));
        assert_eq!(
            classify(StatusCode::TOO_MANY_REQUESTS, "", Some(7)),
            CalError::RateLimited {
                retry_after: Some(7)
            }
        );
        assert!(matches!(
            classify(StatusCode::BAD_GATEWAY, "<html>", None),
            CalError::Unavailable(_)
        ));
    }

    #[test]
    fn error_messages_are_read_from_any_shape() {
        let cal = br#"{"status":"error","error":{"code":"BadRequestException","message":"nope"}}"#;
        assert_eq!(error_message(cal), "nope");
        assert_eq!(
            error_message(br#"{"message":["a must be x","b must be y"]}"#),
            "a must be x; b must be y"
        );
        assert_eq!(error_message(b"  Bad Gateway "), "Bad Gateway");
        assert_eq!(error_message(b""), "no details given");
        assert!(error_message("x".repeat(1000).as_bytes()).chars().count() <= 301);
    }

    #[test]
    fn slots_are_read_in_order_with_their_offsets() {
        let data = json!({
            "2026-03-08": [{"start": "2026-03-08T09:00:00.000-04:00", "end": "2026-03-08T10:00:00.000-04:00"}],
            "2026-03-07": [{"start": "2026-03-07T09:00:00.000-05:00"}, {"time": "2026-03-07T10:00:00.000-05:00"}],
        });
        let slots = parse_slots(&data).unwrap();
        let starts: Vec<String> = slots.iter().map(|s| s.start.to_string()).collect();
        assert_eq!(
            starts,
            [
                "2026-03-07T14:00:00Z",
                "2026-03-07T15:00:00Z",
                "2026-03-08T13:00:00Z"
            ]
        );
        assert_eq!(slots[2].end.unwrap().to_string(), "2026-03-08T14:00:00Z");
        assert!(parse_slots(&json!([])).is_err());
        assert!(parse_slots(&json!({"2026-03-07": [{"start": "soon"}]})).is_err());
    }

    #[test]
    fn bookings_need_a_uid_and_start() {
        let ok = parse_confirmed(&json!({"uid": "abc", "start": "2026-03-09T14:00:00.000Z",
            "end": "2026-03-09T14:30:00.000Z", "status": "accepted"}))
        .unwrap();
        assert_eq!(ok.uid, "abc");
        assert_eq!(ok.end.unwrap().to_string(), "2026-03-09T14:30:00Z");
        assert!(parse_confirmed(&json!({"start": "2026-03-09T14:00:00Z"})).is_err());
        let recurring = parse_confirmed(&json!([{"uid": "r1", "start": "2026-03-09T14:00:00Z"}]));
        assert_eq!(recurring.unwrap().uid, "r1");
    }
}
