//! The SmartAdvocate CaseSyncAPI client.
//!
//! Fact (SmartAdvocate's knowledge base): `POST {base}/CaseSyncAPI/Users/authenticate` with
//! JSON `{"Username","Password"}` answers `{"username","userID","token"}`; later calls send
//! `Authorization: Bearer <token>`; the example token is a JWT whose `exp` is 2 hours after its
//! `iat`; `GET /case/CaseInfo?Casenumber=` answers an array (the number acts as SQL `LIKE`).
//! Model: every path in [`SmartAdvocatePaths`] marked so, the JSON shapes of the catalog, and
//! `403` meaning "the API user lacks permission" (the API user is a real SmartAdvocate user
//! whose rights limit what it may do).
//!
//! The token is kept in memory only, behind a lock: refreshed before `exp` (5 minutes before,
//! or a quarter of its lifetime when that is shorter; a token whose `exp` cannot be read is
//! assumed to live one hour), and fetched again once when SmartAdvocate answers `401`. A second
//! `401` is a configuration error. No secret is ever put in an error, a log line or `Debug`.
//! Every outcome is classified as a [`SmartAdvocateError`]; retries, ordering and rate limits
//! are the caller's. The `reqwest::Client` is the caller's (in casebridge the SSRF-safe one).

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use bytes::Bytes;
use casebridge_webhooks::policy::UrlPolicy;
use futures::stream::BoxStream;
use futures::{StreamExt, TryStreamExt};
use jiff::Timestamp;
use reqwest::header::{CONTENT_TYPE, RETRY_AFTER};
use reqwest::{RequestBuilder, StatusCode};
use secrecy::{ExposeSecret, SecretString};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer};
use tokio::sync::Mutex;
use tokio::time::Instant;
use url::Url;

use crate::connector::PlannedRequest;

pub use super::paths::SmartAdvocatePaths;

/// Token lifetime assumed when `exp` cannot be read.
const DEFAULT_TOKEN_LIFETIME: Duration = Duration::from_secs(3600);
/// A token is replaced this long before its `exp` (at most a quarter of its lifetime).
const TOKEN_REFRESH_MARGIN: Duration = Duration::from_secs(300);
/// Longer lifetimes are not believed.
const MAX_TOKEN_LIFETIME: Duration = Duration::from_secs(24 * 3600);
/// The part of every path after the base URL.
pub const API_ROOT: &str = "/CaseSyncAPI";

/// The values an admin enters to connect SmartAdvocate.
#[derive(Clone)]
pub struct Credentials {
    /// As typed; see [`normalize_base_url`].
    pub base_url: String,
    pub username: String,
    pub password: SecretString,
}

impl Credentials {
    pub fn new(
        base_url: impl Into<String>,
        username: impl Into<String>,
        password: impl Into<String>,
    ) -> Self {
        Self {
            base_url: base_url.into(),
            username: username.into(),
            password: SecretString::from(password.into()),
        }
    }
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("username", &self.username)
            .field("password", &"[redacted]")
            .finish_non_exhaustive()
    }
}

/// What went wrong, classified: configuration (`BaseUrl`, `WrongCredentials`,
/// `PermissionDenied`, `Config`), rate-limited, transient, rejected, or not understood.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SmartAdvocateError {
    /// The base URL is not usable, or does not answer like the CaseSyncAPI.
    #[error("{0}")]
    BaseUrl(String),
    /// SmartAdvocate did not accept the username and password (it does not say which).
    #[error("SmartAdvocate did not accept this username and password")]
    WrongCredentials,
    /// `403`: the API user lacks the right for `operation` (an admin grants it in SmartAdvocate).
    #[error("the API user lacks permission for {operation}")]
    PermissionDenied { operation: String },
    /// Another configuration problem (a token refused right after it was issued).
    #[error("SmartAdvocate configuration error: {0}")]
    Config(String),
    /// `429`; retry after `retry_after` when SmartAdvocate said.
    #[error("SmartAdvocate rate limit reached{}", retry_after.map(|d| format!(" (retry after {} s)", d.as_secs())).unwrap_or_default())]
    RateLimited { retry_after: Option<Duration> },
    /// 5xx, 408, a timeout, a connection failure, or `200` with an empty body: worth retrying.
    #[error("SmartAdvocate is unavailable: {0}")]
    Transient(String),
    /// SmartAdvocate understood and refused (`400`, `404`, …): the same request cannot succeed.
    #[error("SmartAdvocate rejected the request: {0}")]
    Rejected(String),
    /// An answer this client does not understand.
    #[error("unexpected answer from SmartAdvocate: {0}")]
    Unexpected(String),
}

impl SmartAdvocateError {
    /// Whether the same request may succeed later.
    pub fn is_retryable(&self) -> bool {
        matches!(self, Self::RateLimited { .. } | Self::Transient(_))
    }

    /// Whether the connection itself needs an admin.
    pub fn is_config(&self) -> bool {
        matches!(
            self,
            Self::BaseUrl(_)
                | Self::WrongCredentials
                | Self::PermissionDenied { .. }
                | Self::Config(_)
        )
    }
}

/// Turns a base URL as typed into the one every path is built on: `https://host[/prefix]`
/// without a trailing slash and without `/CaseSyncAPI` (both are accepted and removed). A
/// bare host gets `https://`. Credentials in the URL, a query, and schemes other than http(s)
/// are refused; whether plain http or a private address may be reached is the HTTP client's
/// policy.
pub fn normalize_base_url(raw: &str) -> Result<Url, String> {
    let raw = raw.trim();
    if raw.is_empty() {
        return Err("the base URL is empty".into());
    }
    let full = if raw.contains("://") {
        raw.to_owned()
    } else {
        format!("https://{raw}")
    };
    let mut url =
        Url::parse(&full).map_err(|e| format!("the base URL is not a valid address: {e}"))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(format!(
            "the base URL must be an http or https address, not {}:",
            url.scheme()
        ));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err("the base URL has no host".into());
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err("the base URL must not contain a user name or password".into());
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err("the base URL must not have a query (?…) or fragment (#…)".into());
    }
    let mut path = url.path().trim_end_matches('/').to_owned();
    if path
        .to_ascii_lowercase()
        .ends_with(&API_ROOT.to_ascii_lowercase())
    {
        path.truncate(path.len() - API_ROOT.len());
    }
    url.set_path(path.trim_end_matches('/'));
    Ok(url)
}

