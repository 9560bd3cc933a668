//! Applying a CRM record to the platform, whatever the CRM: what Law Ruler's leads and
//! SmartAdvocate's cases share. Case type and status go through the integration's mappings (a
//! value without one is mapped to the platform record of the same name, created if needed, so
//! the next record is direct); the client is matched by the CRM's contact id and the case by
//! the CRM's record id (external refs of the CRM's provider). Everything runs inside the
//! caller's transaction; nothing here writes outbound operations, so nothing echoes back.

use casebridge_domain::ids::{CampaignId, CaseId, CaseStatusId, CaseTypeId, ClientId, CompanyId};
use casebridge_domain::integrations::CrmValue;
use casebridge_domain::records::{
    CasePatch, ClientFields, ClientPatch, CustomFields, ExternalRef, Name, NamedKind, NewCase,
    NewClient,
};
use casebridge_domain::sync::{Base, RecordOutcome};
use casebridge_store::{
    cases, clients, crm_notes, integrations, named, sync_state, Conn, StoreError, Tx,
};
use jiff::Timestamp;

use crate::conflicts::{self, StatusIn};
use crate::connector::IngestError;
use crate::outbox::Outbox;

/// The CRM a record came from: its provider slug and its name in messages.
#[derive(Debug, Clone, Copy)]
pub struct Source {
    pub provider: &'static str,
    pub name: &'static str,
    /// Where the CRM's outbound operations go (a conflict the platform wins sends its value).
    pub outbox: Outbox,
}

/// The platform record for a CRM value: the mapping if there is one; otherwise a platform record
/// of the same name (created if needed). `notes` gets a line when it was mapped by name.
#[allow(clippy::too_many_arguments)]
async fn resolve_named(
    tx: &mut Tx,
    company: CompanyId,
    source: Source,
    kind: NamedKind,
    value: &CrmValue,
    mapped: Option<String>,
    now: Timestamp,
    notes: &mut Vec<String>,
) -> Result<String, IngestError> {
    if let Some(id) = mapped {
        return Ok(id);
    }
    let conn: &mut Conn = tx;
    let name = Name::parse(kind.label(), &value.name)?;
    // Concurrent first records naming the same new value all get the one record.
    let id = named::find_or_create(conn, company, kind, &name, now)
        .await?
        .id;
    notes.push(format!(
        "{} {} {} ({}) mapped to the {} of the same name",
        source.name,
        kind.label(),
        value.id,
        value.name,
        kind.label()
    ));
    Ok(id)
}

/// The platform case type of a CRM case type: its link, or the case type of the same name (then
/// linked). The CRM case type is marked as used (the setup checklist's).
pub async fn case_type(
    tx: &mut Tx,
    company: CompanyId,
    source: Source,
    value: &CrmValue,
    now: Timestamp,
    notes: &mut Vec<String>,
) -> Result<CaseTypeId, IngestError> {
    let p = source.provider;
    integrations::mark_case_type_used(tx, company, p, &value.id, now).await?;
    let linked = integrations::linked_case_type(tx, company, p, &value.id)
        .await?
        .map(|c| c.to_string());
    let was_linked = linked.is_some();
    let id: CaseTypeId = resolve_named(
        tx,
        company,
        source,
        NamedKind::CaseType,
        value,
        linked,
        now,
        notes,
    )
    .await?
    .parse()
    .expect("stored ids parse");
    if !was_linked {
        integrations::set_link(tx, company, p, &value.id, Some(id)).await?;
    }
    Ok(id)
}

/// The platform status of a CRM status: its mapping, or the status of the same name (then
/// mapped).
pub async fn case_status(
    tx: &mut Tx,
    company: CompanyId,
    source: Source,
    value: &CrmValue,
    now: Timestamp,
    notes: &mut Vec<String>,
) -> Result<CaseStatusId, IngestError> {
    let p = source.provider;
    let mapped = integrations::mapped_status(tx, company, p, &value.id)
        .await?
        .map(|s| s.to_string());
    let was_mapped = mapped.is_some();
    let id: CaseStatusId = resolve_named(
        tx,
        company,
        source,
        NamedKind::CaseStatus,
        value,
        mapped,
        now,
        notes,
    )
    .await?
    .parse()
    .expect("stored ids parse");
    if !was_mapped {
        integrations::add_status_mapping(tx, company, p, id, &value.id).await?;
    }
    Ok(id)
}

/// The client with the CRM contact id `contact_id` (an external ref of the CRM), updated to
/// `fields` when they differ, or created. Returns its id and whether it was created. `field`
/// names the contact id in errors.
pub async fn upsert_client(
    tx: &mut Tx,
    company: CompanyId,
    source: Source,
    field: &str,
    contact_id: &str,
    fields: ClientFields,
    now: Timestamp,
) -> Result<(ClientId, bool), IngestError> {
    match clients::find_by_ref(tx, company, source.provider, contact_id).await {
        Ok(existing) => {
            if existing.fields != fields {
                let patch = ClientPatch {
                    first_name: Some(fields.first_name.clone()),
                    last_name: Some(fields.last_name.clone()),
                    email: fields.email.clone().map(Some),
                    phone: fields.phone.clone().map(Some),
                };
                clients::update(tx, company, existing.id, &patch, now).await?;
            }
            Ok((existing.id, false))
        }
        Err(StoreError::NotFound) => {
            let id = clients::insert(
                tx,
                company,
                &NewClient {
                    fields,
                    external_refs: vec![ExternalRef::parse(field, source.provider, contact_id)?],
                },
                now,
            )
            .await?;
            Ok((id, true))
        }
        Err(e) => Err(e.into()),
    }
}

