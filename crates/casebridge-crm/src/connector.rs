//! The one interface every CRM sits behind.
//!
//! The service layer knows CRMs only through [`Connector`]: it asks [`Connectors`] for the
//! provider of a request, or fans a platform change out to all of them. Everything a CRM's
//! protocol needs (paths, field names, failure bodies, what its toggles mean) stays in that
//! CRM's module; a connector translates between that module and the provider-neutral types here.

use std::sync::Arc;

use async_trait::async_trait;
use casebridge_domain::activity::{Call, Message};
use casebridge_domain::clock::Clock;
use casebridge_domain::crm_ops::OpAction;
use casebridge_domain::crm_ops::ResumeMode;
use casebridge_domain::ids::{
    CaseId, CaseStatusId, CaseTypeId, ClientId, CompanyId, JobId, ListId,
};
use casebridge_domain::integrations::{KindSupport, Provider, StatusSlot, Toggles};
use casebridge_domain::model::{Case, Client};
use casebridge_domain::ValidationError;
use casebridge_files::Files;
use casebridge_queue::Registry;
use casebridge_store::documents::Document;
use casebridge_store::imports::Import;
use casebridge_store::integrations::{CrmField, CrmItem, Integration};
use casebridge_store::{Conn, Store, StoreError, Tx};
use casebridge_webhooks::policy::UrlPolicy;
use jiff::Timestamp;
use serde_json::{Map, Value};

pub use crate::outbox::Resumed;

use crate::{lawruler, smartadvocate};

/// How a stored secret is shown: a fixed mask, not even its first characters.
pub const SECRET_MASK: &str = "••••••••";

/// A change on the platform that CRMs may need to hear about. The connector decides, from its
/// integration's settings, whether it becomes an outbound operation.
#[derive(Debug, Clone, Copy)]
pub enum PlatformChange<'a> {
    /// A case was created (`before` is `None`) or updated.
    Case {
        before: Option<&'a Case>,
        after: &'a Case,
    },
    Client {
        before: &'a Client,
        after: &'a Client,
    },
    /// A message was sent or received, or its delivery status changed.
    Message(&'a Message),
    /// A call's analysis arrived (`revised` when it replaces an earlier one).
    CallAnalyzed { call: &'a Call, revised: bool },
    RecordingStored {
        call: &'a Call,
        recording: &'a Document,
    },
    DocumentStored {
        case: &'a Case,
        document: &'a Document,
    },
}

/// A request an outbound operation sends, as a dry run shows it: built by the same code the
/// CRM client sends with, secrets replaced by `[redacted]`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct PlannedRequest {
    /// What the request does ("update lead", "read case").
    pub operation: String,
    pub method: String,
    pub url: String,
    /// Where the parameters go: `form`, `query`, `json` or `multipart`.
    pub carried_in: String,
    /// Form, query or multipart text parameters, in order.
    pub params: Vec<(String, String)>,
    /// A JSON body.
    pub body: Option<Value>,
    /// How it is authenticated, redacted (`Bearer [redacted]`), if by a header.
    pub authorization: Option<String>,
    /// What the dry run does not show in full (a file's bytes) or fills in at send time.
    pub note: Option<String>,
}

/// Why a connection could not be made.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// A value is missing or wrong; the CRM's own answer names which when it can.
    #[error(transparent)]
    Invalid(#[from] ValidationError),
    /// The CRM cannot be reached or did not answer usably; the values may be right.
    #[error("{0}")]
    Unavailable(String),
}

/// Why the catalog could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    #[error("not connected")]
    NotConnected,
    /// The stored connection cannot be used (say, a Client Root the URL policy now refuses).
    #[error(transparent)]
    Invalid(ValidationError),
    /// The CRM refused or failed; the message says why, for the admin.
    #[error("{0}")]
    Load(String),
    #[error("{0}")]
    Internal(String),
}

/// The CRM's case types, statuses and custom fields (per case type), as loaded.
#[derive(Debug, Clone, Default)]
pub struct Catalog {
    pub case_types: Vec<CrmItem>,
    pub statuses: Vec<CrmItem>,
    pub fields: Vec<CrmField>,
}

