//! SmartAdvocate behind the [`Connector`] interface.
//!
//! Catalog model (SA2): SmartAdvocate has status *types*, each with values; the type named
//! "Status" is the primary case status, the others hold second statuses (a case has one current
//! value per type, e.g. "Dialer Status" = "To Dial"). casebridge's catalog has one status list,
//! so both go into it: a primary status as itself (CRM id = its status id, name = its name), a
//! second status as the pair (CRM id `<type id>:<status id>`, name `Type = Value`, see
//! [`second_status_id`]). A platform status maps to one primary status and to at most one value
//! of each second-status type ([`status_slot`]: the slot of a mapping is its status type), e.g.
//! "Signed" → "Signed Up" and "Dialer Status = Do not Dial". UDFs are the custom fields of each
//! case type: key = the UDF name (values are matched by exact name), label = its short name when
//! it has one.

use std::sync::Arc;

use async_trait::async_trait;
use casebridge_domain::clock::Clock;
use casebridge_domain::crm_ops::{OpKind, OpState, ResumeMode};
use casebridge_domain::error::Validator;
use casebridge_domain::ids::{CompanyId, JobId};
use casebridge_domain::integrations::{Provider, StatusSlot, Toggles};
use casebridge_domain::ValidationError;
use casebridge_files::Files;
use casebridge_queue::Registry;
use casebridge_store::imports::Import;
use casebridge_store::integrations::{CrmField, CrmItem, Integration};
use casebridge_store::{Conn, Store, StoreError, Tx};
use casebridge_webhooks::policy::UrlPolicy;
use jiff::Timestamp;
use serde::Deserialize;
use serde_json::{Map, Value};

use super::client::{normalize_base_url, SmartAdvocateError, PERMISSION_CHECKS};
use super::connection::{self, Clients, StoredCredentials};
use super::{import, outbound, pull, record};
use crate::connector::{
    ApiImportError, Applied, Catalog, CatalogError, ConnectError, Connector, InboundBody,
    InboundFields, InboundRecord, InboundRejection, IngestError, InvalidInbound, JobSettings,
    Parsed, PlannedRequest, PlatformChange, Resumed, SECRET_MASK,
};
use crate::lawruler::inbound as lr_inbound;
use casebridge_domain::crm_ops::OpAction;
use casebridge_domain::integrations::{DataKind, KindSupport};

/// Says what this version does not do with SmartAdvocate.
pub const NOT_YET: &str = "is not available for SmartAdvocate in this version (connecting, \
                           loading the catalog, sending changes, pulls, the hook and the import \
                           from the SmartAdvocate API are)";

/// The catalog id of a second status: `<status type id>:<status id>`.
pub fn second_status_id(status_type_id: &str, status_id: &str) -> String {
    format!("{status_type_id}:{status_id}")
}

/// The slot a catalog status fills: a second status (`<type id>:<status id>`, named
/// `Type = Value`) its type's, any other the primary status (type "Status").
pub fn status_slot(status: &CrmItem) -> StatusSlot {
    match status.crm_id.split_once(':') {
        Some((type_id, _)) => StatusSlot::Second {
            type_id: type_id.to_owned(),
            type_name: status
                .name
                .split_once(" = ")
                .map_or(type_id, |(t, _)| t)
                .to_owned(),
        },
        None => StatusSlot::Primary,
    }
}

/// The SmartAdvocate connector.
pub struct SmartAdvocate {
    clients: Clients,
}

impl SmartAdvocate {
    pub fn new(clients: Clients) -> Self {
        Self { clients }
    }
}

/// The connect values, as an admin sends them.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ConnectForm {
    base_url: String,
    username: String,
    password: String,
}

impl ConnectForm {
    fn parse(input: &Value) -> Result<StoredCredentials, ValidationError> {
        let form: ConnectForm = serde_json::from_value(input.clone())
            .map_err(|e| ValidationError::single("body", e.to_string()))?;
        let mut v = Validator::new();
        for (field, value) in [
            ("base_url", &form.base_url),
            ("username", &form.username),
            ("password", &form.password),
        ] {
            if value.trim().is_empty() {
                v.push(field, "is required");
            }
        }
        v.finish()?;
        let base = normalize_base_url(&form.base_url)
            .map_err(|m| ValidationError::single("base_url", m))?;
        Ok(StoredCredentials {
            base_url: base.as_str().trim_end_matches('/').to_owned(),
            username: form.username.trim().to_owned(),
            password: form.password,
        })
    }
}

