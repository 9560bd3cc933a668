//! The Law Ruler protocol client: the lead and campaign APIs (public guide, seeds) and the
//! modelled Advanced API (token, case types, statuses, custom fields, notes, documents, changes).
//!
//! What is fact and what is model:
//! - Fact (Law Ruler's public lead-API guide, seeds): the lead API `POST {root}/api-legalcrmapp.aspx`
//!   takes form-encoded fields with the `Key` in the body; an update is `LeadID` +
//!   `overridelead=true` + fields; custom fields go as `custom<ID>`; `Operation=GetStatus` reads a
//!   lead's status; failures can come back as HTTP 200. The campaign API
//!   `POST {root}/api-legalrcampaign.aspx` takes the LR10 parameters.
//! - Model: the exact answer texts (`Success|LeadID=…`, `Failed|<reason>`), and the whole
//!   Advanced API (paths in [`LawRulerPaths`], JSON shapes such as [`CustomField`] and
//!   [`LeadRecord`], OAuth-style error codes
//!   `invalid_username` / `invalid_password` / `invalid_client_secret` / `invalid_token`).
//!
//! The client is stateless apart from its cached access token: it classifies every outcome as a
//! [`LawRulerError`] (retryable or not) and leaves rate limiting, ordering and retries to the
//! caller's queue. It takes the caller's `reqwest::Client`, which in casebridge is the SSRF-safe
//! one with its timeouts. No secret is ever put in an error, a log line or `Debug` output.

mod error;
mod paths;
mod root;
mod wire;

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use casebridge_webhooks::policy::UrlPolicy;
use jiff::Timestamp;
use reqwest::header::{HeaderMap, RETRY_AFTER};
use reqwest::multipart::{Form, Part};
use reqwest::{RequestBuilder, Response, StatusCode};
use secrecy::{ExposeSecret, SecretString};
use serde::de::DeserializeOwned;
use serde::Deserialize;
use tokio::sync::Mutex;
use tokio::time::Instant;
use url::Url;

pub use error::{ConnectError, CredentialField, LawRulerError};
pub use paths::LawRulerPaths;
pub use root::{normalize_client_root, ClientRootError, LAWRULER_DOMAIN};
pub use wire::{
    campaign_custom_param, custom_field_param, CampaignResult, CaseType, CustomField, FormField,
    LeadRecord, LeadStatus, Note, NoteRecord, Status, Upload, CLIENT_COMMUNICATIONS, KEY_PARAM,
};

use wire::{excerpt, parse_lead_answer, ErrorBody, LeadAnswer};

use crate::connector::PlannedRequest;

/// Token lifetime assumed when the token answer has no `expires_in`.
const DEFAULT_TOKEN_LIFETIME: Duration = Duration::from_secs(3600);
/// Longer lifetimes are not believed (and would overflow an `Instant`).
const MAX_TOKEN_LIFETIME: Duration = Duration::from_secs(24 * 3600);
/// A token this close to expiry is replaced before use (at most a quarter of its lifetime).
const TOKEN_REFRESH_MARGIN: Duration = Duration::from_secs(30);

/// The five values an admin enters to connect Law Ruler.
#[derive(Clone)]
pub struct Credentials {
    pub username: String,
    pub password: SecretString,
    /// A firm subdomain or a base URL; see [`normalize_client_root`].
    pub client_root: String,
    pub client_secret: SecretString,
    /// The lead-API Key.
    pub key: SecretString,
}

impl Credentials {
    pub fn new(
        username: impl Into<String>,
        password: impl Into<String>,
        client_root: impl Into<String>,
        client_secret: impl Into<String>,
        key: impl Into<String>,
    ) -> Self {
        Self {
            username: username.into(),
            password: SecretString::from(password.into()),
            client_root: client_root.into(),
            client_secret: SecretString::from(client_secret.into()),
            key: SecretString::from(key.into()),
        }
    }
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("username", &self.username)
            .field("password", &"[redacted]")
            .field(
                "client_root",
                // A URL with user info is refused, but must not be printed either.
                &if self.client_root.contains('@') {
                    "[redacted]"
                } else {
                    self.client_root.as_str()
                },
            )
            .field("client_secret", &"[redacted]")
            .field("key", &"[redacted]")
            .finish()
    }
}

struct AccessToken {
    value: SecretString,
    /// When to stop using it (its expiry less the refresh margin).
    use_until: Instant,
}

/// A client for one Law Ruler connection. Cheap to share behind an `Arc`; the access token is
/// fetched on first use, cached, refreshed before it expires, and fetched again once if Law Ruler
/// says it is invalid.
pub struct LawRulerClient {
    http: reqwest::Client,
    /// When set, every request's URL is vetted against it right before it is sent.
    policy: Option<Arc<UrlPolicy>>,
    creds: Credentials,
    root: Url,
    paths: LawRulerPaths,
    token: Mutex<Option<AccessToken>>,
}

impl fmt::Debug for LawRulerClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LawRulerClient")
            .field("root", &self.root.as_str())
            .field("username", &self.creds.username)
            .finish_non_exhaustive()
    }
}

