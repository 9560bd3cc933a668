//! SmartAdvocate push (SA3, SA4): platform changes become SmartAdvocate operations in the CRM
//! outbox ([`crate::outbox`], shared with Law Ruler), and a queue handler sends them.
//!
//! Recording side, in the change's transaction (through the one fan-out point): a status change
//! whose platform status is mapped becomes one `set status` per mapped SmartAdvocate status: its
//! primary status first, then each second status `<type id>:<status id>` (e.g. "Dialer Status =
//! To Dial") by status type; only the primary one carries the platform status (the base of
//! conflict checks, [`crate::conflicts`]); a change of mapped fields becomes
//! `update fields` with the UDF names of the SmartAdvocate case type linked to the case's type;
//! a message becomes a note; an analysed Voice AI call becomes a note, the case's "Last Dialer
//! Disposition" and, for an outbound call, its "Attempts Status" and "Next Call" UDF
//! ([`call_analyzed`]). Only cases with a `smartadvocate` external ref (the case number)
//! are pushed.
//!
//! "Send mapping to SmartAdvocate" (SA3) is the `send` toggle: while it is off (or the
//! integration is), nothing is sent and every saved mapping stays; status changes are `held`
//! like Law Ruler's while status sync is off, and turning sending on again does not replay them
//! unless the admin asks (`PUT …/status-sync` with `retroactive`; `non_retroactive` skips them).
//! Field and message changes made while it is off are not recorded.
//!
//! Sending side ([`OpHandler`], job kind [`KIND`]): per-case order, the per-connection limiter,
//! 429 with `Retry-After` applied to the whole connection, 5xx/timeouts/empty bodies retried
//! without limit (never dropped), a token refused mid-push re-authenticated once by the client,
//! a permission denial or a refused new token parks the operation as `blocked` with the
//! integration's configuration error until the connection is saved again, a refusal (400, an
//! unknown case) is `failed` with SmartAdvocate's reason.

use std::sync::Arc;

use async_trait::async_trait;
use casebridge_domain::activity::{Call, Direction, Message};
use casebridge_domain::clock::Clock;
use casebridge_domain::crm_ops::{OpAction, OpKind, OpState};
use casebridge_domain::dialer::{self, Disposition};
use casebridge_domain::ids::CompanyId;
use casebridge_domain::integrations::{ErrorKind, PlatformField, SyncOutcome, Toggles};
use casebridge_domain::jobs::Job;
use casebridge_domain::model::{Case, Client};
use casebridge_domain::records::NamedKind;
use casebridge_domain::sync::FieldRule;
use casebridge_queue::{Handler, JobError, Registry};
use casebridge_store::crm_notes::{self, CrmNote};
use casebridge_store::crm_ops::{self, CrmOp};
use casebridge_store::integrations::{self, CrmItem, Health, Integration};
use casebridge_store::{activity, cases, clients, named, Conn, Store, StoreError, Tx};
use jiff::Timestamp;
use serde_json::{json, Value};

use super::client::{format_time, SmartAdvocateClient, SmartAdvocateError};
use super::connection::Clients;
use super::PROVIDER;
use crate::conflicts::{fields_to_send, ChangedField};
use crate::connector::PlannedRequest;
use crate::counters;
use crate::lawruler::outbound::{message_subject, platform_value};
use crate::lawruler::voice;
use crate::outbox::{retry_policy, Outbox, Throttle};

/// The job kind; its payload is `{"op_id": "<uuid>"}`.
pub const KIND: &str = "smartadvocate.op";
/// The conservative default limit on calls per connection (SmartAdvocate publishes none).
pub const DEFAULT_REQUESTS_PER_MINUTE: u32 = 60;
/// Answers this client does not understand are retried this many times, then `failed`.
const MAX_UNEXPECTED_ATTEMPTS: u32 = 10;
/// The note type of notes casebridge inserts (modelled: SmartAdvocate's "General").
const NOTE_TYPE_ID: u64 = 1;

