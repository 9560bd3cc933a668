//! Inbound CRM webhooks (LR2–LR6): the one path every provider's webhook takes.
//!
//! The token in the URL names the company's integration. Then, in order: the connector reads
//! the body's fields; the integration's gates may say to ignore it (answered as such, so the CRM
//! does not retry, and logged); a field with a NUL character or given twice with different
//! values is refused (422 naming it, logged); the connector parses it (a bad field is refused,
//! logged, and nothing changes); the dedupe receipt, the apply and the sync-log line commit in one
//! transaction, so a webhook is applied whole or not at all. Errors are logged to the sync log
//! in a transaction of their own.

use casebridge_crm::connector::{InboundRejection, IngestError, InvalidInbound};
use casebridge_domain::ids::CompanyId;
use casebridge_domain::input;
use casebridge_domain::integrations::{ErrorKind, Provider, SyncOutcome};
use casebridge_domain::ValidationError;
use casebridge_store::integrations::{self as store, NewSyncEntry};
use casebridge_store::StoreError;

pub use casebridge_crm::connector::{Applied, InboundBody};

use crate::{App, AppError, Result};

/// What a webhook did.
#[derive(Debug, Clone)]
pub enum Received {
    Applied(Applied),
    /// The same content was applied before for this record.
    Duplicate {
        reason: String,
    },
    /// Receiving is turned off (or the CRM is not connected); nothing changed.
    Ignored {
        reason: String,
    },
}

async fn log(
    app: &App,
    company: CompanyId,
    p: Provider,
    outcome: SyncOutcome,
    kind: Option<ErrorKind>,
    record: Option<&str>,
    message: &str,
) -> Result<()> {
    let mut tx = app.store().begin().await?;
    store::log(
        &mut tx,
        company,
        p.as_str(),
        &NewSyncEntry {
            direction: "inbound",
            operation: "webhook",
            record_ref: record,
            outcome,
            error_kind: kind,
            message: Some(message),
        },
        app.now(),
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

/// Receives one webhook of `p` at the URL with `token`; `query` is the URL's query string.
/// Returns the company it was for (for the caller's logs) and what it did.
pub async fn receive(
    app: &App,
    p: Provider,
    token: &str,
    query: &str,
    body: InboundBody,
) -> Result<(CompanyId, Received)> {
    let no_hook = || AppError::NotFound("no such webhook".into());
    let connector = app.connectors().get(p).ok_or_else(no_hook)?;
    let integration = {
        let mut conn = app.store().conn().await?;
        store::by_token(&mut conn, p.as_str(), token)
            .await?
            .ok_or_else(no_hook)?
    };
    let company = integration.company_id;
    let fields = connector.inbound_fields(query, body).map_err(|r| match r {
        InboundRejection::Malformed(m) => AppError::BadRequest(m),
        InboundRejection::TooLarge(m) => AppError::PayloadTooLarge(m),
        InboundRejection::Unsupported(m) => AppError::UnsupportedMediaType(m),
    })?;

    if let Some(reason) = connector.inbound_gate(&integration) {
        log(
            app,
            company,
            p,
            SyncOutcome::Skipped,
            Some(ErrorKind::Configuration),
            None,
            &reason,
        )
        .await?;
        return Ok((company, Received::Ignored { reason }));
    }

    // Whatever the CRM: no NUL characters (PostgreSQL cannot store them) and no field given
    // twice with different values in the URL or in the body.
    if let Err(invalid) = input::check_pairs(&fields.query).and(input::check_pairs(&fields.body)) {
        log(
            app,
            company,
            p,
            SyncOutcome::Error,
            Some(ErrorKind::Validation),
            None,
            &invalid.to_string(),
        )
        .await?;
        return Err(invalid.into());
    }

    let record = match connector.parse_inbound(&fields.query, &fields.body) {
        Ok(r) => r,
        Err(InvalidInbound {
            field,
            message,
            record_ref,
        }) => {
            log(
                app,
                company,
                p,
                SyncOutcome::Error,
                Some(ErrorKind::Validation),
                record_ref.as_deref(),
                &message,
            )
            .await?;
            return Err(ValidationError::single(field, message).into());
        }
    };

    let now = app.now();
    let mut tx = app.store().begin().await?;
    if !store::record_receipt(
        &mut tx,
        company,
        p.as_str(),
        &record.record_id,
        &record.content_hash,
        now,
    )
    .await?
    {
        // Nothing changes, but a webhook did arrive (the checklist's "first webhook received").
        store::touch_webhook(&mut tx, company, p.as_str(), now).await?;
        tx.commit().await?;
        return Ok((
            company,
            Received::Duplicate {
                reason: "identical to the last webhook applied for this lead".into(),
            },
        ));
    }
    let applied = match connector
        .apply_inbound(&mut tx, company, &record, now)
        .await
    {
        Ok(a) => a,
        Err(e) => {
            drop(tx); // rolled back: nothing of this webhook is kept
            let (kind, err) = match e {
                IngestError::Invalid(v) => (ErrorKind::Validation, AppError::Validation(v)),
                // A uniqueness conflict here means another webhook for the same contact or
                // mapping won a race: the CRM should simply send again, so 503, not 409.
                IngestError::Store(StoreError::Conflict(m)) => (
                    ErrorKind::Transient,
                    AppError::Unavailable(format!(
                        "a concurrent update got there first ({m}); send again"
                    )),
                ),
                IngestError::Store(e) => (ErrorKind::Transient, AppError::from(e)),
            };
            log(
                app,
                company,
                p,
                SyncOutcome::Error,
                Some(kind),
                Some(&record.record_id),
                &err.to_string(),
            )
            .await?;
            return Err(err);
        }
    };
    store::touch_webhook(&mut tx, company, p.as_str(), now).await?;
    let message = if applied.auto_linked.is_empty() {
        format!("lead {} applied", record.record_id)
    } else {
        format!(
            "lead {} applied; {}",
            record.record_id,
            applied.auto_linked.join("; ")
        )
    };
    store::log(
        &mut tx,
        company,
        p.as_str(),
        &NewSyncEntry {
            direction: "inbound",
            operation: "webhook",
            record_ref: Some(&record.record_id),
            outcome: SyncOutcome::Ok,
            error_kind: None,
            message: Some(&message),
        },
        now,
    )
    .await?;
    tx.commit().await?;
    Ok((company, Received::Applied(applied)))
}