/// An inbound webhook's body, as the HTTP layer read it. Reading problems travel here too, so
/// that an unknown webhook token is reported before anything about the body.
#[derive(Debug)]
pub enum InboundBody {
    Json(Vec<u8>),
    Form(Vec<u8>),
    /// Text fields of a multipart form (files are not part of a record).
    Fields(Fields),
    /// The body could not be read: the reason, and whether it was too large.
    Unreadable {
        message: String,
        too_large: bool,
    },
    Unsupported,
}

/// A webhook's fields as name/value pairs, in the order sent.
pub type Fields = Vec<(String, String)>;

/// The fields of a webhook's query string, and of its body.
#[derive(Debug, Clone, Default)]
pub struct InboundFields {
    pub query: Fields,
    pub body: Fields,
}

/// One inbound webhook, parsed by its connector: which CRM record it is about, a hash of its
/// content (for the dedupe receipt), and the parsed record for [`Connector::apply_inbound`].
#[derive(Debug, Clone)]
pub struct InboundRecord {
    pub record_id: String,
    pub content_hash: String,
    pub(crate) parsed: Parsed,
}

#[derive(Debug, Clone)]
pub(crate) enum Parsed {
    LawRuler(lawruler::inbound::LeadWebhook),
    SmartAdvocate(smartadvocate::record::CaseRecord),
}

/// Why an inbound webhook's body could not be read.
#[derive(Debug, Clone)]
pub enum InboundRejection {
    /// The body is not in a format the CRM sends (JSON/form that does not parse).
    Malformed(String),
    TooLarge(String),
    /// A content type the CRM does not send; the message says which it does.
    Unsupported(String),
}

/// Why an inbound webhook's fields do not make a record: the field to name, the message, and
/// the CRM record the webhook was about when it could be read (for the sync log).
#[derive(Debug, Clone)]
pub struct InvalidInbound {
    pub field: &'static str,
    pub message: String,
    pub record_ref: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    /// The record names something that does not exist here (a list, a campaign) or carries
    /// values the platform cannot accept.
    #[error(transparent)]
    Invalid(#[from] ValidationError),
    #[error(transparent)]
    Store(StoreError),
}

impl From<StoreError> for IngestError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Invalid(v) => IngestError::Invalid(v),
            other => IngestError::Store(other),
        }
    }
}

/// What applying an inbound record did.
#[derive(Debug, Clone, PartialEq)]
pub struct Applied {
    pub case_id: CaseId,
    pub client_id: ClientId,
    pub case_created: bool,
    pub client_created: bool,
    pub case_type_id: CaseTypeId,
    pub case_status_id: CaseStatusId,
    /// Lists the case was put on (by the URL/Params directive or by auto-add rules).
    pub lists_added: Vec<ListId>,
    pub lists_removed: Vec<ListId>,
    /// Mappings created because the CRM value had none (case type links, status mappings).
    pub auto_linked: Vec<String>,
}