/// How a request failed before any answer came back.
enum Transport {
    /// Could not connect (refused, DNS, address not allowed, TLS).
    Connect(String),
    /// No answer in time.
    Timeout(String),
    /// Anything else (the connection broke mid-request, …).
    Other(String),
}

impl Transport {
    fn from_reqwest(e: &reqwest::Error) -> Self {
        let msg = innermost(e);
        if e.is_timeout() {
            Self::Timeout(msg)
        } else if e.is_connect() {
            Self::Connect(msg)
        } else {
            Self::Other(msg)
        }
    }

    fn into_transient(self, what: &str) -> LawRulerError {
        LawRulerError::Transient(match self {
            Self::Connect(m) => format!("{what}: could not connect: {m}"),
            Self::Timeout(m) => format!("{what}: timed out: {m}"),
            Self::Other(m) => format!("{what}: request failed: {m}"),
        })
    }
}

/// Why getting an access token failed; mapped differently when connecting and when operating.
enum TokenFailure {
    Transport(Transport),
    Credential {
        field: CredentialField,
        message: String,
    },
    RateLimited(Option<Duration>),
    Server(String),
    /// The address answered, but not like Law Ruler (404, a redirect, an HTML page …).
    NotLawRuler(String),
    Unexpected(String),
}

impl TokenFailure {
    fn into_error(self) -> LawRulerError {
        match self {
            Self::Transport(t) => t.into_transient("access token"),
            Self::Credential { field, message } => LawRulerError::Config { field, message },
            Self::RateLimited(retry_after) => LawRulerError::RateLimited { retry_after },
            Self::Server(m) => LawRulerError::Transient(m),
            Self::NotLawRuler(message) => LawRulerError::Config {
                field: CredentialField::ClientRoot,
                message,
            },
            Self::Unexpected(m) => LawRulerError::Unexpected(m),
        }
    }

    fn into_connect(self, root: &Url) -> ConnectError {
        match self {
            Self::Transport(Transport::Connect(m)) => ConnectError::WrongValue {
                field: CredentialField::ClientRoot,
                message: format!(
                    "Could not connect to {}: {m}. Check the Client Root.",
                    host_of(root)
                ),
            },
            Self::Transport(t) => ConnectError::Unreachable(match t {
                Transport::Timeout(m) => format!("no answer from {} in time: {m}", host_of(root)),
                Transport::Connect(m) | Transport::Other(m) => m,
            }),
            Self::Credential { field, message } => ConnectError::WrongValue { field, message },
            Self::RateLimited(retry_after) => ConnectError::RateLimited { retry_after },
            Self::Server(m) => ConnectError::Unreachable(m),
            Self::NotLawRuler(message) => ConnectError::WrongValue {
                field: CredentialField::ClientRoot,
                message,
            },
            Self::Unexpected(m) => ConnectError::Unexpected(m),
        }
    }
}

#[derive(Deserialize)]
struct TokenBody {
    access_token: String,
    #[serde(default)]
    token_type: Option<String>,
    #[serde(default)]
    expires_in: Option<u64>,
}

#[derive(Deserialize)]
struct CreatedBody {
    #[serde(default)]
    id: Option<serde_json::Value>,
}

/// Where a lead/campaign API call carries its parameters.
#[derive(Debug, Clone, Copy)]
enum Carry {
    /// A form-encoded body (the lead API).
    Form,
    /// The query string, with an empty body (the campaign API).
    Query,
}

impl LawRulerClient {
    /// A client for `creds`, calling Law Ruler through `http` at the paths in `paths`.
    ///
    /// Fails only if the Client Root cannot be turned into a URL
    /// ([`LawRulerError::Config`] naming `client_root`); nothing is sent yet.
    pub fn new(
        http: reqwest::Client,
        creds: Credentials,
        paths: LawRulerPaths,
    ) -> Result<Self, LawRulerError> {
        let root =
            normalize_client_root(&creds.client_root).map_err(|e| LawRulerError::Config {
                field: CredentialField::ClientRoot,
                message: e.0,
            })?;
        Ok(Self {
            http,
            policy: None,
            creds,
            root,
            paths,
            token: Mutex::new(None),
        })
    }

    /// Vets the URL of every request against `policy` right before it is sent, as webhook
    /// deliveries are: the Client Root's name may resolve elsewhere since connect, and an
    /// IP-literal root never reaches the safe client's resolver.
    pub fn with_policy(mut self, policy: Arc<UrlPolicy>) -> Self {
        self.policy = Some(policy);
        self
    }

    /// Refuses a request to `url` the policy does not allow, naming the Client Root.
    async fn vet(&self, url: &Url) -> Result<(), LawRulerError> {
        let Some(policy) = &self.policy else {
            return Ok(());
        };
        policy
            .vet(url.as_str())
            .await
            .map(|_| ())
            .map_err(|e| LawRulerError::Config {
                field: CredentialField::ClientRoot,
                message: format!("the Client Root is refused: {e}"),
            })
    }

    /// The normalised Client Root every path is joined to.
    pub fn client_root(&self) -> &Url {
        &self.root
    }

