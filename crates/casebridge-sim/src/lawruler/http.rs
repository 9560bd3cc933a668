//! The simulator's HTTP surface: the Law Ruler endpoints at the configured paths, and the
//! `/_sim/` controls. Every request to a Law Ruler endpoint is parsed once (query, form,
//! multipart, JSON), checked against the injected faults, answered, and logged with its status.

use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{Request, State};
use axum::http::header::{CONTENT_TYPE, RETRY_AFTER, WWW_AUTHENTICATE};
use axum::http::request::Parts;
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Router;
use jiff::Timestamp;
use serde::Deserialize;
use serde_json::{json, Value};

use super::validate::{lead_changes, Params};
use super::{
    FaultsPatch, LawRulerSim, LoggedFile, LoggedRequest, NewLead, SimDocument, SimError, SimNote,
    State as SimState, WebhookFormat,
};

/// Large enough for call recordings.
const BODY_LIMIT: usize = 64 * 1024 * 1024;

pub(super) fn router(sim: LawRulerSim) -> Router {
    Router::new().fallback(handle).with_state(sim)
}

/// A file part of a multipart body.
struct UploadedFile {
    field: String,
    file_name: Option<String>,
    content_type: Option<String>,
    bytes: Bytes,
}

/// A request's inputs, parsed once.
#[derive(Default)]
struct Parsed {
    query: Vec<(String, String)>,
    content_type: Option<String>,
    form: Vec<(String, String)>,
    json: Option<Value>,
    files: Vec<UploadedFile>,
    /// Why the body could not be read as its content type says.
    body_error: Option<String>,
}

impl Parsed {
    fn essence(&self) -> String {
        self.content_type
            .as_deref()
            .unwrap_or_default()
            .split(';')
            .next()
            .unwrap_or_default()
            .trim()
            .to_ascii_lowercase()
    }

    fn is_multipart(&self) -> bool {
        self.essence() == "multipart/form-data"
    }

    fn is_form(&self) -> bool {
        self.essence() == "application/x-www-form-urlencoded" || self.is_multipart()
    }
}

async fn parse(parts: &Parts, body: Bytes) -> Parsed {
    let mut p = Parsed {
        query: parts
            .uri
            .query()
            .map(|q| pairs(q.as_bytes()))
            .unwrap_or_default(),
        content_type: parts
            .headers
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned),
        ..Parsed::default()
    };
    let essence = p.essence();
    if essence == "application/x-www-form-urlencoded" {
        p.form = pairs(&body);
    } else if essence == "multipart/form-data" {
        if let Err(e) = read_multipart(&mut p, body).await {
            p.body_error = Some(format!("malformed multipart body: {e}"));
        }
    } else if essence == "application/json" || essence.ends_with("+json") {
        match serde_json::from_slice(&body) {
            Ok(v) => p.json = Some(v),
            Err(e) => p.body_error = Some(format!("malformed JSON: {e}")),
        }
    }
    p
}

