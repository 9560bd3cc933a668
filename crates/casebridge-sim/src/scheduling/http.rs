//! The simulator's HTTP surface: Cal.com's `/v2` routes and the `/_sim/` controls.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Router;
use jiff::civil::{Date, DateTime};
use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp};
use serde_json::{json, Value};

use super::{
    BookError, Faults, RecordedRequest, SchedulingSim, BOOKINGS_API_VERSION, SLOTS_API_VERSION,
};

const BODY_LIMIT: usize = 1024 * 1024;

pub(super) fn router(sim: SchedulingSim) -> Router {
    Router::new().fallback(handle).with_state(sim)
}

/// A Cal.com-shaped answer, before rate-limit headers are added.
struct Answer {
    status: StatusCode,
    body: Value,
    headers: Vec<(&'static str, String)>,
}

impl Answer {
    fn ok(status: StatusCode, data: Value) -> Self {
        Self {
            status,
            body: json!({"status": "success", "data": data}),
            headers: Vec::new(),
        }
    }

    fn error(status: StatusCode, code: &str, message: impl Into<String>, path: &str) -> Self {
        Self {
            status,
            body: json!({
                "status": "error",
                "timestamp": Timestamp::now().strftime("%Y-%m-%dT%H:%M:%S%.3fZ").to_string(),
                "path": path,
                "error": {"code": code, "message": message.into()},
            }),
            headers: Vec::new(),
        }
    }

    fn bad_request(message: impl Into<String>, path: &str) -> Self {
        Self::error(
            StatusCode::BAD_REQUEST,
            "BadRequestException",
            message,
            path,
        )
    }

