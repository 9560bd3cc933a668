//! Inbound CRM webhooks (LR2–LR6): the one path every provider's webhook takes.
//!
//! The token in the URL names the company's integration. Then, in order: the connector reads
//! the body's fields; the integration's gates may say to ignore it (answered as such, so the CRM
//! does not retry, and logged); a field with a NUL character or given twice with different
//! values is refused (422 naming it, logged); the connector parses it (a bad field is refused,
//! logged, and nothing changes); the dedupe receipt, the apply and the sync-log line are one unit
//! of a group commit (`Store::group_commit`: one savepoint in a write transaction shared with
//! concurrent webhooks, answered after its commit), so a webhook is applied whole or not at all
//! and never takes another down with it. Errors are logged to the sync log in a transaction of
//! their own (a unit of a later group commit).

use casebridge_crm::connector::{
    Connector, InboundRecord, InboundRejection, IngestError, InvalidInbound,
};
use casebridge_domain::ids::{CaseId, ClientId, CompanyId};
use casebridge_domain::input;
use casebridge_domain::integrations::{ErrorKind, Provider, SyncOutcome};
use casebridge_domain::sync::RecordOutcome;
use casebridge_domain::ValidationError;
use casebridge_store::integrations::{self as store, NewSyncEntry};
use casebridge_store::sync_state;
use casebridge_store::{StoreError, Tx};
use jiff::Timestamp;

pub use casebridge_crm::connector::{Applied, InboundBody};

use crate::{App, AppError, Result};

/// A multipart part's field name from its `Content-Disposition` header, for the parts whose
/// plain `name="…"` is absent: the RFC 2231 / RFC 5987 form `name*=utf-8''Lead%20ID`, which
/// senders (reqwest among them) use for names with spaces or non-ASCII letters. `None` when the
/// header names no field either way.
pub fn multipart_field_name(content_disposition: &str) -> Option<String> {
    let value = content_disposition.split(';').find_map(|param| {
        let (key, value) = param.split_once('=')?;
        key.trim()
            .eq_ignore_ascii_case("name*")
            .then(|| value.trim().trim_matches('"'))
    })?;
    // charset'language'percent-encoded-text; only UTF-8 and its ASCII subset are in use.
    let mut parts = value.splitn(3, '\'');
    let (charset, _language, encoded) = (parts.next()?, parts.next()?, parts.next()?);
    if !(charset.eq_ignore_ascii_case("utf-8") || charset.eq_ignore_ascii_case("us-ascii")) {
        return None;
    }
    let name = percent_encoding::percent_decode_str(encoded)
        .decode_utf8()
        .ok()?;
    (!name.is_empty()).then(|| name.into_owned())
}

/// What a webhook did.
#[derive(Debug, Clone)]
pub enum Received {
    Applied(Applied),
    /// The same content was applied before for this record.
    Duplicate {
        reason: String,
        /// The case and client the record was applied to before.
        case_id: Option<CaseId>,
        client_id: Option<ClientId>,
    },
    /// Receiving is turned off (or the CRM is not connected); nothing changed.
    Ignored {
        reason: String,
    },
}

/// A sync-log line of an inbound webhook.
fn entry<'a>(
    outcome: SyncOutcome,
    kind: Option<ErrorKind>,
    record: Option<&'a str>,
    message: &'a str,
) -> NewSyncEntry<'a> {
    NewSyncEntry {
        direction: "inbound",
        operation: "webhook",
        record_ref: record,
        outcome,
        error_kind: kind,
        message: Some(message),
    }
}

/// Logs a webhook that was not applied, in a transaction of its own (a unit of a later group
/// commit than the webhook's own).
async fn log(
    app: &App,
    company: CompanyId,
    p: Provider,
    outcome: SyncOutcome,
    kind: Option<ErrorKind>,
    record: Option<&str>,
    message: &str,
) -> Result<()> {
    let (provider, record, message, now) = (
        p.as_str(),
        record.map(str::to_owned),
        message.to_owned(),
        app.now(),
    );
    app.store()
        .group_commit(move |tx| {
            Box::pin(async move {
                let line = entry(outcome, kind, record.as_deref(), &message);
                store::log(tx, company, provider, &line, now).await?;
                // Every line logged here is a webhook not applied: ignored (skipped) or
                // refused (failed).
                let counted = match outcome {
                    SyncOutcome::Skipped => RecordOutcome::Skipped,
                    _ => RecordOutcome::Failed,
                };
                let r = record.as_deref();
                sync_state::count_record(tx, company, provider, "inbound", counted, r, now).await
            })
        })
        .await?;
    Ok(())
}

/// Receives one webhook of `p` at the URL with `token`; `query` is the URL's query string.
/// Returns the company it was for (for the caller's logs) and what it did.
/// Every webhook is counted in `casebridge_crm_inbound_webhooks_total` by CRM and outcome.
pub async fn receive(
    app: &App,
    p: Provider,
    token: &str,
    query: &str,
    body: InboundBody,
) -> Result<(CompanyId, Received)> {
    let result = receive_one(app, p, token, query, body).await;
    let outcome = match &result {
        Ok((_, Received::Applied(_))) => "applied",
        Ok((_, Received::Duplicate { .. })) => "duplicate",
        Ok((_, Received::Ignored { .. })) => "ignored",
        Err(AppError::NotFound(_)) => "unknown_token",
        Err(
            AppError::Validation(_)
            | AppError::BadRequest(_)
            | AppError::PayloadTooLarge(_)
            | AppError::UnsupportedMediaType(_),
        ) => "rejected",
        Err(_) => "error",
    };
    metrics::counter!("casebridge_crm_inbound_webhooks_total",
        "provider" => p.as_str(), "outcome" => outcome)
    .increment(1);
    result
}