pub const OUTBOX: Outbox = Outbox {
    provider: PROVIDER,
    kind: KIND,
};

// ---- recording side ----

/// The body of a note insert.
fn note_json(subject: &str, body: &str, noted_at: Timestamp) -> Value {
    json!({
        "noteTypeID": NOTE_TYPE_ID,
        "subject": subject,
        "noteText": note_html(body),
        "noteDate": noted_at.to_string(),
        "priority": "Normal",
    })
}

/// The requests `OpHandler::execute` sends for `action` on case `number` (a dry run): the read
/// of the case (whose id the write needs; shown as `caseID`), the status types' read for a
/// primary status, and the write, built by the client's own request parts. Nothing is sent.
pub fn plan(
    client: &SmartAdvocateClient,
    number: &str,
    action: &OpAction,
) -> Result<Vec<PlannedRequest>, SmartAdvocateError> {
    const CASE_ID: &str = "caseID";
    let mut out = vec![client.plan_case_by_number(number)?];
    let note = format!("caseID: SmartAdvocate's id of case {number}, from the read before");
    let mut write = match action {
        OpAction::SetStatus { crm_status_id, .. } => match crm_status_id.split_once(':') {
            Some((t, st)) => client.plan_set_status(CASE_ID, t, st)?,
            None => {
                out.push(client.plan_status_types()?);
                let mut w = client.plan_set_status(CASE_ID, "0", crm_status_id)?;
                if let Some(b) = w.body.as_mut() {
                    b["statusTypeID"] = json!("(the id of the status type named Status)");
                }
                w
            }
        },
        OpAction::UpdateFields { fields } => client.plan_set_udfs(CASE_ID, fields)?,
        OpAction::AddNote {
            subject,
            body,
            noted_at,
            ..
        } => client.plan_insert_note(CASE_ID, &note_json(subject, body, *noted_at))?,
        other => {
            return Err(SmartAdvocateError::Rejected(format!(
                "{} is not an operation SmartAdvocate takes",
                other.describe()
            )))
        }
    };
    write.note = Some(note);
    out.push(write);
    Ok(out)
}

fn toggles(i: &Integration) -> Toggles {
    Toggles::from_settings(&i.settings)
}

/// The toggles of a connected, enabled integration; `None` when nothing may be sent.
async fn active(conn: &mut Conn, company: CompanyId) -> Result<Option<Toggles>, StoreError> {
    let Some(i) = integrations::get(conn, company, PROVIDER).await? else {
        return Ok(None);
    };
    let t = toggles(&i);
    Ok((i.credentials_sealed.is_some() && t.enable_integration).then_some(t))
}

/// Whether "Send mapping to SmartAdvocate" (the `send` toggle, capped by the direction) is on.
fn sending(t: &Toggles) -> bool {
    t.enable_integration && t.send && t.direction.sends()
}

/// What an operation of `kind` becomes now: pending, held (a status change while sending or
/// status sync is off), or nothing.
pub fn state_for(t: &Toggles, kind: OpKind) -> Option<OpState> {
    if sending(t) && kind.allowed(&t.gates()) {
        Some(OpState::Pending)
    } else if kind == OpKind::Status {
        Some(OpState::Held)
    } else {
        None
    }
}

/// The SmartAdvocate case number of a case, if it came from (or was linked to) SmartAdvocate.
pub fn case_number_of(case: &Case) -> Option<&str> {
    case.external_refs
        .iter()
        .find(|r| r.provider == PROVIDER)
        .map(|r| r.external_id.as_str())
}

#[allow(clippy::too_many_arguments)]
async fn record(
    tx: &mut Tx,
    company: CompanyId,
    t: &Toggles,
    kind: OpKind,
    case: &Case,
    number: &str,
    action: &OpAction,
    now: Timestamp,
) -> Result<(), StoreError> {
    if let Some(state) = state_for(t, kind) {
        OUTBOX
            .insert(tx, company, state, kind, Some(case.id), number, action, now)
            .await?;
    }
    Ok(())
}