/// What a CRM record sets on its case.
pub struct CaseValues {
    pub name: Name,
    pub case_type_id: CaseTypeId,
    pub case_status_id: CaseStatusId,
    /// The CRM status `case_status_id` was mapped from, and when the CRM changed the record (if
    /// it says): an existing case's status is decided against its base (SYNC2).
    pub crm_status: CrmValue,
    pub crm_changed_at: Option<Timestamp>,
    pub client_id: ClientId,
    /// `None` leaves the case's campaign as it is.
    pub campaign_id: Option<CampaignId>,
    /// Merged into the case's custom fields.
    pub custom_fields: CustomFields,
}

/// The case with the CRM record id `record_id` (an external ref of the CRM), updated, or
/// created; a new case takes the notes pulled for its record before it existed. An existing
/// case's status is decided against the field's base under the conflict rule
/// ([`conflicts::status_inbound`]); a new case's status is its base. `field` names the record id
/// in errors.
pub async fn upsert_case(
    tx: &mut Tx,
    company: CompanyId,
    source: Source,
    field: &str,
    record_id: &str,
    values: CaseValues,
    now: Timestamp,
) -> Result<Upserted, IngestError> {
    match cases::find_by_ref(tx, company, source.provider, record_id).await {
        Ok(existing) => {
            let incoming = StatusIn {
                crm: &values.crm_status,
                as_platform: values.case_status_id,
                changed_at: values.crm_changed_at,
            };
            let status = conflicts::status_inbound(
                tx,
                company,
                &source.outbox,
                &existing,
                record_id,
                &incoming,
                now,
            )
            .await?;
            let patch = CasePatch {
                name: Some(values.name),
                case_type_id: Some(values.case_type_id),
                case_status_id: status.map(Some),
                client_id: Some(Some(values.client_id)),
                campaign_id: values.campaign_id.map(Some),
                custom_fields: Some(values.custom_fields),
            };
            cases::update(tx, company, existing.id, &patch, now).await?;
            Ok(Upserted {
                case_id: existing.id,
                created: false,
                case_status_id: status.or(existing.case_status_id),
            })
        }
        Err(StoreError::NotFound) => {
            let case_id = cases::insert(
                tx,
                company,
                &NewCase {
                    name: values.name,
                    case_type_id: values.case_type_id,
                    case_status_id: Some(values.case_status_id),
                    client_id: Some(values.client_id),
                    campaign_id: values.campaign_id,
                    custom_fields: values.custom_fields,
                    external_refs: vec![ExternalRef::parse(field, source.provider, record_id)?],
                },
                now,
            )
            .await?;
            crm_notes::attach_to_case(tx, company, source.provider, record_id, case_id).await?;
            let base = Base {
                platform: Some(values.case_status_id.to_string()),
                crm: Some(values.crm_status.id.clone()),
            };
            let p = source.provider;
            sync_state::set_base(tx, company, p, case_id, conflicts::STATUS, &base, now).await?;
            Ok(Upserted {
                case_id,
                created: true,
                case_status_id: Some(values.case_status_id),
            })
        }
        Err(e) => Err(e.into()),
    }
}

/// What [`upsert_case`] did: the case, whether it was created, and its status now (the CRM's,
/// or the platform's when a conflict kept it).
#[derive(Debug, Clone, Copy)]
pub struct Upserted {
    pub case_id: CaseId,
    pub created: bool,
    pub case_status_id: Option<CaseStatusId>,
}

/// Counts what a pull or an import did with one record (SYNC3's measured counters), in the
/// transaction that did it.
pub(crate) async fn count(
    tx: &mut Tx,
    company: CompanyId,
    provider: &str,
    outcome: Outcome,
    record: &str,
    now: Timestamp,
) -> Result<(), StoreError> {
    let o = match outcome {
        Outcome::Created => RecordOutcome::Created,
        Outcome::Updated => RecordOutcome::Updated,
        Outcome::Unchanged => RecordOutcome::Unchanged,
    };
    sync_state::count_record(tx, company, provider, "inbound", o, Some(record), now).await
}

/// A record the platform cannot take, as an import row or a pulled record reports it
/// (`what`: "Lead ID 123", "case 9000001"); a database failure other than a conflict is the
/// caller's error.
pub(crate) fn rejected(
    what: &str,
    e: IngestError,
) -> Result<Result<Outcome, RowFailure>, StoreError> {
    let message = match e {
        IngestError::Invalid(v) => format!("{what}: {v}"),
        IngestError::Store(StoreError::Conflict(m)) => {
            format!("{what}: conflicts with an existing record ({m})")
        }
        IngestError::Store(e) => return Err(e),
    };
    Ok(Err(RowFailure {
        message,
        wrote: true,
    }))
}

/// Counts a record a pull could not apply (SYNC3), on its own.
pub(crate) async fn count_failed(
    store: &casebridge_store::Store,
    company: CompanyId,
    provider: &str,
    record: Option<&str>,
    now: Timestamp,
) -> Result<(), StoreError> {
    let mut conn = store.conn().await?;
    let o = RecordOutcome::Failed;
    sync_state::count_record(&mut conn, company, provider, "inbound", o, record, now).await
}

/// What one record (an import row, a pulled record) did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    Created,
    Updated,
    Unchanged,
}

/// A record's own failure: the message for the report, and whether it happened after the
/// record started writing (the transaction must then be rolled back).
pub(crate) struct RowFailure {
    pub(crate) message: String,
    pub(crate) wrote: bool,
}
