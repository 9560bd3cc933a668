//! The conflict log of two-way sync (SYNC2): list a CRM's conflicts, and restore a losing value
//! as a new, audited platform change (which goes to the CRM like any other).

use casebridge_crm::conflicts::STATUS;
pub use casebridge_crm::PlannedRequest;
use casebridge_crm::{Connector, IngestError, PlatformChange};
use casebridge_domain::crm_ops::OpKind;
use casebridge_domain::ids::{CaseId, CaseStatusId, CompanyId};
use casebridge_domain::input;
use casebridge_domain::integrations::{Provider, Toggles};
use casebridge_domain::model::Case;
use casebridge_domain::page::{Page, PageRequest};
use casebridge_domain::records::{CasePatch, NamedKind};
use casebridge_domain::ValidationError;
use casebridge_store::crm_ops::{self, CrmOp};
use casebridge_store::integrations::{self, Integration, SyncEntry};
use casebridge_store::sync_state;
pub use casebridge_store::sync_state::{Conflict, ConflictFilter};
use casebridge_store::{audit, cases, clients, named, Conn, StoreError, Tx};
use jiff::Timestamp;

use crate::{fanout, App, AppError, OrNotFound, Result};

/// The audit log's action for a restore.
pub const RESTORE: &str = "sync.conflict.restore";

/// A page of a CRM's conflicts, newest first.
pub async fn conflicts(
    app: &App,
    company: CompanyId,
    p: Provider,
    filter: &ConflictFilter,
    page: &PageRequest,
) -> Result<Page<Conflict>> {
    let mut conn = app.store().conn().await?;
    Ok(sync_state::conflicts(&mut conn, company, p.as_str(), filter, page).await?)
}

/// What a restore did.
#[derive(Debug, Clone)]
pub struct Restored {
    pub conflict: Conflict,
    pub case: Case,
}

/// Applies a conflict's losing value to the platform record as a new change (sent to the CRM
/// through the outbox like any platform change), records who did it in the audit log, and marks
/// the conflict restored, in one transaction. A conflict restores once: again is a 409.
pub async fn restore(
    app: &App,
    company: CompanyId,
    p: Provider,
    id: &str,
    actor: &str,
) -> Result<Restored> {
    let now = app.now();
    let mut tx = app.store().begin().await?;
    let conflict = sync_state::conflict_for_update(&mut tx, company, p.as_str(), id)
        .await?
        .ok_or_else(|| AppError::NotFound(format!("no {} conflict {id}", p.label())))?;
    if let Some(at) = conflict.restored_at {
        return Err(AppError::Conflict(format!(
            "conflict {id} was restored already ({at}, by {})",
            conflict.restored_by.as_deref().unwrap_or("unknown")
        )));
    }
    let Some(value) = conflict.restore_value.as_deref() else {
        return Err(AppError::Conflict(format!(
            "conflict {id} has no losing value to restore"
        )));
    };
    if conflict.field != STATUS {
        return Err(AppError::Conflict(format!(
            "conflicts on `{}` cannot be restored",
            conflict.field
        )));
    }
    let status: CaseStatusId = value
        .parse()
        .map_err(|_| AppError::Internal(format!("conflict {id} holds `{value}`, not a status")))?;
    let case_id = conflict.case_id;
    let before = cases::get_for_update(&mut tx, company, case_id)
        .await
        .or_not_found("case", &case_id.to_string())?;
    let patch = CasePatch {
        case_status_id: Some(Some(status)),
        ..CasePatch::default()
    };
    let case = cases::update(&mut tx, company, case_id, &patch, now)
        .await
        .or_not_found("case", &case_id.to_string())?;
    let change = PlatformChange::Case {
        before: Some(&before),
        after: &case,
    };
    fanout::platform_change(app, &mut tx, company, change, now).await?;
    audit::record(&mut tx, company, actor, RESTORE, id, now).await?;
    sync_state::mark_restored(&mut tx, company, id, actor, now).await?;
    let conflict = sync_state::conflict_for_update(&mut tx, company, p.as_str(), id)
        .await?
        .ok_or_else(|| AppError::Internal("conflict vanished".into()))?;
    tx.commit().await?;
    Ok(Restored { conflict, case })
}

// ---- dry run and resync (SYNC4) ----

/// What syncing one case to the CRM does now: the operations recorded, each with the requests
/// it sends (or why they cannot be shown), the sync-log lines written (skips with reasons), and
/// the kinds the settings turn off.
#[derive(Debug, Clone)]
pub struct OutboundPlan {
    pub case_id: CaseId,
    /// The CRM record the case is linked to; `None`: not linked, so nothing is sent.
    pub record_ref: Option<String>,
    pub operations: Vec<PlannedOperation>,
    pub log: Vec<SyncEntry>,
    /// `(kind, why)` for the kinds a case sync would send that the settings stop.
    pub blocked: Vec<(OpKind, String)>,
}

