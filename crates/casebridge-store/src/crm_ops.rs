//! The CRM outbox: outbound operations and their states (see `casebridge_domain::crm_ops`).
//!
//! Invariants:
//! - An operation is inserted in the transaction of the change that caused it, together with its
//!   job when it is `pending` (the caller enqueues), so accepted work is never lost.
//! - Ids are UUIDv7, so `ORDER BY id` is creation order: held status changes replay in order.
//! - State changes out of `pending` name the state they expect (`WHERE state = 'pending'`), so
//!   a stale worker cannot overwrite a newer outcome.

use casebridge_domain::crm_ops::{OpAction, OpKind, OpState};
use casebridge_domain::ids::{CaseId, CompanyId};
use casebridge_domain::page::{Page, PageRequest};
use jiff::Timestamp;
use sqlx::FromRow;
use uuid::Uuid;

use crate::{parse_id, parse_opt_id, ts, Conn, Result, StoreError};

#[derive(Debug, Clone, PartialEq)]
pub struct CrmOp {
    pub id: String,
    pub company_id: CompanyId,
    pub provider: String,
    pub kind: OpKind,
    pub case_id: Option<CaseId>,
    /// The CRM record it is about (Law Ruler: the Lead ID).
    pub record_id: String,
    pub action: OpAction,
    pub state: OpState,
    pub attempts: u32,
    pub last_error: Option<String>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
    pub finished_at: Option<Timestamp>,
    /// Queued to wait for the integration's next run (hourly or daily frequency): its job is
    /// not due before this time. Cleared when it is released early.
    pub batched_until: Option<Timestamp>,
}

/// An operation to record.
#[derive(Debug, Clone)]
pub struct NewOp<'a> {
    pub provider: &'a str,
    pub kind: OpKind,
    pub case_id: Option<CaseId>,
    pub record_id: &'a str,
    pub action: &'a OpAction,
    /// `Pending` or `Held`.
    pub state: OpState,
    /// Set when the pending operation waits for the integration's next run.
    pub batched_until: Option<Timestamp>,
}

const COLUMNS: &str = "id, company_id, provider, kind, case_id, record_id, payload, state,
    attempts, last_error, created_at, updated_at, finished_at, batched_until";

#[derive(FromRow)]
struct Row {
    id: String,
    company_id: String,
    provider: String,
    kind: String,
    case_id: Option<String>,
    record_id: String,
    payload: String,
    state: String,
    attempts: i64,
    last_error: Option<String>,
    created_at: i64,
    updated_at: i64,
    finished_at: Option<i64>,
    batched_until: Option<i64>,
}

impl Row {
    fn into_model(self) -> Result<CrmOp> {
        Ok(CrmOp {
            company_id: parse_id("crm_ops.company_id", &self.company_id)?,
            provider: self.provider,
            kind: OpKind::parse(&self.kind)
                .ok_or_else(|| StoreError::Corrupt(format!("crm_ops.kind `{}`", self.kind)))?,
            case_id: parse_opt_id("crm_ops.case_id", self.case_id.as_deref())?,
            record_id: self.record_id,
            action: serde_json::from_str(&self.payload)
                .map_err(|e| StoreError::Corrupt(format!("crm_ops.payload: {e}")))?,
            state: OpState::parse(&self.state)
                .ok_or_else(|| StoreError::Corrupt(format!("crm_ops.state `{}`", self.state)))?,
            attempts: u32::try_from(self.attempts).unwrap_or(u32::MAX),
            last_error: self.last_error,
            created_at: ts(self.created_at)?,
            updated_at: ts(self.updated_at)?,
            finished_at: self.finished_at.map(ts).transpose()?,
            batched_until: self.batched_until.map(ts).transpose()?,
            id: self.id,
        })
    }
}

/// Records an operation; returns its id. The caller enqueues its job when it is pending.
pub async fn insert(
    conn: &mut Conn,
    company: CompanyId,
    op: &NewOp<'_>,
    now: Timestamp,
) -> Result<String> {
    let id = Uuid::now_v7().to_string();
    sqlx::query(
        "INSERT INTO crm_ops (id, company_id, provider, kind, case_id, record_id, payload, state,
                              attempts, created_at, updated_at, batched_until)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 0, $9, $9, $10)",
    )
    .bind(&id)
    .bind(company.to_string())
    .bind(op.provider)
    .bind(op.kind.as_str())
    .bind(op.case_id.map(|c| c.to_string()))
    .bind(op.record_id)
    .bind(serde_json::to_string(op.action).expect("serializable"))
    .bind(op.state.as_str())
    .bind(now.as_millisecond())
    .bind(op.batched_until.map(|t| t.as_millisecond()))
    .execute(&mut *conn)
    .await?;
    Ok(id)
}

