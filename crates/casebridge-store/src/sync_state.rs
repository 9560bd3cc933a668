//! Two-way sync state (SYNC2): the base of each synced field (the last value both sides agreed
//! on) and the conflict log. Provider-neutral: every function takes the provider's slug.

use casebridge_domain::ids::{CaseId, CompanyId};
use casebridge_domain::page::{Page, PageRequest};
use casebridge_domain::sync::{Base, RecordOutcome, Side};
use jiff::Timestamp;
use sqlx::FromRow;

use crate::{parse_id, ts, Conn, Result};

/// The base of one field of a case, if both sides ever agreed on it.
pub async fn base(
    conn: &mut Conn,
    company: CompanyId,
    provider: &str,
    case: CaseId,
    field: &str,
) -> Result<Option<Base>> {
    let row: Option<(Option<String>, Option<String>)> = sqlx::query_as(
        "SELECT platform_value, crm_value FROM sync_bases
         WHERE company_id = $1 AND provider = $2 AND case_id = $3 AND field = $4",
    )
    .bind(company.to_string())
    .bind(provider)
    .bind(case.to_string())
    .bind(field)
    .fetch_optional(&mut *conn)
    .await?;
    Ok(row.map(|(platform, crm)| Base { platform, crm }))
}

/// Sets the base of one field (both sides now agree on it).
pub async fn set_base(
    conn: &mut Conn,
    company: CompanyId,
    provider: &str,
    case: CaseId,
    field: &str,
    base: &Base,
    now: Timestamp,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO sync_bases (company_id, provider, case_id, field, platform_value, crm_value,
                                 agreed_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7)
         ON CONFLICT (company_id, provider, case_id, field) DO UPDATE
           SET platform_value = excluded.platform_value, crm_value = excluded.crm_value,
               agreed_at = excluded.agreed_at",
    )
    .bind(company.to_string())
    .bind(provider)
    .bind(case.to_string())
    .bind(field)
    .bind(base.platform.as_deref())
    .bind(base.crm.as_deref())
    .bind(now.as_millisecond())
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// A conflict to record.
#[derive(Debug, Clone)]
pub struct NewConflict<'a> {
    pub provider: &'a str,
    pub case_id: CaseId,
    /// The CRM record (Law Ruler Lead ID, SmartAdvocate case number).
    pub record_ref: &'a str,
    pub field: &'a str,
    pub base_value: Option<&'a str>,
    pub platform_value: Option<&'a str>,
    pub crm_value: Option<&'a str>,
    pub rule: &'a str,
    pub winner: Side,
    /// The losing value in platform terms (what a restore sets), if it can be restored.
    pub restore_value: Option<&'a str>,
}

/// One row of the conflict log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conflict {
    pub id: String,
    pub provider: String,
    pub case_id: CaseId,
    pub record_ref: String,
    pub field: String,
    pub base_value: Option<String>,
    pub platform_value: Option<String>,
    pub crm_value: Option<String>,
    pub rule: String,
    pub winner: Side,
    /// `automatic` (a rule decided it).
    pub action: String,
    pub restore_value: Option<String>,
    pub restored_at: Option<Timestamp>,
    pub restored_by: Option<String>,
    pub created_at: Timestamp,
}

/// Appends a conflict decided by a rule. Returns its id.
pub async fn record_conflict(
    conn: &mut Conn,
    company: CompanyId,
    c: &NewConflict<'_>,
    now: Timestamp,
) -> Result<String> {
    let id = uuid::Uuid::now_v7().to_string();
    sqlx::query(
        "INSERT INTO sync_conflicts (id, company_id, provider, case_id, record_ref, field,
             base_value, platform_value, crm_value, rule, winner, action, restore_value, created_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, 'automatic', $12, $13)",
    )
    .bind(&id)
    .bind(company.to_string())
    .bind(c.provider)
    .bind(c.case_id.to_string())
    .bind(c.record_ref)
    .bind(c.field)
    .bind(c.base_value)
    .bind(c.platform_value)
    .bind(c.crm_value)
    .bind(c.rule)
    .bind(c.winner.as_str())
    .bind(c.restore_value)
    .bind(now.as_millisecond())
    .execute(&mut *conn)
    .await?;
    Ok(id)
}

#[derive(FromRow)]
struct Row {
    id: String,
    provider: String,
    case_id: String,
    record_ref: String,
    field: String,
    base_value: Option<String>,
    platform_value: Option<String>,
    crm_value: Option<String>,
    rule: String,
    winner: String,
    action: String,
    restore_value: Option<String>,
    restored_at: Option<i64>,
    restored_by: Option<String>,
    created_at: i64,
}

const COLUMNS: &str = "id, provider, case_id, record_ref, field, base_value, platform_value,
    crm_value, rule, winner, action, restore_value, restored_at, restored_by, created_at";

impl Row {
    fn into_model(self) -> Result<Conflict> {
        Ok(Conflict {
            case_id: parse_id("sync_conflicts.case_id", &self.case_id)?,
            winner: Side::parse(&self.winner).unwrap_or(Side::Crm),
            restored_at: self.restored_at.map(ts).transpose()?,
            created_at: ts(self.created_at)?,
            id: self.id,
            provider: self.provider,
            record_ref: self.record_ref,
            field: self.field,
            base_value: self.base_value,
            platform_value: self.platform_value,
            crm_value: self.crm_value,
            rule: self.rule,
            action: self.action,
            restore_value: self.restore_value,
            restored_by: self.restored_by,
        })
    }
}