fn not_yet(what: &str) -> String {
    format!("{what} {NOT_YET}")
}

#[async_trait]
impl Connector for SmartAdvocate {
    fn data_kinds(&self) -> KindSupport {
        // In: the hook and the pull (cases, contacts, notes, documents) with their statuses.
        // Out: UDFs, statuses and second statuses, notes for messages and calls, the dialer's
        // status types; documents are not sent to SmartAdvocate in this version. "Send mapping
        // to SmartAdvocate" (the `send` toggle) stops status changes too.
        KindSupport {
            inbound: &[
                DataKind::Cases,
                DataKind::Clients,
                DataKind::NotesAndMessages,
                DataKind::Documents,
                DataKind::Statuses,
            ],
            outbound: &[
                DataKind::MappedFields,
                DataKind::Statuses,
                DataKind::NotesAndMessages,
                DataKind::CallRecords,
            ],
            status_needs_send: true,
        }
    }

    fn plan_operation(
        &self,
        i: &Integration,
        record_id: &str,
        action: &OpAction,
    ) -> Result<Vec<PlannedRequest>, String> {
        let client = self
            .clients
            .for_integration(i)
            .map_err(|e| e.to_string())?
            .ok_or_else(|| "SmartAdvocate is not connected".to_owned())?;
        outbound::plan(&client, record_id, action).map_err(|e| e.to_string())
    }

    fn provider(&self) -> Provider {
        Provider::SmartAdvocate
    }

    async fn connect(
        &self,
        company: CompanyId,
        input: &Value,
        policy: &UrlPolicy,
    ) -> Result<String, ConnectError> {
        let stored = ConnectForm::parse(input)?;
        let base_error = |m: String| ConnectError::Invalid(ValidationError::single("base_url", m));
        policy
            .vet(&stored.base_url)
            .await
            .map_err(|e| base_error(e.to_string()))?;
        let client = self
            .clients
            .build(stored.clone().into_credentials())
            .map_err(|e| base_error(e.to_string()))?;
        let denied = client.verify().await.map_err(|e| match e {
            SmartAdvocateError::BaseUrl(m) => base_error(m),
            SmartAdvocateError::WrongCredentials => ConnectError::Invalid(ValidationError::single(
                "password",
                "SmartAdvocate did not accept this username and password (it does not say \
                 which is wrong)",
            )),
            other => ConnectError::Unavailable(other.to_string()),
        })?;
        if !denied.is_empty() {
            let mut v = Validator::new();
            for op in denied {
                v.push(
                    "username",
                    format!(
                        "the API user {} lacks permission for {op}; grant it in SmartAdvocate",
                        stored.username
                    ),
                );
            }
            v.finish()?;
        }
        Ok(connection::seal(self.clients.keyring(), company, &stored))
    }

    fn masked_credentials(&self, i: &Integration) -> Result<Option<Map<String, Value>>, String> {
        Ok(connection::open(self.clients.keyring(), i)?.map(|c| {
            let mut m = Map::new();
            m.insert("base_url".into(), c.base_url.into());
            m.insert("username".into(), c.username.into());
            m.insert("password".into(), SECRET_MASK.into());
            m
        }))
    }

    fn status_slot(&self, status: &CrmItem) -> StatusSlot {
        status_slot(status)
    }

    async fn load_catalog(&self, i: &Integration) -> Result<Catalog, CatalogError> {
        let client = self
            .clients
            .for_integration(i)
            .map_err(CatalogError::Internal)?
            .ok_or(CatalogError::NotConnected)?;
        let item = |crm_id: String, name: String| CrmItem { crm_id, name };
        let loaded = async {
            let case_types = client.case_types().await?;
            let mut statuses = Vec::new();
            for t in client.status_types().await? {
                let primary = t.name.eq_ignore_ascii_case("Status");
                for s in client.statuses(&t.id).await? {
                    statuses.push(if primary {
                        item(s.id, s.name)
                    } else {
                        item(
                            second_status_id(&t.id, &s.id),
                            format!("{} = {}", t.name, s.name),
                        )
                    });
                }
            }
            let mut fields = Vec::new();
            for ct in &case_types {
                for u in client.udfs(&ct.id).await? {
                    fields.push(CrmField {
                        crm_case_type_id: ct.id.clone(),
                        label: u
                            .udf_short_name
                            .filter(|s| !s.trim().is_empty())
                            .unwrap_or_else(|| u.udf_name.clone()),
                        key: u.udf_name,
                        crm_field_id: u.id,
                        input_type: u.udf_type,
                        form_section: u.udf_group,
                    });
                }
            }
            Ok::<_, SmartAdvocateError>(Catalog {
                case_types: case_types.into_iter().map(|c| item(c.id, c.name)).collect(),
                statuses,
                fields,
            })
        };
        loaded.await.map_err(|e| CatalogError::Load(e.to_string()))
    }