    pub fn paths(&self) -> &LawRulerPaths {
        &self.paths
    }

    /// Checks all five values against Law Ruler, and says which one is wrong:
    /// 1. the Client Root answers at all, and like Law Ruler (else `client_root`);
    /// 2. the token endpoint accepts Username, Password and Client Secret (each `401` error code
    ///    names its value);
    /// 3. the Key passes a harmless lead-API call, `Operation=GetStatus` for `LeadID=0`: a valid
    ///    Key gets `Failed|Lead not found`, a wrong one `Failed|Invalid Key`.
    ///
    /// A timeout or 5xx is [`ConnectError::Unreachable`] (the values may be right). The token
    /// obtained is kept for later calls.
    pub async fn verify(&self) -> Result<(), ConnectError> {
        let token = self
            .fetch_token()
            .await
            .map_err(|f| f.into_connect(&self.root))?;
        *self.token.lock().await = Some(token);

        let params = vec![
            ("Operation".to_owned(), "GetStatus".to_owned()),
            ("LeadID".to_owned(), "0".to_owned()),
        ];
        match self
            .lead_call("lead API", &self.paths.lead_api, Carry::Form, params)
            .await
        {
            Ok(_) => Ok(()),
            Err(LawRulerError::Rejected(reason)) if is_lead_not_found(&reason) => Ok(()),
            Err(LawRulerError::Rejected(reason)) => Err(ConnectError::Unexpected(format!(
                "the lead API refused the Key check: {reason}"
            ))),
            Err(e) => Err(e.into()),
        }
    }

    // ---- Advanced API (modelled) ----

    /// The firm's case types.
    pub async fn case_types(&self) -> Result<Vec<CaseType>, LawRulerError> {
        self.get_json("case types", &self.paths.case_types, &[], &[])
            .await
    }

    /// The firm's lead statuses.
    pub async fn statuses(&self) -> Result<Vec<Status>, LawRulerError> {
        self.get_json("statuses", &self.paths.statuses, &[], &[])
            .await
    }

    /// The custom fields of one case type (key, input type, form section). A failure is an
    /// error, never an empty list.
    pub async fn custom_fields(
        &self,
        case_type_id: &str,
    ) -> Result<Vec<CustomField>, LawRulerError> {
        self.get_json(
            "custom fields",
            &self.paths.custom_fields,
            &[("case_type_id", case_type_id)],
            &[],
        )
        .await
    }

    /// Leads created or changed at or after `since`.
    pub async fn leads_changed_since(
        &self,
        since: Timestamp,
    ) -> Result<Vec<LeadRecord>, LawRulerError> {
        let since = since.to_string();
        self.get_json(
            "changed leads",
            &self.paths.leads_changed,
            &[],
            &[("changedSince", &since)],
        )
        .await
    }

    /// Notes added at or after `since` (by Law Ruler's storage time).
    pub async fn notes_changed_since(
        &self,
        since: Timestamp,
    ) -> Result<Vec<NoteRecord>, LawRulerError> {
        let since = since.to_string();
        self.get_json(
            "changed notes",
            &self.paths.notes_changed,
            &[],
            &[("changedSince", &since)],
        )
        .await
    }

    /// Adds a note to a lead: JSON `{"category","subject","body","createdAt"}`. Returns the
    /// note's id if Law Ruler's answer carries one. A 2xx whose body cannot be read still counts
    /// as done, so a retry never writes the note twice.
    pub async fn add_note(
        &self,
        lead_id: &str,
        note: &Note,
    ) -> Result<Option<String>, LawRulerError> {
        let url = self.endpoint(&self.paths.notes, &[("lead_id", lead_id)])?;
        self.vet(&url).await?;
        let body = note_body(note);
        let answer = self
            .advanced("add note", |token| {
                self.http.post(url.clone()).bearer_auth(token).json(&body)
            })
            .await?;
        Ok(created_id(&answer))
    }

    /// Uploads a document to a lead: multipart with `folder`, `formField`, `fileName`,
    /// `createdAt` and the file as `file`. Returns the document's id if the answer carries one
    /// (a 2xx counts as done either way, as for [`add_note`](Self::add_note)).
    pub async fn upload_document(
        &self,
        lead_id: &str,
        upload: &Upload,
    ) -> Result<Option<String>, LawRulerError> {
        let url = self.endpoint(&self.paths.documents, &[("lead_id", lead_id)])?;
        self.vet(&url).await?;
        let fields = upload_fields(
            &upload.folder,
            upload.form_field,
            &upload.file_name,
            upload.created_at,
        );
        let answer = self
            .advanced("upload document", |token| {
                let form = fields
                    .iter()
                    .fold(Form::new(), |f, (k, v)| f.text(*k, v.clone()))
                    .part("file", file_part(upload));
                self.http
                    .post(url.clone())
                    .bearer_auth(token)
                    .multipart(form)
            })
            .await?;
        Ok(created_id(&answer))
    }

    // ---- Lead and campaign APIs (public) ----