/// `{base}` as a string without the trailing `/` that `Url` keeps for an empty path.
fn base_str(base: &Url) -> String {
    base.as_str().trim_end_matches('/').to_owned()
}

/// A case type.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct CaseType {
    #[serde(rename = "caseTypeID", alias = "id", deserialize_with = "id_string")]
    pub id: String,
    #[serde(rename = "caseTypeName", alias = "description", alias = "name")]
    pub name: String,
}

/// A status type ("Status" is the primary one; the others hold second statuses).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct StatusType {
    #[serde(rename = "statusTypeID", alias = "id", deserialize_with = "id_string")]
    pub id: String,
    #[serde(rename = "statusTypeName", alias = "name")]
    pub name: String,
}

/// A value of a status type.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Status {
    #[serde(rename = "statusID", alias = "id", deserialize_with = "id_string")]
    pub id: String,
    #[serde(rename = "statusName", alias = "name")]
    pub name: String,
}

/// A user-defined field of a case type.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Udf {
    #[serde(rename = "udfID", alias = "id", deserialize_with = "id_string")]
    pub id: String,
    /// What values are matched by (exactly).
    pub udf_name: String,
    #[serde(default)]
    pub udf_short_name: Option<String>,
    #[serde(default)]
    pub udf_type: String,
    #[serde(default)]
    pub udf_group: String,
}

/// A current second status of a case.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SecondStatus {
    #[serde(rename = "statusID", deserialize_with = "id_string")]
    pub status_id: String,
    #[serde(default)]
    pub status_type_name: String,
    #[serde(default)]
    pub status_name: String,
    #[serde(default)]
    pub from_date: Option<String>,
}

/// A case, as `CaseInfo` answers.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CaseInfo {
    #[serde(rename = "caseID", deserialize_with = "id_string")]
    pub case_id: String,
    pub case_number: String,
    #[serde(rename = "caseTypeID", default, deserialize_with = "opt_id_string")]
    pub case_type_id: Option<String>,
    #[serde(default)]
    pub case_type: Option<String>,
    #[serde(rename = "caseStatusID", default, deserialize_with = "opt_id_string")]
    pub case_status_id: Option<String>,
    #[serde(default)]
    pub case_status: Option<String>,
    #[serde(default)]
    pub second_statuses: Vec<SecondStatus>,
    #[serde(default)]
    pub plaintiffs: Vec<Plaintiff>,
    /// SmartAdvocate's time, `2025-01-01T09:30:00` (no offset).
    #[serde(default)]
    pub created_date: Option<String>,
    #[serde(default)]
    pub modified_date: Option<String>,
}

/// A plaintiff of a case. The contact's names, email and phone come only when asked for
/// (`AddContactInfo`; their shape is modelled).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Plaintiff {
    #[serde(
        rename = "contactID",
        alias = "contactId",
        alias = "uniqueContactId",
        default,
        deserialize_with = "opt_id_string"
    )]
    pub contact_id: Option<String>,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub primary: Option<bool>,
    #[serde(default)]
    pub first_name: Option<String>,
    #[serde(default)]
    pub last_name: Option<String>,
    #[serde(default, alias = "emailAddress")]
    pub email: Option<String>,
    #[serde(default, alias = "phoneNumber", alias = "contactNumber")]
    pub phone: Option<String>,
}

/// A note as the notes reads answer (documented fields; `modifiedDate` is modelled).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Note {
    #[serde(rename = "noteID", deserialize_with = "id_string")]
    pub note_id: String,
    pub case_number: String,
    #[serde(default)]
    pub note_type_name: Option<String>,
    #[serde(default)]
    pub subject: Option<String>,
    /// HTML.
    #[serde(default)]
    pub note_text: Option<String>,
    #[serde(default)]
    pub note_date: Option<String>,
    #[serde(default)]
    pub created_date: Option<String>,
    #[serde(default)]
    pub modified_date: Option<String>,
}

/// A contact from the contacts search, with when it changed (modelled).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ChangedContact {
    #[serde(flatten)]
    pub contact: Contact,
    #[serde(default)]
    pub modified_date: Option<String>,
}

/// A document of a case, as the documents search answers (seen in public client code; every
/// field but the id and the case number may be missing or null).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Document {
    #[serde(
        rename = "documentID",
        alias = "documentId",
        alias = "id",
        deserialize_with = "id_string"
    )]
    pub document_id: String,
    #[serde(rename = "caseID", default, deserialize_with = "opt_id_string")]
    pub case_id: Option<String>,
    #[serde(deserialize_with = "id_string")]
    pub case_number: String,
    #[serde(default)]
    pub document_name: Option<String>,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub created_date: Option<String>,
    #[serde(default)]
    pub modified_date: Option<String>,
    #[serde(rename = "categoryID", default, deserialize_with = "opt_id_string")]
    pub category_id: Option<String>,
    #[serde(default)]
    pub category_name: Option<String>,
    #[serde(default)]
    pub sub_category_name: Option<String>,
    #[serde(default)]
    pub comments: Option<String>,
    #[serde(rename = "caseDocumentID", default, deserialize_with = "opt_id_string")]
    pub case_document_id: Option<String>,
    #[serde(default)]
    pub document_folder: Option<String>,
}

/// A document's bytes as SmartAdvocate sends them: the body, read as it arrives, and the
/// content type it claimed (often `application/octet-stream` whatever the file is).
pub struct DocumentContent {
    pub content_type: Option<String>,
    pub body: BoxStream<'static, Result<Bytes, String>>,
}

impl fmt::Debug for DocumentContent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DocumentContent")
            .field("content_type", &self.content_type)
            .finish_non_exhaustive()
    }
}

/// How long a documents search may take (public clients allow 60 s).
pub const DOCUMENT_SEARCH_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a document's content may take, from connecting to the last byte (public clients
/// allow 120 s; files run to hundreds of megabytes, so casebridge allows more).
pub const DOCUMENT_CONTENT_TIMEOUT: Duration = Duration::from_secs(600);