/// What to list.
#[derive(Debug, Clone, Default)]
pub struct ConflictFilter {
    pub case_id: Option<CaseId>,
    pub field: Option<String>,
    pub winner: Option<Side>,
    /// `Some(true)`: restored only; `Some(false)`: not restored.
    pub restored: Option<bool>,
}

/// A company's conflicts with one CRM, newest first.
pub async fn conflicts(
    conn: &mut Conn,
    company: CompanyId,
    provider: &str,
    filter: &ConflictFilter,
    page: &PageRequest,
) -> Result<Page<Conflict>> {
    let rows: Vec<Row> = sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM sync_conflicts
         WHERE company_id = $1 AND provider = $2 AND ($3 IS NULL OR id < $3)
           AND ($4 IS NULL OR case_id = $4) AND ($5 IS NULL OR field = $5)
           AND ($6 IS NULL OR winner = $6)
           AND ($7 IS NULL OR ($7 = 1 AND restored_at IS NOT NULL)
                           OR ($7 = 0 AND restored_at IS NULL))
         ORDER BY id DESC LIMIT $8"
    ))
    .bind(company.to_string())
    .bind(provider)
    .bind(page.after.clone())
    .bind(filter.case_id.map(|c| c.to_string()))
    .bind(filter.field.clone())
    .bind(filter.winner.map(|w| w.as_str()))
    .bind(filter.restored.map(i64::from))
    .bind(i64::from(page.limit) + 1)
    .fetch_all(&mut *conn)
    .await?;
    let items = rows
        .into_iter()
        .map(Row::into_model)
        .collect::<Result<Vec<_>>>()?;
    Ok(Page::from_overfetch(items, page.limit, |c| c.id.clone()))
}

/// One conflict, locked for update (on PostgreSQL) so two restores cannot both apply.
pub async fn conflict_for_update(
    conn: &mut Conn,
    company: CompanyId,
    provider: &str,
    id: &str,
) -> Result<Option<Conflict>> {
    let row: Option<Row> = sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM sync_conflicts
         WHERE company_id = $1 AND provider = $2 AND id = $3{}",
        crate::for_update(conn)
    ))
    .bind(company.to_string())
    .bind(provider)
    .bind(id)
    .fetch_optional(&mut *conn)
    .await?;
    row.map(Row::into_model).transpose()
}

/// Marks a conflict's losing value restored by `actor`. False when it already was.
pub async fn mark_restored(
    conn: &mut Conn,
    company: CompanyId,
    id: &str,
    actor: &str,
    now: Timestamp,
) -> Result<bool> {
    let done = sqlx::query(
        "UPDATE sync_conflicts SET restored_at = $3, restored_by = $4
         WHERE company_id = $1 AND id = $2 AND restored_at IS NULL",
    )
    .bind(company.to_string())
    .bind(id)
    .bind(now.as_millisecond())
    .bind(actor)
    .execute(&mut *conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// The conflicts on CRM record `record_ref` with an id after `after` (a UUIDv7 made earlier in
/// this process), oldest first: what a dry run's transaction recorded before it was rolled back.
pub async fn conflicts_after(
    conn: &mut Conn,
    company: CompanyId,
    provider: &str,
    record_ref: &str,
    after: &str,
) -> Result<Vec<Conflict>> {
    let rows: Vec<Row> = sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM sync_conflicts
         WHERE company_id = $1 AND provider = $2 AND record_ref = $3 AND id > $4
         ORDER BY id"
    ))
    .bind(company.to_string())
    .bind(provider)
    .bind(record_ref)
    .bind(after)
    .fetch_all(&mut *conn)
    .await?;
    rows.into_iter().map(Row::into_model).collect()
}

/// Counts one record synced (SYNC3), in the caller's transaction: `direction` `inbound` or
/// `outbound`.
pub async fn count_record(
    conn: &mut Conn,
    company: CompanyId,
    provider: &str,
    direction: &str,
    outcome: RecordOutcome,
    record_ref: Option<&str>,
    now: Timestamp,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO sync_records (id, company_id, provider, direction, outcome, record_ref,
                                   created_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(uuid::Uuid::now_v7().to_string())
    .bind(company.to_string())
    .bind(provider)
    .bind(direction)
    .bind(outcome.as_str())
    .bind(record_ref)
    .bind(now.as_millisecond())
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// `(direction, outcome, records)` counted since `since` (all when `None`).
pub async fn record_counts(
    conn: &mut Conn,
    company: CompanyId,
    provider: &str,
    since: Option<Timestamp>,
) -> Result<Vec<(String, RecordOutcome, u64)>> {
    let rows: Vec<(String, String, i64)> = sqlx::query_as(
        "SELECT direction, outcome, COUNT(*) FROM sync_records
         WHERE company_id = $1 AND provider = $2 AND created_at >= $3
         GROUP BY direction, outcome ORDER BY direction, outcome",
    )
    .bind(company.to_string())
    .bind(provider)
    .bind(since.map_or(i64::MIN, |t| t.as_millisecond()))
    .fetch_all(&mut *conn)
    .await?;
    rows.into_iter()
        .map(|(d, o, n)| {
            let outcome = RecordOutcome::parse(&o)
                .ok_or_else(|| crate::StoreError::Corrupt(format!("sync_records.outcome `{o}`")))?;
            Ok((d, outcome, u64::try_from(n).unwrap_or(0)))
        })
        .collect()
}
