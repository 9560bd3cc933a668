//! A Law Ruler tenant in memory, for tests and for `casebridge sim lawruler`.
//!
//! Served (paths are the defaults of [`SimPaths`]; all of them can be changed, as casebridge's
//! `LawRulerPaths` can):
//! - **Lead API** `POST /api-legalcrmapp.aspx` — form-encoded or multipart, parameters from the
//!   body or the query string, names case-insensitive. `Key` must match. Without `LeadID`: create
//!   (`FirstName`, `LastName`, `CaseType` required; `Email`, `CellPhone`, `Status`, `custom<ID>`
//!   and any other field optional). With `LeadID`: update, which needs `overridelead=true`.
//!   `Operation=GetStatus` + `LeadID` reads the status. Files in a multipart request are stored
//!   as documents of the lead (folder `/`, form field `File`).
//! - **Campaign API** `POST /api-legalrcampaign.aspx` — `Key`, `LeadID`, `OverriddenLead=true`,
//!   `Tags` (comma-separated, added to the lead), `Status`, `CellPhone`, `FirstName`, `LastName`,
//!   `Custom<ID>`, from the query string (as casebridge sends them) or the body.
//!
//!   Both answer **HTTP 200** with a text body (our model of Law Ruler's replies):
//!   `Success|LeadID=10003`, `Success|LeadID=10003|Status=Intake|StatusID=7`, `Failed|Invalid Key`,
//!   `Failed|Lead not found`, `Failed|<Field> is required`, `Failed|<Field> is invalid`,
//!   `Failed|overridelead must be true`, `Failed|OverriddenLead must be true`,
//!   `Failed|Operation is invalid`. A custom value is checked against its field's input type
//!   (`date`: `M/D/YYYY` or `YYYY-MM-DD`; `number`; `yesno`: Yes/No/True/False) and must belong to
//!   the lead's case type. A rejected request changes nothing.
//! - **Advanced API (modelled)**: `POST /api/v2/token` (form `username`, `password`,
//!   `client_secret` → `{"access_token","token_type":"Bearer","expires_in"}`; wrong values →
//!   `401 {"error":"invalid_username"|"invalid_password"|"invalid_client_secret",
//!   "error_description"}`, checked in that order). With `Authorization: Bearer <token>`
//!   (missing, unknown or expired → `401 {"error":"invalid_token"}`): `GET /api/v2/casetypes`,
//!   `GET /api/v2/statuses`, `GET /api/v2/casetypes/{id}/customfields`,
//!   `POST /api/v2/leads/{id}/notes` (JSON `category` — one of [`NOTE_CATEGORIES`] —, `subject`,
//!   `body`, optional `createdAt`), `POST /api/v2/leads/{id}/documents` (multipart `folder`
//!   starting with `/`, `formField` `Recording` or `File`, `fileName`, `createdAt`, and the file
//!   as `file`), `GET /api/v2/leads?changedSince=` and `GET /api/v2/notes?changedSince=`
//!   (RFC 3339; changed at or after). Errors: `400 invalid_request`, `404 not_found`,
//!   `415 unsupported_media_type`, `500 server_error`, each with `error_description`.
//!
//! Controls (no auth; never faulted, never logged) under `/_sim/`: `GET|DELETE /_sim/requests`,
//! `GET|POST|DELETE /_sim/faults`, `POST /_sim/tokens/expire`, `GET /_sim/leads`,
//! `GET /_sim/leads/{id}` (with notes and documents), `POST /_sim/leads/{id}/status`
//! (change the status and, with `target_url`, send the webhook), `POST /_sim/leads/{id}/notes`
//! (a note written in Law Ruler), `GET /_sim/webhooks` (webhooks sent). See [`Faults`] and
//! [`LoggedRequest`].
//!
//! Outbound webhooks: [`LawRulerSim::send_status_webhook`] posts a lead the way a Law Ruler
//! webhook would: label-style names ("Lead ID", "Case Type ID", …, see [`WEBHOOK_FIELDS`]) as
//! JSON, form or multipart, with the Params-tab key/values merged in. "Created Date" is written
//! `MM/DD/YYYY hh:mm:ss AM` in UTC (modelled). Targets must be on this machine unless
//! [`LawRulerSimBuilder::allow_remote_webhooks`] is set.

mod http;
mod seed;
mod validate;

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub use seed::{DEMO_CLIENT_SECRET, DEMO_KEY, DEMO_PASSWORD, DEMO_USERNAME, NOTE_CATEGORIES};

/// The fields a status webhook carries, in order, before the Params-tab values.
pub const WEBHOOK_FIELDS: [&str; 12] = [
    "Lead ID",
    "Case Type ID",
    "Case Type",
    "Status ID",
    "Status",
    "Full Name",
    "Created Date",
    "Primary Contact ID",
    "First Name",
    "Last Name",
    "Email",
    "Cell Phone",
];

