//! Law Ruler outbound sync (SPEC LR9–LR11, LR15): platform changes become CRM operations in the
//! CRM outbox, and a queue handler sends them.
//!
//! Recording side (called by the API inside the transaction of the change, so an accepted change
//! and its operations commit together): [`case_changed`], [`client_changed`],
//! [`message_recorded`], [`call_analyzed`], [`recording_stored`], [`document_stored`]. Each
//! checks the integration (connected, enabled) and the toggle of its kind: a kind whose toggle is
//! off records nothing, except status changes, which are `held` while status sync is off (LR11)
//! until [`resume_status_sync`] skips or replays them. Changes that arrive *from* Law Ruler
//! (webhooks, pulls, imports) never come through here, so nothing echoes back.
//!
//! Sending side ([`OpHandler`], job kind [`KIND`] on the `crm` queue): jobs are ordered per lead
//! (`lawruler/<company>/<lead>`), at most [`CONNECTION_CONCURRENCY`] run at once per connection,
//! and a per-connection rate limiter spaces requests. Outcomes:
//! - success → `done`, health timestamps, sync log `ok`;
//! - 429 / 5xx / timeout → retried without limit (backoff up to 10 min; `Retry-After` honoured
//!   and applied to the whole connection), the first failure logged as a transient error;
//! - a wrong Key or credentials → the integration shows a configuration error, the operation is
//!   `blocked`, and so is every later one until the connection is saved again
//!   ([`requeue_blocked`] then sends them in order);
//! - a refusal (`Failed|…` on HTTP 200, a 4xx) → `failed`, logged with Law Ruler's reason;
//! - toggle turned off before sending → `skipped` (status changes go back to `held`).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use casebridge_domain::activity::{Call, Direction, Message};
use casebridge_domain::clock::Clock;
use casebridge_domain::crm_ops::{OpAction, OpKind, OpState, ResumeMode};
use casebridge_domain::ids::{CaseId, CompanyId};
use casebridge_domain::integrations::{ErrorKind, PlatformField, SyncOutcome, Toggles};
use casebridge_domain::jobs::Job;
use casebridge_domain::model::{Case, Client};
use casebridge_domain::records::{CaseFilter, NamedKind};
use casebridge_domain::sync::FieldRule;
use casebridge_files::{Files, ObjectKey};
use casebridge_queue::{Handler, JobError, Registry};
use casebridge_store::crm_notes::{self, CrmNote};
use casebridge_store::crm_ops::{self, CrmOp};
use casebridge_store::documents::{self, Content, Document};
use casebridge_store::integrations::{self, Health, Integration};
use casebridge_store::{cases, clients, companies, named, Conn, Store, StoreError, Tx};
use jiff::tz::TimeZone;
use jiff::Timestamp;
use serde_json::Value;

use super::client::FormField;
use super::client::{LawRulerClient, LawRulerError, Note, Upload, CLIENT_COMMUNICATIONS};
use super::connection::Clients;
use super::ingest::PROVIDER;
use super::voice::{self, CallContext};
use crate::conflicts::{fields_to_send, ChangedField};
use crate::connector::PlannedRequest;
use crate::counters;
pub use crate::outbox::Resumed;
use crate::outbox::{Outbox, Throttle};

/// The queue outbound operations run on.
pub const QUEUE: &str = "crm";
/// The job kind; its payload is `{"op_id": "<uuid>"}`.
pub const KIND: &str = "lawruler.op";
pub use crate::outbox::CONNECTION_CONCURRENCY;
/// Where documents sent with "Send documents" go in the lead's documents.
pub const DOCUMENTS_FOLDER: &str = "/documents";
/// Answers this client does not understand are retried this many times before the operation
/// is marked failed (a maintenance page on HTTP 200 passes; a changed protocol needs a person).
const MAX_UNEXPECTED_ATTEMPTS: u32 = 10;

/// The upload form field an operation names (`Recording`, else `File`).
fn form_field_of(name: &str) -> FormField {
    if name == FormField::Recording.as_str() {
        FormField::Recording
    } else {
        FormField::File
    }
}

/// The requests `OpHandler::execute` sends for `action` on `lead` (a dry run): the same client
/// calls' parameters, nothing sent. A document is shown by name, not read.
pub fn plan(
    client: &LawRulerClient,
    lead: &str,
    action: &OpAction,
) -> Result<Vec<PlannedRequest>, LawRulerError> {
    let one = match action {
        OpAction::UpdateFields { fields } => client.plan_update_lead(lead, fields)?,
        OpAction::SetStatus { crm_status_id, .. } => {
            client.plan_update_lead(lead, &[("StatusID".to_owned(), crm_status_id.clone())])?
        }
        OpAction::AddNote {
            category,
            subject,
            body,
            noted_at,
        } => client.plan_add_note(
            lead,
            &Note {
                category: category.clone(),
                subject: subject.clone(),
                body: body.clone(),
                created_at: *noted_at,
            },
        )?,
        OpAction::CallResult { params } => client.plan_campaign_call_result(params)?,
        OpAction::UploadDocument {
            folder,
            form_field,
            file_name,
            created_at,
            ..
        } => client.plan_upload(
            lead,
            folder,
            form_field_of(form_field),
            file_name,
            *created_at,
        )?,
    };
    Ok(vec![one])
}