/// One operation of a plan.
#[derive(Debug, Clone)]
pub struct PlannedOperation {
    pub op: CrmOp,
    pub requests: std::result::Result<Vec<PlannedRequest>, String>,
}

/// What one CRM record (as its webhook carries it) would change on the platform.
#[derive(Debug, Clone)]
pub struct InboundPlan {
    pub record_ref: String,
    /// Why the CRM's webhook would be ignored now, if it would.
    pub ignored: Option<String>,
    /// The platform case it matches, if one exists.
    pub case_id: Option<CaseId>,
    pub creates_case: bool,
    pub creates_client: bool,
    /// `(field, now, after)` for each value that would change.
    pub changes: Vec<(String, Option<String>, Option<String>)>,
    pub conflicts: Vec<Conflict>,
    pub log: Vec<SyncEntry>,
    /// Mappings that would be made because a CRM value has none.
    pub auto_linked: Vec<String>,
}

/// A dry run (SYNC4): one or both directions, changing nothing.
#[derive(Debug, Clone, Default)]
pub struct DryRun {
    pub outbound: Option<OutboundPlan>,
    pub inbound: Option<InboundPlan>,
}

/// A sample to test with: a platform case (what syncing it sends), a CRM record as its webhook
/// carries it (what receiving it changes), or both.
#[derive(Debug, Clone, Default)]
pub struct Sample {
    pub case_id: Option<CaseId>,
    pub record: Option<Vec<(String, String)>>,
}

/// Shows what syncing the sample would do now, in both directions, without changing either
/// side: the real sync's code runs in a transaction that is always rolled back (so it cannot
/// drift from what the sync does), and the outbound requests are built by the CRM client's own
/// request parts and never sent. No job is queued, no cursor moves, no CRM write is called.
pub async fn dry_run(
    app: &App,
    company: CompanyId,
    p: Provider,
    sample: &Sample,
) -> Result<DryRun> {
    if sample.case_id.is_none() && sample.record.is_none() {
        return Err(ValidationError::single(
            "case_id",
            "give a case_id (what syncing it sends), a record (what receiving it changes), or both",
        )
        .into());
    }
    let connector = connector(app, p)?;
    let integration = integration(app, company, p).await?;
    let now = app.now();
    let mut tx = app.store().begin().await?;
    let mut out = DryRun::default();
    if let Some(id) = sample.case_id {
        out.outbound = Some(plan_case(&mut tx, company, connector, &integration, id, now).await?);
    }
    if let Some(fields) = &sample.record {
        out.inbound =
            Some(plan_record(&mut tx, company, connector, &integration, fields, now).await?);
    }
    tx.rollback().await?;
    Ok(out)
}

/// Syncs one case to the CRM now, as the dry run showed it (the same planner, committed): its
/// status and mapped fields as they stand, as if the case were new to the CRM.
pub async fn resync_case(
    app: &App,
    company: CompanyId,
    p: Provider,
    case_id: CaseId,
) -> Result<OutboundPlan> {
    let connector = connector(app, p)?;
    let integration = integration(app, company, p).await?;
    let now = app.now();
    let mut tx = app.store().begin().await?;
    let plan = plan_case(&mut tx, company, connector, &integration, case_id, now).await?;
    tx.commit().await?;
    Ok(plan)
}

fn connector(app: &App, p: Provider) -> Result<&std::sync::Arc<dyn Connector>> {
    app.connectors()
        .get(p)
        .ok_or_else(|| AppError::NotFound(format!("no integration {}", p.as_str())))
}

async fn integration(app: &App, company: CompanyId, p: Provider) -> Result<Integration> {
    let mut conn = app.store().conn().await?;
    integrations::get(&mut conn, company, p.as_str())
        .await?
        .ok_or_else(|| AppError::Conflict(format!("connect {} first", p.label())))
}