/// What the simulated tenant accepts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SimCredentials {
    pub username: String,
    pub password: String,
    pub client_secret: String,
    pub key: String,
}

/// Where each endpoint is served. The defaults are the paths casebridge's client uses; the
/// Advanced API ones are modelled.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SimPaths {
    pub lead_api: String,
    pub campaign_api: String,
    pub token: String,
    pub case_types: String,
    pub statuses: String,
    /// Has `{case_type_id}`.
    pub custom_fields: String,
    /// Has `{lead_id}`.
    pub notes: String,
    /// Has `{lead_id}`.
    pub documents: String,
    pub leads_changed: String,
    pub notes_changed: String,
}

impl Default for SimPaths {
    fn default() -> Self {
        Self {
            lead_api: "/api-legalcrmapp.aspx".into(),
            campaign_api: "/api-legalrcampaign.aspx".into(),
            token: "/api/v2/token".into(),
            case_types: "/api/v2/casetypes".into(),
            statuses: "/api/v2/statuses".into(),
            custom_fields: "/api/v2/casetypes/{case_type_id}/customfields".into(),
            notes: "/api/v2/leads/{lead_id}/notes".into(),
            documents: "/api/v2/leads/{lead_id}/documents".into(),
            leads_changed: "/api/v2/leads".into(),
            notes_changed: "/api/v2/notes".into(),
        }
    }
}

/// A case type, as the Advanced API lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SimCaseType {
    pub id: String,
    pub name: String,
}

/// A lead status, as the Advanced API lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SimStatus {
    pub id: String,
    pub name: String,
}

/// A custom field of a case type. Its lead-API key is `custom<id>`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SimCustomField {
    pub id: String,
    pub key: String,
    pub label: String,
    /// `text`, `textarea`, `date`, `number` or `yesno`.
    pub input_type: String,
    pub form_section: String,
}

impl SimCustomField {
    pub fn new(id: &str, label: &str, input_type: &str, form_section: &str) -> Self {
        Self {
            id: id.to_owned(),
            key: format!("custom{id}"),
            label: label.to_owned(),
            input_type: input_type.to_owned(),
            form_section: form_section.to_owned(),
        }
    }
}

/// A lead. Standard fields have members; custom fields (as `custom<ID>`) and any other field
/// posted through the lead API are in `fields`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SimLead {
    pub lead_id: String,
    pub primary_contact_id: String,
    pub case_type_id: String,
    pub case_type: String,
    pub status_id: String,
    pub status: String,
    pub first_name: String,
    pub last_name: String,
    pub email: Option<String>,
    pub cell_phone: Option<String>,
    pub tags: Vec<String>,
    pub fields: BTreeMap<String, String>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

impl SimLead {
    pub fn full_name(&self) -> String {
        format!("{} {}", self.first_name, self.last_name)
            .trim()
            .to_owned()
    }
}

/// A lead to put in the simulator directly (seed data, tests).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NewLead {
    pub first_name: String,
    pub last_name: String,
    pub case_type_id: String,
    /// The first status when `None`.
    pub status_id: Option<String>,
    pub email: Option<String>,
    pub cell_phone: Option<String>,
    /// Other fields, custom ones as `custom<ID>` (not validated).
    pub fields: BTreeMap<String, String>,
}

impl NewLead {
    pub fn new(first_name: &str, last_name: &str, case_type_id: &str) -> Self {
        Self {
            first_name: first_name.to_owned(),
            last_name: last_name.to_owned(),
            case_type_id: case_type_id.to_owned(),
            ..Self::default()
        }
    }
}

/// A note on a lead.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SimNote {
    pub id: String,
    pub lead_id: String,
    pub category: String,
    pub subject: String,
    pub body: String,
    /// As given by the writer (`createdAt`), else when stored.
    pub created_at: Timestamp,
    /// When stored; what `changedSince` compares.
    pub updated_at: Timestamp,
}

/// A document uploaded to a lead.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SimDocument {
    pub id: String,
    pub lead_id: String,
    pub folder: String,
    pub form_field: String,
    pub file_name: String,
    pub content_type: Option<String>,
    pub size: usize,
    pub created_at: Timestamp,
    pub received_at: Timestamp,
    #[serde(skip)]
    pub bytes: Vec<u8>,
}

/// A file part of a logged request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LoggedFile {
    /// The multipart field name (`file`).
    pub field: String,
    pub file_name: Option<String>,
    pub content_type: Option<String>,
    pub size: usize,
}

