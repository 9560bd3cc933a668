//! Two-way fields against their base (SYNC2), for every CRM: the case status, which both CRMs
//! send in (webhooks, pulls, imports) and take back (status sync); and the field mappings' sync
//! rules, which decide which changed mapped fields are written ([`fields_to_send`]).
//!
//! - When a platform status change is written to the CRM ([`written`], in the transaction that
//!   marks the operation done), the pair (platform status, CRM status) becomes the base.
//! - When a CRM record arrives ([`status_inbound`], in its ingest transaction), its status is
//!   decided against the base by `casebridge_domain::sync::decide` under the integration's
//!   conflict rule. A conflict writes one `sync_conflicts` row whatever wins. When the CRM wins,
//!   the platform's unsent status changes of that case are skipped as superseded; when the
//!   platform wins, its status is sent to the CRM (unless a change of it is already on its way).
//! - Times for "most recent": the platform's is when its newest status operation for the case
//!   was recorded (the platform change that caused it); the CRM's is what its connector gives
//!   (SmartAdvocate's `modifiedDate`; Law Ruler sends none, so its record's arrival time).

use casebridge_domain::crm_ops::{OpAction, OpKind, OpState};
use casebridge_domain::ids::{CaseId, CaseStatusId, CompanyId};
use casebridge_domain::integrations::{CrmValue, SyncOutcome, Toggles};
use casebridge_domain::model::Case;
use casebridge_domain::records::NamedKind;
use casebridge_domain::sync::{self, Base, Decision, FieldRule, FieldState, Side};
use casebridge_store::sync_state::{self, NewConflict};
use casebridge_store::{crm_ops, integrations, named, Conn, StoreError, Tx};
use jiff::Timestamp;

use crate::outbox::Outbox;

/// The field name of the case status in bases and the conflict log.
pub const STATUS: &str = "status";

/// How many of a case's newest status operations are read for the platform's change time.
const RECENT_OPS: u32 = 20;

/// The platform status a status operation sends, when it is a platform change of the CRM's
/// primary status.
fn sent_status(action: &OpAction) -> Option<&str> {
    match action {
        OpAction::SetStatus {
            case_status_id: Some(p),
            ..
        } => Some(p),
        _ => None,
    }
}

/// A status operation went through: what it wrote is the status's new base.
pub async fn written(
    conn: &mut Conn,
    provider: &str,
    op: &crm_ops::CrmOp,
    now: Timestamp,
) -> Result<(), StoreError> {
    let (Some(case), Some(platform), OpAction::SetStatus { crm_status_id, .. }) =
        (op.case_id, sent_status(&op.action), &op.action)
    else {
        return Ok(());
    };
    let base = Base {
        platform: Some(platform.to_owned()),
        crm: Some(crm_status_id.clone()),
    };
    sync_state::set_base(conn, op.company_id, provider, case, STATUS, &base, now).await
}

async fn status_name(conn: &mut Conn, company: CompanyId, id: Option<&str>) -> Option<String> {
    let id = id?;
    Some(
        named::get(conn, company, NamedKind::CaseStatus, id)
            .await
            .map(|n| n.name)
            .unwrap_or_else(|_| id.to_owned()),
    )
}

/// A CRM record's status for a case that exists.
pub struct StatusIn<'a> {
    /// The CRM's status as it arrived.
    pub crm: &'a CrmValue,
    /// The platform status it maps to.
    pub as_platform: CaseStatusId,
    /// When the CRM changed the record, if it says.
    pub changed_at: Option<Timestamp>,
}