    fn inbound_gate(&self, i: &Integration) -> Option<String> {
        let t = Toggles::from_settings(&i.settings);
        if i.credentials_sealed.is_none() {
            Some("SmartAdvocate is not connected".to_owned())
        } else if !t.enable_integration {
            Some("the integration is turned off (Enable Integration)".to_owned())
        } else if !t.direction.receives() {
            Some(
                "the sync direction is one way out (platform to SmartAdvocate): nothing is \
                 received"
                    .to_owned(),
            )
        } else if !t.gates().receive {
            Some("receiving data from SmartAdvocate is turned off".to_owned())
        } else {
            None
        }
    }

    /// A hook's body is the flat fields of a case record ([`record::LABELS`]) as JSON or
    /// form-encoded (multipart text fields too); the URL's query carries none.
    fn inbound_fields(
        &self,
        query: &str,
        body: InboundBody,
    ) -> Result<InboundFields, InboundRejection> {
        let query = lr_inbound::pairs_from_form(query.as_bytes());
        let body = match body {
            InboundBody::Json(bytes) => lr_inbound::pairs_from_json(&bytes)
                .map_err(|e| InboundRejection::Malformed(e.to_string()))?,
            InboundBody::Form(bytes) => lr_inbound::pairs_from_form(&bytes),
            InboundBody::Fields(fields) => fields,
            InboundBody::Unreadable { message, too_large } => {
                return Err(if too_large {
                    InboundRejection::TooLarge(message)
                } else {
                    InboundRejection::Malformed(message)
                })
            }
            InboundBody::Unsupported => {
                return Err(InboundRejection::Unsupported(
                    "send the case as JSON or form-encoded fields".into(),
                ))
            }
        };
        Ok(InboundFields { query, body })
    }

    fn parse_inbound(
        &self,
        query: &[(String, String)],
        body: &[(String, String)],
    ) -> Result<InboundRecord, InvalidInbound> {
        let fields: Vec<(String, String)> = query.iter().chain(body).cloned().collect();
        match record::parse(&fields) {
            Ok(r) => Ok(InboundRecord {
                record_id: r.case_number.clone(),
                content_hash: record::content_hash(&r),
                parsed: Parsed::SmartAdvocate(r),
            }),
            Err(e) => Err(InvalidInbound {
                field: e.field,
                message: e.message,
                record_ref: record::case_number_in(&fields),
            }),
        }
    }