/// One request to a Law Ruler endpoint, as received (the `/_sim/` controls are not logged).
/// The Key, password and tokens appear as sent: this is a test tool for checking exactly what
/// casebridge sends.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LoggedRequest {
    /// Arrival order, from 1.
    pub seq: u64,
    pub at: Timestamp,
    pub method: String,
    pub path: String,
    /// Query parameters in order.
    pub query: Vec<(String, String)>,
    pub content_type: Option<String>,
    /// Header names in lower case, in order.
    pub headers: Vec<(String, String)>,
    /// Form fields (url-encoded body, or the text parts of a multipart body), in order.
    pub form: Vec<(String, String)>,
    /// A JSON body.
    pub json: Option<Value>,
    pub files: Vec<LoggedFile>,
    /// The status answered (429 and 5xx included when a fault answered).
    pub status: u16,
}

impl LoggedRequest {
    /// The first form field, else query parameter, named `name` (case-insensitive).
    pub fn param(&self, name: &str) -> Option<&str> {
        self.form
            .iter()
            .chain(&self.query)
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// A header's value (`name` in any case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Answer the next `count` requests with `429` and `Retry-After: retry_after`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimitFault {
    /// Seconds.
    pub retry_after: u64,
    pub count: u32,
}

/// Injected failures; they apply to every Law Ruler endpoint, in this order: `slow_ms`, then
/// `rate_limit`, then `fail_5xx`; `wrong_key`, `fail_fields` and `garbled` change single
/// endpoints.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Faults {
    pub rate_limit: Option<RateLimitFault>,
    /// Answer the next N requests with `503`.
    pub fail_5xx: u32,
    /// Wait this long before answering each request.
    pub slow_ms: u64,
    /// The lead and campaign APIs reject every Key (`Failed|Invalid Key`).
    pub wrong_key: bool,
    /// Custom-field loading answers `500`.
    pub fail_fields: bool,
    /// The lead API answers the next N requests with HTTP 200 and a page that is not one of its
    /// answers (as a maintenance page would).
    pub garbled: u32,
}

/// A change to [`Faults`], as `POST /_sim/faults` takes it: only the keys given change.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FaultsPatch {
    /// `count: 0` removes the rate limit.
    pub rate_limit: Option<RateLimitFault>,
    pub fail_5xx: Option<u32>,
    pub slow_ms: Option<u64>,
    pub wrong_key: Option<bool>,
    pub fail_fields: Option<bool>,
    pub garbled: Option<u32>,
}

/// How a webhook's body is encoded.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WebhookFormat {
    #[default]
    Json,
    Form,
    Multipart,
}

/// A webhook the simulator sent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SentWebhook {
    pub target_url: String,
    pub format: WebhookFormat,
    /// The fields as sent, in order.
    pub fields: Vec<(String, String)>,
    /// The receiver's status, if it answered.
    pub status: Option<u16>,
    pub response_body: Option<String>,
    pub error: Option<String>,
}

/// Why an in-process operation failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SimError {
    #[error("lead {0} not found")]
    LeadNotFound(String),
    #[error("status {0:?} not found")]
    StatusNotFound(String),
    #[error("invalid: {0}")]
    Invalid(String),
    #[error("webhook not delivered: {0}")]
    Send(String),
}

#[derive(Debug)]
struct State {
    credentials: SimCredentials,
    paths: SimPaths,
    case_types: Vec<SimCaseType>,
    statuses: Vec<SimStatus>,
    custom_fields: BTreeMap<String, Vec<SimCustomField>>,
    note_categories: Vec<String>,
    leads: BTreeMap<u64, SimLead>,
    next_lead_id: u64,
    next_contact_id: u64,
    notes: Vec<SimNote>,
    documents: Vec<SimDocument>,
    /// Access token → expiry.
    tokens: HashMap<String, Timestamp>,
    token_ttl: Duration,
    requests: Vec<LoggedRequest>,
    next_seq: u64,
    /// Requests being answered now, and the most at once since the log was last cleared.
    in_flight: usize,
    max_in_flight: usize,
    faults: Faults,
    webhooks: Vec<SentWebhook>,
    allow_remote_webhooks: bool,
    now: Option<Timestamp>,
}

impl State {
    fn now(&self) -> Timestamp {
        self.now.unwrap_or_else(Timestamp::now)
    }

    fn lead(&self, id: &str) -> Option<&SimLead> {
        self.leads.get(&id.trim().parse::<u64>().ok()?)
    }

    fn lead_mut(&mut self, id: &str) -> Option<&mut SimLead> {
        self.leads.get_mut(&id.trim().parse::<u64>().ok()?)
    }

    fn case_type(&self, id_or_name: &str) -> Option<&SimCaseType> {
        let v = id_or_name.trim();
        self.case_types.iter().find(|c| c.id == v).or_else(|| {
            self.case_types
                .iter()
                .find(|c| c.name.eq_ignore_ascii_case(v))
        })
    }

    fn status_by_name(&self, name: &str) -> Option<&SimStatus> {
        let v = name.trim();
        self.statuses
            .iter()
            .find(|s| s.name.eq_ignore_ascii_case(v))
    }