// =============================================================================================
// Recording side
// =============================================================================================

/// The toggles of a connected, enabled Law Ruler integration; `None` when nothing may be sent.
async fn active(conn: &mut Conn, company: CompanyId) -> Result<Option<Toggles>, StoreError> {
    let Some(i) = integrations::get(conn, company, PROVIDER).await? else {
        return Ok(None);
    };
    let t = toggles(&i);
    Ok((i.credentials_sealed.is_some() && t.enable_integration).then_some(t))
}

pub fn toggles(i: &Integration) -> Toggles {
    Toggles::from_settings(&i.settings)
}

/// The Law Ruler Lead ID of a case, if it came from (or was linked to) Law Ruler.
pub fn lead_of(case: &Case) -> Option<&str> {
    case.external_refs
        .iter()
        .find(|r| r.provider == PROVIDER)
        .map(|r| r.external_id.as_str())
}

/// Law Ruler's CRM outbox (the provider-neutral part lives in [`crate::outbox`]).
pub const OUTBOX: Outbox = Outbox {
    provider: PROVIDER,
    kind: KIND,
};

/// An admin's retry of a failed operation: pending again, with a new job behind the lead's
/// other operations. False when it is not a failed Law Ruler operation (any more).
pub async fn retry_failed(
    tx: &mut Tx,
    company: CompanyId,
    op_id: &str,
    now: Timestamp,
) -> Result<bool, StoreError> {
    OUTBOX.retry_failed(tx, company, op_id, now).await
}

/// Records one operation (pending with its job, or held), unless its toggle is off.
#[allow(clippy::too_many_arguments)]
async fn record(
    tx: &mut Tx,
    company: CompanyId,
    t: &Toggles,
    kind: OpKind,
    case_id: Option<CaseId>,
    lead: &str,
    action: &OpAction,
    now: Timestamp,
) -> Result<Option<String>, StoreError> {
    OUTBOX
        .record(tx, company, t, kind, case_id, lead, action, now)
        .await
}

#[allow(clippy::too_many_arguments)]
async fn log(
    conn: &mut Conn,
    company: CompanyId,
    record_ref: Option<&str>,
    operation: &str,
    outcome: SyncOutcome,
    error_kind: Option<ErrorKind>,
    message: &str,
    now: Timestamp,
) -> Result<(), StoreError> {
    OUTBOX
        .log(
            conn, company, record_ref, operation, outcome, error_kind, message, now,
        )
        .await
}

/// The Law Ruler case type a case's mapped fields follow: among the Law Ruler case types linked
/// to its platform case type, the one the lead last arrived with, else the first.
async fn lead_case_type(
    conn: &mut Conn,
    company: CompanyId,
    case: &Case,
) -> Result<Option<String>, StoreError> {
    let linked =
        integrations::crm_case_types_linked_to(conn, company, PROVIDER, case.case_type_id).await?;
    let arrived_with = case
        .custom_fields
        .get("lawruler_case_type")
        .and_then(Value::as_str);
    Ok(linked
        .iter()
        .find(|(_, name)| Some(name.as_str()) == arrived_with)
        .or(linked.first())
        .map(|(id, _)| id.clone()))
}

/// A mapped platform value as text ("" when empty, which clears the Law Ruler field).
pub(crate) fn platform_value(
    field: &PlatformField,
    case: &Case,
    client: Option<&Client>,
) -> String {
    let c = client.map(|c| &c.fields);
    let text = |v: Option<&String>| v.cloned().unwrap_or_default();
    match field {
        PlatformField::CaseName => case.name.clone(),
        PlatformField::ClientFirstName => text(c.and_then(|c| c.first_name.as_ref())),
        PlatformField::ClientLastName => text(c.and_then(|c| c.last_name.as_ref())),
        PlatformField::ClientEmail => text(c.and_then(|c| c.email.as_ref())),
        PlatformField::ClientPhone => text(c.and_then(|c| c.phone.as_ref())),
        PlatformField::Custom(k) => case
            .custom_fields
            .get(k)
            .and_then(voice::custom_value_string)
            .unwrap_or_default(),
    }
}