/// How many records a "changed since" search asks for per page.
pub const CHANGED_PAGE_SIZE: u64 = 100;
/// A "changed since" search stops after this many pages (a server that never runs out).
const MAX_CHANGED_PAGES: u64 = 10_000;

/// Reads one of SmartAdvocate's times: `2025-01-01T09:30:00` (optionally with fractions or an
/// offset). Times without an offset are taken as UTC (modelled: the tenant's zone is unknown).
pub fn parse_time(raw: &str) -> Option<Timestamp> {
    let raw = raw.trim();
    raw.parse::<Timestamp>().ok().or_else(|| {
        raw.parse::<jiff::civil::DateTime>()
            .ok()
            .and_then(|d| d.to_zoned(jiff::tz::TimeZone::UTC).ok())
            .map(|z| z.timestamp())
    })
}

/// A time as SmartAdvocate's searches take it: `2025-01-01T09:30:00` in UTC, to the second
/// (truncated, so the second `at` falls in is included).
pub fn format_time(at: Timestamp) -> String {
    at.to_zoned(jiff::tz::TimeZone::UTC)
        .strftime("%Y-%m-%dT%H:%M:%S")
        .to_string()
}

/// A search answer: a bare array, `{records}` or `{<anything>: [...], pageRequest}` (public
/// clients of the documents search accept all three).
fn records_of<T: DeserializeOwned>(what: &str, body: &str) -> Result<Vec<T>, SmartAdvocateError> {
    let v: serde_json::Value = serde_json::from_str(body).map_err(|e| {
        SmartAdvocateError::Unexpected(format!("{what}: answer not understood ({e})"))
    })?;
    let list = match v {
        serde_json::Value::Array(a) => a,
        serde_json::Value::Object(mut o) => match o.remove("records") {
            Some(serde_json::Value::Array(a)) => a,
            _ => o
                .into_iter()
                .find_map(|(k, v)| match v {
                    serde_json::Value::Array(a) if k != "pageRequest" => Some(a),
                    _ => None,
                })
                .ok_or_else(|| {
                    SmartAdvocateError::Unexpected(format!("{what}: the answer has no records"))
                })?,
        },
        _ => {
            return Err(SmartAdvocateError::Unexpected(format!(
                "{what}: the answer is not a list"
            )))
        }
    };
    list.into_iter()
        .map(|r| {
            serde_json::from_value(r).map_err(|e| {
                SmartAdvocateError::Unexpected(format!("{what}: a record not understood ({e})"))
            })
        })
        .collect()
}

/// The time a changed record's search orders it by.
pub trait Modified {
    fn modified(&self) -> Option<Timestamp>;
    fn key(&self) -> &str;
}

impl Modified for CaseInfo {
    fn modified(&self) -> Option<Timestamp> {
        self.modified_date.as_deref().and_then(parse_time)
    }
    fn key(&self) -> &str {
        &self.case_id
    }
}

impl Modified for Note {
    fn modified(&self) -> Option<Timestamp> {
        self.modified_date
            .as_deref()
            .or(self.created_date.as_deref())
            .and_then(parse_time)
    }
    fn key(&self) -> &str {
        &self.note_id
    }
}

impl Modified for Document {
    fn modified(&self) -> Option<Timestamp> {
        self.modified_date
            .as_deref()
            .or(self.created_date.as_deref())
            .and_then(parse_time)
    }
    fn key(&self) -> &str {
        &self.document_id
    }
}

impl Modified for ChangedContact {
    fn modified(&self) -> Option<Timestamp> {
        self.modified_date.as_deref().and_then(parse_time)
    }
    fn key(&self) -> &str {
        &self.contact.id
    }
}

/// A contact from the lookup; names are read tolerantly, as public clients do.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Contact {
    #[serde(
        rename = "contactID",
        alias = "contactId",
        alias = "uniqueContactId",
        alias = "id",
        deserialize_with = "id_string"
    )]
    pub id: String,
    #[serde(default)]
    pub first_name: Option<String>,
    #[serde(default)]
    pub last_name: Option<String>,
    #[serde(default, alias = "emailAddress")]
    pub email: Option<String>,
    #[serde(default, alias = "phoneNumber", alias = "contactNumber")]
    pub phone: Option<String>,
}

/// Ids come as numbers or strings.
fn id_string<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    match serde_json::Value::deserialize(d)? {
        serde_json::Value::String(s) => Ok(s),
        serde_json::Value::Number(n) => Ok(n.to_string()),
        other => Err(serde::de::Error::custom(format!("not an id: {other}"))),
    }
}

fn opt_id_string<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    match serde_json::Value::deserialize(d)? {
        serde_json::Value::Null => Ok(None),
        serde_json::Value::String(s) => Ok(Some(s)),
        serde_json::Value::Number(n) => Ok(Some(n.to_string())),
        other => Err(serde::de::Error::custom(format!("not an id: {other}"))),
    }
}

#[derive(Deserialize)]
struct AuthBody {
    token: String,
}

#[derive(Deserialize)]
struct JwtTimes {
    #[serde(default)]
    iat: Option<i64>,
    #[serde(default)]
    exp: Option<i64>,
}

struct Token {
    value: SecretString,
    use_until: Instant,
}

/// How long a token may be used from now: its `exp` less the refresh margin.
fn usable_for(token: &str, now: Timestamp) -> Duration {
    let times = token
        .split('.')
        .nth(1)
        .and_then(|p| URL_SAFE_NO_PAD.decode(p.trim_end_matches('=')).ok())
        .and_then(|b| serde_json::from_slice::<JwtTimes>(&b).ok());
    let Some(JwtTimes {
        iat,
        exp: Some(exp),
    }) = times
    else {
        return DEFAULT_TOKEN_LIFETIME - TOKEN_REFRESH_MARGIN;
    };
    let left = Duration::from_secs(u64::try_from(exp - now.as_second()).unwrap_or(0))
        .min(MAX_TOKEN_LIFETIME);
    let lifetime = iat
        .and_then(|iat| u64::try_from(exp - iat).ok())
        .map_or(left, Duration::from_secs);
    left.saturating_sub(TOKEN_REFRESH_MARGIN.min(lifetime / 4))
}