/// Decides an arriving status for an existing case against the base (module docs), records a
/// conflict if there is one, and returns the status to set on the case (`None`: leave it).
pub async fn status_inbound(
    tx: &mut Tx,
    company: CompanyId,
    outbox: &Outbox,
    case: &Case,
    record_ref: &str,
    incoming: &StatusIn<'_>,
    now: Timestamp,
) -> Result<Option<CaseStatusId>, StoreError> {
    let provider = outbox.provider;
    let integration = integrations::get(tx, company, provider).await?;
    let toggles = integration
        .as_ref()
        .map(|i| Toggles::from_settings(&i.settings))
        .unwrap_or_default();
    let base = sync_state::base(tx, company, provider, case.id, STATUS).await?;
    let platform = case.case_status_id.map(|s| s.to_string());
    let crm_as_platform = incoming.as_platform.to_string();
    let recent =
        crm_ops::of_case(tx, company, provider, case.id, OpKind::Status, RECENT_OPS).await?;
    let platform_changed_at = recent
        .iter()
        .find(|o| sent_status(&o.action) == platform.as_deref())
        .map(|o| o.created_at);
    let state = FieldState {
        base: base.as_ref(),
        platform: platform.as_deref(),
        crm: Some(&incoming.crm.id),
        crm_as_platform: Some(&crm_as_platform),
        platform_changed_at,
        crm_changed_at: incoming.changed_at,
    };
    let agreed = |platform: Option<String>| Base {
        platform,
        crm: Some(incoming.crm.id.clone()),
    };
    let resolved = match sync::decide(&state, toggles.conflict_resolution) {
        Decision::Keep => return Ok(None),
        Decision::TakeCrm => {
            let b = agreed(Some(crm_as_platform));
            sync_state::set_base(tx, company, provider, case.id, STATUS, &b, now).await?;
            return Ok(Some(incoming.as_platform));
        }
        Decision::Agreed => {
            let b = agreed(platform);
            sync_state::set_base(tx, company, provider, case.id, STATUS, &b, now).await?;
            return Ok(None);
        }
        Decision::Conflict(r) => r,
    };
    let base_name = status_name(
        tx,
        company,
        base.as_ref().and_then(|b| b.platform.as_deref()),
    )
    .await;
    let platform_name = status_name(tx, company, platform.as_deref()).await;
    let unsent = crm_ops::unsent_of_case(tx, company, provider, case.id, OpKind::Status).await?;
    let (set, restore_value) = match resolved.winner {
        Side::Crm => {
            // The platform's change lost: its unsent writes of the status must not overwrite
            // the CRM's value afterwards.
            for op in unsent.iter().filter(|o| sent_status(&o.action).is_some()) {
                let why = format!(
                    "superseded: the CRM's status \"{}\" won a conflict ({})",
                    incoming.crm.name, resolved.rule
                );
                if crm_ops::transition(
                    tx,
                    company,
                    &op.id,
                    op.state,
                    OpState::Skipped,
                    false,
                    Some(&why),
                    now,
                )
                .await?
                {
                    crate::outbox::count_settled(tx, op, OpState::Skipped, now).await?;
                }
            }
            let b = agreed(Some(crm_as_platform.clone()));
            sync_state::set_base(tx, company, provider, case.id, STATUS, &b, now).await?;
            (Some(incoming.as_platform), platform.clone())
        }
        Side::Platform => {
            // The CRM's value seen and refused is not a change next time; the base's platform
            // side moves when the platform's value is written.
            let b = Base {
                platform: base.as_ref().and_then(|b| b.platform.clone()),
                crm: Some(incoming.crm.id.clone()),
            };
            sync_state::set_base(tx, company, provider, case.id, STATUS, &b, now).await?;
            let on_its_way = unsent
                .iter()
                .any(|o| sent_status(&o.action) == platform.as_deref());
            if let (false, Some(status)) = (on_its_way, case.case_status_id) {
                if let Some((crm_status_id, crm_status_name)) =
                    integrations::crm_status_for(tx, company, provider, status).await?
                {
                    if integration.is_some_and(|i| i.credentials_sealed.is_some())
                        && toggles.enable_integration
                    {
                        let action = OpAction::SetStatus {
                            crm_status_id,
                            crm_status_name,
                            case_status_id: Some(status.to_string()),
                        };
                        outbox
                            .record(
                                tx,
                                company,
                                &toggles,
                                OpKind::Status,
                                Some(case.id),
                                record_ref,
                                &action,
                                now,
                            )
                            .await?;
                    }
                }
            }
            (None, Some(crm_as_platform.clone()))
        }
    };
    sync_state::record_conflict(
        tx,
        company,
        &NewConflict {
            provider,
            case_id: case.id,
            record_ref,
            field: STATUS,
            base_value: base_name.as_deref(),
            platform_value: platform_name.as_deref(),
            crm_value: Some(&incoming.crm.name),
            rule: &resolved.rule,
            winner: resolved.winner,
            restore_value: restore_value.as_deref(),
        },
        now,
    )
    .await?;
    Ok(set)
}

/// How many of a case's newest mapped-field operations are read to tell whether casebridge
/// ever gave the CRM a value of a field ("prefer CRM unless blank").
const RECENT_FIELD_OPS: u32 = 200;

/// A changed mapped field of a platform change: the CRM field key, the new value, its rule.
pub struct ChangedField {
    pub key: String,
    pub value: String,
    pub rule: FieldRule,
}

/// The changed mapped fields a platform change writes to the CRM, after each mapping's rule
/// (`FieldRule::withholds`); the ones a rule withholds are named, with why, in one skipped line
/// of the sync log. "The CRM has a value" is known only from what casebridge sent: an operation
/// of the case, not skipped or failed, that wrote a non-blank value to the field.
pub async fn fields_to_send(
    tx: &mut Tx,
    company: CompanyId,
    outbox: &Outbox,
    case: CaseId,
    record: &str,
    changed: Vec<ChangedField>,
    now: Timestamp,
) -> Result<Vec<(String, String)>, StoreError> {
    let mut sent_before: Option<Vec<crm_ops::CrmOp>> = None;
    let mut out = Vec::new();
    let mut withheld = Vec::new();
    for f in changed {
        let crm_has_value = if f.rule == FieldRule::PreferCrmUnlessBlank {
            if sent_before.is_none() {
                let ops = crm_ops::of_case(
                    tx,
                    company,
                    outbox.provider,
                    case,
                    OpKind::MappedFields,
                    RECENT_FIELD_OPS,
                )
                .await?;
                sent_before = Some(ops);
            }
            sent_before.iter().flatten().any(|o| {
                !matches!(o.state, OpState::Skipped | OpState::Failed)
                    && matches!(&o.action, OpAction::UpdateFields { fields }
                        if fields.iter().any(|(k, v)| *k == f.key && !v.trim().is_empty()))
            })
        } else {
            false
        };
        match f.rule.withholds(&f.value, crm_has_value) {
            None => out.push((f.key, f.value)),
            Some(why) => withheld.push(format!("{}: {why}", f.key)),
        }
    }
    if !withheld.is_empty() {
        let msg = format!("not sent by the field rules: {}", withheld.join("; "));
        outbox
            .log(
                tx,
                company,
                Some(record),
                "update fields",
                SyncOutcome::Skipped,
                None,
                &msg,
                now,
            )
            .await?;
    }
    Ok(out)
}