/// Records the mapped-field update for a case whose values (or whose client's) changed.
#[allow(clippy::too_many_arguments)]
async fn mapped_fields(
    tx: &mut Tx,
    company: CompanyId,
    t: &Toggles,
    lead: &str,
    before: Option<(&Case, Option<&Client>)>,
    after: (&Case, Option<&Client>),
    now: Timestamp,
) -> Result<(), StoreError> {
    if !t.gates().send_mapped_fields {
        return Ok(());
    }
    let case = after.0;
    let Some(crm_type) = lead_case_type(tx, company, case).await? else {
        let type_name = named::get(
            tx,
            company,
            NamedKind::CaseType,
            &case.case_type_id.to_string(),
        )
        .await
        .map(|n| n.name)
        .unwrap_or_else(|_| case.case_type_id.to_string());
        let msg = format!(
            "not ready: case type \"{type_name}\" is not linked to a Law Ruler case type, so its \
             mapped fields were not sent (CRM Mappings → Case Types)"
        );
        return log(
            tx,
            company,
            Some(lead),
            "update fields",
            SyncOutcome::Skipped,
            Some(ErrorKind::Configuration),
            &msg,
            now,
        )
        .await;
    };
    let mut changed = Vec::new();
    for m in integrations::field_mappings(tx, company, PROVIDER, &crm_type).await? {
        let Ok(field) = PlatformField::parse(&m.platform_field) else {
            continue;
        };
        let new = platform_value(&field, after.0, after.1);
        let old = before.map(|(c, cl)| platform_value(&field, c, cl));
        if old.as_deref() != Some(new.as_str()) && !(old.is_none() && new.is_empty()) {
            changed.push(ChangedField {
                key: m.crm_field_key,
                value: new,
                rule: FieldRule::parse("rule", &m.rule).unwrap_or_default(),
            });
        }
    }
    let fields = fields_to_send(tx, company, &OUTBOX, case.id, lead, changed, now).await?;
    if fields.is_empty() {
        return Ok(());
    }
    record(
        tx,
        company,
        t,
        OpKind::MappedFields,
        Some(case.id),
        lead,
        &OpAction::UpdateFields { fields },
        now,
    )
    .await?;
    Ok(())
}

/// A platform case was created or changed through the API: its status (LR9, LR11) and mapped
/// fields go to its Law Ruler lead.
pub async fn case_changed(
    tx: &mut Tx,
    company: CompanyId,
    before: Option<&Case>,
    after: &Case,
    now: Timestamp,
) -> Result<(), StoreError> {
    let Some(t) = active(tx, company).await? else {
        return Ok(());
    };
    let Some(lead) = lead_of(after) else {
        return Ok(());
    };
    if let Some(status) = after.case_status_id {
        if before.and_then(|b| b.case_status_id) != Some(status) {
            match integrations::crm_status_for(tx, company, PROVIDER, status).await? {
                Some((crm_status_id, crm_status_name)) => {
                    record(
                        tx,
                        company,
                        &t,
                        OpKind::Status,
                        Some(after.id),
                        lead,
                        &OpAction::SetStatus {
                            crm_status_id,
                            crm_status_name,
                            case_status_id: Some(status.to_string()),
                        },
                        now,
                    )
                    .await?;
                }
                None => {
                    let name = named::get(tx, company, NamedKind::CaseStatus, &status.to_string())
                        .await
                        .map(|n| n.name)
                        .unwrap_or_else(|_| status.to_string());
                    let msg = format!(
                        "status \"{name}\" has no Law Ruler status mapping, so it was not sent \
                         (CRM Mappings → Status Mapping)"
                    );
                    log(
                        tx,
                        company,
                        Some(lead),
                        "set status",
                        SyncOutcome::Skipped,
                        Some(ErrorKind::Configuration),
                        &msg,
                        now,
                    )
                    .await?;
                }
            }
        }
    }
    let client_after = match after.client_id {
        Some(id) => Some(clients::get(tx, company, id).await?),
        None => None,
    };
    let client_before = match before.and_then(|b| b.client_id) {
        Some(id) if Some(id) == after.client_id => client_after.clone(),
        Some(id) => Some(clients::get(tx, company, id).await?),
        None => None,
    };
    mapped_fields(
        tx,
        company,
        &t,
        lead,
        before.map(|b| (b, client_before.as_ref())),
        (after, client_after.as_ref()),
        now,
    )
    .await
}

/// A client changed through the API: the mapped client fields of each of its Law Ruler cases.
pub async fn client_changed(
    tx: &mut Tx,
    company: CompanyId,
    before: &Client,
    after: &Client,
    now: Timestamp,
) -> Result<(), StoreError> {
    let Some(t) = active(tx, company).await? else {
        return Ok(());
    };
    if before.fields == after.fields {
        return Ok(());
    }
    let filter = CaseFilter {
        client_id: Some(after.id),
        ..CaseFilter::default()
    };
    let mut page = casebridge_domain::page::PageRequest {
        after: None,
        limit: 100,
    };
    loop {
        let found = cases::list(tx, company, &filter, &page).await?;
        for case in &found.items {
            if let Some(lead) = lead_of(case) {
                mapped_fields(
                    tx,
                    company,
                    &t,
                    lead,
                    Some((case, Some(before))),
                    (case, Some(after)),
                    now,
                )
                .await?;
            }
        }
        match found.next_after {
            Some(c) => page.after = Some(c),
            None => return Ok(()),
        }
    }
}

async fn case_lead(
    conn: &mut Conn,
    company: CompanyId,
    case_id: Option<CaseId>,
) -> Result<Option<(Case, String)>, StoreError> {
    let Some(id) = case_id else { return Ok(None) };
    let case = cases::get(conn, company, id).await?;
    Ok(lead_of(&case).map(str::to_owned).map(|l| (case, l)))
}

