//! A SmartAdvocate CaseSyncAPI tenant in memory, for tests and for `casebridge sim smartadvocate`.
//!
//! Everything is served under `/CaseSyncAPI`. Documented by SmartAdvocate (strict here as the
//! real API is known to be):
//! - `POST /Users/authenticate`, JSON `{"Username","Password"}` (names and values
//!   case-sensitive) → `{"username","userID","token"}`. The token is an HS256 JWT with `iat`,
//!   `exp` (= `iat` + the token lifetime, 2 hours unless configured), `iss`
//!   "SmartAdvocateSim", `unique_name` and `jti`. Wrong values → `400
//!   {"message":"Username or password is incorrect"}` (the API does not say which).
//! - Every other endpoint needs `Authorization: Bearer <token>` (exactly that prefix);
//!   missing, malformed, expired or revoked → `401 {"message":"Unauthorized"}`.
//! - `GET /case/CaseInfo?Casenumber=` — SQL `LIKE` on the case number (`%` matches any run of
//!   characters, `_` one), answered as an **array** of `caseID, caseNumber, caseTypeID,
//!   caseType, caseStatusID, caseStatus, caseStatusFrom, officeID, officeName, plaintiffs[],
//!   secondStatuses[{statusID, statusTypeID, fromDate, statusTypeName, statusName}],
//!   createdDate, modifiedDate`.
//! - `GET /case/notes/byCaseNumber?CaseNumber=` — the case's notes (HTML `noteText`).
//! - `GET /case/{caseId}/notes` — the same notes by the case's id; an unknown id → `404
//!   {"message":"Case not found"}` (as the other reads of one case).
//!
//! Seen in public client code: `GET /Search/contactLookup?Name=&FirstName=&LastName=&FirstPage=1
//! &RowLimit=10` → `[{contactID, firstName, lastName, email, phone, address1, city, state,
//! zip}]` (case-insensitive "contains" on the names).
//! - `GET /case/{caseId}/contacts` → the case's contacts `[{contactID, firstName, lastName,
//!   email, phone, address1, city, state, zip, role, primary}]` (the plaintiff, role
//!   "Plaintiff"); an unknown id → `404`.
//! - `POST /case/CreateCase` JSON with the intake fields public code sends (`firstName,
//!   lastName, phone, email, summary, address, city, state, zip, intakeDate, dob, gender,
//!   caseType, CaseTypeID, OfficeID`, …) → `200 {"caseID","caseNumber"}`. `firstName` and
//!   `lastName` are required, one of `email` or `phone` too; a text field that is not a string,
//!   an id that is not a whole number, or an unknown `CaseTypeID` is a `400` naming it. As
//!   SmartAdvocate documents for its Simple HTTP POST (whether `CreateCase` does the same is
//!   modelled): when a case created in the last 3 days ([`SmartAdvocateSimBuilder::dedupe_window`])
//!   has a plaintiff with the same email (any case) or phone (digits only), the answer is *that*
//!   case, in the same shape, and nothing is created. A new case gets the next number, the
//!   first status of "Status", and a new plaintiff contact.
//!
//! **Modelled** (no public path; casebridge's `SmartAdvocatePaths` holds the same defaults):
//! - `POST /case/{caseId}/notes` JSON `{noteTypeID, noteText, noteDate, subject, priority}` →
//!   `201 {"noteID"}`; no `noteText` → `400`; unknown case → `404`.
//! - `GET /case/CaseTypes` → `[{caseTypeID, caseTypeName}]`.
//! - `GET /case/StatusTypes` → `[{statusTypeID, statusTypeName}]`; the type named "Status" is
//!   the primary status (as in SmartAdvocate's own conversion scripts), the others are second
//!   statuses ("Dialer Status", …).
//! - `GET /case/StatusTypes/{statusTypeId}/Statuses` → `[{statusID, statusName}]`.
//! - `GET /case/CaseTypes/{caseTypeId}/UDFs` → `[{udfID, udfName, udfShortName, udfType,
//!   udfGroup}]` (the user-defined fields of a case type).
//! - `GET /case/{caseId}/UDFs` → `[{udfID, udfName, value}]`.
//! - `CaseInfo` with `&AddContactInfo=true` (seen in code; its shape is modelled): each
//!   plaintiff also carries `firstName, lastName, email, phone`.
//! - "Changed since" searches, shaped like the documented `POST /case/documents/byDatePaged`:
//!   `POST /case/byDatePaged` (cases, as `CaseInfo` records; `addContactInfo: true` as above),
//!   `POST /case/notes/byDatePaged` (notes with `modifiedDate`), `POST /contact/byDatePaged`
//!   (contacts with `modifiedDate`). Body `{modifiedFromDateTime, modifiedToDateTime (optional),
//!   pageRequest{currentPage (from 0), pageSize (1–500)}}`; times are SmartAdvocate's
//!   `2025-01-01T09:30:00` (no offset; UTC here), compared at the second, both ends inclusive;
//!   records oldest change first (ties by id); answer `{records, pageRequest{currentPage,
//!   pageSize, totalRecords}}`.
//!
//! Seen in public client code (the documents of a case):
//! - `POST /case/documents/byDatePaged` with `{modifiedFromDateTime, modifiedToDateTime
//!   (optional), caseNumbers[] (optional: only these cases), pageRequest{currentPage, pageSize}}`
//!   (checked as the searches above) → `{documents: [{documentID, caseID, caseNumber,
//!   documentName, description, createdDate, modifiedDate, categoryID, categoryName,
//!   subCategoryName, comments, caseDocumentID, documentFolder}], pageRequest{…}}`.
//! - `GET /case/document/{documentID}/content` → the raw bytes as `application/octet-stream`
//!   (whatever the file is; zero bytes for an empty document); an unknown id → `404`.
//!
//! Other answers: `403 {"message":"You do not have permission to <operation>"}` for an operation
//! the API user is denied, `404 {"message"}`, `429` with `Retry-After`, `503`.
//!
//! Controls (no auth; never faulted, never logged) under `/_sim/`: `GET|DELETE /_sim/requests`,
//! `GET|POST|DELETE /_sim/faults` (see [`Faults`]), `POST /_sim/tokens/expire` (every token
//! issued so far is expired from now: a token expiry in the middle of a run), `GET /_sim/cases`,
//! `GET /_sim/documents` (metadata and size) and `POST /_sim/documents` (seeds one: `{caseNumber,
//! documentName, contentBase64, description?, categoryName?, modifiedDate?}` → `201
//! {documentID}`; the case must exist).