async fn skipped(
    tx: &mut Tx,
    company: CompanyId,
    number: &str,
    operation: &str,
    message: &str,
    now: Timestamp,
) -> Result<(), StoreError> {
    OUTBOX
        .log(
            tx,
            company,
            Some(number),
            operation,
            SyncOutcome::Skipped,
            Some(ErrorKind::Configuration),
            message,
            now,
        )
        .await
}

/// A platform case was created or changed: its mapped status and mapped UDFs.
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
    let Some(number) = case_number_of(after) else {
        return Ok(());
    };
    if let Some(status) = after.case_status_id {
        if before.and_then(|b| b.case_status_id) != Some(status) {
            let mapped = integrations::crm_statuses_for(tx, company, PROVIDER, status).await?;
            if mapped.is_empty() {
                let name = named::get(tx, company, NamedKind::CaseStatus, &status.to_string())
                    .await
                    .map(|n| n.name)
                    .unwrap_or_else(|_| status.to_string());
                let msg = format!(
                    "status \"{name}\" has no SmartAdvocate status mapping, so it was not \
                     sent (CRM Mappings → Status Mapping)"
                );
                skipped(tx, company, number, "set status", &msg, now).await?;
            }
            // The primary status first, then each mapped second status: one write each, in
            // this order behind the case's earlier operations.
            for m in mapped {
                // A second status is not the primary status a case record carries back, so it
                // is not a base of the status field.
                let primary = m.status_type.is_empty();
                let action = OpAction::SetStatus {
                    crm_status_id: m.crm_id,
                    crm_status_name: m.name,
                    case_status_id: primary.then(|| status.to_string()),
                };
                record(tx, company, &t, OpKind::Status, after, number, &action, now).await?;
            }
        }
    }
    if !(sending(&t) && t.gates().send_mapped_fields) {
        return Ok(());
    }
    let client_of = |c: &Case| c.client_id;
    let client_after: Option<Client> = match client_of(after) {
        Some(id) => Some(clients::get(tx, company, id).await?),
        None => None,
    };
    let client_before = match before.and_then(client_of) {
        Some(id) if Some(id) == client_of(after) => client_after.clone(),
        Some(id) => Some(clients::get(tx, company, id).await?),
        None => None,
    };
    let linked =
        integrations::crm_case_types_linked_to(tx, company, PROVIDER, after.case_type_id).await?;
    let Some((crm_type, _)) = linked.first() else {
        let msg = "not ready: the case's type is not linked to a SmartAdvocate case type, so its \
                   mapped fields were not sent (CRM Mappings → Case Types)";
        return skipped(tx, company, number, "update fields", msg, now).await;
    };
    let mut changed = Vec::new();
    for m in integrations::field_mappings(tx, company, PROVIDER, crm_type).await? {
        let Ok(field) = PlatformField::parse(&m.platform_field) else {
            continue;
        };
        let new = udf_value(&field, after, client_after.as_ref());
        let old = before.map(|b| udf_value(&field, b, client_before.as_ref()));
        if old.as_deref() != Some(new.as_str()) && !(old.is_none() && new.is_empty()) {
            changed.push(ChangedField {
                key: m.crm_field_key,
                value: new,
                rule: FieldRule::parse("rule", &m.rule).unwrap_or_default(),
            });
        }
    }
    let fields = fields_to_send(tx, company, &OUTBOX, after.id, number, changed, now).await?;
    if !fields.is_empty() {
        let action = OpAction::UpdateFields { fields };
        record(
            tx,
            company,
            &t,
            OpKind::MappedFields,
            after,
            number,
            &action,
            now,
        )
        .await?;
    }
    Ok(())
}