/// The note subject for a message: "SMS sent to +1555…", "Email received from a@b.c".
pub fn message_subject(m: &Message) -> String {
    let channel = match m.channel {
        casebridge_domain::activity::Channel::Sms => "SMS",
        casebridge_domain::activity::Channel::Email => "Email",
    };
    match m.direction {
        Direction::Outbound => format!("{channel} sent to {}", m.to),
        Direction::Inbound => format!(
            "{channel} received from {}",
            m.from.as_deref().unwrap_or("unknown sender")
        ),
    }
}

/// A message was sent or received on a case: a note in "Client Communications".
pub async fn message_recorded(
    tx: &mut Tx,
    company: CompanyId,
    m: &Message,
    now: Timestamp,
) -> Result<(), StoreError> {
    let Some(t) = active(tx, company).await? else {
        return Ok(());
    };
    let Some((case, lead)) = case_lead(tx, company, m.case_id).await? else {
        return Ok(());
    };
    let action = OpAction::AddNote {
        category: CLIENT_COMMUNICATIONS.into(),
        subject: message_subject(m),
        body: m.body.clone(),
        noted_at: m.sent_at,
    };
    record(
        tx,
        company,
        &t,
        OpKind::Message,
        Some(case.id),
        &lead,
        &action,
        now,
    )
    .await?;
    Ok(())
}

async fn company_zone(conn: &mut Conn, company: CompanyId) -> Result<TimeZone, StoreError> {
    let c = companies::get(conn, company).await?;
    Ok(TimeZone::get(&c.timezone).unwrap_or(TimeZone::UTC))
}

async fn campaign_name(conn: &mut Conn, company: CompanyId, call: &Call) -> Option<String> {
    let id = call.campaign_id?;
    named::get(conn, company, NamedKind::Campaign, &id.to_string())
        .await
        .ok()
        .map(|n| n.name)
}

/// `Custom<ID>` parameter id for a `_custom` key written as `Custom1234`, `custom1234` or `1234`.
fn direct_custom_id(key: &str) -> Option<String> {
    let digits = key
        .strip_prefix("Custom")
        .or_else(|| key.strip_prefix("custom"))
        .unwrap_or(key);
    (!digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit())).then(|| digits.to_owned())
}

/// Everything the campaign request needs about the call's lead.
async fn call_context(
    tx: &mut Tx,
    company: CompanyId,
    t: &Toggles,
    call: &Call,
    case: &Case,
    lead: &str,
) -> Result<CallContext, StoreError> {
    let analysis = call.analysis.as_ref();
    // Status: the post-call result is a platform status name; through the status mapping it
    // becomes the Law Ruler status. Without a mapping the result is sent as it is.
    // With status sync off, the call result does not change the lead's status either.
    let status_sync = OpKind::Status.allowed(&t.gates());
    let mut status = analysis
        .filter(|_| status_sync)
        .map(|a| a.post_call_result.clone());
    if let Some(result) = analysis
        .filter(|_| status_sync)
        .map(|a| a.post_call_result.as_str())
    {
        if let Some(st) = named::find_by_name(tx, company, NamedKind::CaseStatus, result).await? {
            if let Ok(id) = st.id.parse() {
                if let Some((_, name)) =
                    integrations::crm_status_for(tx, company, PROVIDER, id).await?
                {
                    status = Some(name);
                }
            }
        }
    }
    let client = match case.client_id {
        Some(id) => Some(clients::get(tx, company, id).await?),
        None => None,
    };
    // "The number that reached the client": only a call that reached a conversation has one.
    let cell_phone = (t.sync_enriched_phones && voice::is_successful(call))
        .then(|| match call.direction {
            Direction::Outbound => call.to_number.clone(),
            Direction::Inbound => call.from_number.clone(),
        })
        .flatten();
    // `_custom` keys → Law Ruler custom field ids: through the field mappings of the lead's
    // case type (`custom.<key>` → `custom<ID>`), or written directly as `Custom<ID>`.
    let mut custom_ids = Vec::new();
    let mut unmapped_custom = Vec::new();
    if let Some(a) = analysis {
        let mut mapped: HashMap<String, String> = HashMap::new();
        // Keys whose mapping's rule says the CRM owns the field, or not to sync it.
        let mut withheld = Vec::new();
        if let Some(crm_type) = lead_case_type(tx, company, case).await? {
            let fields = integrations::crm_fields(tx, company, PROVIDER, &crm_type).await?;
            for m in integrations::field_mappings(tx, company, PROVIDER, &crm_type).await? {
                if let Ok(PlatformField::Custom(name)) = PlatformField::parse(&m.platform_field) {
                    let rule = FieldRule::parse("rule", &m.rule).unwrap_or_default();
                    if matches!(rule, FieldRule::AlwaysCrm | FieldRule::DontSync) {
                        withheld.push(name);
                        continue;
                    }
                    let id = fields
                        .iter()
                        .find(|f| f.key == m.crm_field_key)
                        .map(|f| f.crm_field_id.clone())
                        .or_else(|| direct_custom_id(&m.crm_field_key));
                    if let Some(id) = id {
                        mapped.insert(name, id);
                    }
                }
            }
        }
        for key in a.custom.keys().filter(|k| !withheld.contains(k)) {
            match mapped.get(key).cloned().or_else(|| direct_custom_id(key)) {
                Some(id) => custom_ids.push((id, key.clone())),
                None => unmapped_custom.push(key.clone()),
            }
        }
    }
    Ok(CallContext {
        lead_id: lead.to_owned(),
        status,
        cell_phone,
        first_name: client.as_ref().and_then(|c| c.fields.first_name.clone()),
        last_name: client.as_ref().and_then(|c| c.fields.last_name.clone()),
        custom_ids,
        unmapped_custom,
        campaign_name: campaign_name(tx, company, call).await,
    })
}