mod http;
mod jwt;
mod seed;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub use seed::{DEMO_PASSWORD, DEMO_USERNAME, PRIMARY_STATUS_TYPE};

/// The API user the simulated tenant accepts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SimUser {
    pub username: String,
    pub password: String,
    pub user_id: u64,
}

/// An operation of the API, by the name faults and the request log use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Operation {
    Authenticate,
    CaseInfo,
    NotesByCaseNumber,
    InsertNote,
    CaseTypes,
    StatusTypes,
    Statuses,
    Udfs,
    CaseUdfs,
    ContactLookup,
    /// Modelled: `PUT /case/{case_id}/status` with `{statusTypeID, statusID}` sets the current
    /// value of one status type (the primary "Status" or a second status).
    SetStatus,
    /// Modelled: `PUT /case/{case_id}/UDFs` with `[{udfName, value}]`; names match exactly.
    SetUdfs,
    /// Modelled: `POST /case/byDatePaged`, cases modified in a time range, paged.
    CasesByDate,
    /// Modelled: `POST /case/notes/byDatePaged`, notes modified in a time range, paged.
    NotesByDate,
    /// Modelled: `POST /contact/byDatePaged`, contacts modified in a time range, paged.
    ContactsByDate,
    /// Seen in code: `POST /case/documents/byDatePaged`, documents modified in a time range,
    /// paged.
    DocumentsByDate,
    /// Seen in code: `GET /case/document/{document_id}/content`, a document's bytes.
    DocumentContent,
    /// Documented: `GET /case/{case_id}/notes`, a case's notes by its id.
    NotesByCaseId,
    /// Seen in code: `POST /case/CreateCase`, a new case (or the recent case of the same email
    /// or phone).
    CreateCase,
    /// Seen in code: `GET /case/{case_id}/contacts`, the contacts of a case.
    CaseContacts,
}