/// Operations of a company's CRM waiting for a run later than `at`, now due by `at`: their
/// `batched_until` becomes `at`, or is cleared when `at` is not after `now` (released). Pair
/// with `jobs::bring_forward` on their jobs. Returns how many changed.
pub async fn bring_forward(
    conn: &mut Conn,
    company: CompanyId,
    provider: &str,
    at: Timestamp,
    now: Timestamp,
) -> Result<u64> {
    let until = (at > now).then(|| at.as_millisecond());
    let done = sqlx::query(
        "UPDATE crm_ops SET batched_until = $4, updated_at = $5
         WHERE company_id = $1 AND provider = $2 AND state = 'pending' AND batched_until > $3",
    )
    .bind(company.to_string())
    .bind(provider)
    .bind(at.as_millisecond())
    .bind(until)
    .bind(now.as_millisecond())
    .execute(&mut *conn)
    .await?;
    Ok(done.rows_affected())
}

pub async fn get(conn: &mut Conn, company: CompanyId, id: &str) -> Result<CrmOp> {
    let row: Option<Row> = sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM crm_ops WHERE company_id = $1 AND id = $2"
    ))
    .bind(company.to_string())
    .bind(id)
    .fetch_optional(&mut *conn)
    .await?;
    row.ok_or(StoreError::NotFound)?.into_model()
}

/// Counts an attempt that will be retried, with its error. Only a pending operation changes.
pub async fn record_retry(
    conn: &mut Conn,
    company: CompanyId,
    id: &str,
    error: &str,
    now: Timestamp,
) -> Result<()> {
    sqlx::query(
        "UPDATE crm_ops SET attempts = attempts + 1, last_error = $3, updated_at = $4
         WHERE company_id = $1 AND id = $2 AND state = 'pending'",
    )
    .bind(company.to_string())
    .bind(id)
    .bind(error)
    .bind(now.as_millisecond())
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Moves an operation from `from` to `to` (counting the attempt when `attempted`). Returns
/// false when it was not in `from` any more (another worker or an admin got there first).
#[allow(clippy::too_many_arguments)]
pub async fn transition(
    conn: &mut Conn,
    company: CompanyId,
    id: &str,
    from: OpState,
    to: OpState,
    attempted: bool,
    error: Option<&str>,
    now: Timestamp,
) -> Result<bool> {
    let done = sqlx::query(
        "UPDATE crm_ops SET state = $4, attempts = attempts + $5,
                last_error = CASE WHEN $4 = 'done' THEN NULL ELSE COALESCE($6, last_error) END,
                updated_at = $7,
                finished_at = CASE WHEN $8 THEN $7 ELSE NULL END
         WHERE company_id = $1 AND id = $2 AND state = $3",
    )
    .bind(company.to_string())
    .bind(id)
    .bind(from.as_str())
    .bind(to.as_str())
    .bind(i64::from(attempted))
    .bind(error.map(str::to_owned))
    .bind(now.as_millisecond())
    .bind(to.is_final())
    .execute(&mut *conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// The operations of a provider in `state`, oldest first (at most `limit`).
pub async fn in_state(
    conn: &mut Conn,
    company: CompanyId,
    provider: &str,
    state: OpState,
    kind: Option<OpKind>,
    limit: u32,
) -> Result<Vec<CrmOp>> {
    let rows: Vec<Row> = sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM crm_ops
         WHERE company_id = $1 AND provider = $2 AND state = $3 AND ($4 IS NULL OR kind = $4)
         ORDER BY id LIMIT $5"
    ))
    .bind(company.to_string())
    .bind(provider)
    .bind(state.as_str())
    .bind(kind.map(|k| k.as_str()))
    .bind(i64::from(limit))
    .fetch_all(&mut *conn)
    .await?;
    rows.into_iter().map(Row::into_model).collect()
}

/// Whether an operation that uploads the stored document `document_id` exists (in any state
/// but `skipped`), so the same file is not sent twice.
pub async fn sends_document(
    conn: &mut Conn,
    company: CompanyId,
    provider: &str,
    document_id: &str,
) -> Result<bool> {
    // Document ids are UUIDs, so the JSON text match is exact.
    let n: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM crm_ops WHERE company_id = $1 AND provider = $2
           AND state <> 'skipped' AND payload LIKE $3",
    )
    .bind(company.to_string())
    .bind(provider)
    .bind(format!("%\"document_id\":\"{document_id}\"%"))
    .fetch_one(&mut *conn)
    .await?;
    Ok(n > 0)
}

