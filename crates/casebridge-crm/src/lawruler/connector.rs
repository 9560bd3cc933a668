//! Law Ruler behind the [`Connector`] interface: this module translates between the
//! provider-neutral calls of the service layer and Law Ruler's modules (client, inbound, ingest,
//! outbound, import, pull).

use std::sync::Arc;

use async_trait::async_trait;
use casebridge_domain::clock::Clock;
use casebridge_domain::crm_ops::ResumeMode;
use casebridge_domain::error::Validator;
use casebridge_domain::ids::{CompanyId, JobId};
use casebridge_domain::integrations::{Provider, Toggles};
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

use super::client::{self, LawRulerError};
use super::connection::{self, Clients, StoredCredentials};
use super::import::{self, FileError};
use super::inbound;
use super::{ingest, outbound, pull};
use crate::connector::{
    ApiImportError, Applied, Catalog, CatalogError, ConnectError, Connector, InboundBody,
    InboundFields, InboundRecord, InboundRejection, IngestError, InvalidInbound, JobSettings,
    Parsed, PlannedRequest, PlatformChange, Resumed,
};
use casebridge_domain::crm_ops::OpAction;
use casebridge_domain::integrations::{DataKind, KindSupport};

/// How secrets are shown: a fixed mask, not even their first characters.
pub const SECRET_MASK: &str = "••••••••";

/// The Law Ruler connector.
pub struct LawRuler {
    clients: Clients,
}

impl LawRuler {
    pub fn new(clients: Clients) -> Self {
        Self { clients }
    }
}

/// The five connect values, as an admin sends them.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ConnectForm {
    username: String,
    password: String,
    client_root: String,
    client_secret: String,
    key: String,
}

impl ConnectForm {
    fn parse(input: &Value) -> Result<StoredCredentials, ValidationError> {
        let form: ConnectForm = serde_json::from_value(input.clone())
            .map_err(|e| ValidationError::single("body", e.to_string()))?;
        let mut v = Validator::new();
        for (field, value) in [
            ("username", &form.username),
            ("password", &form.password),
            ("client_root", &form.client_root),
            ("client_secret", &form.client_secret),
            ("key", &form.key),
        ] {
            if value.trim().is_empty() {
                v.push(field, "is required");
            }
        }
        v.finish()?;
        Ok(StoredCredentials {
            username: form.username.trim().to_owned(),
            password: form.password,
            client_root: form.client_root.trim().to_owned(),
            client_secret: form.client_secret.trim().to_owned(),
            key: form.key.trim().to_owned(),
        })
    }
}

fn client_root_error(e: impl std::fmt::Display) -> ValidationError {
    ValidationError::single("client_root", e.to_string())
}

