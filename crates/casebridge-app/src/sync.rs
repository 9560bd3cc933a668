//! The conflict log of two-way sync (SYNC2): list a CRM's conflicts, and restore a losing value
//! as a new, audited platform change (which goes to the CRM like any other).

use casebridge_crm::conflicts::STATUS;
use casebridge_crm::PlatformChange;
use casebridge_domain::ids::{CaseStatusId, CompanyId};
use casebridge_domain::integrations::Provider;
use casebridge_domain::model::Case;
use casebridge_domain::page::{Page, PageRequest};
use casebridge_domain::records::CasePatch;
use casebridge_store::sync_state;
pub use casebridge_store::sync_state::{Conflict, ConflictFilter};
use casebridge_store::{audit, cases};

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