    fn status_by_id(&self, id: &str) -> Option<&SimStatus> {
        let v = id.trim();
        self.statuses.iter().find(|s| s.id == v)
    }

    fn status(&self, id_or_name: &str) -> Option<&SimStatus> {
        self.status_by_id(id_or_name)
            .or_else(|| self.status_by_name(id_or_name))
    }

    fn insert_lead(&mut self, new: NewLead) -> Result<String, SimError> {
        let case_type = self
            .case_type(&new.case_type_id)
            .cloned()
            .ok_or_else(|| SimError::Invalid(format!("case type {:?}", new.case_type_id)))?;
        let status = match &new.status_id {
            Some(s) => self.status(s).cloned(),
            None => self.statuses.first().cloned(),
        }
        .ok_or_else(|| SimError::StatusNotFound(new.status_id.clone().unwrap_or_default()))?;
        let now = self.now();
        let id = self.next_lead_id;
        self.next_lead_id += 1;
        let contact = self.next_contact_id;
        self.next_contact_id += 1;
        let lead = SimLead {
            lead_id: id.to_string(),
            primary_contact_id: contact.to_string(),
            case_type_id: case_type.id,
            case_type: case_type.name,
            status_id: status.id,
            status: status.name,
            first_name: new.first_name,
            last_name: new.last_name,
            email: new.email,
            cell_phone: new.cell_phone,
            tags: Vec::new(),
            fields: new.fields,
            created_at: now,
            updated_at: now,
        };
        self.leads.insert(id, lead);
        Ok(id.to_string())
    }

    fn issue_token(&mut self) -> String {
        let token = format!("lrsim_{}", uuid::Uuid::new_v4().simple());
        let expires = self
            .now()
            .checked_add(jiff::SignedDuration::try_from(self.token_ttl).unwrap_or_default())
            .unwrap_or_else(|_| self.now());
        self.tokens.insert(token.clone(), expires);
        token
    }
}

/// Builds a [`LawRulerSim`]; [`LawRulerSim::builder`] starts from the default seed,
/// [`LawRulerSimBuilder::empty`] from nothing but the demo credentials.
#[derive(Debug, Clone)]
pub struct LawRulerSimBuilder {
    credentials: SimCredentials,
    paths: SimPaths,
    case_types: Vec<SimCaseType>,
    statuses: Vec<SimStatus>,
    custom_fields: BTreeMap<String, Vec<SimCustomField>>,
    note_categories: Vec<String>,
    leads: Vec<NewLead>,
    token_ttl: Duration,
    first_lead_id: u64,
    allow_remote_webhooks: bool,
}

impl Default for LawRulerSimBuilder {
    fn default() -> Self {
        seed::default_seed()
    }
}

impl LawRulerSimBuilder {
    /// No case types, statuses, fields or leads; the demo credentials; the default paths.
    pub fn empty() -> Self {
        Self {
            credentials: seed::demo_credentials(),
            paths: SimPaths::default(),
            case_types: Vec::new(),
            statuses: Vec::new(),
            custom_fields: BTreeMap::new(),
            note_categories: NOTE_CATEGORIES.iter().map(|c| (*c).to_owned()).collect(),
            leads: Vec::new(),
            token_ttl: Duration::from_secs(3600),
            first_lead_id: 10001,
            allow_remote_webhooks: false,
        }
    }

    pub fn credentials(mut self, credentials: SimCredentials) -> Self {
        self.credentials = credentials;
        self
    }

    pub fn paths(mut self, paths: SimPaths) -> Self {
        self.paths = paths;
        self
    }

    pub fn case_type(mut self, id: &str, name: &str) -> Self {
        self.case_types.push(SimCaseType {
            id: id.to_owned(),
            name: name.to_owned(),
        });
        self
    }

    pub fn status(mut self, id: &str, name: &str) -> Self {
        self.statuses.push(SimStatus {
            id: id.to_owned(),
            name: name.to_owned(),
        });
        self
    }

    pub fn custom_field(mut self, case_type_id: &str, field: SimCustomField) -> Self {
        self.custom_fields
            .entry(case_type_id.to_owned())
            .or_default()
            .push(field);
        self
    }

    pub fn note_category(mut self, name: &str) -> Self {
        self.note_categories.push(name.to_owned());
        self
    }

    /// A lead present from the start (its case type and status must be seeded).
    pub fn lead(mut self, lead: NewLead) -> Self {
        self.leads.push(lead);
        self
    }

    /// How long access tokens live (default one hour).
    pub fn token_ttl(mut self, ttl: Duration) -> Self {
        self.token_ttl = ttl;
        self
    }

    /// Let webhooks go to any host. By default only loopback targets (`127.0.0.0/8`, `::1`,
    /// `localhost`) are accepted: the `/_sim/` controls take a target URL without
    /// authentication, and a simulator must not become a way to reach other machines.
    pub fn allow_remote_webhooks(mut self, allow: bool) -> Self {
        self.allow_remote_webhooks = allow;
        self
    }