    /// Creates a lead from `fields` (`FirstName`, `LastName`, `CellPhone`, `Email`, `CaseType`,
    /// `custom<ID>`, …) and returns its Lead ID. The Key is added by the client (a `Key` in
    /// `fields` is ignored).
    pub async fn create_lead(&self, fields: &[(String, String)]) -> Result<String, LawRulerError> {
        let params = without(fields, &[KEY_PARAM, "LeadID", "overridelead", "Operation"]);
        let pairs = self
            .lead_call("create lead", &self.paths.lead_api, Carry::Form, params)
            .await?;
        LeadAnswer::value(&pairs, "LeadID").ok_or_else(|| {
            LawRulerError::Unexpected("create lead: the success answer has no LeadID".into())
        })
    }

    /// Updates a lead: `LeadID`, `overridelead=true`, then `fields` (names it sets itself, and
    /// `Key`, are ignored in `fields`).
    pub async fn update_lead(
        &self,
        lead_id: &str,
        fields: &[(String, String)],
    ) -> Result<(), LawRulerError> {
        let params = update_params(lead_id, fields)?;
        self.lead_call("update lead", &self.paths.lead_api, Carry::Form, params)
            .await
            .map(drop)
    }

    /// A lead's current status (`Operation=GetStatus`).
    pub async fn lead_status(&self, lead_id: &str) -> Result<LeadStatus, LawRulerError> {
        check_id("Lead ID", lead_id)?;
        let params = vec![
            ("Operation".to_owned(), "GetStatus".to_owned()),
            ("LeadID".to_owned(), lead_id.to_owned()),
        ];
        let pairs = self
            .lead_call("lead status", &self.paths.lead_api, Carry::Form, params)
            .await?;
        let status = LeadAnswer::value(&pairs, "Status").ok_or_else(|| {
            LawRulerError::Unexpected("lead status: the success answer has no Status".into())
        })?;
        Ok(LeadStatus {
            lead_id: LeadAnswer::value(&pairs, "LeadID").unwrap_or_else(|| lead_id.to_owned()),
            status,
            status_id: LeadAnswer::value(&pairs, "StatusID"),
        })
    }

    /// The Voice AI call result through the campaign API (LR10). `params` are sent as given, in
    /// order, after the Key (a `Key` in `params` is ignored), as query parameters of a POST with
    /// an empty body: the technical reference names them query parameters (the lead API, by
    /// contrast, takes a form body). [`CampaignResult::to_params`] builds them.
    pub async fn campaign_call_result(
        &self,
        params: &[(String, String)],
    ) -> Result<(), LawRulerError> {
        let params = without(params, &[KEY_PARAM]);
        self.lead_call(
            "campaign call result",
            &self.paths.campaign_api,
            Carry::Query,
            params,
        )
        .await
        .map(drop)
    }

    // ---- dry runs ----
    //
    // What the sending methods above would send, built from the same parts (`update_params`,
    // `note_body`, `upload_fields`, `lead_api_params`), with secrets redacted and nothing sent.

    /// What [`update_lead`](Self::update_lead) sends.
    pub fn plan_update_lead(
        &self,
        lead_id: &str,
        fields: &[(String, String)],
    ) -> Result<PlannedRequest, LawRulerError> {
        let params = update_params(lead_id, fields)?;
        self.plan_lead_call("update lead", &self.paths.lead_api, Carry::Form, params)
    }

    /// What [`add_note`](Self::add_note) sends.
    pub fn plan_add_note(
        &self,
        lead_id: &str,
        note: &Note,
    ) -> Result<PlannedRequest, LawRulerError> {
        let url = self.endpoint(&self.paths.notes, &[("lead_id", lead_id)])?;
        Ok(PlannedRequest {
            operation: "add note".into(),
            method: "POST".into(),
            url: url.to_string(),
            carried_in: "json".into(),
            params: Vec::new(),
            body: Some(note_body(note)),
            authorization: Some(format!("Bearer {REDACTED}")),
            note: None,
        })
    }

    /// What [`upload_document`](Self::upload_document) sends, but for the file's bytes.
    pub fn plan_upload(
        &self,
        lead_id: &str,
        folder: &str,
        form_field: FormField,
        file_name: &str,
        created_at: Timestamp,
    ) -> Result<PlannedRequest, LawRulerError> {
        let url = self.endpoint(&self.paths.documents, &[("lead_id", lead_id)])?;
        Ok(PlannedRequest {
            operation: "upload document".into(),
            method: "POST".into(),
            url: url.to_string(),
            carried_in: "multipart".into(),
            params: upload_fields(folder, form_field, file_name, created_at)
                .into_iter()
                .map(|(k, v)| (k.to_owned(), v))
                .collect(),
            body: None,
            authorization: Some(format!("Bearer {REDACTED}")),
            note: Some(format!("and the stored file as `file` ({file_name})")),
        })
    }

    /// What [`campaign_call_result`](Self::campaign_call_result) sends.
    pub fn plan_campaign_call_result(
        &self,
        params: &[(String, String)],
    ) -> Result<PlannedRequest, LawRulerError> {
        let params = without(params, &[KEY_PARAM]);
        self.plan_lead_call(
            "campaign call result",
            &self.paths.campaign_api,
            Carry::Query,
            params,
        )
    }