impl Operation {
    /// What the API user lacks permission for, in the 403's words.
    pub fn label(self) -> &'static str {
        match self {
            Self::Authenticate => "authenticate",
            Self::CaseInfo => "read cases",
            Self::NotesByCaseNumber => "read notes",
            Self::InsertNote => "insert note",
            Self::CaseTypes => "read case types",
            Self::StatusTypes => "read status types",
            Self::Statuses => "read statuses",
            Self::Udfs => "read UDF definitions",
            Self::CaseUdfs => "read UDF values",
            Self::ContactLookup => "look up contacts",
            Self::SetStatus => "update case statuses",
            Self::SetUdfs => "update UDF values",
            Self::CasesByDate => "search cases by date",
            Self::NotesByDate => "search notes by date",
            Self::ContactsByDate => "search contacts by date",
            Self::DocumentsByDate => "search documents by date",
            Self::DocumentContent => "read document content",
            Self::NotesByCaseId => "read notes",
            Self::CreateCase => "create cases",
            Self::CaseContacts => "read case contacts",
        }
    }
}

/// A case type.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SimCaseType {
    #[serde(rename = "caseTypeID")]
    pub case_type_id: u64,
    pub case_type_name: String,
}

/// A status value of one status type.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SimStatus {
    #[serde(rename = "statusID")]
    pub status_id: u64,
    pub status_name: String,
}

/// A status type and its values. [`PRIMARY_STATUS_TYPE`] is the primary status.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SimStatusType {
    #[serde(rename = "statusTypeID")]
    pub status_type_id: u64,
    pub status_type_name: String,
    #[serde(skip)]
    pub statuses: Vec<SimStatus>,
}

/// A user-defined field of a case type.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SimUdf {
    #[serde(rename = "udfID")]
    pub udf_id: u64,
    pub udf_name: String,
    pub udf_short_name: Option<String>,
    /// `Text`, `Date`, `Number`, `YesNo` or `List`.
    pub udf_type: String,
    pub udf_group: String,
}

/// A contact (a plaintiff of a case, among others).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SimContact {
    #[serde(rename = "contactID")]
    pub contact_id: u64,
    pub first_name: String,
    pub last_name: String,
    pub email: Option<String>,
    pub phone: Option<String>,
    pub address1: Option<String>,
    pub city: Option<String>,
    pub state: Option<String>,
    pub zip: Option<String>,
    /// When the contact last changed (the modelled contacts-by-date search reads it).
    #[serde(skip, default = "epoch")]
    pub modified: Timestamp,
}

fn epoch() -> Timestamp {
    Timestamp::UNIX_EPOCH
}

/// The current value of one second-status type on a case.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SimSecondStatus {
    pub status_type_id: u64,
    pub status_id: u64,
    pub from: Timestamp,
}

/// A note on a case.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SimNote {
    pub note_id: u64,
    pub note_type_id: u64,
    pub subject: String,
    /// HTML.
    pub note_text: String,
    pub priority: String,
    pub note_date: Timestamp,
    pub created: Timestamp,
    /// When the note last changed (the modelled notes-by-date search reads it).
    pub modified: Timestamp,
}

/// A case.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SimCase {
    pub case_id: u64,
    pub case_number: String,
    pub case_type_id: u64,
    /// A status of [`PRIMARY_STATUS_TYPE`].
    pub status_id: u64,
    pub status_from: Timestamp,
    pub second_statuses: Vec<SimSecondStatus>,
    pub plaintiff_contact_id: u64,
    /// UDF id → value.
    pub udf_values: BTreeMap<u64, String>,
    pub notes: Vec<SimNote>,
    pub created: Timestamp,
    pub modified: Timestamp,
}

/// A document of a case. Its bytes are answered as they are, whatever the file is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SimDocument {
    pub document_id: u64,
    /// The case's number (the case must exist when the document is added).
    pub case_number: String,
    pub document_name: String,
    pub description: String,
    pub category_id: u64,
    pub category_name: String,
    pub sub_category_name: String,
    pub comments: String,
    pub document_folder: String,
    #[serde(skip)]
    pub content: Vec<u8>,
    pub created: Timestamp,
    /// When the document last changed (the documents-by-date search reads it).
    pub modified: Timestamp,
}

impl SimDocument {
    /// A document named `name` holding `content`, created and modified now, in the "General"
    /// category; [`SmartAdvocateSim::add_document`] gives it its id.
    pub fn new(case_number: &str, name: &str, content: impl Into<Vec<u8>>) -> Self {
        let now = Timestamp::now();
        Self {
            document_id: 0,
            case_number: case_number.to_owned(),
            document_name: name.to_owned(),
            description: String::new(),
            category_id: 1,
            category_name: "General".into(),
            sub_category_name: String::new(),
            comments: String::new(),
            document_folder: "Documents".into(),
            content: content.into(),
            created: now,
            modified: now,
        }
    }
}