    /// The first Lead ID handed out (default 10001).
    pub fn first_lead_id(mut self, id: u64) -> Self {
        self.first_lead_id = id;
        self
    }

    /// # Panics
    /// If a seeded lead names a case type or status that is not seeded.
    pub fn build(self) -> LawRulerSim {
        let mut state = State {
            credentials: self.credentials,
            paths: self.paths,
            case_types: self.case_types,
            statuses: self.statuses,
            custom_fields: self.custom_fields,
            note_categories: self.note_categories,
            leads: BTreeMap::new(),
            next_lead_id: self.first_lead_id,
            next_contact_id: 50001,
            notes: Vec::new(),
            documents: Vec::new(),
            tokens: HashMap::new(),
            token_ttl: self.token_ttl,
            requests: Vec::new(),
            next_seq: 1,
            in_flight: 0,
            max_in_flight: 0,
            faults: Faults::default(),
            webhooks: Vec::new(),
            allow_remote_webhooks: self.allow_remote_webhooks,
            now: None,
        };
        for lead in self.leads {
            state.insert_lead(lead).expect("seeded lead");
        }
        LawRulerSim {
            inner: Arc::new(Mutex::new(state)),
            http: reqwest::Client::builder()
                .no_proxy()
                .redirect(reqwest::redirect::Policy::none())
                .timeout(Duration::from_secs(15))
                .build()
                .expect("HTTP client"),
        }
    }
}

/// The simulated tenant and its controls. Clones share one state, so a test keeps a clone
/// while the server runs.
#[derive(Debug, Clone)]
pub struct LawRulerSim {
    inner: Arc<Mutex<State>>,
    http: reqwest::Client,
}

/// A request being answered; counted down when dropped (answered or abandoned).
pub(crate) struct InFlight(LawRulerSim);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.state().in_flight -= 1;
    }
}

impl Default for LawRulerSim {
    fn default() -> Self {
        Self::new()
    }
}

impl LawRulerSim {
    /// The default seed: credentials `demo` / `demo-password` / `demo-secret` / Key `demo-key`;
    /// case types 12 "Auto Accident", 13 "Slip and Fall", 14 "Workers' Compensation", each with
    /// a few custom fields; statuses 7 "Intake", 8 "Qualified – Intake Completed",
    /// 9 "Sent e-Sign", 10 "Review Needed", 11 "Signed Up"; leads 10001 (Jane Doe, Auto
    /// Accident, Intake) and 10002 (John Roe, Slip and Fall, Review Needed).
    pub fn new() -> Self {
        Self::builder().build()
    }