#[async_trait]
impl Connector for LawRuler {
    fn data_kinds(&self) -> KindSupport {
        // In: webhooks and the pull of changed leads (cases, clients, statuses) and notes.
        // Out: the outbound operations (LR9, LR10, LR11, LR15).
        KindSupport {
            inbound: &[
                DataKind::Cases,
                DataKind::Clients,
                DataKind::NotesAndMessages,
                DataKind::Statuses,
            ],
            outbound: &[
                DataKind::MappedFields,
                DataKind::Statuses,
                DataKind::NotesAndMessages,
                DataKind::CallRecords,
                DataKind::Documents,
            ],
            status_needs_send: false,
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
            .ok_or_else(|| "Law Ruler is not connected".to_owned())?;
        outbound::plan(&client, record_id, action).map_err(|e| e.to_string())
    }

    fn provider(&self) -> Provider {
        Provider::LawRuler
    }

    async fn connect(
        &self,
        company: CompanyId,
        input: &Value,
        policy: &UrlPolicy,
    ) -> Result<String, ConnectError> {
        let stored = ConnectForm::parse(input)?;
        let client = self
            .clients
            .build(stored.clone().into_credentials())
            .map_err(client_root_error)?;
        // Where the Client Root points is checked like any outbound destination (W2), so a
        // refusal reads as such rather than as "cannot connect".
        policy
            .vet(client.client_root().as_str())
            .await
            .map_err(client_root_error)?;
        client.verify().await.map_err(|e| match e {
            client::ConnectError::WrongValue { field, message } => {
                ConnectError::Invalid(ValidationError::single(field.as_str(), message))
            }
            other => ConnectError::Unavailable(other.to_string()),
        })?;
        Ok(connection::seal(self.clients.keyring(), company, &stored))
    }

    fn masked_credentials(&self, i: &Integration) -> Result<Option<Map<String, Value>>, String> {
        Ok(connection::open(self.clients.keyring(), i)?.map(|c| {
            let mut m = Map::new();
            m.insert("username".into(), c.username.into());
            m.insert("password".into(), SECRET_MASK.into());
            m.insert("client_root".into(), c.client_root.into());
            m.insert("client_secret".into(), SECRET_MASK.into());
            m.insert("key".into(), SECRET_MASK.into());
            m
        }))
    }

    async fn load_catalog(&self, i: &Integration) -> Result<Catalog, CatalogError> {
        let creds = connection::open(self.clients.keyring(), i)
            .map_err(CatalogError::Internal)?
            .ok_or(CatalogError::NotConnected)?;
        let client = self
            .clients
            .build(creds.into_credentials())
            .map_err(|e| CatalogError::Invalid(client_root_error(e)))?;
        let loaded = async {
            let case_types = client.case_types().await?;
            let statuses = client.statuses().await?;
            let mut fields = Vec::new();
            for ct in &case_types {
                for f in client.custom_fields(&ct.id).await? {
                    fields.push(CrmField {
                        crm_case_type_id: ct.id.clone(),
                        key: f.key,
                        crm_field_id: f.id,
                        label: f.label,
                        input_type: f.input_type,
                        form_section: f.form_section,
                    });
                }
            }
            Ok::<_, LawRulerError>((case_types, statuses, fields))
        }
        .await
        .map_err(|e| CatalogError::Load(e.to_string()))?;
        let (case_types, statuses, fields) = loaded;
        let item = |id: &str, name: &str| CrmItem {
            crm_id: id.to_owned(),
            name: name.to_owned(),
        };
        Ok(Catalog {
            case_types: case_types.iter().map(|c| item(&c.id, &c.name)).collect(),
            statuses: statuses.iter().map(|c| item(&c.id, &c.name)).collect(),
            fields,
        })
    }

    fn inbound_gate(&self, i: &Integration) -> Option<String> {
        let t = Toggles::from_settings(&i.settings);
        if i.credentials_sealed.is_none() {
            Some("Law Ruler is not connected".to_owned())
        } else if !t.enable_integration {
            Some("the integration is turned off (Enable Integration)".to_owned())
        } else if !t.direction.receives() {
            Some(
                "the sync direction is one way out (platform to Law Ruler): nothing is received"
                    .to_owned(),
            )
        } else if !t.gates().receive {
            Some("receiving data from Law Ruler is turned off".to_owned())
        } else {
            None
        }
    }

    fn inbound_fields(
        &self,
        query: &str,
        body: InboundBody,
    ) -> Result<InboundFields, InboundRejection> {
        let query = inbound::pairs_from_form(query.as_bytes());
        let body = match body {
            InboundBody::Json(bytes) => inbound::pairs_from_json(&bytes)
                .map_err(|e| InboundRejection::Malformed(e.to_string()))?,
            InboundBody::Form(bytes) => inbound::pairs_from_form(&bytes),
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
                    "send the lead as JSON, form-encoded or multipart/form-data".into(),
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
        match inbound::parse_lead(query, body) {
            Ok(lead) => Ok(InboundRecord {
                record_id: lead.lead_id.clone(),
                content_hash: inbound::content_hash(query, body),
                parsed: Parsed::LawRuler(lead),
            }),
            Err(e) => Err(InvalidInbound {
                field: e.field(),
                message: e.to_string(),
                record_ref: body
                    .iter()
                    .find(|(k, _)| inbound::normalize_key(k) == "leadid")
                    .map(|(_, v)| v.clone()),
            }),
        }
    }

    async fn apply_inbound(
        &self,
        tx: &mut Tx,
        company: CompanyId,
        record: &InboundRecord,
        now: Timestamp,
    ) -> Result<Applied, IngestError> {
        match &record.parsed {
            Parsed::LawRuler(lead) => ingest::apply_lead(tx, company, lead, now).await,
            Parsed::SmartAdvocate(_) => Err(ValidationError::single(
                "body",
                "a SmartAdvocate record cannot be applied to Law Ruler",
            )
            .into()),
        }
    }

    fn record_noun(&self) -> &'static str {
        "lead"
    }

    async fn enqueue_pull(
        &self,
        tx: &mut Tx,
        company: CompanyId,
        now: Timestamp,
    ) -> Result<Option<JobId>, StoreError> {
        pull::enqueue_pull(tx, company, now).await
    }

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
            PlatformChange::Client { before, after } => {
                outbound::client_changed(tx, company, before, after, now).await
            }
            PlatformChange::Message(m) => outbound::message_recorded(tx, company, m, now).await,
            PlatformChange::CallAnalyzed { call, revised } => {
                outbound::call_analyzed(tx, company, call, revised, now).await
            }
            PlatformChange::RecordingStored { call, recording } => {
                outbound::recording_stored(tx, company, call, recording, now).await
            }
            PlatformChange::DocumentStored { case, document } => {
                outbound::document_stored(tx, company, case, document, now).await
            }
        }
    }

    async fn requeue_blocked(
        &self,
        tx: &mut Tx,
        company: CompanyId,
        now: Timestamp,
    ) -> Result<u64, StoreError> {
        outbound::requeue_blocked(tx, company, now).await
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
        outbound::retry_failed(tx, company, op_id, now).await
    }

    fn holds_status_changes(&self) -> bool {
        true
    }

    async fn held_status_changes(
        &self,
        conn: &mut Conn,
        company: CompanyId,
    ) -> Result<u64, StoreError> {
        outbound::held_count(conn, company).await
    }

    async fn resume_status_sync(
        &self,
        tx: &mut Tx,
        company: CompanyId,
        mode: ResumeMode,
        now: Timestamp,
    ) -> Result<Resumed, StoreError> {
        outbound::resume_status_sync(tx, company, mode, now).await
    }

    fn check_import_file(&self, text: &str) -> Result<u64, ValidationError> {
        import::check(text).map_err(|e| {
            let field = match e {
                FileError::MissingColumns(_) => "columns",
                FileError::Empty | FileError::BadHeader(_) => "file",
            };
            ValidationError::single(field, e.to_string())
        })
    }

    async fn enqueue_file_import(
        &self,
        tx: &mut Tx,
        company: CompanyId,
        file_name: Option<&str>,
        text: &str,
        total_rows: u64,
        now: Timestamp,
    ) -> Result<Import, StoreError> {
        import::enqueue(tx, company, file_name, text, total_rows, now).await
    }

    async fn enqueue_api_import(
        &self,
        tx: &mut Tx,
        company: CompanyId,
        since: Option<Timestamp>,
        now: Timestamp,
    ) -> Result<Import, ApiImportError> {
        import::enqueue_from_api(tx, company, since, now)
            .await
            .map_err(|e| match e {
                import::ApiImportError::NotConnected => ApiImportError::NotConnected(e.to_string()),
                import::ApiImportError::Store(e) => ApiImportError::Store(e),
            })
    }

    fn register_jobs(
        &self,
        registry: Registry,
        store: Store,
        files: Files,
        clock: Arc<dyn Clock>,
        settings: JobSettings,
    ) -> Registry {
        let registry = import::register_with_clients(
            registry,
            store.clone(),
            clock.clone(),
            self.clients.clone(),
        );
        let registry = pull::register(registry, store.clone(), clock.clone(), self.clients.clone());
        outbound::register(
            registry,
            outbound::OpHandler::new(
                store,
                files,
                clock,
                self.clients.clone(),
                settings.requests_per_minute,
            ),
        )
    }
}