fn pairs(bytes: &[u8]) -> Vec<(String, String)> {
    url::form_urlencoded::parse(bytes)
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

async fn read_multipart(p: &mut Parsed, body: Bytes) -> Result<(), multer::Error> {
    let boundary = multer::parse_boundary(p.content_type.as_deref().unwrap_or_default())?;
    let stream = futures::stream::once(async move { Ok::<Bytes, std::io::Error>(body) });
    let mut mp = multer::Multipart::new(stream, boundary);
    while let Some(field) = mp.next_field().await? {
        let name = field.name().unwrap_or_default().to_owned();
        let file_name = field.file_name().map(str::to_owned);
        let content_type = field.content_type().map(ToString::to_string);
        let bytes = field.bytes().await?;
        if file_name.is_some() {
            p.files.push(UploadedFile {
                field: name,
                file_name,
                content_type,
                bytes,
            });
        } else {
            p.form
                .push((name, String::from_utf8_lossy(&bytes).into_owned()));
        }
    }
    Ok(())
}

async fn handle(State(sim): State<LawRulerSim>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let body = match axum::body::to_bytes(body, BODY_LIMIT).await {
        Ok(b) => b,
        Err(_) => return StatusCode::PAYLOAD_TOO_LARGE.into_response(),
    };
    let path = parts.uri.path().to_owned();
    if path == "/_sim" || path.starts_with("/_sim/") {
        return controls(&sim, &parts.method, &path, &body).await;
    }

    let _in_flight = sim.request_started();
    let parsed = parse(&parts, body).await;
    let (seq, slow_ms) = {
        let mut st = sim.state();
        let seq = st.next_seq;
        st.next_seq += 1;
        (seq, st.faults.slow_ms)
    };
    let at = sim.state().now();
    if slow_ms > 0 {
        tokio::time::sleep(Duration::from_millis(slow_ms)).await;
    }
    let response = match injected_fault(&sim) {
        Some(r) => r,
        None => route(&sim, &parts, &path, &parsed),
    };

    let logged = LoggedRequest {
        seq,
        at,
        method: parts.method.to_string(),
        path,
        query: parsed.query,
        content_type: parsed.content_type,
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
        form: parsed.form,
        json: parsed.json,
        files: parsed
            .files
            .iter()
            .map(|f| LoggedFile {
                field: f.field.clone(),
                file_name: f.file_name.clone(),
                content_type: f.content_type.clone(),
                size: f.bytes.len(),
            })
            .collect(),
        status: response.status().as_u16(),
    };
    sim.state().requests.push(logged);
    response
}

/// A 429 or 503 when a fault says so (and counts it down).
fn injected_fault(sim: &LawRulerSim) -> Option<Response> {
    let mut st = sim.state();
    if let Some(rl) = st.faults.rate_limit.as_mut() {
        let retry_after = rl.retry_after;
        rl.count = rl.count.saturating_sub(1);
        if rl.count == 0 {
            st.faults.rate_limit = None;
        }
        let mut r = json_error(
            StatusCode::TOO_MANY_REQUESTS,
            "rate_limited",
            "API rate limit exceeded",
        );
        r.headers_mut().insert(
            RETRY_AFTER,
            retry_after.to_string().parse().expect("digits"),
        );
        return Some(r);
    }
    if st.faults.fail_5xx > 0 {
        st.faults.fail_5xx -= 1;
        return Some(json_error(
            StatusCode::SERVICE_UNAVAILABLE,
            "server_error",
            "The service is temporarily unavailable",
        ));
    }
    None
}

fn route(sim: &LawRulerSim, parts: &Parts, path: &str, p: &Parsed) -> Response {
    let paths = sim.paths();
    let method = &parts.method;
    let is = |template: &str| matches(template, path);

    let endpoint: (&Method, Handler, Vec<String>) = if let Some(v) = is(&paths.lead_api) {
        let mut st = sim.state();
        if st.faults.garbled > 0 {
            st.faults.garbled -= 1;
            return (
                StatusCode::OK,
                [("content-type", "text/html")],
                "<html><body>Down for maintenance</body></html>",
            )
                .into_response();
        }
        drop(st);
        (&Method::POST, lead_api, v)
    } else if let Some(v) = is(&paths.campaign_api) {
        (&Method::POST, campaign_api, v)
    } else if let Some(v) = is(&paths.token) {
        (&Method::POST, token, v)
    } else if let Some(v) = is(&paths.case_types) {
        (&Method::GET, case_types, v)
    } else if let Some(v) = is(&paths.statuses) {
        (&Method::GET, statuses, v)
    } else if let Some(v) = is(&paths.custom_fields) {
        (&Method::GET, custom_fields, v)
    } else if let Some(v) = is(&paths.notes) {
        (&Method::POST, add_note, v)
    } else if let Some(v) = is(&paths.documents) {
        (&Method::POST, add_document, v)
    } else if let Some(v) = is(&paths.leads_changed) {
        (&Method::GET, leads_changed, v)
    } else if let Some(v) = is(&paths.notes_changed) {
        (&Method::GET, notes_changed, v)
    } else {
        return (StatusCode::NOT_FOUND, "Not Found").into_response();
    };
    let (allowed, handler, vars) = endpoint;
    if method != allowed {
        return (StatusCode::METHOD_NOT_ALLOWED, "Method Not Allowed").into_response();
    }
    if let Some(e) = &p.body_error {
        return json_error(StatusCode::BAD_REQUEST, "invalid_request", e);
    }
    handler(sim, parts, p, &vars)
}

type Handler = fn(&LawRulerSim, &Parts, &Parsed, &[String]) -> Response;

/// Matches `path` against a template with `{name}` segments; returns the segments' values.
fn matches(template: &str, path: &str) -> Option<Vec<String>> {
    let t: Vec<&str> = template.trim_end_matches('/').split('/').collect();
    let s: Vec<&str> = path.trim_end_matches('/').split('/').collect();
    if t.len() != s.len() {
        return None;
    }
    let mut vars = Vec::new();
    for (t, s) in t.iter().zip(&s) {
        if t.starts_with('{') && t.ends_with('}') {
            if s.is_empty() {
                return None;
            }
            vars.push(percent_decode(s));
        } else if !t.eq_ignore_ascii_case(s) {
            return None;
        }
    }
    Some(vars)
}

fn percent_decode(s: &str) -> String {
    url::form_urlencoded::parse(format!("x={}", s.replace('+', "%2B")).as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default()
}

// ---- answers ----

fn text(body: impl Into<String>) -> Response {
    (
        StatusCode::OK,
        [(CONTENT_TYPE, "text/plain; charset=utf-8")],
        body.into(),
    )
        .into_response()
}

fn failed(reason: impl std::fmt::Display) -> Response {
    text(format!("Failed|{reason}"))
}

fn json_error(status: StatusCode, code: &str, description: impl std::fmt::Display) -> Response {
    (
        status,
        axum::Json(json!({"error": code, "error_description": description.to_string()})),
    )
        .into_response()
}

fn json_ok(status: StatusCode, body: Value) -> Response {
    (status, axum::Json(body)).into_response()
}

// ---- lead and campaign APIs ----

fn key_ok(st: &SimState, params: &Params) -> bool {
    !st.faults.wrong_key && params.get("Key") == Some(st.credentials.key.as_str())
}

fn lead_api(sim: &LawRulerSim, _: &Parts, p: &Parsed, _: &[String]) -> Response {
    let params = Params::new(&p.form, &p.query);
    let mut st = sim.state();
    if !key_ok(&st, &params) {
        return failed("Invalid Key");
    }
    let lead_id = params
        .get("LeadID")
        .map(str::trim)
        .filter(|v| !v.is_empty());

    if let Some(op) = params.get("Operation") {
        if !op.trim().eq_ignore_ascii_case("GetStatus") {
            return failed("Operation is invalid");
        }
        let Some(lead_id) = lead_id else {
            return failed("LeadID is required");
        };
        return match st.lead(lead_id) {
            Some(l) => text(format!(
                "Success|LeadID={}|Status={}|StatusID={}",
                l.lead_id, l.status, l.status_id
            )),
            None => failed("Lead not found"),
        };
    }

    let now = st.now();
    let lead_id = match lead_id {
        Some(id) => {
            if !params.is_true("overridelead") {
                return failed("overridelead must be true");
            }
            let Some(current) = st.lead(id).map(|l| l.case_type_id.clone()) else {
                return failed("Lead not found");
            };
            let changes = match lead_changes(&st, &params, Some(&current)) {
                Ok(c) => c,
                Err(reason) => return failed(reason),
            };
            let lead = st.lead_mut(id).expect("checked above");
            changes.apply(lead, now);
            lead.lead_id.clone()
        }
        None => {
            let changes = match lead_changes(&st, &params, None) {
                Ok(c) => c,
                Err(reason) => return failed(reason),
            };
            let (Some(first), Some(last)) = (&changes.first_name, &changes.last_name) else {
                let missing = if changes.first_name.is_none() {
                    "FirstName"
                } else {
                    "LastName"
                };
                return failed(format!("{missing} is required"));
            };
            let Some(case_type) = &changes.case_type else {
                return failed("CaseType is required");
            };
            let new = NewLead {
                status_id: changes.status.as_ref().map(|s| s.id.clone()),
                ..NewLead::new(first, last, &case_type.id)
            };
            let id = match st.insert_lead(new) {
                Ok(id) => id,
                Err(e) => return failed(e),
            };
            changes.apply(st.lead_mut(&id).expect("just inserted"), now);
            id
        }
    };
    for f in &p.files {
        let doc = SimDocument {
            id: (st.documents.len() + 1).to_string(),
            lead_id: lead_id.clone(),
            folder: "/".into(),
            form_field: "File".into(),
            file_name: f.file_name.clone().unwrap_or_else(|| "upload".into()),
            content_type: f.content_type.clone(),
            size: f.bytes.len(),
            created_at: now,
            received_at: now,
            bytes: f.bytes.to_vec(),
        };
        st.documents.push(doc);
    }
    text(format!("Success|LeadID={lead_id}"))
}

fn campaign_api(sim: &LawRulerSim, _: &Parts, p: &Parsed, _: &[String]) -> Response {
    let params = Params::new(&p.form, &p.query);
    let mut st = sim.state();
    if !key_ok(&st, &params) {
        return failed("Invalid Key");
    }
    let Some(lead_id) = params
        .get("LeadID")
        .map(str::trim)
        .filter(|v| !v.is_empty())
    else {
        return failed("LeadID is required");
    };
    let Some(current) = st.lead(lead_id).map(|l| l.case_type_id.clone()) else {
        return failed("Lead not found");
    };
    if !params.is_true("OverriddenLead") {
        return failed("OverriddenLead must be true");
    }
    let changes = match lead_changes(&st, &params, Some(&current)) {
        Ok(c) => c,
        Err(reason) => return failed(reason),
    };
    let now = st.now();
    let lead = st.lead_mut(lead_id).expect("checked above");
    changes.apply(lead, now);
    text(format!("Success|LeadID={}", lead.lead_id))
}

// ---- Advanced API (modelled) ----

fn token(sim: &LawRulerSim, _: &Parts, p: &Parsed, _: &[String]) -> Response {
    if !p.is_form() {
        return json_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "the token request must be form-encoded",
        );
    }
    let get = |name: &str| {
        p.form
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .unwrap_or_default()
    };
    for name in ["username", "password", "client_secret"] {
        if get(name).is_empty() {
            return json_error(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                format!("{name} is required"),
            );
        }
    }
    let mut st = sim.state();
    let creds = st.credentials.clone();
    if get("username") != creds.username {
        return json_error(
            StatusCode::UNAUTHORIZED,
            "invalid_username",
            "No user with this username",
        );
    }
    if get("password") != creds.password {
        return json_error(
            StatusCode::UNAUTHORIZED,
            "invalid_password",
            "The password is incorrect",
        );
    }
    if get("client_secret") != creds.client_secret {
        return json_error(
            StatusCode::UNAUTHORIZED,
            "invalid_client_secret",
            "The client secret is incorrect",
        );
    }
    let token = st.issue_token();
    json_ok(
        StatusCode::OK,
        json!({
            "access_token": token,
            "token_type": "Bearer",
            "expires_in": st.token_ttl.as_secs(),
        }),
    )
}

/// `Err` is the description of the 401 to answer.
fn authorize(st: &SimState, headers: &HeaderMap) -> Result<(), &'static str> {
    let Some(value) = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
    else {
        return Err("An access token is required");
    };
    let token = match value.split_once(' ') {
        Some((scheme, t)) if scheme.eq_ignore_ascii_case("bearer") => t.trim(),
        _ => return Err("A Bearer access token is required"),
    };
    match st.tokens.get(token) {
        None => Err("The access token is invalid"),
        Some(expiry) if *expiry <= st.now() => Err("The access token expired"),
        Some(_) => Ok(()),
    }
}