    /// A builder starting from the default seed.
    pub fn builder() -> LawRulerSimBuilder {
        LawRulerSimBuilder::default()
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    // ---- inspection ----

    /// What a person trying the simulator needs: credentials, paths, case types, statuses,
    /// leads (for `casebridge sim lawruler` to print at start).
    pub fn describe(&self) -> Value {
        let st = self.state();
        serde_json::json!({
            "credentials": st.credentials,
            "paths": st.paths,
            "case_types": st.case_types,
            "statuses": st.statuses,
            "leads": st.leads.values().map(|l| serde_json::json!({
                "lead_id": l.lead_id,
                "name": l.full_name(),
                "case_type": l.case_type,
                "status": l.status,
            })).collect::<Vec<_>>(),
        })
    }

    pub fn credentials(&self) -> SimCredentials {
        self.state().credentials.clone()
    }

    pub fn paths(&self) -> SimPaths {
        self.state().paths.clone()
    }

    /// Every request to a Law Ruler endpoint so far, in arrival order.
    pub fn requests(&self) -> Vec<LoggedRequest> {
        let mut r = self.state().requests.clone();
        r.sort_by_key(|r| r.seq);
        r
    }

    /// The logged requests to one path (e.g. `"/api-legalrcampaign.aspx"`).
    pub fn requests_to(&self, path: &str) -> Vec<LoggedRequest> {
        self.requests()
            .into_iter()
            .filter(|r| r.path == path)
            .collect()
    }

    /// Clears the request log (and starts counting [`max_in_flight`](Self::max_in_flight) again).
    pub fn clear_requests(&self) {
        let mut st = self.state();
        st.requests.clear();
        st.max_in_flight = st.in_flight;
    }

    /// The most Law Ruler requests (the simulator's controls aside) that were being answered at
    /// once since the request log was last cleared.
    pub fn max_in_flight(&self) -> usize {
        self.state().max_in_flight
    }

    pub(crate) fn request_started(&self) -> InFlight {
        let mut st = self.state();
        st.in_flight += 1;
        st.max_in_flight = st.max_in_flight.max(st.in_flight);
        InFlight(self.clone())
    }

    pub fn leads(&self) -> Vec<SimLead> {
        self.state().leads.values().cloned().collect()
    }

    pub fn lead(&self, lead_id: &str) -> Option<SimLead> {
        self.state().lead(lead_id).cloned()
    }

    /// Notes of a lead, in the order stored.
    pub fn notes(&self, lead_id: &str) -> Vec<SimNote> {
        self.state()
            .notes
            .iter()
            .filter(|n| n.lead_id == lead_id)
            .cloned()
            .collect()
    }

    /// Documents of a lead, in the order stored.
    pub fn documents(&self, lead_id: &str) -> Vec<SimDocument> {
        self.state()
            .documents
            .iter()
            .filter(|d| d.lead_id == lead_id)
            .cloned()
            .collect()
    }

    pub fn case_types(&self) -> Vec<SimCaseType> {
        self.state().case_types.clone()
    }

    pub fn statuses(&self) -> Vec<SimStatus> {
        self.state().statuses.clone()
    }

    pub fn custom_fields(&self, case_type_id: &str) -> Vec<SimCustomField> {
        self.state()
            .custom_fields
            .get(case_type_id)
            .cloned()
            .unwrap_or_default()
    }

    /// Webhooks sent so far.
    pub fn webhooks_sent(&self) -> Vec<SentWebhook> {
        self.state().webhooks.clone()
    }

    // ---- changes, as if made in Law Ruler ----

    /// Adds a lead directly (no request logged). Returns its Lead ID.
    pub fn create_lead(&self, lead: NewLead) -> Result<String, SimError> {
        self.state().insert_lead(lead)
    }

    /// Sets a lead's status (by id or name), as a user would in Law Ruler.
    pub fn set_status(&self, lead_id: &str, status: &str) -> Result<SimLead, SimError> {
        let mut st = self.state();
        let status = st
            .status(status)
            .cloned()
            .ok_or_else(|| SimError::StatusNotFound(status.to_owned()))?;
        let now = st.now();
        let lead = st
            .lead_mut(lead_id)
            .ok_or_else(|| SimError::LeadNotFound(lead_id.to_owned()))?;
        lead.status_id = status.id;
        lead.status = status.name;
        lead.updated_at = now;
        Ok(lead.clone())
    }

    /// Adds a note as a Law Ruler user would (what casebridge's hourly pull finds).
    pub fn add_note(
        &self,
        lead_id: &str,
        category: &str,
        subject: &str,
        body: &str,
    ) -> Result<SimNote, SimError> {
        let mut st = self.state();
        if st.lead(lead_id).is_none() {
            return Err(SimError::LeadNotFound(lead_id.to_owned()));
        }
        let now = st.now();
        let note = SimNote {
            id: format!("{}", st.notes.len() + 1),
            lead_id: lead_id.trim().to_owned(),
            category: category.to_owned(),
            subject: subject.to_owned(),
            body: body.to_owned(),
            created_at: now,
            updated_at: now,
        };
        st.notes.push(note.clone());
        Ok(note)
    }

    // ---- controls ----

    pub fn faults(&self) -> Faults {
        self.state().faults.clone()
    }

    pub fn set_faults(&self, faults: Faults) {
        self.state().faults = faults;
    }

    pub fn patch_faults(&self, patch: FaultsPatch) {
        let mut st = self.state();
        let f = &mut st.faults;
        if let Some(r) = patch.rate_limit {
            f.rate_limit = (r.count > 0).then_some(r);
        }
        if let Some(n) = patch.fail_5xx {
            f.fail_5xx = n;
        }
        if let Some(ms) = patch.slow_ms {
            f.slow_ms = ms;
        }
        if let Some(b) = patch.wrong_key {
            f.wrong_key = b;
        }
        if let Some(b) = patch.fail_fields {
            f.fail_fields = b;
        }
        if let Some(n) = patch.garbled {
            f.garbled = n;
        }
    }

    pub fn clear_faults(&self) {
        self.set_faults(Faults::default());
    }

    /// Answer the next `count` requests with 429 and `Retry-After: retry_after` seconds.
    pub fn rate_limit(&self, retry_after_secs: u64, count: u32) {
        self.patch_faults(FaultsPatch {
            rate_limit: Some(RateLimitFault {
                retry_after: retry_after_secs,
                count,
            }),
            ..FaultsPatch::default()
        });
    }

    /// Answer the next `count` lead API requests with HTTP 200 and a page that is not an answer.
    pub fn garble(&self, count: u32) {
        self.state().faults.garbled = count;
    }

    /// Answer the next `count` requests with 503.
    pub fn fail_5xx(&self, count: u32) {
        self.state().faults.fail_5xx = count;
    }

    /// Wait `delay` before answering each request.
    pub fn slow(&self, delay: Duration) {
        self.state().faults.slow_ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX);
    }