    fn plan_lead_call(
        &self,
        what: &str,
        path: &str,
        carry: Carry,
        params: Vec<(String, String)>,
    ) -> Result<PlannedRequest, LawRulerError> {
        let url = self.endpoint(path, &[])?;
        let mut all = vec![(KEY_PARAM.to_owned(), REDACTED.to_owned())];
        all.extend(params);
        Ok(PlannedRequest {
            operation: what.into(),
            method: "POST".into(),
            url: url.to_string(),
            carried_in: match carry {
                Carry::Form => "form",
                Carry::Query => "query",
            }
            .into(),
            params: all,
            body: None,
            authorization: None,
            note: None,
        })
    }

    // ---- plumbing ----

    /// `{root}{template}` with the `{name}` placeholders replaced.
    fn endpoint(&self, template: &str, vars: &[(&str, &str)]) -> Result<Url, LawRulerError> {
        let mut path = template.to_owned();
        for (name, value) in vars {
            let placeholder = format!("{{{name}}}");
            if path.contains(&placeholder) {
                check_id(name, value)?;
                path = path.replace(&placeholder, value);
            }
        }
        if path.contains('{') || path.contains('}') {
            return Err(LawRulerError::Unexpected(format!(
                "the configured path {template:?} has an unknown placeholder"
            )));
        }
        self.root.join(&path).map_err(|e| {
            LawRulerError::Unexpected(format!("the configured path {template:?} is invalid: {e}"))
        })
    }