/// The planner: records what a sync of the case records (through the connector, in `tx`) and
/// reads back what it wrote there.
async fn plan_case(
    tx: &mut Tx,
    company: CompanyId,
    connector: &std::sync::Arc<dyn Connector>,
    i: &Integration,
    case_id: CaseId,
    now: Timestamp,
) -> Result<OutboundPlan> {
    let p = connector.provider();
    let case = cases::get_for_update(tx, company, case_id)
        .await
        .or_not_found("case", &case_id.to_string())?;
    let record_ref = case
        .external_refs
        .iter()
        .find(|r| r.provider == p.as_str())
        .map(|r| r.external_id.clone());
    let gates = Toggles::from_settings(&i.settings).gates();
    let blocked = [OpKind::MappedFields, OpKind::Status]
        .into_iter()
        .filter(|k| !k.allowed(&gates))
        .map(|k| {
            let why = if k == OpKind::Status {
                format!("{} is off: status changes are held", k.toggle())
            } else {
                format!("{} is off (or a setting it needs)", k.toggle())
            };
            (k, why)
        })
        .collect();
    let mark = uuid::Uuid::now_v7().to_string();
    let change = PlatformChange::Case {
        before: None,
        after: &case,
    };
    connector.record_change(tx, company, &change, now).await?;
    let (ops, log) = match &record_ref {
        Some(r) => (
            crm_ops::after(tx, company, p.as_str(), r, &mark).await?,
            integrations::sync_log_after(tx, company, p.as_str(), r, &mark).await?,
        ),
        None => (Vec::new(), Vec::new()),
    };
    let operations = ops
        .into_iter()
        .map(|op| PlannedOperation {
            requests: connector.plan_operation(i, &op.record_id, &op.action),
            op,
        })
        .collect();
    Ok(OutboundPlan {
        case_id,
        record_ref,
        operations,
        log,
        blocked,
    })
}

/// What receiving `fields` (a CRM record as its webhook carries it) changes, applied through
/// the webhook's own path in `tx` (which the caller rolls back).
async fn plan_record(
    tx: &mut Tx,
    company: CompanyId,
    connector: &std::sync::Arc<dyn Connector>,
    i: &Integration,
    fields: &[(String, String)],
    now: Timestamp,
) -> Result<InboundPlan> {
    let p = connector.provider();
    input::check_pairs(fields)?;
    let record = connector
        .parse_inbound(&[], fields)
        .map_err(|e| ValidationError::single(format!("record.{}", e.field), e.message))?;
    let record_ref = record.record_id.clone();
    let mut plan = InboundPlan {
        ignored: connector.inbound_gate(i),
        record_ref: record_ref.clone(),
        case_id: None,
        creates_case: false,
        creates_client: false,
        changes: Vec::new(),
        conflicts: Vec::new(),
        log: Vec::new(),
        auto_linked: Vec::new(),
    };
    if plan.ignored.is_some() {
        return Ok(plan);
    }
    let before = match cases::find_by_ref(tx, company, p.as_str(), &record_ref).await {
        Ok(c) => Some(c),
        Err(StoreError::NotFound) => None,
        Err(e) => return Err(e.into()),
    };
    let before_view = match &before {
        Some(c) => case_view(tx, company, c).await?,
        None => Vec::new(),
    };
    let mark = uuid::Uuid::now_v7().to_string();
    let applied = connector
        .apply_inbound(tx, company, &record, now)
        .await
        .map_err(|e| match e {
            IngestError::Invalid(v) => AppError::Validation(v),
            IngestError::Store(s) => s.into(),
        })?;
    let after = cases::get(tx, company, applied.case_id).await?;
    let after_view = case_view(tx, company, &after).await?;
    for (field, to) in &after_view {
        let from = before_view
            .iter()
            .find(|(f, _)| f == field)
            .and_then(|(_, v)| v.clone());
        if from != *to {
            plan.changes.push((field.clone(), from, to.clone()));
        }
    }
    plan.case_id = before.map(|c| c.id);
    plan.creates_case = applied.case_created;
    plan.creates_client = applied.client_created;
    plan.auto_linked = applied.auto_linked;
    plan.conflicts =
        sync_state::conflicts_after(tx, company, p.as_str(), &record_ref, &mark).await?;
    plan.log = integrations::sync_log_after(tx, company, p.as_str(), &record_ref, &mark).await?;
    Ok(plan)
}

/// A case as an admin reads it, field by field: name, type and status by name, the client's
/// fields, each custom field.
async fn case_view(
    conn: &mut Conn,
    company: CompanyId,
    c: &Case,
) -> Result<Vec<(String, Option<String>)>> {
    let mut out = vec![("case.name".to_owned(), Some(c.name.clone()))];
    let type_name = named::get(
        conn,
        company,
        NamedKind::CaseType,
        &c.case_type_id.to_string(),
    )
    .await
    .map(|n| n.name)
    .ok();
    out.push(("case.case_type".into(), type_name));
    let status = match c.case_status_id {
        Some(s) => named::get(conn, company, NamedKind::CaseStatus, &s.to_string())
            .await
            .map(|n| n.name)
            .ok(),
        None => None,
    };
    out.push(("case.status".into(), status));
    if let Some(id) = c.client_id {
        let client = clients::get(conn, company, id).await?;
        let f = client.fields;
        out.push(("client.first_name".into(), f.first_name));
        out.push(("client.last_name".into(), f.last_name));
        out.push(("client.email".into(), f.email));
        out.push(("client.phone".into(), f.phone));
    }
    if let Some(map) = c.custom_fields.as_object() {
        for (k, v) in map {
            let text = match v {
                serde_json::Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            out.push((format!("custom.{k}"), Some(text)));
        }
    }
    Ok(out)
}