    /// Reject every Key on the lead and campaign APIs.
    pub fn wrong_key(&self, on: bool) {
        self.state().faults.wrong_key = on;
    }

    /// Make custom-field loading answer 500.
    pub fn fail_fields(&self, on: bool) {
        self.state().faults.fail_fields = on;
    }

    /// Every access token issued so far stops working (answers `invalid_token`).
    pub fn expire_tokens(&self) {
        let mut st = self.state();
        let past = st.now() - jiff::SignedDuration::from_secs(1);
        for expiry in st.tokens.values_mut() {
            *expiry = past;
        }
    }

    /// Access tokens issued so far (expired ones included).
    pub fn tokens_issued(&self) -> usize {
        self.state().tokens.len()
    }

    /// Fixes the simulator's clock (token expiry, timestamps); `None` returns to real time.
    pub fn set_now(&self, now: Option<Timestamp>) {
        self.state().now = now;
    }

    // ---- outbound webhooks ----

    /// Changes a lead's status (by id or name) and posts the lead to `target_url` as a Law Ruler
    /// status webhook would, in `format`, with the Params-tab `params` merged in (a param with
    /// the name of a lead field replaces it). Returns what was sent and the receiver's answer; a
    /// receiver that cannot be reached is [`SimError::Send`] (the status change stays).
    pub async fn send_status_webhook(
        &self,
        lead_id: &str,
        new_status: &str,
        target_url: &str,
        format: WebhookFormat,
        params: &[(String, String)],
    ) -> Result<SentWebhook, SimError> {
        self.set_status(lead_id, new_status)?;
        self.send_lead_webhook(lead_id, target_url, format, params)
            .await
    }

    /// Posts a lead as it is ("Send via Webhook" in Law Ruler).
    pub async fn send_lead_webhook(
        &self,
        lead_id: &str,
        target_url: &str,
        format: WebhookFormat,
        params: &[(String, String)],
    ) -> Result<SentWebhook, SimError> {
        let lead = self
            .lead(lead_id)
            .ok_or_else(|| SimError::LeadNotFound(lead_id.to_owned()))?;
        check_target(target_url, self.state().allow_remote_webhooks)?;
        let fields = webhook_fields(&lead, params);
        let req = self.http.post(target_url);
        let req = match format {
            WebhookFormat::Json => {
                let obj: serde_json::Map<String, Value> = fields
                    .iter()
                    .map(|(k, v)| (k.clone(), Value::String(v.clone())))
                    .collect();
                req.json(&obj)
            }
            WebhookFormat::Form => req.form(&fields),
            WebhookFormat::Multipart => {
                let form = fields
                    .iter()
                    .fold(reqwest::multipart::Form::new(), |f, (k, v)| {
                        f.text(k.clone(), v.clone())
                    });
                req.multipart(form)
            }
        };
        let mut sent = SentWebhook {
            target_url: target_url.to_owned(),
            format,
            fields,
            status: None,
            response_body: None,
            error: None,
        };
        let result = match req.send().await {
            Ok(resp) => {
                sent.status = Some(resp.status().as_u16());
                sent.response_body = Some(resp.text().await.unwrap_or_default());
                Ok(sent.clone())
            }
            Err(e) => {
                let msg = innermost(&e);
                sent.error = Some(msg.clone());
                Err(SimError::Send(msg))
            }
        };
        self.state().webhooks.push(sent);
        result
    }

    // ---- serving ----

    /// Binds `127.0.0.1:0` and serves in the background until the returned value is dropped.
    pub async fn start(&self) -> RunningSim {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind 127.0.0.1:0");
        let addr = listener.local_addr().expect("local address");
        let shutdown = CancellationToken::new();
        let handle = tokio::spawn(serve_until(listener, self.clone(), shutdown.clone()));
        RunningSim {
            sim: self.clone(),
            addr,
            base_url: format!("http://{addr}"),
            handle,
            shutdown,
        }
    }
}

/// An http(s) URL, on a loopback host unless remote targets are allowed.
fn check_target(target_url: &str, allow_remote: bool) -> Result<(), SimError> {
    let url = url::Url::parse(target_url)
        .map_err(|e| SimError::Invalid(format!("target URL {target_url:?}: {e}")))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(SimError::Invalid(format!(
            "target URL {target_url:?} is not http(s)"
        )));
    }
    let loopback = match url.host() {
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        None => false,
    };
    if loopback || allow_remote {
        Ok(())
    } else {
        Err(SimError::Invalid(format!(
            "target URL {target_url:?} is not on this machine (start the simulator with remote \
             webhooks allowed to send elsewhere)"
        )))
    }
}