fn unauthorized(description: &str) -> Response {
    let mut r = json_error(StatusCode::UNAUTHORIZED, "invalid_token", description);
    r.headers_mut().insert(
        WWW_AUTHENTICATE,
        "Bearer error=\"invalid_token\"".parse().expect("ascii"),
    );
    r
}

macro_rules! authorized {
    ($st:expr, $parts:expr) => {
        if let Err(description) = authorize(&$st, &$parts.headers) {
            return unauthorized(description);
        }
    };
}

fn case_types(sim: &LawRulerSim, parts: &Parts, _: &Parsed, _: &[String]) -> Response {
    let st = sim.state();
    authorized!(st, parts);
    json_ok(StatusCode::OK, json!(st.case_types))
}

fn statuses(sim: &LawRulerSim, parts: &Parts, _: &Parsed, _: &[String]) -> Response {
    let st = sim.state();
    authorized!(st, parts);
    json_ok(StatusCode::OK, json!(st.statuses))
}

fn custom_fields(sim: &LawRulerSim, parts: &Parts, _: &Parsed, vars: &[String]) -> Response {
    let st = sim.state();
    authorized!(st, parts);
    let case_type_id = vars.first().map(String::as_str).unwrap_or_default();
    if st.faults.fail_fields {
        return json_error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "server_error",
            "Custom fields could not be loaded",
        );
    }
    if !st.case_types.iter().any(|c| c.id == case_type_id) {
        return json_error(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("Case type {case_type_id} not found"),
        );
    }
    let fields = st
        .custom_fields
        .get(case_type_id)
        .cloned()
        .unwrap_or_default();
    json_ok(StatusCode::OK, json!(fields))
}