async fn receive_one(
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
        store::by_token(&mut conn, p.as_str(), token, app.now())
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
    let record_id = record.record_id.clone();
    let noun = connector.record_noun();
    let done = {
        let (connector, provider) = (connector.clone(), p.as_str());
        app.store()
            .group_commit(move |tx| {
                Box::pin(
                    async move { apply(tx, &*connector, provider, company, record, now).await },
                )
            })
            .await
    };
    let ingest_error = match done {
        Ok(Unit::Applied(applied)) => return Ok((company, Received::Applied(applied))),
        Ok(Unit::Duplicate(matched)) => {
            return Ok((
                company,
                Received::Duplicate {
                    reason: format!("identical to the last content applied for this {noun}"),
                    case_id: matched.map(|(case, _)| case),
                    client_id: matched.and_then(|(_, client)| client),
                },
            ))
        }
        Err(UnitError::Store(e)) => return Err(e.into()),
        // Rolled back to its savepoint: nothing of this webhook is kept.
        Err(UnitError::Ingest(e)) => e,
    };
    let (kind, err) = match ingest_error {
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
        Some(&record_id),
        &err.to_string(),
    )
    .await?;
    Err(err)
}

/// What a webhook's unit of work did.
enum Unit {
    Applied(Applied),
    /// Seen before: the case (and its client) it was applied to, if the case still exists.
    Duplicate(Option<(CaseId, Option<ClientId>)>),
}

/// Why a webhook's unit of work failed: applying the record (logged to the sync log by the
/// caller) or the store around it (returned as it is).
enum UnitError {
    Ingest(IngestError),
    Store(StoreError),
}

impl From<StoreError> for UnitError {
    fn from(e: StoreError) -> Self {
        UnitError::Store(e)
    }
}

/// A webhook's writes, as one unit of a group commit: the dedupe receipt, then either the
/// apply with its health timestamp and sync-log line, or (a duplicate) the health timestamp
/// and the case it matched. Awaits nothing but the store.
async fn apply(
    tx: &mut Tx,
    connector: &dyn Connector,
    provider: &str,
    company: CompanyId,
    record: InboundRecord,
    now: Timestamp,
) -> std::result::Result<Unit, UnitError> {
    if !store::record_receipt(
        tx,
        company,
        provider,
        &record.record_id,
        &record.content_hash,
        now,
    )
    .await?
    {
        // Nothing changes, but a webhook did arrive (the checklist's "first webhook received").
        store::touch_webhook(tx, company, provider, now).await?;
        let unchanged = RecordOutcome::Unchanged;
        let r = Some(record.record_id.as_str());
        sync_state::count_record(tx, company, provider, "inbound", unchanged, r, now).await?;
        let matched =
            match casebridge_store::cases::find_by_ref(tx, company, provider, &record.record_id)
                .await
            {
                Ok(case) => Some((case.id, case.client_id)),
                // The case was deleted since: the answer says so by naming none.
                Err(StoreError::NotFound) => None,
                Err(e) => return Err(e.into()),
            };
        return Ok(Unit::Duplicate(matched));
    }
    let applied = connector
        .apply_inbound(tx, company, &record, now)
        .await
        .map_err(UnitError::Ingest)?;
    store::touch_webhook(tx, company, provider, now).await?;
    let noun = connector.record_noun();
    let message = if applied.auto_linked.is_empty() {
        format!("{noun} {} applied", record.record_id)
    } else {
        format!(
            "{noun} {} applied; {}",
            record.record_id,
            applied.auto_linked.join("; ")
        )
    };
    let line = entry(SyncOutcome::Ok, None, Some(&record.record_id), &message);
    store::log(tx, company, provider, &line, now).await?;
    let counted = if applied.case_created {
        RecordOutcome::Created
    } else {
        RecordOutcome::Updated
    };
    let r = Some(record.record_id.as_str());
    sync_state::count_record(tx, company, provider, "inbound", counted, r, now).await?;
    Ok(Unit::Applied(applied))
}

#[cfg(test)]
mod tests {
    use super::multipart_field_name;

    #[test]
    fn rfc_2231_field_names_are_decoded() {
        let cd = |v: &str| multipart_field_name(v);
        assert_eq!(
            cd("form-data; name*=utf-8''Lead%20ID").as_deref(),
            Some("Lead ID")
        );
        assert_eq!(
            cd("form-data; NAME*=\"UTF-8''Primary%20Contact%20ID\"").as_deref(),
            Some("Primary Contact ID")
        );
        assert_eq!(
            cd("form-data; name*=utf-8'en'Estado%20%C3%BAltimo").as_deref(),
            Some("Estado último")
        );
        assert_eq!(
            cd("form-data; name=\"Lead ID\""),
            None,
            "the plain form is multer's"
        );
        assert_eq!(cd("form-data; name*=iso-8859-1''Lead%20ID"), None);
        assert_eq!(cd("form-data; name*=utf-8''%FF"), None, "not UTF-8");
        assert_eq!(cd("form-data; name*=utf-8''"), None);
    }
}