/// What [`SmartAdvocateClient::verify`] probes, in its order and in the words a denial names.
pub const PERMISSION_CHECKS: [&str; 5] = [
    "read cases",
    "read notes",
    "insert note",
    "read case types",
    "read status types",
];

/// A client for one SmartAdvocate connection; share it behind an `Arc`.
pub struct SmartAdvocateClient {
    http: reqwest::Client,
    /// When set, the base URL is vetted against it right before every request.
    policy: Option<Arc<UrlPolicy>>,
    base: Url,
    creds: Credentials,
    paths: SmartAdvocatePaths,
    token: Mutex<Option<Token>>,
}

impl fmt::Debug for SmartAdvocateClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SmartAdvocateClient")
            .field("base", &self.base.as_str())
            .field("username", &self.creds.username)
            .finish_non_exhaustive()
    }
}

impl SmartAdvocateClient {
    /// Fails only if the base URL cannot be used ([`SmartAdvocateError::BaseUrl`]).
    pub fn new(
        http: reqwest::Client,
        creds: Credentials,
        paths: SmartAdvocatePaths,
    ) -> Result<Self, SmartAdvocateError> {
        let base = normalize_base_url(&creds.base_url).map_err(SmartAdvocateError::BaseUrl)?;
        Ok(Self {
            http,
            policy: None,
            base,
            creds,
            paths,
            token: Mutex::new(None),
        })
    }

    /// Vets the base URL against `policy` right before every request, as webhook deliveries
    /// are: its name may resolve elsewhere since connect, and an IP-literal host never reaches
    /// the safe client's resolver.
    pub fn with_policy(mut self, policy: Arc<UrlPolicy>) -> Self {
        self.policy = Some(policy);
        self
    }

    async fn vet(&self) -> Result<(), SmartAdvocateError> {
        let Some(policy) = &self.policy else {
            return Ok(());
        };
        policy
            .vet(self.base.as_str())
            .await
            .map(|_| ())
            .map_err(|e| SmartAdvocateError::BaseUrl(format!("the base URL is refused: {e}")))
    }

    /// The normalised base URL (without `/CaseSyncAPI`).
    pub fn base_url(&self) -> String {
        base_str(&self.base)
    }

    /// Authenticates and probes what casebridge needs ([`PERMISSION_CHECKS`]): read cases, read notes, insert note,
    /// read case types and status types. Returns the operations the API user may not perform
    /// (empty: all fine). The probes change nothing: they ask for a case number that does not
    /// exist, and insert a note without text into case 0, which SmartAdvocate refuses as
    /// invalid when the user may insert notes and as forbidden when not.
    pub async fn verify(&self) -> Result<Vec<String>, SmartAdvocateError> {
        self.fresh_token().await?;
        let probe = "casebridge-connection-check";
        let mut denied = Vec::new();
        let results = [
            self.cases_by_number(probe).await.map(drop),
            self.notes_by_case_number(probe).await.map(drop),
            self.insert_note("0", &serde_json::json!({}))
                .await
                .map(drop),
            self.case_types().await.map(drop),
            self.status_types().await.map(drop),
        ];
        for r in results {
            match r {
                Ok(()) | Err(SmartAdvocateError::Rejected(_)) => {}
                Err(SmartAdvocateError::PermissionDenied { operation }) => denied.push(operation),
                Err(e) => return Err(e),
            }
        }
        Ok(denied)
    }

    /// Cases whose number matches `pattern` as SQL `LIKE` (`%`, `_`), as SmartAdvocate answers.
    pub async fn cases_by_number(
        &self,
        pattern: &str,
    ) -> Result<Vec<CaseInfo>, SmartAdvocateError> {
        self.get(
            "read cases",
            &self.paths.case_info,
            &[],
            &[("Casenumber", pattern)],
        )
        .await
    }

    /// The case with exactly this number (`CaseInfo` matches as `LIKE`, so the answer is
    /// filtered).
    pub async fn case_by_number(
        &self,
        number: &str,
    ) -> Result<Option<CaseInfo>, SmartAdvocateError> {
        Ok(self
            .cases_by_number(number)
            .await?
            .into_iter()
            .find(|c| c.case_number == number))
    }

    pub async fn notes_by_case_number(
        &self,
        number: &str,
    ) -> Result<Vec<serde_json::Value>, SmartAdvocateError> {
        self.get(
            "read notes",
            &self.paths.notes_by_case_number,
            &[],
            &[("CaseNumber", number)],
        )
        .await
    }

    /// Inserts a note (modelled path and body); returns the answer's body.
    pub async fn insert_note(
        &self,
        case_id: &str,
        note: &serde_json::Value,
    ) -> Result<String, SmartAdvocateError> {
        let url = self.endpoint(&self.paths.insert_note, &[("case_id", case_id)])?;
        self.call("insert note", |t| {
            self.http.post(url.clone()).bearer_auth(t).json(note)
        })
        .await
    }

    /// Sets the current value of one status type on a case (modelled path and body): the
    /// primary status when the type is "Status", else a second status.
    pub async fn set_status(
        &self,
        case_id: &str,
        status_type_id: &str,
        status_id: &str,
    ) -> Result<(), SmartAdvocateError> {
        let url = self.endpoint(&self.paths.set_status, &[("case_id", case_id)])?;
        let body = status_body(status_type_id, status_id);
        self.call("update case statuses", |t| {
            self.http.put(url.clone()).bearer_auth(t).json(&body)
        })
        .await
        .map(drop)
    }

    /// Sets UDF values by exact name (modelled path and body); an empty value clears one.
    pub async fn set_udfs(
        &self,
        case_id: &str,
        values: &[(String, String)],
    ) -> Result<(), SmartAdvocateError> {
        let url = self.endpoint(&self.paths.set_udfs, &[("case_id", case_id)])?;
        let body = udfs_body(values);
        self.call("update UDF values", |t| {
            self.http.put(url.clone()).bearer_auth(t).json(&body)
        })
        .await
        .map(drop)
    }

    // ---- dry runs: what the calls above send, from the same parts, nothing sent ----