/// One request to a CaseSyncAPI endpoint, as received (the `/_sim/` controls are not logged).
/// Passwords and tokens appear as sent: this is a test tool for checking exactly what
/// casebridge sends.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LoggedRequest {
    /// Arrival order, from 1.
    pub seq: u64,
    pub at: Timestamp,
    pub method: String,
    /// The path after `/CaseSyncAPI`.
    pub path: String,
    /// The operation, when the path is one.
    pub operation: Option<Operation>,
    pub query: Vec<(String, String)>,
    /// Header names in lower case, in order.
    pub headers: Vec<(String, String)>,
    pub json: Option<Value>,
    /// The status answered (faults included).
    pub status: u16,
}

impl LoggedRequest {
    /// A header's value (`name` in any case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Answer the next `count` requests (of `operation` only, when given) with `429` and
/// `Retry-After: retry_after`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimitFault {
    /// Seconds.
    pub retry_after: u64,
    pub count: u32,
    #[serde(default)]
    pub operation: Option<Operation>,
}

/// Injected failures. Every CaseSyncAPI request waits `slow_ms`, then may get the rate limit,
/// then a `503` (`fail_5xx`); then `denied` operations answer `403` (after the token check);
/// then the next `empty_bodies` JSON answers that would have been `200` with a body are `200`
/// with an empty body (not for `authenticate`, nor document content, whose zero-byte body is a
/// real answer: an empty document).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Faults {
    pub rate_limit: Option<RateLimitFault>,
    pub fail_5xx: u32,
    pub slow_ms: u64,
    /// Operations the API user lacks permission for.
    pub denied: Vec<Operation>,
    pub empty_bodies: u32,
}

/// A change to [`Faults`], as `POST /_sim/faults` takes it: only the keys given change.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FaultsPatch {
    /// `count: 0` removes the rate limit.
    pub rate_limit: Option<RateLimitFault>,
    pub fail_5xx: Option<u32>,
    pub slow_ms: Option<u64>,
    pub denied: Option<Vec<Operation>>,
    pub empty_bodies: Option<u32>,
}

#[derive(Debug)]
struct State {
    user: SimUser,
    /// The HS256 key tokens are signed with (random per simulator).
    jwt_key: Vec<u8>,
    token_ttl: Duration,
    /// Tokens with a `jti` below this are expired (`/_sim/tokens/expire`).
    first_valid_jti: u64,
    next_jti: u64,
    case_types: Vec<SimCaseType>,
    status_types: Vec<SimStatusType>,
    udfs: BTreeMap<u64, Vec<SimUdf>>,
    contacts: Vec<SimContact>,
    cases: Vec<SimCase>,
    /// `CreateCase` answers the existing case when one with the same email or phone was created
    /// this recently (3 days, as SmartAdvocate's Simple HTTP POST).
    dedupe_window: Duration,
    next_case_id: u64,
    next_contact_id: u64,
    next_note_id: u64,
    documents: Vec<SimDocument>,
    next_document_id: u64,
    requests: Vec<LoggedRequest>,
    next_seq: u64,
    faults: Faults,
}

impl State {
    fn case_type(&self, id: u64) -> Option<&SimCaseType> {
        self.case_types.iter().find(|c| c.case_type_id == id)
    }

    fn status_type(&self, id: u64) -> Option<&SimStatusType> {
        self.status_types.iter().find(|t| t.status_type_id == id)
    }

    fn primary_type(&self) -> Option<&SimStatusType> {
        self.status_types
            .iter()
            .find(|t| t.status_type_name == PRIMARY_STATUS_TYPE)
    }

    fn status_name(&self, type_id: u64, status_id: u64) -> Option<(&str, &str)> {
        let t = self.status_type(type_id)?;
        let s = t.statuses.iter().find(|s| s.status_id == status_id)?;
        Some((t.status_type_name.as_str(), s.status_name.as_str()))
    }

    fn contact(&self, id: u64) -> Option<&SimContact> {
        self.contacts.iter().find(|c| c.contact_id == id)
    }

    fn case_by_number(&self, number: &str) -> Option<&SimCase> {
        self.cases.iter().find(|c| c.case_number == number)
    }