/// A call's analysis arrived (the call is complete, LR10): the campaign request, the notes and,
/// if the recording is already stored, the recording, in that order.
///
/// `revised`: the call had an analysis already (a later analysis replaces it). Then only the
/// campaign request and a "Call Analysis Summary (revised)" note are sent: the transcript and the
/// recording went with the first analysis, and notes cannot be taken back in Law Ruler.
pub async fn call_analyzed(
    tx: &mut Tx,
    company: CompanyId,
    call: &Call,
    revised: bool,
    now: Timestamp,
) -> Result<(), StoreError> {
    let Some(t) = active(tx, company).await? else {
        return Ok(());
    };
    if !OpKind::CallRecord.allowed(&t.gates()) {
        return Ok(());
    }
    let Some((case, lead)) = case_lead(tx, company, call.case_id).await? else {
        return Ok(());
    };
    let ctx = call_context(tx, company, &t, call, &case, &lead).await?;
    let Some(mut actions) = voice::call_actions(call, &ctx) else {
        return Ok(());
    };
    if revised {
        actions.retain(|a| !matches!(a, OpAction::AddNote { subject, .. } if subject == voice::TRANSCRIPT_SUBJECT));
        for a in &mut actions {
            if let OpAction::AddNote { subject, .. } = a {
                *subject = format!("{} (revised)", voice::SUMMARY_SUBJECT);
            }
        }
    }
    let mut ids = Vec::new();
    for action in &actions {
        ids.push(
            record(
                tx,
                company,
                &t,
                OpKind::CallRecord,
                Some(case.id),
                &lead,
                action,
                now,
            )
            .await?,
        );
    }
    if !ctx.unmapped_custom.is_empty() {
        // The campaign request is the first action; its operation is named so the admin can
        // find what was sent without those values.
        let op = ids.first().cloned().flatten().unwrap_or_default();
        let message = format!(
            "call {}: _custom {} not sent with the call result (operation {op}): no Law Ruler \
             custom field is mapped to {}; map custom.<key> in …/field-mappings",
            call.id,
            if ctx.unmapped_custom.len() == 1 {
                "key"
            } else {
                "keys"
            },
            ctx.unmapped_custom.join(", "),
        );
        log(
            tx,
            company,
            Some(&lead),
            "call_result",
            SyncOutcome::Skipped,
            Some(ErrorKind::Configuration),
            &message,
            now,
        )
        .await?;
    }
    if let Some(rec) = documents::recording_of(tx, company, call.id).await? {
        let campaign = ctx.campaign_name.as_deref();
        record_recording(
            tx, company, &t, call, case.id, &lead, &rec.id, campaign, now,
        )
        .await?;
    }
    Ok(())
}

/// A call's recording was stored. Sent now if the call's analysis was already sent (otherwise
/// [`call_analyzed`] sends it after the notes).
pub async fn recording_stored(
    tx: &mut Tx,
    company: CompanyId,
    call: &Call,
    recording: &Document,
    now: Timestamp,
) -> Result<(), StoreError> {
    if call.analysis.is_none() {
        return Ok(());
    }
    let Some(t) = active(tx, company).await? else {
        return Ok(());
    };
    let Some((case, lead)) = case_lead(tx, company, call.case_id).await? else {
        return Ok(());
    };
    let campaign = campaign_name(tx, company, call).await;
    record_recording(
        tx,
        company,
        &t,
        call,
        case.id,
        &lead,
        &recording.id,
        campaign.as_deref(),
        now,
    )
    .await
}

/// Records the upload of a call's recording, unless that file is already on its way (or sent).
#[allow(clippy::too_many_arguments)]
async fn record_recording(
    tx: &mut Tx,
    company: CompanyId,
    t: &Toggles,
    call: &Call,
    case_id: CaseId,
    lead: &str,
    document_id: &str,
    campaign: Option<&str>,
    now: Timestamp,
) -> Result<(), StoreError> {
    if crm_ops::sends_document(tx, company, PROVIDER, document_id).await? {
        return Ok(());
    }
    let tz = company_zone(tx, company).await?;
    let action = voice::recording_action(call, document_id, campaign, &tz);
    record(
        tx,
        company,
        t,
        OpKind::CallRecord,
        Some(case_id),
        lead,
        &action,
        now,
    )
    .await?;
    Ok(())
}