/// Why an import from a CRM's API cannot start.
#[derive(Debug, thiserror::Error)]
pub enum ApiImportError {
    /// Not connected; the message says what to do.
    #[error("{0}")]
    NotConnected(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The queue-facing settings a connector's job handlers need.
#[derive(Debug, Clone, Copy)]
pub struct JobSettings {
    /// Outbound requests per minute per Law Ruler connection (0: unlimited).
    pub requests_per_minute: u32,
    /// Outbound requests per minute per SmartAdvocate connection (0: unlimited).
    pub smartadvocate_requests_per_minute: u32,
}

/// One CRM, as the service layer sees it. Everything here is provider-neutral; the CRM's module
/// translates.
#[async_trait]
pub trait Connector: Send + Sync {
    fn provider(&self) -> Provider;

    // ---- connection ----

    /// Checks the connect form's values (`input` is the JSON object an admin sent), verifies
    /// them against the CRM (`policy` vets where they point), and returns them sealed for the
    /// integration row.
    async fn connect(
        &self,
        company: CompanyId,
        input: &Value,
        policy: &UrlPolicy,
    ) -> Result<String, ConnectError>;

    /// The stored connection as an admin may see it (secrets as a fixed mask), or `None` when
    /// not connected.
    fn masked_credentials(&self, i: &Integration) -> Result<Option<Map<String, Value>>, String>;

    // ---- catalog ----

    /// Loads the case types, statuses and fields of the connected account.
    async fn load_catalog(&self, i: &Integration) -> Result<Catalog, CatalogError>;

    /// Which slot of a case's status a status of the catalog fills: a platform status maps to
    /// at most one CRM status per slot, and only primary mappings match arriving records. The
    /// default, for a CRM with one status list, puts every status in the primary slot, so a
    /// platform status maps to one CRM status.
    fn status_slot(&self, _status: &CrmItem) -> StatusSlot {
        StatusSlot::Primary
    }

    // ---- inbound ----

    /// Why a webhook must be ignored (not connected, turned off), or `None` to apply it.
    fn inbound_gate(&self, i: &Integration) -> Option<String>;

    /// The fields of a webhook's query string and body.
    fn inbound_fields(
        &self,
        query: &str,
        body: InboundBody,
    ) -> Result<InboundFields, InboundRejection>;

    /// Parses a webhook's fields into a record. No I/O.
    fn parse_inbound(
        &self,
        query: &[(String, String)],
        body: &[(String, String)],
    ) -> Result<InboundRecord, InvalidInbound>;

    /// What the CRM calls the record a webhook is about ("lead", "case"), for messages.
    fn record_noun(&self) -> &'static str {
        "record"
    }

    /// Applies a parsed record inside the caller's transaction (whole or not at all).
    async fn apply_inbound(
        &self,
        tx: &mut Tx,
        company: CompanyId,
        record: &InboundRecord,
        now: Timestamp,
    ) -> Result<Applied, IngestError>;

    // ---- outbound ----

    /// Records the outbound operations a platform change causes, in the change's transaction
    /// (the CRM outbox). Does nothing when the integration is not connected, not enabled, or the
    /// change's kind is turned off.
    async fn record_change(
        &self,
        tx: &mut Tx,
        company: CompanyId,
        change: &PlatformChange<'_>,
        now: Timestamp,
    ) -> Result<(), StoreError>;

    /// Operations parked by a configuration error go out again, in order (after a reconnect).
    /// Returns how many.
    async fn requeue_blocked(
        &self,
        tx: &mut Tx,
        company: CompanyId,
        now: Timestamp,
    ) -> Result<u64, StoreError>;

    /// Operations waiting for a run of the integration (hourly or daily frequency) later than
    /// `at` become due by `at` (`at` = `now`: at once), in the caller's transaction ("run now", a
    /// change of frequency). Returns how many.
    async fn release_batched(
        &self,
        tx: &mut Tx,
        company: CompanyId,
        at: Timestamp,
        now: Timestamp,
    ) -> Result<u64, StoreError>;

    /// Sends a failed operation again (an admin's retry): it becomes pending and is queued
    /// behind the lead's other operations. Returns false when it is not failed (any more).
    async fn retry_failed(
        &self,
        tx: &mut Tx,
        company: CompanyId,
        op_id: &str,
        now: Timestamp,
    ) -> Result<bool, StoreError>;

    /// Whether status changes are held while status sync is off, to be skipped or replayed
    /// when it is turned on again. `false`: the CRM has no status sync.
    fn holds_status_changes(&self) -> bool;

    /// Why this version neither receives records from the CRM nor sends changes to it, for the
    /// admin; `None` when it does both (the toggles then decide).
    fn sync_unavailable(&self) -> Option<String> {
        None
    }

    /// The permissions [`Connector::connect`] checks the API user has, in the words its error
    /// uses ("lacks permission for <check>"); empty when connecting checks none separately.
    fn permission_checks(&self) -> &'static [&'static str] {
        &[]
    }

    /// Whether these toggles send status changes now (otherwise they are held, when
    /// [`Connector::holds_status_changes`]). Turning this from false to true is a resume: the
    /// admin chooses what happens to the held changes.
    fn sends_status(&self, t: &Toggles) -> bool {
        t.gates().sync_statuses
    }

    /// The kinds of data this connector moves each way (selective sync shows the others as
    /// not available).
    fn data_kinds(&self) -> KindSupport;