    fn record_noun(&self) -> &'static str {
        "case"
    }

    async fn apply_inbound(
        &self,
        tx: &mut Tx,
        company: CompanyId,
        inbound: &InboundRecord,
        now: Timestamp,
    ) -> Result<Applied, IngestError> {
        match &inbound.parsed {
            Parsed::SmartAdvocate(r) => record::apply(tx, company, r, now).await,
            Parsed::LawRuler(_) => Err(ValidationError::single(
                "body",
                "a Law Ruler lead cannot be applied to SmartAdvocate",
            )
            .into()),
        }
    }

    async fn enqueue_pull(
        &self,
        tx: &mut Tx,
        company: CompanyId,
        now: Timestamp,
    ) -> Result<Option<JobId>, StoreError> {
        pull::SCHEDULE.enqueue(tx, company, now).await
    }

    /// Case changes (mapped status, mapped UDFs), messages and analysed calls become
    /// operations; recordings and documents are not sent to SmartAdvocate in this version.
    async fn record_change(
        &self,
        tx: &mut Tx,
        company: CompanyId,
        change: &PlatformChange<'_>,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        match *change {
            PlatformChange::Case { before, after } => {
                outbound::case_changed(tx, company, before, after, now).await
            }
            PlatformChange::Message(m) => outbound::message_recorded(tx, company, m, now).await,
            PlatformChange::CallAnalyzed { call, revised } => {
                outbound::call_analyzed(tx, company, call, revised, now).await
            }
            // A client's fields reach SmartAdvocate with its case's next change.
            PlatformChange::Client { .. }
            | PlatformChange::RecordingStored { .. }
            | PlatformChange::DocumentStored { .. } => Ok(()),
        }
    }

    async fn requeue_blocked(
        &self,
        tx: &mut Tx,
        company: CompanyId,
        now: Timestamp,
    ) -> Result<u64, StoreError> {
        outbound::OUTBOX.requeue_blocked(tx, company, now).await
    }

    async fn release_batched(
        &self,
        tx: &mut Tx,
        company: CompanyId,
        at: Timestamp,
        now: Timestamp,
    ) -> Result<u64, StoreError> {
        outbound::OUTBOX.release_batched(tx, company, at, now).await
    }

    async fn retry_failed(
        &self,
        tx: &mut Tx,
        company: CompanyId,
        op_id: &str,
        now: Timestamp,
    ) -> Result<bool, StoreError> {
        outbound::OUTBOX.retry_failed(tx, company, op_id, now).await
    }

    fn holds_status_changes(&self) -> bool {
        true
    }

    /// Status changes go out only while "Send mapping to SmartAdvocate" (`send`) and status
    /// sync are both on.
    fn sends_status(&self, t: &Toggles) -> bool {
        outbound::state_for(t, OpKind::Status) == Some(OpState::Pending)
    }

    fn sync_unavailable(&self) -> Option<String> {
        None
    }

    async fn token_valid_until(&self, i: &Integration) -> Option<Timestamp> {
        let client = self.clients.for_integration(i).ok()??;
        client.token_valid_until().await
    }

    fn permission_checks(&self) -> &'static [&'static str] {
        &PERMISSION_CHECKS
    }

    async fn held_status_changes(
        &self,
        conn: &mut Conn,
        company: CompanyId,
    ) -> Result<u64, StoreError> {
        outbound::OUTBOX.held_count(conn, company).await
    }

    async fn resume_status_sync(
        &self,
        tx: &mut Tx,
        company: CompanyId,
        mode: ResumeMode,
        now: Timestamp,
    ) -> Result<Resumed, StoreError> {
        outbound::OUTBOX
            .resume_status_sync(tx, company, mode, now)
            .await
    }

    fn check_import_file(&self, _text: &str) -> Result<u64, ValidationError> {
        Err(ValidationError::single("file", not_yet("importing a file")))
    }

    async fn enqueue_file_import(
        &self,
        _tx: &mut Tx,
        _company: CompanyId,
        _file_name: Option<&str>,
        _text: &str,
        _total_rows: u64,
        _now: Timestamp,
    ) -> Result<Import, StoreError> {
        Err(StoreError::Invalid(ValidationError::single(
            "file",
            not_yet("importing a file"),
        )))
    }

    /// The initial import of existing cases (changed since `since`; every case when none).
    async fn enqueue_api_import(
        &self,
        tx: &mut Tx,
        company: CompanyId,
        since: Option<Timestamp>,
        now: Timestamp,
    ) -> Result<Import, ApiImportError> {
        import::enqueue(tx, company, since, now)
            .await
            .map_err(|e| match e {
                import::EnqueueError::NotConnected => ApiImportError::NotConnected(e.to_string()),
                import::EnqueueError::Store(e) => ApiImportError::Store(e),
            })
    }

    /// Sending operations, the pull, and the import.
    fn register_jobs(
        &self,
        registry: Registry,
        store: Store,
        files: Files,
        clock: Arc<dyn Clock>,
        settings: JobSettings,
    ) -> Registry {
        let registry = pull::register(
            registry,
            store.clone(),
            clock.clone(),
            self.clients.clone(),
            files,
        );
        let registry =
            import::register(registry, store.clone(), clock.clone(), self.clients.clone());
        outbound::register(
            registry,
            outbound::OpHandler::new(
                store,
                clock,
                self.clients.clone(),
                settings.smartadvocate_requests_per_minute,
            ),
        )
    }
}