    /// The read of a case by number ([`case_by_number`](Self::case_by_number)).
    pub fn plan_case_by_number(&self, number: &str) -> Result<PlannedRequest, SmartAdvocateError> {
        let url = self.endpoint(&self.paths.case_info, &[])?;
        Ok(self.planned(
            "read cases",
            "GET",
            url,
            "query",
            vec![("Casenumber", number)],
            None,
        ))
    }

    /// The read of the status types ([`status_types`](Self::status_types)).
    pub fn plan_status_types(&self) -> Result<PlannedRequest, SmartAdvocateError> {
        let url = self.endpoint(&self.paths.status_types, &[])?;
        Ok(self.planned("read status types", "GET", url, "query", Vec::new(), None))
    }

    /// [`set_status`](Self::set_status)'s request.
    pub fn plan_set_status(
        &self,
        case_id: &str,
        status_type_id: &str,
        status_id: &str,
    ) -> Result<PlannedRequest, SmartAdvocateError> {
        let url = self.endpoint(&self.paths.set_status, &[("case_id", case_id)])?;
        let body = status_body(status_type_id, status_id);
        Ok(self.planned(
            "update case statuses",
            "PUT",
            url,
            "json",
            Vec::new(),
            Some(body),
        ))
    }

    /// [`set_udfs`](Self::set_udfs)'s request.
    pub fn plan_set_udfs(
        &self,
        case_id: &str,
        values: &[(String, String)],
    ) -> Result<PlannedRequest, SmartAdvocateError> {
        let url = self.endpoint(&self.paths.set_udfs, &[("case_id", case_id)])?;
        let body = serde_json::Value::Array(udfs_body(values));
        Ok(self.planned(
            "update UDF values",
            "PUT",
            url,
            "json",
            Vec::new(),
            Some(body),
        ))
    }

    /// [`insert_note`](Self::insert_note)'s request.
    pub fn plan_insert_note(
        &self,
        case_id: &str,
        note: &serde_json::Value,
    ) -> Result<PlannedRequest, SmartAdvocateError> {
        let url = self.endpoint(&self.paths.insert_note, &[("case_id", case_id)])?;
        Ok(self.planned(
            "insert note",
            "POST",
            url,
            "json",
            Vec::new(),
            Some(note.clone()),
        ))
    }

    fn planned(
        &self,
        what: &str,
        method: &str,
        url: Url,
        carried_in: &str,
        params: Vec<(&str, &str)>,
        body: Option<serde_json::Value>,
    ) -> PlannedRequest {
        PlannedRequest {
            operation: what.into(),
            method: method.into(),
            url: url.to_string(),
            carried_in: carried_in.into(),
            params: params
                .into_iter()
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect(),
            body,
            authorization: Some("Bearer [redacted]".into()),
            note: None,
        }
    }

    pub async fn case_types(&self) -> Result<Vec<CaseType>, SmartAdvocateError> {
        self.get("read case types", &self.paths.case_types, &[], &[])
            .await
    }

    pub async fn status_types(&self) -> Result<Vec<StatusType>, SmartAdvocateError> {
        self.get("read status types", &self.paths.status_types, &[], &[])
            .await
    }

    pub async fn statuses(&self, status_type_id: &str) -> Result<Vec<Status>, SmartAdvocateError> {
        self.get(
            "read statuses",
            &self.paths.statuses,
            &[("status_type_id", status_type_id)],
            &[],
        )
        .await
    }

    /// The UDFs of a case type. A failure is an error, never an empty list.
    pub async fn udfs(&self, case_type_id: &str) -> Result<Vec<Udf>, SmartAdvocateError> {
        self.get(
            "read UDF definitions",
            &self.paths.udfs,
            &[("case_type_id", case_type_id)],
            &[],
        )
        .await
    }

    /// Cases modified at or after `since` (with each plaintiff's contact details), oldest
    /// change first.
    pub async fn cases_changed_since(
        &self,
        since: Timestamp,
    ) -> Result<Vec<CaseInfo>, SmartAdvocateError> {
        let path = self.paths.cases_by_date.clone();
        let extra = serde_json::json!({"addContactInfo": true});
        self.changed_since("search cases by date", &path, since, extra, None)
            .await
    }

    /// Notes modified at or after `since`, oldest change first.
    pub async fn notes_changed_since(
        &self,
        since: Timestamp,
    ) -> Result<Vec<Note>, SmartAdvocateError> {
        let path = self.paths.notes_by_date.clone();
        let extra = serde_json::json!({"addContactInfo": false});
        self.changed_since("search notes by date", &path, since, extra, None)
            .await
    }

    /// Contacts modified at or after `since`, oldest change first.
    pub async fn contacts_changed_since(
        &self,
        since: Timestamp,
    ) -> Result<Vec<ChangedContact>, SmartAdvocateError> {
        let path = self.paths.contacts_by_date.clone();
        let extra = serde_json::json!({"addContactInfo": false});
        self.changed_since("search contacts by date", &path, since, extra, None)
            .await
    }

    /// Documents of every case modified at or after `since`, oldest change first, read page by
    /// page until a short page. `modifiedToDateTime` is a day ahead of now, so a tenant clock
    /// ahead of ours hides nothing; `caseNumbers` is empty (every case).
    pub async fn documents_changed_since(
        &self,
        since: Timestamp,
    ) -> Result<Vec<Document>, SmartAdvocateError> {
        let path = self.paths.documents_by_date.clone();
        let until = Timestamp::now() + jiff::SignedDuration::from_hours(24);
        let extra = serde_json::json!({
            "modifiedToDateTime": format_time(until),
            "caseNumbers": [],
        });
        self.changed_since(
            "search documents by date",
            &path,
            since,
            extra,
            Some(DOCUMENT_SEARCH_TIMEOUT),
        )
        .await
    }