/// Operations newest first, optionally of one state.
pub async fn list(
    conn: &mut Conn,
    company: CompanyId,
    provider: &str,
    state: Option<OpState>,
    page: &PageRequest,
) -> Result<Page<CrmOp>> {
    let rows: Vec<Row> = sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM crm_ops
         WHERE company_id = $1 AND provider = $2 AND ($3 IS NULL OR id < $3)
           AND ($4 IS NULL OR state = $4)
         ORDER BY id DESC LIMIT $5"
    ))
    .bind(company.to_string())
    .bind(provider)
    .bind(page.after.clone())
    .bind(state.map(|s| s.as_str()))
    .bind(i64::from(page.limit) + 1)
    .fetch_all(&mut *conn)
    .await?;
    let items = rows
        .into_iter()
        .map(Row::into_model)
        .collect::<Result<Vec<_>>>()?;
    Ok(Page::from_overfetch(items, page.limit, |o| o.id.clone()))
}

/// How many operations are in each state.
pub async fn counts(
    conn: &mut Conn,
    company: CompanyId,
    provider: &str,
) -> Result<Vec<(OpState, u64)>> {
    let rows: Vec<(String, i64)> = sqlx::query_as(
        "SELECT state, COUNT(*) FROM crm_ops WHERE company_id = $1 AND provider = $2
         GROUP BY state",
    )
    .bind(company.to_string())
    .bind(provider)
    .fetch_all(&mut *conn)
    .await?;
    rows.into_iter()
        .map(|(s, n)| {
            let state = OpState::parse(&s)
                .ok_or_else(|| StoreError::Corrupt(format!("crm_ops.state `{s}`")))?;
            Ok((state, u64::try_from(n).unwrap_or(0)))
        })
        .collect()
}

/// Operations per CRM and state across every company, for the operator's metrics.
pub async fn totals(conn: &mut Conn) -> Result<Vec<(String, OpState, u64)>> {
    let rows: Vec<(String, String, i64)> = sqlx::query_as(
        "SELECT provider, state, COUNT(*) FROM crm_ops GROUP BY provider, state
         ORDER BY provider, state",
    )
    .fetch_all(&mut *conn)
    .await?;
    rows.into_iter()
        .map(|(provider, s, n)| {
            let state = OpState::parse(&s)
                .ok_or_else(|| StoreError::Corrupt(format!("crm_ops.state `{s}`")))?;
            Ok((provider, state, u64::try_from(n).unwrap_or(0)))
        })
        .collect()
}

/// The operations of one case and kind, newest first (at most `limit`), in any state.
pub async fn of_case(
    conn: &mut Conn,
    company: CompanyId,
    provider: &str,
    case: CaseId,
    kind: OpKind,
    limit: u32,
) -> Result<Vec<CrmOp>> {
    let rows: Vec<Row> = sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM crm_ops
         WHERE company_id = $1 AND provider = $2 AND case_id = $3 AND kind = $4
         ORDER BY id DESC LIMIT $5"
    ))
    .bind(company.to_string())
    .bind(provider)
    .bind(case.to_string())
    .bind(kind.as_str())
    .bind(i64::from(limit))
    .fetch_all(&mut *conn)
    .await?;
    rows.into_iter().map(Row::into_model).collect()
}

/// The operations of one case and kind not sent yet (pending or held), oldest first.
pub async fn unsent_of_case(
    conn: &mut Conn,
    company: CompanyId,
    provider: &str,
    case: CaseId,
    kind: OpKind,
) -> Result<Vec<CrmOp>> {
    let rows: Vec<Row> = sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM crm_ops
         WHERE company_id = $1 AND provider = $2 AND case_id = $3 AND kind = $4
           AND state IN ('pending', 'held')
         ORDER BY id"
    ))
    .bind(company.to_string())
    .bind(provider)
    .bind(case.to_string())
    .bind(kind.as_str())
    .fetch_all(&mut *conn)
    .await?;
    rows.into_iter().map(Row::into_model).collect()
}

/// The operations on CRM record `record` with an id after `after` (a UUIDv7 made earlier in this
/// process), oldest first: what a dry run's transaction recorded before it was rolled back.
pub async fn after(
    conn: &mut Conn,
    company: CompanyId,
    provider: &str,
    record: &str,
    after: &str,
) -> Result<Vec<CrmOp>> {
    let rows: Vec<Row> = sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM crm_ops
         WHERE company_id = $1 AND provider = $2 AND record_id = $3 AND id > $4
         ORDER BY id"
    ))
    .bind(company.to_string())
    .bind(provider)
    .bind(record)
    .bind(after)
    .fetch_all(&mut *conn)
    .await?;
    rows.into_iter().map(Row::into_model).collect()
}