/// A mapped platform value as UDF text ("" clears the UDF). Custom values go as stored (dates
/// stay ISO `YYYY-MM-DD`), a yes/no as `Yes`/`No` (SmartAdvocate's YesNo UDFs); the standard
/// fields as Law Ruler's push reads them.
fn udf_value(field: &PlatformField, case: &Case, client: Option<&Client>) -> String {
    match field {
        PlatformField::Custom(k) => match case.custom_fields.get(k) {
            None | Some(Value::Null) => String::new(),
            Some(Value::String(s)) => s.clone(),
            Some(Value::Bool(b)) => if *b { "Yes" } else { "No" }.to_owned(),
            Some(other) => other.to_string(),
        },
        other => platform_value(other, case, client),
    }
}

/// A message about a SmartAdvocate case becomes a note on it.
pub async fn message_recorded(
    tx: &mut Tx,
    company: CompanyId,
    m: &Message,
    now: Timestamp,
) -> Result<(), StoreError> {
    let Some(t) = active(tx, company).await? else {
        return Ok(());
    };
    let Some(case_id) = m.case_id else {
        return Ok(());
    };
    let case = cases::get(tx, company, case_id).await?;
    let Some(number) = case_number_of(&case) else {
        return Ok(());
    };
    let action = OpAction::AddNote {
        category: "Client Communications".into(),
        subject: message_subject(m),
        body: m.body.clone(),
        noted_at: m.sent_at,
    };
    record(
        tx,
        company,
        &t,
        OpKind::Message,
        &case,
        number,
        &action,
        now,
    )
    .await
}

/// The "Last Dialer Disposition" value (SmartAdvocate's Predictive Dialer guide) for a call.
pub fn disposition(call: &Call) -> &'static str {
    Disposition::of(call).name()
}

/// The status type a completed call's disposition is written to.
pub const DISPOSITION_TYPE: &str = "Last Dialer Disposition";
/// The status type a completed outbound call's count of attempts is written to.
pub const ATTEMPTS_TYPE: &str = "Attempts Status";
/// The UDF (of the SmartAdvocate case type linked to the case's type) a completed outbound
/// call's next call time is written to; emptied when there is to be no next call. Modelled: the
/// dialer's `UpdateCaseStatus(NextCall)` has no public path, and no status type holds a time.
pub const NEXT_CALL_UDF: &str = "Next Call";

/// A completed Voice AI call on a SmartAdvocate case, in this order: a note with the analysis,
/// the case's "Last Dialer Disposition", and for an outbound (dialer) call its "Attempts Status"
/// (the case's analysed outbound calls, counted here) and its "Next Call" UDF
/// ([`casebridge_domain::dialer::next_call`]; emptied when there is none). The statuses go
/// through the status write and the next call through the UDF write, each found by name in the
/// loaded catalog ("not ready" in the sync log when it is not there). They are call records, so
/// they follow `send_call_records`. A revised analysis sends the note again, marked revised, and
/// nothing for the dialer.
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
    let (Some(case_id), Some(analysis)) = (call.case_id, call.analysis.as_ref()) else {
        return Ok(());
    };
    if state_for(&t, OpKind::CallRecord).is_none() {
        return Ok(());
    }
    let case = cases::get(tx, company, case_id).await?;
    let Some(number) = case_number_of(&case) else {
        return Ok(());
    };
    let subject = if revised {
        format!("{} (revised)", voice::SUMMARY_SUBJECT)
    } else {
        voice::SUMMARY_SUBJECT.to_owned()
    };
    let note = OpAction::AddNote {
        category: "Call".into(),
        subject,
        body: voice::summary_body(
            &analysis.summary,
            &analysis.post_call_result,
            &analysis.custom,
        ),
        noted_at: voice::call_time(call),
    };
    record(
        tx,
        company,
        &t,
        OpKind::CallRecord,
        &case,
        number,
        &note,
        now,
    )
    .await?;
    if revised {
        return Ok(());
    }
    let outcome = Disposition::of(call);
    let statuses = integrations::crm_statuses(tx, company, PROVIDER).await?;
    let dialer = Dialer {
        t: &t,
        case: &case,
        number,
        statuses: &statuses,
        now,
    };
    dialer
        .status(tx, company, DISPOSITION_TYPE, outcome.name(), "disposition")
        .await?;
    if call.direction != Direction::Outbound {
        return Ok(());
    }
    let attempts = activity::completed_outbound_calls(tx, company, case_id).await?;
    dialer
        .status(
            tx,
            company,
            ATTEMPTS_TYPE,
            &attempts.min(dialer::MAX_ATTEMPTS).to_string(),
            "attempts",
        )
        .await?;
    let next = dialer::next_call(outcome, attempts, voice::call_time(call));
    dialer.next_call(tx, company, next).await
}