fn add_note(sim: &LawRulerSim, parts: &Parts, p: &Parsed, vars: &[String]) -> Response {
    let mut st = sim.state();
    authorized!(st, parts);
    let Some(body) = p.json.as_ref() else {
        return json_error(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "a JSON body is expected",
        );
    };
    let lead_id = vars.first().map(String::as_str).unwrap_or_default();
    if st.lead(lead_id).is_none() {
        return json_error(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("Lead {lead_id} not found"),
        );
    }
    let field = |name: &str| body.get(name).and_then(Value::as_str).map(str::trim);
    let Some(category) = field("category").filter(|c| !c.is_empty()) else {
        return json_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "category is required",
        );
    };
    let Some(category) = st
        .note_categories
        .iter()
        .find(|c| c.eq_ignore_ascii_case(category))
        .cloned()
    else {
        return json_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            format!("Note category {category:?} does not exist"),
        );
    };
    let Some(subject) = field("subject").filter(|s| !s.is_empty()) else {
        return json_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "subject is required",
        );
    };
    let Some(text) = body
        .get("body")
        .and_then(Value::as_str)
        .filter(|b| !b.trim().is_empty())
    else {
        return json_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "body is required",
        );
    };
    let now = st.now();
    let created_at = match body.get("createdAt") {
        None | Some(Value::Null) => now,
        Some(v) => match v.as_str().and_then(|s| s.parse::<Timestamp>().ok()) {
            Some(t) => t,
            None => {
                return json_error(
                    StatusCode::BAD_REQUEST,
                    "invalid_request",
                    "createdAt must be an RFC 3339 date-time",
                )
            }
        },
    };
    let note = SimNote {
        id: (st.notes.len() + 1).to_string(),
        lead_id: st.lead(lead_id).expect("checked").lead_id.clone(),
        category,
        subject: subject.to_owned(),
        body: text.to_owned(),
        created_at,
        updated_at: now,
    };
    st.notes.push(note.clone());
    json_ok(StatusCode::CREATED, json!(note))
}