    /// A document's bytes, streamed as they arrive (within [`DOCUMENT_CONTENT_TIMEOUT`]). A
    /// `200` with no body is an empty document, not an error.
    pub async fn document_content(
        &self,
        document_id: &str,
    ) -> Result<DocumentContent, SmartAdvocateError> {
        const WHAT: &str = "read document content";
        let url = self.endpoint(
            &self.paths.document_content,
            &[("document_id", document_id)],
        )?;
        let resp = self
            .send(WHAT, |t| {
                self.http
                    .get(url.clone())
                    .bearer_auth(t)
                    .timeout(DOCUMENT_CONTENT_TIMEOUT)
            })
            .await?;
        let content_type = resp
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let body = resp
            .bytes_stream()
            .map_err(|e| format!("{WHAT}: {}", innermost(&e)))
            .boxed();
        Ok(DocumentContent { content_type, body })
    }

    /// Every record of a "changed since" search, read page by page. Each page starts from the
    /// newest change time read so far (inclusive) rather than at an offset, so a record that
    /// changes during the read moves to the end and is read again instead of shifting an
    /// unread one onto a page already read; records already read with the same change time are
    /// dropped. Only when a whole page shares one change time does the read page on within it.
    async fn changed_since<T: DeserializeOwned + Modified>(
        &self,
        what: &str,
        template: &str,
        since: Timestamp,
        extra: serde_json::Value,
        timeout: Option<Duration>,
    ) -> Result<Vec<T>, SmartAdvocateError> {
        let url = self.endpoint(template, &[])?;
        let mut out: Vec<T> = Vec::new();
        let mut seen: std::collections::HashSet<(String, Option<i64>)> = Default::default();
        let mut from = since;
        let mut page = 0u64;
        for _ in 0..MAX_CHANGED_PAGES {
            let mut body = serde_json::json!({
                "modifiedFromDateTime": format_time(from),
                "pageRequest": {"currentPage": page, "pageSize": CHANGED_PAGE_SIZE},
            });
            if let (Some(body), Some(extra)) = (body.as_object_mut(), extra.as_object()) {
                body.extend(extra.clone());
            }
            let text = self
                .call(what, |t| {
                    let request = self.http.post(url.clone()).bearer_auth(t).json(&body);
                    match timeout {
                        Some(t) => request.timeout(t),
                        None => request,
                    }
                })
                .await?;
            let records: Vec<T> = records_of(what, &text)?;
            let full = records.len() as u64 >= CHANGED_PAGE_SIZE;
            let newest = records.iter().filter_map(Modified::modified).max();
            for r in records {
                if seen.insert((r.key().to_owned(), r.modified().map(|t| t.as_second()))) {
                    out.push(r);
                }
            }
            if !full {
                // A record read twice (it changed during the read) counts once, at its newest.
                let mut last: std::collections::HashMap<String, usize> = Default::default();
                for (i, r) in out.iter().enumerate() {
                    last.insert(r.key().to_owned(), i);
                }
                let mut i = 0;
                out.retain(|r| {
                    i += 1;
                    last.get(r.key()) == Some(&(i - 1))
                });
                return Ok(out);
            }
            match newest {
                Some(n) if n.as_second() > from.as_second() => {
                    from = n;
                    page = 0;
                }
                _ => page += 1,
            }
        }
        Err(SmartAdvocateError::Unexpected(format!(
            "{what}: more than {MAX_CHANGED_PAGES} pages"
        )))
    }

    /// Contacts whose name matches (first page of `limit`).
    pub async fn contact_lookup(
        &self,
        first_name: &str,
        last_name: &str,
        limit: u32,
    ) -> Result<Vec<Contact>, SmartAdvocateError> {
        let limit = limit.to_string();
        self.get(
            "look up contacts",
            &self.paths.contact_lookup,
            &[],
            &[
                ("Name", ""),
                ("FirstName", first_name),
                ("LastName", last_name),
                ("FirstPage", "1"),
                ("RowLimit", &limit),
            ],
        )
        .await
    }

    // ---- plumbing ----

    fn endpoint(&self, template: &str, vars: &[(&str, &str)]) -> Result<Url, SmartAdvocateError> {
        let mut path = template.to_owned();
        for (name, value) in vars {
            let placeholder = format!("{{{name}}}");
            if path.contains(&placeholder) {
                let ok = !value.is_empty()
                    && value.len() <= 64
                    && value
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
                    && !matches!(*value, "." | "..");
                if !ok {
                    return Err(SmartAdvocateError::Rejected(format!(
                        "{name} {value:?} is not a valid SmartAdvocate id"
                    )));
                }
                path = path.replace(&placeholder, value);
            }
        }
        if path.contains(['{', '}']) {
            return Err(SmartAdvocateError::Unexpected(format!(
                "the configured path {template:?} has an unknown placeholder"
            )));
        }
        Url::parse(&format!("{}{API_ROOT}{path}", base_str(&self.base))).map_err(|e| {
            SmartAdvocateError::Unexpected(format!(
                "the configured path {template:?} is invalid: {e}"
            ))
        })
    }

    async fn get<T: DeserializeOwned>(
        &self,
        what: &str,
        template: &str,
        vars: &[(&str, &str)],
        query: &[(&str, &str)],
    ) -> Result<T, SmartAdvocateError> {
        let url = self.endpoint(template, vars)?;
        let body = self
            .call(what, |t| {
                self.http.get(url.clone()).bearer_auth(t).query(query)
            })
            .await?;
        serde_json::from_str(&body).map_err(|e| {
            SmartAdvocateError::Unexpected(format!("{what}: answer not understood ({e})"))
        })
    }

    /// One authorised call; a `401` gets one retry with a new token. Returns a 2xx body.
    async fn call(
        &self,
        what: &str,
        build: impl Fn(&str) -> RequestBuilder,
    ) -> Result<String, SmartAdvocateError> {
        let resp = self.send(what, build).await?;
        let status = resp.status();
        let body = resp.text().await.map_err(|e| transport(what, &e))?;
        classify(what, status, None, body)
    }