/// A document was added to a case: uploaded to the lead (LR9, "Send documents").
pub async fn document_stored(
    tx: &mut Tx,
    company: CompanyId,
    case: &Case,
    doc: &Document,
    now: Timestamp,
) -> Result<(), StoreError> {
    let Some(t) = active(tx, company).await? else {
        return Ok(());
    };
    let Some(lead) = lead_of(case) else {
        return Ok(());
    };
    let action = OpAction::UploadDocument {
        document_id: doc.id.clone(),
        folder: DOCUMENTS_FOLDER.into(),
        form_field: FormField::File.as_str().into(),
        file_name: doc.file_name.clone(),
        as_mp3: false,
        created_at: doc.created_at,
    };
    record(
        tx,
        company,
        &t,
        OpKind::Document,
        Some(case.id),
        lead,
        &action,
        now,
    )
    .await?;
    Ok(())
}

/// What turning status sync back on did with the changes held while it was off.
/// The held status changes, handled as the admin chose (LR11): skipped (Non-Retroactive) or
/// replayed in the order they were made (Retroactive). Call in the transaction that turns the
/// toggle on.
pub async fn resume_status_sync(
    tx: &mut Tx,
    company: CompanyId,
    mode: ResumeMode,
    now: Timestamp,
) -> Result<Resumed, StoreError> {
    OUTBOX.resume_status_sync(tx, company, mode, now).await
}

/// How many status changes are held.
pub async fn held_count(conn: &mut Conn, company: CompanyId) -> Result<u64, StoreError> {
    OUTBOX.held_count(conn, company).await
}

/// Sends the operations parked by a configuration error again, in order (per lead). Call in
/// the transaction that saves a working connection.
pub async fn requeue_blocked(
    tx: &mut Tx,
    company: CompanyId,
    now: Timestamp,
) -> Result<u64, StoreError> {
    OUTBOX.requeue_blocked(tx, company, now).await
}

// =============================================================================================
// Sending side
// =============================================================================================

pub use crate::outbox::retry_policy;

/// Sends outbound operations; see the module docs.
pub struct OpHandler {
    store: Store,
    files: Files,
    clock: Arc<dyn Clock>,
    clients: Clients,
    throttle: Throttle,
}

/// What the handler decided without calling Law Ruler.
enum Gate {
    Send(Arc<LawRulerClient>),
    Park(OpState, String),
}

impl OpHandler {
    /// `requests_per_minute`: the per-connection limit; 0 means no limit.
    pub fn new(
        store: Store,
        files: Files,
        clock: Arc<dyn Clock>,
        clients: Clients,
        requests_per_minute: u32,
    ) -> Self {
        Self {
            store,
            files,
            clock,
            clients,
            throttle: Throttle::new(requests_per_minute),
        }
    }

    fn gate(&self, i: Option<&Integration>, op: &CrmOp) -> Gate {
        let Some(i) = i.filter(|i| i.credentials_sealed.is_some()) else {
            return Gate::Park(OpState::Blocked, "Law Ruler is not connected".into());
        };
        if let Some(err) = &i.config_error {
            return Gate::Park(
                OpState::Blocked,
                format!("waiting for the connection to be fixed: {err}"),
            );
        }
        let t = toggles(i);
        if !t.enable_integration {
            return Gate::Park(OpState::Skipped, "the integration is turned off".into());
        }
        if !op.kind.allowed(&t.gates()) {
            return if op.kind == OpKind::Status {
                Gate::Park(OpState::Held, "status sync is off".into())
            } else {
                Gate::Park(
                    OpState::Skipped,
                    format!("{} was turned off before it was sent", op.kind.toggle()),
                )
            };
        }
        match self.clients.for_integration(i) {
            Ok(Some(c)) => Gate::Send(c),
            Ok(None) => Gate::Park(OpState::Blocked, "Law Ruler is not connected".into()),
            Err(e) => Gate::Park(OpState::Blocked, e.to_string()),
        }
    }

    async fn throttle(&self, company: CompanyId) -> Result<(), Duration> {
        self.throttle.wait(self.clock.as_ref(), company).await
    }