fn add_document(sim: &LawRulerSim, parts: &Parts, p: &Parsed, vars: &[String]) -> Response {
    let mut st = sim.state();
    authorized!(st, parts);
    if !p.is_multipart() {
        return json_error(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "a multipart/form-data body is expected",
        );
    }
    let lead_id = vars.first().map(String::as_str).unwrap_or_default();
    let Some(lead_id) = st.lead(lead_id).map(|l| l.lead_id.clone()) else {
        return json_error(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("Lead {lead_id} not found"),
        );
    };
    let bad = |d: &str| json_error(StatusCode::BAD_REQUEST, "invalid_request", d);
    let field = |name: &str| {
        p.form
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.trim())
            .filter(|v| !v.is_empty())
    };
    let Some(folder) = field("folder") else {
        return bad("folder is required");
    };
    if !folder.starts_with('/') {
        return bad("folder must start with /");
    }
    let Some(form_field) = field("formField") else {
        return bad("formField is required");
    };
    if !matches!(form_field, "Recording" | "File") {
        return bad("formField must be Recording or File");
    }
    let Some(file_name) = field("fileName") else {
        return bad("fileName is required");
    };
    let Some(created_at) = field("createdAt") else {
        return bad("createdAt is required");
    };
    let Ok(created_at) = created_at.parse::<Timestamp>() else {
        return bad("createdAt must be an RFC 3339 date-time");
    };
    let files: Vec<&UploadedFile> = p.files.iter().filter(|f| f.field == "file").collect();
    let file = match files.as_slice() {
        [] => return bad("file is required"),
        [f] => *f,
        _ => return bad("exactly one file is expected"),
    };
    if file.bytes.is_empty() {
        return bad("file is empty");
    }
    let doc = SimDocument {
        id: (st.documents.len() + 1).to_string(),
        lead_id,
        folder: folder.to_owned(),
        form_field: form_field.to_owned(),
        file_name: file_name.to_owned(),
        content_type: file.content_type.clone(),
        size: file.bytes.len(),
        created_at,
        received_at: st.now(),
        bytes: file.bytes.to_vec(),
    };
    st.documents.push(doc.clone());
    json_ok(StatusCode::CREATED, json!(doc))
}