    fn not_found(message: impl Into<String>, path: &str) -> Self {
        Self::error(StatusCode::NOT_FOUND, "NotFoundException", message, path)
    }
}

fn header(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

async fn handle(State(sim): State<SchedulingSim>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let body = match axum::body::to_bytes(body, BODY_LIMIT).await {
        Ok(b) => b,
        Err(_) => return StatusCode::PAYLOAD_TOO_LARGE.into_response(),
    };
    if let Some(control) = parts.uri.path().strip_prefix("/_sim/") {
        return controls(&sim, &parts.method, control, &body);
    }
    // Like a real server, finish the work even if the client stops waiting (a booking whose
    // answer timed out may still have been made).
    tokio::spawn(process(sim, parts, body))
        .await
        .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response())
}

async fn process(sim: SchedulingSim, parts: axum::http::request::Parts, body: Bytes) -> Response {
    let path = parts.uri.path().to_owned();
    let path_and_query = parts
        .uri
        .path_and_query()
        .map_or(path.clone(), |p| p.as_str().to_owned());
    let bearer = header(&parts.headers, "authorization")
        .map(|h| h.strip_prefix("Bearer ").unwrap_or(&h).trim().to_owned())
        .filter(|k| !k.is_empty());
    let api_version = header(&parts.headers, "cal-api-version");
    let json_body: Option<Value> = (!body.is_empty())
        .then(|| serde_json::from_slice(&body).unwrap_or(Value::String("<not JSON>".into())));

    let faults = sim.state().faults.clone();
    if faults.delay_ms > 0 {
        tokio::time::sleep(Duration::from_millis(faults.delay_ms)).await;
    }

    let answer = if faults.down {
        Answer::error(
            StatusCode::SERVICE_UNAVAILABLE,
            "ServiceUnavailableException",
            "The service is temporarily unavailable",
            &path_and_query,
        )
    } else {
        respond(&sim, &parts, bearer.as_deref(), &body, &path_and_query)
    };

    sim.state().requests.push(RecordedRequest {
        method: parts.method.to_string(),
        path,
        query: parts.uri.query().map(str::to_owned),
        api_version,
        bearer,
        body: json_body,
        status: answer.status.as_u16(),
    });

    let mut resp = (answer.status, axum::Json(answer.body)).into_response();
    for (name, value) in answer.headers {
        if let Ok(v) = HeaderValue::from_str(&value) {
            resp.headers_mut().insert(name, v);
        }
    }
    resp
}

/// Rate limit, then authentication, then the route (Cal.com's guard order).
fn respond(
    sim: &SchedulingSim,
    parts: &axum::http::request::Parts,
    bearer: Option<&str>,
    body: &Bytes,
    path: &str,
) -> Answer {
    let tracker = bearer.map_or_else(|| "anonymous".to_owned(), |k| format!("key:{k}"));
    let (limit, hit) = {
        let mut s = sim.state();
        (s.rate_limit, s.hit(&tracker))
    };
    let mut rate_headers = vec![("x-ratelimit-limit-default", limit.to_string())];
    let remaining = match hit {
        Ok(remaining) => remaining,
        Err(retry_after) => {
            let mut a = Answer::error(
                StatusCode::TOO_MANY_REQUESTS,
                "ThrottlerException",
                "Too many requests. Please try again later.",
                path,
            );
            rate_headers.push(("x-ratelimit-remaining-default", "0".into()));
            rate_headers.push(("x-ratelimit-reset-default", retry_after.to_string()));
            rate_headers.push(("retry-after", retry_after.to_string()));
            a.headers = rate_headers;
            return a;
        }
    };
    rate_headers.push(("x-ratelimit-remaining-default", remaining.to_string()));

    let mut answer = match authenticate(sim, bearer, path) {
        Err(a) => a,
        Ok(user) => route(sim, user, parts, body, path),
    };
    answer.headers.extend(rate_headers);
    answer
}

fn authenticate(sim: &SchedulingSim, bearer: Option<&str>, path: &str) -> Result<i64, Answer> {
    let unauthorized =
        |m: &str| Answer::error(StatusCode::UNAUTHORIZED, "UnauthorizedException", m, path);
    let Some(key) = bearer else {
        return Err(unauthorized(
            "No authentication method provided. Either pass an API key as 'Bearer' header or \
             OAuth client credentials as 'x-cal-secret-key' and 'x-cal-client-id' headers",
        ));
    };
    sim.state()
        .keys
        .get(key)
        .copied()
        .ok_or_else(|| unauthorized("Your api key is not valid"))
}

fn route(
    sim: &SchedulingSim,
    user: i64,
    parts: &axum::http::request::Parts,
    body: &Bytes,
    path: &str,
) -> Answer {
    let version = header(&parts.headers, "cal-api-version");
    match (&parts.method, parts.uri.path()) {
        (&Method::GET, "/v2/me") => me(sim, user),
        (&Method::GET, "/v2/slots") => {
            if version.as_deref() != Some(SLOTS_API_VERSION) {
                return wrong_version("GET /v2/slots", SLOTS_API_VERSION, version, path);
            }
            let query = Query::<HashMap<String, String>>::try_from_uri(&parts.uri)
                .map(|q| q.0)
                .unwrap_or_default();
            slots(sim, &query, path)
        }
        (&Method::POST, "/v2/bookings") => {
            if version.as_deref() != Some(BOOKINGS_API_VERSION) {
                return wrong_version("POST /v2/bookings", BOOKINGS_API_VERSION, version, path);
            }
            create_booking(sim, body, path)
        }
        (m, p) => Answer::not_found(format!("Cannot {m} {p}"), path),
    }
}

/// The real service falls back to an older API version (with other shapes) when the header is
/// missing; the simulator refuses instead, so a client that forgets the header is caught.
fn wrong_version(route: &str, want: &str, got: Option<String>, path: &str) -> Answer {
    Answer::bad_request(
        format!(
            "{route} is served here only as cal-api-version {want} (got {}); send the header \
             `cal-api-version: {want}`",
            got.as_deref().unwrap_or("none")
        ),
        path,
    )
}

fn me(sim: &SchedulingSim, user: i64) -> Answer {
    let s = sim.state();
    let u = &s.users[&user];
    Answer::ok(
        StatusCode::OK,
        json!({
            "id": u.id,
            "username": u.username,
            "email": u.email,
            "timeFormat": 12,
            "defaultScheduleId": null,
            "weekStart": "Sunday",
            "timeZone": u.time_zone,
            "organizationId": null,
        }),
    )
}

/// A UTC ISO 8601 date (`2026-03-08`: the start, or with `end_of_day` the end, of that UTC day)
/// or date-time (an offset is honoured; none means UTC).
fn parse_utc(raw: &str, end_of_day: bool) -> Option<Timestamp> {
    if let Ok(t) = raw.parse::<Timestamp>() {
        return Some(t);
    }
    if let Ok(dt) = raw.parse::<DateTime>() {
        if raw.contains('T') {
            return dt.to_zoned(TimeZone::UTC).ok().map(|z| z.timestamp());
        }
    }
    let d: Date = raw.parse().ok()?;
    let start = d.to_zoned(TimeZone::UTC).ok()?.timestamp();
    if end_of_day {
        start
            .checked_add(SignedDuration::from_millis(86_400_000 - 1))
            .ok()
    } else {
        Some(start)
    }
}

fn format_in(t: Timestamp, tz: &TimeZone) -> String {
    t.to_zoned(tz.clone())
        .strftime("%Y-%m-%dT%H:%M:%S%.3f%:z")
        .to_string()
}

fn format_utc(t: Timestamp) -> String {
    t.strftime("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()
}

fn slots(sim: &SchedulingSim, q: &HashMap<String, String>, path: &str) -> Answer {
    let mut problems = Vec::new();
    let event_type_id = match q.get("eventTypeId").map(|v| v.trim().parse::<i64>()) {
        Some(Ok(id)) => Some(id),
        _ => {
            problems.push("eventTypeId must be a number conforming to the specified constraints");
            None
        }
    };
    let start = q.get("start").and_then(|v| parse_utc(v, false));
    if start.is_none() {
        problems.push("start must be a valid ISO 8601 date string");
    }
    let end = q.get("end").and_then(|v| parse_utc(v, true));
    if end.is_none() {
        problems.push("end must be a valid ISO 8601 date string");
    }
    let tz = match q.get("timeZone") {
        None => Some(TimeZone::UTC),
        Some(name) => TimeZone::get(name).ok(),
    };
    if tz.is_none() {
        problems.push("timeZone must be a valid IANA time zone");
    }
    let range = match q.get("format").map(|f| f.to_ascii_lowercase()) {
        None => false,
        Some(f) if f == "time" => false,
        Some(f) if f == "range" => true,
        Some(_) => {
            problems.push("slotFormat must be either 'range' or 'time'");
            false
        }
    };
    let (Some(event_type_id), Some(start), Some(end), Some(tz)) = (event_type_id, start, end, tz)
    else {
        return Answer::bad_request(problems.join(", "), path);
    };
    if end < start {
        return Answer::bad_request("end must be after start", path);
    }
    let s = sim.state();
    let Some(e) = s.event_types.get(&event_type_id).cloned() else {
        return Answer::not_found(
            format!("Event Type with id={event_type_id} not found"),
            path,
        );
    };
    // Cal.com clamps the end to a year from now.
    let end = end.min(s.now() + SignedDuration::from_hours(24 * 366));
    let mut by_day: BTreeMap<String, Vec<Value>> = BTreeMap::new();
    for start in s.open_slots(&e, start, end) {
        let day = start.to_zoned(tz.clone()).date().to_string();
        let slot = if range {
            json!({"start": format_in(start, &tz), "end": format_in(start + e.length(), &tz)})
        } else {
            json!({"start": format_in(start, &tz)})
        };
        by_day.entry(day).or_default().push(slot);
    }
    Answer::ok(StatusCode::OK, json!(by_day))
}

fn is_email(e: &str) -> bool {
    match e.split_once('@') {
        Some((local, domain)) => {
            !local.is_empty() && domain.contains('.') && !e.contains(char::is_whitespace)
        }
        None => false,
    }
}

/// International form: `+` and 8–15 digits (an approximation of libphonenumber's check).
fn is_phone(p: &str) -> bool {
    p.strip_prefix('+')
        .is_some_and(|d| (8..=15).contains(&d.len()) && d.bytes().all(|b| b.is_ascii_digit()))
}

fn create_booking(sim: &SchedulingSim, body: &Bytes, path: &str) -> Answer {
    let Ok(Value::Object(b)) = serde_json::from_slice::<Value>(body) else {
        return Answer::bad_request("the request body must be a JSON object", path);
    };
    let mut problems: Vec<String> = Vec::new();
    let start = match b.get("start").and_then(Value::as_str) {
        Some(raw) => {
            let t = parse_utc(raw, false).filter(|_| raw.contains('T'));
            if t.is_none() {
                problems.push("start must be a valid ISO 8601 date string".into());
            }
            t
        }
        None => {
            problems.push("start must be a valid ISO 8601 date string".into());
            None
        }
    };
    let event_type_id = b.get("eventTypeId").and_then(Value::as_i64);
    if event_type_id.is_none() {
        problems.push("eventTypeId must be an integer number".into());
    }
    let attendee = b.get("attendee").cloned().unwrap_or(Value::Null);
    match &attendee {
        Value::Object(a) => {
            let text = |k: &str| a.get(k).and_then(Value::as_str).map(str::trim);
            if text("name").is_none_or(str::is_empty) {
                problems.push("attendee.name must be a string".into());
            }
            if text("timeZone").is_none_or(|tz| TimeZone::get(tz).is_err()) {
                problems.push("attendee.timeZone must be a valid IANA time zone".into());
            }
            let email = text("email").filter(|e| !e.is_empty());
            let phone = text("phoneNumber").filter(|p| !p.is_empty());
            if email.is_some_and(|e| !is_email(e)) {
                problems.push("Invalid email format".into());
            }
            if phone.is_some_and(|p| !is_phone(p)) {
                problems
                    .push("Invalid phone number format. Please use international format.".into());
            }
            if email.is_none() && phone.is_none() {
                problems.push(
                    "At least one contact method (email or phone number) must be provided".into(),
                );
            }
        }
        _ => problems.push("attendee must be an object".into()),
    }
    let (Some(start), Some(event_type_id)) = (start, event_type_id) else {
        return Answer::bad_request(problems.join(", "), path);
    };
    if !problems.is_empty() {
        return Answer::bad_request(problems.join(", "), path);
    }
    let mut s = sim.state();
    if let Some(len) = b.get("lengthInMinutes") {
        let want = s.event_types.get(&event_type_id).map(|e| e.length_minutes);
        if want.is_some() && len.as_i64() != want {
            return Answer::bad_request(
                "lengthInMinutes must be one of the event type's lengths",
                path,
            );
        }
    }
    let booking = match s.book(event_type_id, start, attendee) {
        Ok(b) => b,
        Err(BookError::NoEventType(id)) => {
            return Answer::not_found(format!("Event type with id {id} not found."), path)
        }
        Err(e) => return Answer::bad_request(e.message(), path),
    };
    let e = &s.event_types[&event_type_id];
    let host = &s.users.get(&e.owner);
    let mut attendee = booking.attendee.clone();
    if let Value::Object(a) = &mut attendee {
        a.entry("language").or_insert(json!("en"));
        a.insert("absent".into(), json!(false));
    }
    let attendee_name = attendee["name"].as_str().unwrap_or_default().to_owned();
    Answer::ok(
        StatusCode::CREATED,
        json!({
            "id": booking.id,
            "uid": booking.uid,
            "title": format!("{} between {} and {}", e.title,
                host.map_or("host", |h| h.username.as_str()), attendee_name),
            "description": "",
            "hosts": host.map(|h| vec![json!({"id": h.id, "name": h.username, "email": h.email,
                "username": h.username, "timeZone": h.time_zone})]).unwrap_or_default(),
            "status": "accepted",
            "start": format_utc(booking.start),
            "end": format_utc(booking.end),
            "duration": e.length_minutes,
            "eventTypeId": e.id,
            "eventType": {"id": e.id, "slug": e.slug},
            "attendees": [attendee],
            "guests": b.get("guests").cloned().unwrap_or(json!([])),
            "location": b.get("location").cloned().unwrap_or(Value::Null),
            "meetingUrl": null,
            "absentHost": false,
            "bookingFieldsResponses": b.get("bookingFieldsResponses").cloned().unwrap_or(json!({})),
            "metadata": b.get("metadata").cloned().unwrap_or(json!({})),
            "createdAt": format_utc(booking.created_at),
        }),
    )
}

/// `/_sim/` controls: no key, not rate limited, not logged.
fn controls(sim: &SchedulingSim, method: &Method, what: &str, body: &Bytes) -> Response {
    match (method, what) {
        (&Method::GET, "requests") => axum::Json(sim.requests()).into_response(),
        (&Method::GET, "bookings") => axum::Json(sim.bookings()).into_response(),
        (&Method::GET, "faults") => axum::Json(sim.state().faults.clone()).into_response(),
        (&Method::PUT, "faults") => match serde_json::from_slice::<Faults>(body) {
            Ok(f) => {
                sim.set_faults(f.clone());
                axum::Json(f).into_response()
            }
            Err(e) => (
                StatusCode::BAD_REQUEST,
                axum::Json(
                    json!({"error": format!("expected {{\"down\": bool, \"delay_ms\": n}}: {e}")}),
                ),
            )
                .into_response(),
        },
        _ => (
            StatusCode::NOT_FOUND,
            axum::Json(
                json!({"error": "simulator controls: GET requests, GET bookings, GET/PUT faults"}),
            ),
        )
            .into_response(),
    }
}