    /// One authorised request; a `401` gets one retry with a new token. Returns a 2xx answer
    /// with its body unread; any other answer is classified.
    async fn send(
        &self,
        what: &str,
        build: impl Fn(&str) -> RequestBuilder,
    ) -> Result<reqwest::Response, SmartAdvocateError> {
        let mut renewed = false;
        loop {
            let token = self.access_token().await?;
            self.vet().await?;
            let resp = build(token.expose_secret())
                .send()
                .await
                .map_err(|e| transport(what, &e))?;
            let status = resp.status();
            tracing::debug!(
                provider = "smartadvocate",
                endpoint = what,
                status = status.as_u16(),
                "SmartAdvocate answered"
            );
            if status.is_success() {
                return Ok(resp);
            }
            if status == StatusCode::UNAUTHORIZED {
                if !renewed {
                    renewed = true;
                    self.forget_token(&token).await;
                    continue;
                }
                return Err(SmartAdvocateError::Config(format!(
                    "{what}: SmartAdvocate refused a newly issued token"
                )));
            }
            let retry_after = retry_after(resp.headers());
            let body = resp.text().await.map_err(|e| transport(what, &e))?;
            return Err(failure(what, status, retry_after, &body));
        }
    }

    /// Until when the cached token is used (its `exp` less the refresh margin); `None` when
    /// there is no usable token now (the next call authenticates).
    pub async fn token_valid_until(&self) -> Option<Timestamp> {
        let slot = self.token.lock().await;
        let left = slot
            .as_ref()?
            .use_until
            .checked_duration_since(Instant::now())?;
        Timestamp::now()
            .checked_add(jiff::SignedDuration::try_from(left).ok()?)
            .ok()
    }

    async fn access_token(&self) -> Result<SecretString, SmartAdvocateError> {
        let mut slot = self.token.lock().await;
        if let Some(t) = slot.as_ref().filter(|t| Instant::now() < t.use_until) {
            return Ok(t.value.clone());
        }
        let fresh = self.authenticate().await?;
        let value = fresh.value.clone();
        *slot = Some(fresh);
        Ok(value)
    }

    /// Authenticates now, replacing any cached token.
    async fn fresh_token(&self) -> Result<(), SmartAdvocateError> {
        let mut slot = self.token.lock().await;
        *slot = Some(self.authenticate().await?);
        Ok(())
    }

    async fn forget_token(&self, bad: &SecretString) {
        let mut slot = self.token.lock().await;
        if slot
            .as_ref()
            .is_some_and(|t| t.value.expose_secret() == bad.expose_secret())
        {
            *slot = None;
        }
    }

    async fn authenticate(&self) -> Result<Token, SmartAdvocateError> {
        const WHAT: &str = "authenticate";
        let url = self.endpoint(&self.paths.authenticate, &[])?;
        self.vet().await?;
        let body = serde_json::json!({
            "Username": self.creds.username,
            "Password": self.creds.password.expose_secret(),
        });
        let host = self.base.host_str().unwrap_or_default().to_owned();
        let resp = self.http.post(url).json(&body).send().await.map_err(|e| {
            if e.is_connect() {
                SmartAdvocateError::BaseUrl(format!(
                    "could not connect to {host}: {}; check the base URL",
                    innermost(&e)
                ))
            } else {
                transport(WHAT, &e)
            }
        })?;
        let status = resp.status();
        let retry_after = retry_after(resp.headers());
        let text = resp.text().await.map_err(|e| transport(WHAT, &e))?;
        tracing::debug!(
            provider = "smartadvocate",
            endpoint = WHAT,
            status = status.as_u16(),
            "SmartAdvocate answered"
        );
        let not_sa = || {
            SmartAdvocateError::BaseUrl(format!(
                "{host} answered HTTP {status} where SmartAdvocate's CaseSyncAPI should be; \
                 check the base URL"
            ))
        };
        match status {
            s if s.is_success() => {
                let parsed: AuthBody = serde_json::from_str(&text).map_err(|_| {
                    if text.trim().is_empty() {
                        SmartAdvocateError::Transient(format!("{WHAT}: empty answer"))
                    } else {
                        not_sa()
                    }
                })?;
                if parsed.token.is_empty() {
                    return Err(SmartAdvocateError::Unexpected(format!("{WHAT}: no token")));
                }
                let use_for = usable_for(&parsed.token, Timestamp::now());
                Ok(Token {
                    value: SecretString::from(parsed.token),
                    use_until: Instant::now() + use_for,
                })
            }
            StatusCode::BAD_REQUEST | StatusCode::UNAUTHORIZED => {
                Err(SmartAdvocateError::WrongCredentials)
            }
            s if s.is_redirection()
                || s == StatusCode::NOT_FOUND
                || s == StatusCode::METHOD_NOT_ALLOWED =>
            {
                Err(not_sa())
            }
            other => Err(failure(WHAT, other, retry_after, &text)),
        }
    }
}

/// The `message` of a SmartAdvocate error body, else a short excerpt.
fn describe(body: &str) -> String {
    #[derive(Deserialize)]
    struct Message {
        #[serde(alias = "Message")]
        message: String,
    }
    serde_json::from_str::<Message>(body)
        .map(|m| m.message)
        .unwrap_or_else(|_| body.chars().take(200).collect())
}

fn classify(
    what: &str,
    status: StatusCode,
    retry_after: Option<Duration>,
    body: String,
) -> Result<String, SmartAdvocateError> {
    if status.is_success() {
        if body.trim().is_empty() && status != StatusCode::NO_CONTENT {
            return Err(SmartAdvocateError::Transient(format!(
                "{what}: HTTP {status} with an empty body"
            )));
        }
        return Ok(body);
    }
    Err(failure(what, status, retry_after, &body))
}

/// The error of a non-2xx answer.
fn failure(
    what: &str,
    status: StatusCode,
    retry_after: Option<Duration>,
    body: &str,
) -> SmartAdvocateError {
    match status {
        StatusCode::TOO_MANY_REQUESTS => SmartAdvocateError::RateLimited { retry_after },
        s if s.is_server_error() || s == StatusCode::REQUEST_TIMEOUT => {
            SmartAdvocateError::Transient(format!("{what}: HTTP {status}"))
        }
        StatusCode::FORBIDDEN => SmartAdvocateError::PermissionDenied {
            operation: what.to_owned(),
        },
        s if s.is_client_error() => {
            SmartAdvocateError::Rejected(format!("{what}: {} (HTTP {status})", describe(body)))
        }
        _ => SmartAdvocateError::Unexpected(format!("{what}: HTTP {status}: {}", describe(body))),
    }
}

fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    let value = headers.get(RETRY_AFTER)?.to_str().ok()?;
    casebridge_webhooks::delivery::parse_retry_after(value, Timestamp::now())
}

fn transport(what: &str, e: &reqwest::Error) -> SmartAdvocateError {
    let m = innermost(e);
    SmartAdvocateError::Transient(if e.is_timeout() {
        format!("{what}: timed out: {m}")
    } else if e.is_connect() {
        format!("{what}: could not connect: {m}")
    } else {
        format!("{what}: request failed: {m}")
    })
}

fn innermost(e: &(dyn std::error::Error + 'static)) -> String {
    let mut cur = e;
    while let Some(next) = cur.source() {
        cur = next;
    }
    cur.to_string()
}

/// The body of a status write: ids as numbers when they are.
fn status_body(status_type_id: &str, status_id: &str) -> serde_json::Value {
    let number = |v: &str| {
        v.parse::<u64>()
            .map(serde_json::Value::from)
            .unwrap_or_else(|_| v.into())
    };
    serde_json::json!({
        "statusTypeID": number(status_type_id),
        "statusID": number(status_id),
    })
}

/// The body of a UDF write.
fn udfs_body(values: &[(String, String)]) -> Vec<serde_json::Value> {
    values
        .iter()
        .map(|(name, value)| serde_json::json!({"udfName": name, "value": value}))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn norm(raw: &str) -> String {
        base_str(&normalize_base_url(raw).unwrap())
    }

    #[test]
    fn base_urls_with_and_without_the_api_root() {
        for raw in [
            "https://app.smartadvocate.com",
            "https://app.smartadvocate.com/",
            "https://app.smartadvocate.com/CaseSyncAPI",
            "https://app.smartadvocate.com/CaseSyncAPI/",
            " https://app.smartadvocate.com/casesyncapi ",
            "app.smartadvocate.com",
        ] {
            assert_eq!(norm(raw), "https://app.smartadvocate.com", "{raw:?}");
        }
        assert_eq!(
            norm("https://sa.example.com/sa/CaseSyncAPI/"),
            "https://sa.example.com/sa"
        );
        assert_eq!(norm("http://127.0.0.1:8083/"), "http://127.0.0.1:8083");
        for bad in [
            "",
            "ftp://x.example",
            "https://u:pw@x.example",
            "https://x.example/?a=1",
        ] {
            let err = normalize_base_url(bad).unwrap_err();
            assert!(!err.contains("pw@"), "{err}");
        }
    }

    #[test]
    fn token_lifetime_from_exp() {
        let now = Timestamp::from_second(1_620_665_626).unwrap();
        let jwt = |claims: &str| format!("h.{}.s", URL_SAFE_NO_PAD.encode(claims));
        // The KB's example: 2 hours; refreshed 5 minutes early.
        let t = jwt(r#"{"iat":1620665626,"exp":1620672826}"#);
        assert_eq!(usable_for(&t, now), Duration::from_secs(7200 - 300));
        // A short token: a quarter of its lifetime early.
        let t = jwt(r#"{"iat":1620665626,"exp":1620665634}"#);
        assert_eq!(usable_for(&t, now), Duration::from_secs(6));
        // No exp, or not a JWT: one hour.
        assert_eq!(usable_for("opaque", now), Duration::from_secs(3300));
        // Already expired: use it not at all.
        let t = jwt(r#"{"exp":1620665000}"#);
        assert_eq!(usable_for(&t, now), Duration::ZERO);
    }

    #[test]
    fn debug_never_shows_the_password() {
        let c = Credentials::new("https://x.example", "api", "Secret-Pw");
        assert!(!format!("{c:?}").contains("Secret-Pw"));
        let client =
            SmartAdvocateClient::new(reqwest::Client::new(), c, SmartAdvocatePaths::default())
                .unwrap();
        assert!(!format!("{client:?}").contains("Secret-Pw"));
    }

    #[test]
    fn documents_are_read_from_each_answer_shape() {
        let record = r#"{"documentID": 300001, "caseID": 1001, "caseNumber": "9000001",
            "documentName": "Retainer.pdf", "description": null, "createdDate":
            "2025-01-01T09:30:00", "modifiedDate": "2025-01-02T10:00:00", "categoryID": 1,
            "categoryName": "General", "subCategoryName": "", "comments": "",
            "caseDocumentID": 5300001, "documentFolder": "Documents"}"#;
        for body in [
            format!("[{record}]"),
            format!(r#"{{"records": [{record}]}}"#),
            format!(
                r#"{{"documents": [{record}], "pageRequest": {{"currentPage": 0,
                    "pageSize": 100, "totalRecords": 1}}}}"#
            ),
        ] {
            let docs: Vec<Document> = records_of("search documents by date", &body).unwrap();
            assert_eq!(docs.len(), 1, "{body}");
            let d = &docs[0];
            assert_eq!(
                (
                    d.document_id.as_str(),
                    d.case_id.as_deref(),
                    d.case_number.as_str()
                ),
                ("300001", Some("1001"), "9000001")
            );
            assert_eq!(d.document_name.as_deref(), Some("Retainer.pdf"));
            assert_eq!(d.case_document_id.as_deref(), Some("5300001"));
            assert_eq!(d.description, None);
            assert_eq!(d.modified(), Some("2025-01-02T10:00:00Z".parse().unwrap()));
        }
        assert!(records_of::<Document>("x", r#"{"pageRequest": {}}"#).is_err());
    }

    #[test]
    fn answers_are_classified() {
        let c = |s: u16, body: &str| {
            classify("x", StatusCode::from_u16(s).unwrap(), None, body.into()).unwrap_err()
        };
        assert!(matches!(
            c(403, ""),
            SmartAdvocateError::PermissionDenied { .. }
        ));
        assert!(c(403, "").is_config());
        assert!(c(503, "").is_retryable());
        assert!(c(200, "").is_retryable());
        assert!(
            matches!(c(404, r#"{"message":"Case not found"}"#), SmartAdvocateError::Rejected(m) if m.contains("Case not found"))
        );
        assert!(matches!(c(429, ""), SmartAdvocateError::RateLimited { .. }));
    }
}