    async fn execute(
        &self,
        client: &LawRulerClient,
        op: &CrmOp,
    ) -> Result<Option<String>, LawRulerError> {
        let lead = op.record_id.as_str();
        match &op.action {
            OpAction::UpdateFields { fields } => {
                client.update_lead(lead, fields).await.map(|_| None)
            }
            OpAction::SetStatus { crm_status_id, .. } => client
                .update_lead(lead, &[("StatusID".to_owned(), crm_status_id.clone())])
                .await
                .map(|_| None),
            OpAction::AddNote {
                category,
                subject,
                body,
                noted_at,
            } => {
                client
                    .add_note(
                        lead,
                        &Note {
                            category: category.clone(),
                            subject: subject.clone(),
                            body: body.clone(),
                            created_at: *noted_at,
                        },
                    )
                    .await
            }
            OpAction::CallResult { params } => {
                client.campaign_call_result(params).await.map(|_| None)
            }
            OpAction::UploadDocument {
                document_id,
                folder,
                form_field,
                file_name,
                as_mp3,
                created_at,
            } => {
                let upload = self
                    .load_upload(
                        op.company_id,
                        document_id,
                        folder,
                        form_field,
                        file_name,
                        *as_mp3,
                        *created_at,
                    )
                    .await?;
                client.upload_document(lead, &upload).await
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    async fn load_upload(
        &self,
        company: CompanyId,
        document_id: &str,
        folder: &str,
        form_field: &str,
        file_name: &str,
        as_mp3: bool,
        created_at: Timestamp,
    ) -> Result<Upload, LawRulerError> {
        let transient = |e: StoreError| LawRulerError::Transient(format!("reading the file: {e}"));
        let mut conn = self.store.conn().await.map_err(transient)?;
        let doc = documents::get(&mut conn, company, document_id)
            .await
            .map_err(|e| match e {
                StoreError::NotFound => {
                    LawRulerError::Rejected(format!("the file {document_id} no longer exists"))
                }
                other => transient(other),
            })?;
        let content = documents::content(&mut conn, company, document_id)
            .await
            .map_err(transient)?;
        drop(conn);
        // Whole in memory: the transcoder and the multipart form need it so (one file per
        // operation in flight).
        let bytes = match content {
            Content::Inline(bytes) => bytes,
            Content::Object(key) => self
                .files
                .read_all(&ObjectKey::from_stored(key))
                .await
                .map_err(|e| LawRulerError::Transient(format!("reading the file: {e}")))?
                .to_vec(),
        };
        let (bytes, content_type) = if as_mp3 {
            let ct = doc.content_type.clone();
            let name = doc.file_name.clone();
            let mp3 = tokio::task::spawn_blocking(move || {
                casebridge_audio::to_mp3(
                    &bytes,
                    casebridge_audio::Hint {
                        content_type: Some(&ct),
                        file_name: Some(&name),
                    },
                )
            })
            .await
            .map_err(|e| LawRulerError::Transient(format!("transcoding: {e}")))?
            .map_err(|e| {
                LawRulerError::Rejected(format!("the recording cannot be sent as MP3: {e}"))
            })?;
            (mp3.bytes, "audio/mpeg".to_owned())
        } else {
            (bytes, doc.content_type.clone())
        };
        Ok(Upload {
            folder: folder.to_owned(),
            form_field: form_field_of(form_field),
            file_name: file_name.to_owned(),
            content_type,
            bytes,
            created_at,
        })
    }

    /// Moves a pending operation to `to` and logs why, in one transaction.
    #[allow(clippy::too_many_arguments)]
    async fn settle(
        &self,
        op: &CrmOp,
        to: OpState,
        attempted: bool,
        error: Option<&str>,
        outcome: SyncOutcome,
        kind: Option<ErrorKind>,
        message: &str,
    ) -> Result<bool, StoreError> {
        OUTBOX
            .settle(
                &self.store,
                self.clock.now(),
                op,
                to,
                attempted,
                error,
                outcome,
                kind,
                message,
            )
            .await
    }

    async fn succeeded(&self, op: &CrmOp, created: Option<String>) -> Result<(), StoreError> {
        let now = self.clock.now();
        let mut tx = self.store.begin().await?;
        let moved = crm_ops::transition(
            &mut tx,
            op.company_id,
            &op.id,
            OpState::Pending,
            OpState::Done,
            true,
            None,
            now,
        )
        .await?;
        if moved {
            let health = if op.kind == OpKind::Status {
                Health::StatusPush
            } else {
                Health::IntegrationSync
            };
            integrations::touch_health(&mut tx, op.company_id, PROVIDER, health, now).await?;
            crate::conflicts::written(&mut tx, PROVIDER, op, now).await?;
            crate::outbox::count_settled(&mut tx, op, OpState::Done, now).await?;
            if let (
                Some(note_id),
                OpAction::AddNote {
                    category,
                    subject,
                    body,
                    noted_at,
                },
            ) = (created, &op.action)
            {
                // Remember the note as ours, so the hourly pull does not bring it back.
                crm_notes::insert(
                    &mut tx,
                    op.company_id,
                    PROVIDER,
                    &CrmNote {
                        crm_note_id: note_id,
                        record_id: op.record_id.clone(),
                        case_id: op.case_id,
                        origin: "platform".into(),
                        category: category.clone(),
                        subject: subject.clone(),
                        body: body.clone(),
                        noted_at: *noted_at,
                    },
                    now,
                )
                .await?;
            }
            log(
                &mut tx,
                op.company_id,
                Some(&op.record_id),
                &op.action.describe(),
                SyncOutcome::Ok,
                None,
                "sent",
                now,
            )
            .await?;
        }
        tx.commit().await?;
        if moved {
            counters::operation(PROVIDER, op.kind.as_str(), "done");
        }
        Ok(())
    }

    async fn block(
        &self,
        op: &CrmOp,
        seen: &(Option<String>, Option<String>),
        message: &str,
        set_error: bool,
        attempted: bool,
    ) -> Result<bool, StoreError> {
        OUTBOX
            .block(
                &self.store,
                self.clock.now(),
                op,
                seen,
                message,
                set_error,
                attempted,
            )
            .await
    }

    async fn transient(&self, op: &CrmOp, message: &str) -> Result<(), StoreError> {
        OUTBOX
            .transient(&self.store, self.clock.now(), op, message)
            .await
    }
}

fn store_retry(e: StoreError) -> JobError {
    JobError::retry(format!("database: {e}"))
}

#[async_trait]
impl Handler for OpHandler {
    async fn run(&self, job: &Job) -> Result<(), JobError> {
        let company = job
            .company_id
            .ok_or_else(|| JobError::Permanent("job has no company".into()))?;
        let op_id = job
            .payload
            .get("op_id")
            .and_then(Value::as_str)
            .ok_or_else(|| JobError::Permanent("job payload has no op_id".into()))?;
        let (op, integration) = {
            let mut conn = self.store.conn().await.map_err(store_retry)?;
            let op = match crm_ops::get(&mut conn, company, op_id).await {
                Ok(op) => op,
                Err(StoreError::NotFound) => return Ok(()),
                Err(e) => return Err(store_retry(e)),
            };
            let i = integrations::get(&mut conn, company, PROVIDER)
                .await
                .map_err(store_retry)?;
            (op, i)
        };
        if op.state != OpState::Pending {
            return Ok(()); // already settled by an earlier run
        }
        let seen = integration
            .as_ref()
            .map(|i| (i.credentials_sealed.clone(), i.config_error.clone()))
            .unwrap_or((None, None));
        let connection_changed = || JobError::Retry {
            error: "the Law Ruler connection changed while sending; trying again".into(),
            retry_after: None,
        };
        let client = match self.gate(integration.as_ref(), &op) {
            Gate::Send(c) => c,
            Gate::Park(OpState::Blocked, why) => {
                return match self.block(&op, &seen, &why, false, false).await {
                    Ok(true) => Ok(()),
                    Ok(false) => Err(connection_changed()),
                    Err(e) => Err(store_retry(e)),
                };
            }
            // Skipped (toggle off) or back to held (status sync off).
            Gate::Park(state, why) => {
                self.settle(
                    &op,
                    state,
                    false,
                    Some(&why),
                    SyncOutcome::Skipped,
                    None,
                    &why,
                )
                .await
                .map_err(store_retry)?;
                return Ok(());
            }
        };
        if let Err(wait) = self.throttle(company).await {
            counters::rate_limit_wait(PROVIDER, wait.as_secs_f64());
            return Err(JobError::Retry {
                error: "Law Ruler asked to wait (rate limit)".into(),
                retry_after: Some(wait),
            });
        }
        match self.execute(&client, &op).await {
            Ok(created) => self.succeeded(&op, created).await.map_err(store_retry),
            Err(e) if e.is_retryable() => {
                let retry_after = e.retry_after();
                if let Some(wait) = retry_after {
                    self.throttle.cool_down(self.clock.as_ref(), company, wait);
                }
                self.transient(&op, &e.to_string())
                    .await
                    .map_err(store_retry)?;
                Err(JobError::Retry {
                    error: e.to_string(),
                    retry_after,
                })
            }
            Err(e @ LawRulerError::Config { .. }) => {
                match self.block(&op, &seen, &e.to_string(), true, true).await {
                    Ok(true) => Ok(()),
                    Ok(false) => Err(connection_changed()),
                    Err(e) => Err(store_retry(e)),
                }
            }
            Err(e @ LawRulerError::Unexpected(_)) if op.attempts + 1 < MAX_UNEXPECTED_ATTEMPTS => {
                self.transient(&op, &e.to_string())
                    .await
                    .map_err(store_retry)?;
                Err(JobError::retry(e.to_string()))
            }
            Err(e) => {
                let msg = e.to_string();
                self.settle(
                    &op,
                    OpState::Failed,
                    true,
                    Some(&msg),
                    SyncOutcome::Error,
                    Some(ErrorKind::Validation),
                    &msg,
                )
                .await
                .map_err(store_retry)
                .map(drop)
            }
        }
    }

    async fn on_dead(&self, job: &Job, error: &str) {
        let (Some(company), Some(op_id)) = (
            job.company_id,
            job.payload.get("op_id").and_then(Value::as_str),
        ) else {
            return;
        };
        let op = match self.store.conn().await {
            Ok(mut conn) => crm_ops::get(&mut conn, company, op_id).await,
            Err(e) => Err(e),
        };
        if let Ok(op) = op {
            if let Err(e) = self
                .settle(
                    &op,
                    OpState::Failed,
                    false,
                    Some(error),
                    SyncOutcome::Error,
                    None,
                    error,
                )
                .await
            {
                tracing::warn!(op = op_id, error = %e, "could not mark the operation failed");
            }
        }
    }
}

/// Adds the outbound handler to the `crm` queue's registry.
pub fn register(registry: Registry, handler: OpHandler) -> Registry {
    registry.register(KIND, handler, retry_policy())
}