    /// Adds a document to an existing case, giving it the next id.
    fn add_document(&mut self, mut doc: SimDocument) -> Option<u64> {
        self.case_by_number(&doc.case_number)?;
        doc.document_id = self.next_document_id;
        self.next_document_id += 1;
        let id = doc.document_id;
        self.documents.push(doc);
        Some(id)
    }
}

/// Builds a [`SmartAdvocateSim`]; [`SmartAdvocateSim::builder`] starts from the demo seed.
#[derive(Debug, Clone)]
pub struct SmartAdvocateSimBuilder {
    user: SimUser,
    token_ttl: Duration,
    dedupe_window: Duration,
    case_types: Vec<SimCaseType>,
    status_types: Vec<SimStatusType>,
    udfs: BTreeMap<u64, Vec<SimUdf>>,
    contacts: Vec<SimContact>,
    cases: Vec<SimCase>,
}

impl SmartAdvocateSimBuilder {
    pub fn user(mut self, username: &str, password: &str) -> Self {
        self.user.username = username.to_owned();
        self.user.password = password.to_owned();
        self
    }

    /// How long tokens live (default 2 hours, as SmartAdvocate's example token); seconds for
    /// tests of token refresh.
    pub fn token_ttl(mut self, ttl: Duration) -> Self {
        self.token_ttl = ttl;
        self
    }

    /// How recent a case with the same email or phone must be for `CreateCase` to answer it
    /// instead of creating one (default 3 days, as SmartAdvocate documents for its Simple HTTP
    /// POST; zero turns the dedupe off).
    pub fn dedupe_window(mut self, window: Duration) -> Self {
        self.dedupe_window = window;
        self
    }

    pub fn case_type(mut self, id: u64, name: &str) -> Self {
        self.case_types.push(SimCaseType {
            case_type_id: id,
            case_type_name: name.to_owned(),
        });
        self
    }

    /// A status type with its values (`(id, name)`).
    pub fn status_type(mut self, id: u64, name: &str, statuses: &[(u64, &str)]) -> Self {
        self.status_types.push(SimStatusType {
            status_type_id: id,
            status_type_name: name.to_owned(),
            statuses: statuses
                .iter()
                .map(|(id, n)| SimStatus {
                    status_id: *id,
                    status_name: (*n).to_owned(),
                })
                .collect(),
        });
        self
    }

    pub fn udf(mut self, case_type_id: u64, udf: SimUdf) -> Self {
        self.udfs.entry(case_type_id).or_default().push(udf);
        self
    }

    pub fn contact(mut self, contact: SimContact) -> Self {
        self.contacts.push(contact);
        self
    }

    pub fn case(mut self, case: SimCase) -> Self {
        self.cases.push(case);
        self
    }

    pub fn build(self) -> SmartAdvocateSim {
        let next_case_id = self
            .cases
            .iter()
            .map(|c| c.case_id + 1)
            .max()
            .unwrap_or(1001);
        let next_contact_id = self
            .contacts
            .iter()
            .map(|c| c.contact_id + 1)
            .max()
            .unwrap_or(7001);
        let state = State {
            next_case_id,
            next_contact_id,
            user: self.user,
            jwt_key: uuid::Uuid::new_v4().as_bytes().to_vec(),
            token_ttl: self.token_ttl,
            first_valid_jti: 1,
            next_jti: 1,
            case_types: self.case_types,
            status_types: self.status_types,
            udfs: self.udfs,
            contacts: self.contacts,
            cases: self.cases,
            dedupe_window: self.dedupe_window,
            next_note_id: 900_001,
            documents: Vec::new(),
            next_document_id: 300_001,
            requests: Vec::new(),
            next_seq: 1,
            faults: Faults::default(),
        };
        SmartAdvocateSim {
            inner: Arc::new(Mutex::new(state)),
        }
    }
}

/// The simulated tenant and its controls. Clones share one state, so a test keeps a clone
/// while the server runs.
#[derive(Debug, Clone)]
pub struct SmartAdvocateSim {
    inner: Arc<Mutex<State>>,
}

impl Default for SmartAdvocateSim {
    fn default() -> Self {
        Self::new()
    }
}

impl SmartAdvocateSim {
    /// The demo seed (see [`seed`]): user `demo` / `Demo-Password`; case types, the primary
    /// "Status" type, the four dialer status types, UDFs per case type, two cases.
    pub fn new() -> Self {
        Self::builder().build()
    }