/// `Err` is the description of the 400 to answer.
fn changed_since(p: &Parsed) -> Result<Timestamp, &'static str> {
    let raw = p
        .query
        .iter()
        .find(|(k, _)| k == "changedSince")
        .map(|(_, v)| v.as_str())
        .ok_or("changedSince is required")?;
    raw.parse::<Timestamp>()
        .map_err(|_| "changedSince must be an RFC 3339 date-time")
}

fn leads_changed(sim: &LawRulerSim, parts: &Parts, p: &Parsed, _: &[String]) -> Response {
    let st = sim.state();
    authorized!(st, parts);
    let since = match changed_since(p) {
        Ok(t) => t,
        Err(d) => return json_error(StatusCode::BAD_REQUEST, "invalid_request", d),
    };
    let mut leads: Vec<_> = st
        .leads
        .values()
        .filter(|l| l.updated_at >= since)
        .cloned()
        .collect();
    leads.sort_by_key(|l| l.updated_at);
    json_ok(StatusCode::OK, json!(leads))
}

fn notes_changed(sim: &LawRulerSim, parts: &Parts, p: &Parsed, _: &[String]) -> Response {
    let st = sim.state();
    authorized!(st, parts);
    let since = match changed_since(p) {
        Ok(t) => t,
        Err(d) => return json_error(StatusCode::BAD_REQUEST, "invalid_request", d),
    };
    let notes: Vec<_> = st
        .notes
        .iter()
        .filter(|n| n.updated_at >= since)
        .cloned()
        .collect();
    json_ok(StatusCode::OK, json!(notes))
}

// ---- controls ----

#[derive(Deserialize)]
#[serde(untagged)]
enum ParamsInput {
    Map(serde_json::Map<String, Value>),
    List(Vec<(String, String)>),
}

impl Default for ParamsInput {
    fn default() -> Self {
        Self::List(Vec::new())
    }
}