/// What a completed call's dialer updates need to be recorded.
struct Dialer<'a> {
    t: &'a Toggles,
    case: &'a Case,
    number: &'a str,
    statuses: &'a [CrmItem],
    now: Timestamp,
}

impl Dialer<'_> {
    /// `<status_type> = <value>` through the status write, found by name in the catalog.
    async fn status(
        &self,
        tx: &mut Tx,
        company: CompanyId,
        status_type: &str,
        value: &str,
        what: &str,
    ) -> Result<(), StoreError> {
        let wanted = format!("{status_type} = {value}");
        match self
            .statuses
            .iter()
            .find(|s| s.name.eq_ignore_ascii_case(&wanted))
        {
            Some(s) => {
                let action = OpAction::SetStatus {
                    crm_status_id: s.crm_id.clone(),
                    crm_status_name: s.name.clone(),
                    case_status_id: None,
                };
                self.record(tx, company, &action).await
            }
            None => {
                let msg = format!(
                    "not ready: SmartAdvocate's catalog has no \"{wanted}\", so the call's dialer \
                     {what} was not sent (set up the dialer status types in SmartAdvocate, then \
                     refresh the fields)"
                );
                skipped(tx, company, self.number, "set status", &msg, self.now).await
            }
        }
    }

    /// The [`NEXT_CALL_UDF`] of the linked case type, as SmartAdvocate writes times (UTC, no
    /// offset), or emptied.
    async fn next_call(
        &self,
        tx: &mut Tx,
        company: CompanyId,
        at: Option<Timestamp>,
    ) -> Result<(), StoreError> {
        let linked =
            integrations::crm_case_types_linked_to(tx, company, PROVIDER, self.case.case_type_id)
                .await?;
        let udf = match linked.first() {
            Some((crm_type, _)) => integrations::crm_fields(tx, company, PROVIDER, crm_type)
                .await?
                .into_iter()
                .find(|f| f.key.eq_ignore_ascii_case(NEXT_CALL_UDF)),
            None => None,
        };
        let Some(udf) = udf else {
            let msg = format!(
                "not ready: the SmartAdvocate case type linked to the case's type has no \
                 \"{NEXT_CALL_UDF}\" UDF, so the call's next call was not sent (add the UDF in \
                 SmartAdvocate and link the case type, then refresh the fields)"
            );
            return skipped(tx, company, self.number, "update fields", &msg, self.now).await;
        };
        let value = at.map(format_time).unwrap_or_default();
        let action = OpAction::UpdateFields {
            fields: vec![(udf.key, value)],
        };
        self.record(tx, company, &action).await
    }

    async fn record(
        &self,
        tx: &mut Tx,
        company: CompanyId,
        action: &OpAction,
    ) -> Result<(), StoreError> {
        record(
            tx,
            company,
            self.t,
            OpKind::CallRecord,
            self.case,
            self.number,
            action,
            self.now,
        )
        .await
    }
}

// ---- sending side ----