    pub fn builder() -> SmartAdvocateSimBuilder {
        seed::demo()
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// What a person trying the simulator needs (printed by `casebridge sim smartadvocate`).
    pub fn describe(&self) -> Value {
        let st = self.state();
        serde_json::json!({
            "username": st.user.username,
            "password": st.user.password,
            "token_lifetime_secs": st.token_ttl.as_secs(),
            "case_types": st.case_types,
            "status_types": st.status_types.iter().map(|t| serde_json::json!({
                "statusTypeID": t.status_type_id,
                "statusTypeName": t.status_type_name,
                "statuses": t.statuses,
            })).collect::<Vec<_>>(),
            "cases": st.cases.iter().map(|c| &c.case_number).collect::<Vec<_>>(),
            "documents": st.documents.len(),
        })
    }

    pub fn user(&self) -> SimUser {
        self.state().user.clone()
    }

    pub fn case_types(&self) -> Vec<SimCaseType> {
        self.state().case_types.clone()
    }

    /// Status types with their values.
    pub fn status_types(&self) -> Vec<SimStatusType> {
        self.state().status_types.clone()
    }

    pub fn udfs(&self, case_type_id: u64) -> Vec<SimUdf> {
        self.state()
            .udfs
            .get(&case_type_id)
            .cloned()
            .unwrap_or_default()
    }

    pub fn cases(&self) -> Vec<SimCase> {
        self.state().cases.clone()
    }

    pub fn contacts(&self) -> Vec<SimContact> {
        self.state().contacts.clone()
    }

    /// Changes a case as a SmartAdvocate user would: its `modified` becomes now, then `edit`
    /// runs (so a test may set `modified` to an exact time). Returns false for an unknown number.
    pub fn edit_case(&self, number: &str, edit: impl FnOnce(&mut SimCase)) -> bool {
        let mut st = self.state();
        let Some(case) = st.cases.iter_mut().find(|c| c.case_number == number) else {
            return false;
        };
        case.modified = Timestamp::now();
        edit(case);
        true
    }

    /// Adds a case (a user creating one in SmartAdvocate).
    pub fn add_case(&self, case: SimCase) {
        let mut st = self.state();
        st.next_case_id = st.next_case_id.max(case.case_id + 1);
        st.cases.push(case);
    }

    /// Changes a contact: its `modified` becomes now, then `edit` runs. False for an unknown id.
    pub fn edit_contact(&self, id: u64, edit: impl FnOnce(&mut SimContact)) -> bool {
        let mut st = self.state();
        let Some(contact) = st.contacts.iter_mut().find(|c| c.contact_id == id) else {
            return false;
        };
        contact.modified = Timestamp::now();
        edit(contact);
        true
    }

    /// Adds a contact.
    pub fn add_contact(&self, contact: SimContact) {
        let mut st = self.state();
        st.next_contact_id = st.next_contact_id.max(contact.contact_id + 1);
        st.contacts.push(contact);
    }

    /// Adds a note (HTML `text`) to the case with `number`, created and modified now; returns
    /// its id, or `None` for an unknown number.
    pub fn add_note(&self, number: &str, subject: &str, text: &str) -> Option<u64> {
        let mut st = self.state();
        let note_id = st.next_note_id;
        let now = Timestamp::now();
        let case = st.cases.iter_mut().find(|c| c.case_number == number)?;
        case.notes.push(SimNote {
            note_id,
            note_type_id: 1,
            subject: subject.to_owned(),
            note_text: text.to_owned(),
            priority: "Normal".into(),
            note_date: now,
            created: now,
            modified: now,
        });
        st.next_note_id += 1;
        Some(note_id)
    }

    /// Changes a note: its `modified` becomes now, then `edit` runs. False for an unknown id.
    pub fn edit_note(&self, note_id: u64, edit: impl FnOnce(&mut SimNote)) -> bool {
        let mut st = self.state();
        let Some(note) = st
            .cases
            .iter_mut()
            .flat_map(|c| c.notes.iter_mut())
            .find(|n| n.note_id == note_id)
        else {
            return false;
        };
        note.modified = Timestamp::now();
        edit(note);
        true
    }

    /// Adds a document (a user filing one in SmartAdvocate) to the case with `doc.case_number`;
    /// returns its new id, or `None` for an unknown case number.
    pub fn add_document(&self, doc: SimDocument) -> Option<u64> {
        self.state().add_document(doc)
    }

    /// Changes a document: its `modified` becomes now, then `edit` runs. False for an unknown id.
    pub fn edit_document(&self, document_id: u64, edit: impl FnOnce(&mut SimDocument)) -> bool {
        let mut st = self.state();
        let Some(doc) = st
            .documents
            .iter_mut()
            .find(|d| d.document_id == document_id)
        else {
            return false;
        };
        doc.modified = Timestamp::now();
        edit(doc);
        true
    }

    /// Every document, with its bytes.
    pub fn documents(&self) -> Vec<SimDocument> {
        self.state().documents.clone()
    }

    /// Every request to a CaseSyncAPI endpoint so far, in arrival order.
    pub fn requests(&self) -> Vec<LoggedRequest> {
        let mut r = self.state().requests.clone();
        r.sort_by_key(|r| r.seq);
        r
    }

    /// The logged requests of one operation.
    pub fn requests_of(&self, op: Operation) -> Vec<LoggedRequest> {
        self.requests()
            .into_iter()
            .filter(|r| r.operation == Some(op))
            .collect()
    }

    pub fn clear_requests(&self) {
        self.state().requests.clear();
    }

    /// How many tokens were issued.
    pub fn tokens_issued(&self) -> u64 {
        self.state().next_jti - 1
    }

    /// Every token issued so far is expired from now on.
    pub fn expire_tokens(&self) {
        let mut st = self.state();
        st.first_valid_jti = st.next_jti;
    }

    pub fn faults(&self) -> Faults {
        self.state().faults.clone()
    }

    pub fn patch_faults(&self, patch: FaultsPatch) {
        let mut st = self.state();
        let f = &mut st.faults;
        if let Some(rl) = patch.rate_limit {
            f.rate_limit = (rl.count > 0).then_some(rl);
        }
        if let Some(n) = patch.fail_5xx {
            f.fail_5xx = n;
        }
        if let Some(ms) = patch.slow_ms {
            f.slow_ms = ms;
        }
        if let Some(d) = patch.denied {
            f.denied = d;
        }
        if let Some(n) = patch.empty_bodies {
            f.empty_bodies = n;
        }
    }

    pub fn clear_faults(&self) {
        self.state().faults = Faults::default();
    }

    /// The API user lacks permission for `op` (403) from now on.
    pub fn deny(&self, op: Operation) {
        let mut st = self.state();
        if !st.faults.denied.contains(&op) {
            st.faults.denied.push(op);
        }
    }

    pub fn rate_limit(&self, retry_after_secs: u64, count: u32) {
        self.patch_faults(FaultsPatch {
            rate_limit: Some(RateLimitFault {
                retry_after: retry_after_secs,
                count,
                operation: None,
            }),
            ..FaultsPatch::default()
        });
    }

    /// The next `count` requests of `op` answer `429` (other operations are not limited).
    pub fn rate_limit_on(&self, op: Operation, retry_after_secs: u64, count: u32) {
        self.patch_faults(FaultsPatch {
            rate_limit: Some(RateLimitFault {
                retry_after: retry_after_secs,
                count,
                operation: Some(op),
            }),
            ..FaultsPatch::default()
        });
    }

    pub fn fail_5xx(&self, count: u32) {
        self.state().faults.fail_5xx = count;
    }

    pub fn slow(&self, delay: Duration) {
        self.state().faults.slow_ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX);
    }

    pub fn empty_bodies(&self, count: u32) {
        self.state().faults.empty_bodies = count;
    }

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

/// A simulator serving on a local port; stops when dropped.
#[derive(Debug)]
pub struct RunningSim {
    pub sim: SmartAdvocateSim,
    pub addr: SocketAddr,
    /// `http://127.0.0.1:<port>`: the base URL to connect with (the host, without
    /// `/CaseSyncAPI`).
    pub base_url: String,
    pub handle: JoinHandle<std::io::Result<()>>,
    shutdown: CancellationToken,
}

impl Drop for RunningSim {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

/// Serves the simulator on `listener` until the process ends (for `casebridge sim
/// smartadvocate`).
pub async fn serve(listener: TcpListener, sim: SmartAdvocateSim) -> std::io::Result<()> {
    serve_until(listener, sim, CancellationToken::new()).await
}

/// Serves until `shutdown` is cancelled, then stops accepting and finishes open requests.
pub async fn serve_until(
    listener: TcpListener,
    sim: SmartAdvocateSim,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    axum::serve(listener, http::router(sim))
        .with_graceful_shutdown(async move { shutdown.cancelled().await })
        .await
}