impl ParamsInput {
    fn into_pairs(self) -> Vec<(String, String)> {
        match self {
            Self::List(l) => l,
            Self::Map(m) => m
                .into_iter()
                .map(|(k, v)| {
                    let v = match v {
                        Value::String(s) => s,
                        Value::Null => String::new(),
                        other => other.to_string(),
                    };
                    (k, v)
                })
                .collect(),
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct StatusTrigger {
    /// A status id or name.
    status: String,
    #[serde(default)]
    target_url: Option<String>,
    #[serde(default)]
    format: WebhookFormat,
    #[serde(default)]
    params: ParamsInput,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NoteInput {
    category: String,
    subject: String,
    body: String,
}

fn sim_error(e: &SimError) -> Response {
    let status = match e {
        SimError::LeadNotFound(_) => StatusCode::NOT_FOUND,
        SimError::StatusNotFound(_) | SimError::Invalid(_) => StatusCode::BAD_REQUEST,
        SimError::Send(_) => StatusCode::BAD_GATEWAY,
    };
    (status, axum::Json(json!({"error": e.to_string()}))).into_response()
}

fn body_json<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, String> {
    serde_json::from_slice(body).map_err(|e| e.to_string())
}

fn bad_control(message: String) -> Response {
    (
        StatusCode::BAD_REQUEST,
        axum::Json(json!({ "error": message })),
    )
        .into_response()
}

async fn controls(sim: &LawRulerSim, method: &Method, path: &str, body: &[u8]) -> Response {
    let segments: Vec<&str> = path
        .trim_start_matches("/_sim")
        .trim_matches('/')
        .split('/')
        .collect();
    match (method.as_str(), segments.as_slice()) {
        ("GET", ["requests"]) => json_ok(StatusCode::OK, json!(sim.requests())),
        ("DELETE", ["requests"]) => {
            sim.clear_requests();
            StatusCode::NO_CONTENT.into_response()
        }
        ("GET", ["faults"]) => json_ok(StatusCode::OK, json!(sim.faults())),
        ("POST" | "PUT" | "PATCH", ["faults"]) => match body_json::<FaultsPatch>(body) {
            Ok(patch) => {
                sim.patch_faults(patch);
                json_ok(StatusCode::OK, json!(sim.faults()))
            }
            Err(e) => bad_control(e),
        },
        ("DELETE", ["faults"]) => {
            sim.clear_faults();
            json_ok(StatusCode::OK, json!(sim.faults()))
        }
        ("POST", ["tokens", "expire"]) => {
            sim.expire_tokens();
            StatusCode::NO_CONTENT.into_response()
        }
        ("GET", ["leads"]) => json_ok(StatusCode::OK, json!(sim.leads())),
        ("GET", ["leads", id]) => match sim.lead(id) {
            Some(lead) => json_ok(
                StatusCode::OK,
                json!({
                    "lead": lead,
                    "notes": sim.notes(&lead.lead_id),
                    "documents": sim.documents(&lead.lead_id),
                }),
            ),
            None => sim_error(&SimError::LeadNotFound((*id).to_owned())),
        },
        ("POST", ["leads", id, "status"]) => {
            let trigger = match body_json::<StatusTrigger>(body) {
                Ok(t) => t,
                Err(e) => return bad_control(e),
            };
            match trigger.target_url {
                None => match sim.set_status(id, &trigger.status) {
                    Ok(lead) => json_ok(StatusCode::OK, json!({"lead": lead})),
                    Err(e) => sim_error(&e),
                },
                Some(url) => {
                    let params = trigger.params.into_pairs();
                    match sim
                        .send_status_webhook(id, &trigger.status, &url, trigger.format, &params)
                        .await
                    {
                        Ok(sent) => json_ok(
                            StatusCode::OK,
                            json!({"lead": sim.lead(id), "webhook": sent}),
                        ),
                        Err(e) => sim_error(&e),
                    }
                }
            }
        }
        ("POST", ["leads", id, "notes"]) => match body_json::<NoteInput>(body) {
            Ok(n) => match sim.add_note(id, &n.category, &n.subject, &n.body) {
                Ok(note) => json_ok(StatusCode::CREATED, json!(note)),
                Err(e) => sim_error(&e),
            },
            Err(e) => bad_control(e),
        },
        ("GET", ["webhooks"]) => json_ok(StatusCode::OK, json!(sim.webhooks_sent())),
        _ => (
            StatusCode::NOT_FOUND,
            axum::Json(json!({"error": "no such simulator control"})),
        )
            .into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_match_segments() {
        assert_eq!(
            matches("/api/v2/leads/{lead_id}/notes", "/api/v2/leads/10001/notes"),
            Some(vec!["10001".to_owned()])
        );
        assert_eq!(matches("/api/v2/leads", "/api/v2/leads/"), Some(vec![]));
        assert_eq!(
            matches("/api-legalcrmapp.aspx", "/API-LegalCRMApp.aspx"),
            Some(vec![])
        );
        assert_eq!(
            matches("/api/v2/leads/{lead_id}/notes", "/api/v2/leads//notes"),
            None
        );
        assert_eq!(matches("/api/v2/leads", "/api/v2/leads/1"), None);
    }
}