    /// A lead/campaign API call: a POST with the parameters, the Key first, in the body
    /// (form-encoded) or the query string, as `carry` says. Success → the answer's pairs; a
    /// failure body (even on HTTP 200) → [`LawRulerError::Config`] for a wrong Key, else
    /// [`LawRulerError::Rejected`].
    async fn lead_call(
        &self,
        what: &str,
        path: &str,
        carry: Carry,
        params: Vec<(String, String)>,
    ) -> Result<Vec<(String, String)>, LawRulerError> {
        let url = self.endpoint(path, &[])?;
        self.vet(&url).await?;
        let mut form = Vec::with_capacity(params.len() + 1);
        form.push((KEY_PARAM, self.creds.key.expose_secret()));
        form.extend(params.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        let req = self.http.post(url);
        let req = match carry {
            Carry::Form => req.form(&form),
            Carry::Query => req.query(&form),
        };
        let resp = req
            .send()
            .await
            .map_err(|e| Transport::from_reqwest(&e).into_transient(what))?;
        let status = resp.status();
        let retry_after = retry_after(resp.headers());
        let body = read_body(resp, what).await?;
        tracing::debug!(
            provider = "lawruler",
            endpoint = what,
            status = status.as_u16(),
            "Law Ruler answered"
        );

        if status == StatusCode::TOO_MANY_REQUESTS {
            return Err(LawRulerError::RateLimited { retry_after });
        }
        if status.is_server_error() || status == StatusCode::REQUEST_TIMEOUT {
            return Err(LawRulerError::Transient(format!("{what}: HTTP {status}")));
        }
        if status == StatusCode::NOT_FOUND {
            return Err(LawRulerError::Config {
                field: CredentialField::ClientRoot,
                message: format!(
                    "{what}: {} answered 404 for {path}; check the Client Root",
                    host_of(&self.root)
                ),
            });
        }
        match parse_lead_answer(&body) {
            Ok(LeadAnswer::Success(pairs)) if status.is_success() => Ok(pairs),
            Ok(LeadAnswer::Failed(reason)) => Err(classify_failure(what, reason)),
            Ok(LeadAnswer::Success(_)) => Err(LawRulerError::Unexpected(format!(
                "{what}: HTTP {status} with a success body"
            ))),
            Err(body) => Err(LawRulerError::Unexpected(format!(
                "{what}: HTTP {status}, answer not understood: {body:?}"
            ))),
        }
    }

    async fn get_json<T: DeserializeOwned>(
        &self,
        what: &str,
        template: &str,
        vars: &[(&str, &str)],
        query: &[(&str, &str)],
    ) -> Result<T, LawRulerError> {
        let url = self.endpoint(template, vars)?;
        self.vet(&url).await?;
        let body = self
            .advanced(what, |token| {
                self.http.get(url.clone()).bearer_auth(token).query(query)
            })
            .await?;
        serde_json::from_str(&body).map_err(|e| {
            LawRulerError::Unexpected(format!(
                "{what}: answer not understood ({e}): {:?}",
                excerpt(&body)
            ))
        })
    }

    /// An Advanced API call with the bearer token. A `401` gets one retry with a new token.
    /// Returns the body of a 2xx answer.
    async fn advanced(
        &self,
        what: &str,
        build: impl Fn(&str) -> RequestBuilder,
    ) -> Result<String, LawRulerError> {
        let mut refreshed = false;
        loop {
            let token = self.access_token().await?;
            let resp = build(token.expose_secret())
                .send()
                .await
                .map_err(|e| Transport::from_reqwest(&e).into_transient(what))?;
            let status = resp.status();
            let retry_after = retry_after(resp.headers());
            let body = read_body(resp, what).await?;
            tracing::debug!(
                provider = "lawruler",
                endpoint = what,
                status = status.as_u16(),
                "Law Ruler answered"
            );

            if status == StatusCode::UNAUTHORIZED {
                let err = ErrorBody::parse(&body);
                if !refreshed {
                    refreshed = true;
                    self.forget_token(&token).await;
                    continue;
                }
                return Err(LawRulerError::Unexpected(format!(
                    "{what}: Law Ruler refused a newly issued access token ({})",
                    err.describe(&body)
                )));
            }
            return classify_advanced(what, status, retry_after, body);
        }
    }

    /// The cached token, or a new one.
    async fn access_token(&self) -> Result<SecretString, LawRulerError> {
        let mut slot = self.token.lock().await;
        if let Some(t) = slot.as_ref() {
            if Instant::now() < t.use_until {
                return Ok(t.value.clone());
            }
        }
        let fresh = self.fetch_token().await.map_err(TokenFailure::into_error)?;
        let value = fresh.value.clone();
        *slot = Some(fresh);
        Ok(value)
    }

    /// Drops the cached token if it is still `bad` (another task may have replaced it).
    async fn forget_token(&self, bad: &SecretString) {
        let mut slot = self.token.lock().await;
        if slot
            .as_ref()
            .is_some_and(|t| t.value.expose_secret() == bad.expose_secret())
        {
            *slot = None;
        }
    }

    async fn fetch_token(&self) -> Result<AccessToken, TokenFailure> {
        const WHAT: &str = "access token";
        let url = self
            .endpoint(&self.paths.token, &[])
            .map_err(|e| TokenFailure::Unexpected(e.to_string()))?;
        self.vet(&url).await.map_err(|e| match e {
            LawRulerError::Config { field, message } => TokenFailure::Credential { field, message },
            other => TokenFailure::Unexpected(other.to_string()),
        })?;
        let form = [
            ("username", self.creds.username.as_str()),
            ("password", self.creds.password.expose_secret()),
            ("client_secret", self.creds.client_secret.expose_secret()),
        ];
        let resp = self
            .http
            .post(url)
            .form(&form)
            .send()
            .await
            .map_err(|e| TokenFailure::Transport(Transport::from_reqwest(&e)))?;
        let status = resp.status();
        let retry_after = retry_after(resp.headers());
        let body = resp
            .text()
            .await
            .map_err(|e| TokenFailure::Transport(Transport::Other(innermost(&e))))?;
        let host = host_of(&self.root);
        tracing::debug!(
            provider = "lawruler",
            endpoint = WHAT,
            status = status.as_u16(),
            "Law Ruler answered"
        );

        if status.is_success() {
            let parsed: TokenBody = serde_json::from_str(&body).map_err(|_| {
                TokenFailure::NotLawRuler(format!(
                    "{host} answered, but not like Law Ruler's token endpoint; check the Client Root"
                ))
            })?;
            if parsed
                .token_type
                .as_deref()
                .is_some_and(|t| !t.eq_ignore_ascii_case("bearer"))
            {
                return Err(TokenFailure::Unexpected(format!(
                    "token type {:?} is not Bearer",
                    parsed.token_type.unwrap_or_default()
                )));
            }
            let lifetime = parsed
                .expires_in
                .map_or(DEFAULT_TOKEN_LIFETIME, Duration::from_secs)
                .min(MAX_TOKEN_LIFETIME);
            let margin = TOKEN_REFRESH_MARGIN.min(lifetime / 4);
            return Ok(AccessToken {
                value: SecretString::from(parsed.access_token),
                use_until: Instant::now() + lifetime - margin,
            });
        }
        match status {
            StatusCode::UNAUTHORIZED | StatusCode::BAD_REQUEST => {
                let err = ErrorBody::parse(&body);
                let field = match err.error.as_deref() {
                    Some("invalid_username") => CredentialField::Username,
                    Some("invalid_password" | "invalid_grant") => CredentialField::Password,
                    Some("invalid_client_secret" | "invalid_client") => {
                        CredentialField::ClientSecret
                    }
                    _ => {
                        return Err(TokenFailure::Unexpected(format!(
                            "the token endpoint answered HTTP {status}: {}",
                            err.describe(&body)
                        )))
                    }
                };
                Err(TokenFailure::Credential {
                    field,
                    message: wrong_credential_message(field),
                })
            }
            StatusCode::TOO_MANY_REQUESTS => Err(TokenFailure::RateLimited(retry_after)),
            s if s.is_server_error() || s == StatusCode::REQUEST_TIMEOUT => {
                Err(TokenFailure::Server(format!(
                    "{host} answered HTTP {status} to the token request"
                )))
            }
            s if s.is_redirection()
                || s == StatusCode::NOT_FOUND
                || s == StatusCode::METHOD_NOT_ALLOWED =>
            {
                Err(TokenFailure::NotLawRuler(format!(
                    "{host} answered HTTP {status} where Law Ruler's token endpoint should be; \
                     check the Client Root"
                )))
            }
            _ => Err(TokenFailure::Unexpected(format!(
                "the token endpoint answered HTTP {status}: {}",
                ErrorBody::parse(&body).describe(&body)
            ))),
        }
    }
}

fn wrong_credential_message(field: CredentialField) -> String {
    match field {
        CredentialField::Username => "Law Ruler does not know this Username.".into(),
        CredentialField::Password => {
            "Law Ruler did not accept the Password for this Username.".into()
        }
        CredentialField::ClientSecret => "Law Ruler did not accept the Client Secret.".into(),
        CredentialField::Key => "Law Ruler did not accept the Key.".into(),
        CredentialField::ClientRoot => "Law Ruler was not found at the Client Root.".into(),
    }
}

fn classify_failure(what: &str, reason: String) -> LawRulerError {
    let lower = reason.to_ascii_lowercase();
    if lower.contains("invalid key") || lower.contains("key is invalid") {
        return LawRulerError::Config {
            field: CredentialField::Key,
            message: format!("Law Ruler did not accept the Key ({what} answered {reason:?})."),
        };
    }
    LawRulerError::Rejected(format!("{what}: {reason}"))
}

fn classify_advanced(
    what: &str,
    status: StatusCode,
    retry_after: Option<Duration>,
    body: String,
) -> Result<String, LawRulerError> {
    if status.is_success() {
        return Ok(body);
    }
    let describe = || ErrorBody::parse(&body).describe(&body);
    Err(match status {
        StatusCode::TOO_MANY_REQUESTS => LawRulerError::RateLimited { retry_after },
        s if s.is_server_error() || s == StatusCode::REQUEST_TIMEOUT => {
            LawRulerError::Transient(format!("{what}: HTTP {status}"))
        }
        StatusCode::FORBIDDEN => LawRulerError::Rejected(format!(
            "{what}: access denied (HTTP 403: {}); is the Advanced API enabled for this account?",
            describe()
        )),
        StatusCode::BAD_REQUEST
        | StatusCode::NOT_FOUND
        | StatusCode::CONFLICT
        | StatusCode::PAYLOAD_TOO_LARGE
        | StatusCode::UNSUPPORTED_MEDIA_TYPE
        | StatusCode::UNPROCESSABLE_ENTITY => {
            LawRulerError::Rejected(format!("{what}: {} (HTTP {status})", describe()))
        }
        _ => LawRulerError::Unexpected(format!("{what}: HTTP {status}: {}", describe())),
    })
}

async fn read_body(resp: Response, what: &str) -> Result<String, LawRulerError> {
    resp.text()
        .await
        .map_err(|e| Transport::Other(innermost(&e)).into_transient(what))
}

/// The file part; a content type that is not a MIME type is sent as
/// `application/octet-stream`.
fn file_part(upload: &Upload) -> Part {
    let part = || Part::bytes(upload.bytes.clone()).file_name(upload.file_name.clone());
    part().mime_str(&upload.content_type).unwrap_or_else(|_| {
        part()
            .mime_str("application/octet-stream")
            .expect("a valid MIME type")
    })
}

fn created_id(body: &str) -> Option<String> {
    let parsed: CreatedBody = serde_json::from_str(body).ok()?;
    match parsed.id? {
        serde_json::Value::String(s) => Some(s),
        serde_json::Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

fn is_lead_not_found(reason: &str) -> bool {
    let lower = reason.to_ascii_lowercase();
    lower.contains("not found") || lower.contains("does not exist")
}

/// Ids go into paths: a plain token only.
fn check_id(what: &str, id: &str) -> Result<(), LawRulerError> {
    let ok = !id.is_empty()
        && id.len() <= 64
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        && id != "."
        && id != "..";
    if ok {
        Ok(())
    } else {
        Err(LawRulerError::Rejected(format!(
            "{what} {:?} is not a valid Law Ruler id",
            excerpt(id)
        )))
    }
}

/// How a dry run shows a secret.
const REDACTED: &str = "[redacted]";

/// What [`LawRulerClient::update_lead`] sends after the Key.
fn update_params(
    lead_id: &str,
    fields: &[(String, String)],
) -> Result<Vec<(String, String)>, LawRulerError> {
    check_id("Lead ID", lead_id)?;
    let mut params = vec![
        ("LeadID".to_owned(), lead_id.to_owned()),
        ("overridelead".to_owned(), "true".to_owned()),
    ];
    params.extend(without(
        fields,
        &[KEY_PARAM, "LeadID", "overridelead", "Operation"],
    ));
    Ok(params)
}

/// The JSON body of a note.
fn note_body(note: &Note) -> serde_json::Value {
    serde_json::json!({
        "category": note.category,
        "subject": note.subject,
        "body": note.body,
        "createdAt": note.created_at.to_string(),
    })
}

/// The text parts of a document upload, before the file.
fn upload_fields(
    folder: &str,
    form_field: FormField,
    file_name: &str,
    created_at: Timestamp,
) -> Vec<(&'static str, String)> {
    vec![
        ("folder", folder.to_owned()),
        ("formField", form_field.as_str().to_owned()),
        ("fileName", file_name.to_owned()),
        ("createdAt", created_at.to_string()),
    ]
}

fn without(fields: &[(String, String)], reserved: &[&str]) -> Vec<(String, String)> {
    fields
        .iter()
        .filter(|(k, _)| !reserved.iter().any(|r| k.eq_ignore_ascii_case(r)))
        .cloned()
        .collect()
}

/// `Retry-After` in seconds or as an HTTP date.
fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let value = headers.get(RETRY_AFTER)?.to_str().ok()?.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = jiff::fmt::rfc2822::parse(value).ok()?.timestamp();
    let ms = at.as_millisecond() - Timestamp::now().as_millisecond();
    Some(Duration::from_millis(u64::try_from(ms).unwrap_or(0)))
}

fn host_of(url: &Url) -> String {
    match (url.host_str(), url.port()) {
        (Some(h), Some(p)) => format!("{h}:{p}"),
        (Some(h), None) => h.to_owned(),
        _ => url.to_string(),
    }
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
    fn debug_never_shows_secrets() {
        let creds = Credentials::new("demo", "pw-123", "yourfirm", "cs-456", "key-789");
        let odd = Credentials::new("d", "p", "https://u:pw-123@x.example", "c", "k");
        assert!(!format!("{odd:?}").contains("pw-123"));
        let shown = format!("{creds:?}");
        for secret in ["pw-123", "cs-456", "key-789"] {
            assert!(!shown.contains(secret), "{shown}");
        }
        let client =
            LawRulerClient::new(reqwest::Client::new(), creds, LawRulerPaths::default()).unwrap();
        let shown = format!("{client:?}");
        for secret in ["pw-123", "cs-456", "key-789"] {
            assert!(!shown.contains(secret), "{shown}");
        }
        assert!(shown.contains("https://yourfirm.lawruler.com/"));
    }

    #[test]
    fn a_bad_client_root_is_a_config_error() {
        let creds = Credentials::new("demo", "pw", "not a root", "cs", "k");
        let err = LawRulerClient::new(reqwest::Client::new(), creds, LawRulerPaths::default())
            .unwrap_err();
        assert!(matches!(
            err,
            LawRulerError::Config {
                field: CredentialField::ClientRoot,
                ..
            }
        ));
        assert_eq!(
            ConnectError::from(err).field(),
            Some(CredentialField::ClientRoot)
        );
    }

    #[test]
    fn endpoints_fill_placeholders_and_refuse_odd_ids() {
        let creds = Credentials::new("demo", "pw", "http://127.0.0.1:9", "cs", "k");
        let c =
            LawRulerClient::new(reqwest::Client::new(), creds, LawRulerPaths::default()).unwrap();
        assert_eq!(
            c.endpoint(&c.paths.notes, &[("lead_id", "10001")])
                .unwrap()
                .as_str(),
            "http://127.0.0.1:9/api/v2/leads/10001/notes"
        );
        for bad in ["", "..", "1/2", "1?x=2", "a b", "%2e"] {
            assert!(
                matches!(
                    c.endpoint(&c.paths.notes, &[("lead_id", bad)]),
                    Err(LawRulerError::Rejected(_))
                ),
                "{bad:?}"
            );
        }
        assert!(matches!(
            c.endpoint("/x/{nope}", &[]),
            Err(LawRulerError::Unexpected(_))
        ));
    }

    #[test]
    fn failure_bodies_are_classified() {
        assert!(matches!(
            classify_failure("update lead", "Invalid Key".into()),
            LawRulerError::Config {
                field: CredentialField::Key,
                ..
            }
        ));
        assert_eq!(
            classify_failure("update lead", "Lead not found".into()),
            LawRulerError::Rejected("update lead: Lead not found".into())
        );
    }

    #[test]
    fn retryable_errors() {
        assert!(LawRulerError::Transient("x".into()).is_retryable());
        assert!(LawRulerError::RateLimited { retry_after: None }.is_retryable());
        assert!(!LawRulerError::Rejected("x".into()).is_retryable());
        assert!(!LawRulerError::Unexpected("x".into()).is_retryable());
        assert!(!LawRulerError::Config {
            field: CredentialField::Key,
            message: "x".into()
        }
        .is_retryable());
    }

    #[test]
    fn retry_after_seconds_and_dates() {
        let mut h = HeaderMap::new();
        h.insert(RETRY_AFTER, "7".parse().unwrap());
        assert_eq!(retry_after(&h), Some(Duration::from_secs(7)));
        h.insert(
            RETRY_AFTER,
            "Wed, 21 Oct 2015 07:28:00 GMT".parse().unwrap(),
        );
        assert_eq!(retry_after(&h), Some(Duration::ZERO));
        h.insert(RETRY_AFTER, "soon".parse().unwrap());
        assert_eq!(retry_after(&h), None);
    }
}