    /// The requests an outbound operation on CRM record `record_id` sends, as a dry run shows
    /// them: built by the CRM client's own request parts, secrets redacted, nothing sent. `Err`
    /// says why they cannot be shown (not connected, a stored connection that cannot be used).
    fn plan_operation(
        &self,
        i: &Integration,
        record_id: &str,
        action: &OpAction,
    ) -> Result<Vec<PlannedRequest>, String>;

    /// Until when the connection's CRM token (kept in memory only) is used before it is
    /// renewed; `None` when there is none now or the CRM has no such token.
    async fn token_valid_until(&self, _i: &Integration) -> Option<Timestamp> {
        None
    }

    /// Status changes held while status sync was off.
    async fn held_status_changes(
        &self,
        conn: &mut Conn,
        company: CompanyId,
    ) -> Result<u64, StoreError>;

    /// Skips or replays the held status changes.
    async fn resume_status_sync(
        &self,
        tx: &mut Tx,
        company: CompanyId,
        mode: ResumeMode,
        now: Timestamp,
    ) -> Result<Resumed, StoreError>;

    // ---- imports ----

    /// Checks an import file and counts its records; a file the CRM's export cannot be is
    /// refused with the field to name (`file`, `columns`).
    fn check_import_file(&self, text: &str) -> Result<u64, ValidationError>;

    /// Stores an import of `text` and its job, in the caller's transaction.
    async fn enqueue_file_import(
        &self,
        tx: &mut Tx,
        company: CompanyId,
        file_name: Option<&str>,
        text: &str,
        total_rows: u64,
        now: Timestamp,
    ) -> Result<Import, StoreError>;

    /// Stores an import read from the CRM's API (records changed since `since`), in the caller's
    /// transaction. Needs a connected integration.
    async fn enqueue_api_import(
        &self,
        tx: &mut Tx,
        company: CompanyId,
        since: Option<Timestamp>,
        now: Timestamp,
    ) -> Result<Import, ApiImportError>;

    // ---- pulls ----

    /// Enqueues a pull of the CRM's changes now (on demand), in the caller's transaction,
    /// unless one is already waiting; returns the new job's id. Errors when this CRM is not
    /// pulled.
    async fn enqueue_pull(
        &self,
        tx: &mut Tx,
        company: CompanyId,
        now: Timestamp,
    ) -> Result<Option<JobId>, StoreError>;

    // ---- jobs ----

    /// Registers the connector's job handlers (sending one operation, pulling changes since the
    /// last pull, imports) on the `crm` queue's registry.
    fn register_jobs(
        &self,
        registry: Registry,
        store: Store,
        files: Files,
        clock: Arc<dyn Clock>,
        settings: JobSettings,
    ) -> Registry;
}

/// The queue every connector's jobs run on (operations, pulls, imports).
pub const QUEUE: &str = "crm";

/// Every CRM casebridge can connect, by provider.
#[derive(Clone)]
pub struct Connectors {
    all: Vec<Arc<dyn Connector>>,
}

impl Connectors {
    pub fn new(
        lawruler: lawruler::connection::Clients,
        smartadvocate: smartadvocate::connection::Clients,
    ) -> Self {
        Self {
            all: vec![
                Arc::new(lawruler::LawRuler::new(lawruler)),
                Arc::new(smartadvocate::SmartAdvocate::new(smartadvocate)),
            ],
        }
    }

    /// The connector of a provider; `None` for one casebridge cannot connect yet.
    pub fn get(&self, provider: Provider) -> Option<&Arc<dyn Connector>> {
        self.all.iter().find(|c| c.provider() == provider)
    }

    pub fn all(&self) -> impl Iterator<Item = &Arc<dyn Connector>> {
        self.all.iter()
    }

    /// Every connector's job handlers on one registry (the `crm` queue's).
    pub fn register_jobs(
        &self,
        registry: Registry,
        store: &Store,
        files: &Files,
        clock: &Arc<dyn Clock>,
        settings: JobSettings,
    ) -> Registry {
        self.all.iter().fold(registry, |r, c| {
            c.register_jobs(r, store.clone(), files.clone(), clock.clone(), settings)
        })
    }
}