/// The lead's webhook fields then the params, a param replacing a field of the same name.
fn webhook_fields(lead: &SimLead, params: &[(String, String)]) -> Vec<(String, String)> {
    let created = lead
        .created_at
        .to_zoned(jiff::tz::TimeZone::UTC)
        .strftime("%m/%d/%Y %I:%M:%S %p")
        .to_string();
    let values = [
        lead.lead_id.clone(),
        lead.case_type_id.clone(),
        lead.case_type.clone(),
        lead.status_id.clone(),
        lead.status.clone(),
        lead.full_name(),
        created,
        lead.primary_contact_id.clone(),
        lead.first_name.clone(),
        lead.last_name.clone(),
        lead.email.clone().unwrap_or_default(),
        lead.cell_phone.clone().unwrap_or_default(),
    ];
    let mut fields: Vec<(String, String)> = WEBHOOK_FIELDS
        .iter()
        .map(|k| (*k).to_owned())
        .zip(values)
        .collect();
    for (k, v) in params {
        match fields.iter_mut().find(|(name, _)| name == k) {
            Some(slot) => slot.1 = v.clone(),
            None => fields.push((k.clone(), v.clone())),
        }
    }
    fields
}

/// A simulator serving on a local port; stops when dropped.
#[derive(Debug)]
pub struct RunningSim {
    pub sim: LawRulerSim,
    pub addr: SocketAddr,
    /// `http://127.0.0.1:<port>`: the Client Root to connect with.
    pub base_url: String,
    pub handle: JoinHandle<std::io::Result<()>>,
    shutdown: CancellationToken,
}

impl Drop for RunningSim {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

/// Serves the simulator on `listener` until the process ends (for `casebridge sim lawruler`).
pub async fn serve(listener: TcpListener, sim: LawRulerSim) -> std::io::Result<()> {
    serve_until(listener, sim, CancellationToken::new()).await
}

/// Serves until `shutdown` is cancelled, then stops accepting and finishes open requests.
pub async fn serve_until(
    listener: TcpListener,
    sim: LawRulerSim,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    axum::serve(listener, http::router(sim))
        .with_graceful_shutdown(async move { shutdown.cancelled().await })
        .await
}

fn innermost(e: &(dyn std::error::Error + 'static)) -> String {
    let mut cur = e;
    while let Some(next) = cur.source() {
        cur = next;
    }
    cur.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn webhook_fields_in_order_with_params_merged() {
        let sim = LawRulerSim::new();
        sim.set_now(Some("2025-01-15T14:30:05Z".parse().unwrap()));
        let id = sim
            .create_lead(NewLead {
                email: Some("ann@example.com".into()),
                ..NewLead::new("Ann", "Lee", "12")
            })
            .unwrap();
        let lead = sim.lead(&id).unwrap();
        let fields = webhook_fields(
            &lead,
            &[
                ("list_id".into(), "123".into()),
                ("Status".into(), "Overridden".into()),
            ],
        );
        let names: Vec<&str> = fields.iter().map(|(k, _)| k.as_str()).collect();
        let mut expected = WEBHOOK_FIELDS.to_vec();
        expected.push("list_id");
        assert_eq!(names, expected);
        let get = |k: &str| fields.iter().find(|(n, _)| n == k).unwrap().1.as_str();
        assert_eq!(get("Created Date"), "01/15/2025 02:30:05 PM");
        assert_eq!(get("Full Name"), "Ann Lee");
        assert_eq!(get("Case Type"), "Auto Accident");
        assert_eq!(get("Status"), "Overridden");
        assert_eq!(get("Cell Phone"), "");
        assert_eq!(get("list_id"), "123");
    }

    #[test]
    fn webhook_targets_are_loopback_unless_allowed() {
        for ok in [
            "http://127.0.0.1:8080/hooks/lawruler/t",
            "http://localhost/x",
            "https://[::1]:9/x",
        ] {
            assert!(check_target(ok, false).is_ok(), "{ok}");
        }
        for refused in [
            "http://10.0.0.5/x",
            "https://hooks.example.com/x",
            "ftp://127.0.0.1/x",
            "nope",
        ] {
            assert!(check_target(refused, false).is_err(), "{refused}");
        }
        assert!(check_target("https://hooks.example.com/x", true).is_ok());
        assert!(check_target("ftp://hooks.example.com/x", true).is_err());
    }

    #[test]
    fn faults_patch_changes_only_what_is_given() {
        let sim = LawRulerSim::new();
        sim.fail_5xx(2);
        sim.patch_faults(serde_json::from_str(r#"{"wrong_key": true}"#).unwrap());
        assert_eq!(
            sim.faults(),
            Faults {
                fail_5xx: 2,
                wrong_key: true,
                ..Faults::default()
            }
        );
        sim.patch_faults(
            serde_json::from_str(r#"{"rate_limit": {"retry_after": 2, "count": 0}}"#).unwrap(),
        );
        assert_eq!(sim.faults().rate_limit, None);
        assert!(serde_json::from_str::<FaultsPatch>(r#"{"fail5xx": 1}"#).is_err());
    }
}
