//! The simulator's HTTP surface: the CaseSyncAPI under `/CaseSyncAPI`, and the `/_sim/`
//! controls. Each API request is checked against the faults, answered, and logged.

use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{Request, State};
use axum::http::header::{AUTHORIZATION, CONTENT_TYPE, RETRY_AFTER};
use axum::http::request::Parts;
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Router;
use jiff::Timestamp;
use serde_json::{json, Value};

use super::jwt::{self, Claims};
use super::{
    FaultsPatch, LoggedRequest, Operation, SimNote, SimSecondStatus, SmartAdvocateSim,
    State as SimState,
};

const PREFIX: &str = "/CaseSyncAPI";
const BODY_LIMIT: usize = 1024 * 1024;

pub(super) fn router(sim: SmartAdvocateSim) -> Router {
    Router::new().fallback(handle).with_state(sim)
}

/// A request's inputs.
struct Input {
    query: Vec<(String, String)>,
    json: Option<Value>,
    /// The body was sent but is not JSON.
    bad_json: bool,
}

impl Input {
    fn query(&self, name: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

async fn handle(State(sim): State<SmartAdvocateSim>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let Ok(body) = axum::body::to_bytes(body, BODY_LIMIT).await else {
        return StatusCode::PAYLOAD_TOO_LARGE.into_response();
    };
    let path = parts.uri.path().to_owned();
    if path == "/_sim" || path.starts_with("/_sim/") {
        return controls(&sim, &parts.method, &path, &body);
    }
    let input = Input {
        query: parts
            .uri
            .query()
            .map(|q| {
                url::form_urlencoded::parse(q.as_bytes())
                    .map(|(k, v)| (k.into_owned(), v.into_owned()))
                    .collect()
            })
            .unwrap_or_default(),
        json: serde_json::from_slice(&body).ok(),
        bad_json: !body.is_empty() && serde_json::from_slice::<Value>(&body).is_err(),
    };
    let api_path = strip_prefix(&path);
    let route = api_path.and_then(|p| route(&parts.method, p));
    let (seq, slow_ms) = {
        let mut st = sim.state();
        st.next_seq += 1;
        (st.next_seq - 1, st.faults.slow_ms)
    };
    let at = Timestamp::now();
    if slow_ms > 0 {
        tokio::time::sleep(Duration::from_millis(slow_ms)).await;
    }
    let response = match (
        &route,
        route.as_ref().and_then(|(op, _)| injected_fault(&sim, *op)),
    ) {
        (Some(_), Some(r)) => r,
        (Some((op, vars)), None) => answer(&sim, *op, vars, &parts, &input),
        (None, _) => message(StatusCode::NOT_FOUND, "No HTTP resource was found"),
    };
    let logged = LoggedRequest {
        seq,
        at,
        method: parts.method.to_string(),
        path: api_path.unwrap_or(&path).to_owned(),
        operation: route.map(|(op, _)| op),
        query: input.query,
        headers: parts
            .headers
            .iter()
            .map(|(k, v)| {
                (
                    k.as_str().to_owned(),
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                )
            })
            .collect(),
        json: input.json,
        status: response.status().as_u16(),
    };
    sim.state().requests.push(logged);
    response
}

/// The path after `/CaseSyncAPI` (matched case-insensitively, as IIS does).
fn strip_prefix(path: &str) -> Option<&str> {
    let head = path.get(..PREFIX.len())?;
    head.eq_ignore_ascii_case(PREFIX)
        .then(|| &path[PREFIX.len()..])
        .filter(|rest| rest.starts_with('/'))
}

/// The operation of a method and path, with the numeric ids in it.
fn route(method: &Method, path: &str) -> Option<(Operation, Vec<u64>)> {
    let segs: Vec<String> = path
        .trim_matches('/')
        .split('/')
        .map(str::to_ascii_lowercase)
        .collect();
    let segs: Vec<&str> = segs.iter().map(String::as_str).collect();
    let id = |s: &str| s.parse::<u64>().ok();
    let get = method == Method::GET;
    let post = method == Method::POST;
    Some(match segs.as_slice() {
        ["case", "bydatepaged"] if post => (Operation::CasesByDate, vec![]),
        ["case", "notes", "bydatepaged"] if post => (Operation::NotesByDate, vec![]),
        ["contact", "bydatepaged"] if post => (Operation::ContactsByDate, vec![]),
        ["case", "documents", "bydatepaged"] if post => (Operation::DocumentsByDate, vec![]),
        ["case", "document", d, "content"] if get => (Operation::DocumentContent, vec![id(d)?]),
        ["users", "authenticate"] if post => (Operation::Authenticate, vec![]),
        ["case", "caseinfo"] if get => (Operation::CaseInfo, vec![]),
        ["case", "notes", "bycasenumber"] if get => (Operation::NotesByCaseNumber, vec![]),
        ["case", "casetypes"] if get => (Operation::CaseTypes, vec![]),
        ["case", "statustypes"] if get => (Operation::StatusTypes, vec![]),
        ["case", "statustypes", t, "statuses"] if get => (Operation::Statuses, vec![id(t)?]),
        ["case", "casetypes", t, "udfs"] if get => (Operation::Udfs, vec![id(t)?]),
        ["case", c, "udfs"] if get => (Operation::CaseUdfs, vec![id(c)?]),
        ["case", c, "notes"] if post => (Operation::InsertNote, vec![id(c)?]),
        ["case", c, "notes"] if get => (Operation::NotesByCaseId, vec![id(c)?]),
        ["case", c, "contacts"] if get => (Operation::CaseContacts, vec![id(c)?]),
        ["case", "createcase"] if post => (Operation::CreateCase, vec![]),
        ["case", c, "status"] if method == Method::PUT => (Operation::SetStatus, vec![id(c)?]),
        ["case", c, "udfs"] if method == Method::PUT => (Operation::SetUdfs, vec![id(c)?]),
        ["search", "contactlookup"] if get => (Operation::ContactLookup, vec![]),
        _ => return None,
    })
}

fn message(status: StatusCode, text: impl Into<String>) -> Response {
    (status, axum::Json(json!({ "message": text.into() }))).into_response()
}

fn ok(body: Value) -> Response {
    (StatusCode::OK, axum::Json(body)).into_response()
}

/// A 429 or 503 when a fault says so (and counts it down).
fn injected_fault(sim: &SmartAdvocateSim, op: Operation) -> Option<Response> {
    let mut st = sim.state();
    if let Some(rl) = st
        .faults
        .rate_limit
        .as_mut()
        .filter(|rl| rl.operation.is_none_or(|only| only == op))
    {
        let retry_after = rl.retry_after;
        rl.count = rl.count.saturating_sub(1);
        if rl.count == 0 {
            st.faults.rate_limit = None;
        }
        let mut r = message(StatusCode::TOO_MANY_REQUESTS, "Too many requests");
        r.headers_mut().insert(
            RETRY_AFTER,
            retry_after.to_string().parse().expect("digits"),
        );
        return Some(r);
    }
    if st.faults.fail_5xx > 0 {
        st.faults.fail_5xx -= 1;
        return Some(message(
            StatusCode::SERVICE_UNAVAILABLE,
            "The service is unavailable",
        ));
    }
    None
}

fn answer(
    sim: &SmartAdvocateSim,
    op: Operation,
    vars: &[u64],
    parts: &Parts,
    input: &Input,
) -> Response {
    let mut st = sim.state();
    if op == Operation::Authenticate {
        return authenticate(&mut st, input);
    }
    if !authorized(&st, parts) {
        return message(StatusCode::UNAUTHORIZED, "Unauthorized");
    }
    if st.faults.denied.contains(&op) {
        return message(
            StatusCode::FORBIDDEN,
            format!("You do not have permission to {}", op.label()),
        );
    }
    if input.bad_json {
        return message(
            StatusCode::BAD_REQUEST,
            "The request body is not valid JSON",
        );
    }
    let response = match op {
        Operation::Authenticate => unreachable!("answered above"),
        Operation::CaseInfo => case_info(&st, input),
        Operation::NotesByCaseNumber => notes(&st, input),
        Operation::InsertNote => insert_note(&mut st, vars[0], input),
        Operation::NotesByCaseId => notes_by_case_id(&st, vars[0]),
        Operation::CaseContacts => case_contacts(&st, vars[0]),
        Operation::CreateCase => create_case(&mut st, input),
        Operation::CaseTypes => ok(json!(st.case_types)),
        Operation::StatusTypes => ok(json!(st.status_types)),
        Operation::Statuses => match st.status_type(vars[0]) {
            Some(t) => ok(json!(t.statuses)),
            None => message(StatusCode::NOT_FOUND, "Status type not found"),
        },
        Operation::Udfs => match st.case_type(vars[0]) {
            Some(_) => ok(json!(st.udfs.get(&vars[0]).cloned().unwrap_or_default())),
            None => message(StatusCode::NOT_FOUND, "Case type not found"),
        },
        Operation::CaseUdfs => case_udfs(&st, vars[0]),
        Operation::ContactLookup => contact_lookup(&st, input),
        Operation::SetStatus => set_status(&mut st, vars[0], input),
        Operation::SetUdfs => set_udfs(&mut st, vars[0], input),
        Operation::CasesByDate => by_date(&st, input, ByDate::Cases),
        Operation::NotesByDate => by_date(&st, input, ByDate::Notes),
        Operation::ContactsByDate => by_date(&st, input, ByDate::Contacts),
        Operation::DocumentsByDate => by_date(&st, input, ByDate::Documents),
        // Raw bytes: a zero-byte body is an empty document, not a fault to fake.
        Operation::DocumentContent => return document_content(&st, vars[0]),
    };
    if response.status() == StatusCode::OK && st.faults.empty_bodies > 0 {
        st.faults.empty_bodies -= 1;
        return (StatusCode::OK, [(CONTENT_TYPE, "application/json")], "").into_response();
    }
    response
}

fn authenticate(st: &mut SimState, input: &Input) -> Response {
    // Names are case-sensitive: `username` is not `Username`.
    let field = |name: &str| {
        input
            .json
            .as_ref()
            .and_then(|j| j.get(name))
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned()
    };
    let (username, password) = (field("Username"), field("Password"));
    if username.is_empty() || password.is_empty() {
        return message(
            StatusCode::BAD_REQUEST,
            "Username and Password are required",
        );
    }
    if username != st.user.username || password != st.user.password {
        return message(StatusCode::BAD_REQUEST, "Username or password is incorrect");
    }
    let iat = Timestamp::now().as_second();
    let ttl = i64::try_from(st.token_ttl.as_secs()).unwrap_or(i64::MAX / 2);
    let claims = Claims {
        unique_name: username.clone(),
        jti: st.next_jti,
        iat,
        exp: iat.saturating_add(ttl),
        iss: "SmartAdvocateSim".into(),
    };
    st.next_jti += 1;
    ok(json!({
        "username": username,
        "userID": st.user.user_id,
        "token": jwt::encode(&st.jwt_key, &claims),
    }))
}

/// A valid, unexpired token after exactly `Bearer `.
fn authorized(st: &SimState, parts: &Parts) -> bool {
    let Some(token) = parts
        .headers
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
    else {
        return false;
    };
    jwt::decode(&st.jwt_key, token.trim())
        .is_some_and(|c| c.exp > Timestamp::now().as_second() && c.jti >= st.first_valid_jti)
}

/// SQL `LIKE`: `%` any run of characters, `_` one; case-insensitive.
fn like(pattern: &str, text: &str) -> bool {
    fn go(p: &[char], t: &[char]) -> bool {
        match p.split_first() {
            None => t.is_empty(),
            Some(('%', rest)) => (0..=t.len()).any(|i| go(rest, &t[i..])),
            Some(('_', rest)) => !t.is_empty() && go(rest, &t[1..]),
            Some((c, rest)) => {
                t.first().is_some_and(|tc| tc.eq_ignore_ascii_case(c)) && go(rest, &t[1..])
            }
        }
    }
    let p: Vec<char> = pattern.chars().collect();
    let t: Vec<char> = text.chars().collect();
    go(&p, &t)
}

fn ts(t: Timestamp) -> String {
    t.strftime("%Y-%m-%dT%H:%M:%S").to_string()
}

fn case_info(st: &SimState, input: &Input) -> Response {
    let Some(pattern) = input.query("Casenumber").filter(|p| !p.is_empty()) else {
        return message(StatusCode::BAD_REQUEST, "Casenumber is required");
    };
    let contact_info = input
        .query("AddContactInfo")
        .is_some_and(|v| v.eq_ignore_ascii_case("true"));
    let found: Vec<Value> = st
        .cases
        .iter()
        .filter(|c| like(pattern, &c.case_number))
        .map(|c| case_json(st, c, contact_info))
        .collect();
    ok(json!(found))
}

/// A case as `CaseInfo` answers it; with `contact_info` (modelled: `AddContactInfo=true`) each
/// plaintiff also carries the contact's `firstName, lastName, email, phone`.
fn case_json(st: &SimState, c: &super::SimCase, contact_info: bool) -> Value {
    let primary = st.primary_type().map_or(0, |t| t.status_type_id);
    let plaintiff = st.contact(c.plaintiff_contact_id);
    json!({
        "caseID": c.case_id,
        "caseNumber": c.case_number,
        "caseTypeID": c.case_type_id,
        "caseType": st.case_type(c.case_type_id).map(|t| t.case_type_name.clone()),
        "caseStatusID": c.status_id,
        "caseStatus": st.status_name(primary, c.status_id).map(|(_, s)| s),
        "caseStatusFrom": ts(c.status_from),
        "officeID": 1,
        "officeName": "Main Office",
        "plaintiffs": plaintiff.map(|p| {
            let mut v = json!({
                "id": c.case_id * 10 + 1,
                "name": format!("{} {}", p.first_name, p.last_name),
                "role": "Plaintiff",
                "contactID": p.contact_id,
                "primary": true,
                "primaryContact": true,
            });
            if contact_info {
                v["firstName"] = json!(p.first_name);
                v["lastName"] = json!(p.last_name);
                v["email"] = json!(p.email);
                v["phone"] = json!(p.phone);
            }
            vec![v]
        }).unwrap_or_default(),
        "secondStatuses": c.second_statuses.iter().map(|s| {
            let (type_name, name) = st.status_name(s.status_type_id, s.status_id)
                .unwrap_or_default();
            json!({
                "statusID": s.status_id,
                "statusTypeID": s.status_type_id,
                "fromDate": ts(s.from),
                "statusTypeName": type_name,
                "statusName": name,
            })
        }).collect::<Vec<_>>(),
        "createdDate": ts(c.created),
        "modifiedDate": ts(c.modified),
    })
}

fn note_json(st: &SimState, c: &super::SimCase, n: &SimNote) -> Value {
    json!({
        "noteID": n.note_id,
        "caseID": c.case_id,
        "caseNumber": c.case_number,
        "noteTypeID": n.note_type_id,
        "noteTypeName": "General",
        "noteText": n.note_text,
        "subject": n.subject,
        "priority": n.priority,
        "userID": st.user.user_id,
        "noteDate": ts(n.note_date),
        "createdDate": ts(n.created),
        "isSharedinCP": false,
        "isSharedWithAll": true,
    })
}

fn notes(st: &SimState, input: &Input) -> Response {
    let Some(number) = input.query("CaseNumber").filter(|p| !p.is_empty()) else {
        return message(StatusCode::BAD_REQUEST, "CaseNumber is required");
    };
    let out: Vec<Value> = st
        .cases
        .iter()
        .filter(|c| c.case_number == number)
        .flat_map(|c| c.notes.iter().map(move |n| note_json(st, c, n)))
        .collect();
    ok(json!(out))
}

fn notes_by_case_id(st: &SimState, case_id: u64) -> Response {
    let Some(case) = st.cases.iter().find(|c| c.case_id == case_id) else {
        return message(StatusCode::NOT_FOUND, "Case not found");
    };
    ok(json!(case
        .notes
        .iter()
        .map(|n| note_json(st, case, n))
        .collect::<Vec<_>>()))
}

/// The contacts of a case: its plaintiff (the simulated case has one contact).
fn case_contacts(st: &SimState, case_id: u64) -> Response {
    let Some(case) = st.cases.iter().find(|c| c.case_id == case_id) else {
        return message(StatusCode::NOT_FOUND, "Case not found");
    };
    let contacts: Vec<Value> = st
        .contact(case.plaintiff_contact_id)
        .map(|p| {
            let mut v = json!(p);
            v["role"] = json!("Plaintiff");
            v["primary"] = json!(true);
            v
        })
        .into_iter()
        .collect();
    ok(json!(contacts))
}

/// The text fields of `CreateCase` (as public client code sends them); each must be a string
/// (or null) when given.
const CREATE_CASE_TEXT: [&str; 20] = [
    "firstName",
    "lastName",
    "phone",
    "email",
    "summary",
    "searchEngineName",
    "entryPageURL",
    "referralPageURL",
    "address",
    "city",
    "state",
    "zip",
    "referringURL",
    "keywords",
    "intakeDate",
    "dob",
    "gender",
    "caseType",
    "office",
    "Referral_LawFirm",
];

/// The id fields of `CreateCase`; each must be a whole number (or null) when given.
const CREATE_CASE_IDS: [&str; 7] = [
    "Referral_ContactID",
    "PaidAdvertisementID",
    "OfficeID",
    "CaseGroupID",
    "CaseTypeID",
    "SubTypeID",
    "PlaintiffContactID",
];

fn digits(phone: &str) -> String {
    phone.chars().filter(char::is_ascii_digit).collect()
}

/// Creates a case, or answers the case created within the dedupe window whose plaintiff has
/// the same email (any case) or phone (digits only).
fn create_case(st: &mut SimState, input: &Input) -> Response {
    let Some(body) = input.json.as_ref().and_then(Value::as_object).cloned() else {
        return message(StatusCode::BAD_REQUEST, "A JSON object is required");
    };
    for k in CREATE_CASE_TEXT {
        if body.get(k).is_some_and(|v| !v.is_string() && !v.is_null()) {
            return message(StatusCode::BAD_REQUEST, format!("{k} must be a string"));
        }
    }
    for k in CREATE_CASE_IDS {
        if body.get(k).is_some_and(|v| !v.is_u64() && !v.is_null()) {
            return message(
                StatusCode::BAD_REQUEST,
                format!("{k} must be a whole number"),
            );
        }
    }
    let text = |k: &str| {
        body.get(k)
            .and_then(Value::as_str)
            .map(str::trim)
            .filter(|v| !v.is_empty())
            .map(str::to_owned)
    };
    let (Some(first), Some(last)) = (text("firstName"), text("lastName")) else {
        return message(
            StatusCode::BAD_REQUEST,
            "firstName and lastName are required",
        );
    };
    let (email, phone) = (text("email"), text("phone"));
    if email.is_none() && phone.is_none() {
        return message(StatusCode::BAD_REQUEST, "email or phone is required");
    }
    let case_type = match body.get("CaseTypeID").and_then(Value::as_u64) {
        Some(id) if st.case_type(id).is_none() => {
            return message(
                StatusCode::BAD_REQUEST,
                format!("CaseTypeID {id} is not a case type"),
            )
        }
        Some(id) => id,
        None => st.case_types.first().map_or(0, |t| t.case_type_id),
    };
    let now = Timestamp::now();
    let window =
        jiff::SignedDuration::try_from(st.dedupe_window).unwrap_or(jiff::SignedDuration::MAX);
    let since = now.checked_sub(window).unwrap_or(Timestamp::MIN);
    let phone_digits = phone.as_deref().map(digits).filter(|d| !d.is_empty());
    let recent = st
        .cases
        .iter()
        .filter(|c| !st.dedupe_window.is_zero() && c.created > since)
        .filter(|c| {
            st.contact(c.plaintiff_contact_id).is_some_and(|p| {
                let same_email = email.as_deref().is_some_and(|e| {
                    p.email
                        .as_deref()
                        .is_some_and(|pe| pe.eq_ignore_ascii_case(e))
                });
                let same_phone = phone_digits
                    .as_deref()
                    .is_some_and(|d| p.phone.as_deref().map(digits).as_deref() == Some(d));
                same_email || same_phone
            })
        })
        .max_by_key(|c| c.created);
    if let Some(c) = recent {
        return ok(json!({ "caseID": c.case_id, "caseNumber": c.case_number }));
    }
    let contact_id = st.next_contact_id;
    st.next_contact_id += 1;
    st.contacts.push(super::SimContact {
        contact_id,
        first_name: first,
        last_name: last,
        email,
        phone,
        address1: text("address"),
        city: text("city"),
        state: text("state"),
        zip: text("zip"),
        modified: now,
    });
    let case_id = st.next_case_id;
    st.next_case_id += 1;
    // The next number after the highest numeric one (SmartAdvocate numbers cases in order).
    let number = st
        .cases
        .iter()
        .filter_map(|c| c.case_number.parse::<u64>().ok())
        .max()
        .map_or(9_000_001, |n| n + 1)
        .to_string();
    let status_id = st
        .primary_type()
        .and_then(|t| t.statuses.first())
        .map_or(0, |s| s.status_id);
    st.cases.push(super::SimCase {
        case_id,
        case_number: number.clone(),
        case_type_id: case_type,
        status_id,
        status_from: now,
        second_statuses: Vec::new(),
        plaintiff_contact_id: contact_id,
        udf_values: std::collections::BTreeMap::new(),
        notes: Vec::new(),
        created: now,
        modified: now,
    });
    ok(json!({ "caseID": case_id, "caseNumber": number }))
}

#[derive(Clone, Copy)]
enum ByDate {
    Cases,
    Notes,
    Contacts,
    Documents,
}

/// A time as SmartAdvocate writes them (`2025-01-01T09:30:00`, no offset, read as UTC here), or
/// an RFC 3339 time.
fn parse_time(raw: &str) -> Option<Timestamp> {
    raw.parse::<Timestamp>().ok().or_else(|| {
        raw.parse::<jiff::civil::DateTime>()
            .ok()
            .and_then(|d| d.to_zoned(jiff::tz::TimeZone::UTC).ok())
            .map(|z| z.timestamp())
    })
}

/// The records modified in `[modifiedFromDateTime, modifiedToDateTime]` (to: open when absent;
/// before from is a 400), oldest change first (ties by id), one page of
/// `pageRequest{currentPage (from 0), pageSize (1–500)}` (whole numbers, else a 400), answered
/// as `{records, pageRequest{currentPage, pageSize, totalRecords}}` — documents (seen in code,
/// with an optional `caseNumbers` array) as `{documents, pageRequest}`; the other searches are
/// modelled on it. Times are compared at the second SmartAdvocate writes them in.
fn by_date(st: &SimState, input: &Input, what: ByDate) -> Response {
    let body = input.json.clone().unwrap_or(Value::Null);
    let time = |k: &str| body.get(k).and_then(Value::as_str).map(str::to_owned);
    let Some(from_raw) = time("modifiedFromDateTime") else {
        return message(StatusCode::BAD_REQUEST, "modifiedFromDateTime is required");
    };
    let Some(from) = parse_time(&from_raw) else {
        return message(
            StatusCode::BAD_REQUEST,
            format!("modifiedFromDateTime {from_raw:?} is not a date and time"),
        );
    };
    let second = |t: Timestamp| t.as_second();
    let to = match time("modifiedToDateTime") {
        None => None,
        Some(raw) => match parse_time(&raw) {
            Some(t) => Some(t),
            None => {
                return message(
                    StatusCode::BAD_REQUEST,
                    format!("modifiedToDateTime {raw:?} is not a date and time"),
                )
            }
        },
    };
    if to.is_some_and(|to| second(to) < second(from)) {
        return message(
            StatusCode::BAD_REQUEST,
            "modifiedToDateTime is before modifiedFromDateTime",
        );
    }
    let page = match body.get("pageRequest") {
        None | Some(Value::Null) => serde_json::Map::new(),
        Some(Value::Object(p)) => p.clone(),
        Some(_) => {
            return message(
                StatusCode::BAD_REQUEST,
                "pageRequest must be an object {currentPage, pageSize}",
            )
        }
    };
    let number = |k: &str, default: u64| match page.get(k) {
        None | Some(Value::Null) => Ok(default),
        Some(v) => v
            .as_u64()
            .ok_or_else(|| format!("pageRequest.{k} must be a whole number, not {v}")),
    };
    let (current, size) = match (number("currentPage", 0), number("pageSize", 100)) {
        (Ok(c), Ok(s)) => (c, s),
        (Err(e), _) | (_, Err(e)) => return message(StatusCode::BAD_REQUEST, e),
    };
    if !(1..=500).contains(&size) {
        return message(StatusCode::BAD_REQUEST, "pageSize must be 1 to 500");
    }
    // Documents only: `caseNumbers` narrows the search to those cases (empty: every case).
    let case_numbers: Vec<String> = match (what, body.get("caseNumbers")) {
        (ByDate::Documents, Some(Value::Array(items))) => {
            let numbers: Option<Vec<String>> = items
                .iter()
                .map(|v| v.as_str().map(str::to_owned))
                .collect();
            match numbers {
                Some(n) => n,
                None => {
                    return message(
                        StatusCode::BAD_REQUEST,
                        "caseNumbers must be an array of case numbers (strings)",
                    )
                }
            }
        }
        (ByDate::Documents, Some(Value::Null) | None) => Vec::new(),
        (ByDate::Documents, Some(_)) => {
            return message(
                StatusCode::BAD_REQUEST,
                "caseNumbers must be an array of case numbers (strings)",
            )
        }
        _ => Vec::new(),
    };
    let contact_info = body
        .get("addContactInfo")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let within =
        |t: Timestamp| second(t) >= second(from) && to.is_none_or(|to| second(t) <= second(to));
    let mut found: Vec<(i64, u64, Value)> = match what {
        ByDate::Cases => st
            .cases
            .iter()
            .filter(|c| within(c.modified))
            .map(|c| {
                (
                    second(c.modified),
                    c.case_id,
                    case_json(st, c, contact_info),
                )
            })
            .collect(),
        ByDate::Notes => st
            .cases
            .iter()
            .flat_map(|c| c.notes.iter().map(move |n| (c, n)))
            .filter(|(_, n)| within(n.modified))
            .map(|(c, n)| {
                let mut v = note_json(st, c, n);
                v["modifiedDate"] = json!(ts(n.modified));
                (second(n.modified), n.note_id, v)
            })
            .collect(),
        ByDate::Contacts => st
            .contacts
            .iter()
            .filter(|c| within(c.modified))
            .map(|c| {
                let mut v = json!(c);
                v["modifiedDate"] = json!(ts(c.modified));
                (second(c.modified), c.contact_id, v)
            })
            .collect(),
        ByDate::Documents => st
            .documents
            .iter()
            .filter(|d| within(d.modified))
            .filter(|d| case_numbers.is_empty() || case_numbers.contains(&d.case_number))
            .map(|d| (second(d.modified), d.document_id, document_json(st, d)))
            .collect(),
    };
    found.sort_by_key(|(t, id, _)| (*t, *id));
    let total = found.len();
    let records: Vec<Value> = found
        .into_iter()
        .skip(usize::try_from(current.saturating_mul(size)).unwrap_or(usize::MAX))
        .take(usize::try_from(size).unwrap_or(usize::MAX))
        .map(|(_, _, v)| v)
        .collect();
    // The documents search answers `documents`, as public clients of it read; the modelled
    // searches `records`.
    let key = match what {
        ByDate::Documents => "documents",
        _ => "records",
    };
    ok(json!({
        key: records,
        "pageRequest": {"currentPage": current, "pageSize": size, "totalRecords": total},
    }))
}

/// A document as the documents search answers it.
fn document_json(st: &SimState, d: &super::SimDocument) -> Value {
    let case_id = st.case_by_number(&d.case_number).map(|c| c.case_id);
    json!({
        "documentID": d.document_id,
        "caseID": case_id,
        "caseNumber": d.case_number,
        "documentName": d.document_name,
        "description": d.description,
        "createdDate": ts(d.created),
        "modifiedDate": ts(d.modified),
        "categoryID": d.category_id,
        "categoryName": d.category_name,
        "subCategoryName": d.sub_category_name,
        "comments": d.comments,
        "caseDocumentID": d.document_id + 5_000_000,
        "documentFolder": d.document_folder,
    })
}

/// A document's bytes as they are, `application/octet-stream` whatever the file is.
fn document_content(st: &SimState, document_id: u64) -> Response {
    match st.documents.iter().find(|d| d.document_id == document_id) {
        Some(d) => (
            StatusCode::OK,
            [(CONTENT_TYPE, "application/octet-stream")],
            d.content.clone(),
        )
            .into_response(),
        None => message(StatusCode::NOT_FOUND, "Document not found"),
    }
}

fn insert_note(st: &mut SimState, case_id: u64, input: &Input) -> Response {
    let body = input.json.clone().unwrap_or(Value::Null);
    let text = body.get("noteText").and_then(Value::as_str).unwrap_or("");
    if text.trim().is_empty() {
        return message(StatusCode::BAD_REQUEST, "noteText is required");
    }
    let note_id = st.next_note_id;
    let now = Timestamp::now();
    let str_of = |k: &str| body.get(k).and_then(Value::as_str).map(str::to_owned);
    let note = SimNote {
        note_id,
        note_type_id: body.get("noteTypeID").and_then(Value::as_u64).unwrap_or(1),
        subject: str_of("subject").unwrap_or_default(),
        note_text: text.to_owned(),
        priority: str_of("priority").unwrap_or_else(|| "Normal".into()),
        note_date: str_of("noteDate")
            .and_then(|d| d.parse().ok())
            .unwrap_or(now),
        created: now,
        modified: now,
    };
    let Some(case) = st.cases.iter_mut().find(|c| c.case_id == case_id) else {
        return message(StatusCode::NOT_FOUND, "Case not found");
    };
    case.notes.push(note);
    case.modified = now;
    st.next_note_id += 1;
    (
        StatusCode::CREATED,
        axum::Json(json!({ "noteID": note_id })),
    )
        .into_response()
}

/// Sets one status type's current value: the primary status when the type is "Status",
/// else that type's second status (replacing the case's current value of the type).
fn set_status(st: &mut SimState, case_id: u64, input: &Input) -> Response {
    let body = input.json.clone().unwrap_or(Value::Null);
    let (Some(type_id), Some(status_id)) = (
        body.get("statusTypeID").and_then(Value::as_u64),
        body.get("statusID").and_then(Value::as_u64),
    ) else {
        return message(
            StatusCode::BAD_REQUEST,
            "statusTypeID and statusID are required",
        );
    };
    if st.status_name(type_id, status_id).is_none() {
        return message(
            StatusCode::BAD_REQUEST,
            format!("Status {status_id} is not a status of status type {type_id}"),
        );
    }
    let primary = st.primary_type().map(|t| t.status_type_id) == Some(type_id);
    let Some(case) = st.cases.iter_mut().find(|c| c.case_id == case_id) else {
        return message(StatusCode::NOT_FOUND, "Case not found");
    };
    let now = Timestamp::now();
    if primary {
        case.status_id = status_id;
        case.status_from = now;
    } else {
        case.second_statuses.retain(|s| s.status_type_id != type_id);
        case.second_statuses.push(SimSecondStatus {
            status_type_id: type_id,
            status_id,
            from: now,
        });
    }
    case.modified = now;
    ok(json!({ "caseID": case_id, "statusTypeID": type_id, "statusID": status_id }))
}

/// Sets UDF values by exact name; an unknown name for the case's type changes nothing.
fn set_udfs(st: &mut SimState, case_id: u64, input: &Input) -> Response {
    let Some(items) = input.json.as_ref().and_then(Value::as_array).cloned() else {
        return message(
            StatusCode::BAD_REQUEST,
            "an array of {udfName, value} is required",
        );
    };
    let Some(case_type) = st
        .cases
        .iter()
        .find(|c| c.case_id == case_id)
        .map(|c| c.case_type_id)
    else {
        return message(StatusCode::NOT_FOUND, "Case not found");
    };
    let defs = st.udfs.get(&case_type).cloned().unwrap_or_default();
    let mut set = Vec::new();
    for item in &items {
        let name = item.get("udfName").and_then(Value::as_str).unwrap_or("");
        let Some(def) = defs.iter().find(|d| d.udf_name == name) else {
            return message(
                StatusCode::BAD_REQUEST,
                format!("UDF \"{name}\" does not exist for case type {case_type}"),
            );
        };
        let value = match item.get("value") {
            Some(Value::String(s)) => s.clone(),
            Some(Value::Null) | None => String::new(),
            Some(other) => other.to_string(),
        };
        set.push((def.udf_id, value));
    }
    let case = st
        .cases
        .iter_mut()
        .find(|c| c.case_id == case_id)
        .expect("found above");
    for (id, value) in set {
        if value.is_empty() {
            case.udf_values.remove(&id);
        } else {
            case.udf_values.insert(id, value);
        }
    }
    case.modified = Timestamp::now();
    ok(json!({ "caseID": case_id, "updated": items.len() }))
}

fn case_udfs(st: &SimState, case_id: u64) -> Response {
    let Some(case) = st.cases.iter().find(|c| c.case_id == case_id) else {
        return message(StatusCode::NOT_FOUND, "Case not found");
    };
    let defs = st.udfs.get(&case.case_type_id).cloned().unwrap_or_default();
    ok(json!(defs
        .iter()
        .map(|d| json!({
            "udfID": d.udf_id,
            "udfName": d.udf_name,
            "value": case.udf_values.get(&d.udf_id),
        }))
        .collect::<Vec<_>>()))
}

fn contact_lookup(st: &SimState, input: &Input) -> Response {
    let has = |field: &str, value: &str| {
        input
            .query(field)
            .filter(|q| !q.is_empty())
            .is_none_or(|q| value.to_ascii_lowercase().contains(&q.to_ascii_lowercase()))
    };
    let page = input
        .query("FirstPage")
        .and_then(|p| p.parse::<usize>().ok())
        .unwrap_or(1)
        .max(1);
    let limit = input
        .query("RowLimit")
        .and_then(|p| p.parse::<usize>().ok())
        .unwrap_or(10)
        .clamp(1, 100);
    let found: Vec<&super::SimContact> = st
        .contacts
        .iter()
        .filter(|c| {
            has("FirstName", &c.first_name)
                && has("LastName", &c.last_name)
                && has("Name", &format!("{} {}", c.first_name, c.last_name))
        })
        .skip((page - 1) * limit)
        .take(limit)
        .collect();
    ok(json!(found))
}

fn controls(sim: &SmartAdvocateSim, method: &Method, path: &str, body: &Bytes) -> Response {
    let segments: Vec<&str> = path
        .trim_start_matches("/_sim")
        .trim_matches('/')
        .split('/')
        .collect();
    match (method.as_str(), segments.as_slice()) {
        ("GET", ["requests"]) => ok(json!(sim.requests())),
        ("DELETE", ["requests"]) => {
            sim.clear_requests();
            StatusCode::NO_CONTENT.into_response()
        }
        ("GET", ["faults"]) => ok(json!(sim.faults())),
        ("POST" | "PUT" | "PATCH", ["faults"]) => {
            match serde_json::from_slice::<FaultsPatch>(body) {
                Ok(patch) => {
                    sim.patch_faults(patch);
                    ok(json!(sim.faults()))
                }
                Err(e) => bad_control(e.to_string()),
            }
        }
        ("DELETE", ["faults"]) => {
            sim.clear_faults();
            ok(json!(sim.faults()))
        }
        ("POST", ["tokens", "expire"]) => {
            sim.expire_tokens();
            StatusCode::NO_CONTENT.into_response()
        }
        ("GET", ["cases"]) => ok(json!(sim.cases())),
        ("GET", ["documents"]) => ok(json!(sim
            .documents()
            .iter()
            .map(|d| {
                let mut v = json!(d);
                v["size"] = json!(d.content.len());
                v
            })
            .collect::<Vec<_>>())),
        ("POST", ["documents"]) => seed_document(sim, body),
        _ => (
            StatusCode::NOT_FOUND,
            axum::Json(json!({"error": "no such simulator control"})),
        )
            .into_response(),
    }
}

/// What `POST /_sim/documents` takes: a document to file on an existing case.
#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct DocumentSeed {
    case_number: String,
    document_name: String,
    /// The bytes, base64 (standard alphabet); empty for a zero-byte document.
    content_base64: String,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    category_name: Option<String>,
    /// SmartAdvocate's time (`2025-01-01T09:30:00`, UTC here); default now.
    #[serde(default)]
    modified_date: Option<String>,
}

fn bad_control(text: impl Into<String>) -> Response {
    (
        StatusCode::BAD_REQUEST,
        axum::Json(json!({ "error": text.into() })),
    )
        .into_response()
}

fn seed_document(sim: &SmartAdvocateSim, body: &Bytes) -> Response {
    use base64::Engine;
    let seed = match serde_json::from_slice::<DocumentSeed>(body) {
        Ok(s) => s,
        Err(e) => return bad_control(e.to_string()),
    };
    let content =
        match base64::engine::general_purpose::STANDARD.decode(seed.content_base64.as_bytes()) {
            Ok(c) => c,
            Err(e) => return bad_control(format!("contentBase64: {e}")),
        };
    let mut doc = super::SimDocument::new(&seed.case_number, &seed.document_name, content);
    if let Some(d) = seed.description {
        doc.description = d;
    }
    if let Some(c) = seed.category_name {
        doc.category_name = c;
    }
    if let Some(raw) = seed.modified_date {
        match parse_time(&raw) {
            Some(t) => doc.modified = t,
            None => return bad_control(format!("modifiedDate {raw:?} is not a date and time")),
        }
    }
    match sim.add_document(doc) {
        Some(id) => (StatusCode::CREATED, axum::Json(json!({ "documentID": id }))).into_response(),
        None => (
            StatusCode::NOT_FOUND,
            axum::Json(json!({"error": format!("no case {}", seed.case_number)})),
        )
            .into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn like_matches_as_sql_does() {
        assert!(like("9000002%", "9000002"));
        assert!(like("9000002%", "90000021"));
        assert!(like("%002", "9000002"));
        assert!(like("9_00002", "9000002"));
        assert!(!like("9000002", "90000021"));
        assert!(!like("9000003%", "9000002"));
    }

    #[test]
    fn routes_and_prefix() {
        assert_eq!(
            strip_prefix("/casesyncapi/case/CaseInfo"),
            Some("/case/CaseInfo")
        );
        assert_eq!(strip_prefix("/case/CaseInfo"), None);
        assert_eq!(strip_prefix("/CaseSyncAPIx/case"), None);
        assert_eq!(
            route(&Method::POST, "/case/12/notes"),
            Some((Operation::InsertNote, vec![12]))
        );
        assert_eq!(
            route(&Method::GET, "/case/12/notes"),
            Some((Operation::NotesByCaseId, vec![12]))
        );
        assert_eq!(route(&Method::GET, "/case/x/notes"), None);
        assert_eq!(
            route(&Method::GET, "/case/12/contacts"),
            Some((Operation::CaseContacts, vec![12]))
        );
        assert_eq!(
            route(&Method::POST, "/case/CreateCase"),
            Some((Operation::CreateCase, vec![]))
        );
        assert_eq!(route(&Method::GET, "/case/CreateCase"), None);
        assert_eq!(
            route(&Method::GET, "/case/CaseTypes/2/UDFs"),
            Some((Operation::Udfs, vec![2]))
        );
        assert_eq!(
            route(&Method::POST, "/case/documents/byDatePaged"),
            Some((Operation::DocumentsByDate, vec![]))
        );
        assert_eq!(
            route(&Method::GET, "/case/document/300001/content"),
            Some((Operation::DocumentContent, vec![300_001]))
        );
        assert_eq!(route(&Method::GET, "/case/document/x/content"), None);
    }
}