/// Sends SmartAdvocate operations; see the module docs.
pub struct OpHandler {
    store: Store,
    clock: Arc<dyn Clock>,
    clients: Clients,
    throttle: Throttle,
}

enum Gate {
    Send(Arc<SmartAdvocateClient>),
    Park(OpState, String),
}

fn store_retry(e: StoreError) -> JobError {
    JobError::retry(format!("database: {e}"))
}

/// HTML for a note's text (SmartAdvocate shows `noteText` as HTML).
fn note_html(body: &str) -> String {
    let escaped = body
        .replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;");
    escaped.replace('\n', "<br>")
}

impl OpHandler {
    /// `requests_per_minute`: the per-connection limit; 0 means no limit.
    pub fn new(
        store: Store,
        clock: Arc<dyn Clock>,
        clients: Clients,
        requests_per_minute: u32,
    ) -> Self {
        Self {
            store,
            clock,
            clients,
            throttle: Throttle::new(requests_per_minute),
        }
    }

    fn gate(&self, i: Option<&Integration>, op: &CrmOp) -> Gate {
        let Some(i) = i.filter(|i| i.credentials_sealed.is_some()) else {
            return Gate::Park(OpState::Blocked, "SmartAdvocate is not connected".into());
        };
        if let Some(err) = &i.config_error {
            return Gate::Park(
                OpState::Blocked,
                format!("waiting for the connection to be fixed: {err}"),
            );
        }
        let t = toggles(i);
        match state_for(&t, op.kind) {
            Some(OpState::Pending) => {}
            Some(held) => return Gate::Park(held, "sending to SmartAdvocate is off".into()),
            None => {
                return Gate::Park(
                    OpState::Skipped,
                    "sending to SmartAdvocate was turned off before it was sent".into(),
                )
            }
        }
        match self.clients.for_integration(i) {
            Ok(Some(c)) => Gate::Send(c),
            Ok(None) => Gate::Park(OpState::Blocked, "SmartAdvocate is not connected".into()),
            Err(e) => Gate::Park(OpState::Blocked, e),
        }
    }

    async fn execute(
        &self,
        client: &SmartAdvocateClient,
        op: &CrmOp,
    ) -> Result<Option<String>, SmartAdvocateError> {
        let number = op.record_id.as_str();
        let case = client.case_by_number(number).await?.ok_or_else(|| {
            SmartAdvocateError::Rejected(format!("SmartAdvocate has no case {number}"))
        })?;
        match &op.action {
            OpAction::SetStatus { crm_status_id, .. } => {
                let (status_type, status) = match crm_status_id.split_once(':') {
                    Some((t, s)) => (t.to_owned(), s.to_owned()),
                    None => {
                        let primary = client
                            .status_types()
                            .await?
                            .into_iter()
                            .find(|t| t.name.eq_ignore_ascii_case("Status"))
                            .ok_or_else(|| {
                                SmartAdvocateError::Rejected(
                                    "SmartAdvocate has no status type named Status".into(),
                                )
                            })?;
                        (primary.id, crm_status_id.clone())
                    }
                };
                client
                    .set_status(&case.case_id, &status_type, &status)
                    .await
                    .map(|_| None)
            }
            OpAction::UpdateFields { fields } => {
                client.set_udfs(&case.case_id, fields).await.map(|_| None)
            }
            OpAction::AddNote {
                subject,
                body,
                noted_at,
                ..
            } => {
                let note = note_json(subject, body, *noted_at);
                let answer = client.insert_note(&case.case_id, &note).await?;
                Ok(serde_json::from_str::<Value>(&answer).ok().and_then(|v| {
                    match v.get("noteID")? {
                        Value::String(s) => Some(s.clone()),
                        Value::Number(n) => Some(n.to_string()),
                        _ => None,
                    }
                }))
            }
            other => Err(SmartAdvocateError::Rejected(format!(
                "{} is not an operation SmartAdvocate takes",
                other.describe()
            ))),
        }
    }

    /// Settles a sent operation; a note SmartAdvocate gave an id is remembered as ours
    /// (origin `platform`), so the pull does not bring it back as SmartAdvocate's.
    async fn succeeded(&self, op: &CrmOp, note_id: Option<String>) -> Result<(), StoreError> {
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
                Some(crm_note_id),
                OpAction::AddNote {
                    category,
                    subject,
                    body,
                    noted_at,
                },
            ) = (note_id, &op.action)
            {
                crm_notes::insert(
                    &mut tx,
                    op.company_id,
                    PROVIDER,
                    &CrmNote {
                        crm_note_id,
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
            OUTBOX
                .log(
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
            return Ok(());
        }
        let seen = integration
            .as_ref()
            .map(|i| (i.credentials_sealed.clone(), i.config_error.clone()))
            .unwrap_or((None, None));
        let changed = || JobError::Retry {
            error: "the SmartAdvocate connection changed while sending; trying again".into(),
            retry_after: None,
        };
        let now = || self.clock.now();
        let client = match self.gate(integration.as_ref(), &op) {
            Gate::Send(c) => c,
            Gate::Park(OpState::Blocked, why) => {
                return match OUTBOX
                    .block(&self.store, now(), &op, &seen, &why, false, false)
                    .await
                {
                    Ok(true) => Ok(()),
                    Ok(false) => Err(changed()),
                    Err(e) => Err(store_retry(e)),
                };
            }
            Gate::Park(state, why) => {
                OUTBOX
                    .settle(
                        &self.store,
                        now(),
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
        if let Err(wait) = self.throttle.wait(self.clock.as_ref(), company).await {
            counters::rate_limit_wait(PROVIDER, wait.as_secs_f64());
            return Err(JobError::Retry {
                error: "waiting for the SmartAdvocate rate limit".into(),
                retry_after: Some(wait),
            });
        }
        match self.execute(&client, &op).await {
            Ok(note_id) => self.succeeded(&op, note_id).await.map_err(store_retry),
            Err(e) if e.is_retryable() => {
                let retry_after = match &e {
                    SmartAdvocateError::RateLimited { retry_after } => *retry_after,
                    _ => None,
                };
                if let Some(wait) = retry_after {
                    self.throttle.cool_down(self.clock.as_ref(), company, wait);
                }
                OUTBOX
                    .transient(&self.store, now(), &op, &e.to_string())
                    .await
                    .map_err(store_retry)?;
                Err(JobError::Retry {
                    error: e.to_string(),
                    retry_after,
                })
            }
            Err(e) if e.is_config() => {
                match OUTBOX
                    .block(&self.store, now(), &op, &seen, &e.to_string(), true, true)
                    .await
                {
                    Ok(true) => Ok(()),
                    Ok(false) => Err(changed()),
                    Err(e) => Err(store_retry(e)),
                }
            }
            Err(e @ SmartAdvocateError::Unexpected(_))
                if op.attempts + 1 < MAX_UNEXPECTED_ATTEMPTS =>
            {
                OUTBOX
                    .transient(&self.store, now(), &op, &e.to_string())
                    .await
                    .map_err(store_retry)?;
                Err(JobError::retry(e.to_string()))
            }
            Err(e) => {
                let msg = e.to_string();
                OUTBOX
                    .settle(
                        &self.store,
                        now(),
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
            let _ = OUTBOX
                .settle(
                    &self.store,
                    self.clock.now(),
                    &op,
                    OpState::Failed,
                    false,
                    Some(error),
                    SyncOutcome::Error,
                    None,
                    error,
                )
                .await;
        }
    }
}

/// Adds the SmartAdvocate outbound handler to the `crm` queue's registry.
pub fn register(registry: Registry, handler: OpHandler) -> Registry {
    registry.register(KIND, handler, retry_policy())
}
