//! CRM integrations: connection state, toggles, the inbound webhook token, the CRM catalog cache,
//! mappings, list auto-add rules, inbound receipts and the sync log. Provider-neutral: every
//! function takes the provider's slug.

use casebridge_domain::ids::{CaseStatusId, CaseTypeId, CompanyId, ListId};
use casebridge_domain::integrations::{AutoAddRule, ErrorKind, SyncOutcome};
use casebridge_domain::page::{Page, PageRequest};
use jiff::Timestamp;
use sqlx::FromRow;
use uuid::Uuid;

use crate::{for_update, parse_id, ts, Conn, Result, StoreError, Tx};

/// An integration's row.
#[derive(Debug, Clone, PartialEq)]
pub struct Integration {
    pub company_id: CompanyId,
    pub provider: String,
    pub webhook_token: String,
    pub credentials_sealed: Option<String>,
    pub connected_at: Option<Timestamp>,
    /// The toggles as JSON (see `casebridge_domain::integrations::Toggles`).
    pub settings: serde_json::Value,
    pub config_error: Option<String>,
    pub first_webhook_at: Option<Timestamp>,
    pub last_webhook_at: Option<Timestamp>,
    pub last_integration_sync_at: Option<Timestamp>,
    pub last_status_pull_at: Option<Timestamp>,
    pub last_status_push_at: Option<Timestamp>,
    pub catalog_refreshed_at: Option<Timestamp>,
    pub catalog_error: Option<String>,
    /// Pull cursors: the CRM storage time of the newest lead / note seen (LR13).
    pub leads_cursor: Option<Timestamp>,
    pub notes_cursor: Option<Timestamp>,
    /// The contacts cursor of CRMs pulled by contact too (SmartAdvocate; cases use
    /// `leads_cursor`).
    pub contacts_cursor: Option<Timestamp>,
    /// The documents cursor of CRMs whose documents are pulled (SmartAdvocate).
    pub documents_cursor: Option<Timestamp>,
    pub last_pull_at: Option<Timestamp>,
    pub last_pull_error: Option<String>,
    /// The anchor of an hourly or daily schedule (`Frequency::next_run` reads it); `None` in
    /// real time.
    pub next_run_at: Option<Timestamp>,
}

const COLUMNS: &str = "company_id, provider, webhook_token, credentials_sealed, connected_at,
    settings, config_error, first_webhook_at, last_webhook_at, last_integration_sync_at,
    last_status_pull_at, last_status_push_at, catalog_refreshed_at, catalog_error,
    leads_cursor, notes_cursor, contacts_cursor, documents_cursor, last_pull_at, last_pull_error,
    next_run_at";

#[derive(FromRow)]
struct Row {
    company_id: String,
    provider: String,
    webhook_token: String,
    credentials_sealed: Option<String>,
    connected_at: Option<i64>,
    settings: String,
    config_error: Option<String>,
    first_webhook_at: Option<i64>,
    last_webhook_at: Option<i64>,
    last_integration_sync_at: Option<i64>,
    last_status_pull_at: Option<i64>,
    last_status_push_at: Option<i64>,
    catalog_refreshed_at: Option<i64>,
    catalog_error: Option<String>,
    leads_cursor: Option<i64>,
    notes_cursor: Option<i64>,
    contacts_cursor: Option<i64>,
    documents_cursor: Option<i64>,
    last_pull_at: Option<i64>,
    last_pull_error: Option<String>,
    next_run_at: Option<i64>,
}

fn opt_ts(v: Option<i64>) -> Result<Option<Timestamp>> {
    v.map(ts).transpose()
}

impl Row {
    fn into_model(self) -> Result<Integration> {
        Ok(Integration {
            company_id: parse_id("integrations.company_id", &self.company_id)?,
            provider: self.provider,
            webhook_token: self.webhook_token,
            credentials_sealed: self.credentials_sealed,
            connected_at: opt_ts(self.connected_at)?,
            settings: serde_json::from_str(&self.settings)
                .map_err(|e| StoreError::Corrupt(format!("integrations.settings: {e}")))?,
            config_error: self.config_error,
            first_webhook_at: opt_ts(self.first_webhook_at)?,
            last_webhook_at: opt_ts(self.last_webhook_at)?,
            last_integration_sync_at: opt_ts(self.last_integration_sync_at)?,
            last_status_pull_at: opt_ts(self.last_status_pull_at)?,
            last_status_push_at: opt_ts(self.last_status_push_at)?,
            catalog_refreshed_at: opt_ts(self.catalog_refreshed_at)?,
            catalog_error: self.catalog_error,
            leads_cursor: opt_ts(self.leads_cursor)?,
            notes_cursor: opt_ts(self.notes_cursor)?,
            contacts_cursor: opt_ts(self.contacts_cursor)?,
            documents_cursor: opt_ts(self.documents_cursor)?,
            last_pull_at: opt_ts(self.last_pull_at)?,
            last_pull_error: self.last_pull_error,
            next_run_at: opt_ts(self.next_run_at)?,
        })
    }
}

/// The integration of a company with a provider, created (with `new_token` as its inbound
/// webhook token) the first time it is asked for.
pub async fn ensure(
    conn: &mut Tx,
    company: CompanyId,
    provider: &str,
    new_token: &str,
    now: Timestamp,
) -> Result<Integration> {
    let conn: &mut Conn = conn;
    sqlx::query(
        "INSERT INTO integrations (company_id, provider, webhook_token, created_at, updated_at)
         VALUES ($1, $2, $3, $4, $4) ON CONFLICT (company_id, provider) DO NOTHING",
    )
    .bind(company.to_string())
    .bind(provider)
    .bind(new_token)
    .bind(now.as_millisecond())
    .execute(&mut *conn)
    .await?;
    get(conn, company, provider)
        .await?
        .ok_or(StoreError::NotFound)
}

/// The integration, locked until the transaction ends (for read-modify-write of its settings).
pub async fn get_for_update(
    conn: &mut Tx,
    company: CompanyId,
    provider: &str,
) -> Result<Option<Integration>> {
    let conn: &mut Conn = conn;
    let lock = for_update(conn);
    get_locked(conn, company, provider, lock).await
}

/// The integration read with `lock` appended (a row lock on PostgreSQL, or nothing).
async fn get_locked(
    conn: &mut Conn,
    company: CompanyId,
    provider: &str,
    lock: &str,
) -> Result<Option<Integration>> {
    let row: Option<Row> = sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM integrations WHERE company_id = $1 AND provider = $2{lock}"
    ))
    .bind(company.to_string())
    .bind(provider)
    .fetch_optional(&mut *conn)
    .await?;
    row.map(Row::into_model).transpose()
}

/// The integration, share-locked until the transaction ends (PostgreSQL; SQLite write
/// transactions are serial): concurrent readers go on, but a change made under
/// [`get_for_update`] (a new frequency, a "run now") waits for this transaction, or this read
/// waits for it and sees it. Used where work is queued by the integration's schedule.
pub async fn get_for_share(
    conn: &mut Tx,
    company: CompanyId,
    provider: &str,
) -> Result<Option<Integration>> {
    let conn: &mut Conn = conn;
    let lock = if conn.backend_name() == "PostgreSQL" {
        " FOR SHARE"
    } else {
        ""
    };
    get_locked(conn, company, provider, lock).await
}

/// Sets the anchor of the integration's hourly or daily schedule (`None`: real time).
pub async fn set_next_run_at(
    conn: &mut Conn,
    company: CompanyId,
    provider: &str,
    next_run_at: Option<Timestamp>,
    now: Timestamp,
) -> Result<()> {
    sqlx::query(
        "UPDATE integrations SET next_run_at = $3, updated_at = $4
         WHERE company_id = $1 AND provider = $2",
    )
    .bind(company.to_string())
    .bind(provider)
    .bind(next_run_at.map(|t| t.as_millisecond()))
    .bind(now.as_millisecond())
    .execute(&mut *conn)
    .await?;
    Ok(())
}

pub async fn get(
    conn: &mut Conn,
    company: CompanyId,
    provider: &str,
) -> Result<Option<Integration>> {
    let row: Option<Row> = sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM integrations WHERE company_id = $1 AND provider = $2"
    ))
    .bind(company.to_string())
    .bind(provider)
    .fetch_optional(&mut *conn)
    .await?;
    row.map(Row::into_model).transpose()
}

/// The integration an inbound webhook token belongs to: its current token, or one it replaced
/// by rotation whose grace period has not ended at `now`. The token is the credential of the
/// inbound URL, so this is the one lookup not scoped by a company: it finds the company.
pub async fn by_token(
    conn: &mut Conn,
    provider: &str,
    token: &str,
    now: Timestamp,
) -> Result<Option<Integration>> {
    let row: Option<Row> = sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM integrations WHERE provider = $1 AND webhook_token = $2"
    ))
    .bind(provider)
    .bind(token)
    .fetch_optional(&mut *conn)
    .await?;
    if let Some(row) = row {
        return row.into_model().map(Some);
    }
    let company: Option<String> = sqlx::query_scalar(
        "SELECT company_id FROM integration_previous_tokens
         WHERE provider = $1 AND webhook_token = $2 AND expires_at > $3",
    )
    .bind(provider)
    .bind(token)
    .bind(now.as_millisecond())
    .fetch_optional(&mut *conn)
    .await?;
    match company {
        Some(c) => {
            get(
                conn,
                parse_id("integration_previous_tokens.company_id", &c)?,
                provider,
            )
            .await
        }
        None => Ok(None),
    }
}

/// Replaces the inbound webhook token; the one it replaces keeps working until `old_expires_at`.
/// Tokens whose grace period has ended are forgotten. Returns the integration with its new token.
pub async fn rotate_token(
    tx: &mut Tx,
    company: CompanyId,
    provider: &str,
    new_token: &str,
    old_expires_at: Timestamp,
    now: Timestamp,
) -> Result<Integration> {
    let current = get_for_update(tx, company, provider)
        .await?
        .ok_or(StoreError::NotFound)?;
    let conn: &mut Conn = tx;
    sqlx::query(
        "DELETE FROM integration_previous_tokens
         WHERE company_id = $1 AND provider = $2 AND expires_at <= $3",
    )
    .bind(company.to_string())
    .bind(provider)
    .bind(now.as_millisecond())
    .execute(&mut *conn)
    .await?;
    sqlx::query(
        "INSERT INTO integration_previous_tokens (company_id, provider, webhook_token, expires_at)
         VALUES ($1, $2, $3, $4)",
    )
    .bind(company.to_string())
    .bind(provider)
    .bind(&current.webhook_token)
    .bind(old_expires_at.as_millisecond())
    .execute(&mut *conn)
    .await?;
    sqlx::query(
        "UPDATE integrations SET webhook_token = $3, updated_at = $4
         WHERE company_id = $1 AND provider = $2",
    )
    .bind(company.to_string())
    .bind(provider)
    .bind(new_token)
    .bind(now.as_millisecond())
    .execute(&mut *conn)
    .await?;
    get(conn, company, provider)
        .await?
        .ok_or(StoreError::NotFound)
}

/// Remembers that a record arrived with this CRM case type (the first time only).
pub async fn mark_case_type_used(
    conn: &mut Conn,
    company: CompanyId,
    provider: &str,
    crm_case_type_id: &str,
    now: Timestamp,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO crm_case_types_used (company_id, provider, crm_id, first_seen_at)
         VALUES ($1, $2, $3, $4) ON CONFLICT (company_id, provider, crm_id) DO NOTHING",
    )
    .bind(company.to_string())
    .bind(provider)
    .bind(crm_case_type_id)
    .bind(now.as_millisecond())
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// The CRM case types records have arrived with, by id.
pub async fn used_case_types(
    conn: &mut Conn,
    company: CompanyId,
    provider: &str,
) -> Result<Vec<String>> {
    Ok(sqlx::query_scalar(
        "SELECT crm_id FROM crm_case_types_used
         WHERE company_id = $1 AND provider = $2 ORDER BY crm_id",
    )
    .bind(company.to_string())
    .bind(provider)
    .fetch_all(&mut *conn)
    .await?)
}

/// Stores (sealed) credentials, or removes them (`None`: disconnected). Mappings stay.
pub async fn set_credentials(
    conn: &mut Conn,
    company: CompanyId,
    provider: &str,
    sealed: Option<&str>,
    now: Timestamp,
) -> Result<()> {
    sqlx::query(
        "UPDATE integrations SET credentials_sealed = $3,
                connected_at = CASE WHEN $3 IS NULL THEN NULL ELSE $4 END,
                config_error = NULL, updated_at = $4
         WHERE company_id = $1 AND provider = $2",
    )
    .bind(company.to_string())
    .bind(provider)
    .bind(sealed.map(str::to_owned))
    .bind(now.as_millisecond())
    .execute(&mut *conn)
    .await?;
    Ok(())
}

pub async fn set_settings(
    conn: &mut Conn,
    company: CompanyId,
    provider: &str,
    settings: &serde_json::Value,
    now: Timestamp,
) -> Result<()> {
    sqlx::query(
        "UPDATE integrations SET settings = $3, updated_at = $4 WHERE company_id = $1 AND provider = $2",
    )
    .bind(company.to_string())
    .bind(provider)
    .bind(settings.to_string())
    .bind(now.as_millisecond())
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Records that a webhook arrived and was accepted, applied or identical to the last one (the
/// checklist's "first webhook received" and the health timestamps, LR12).
pub async fn touch_webhook(
    conn: &mut Conn,
    company: CompanyId,
    provider: &str,
    now: Timestamp,
) -> Result<()> {
    sqlx::query(
        "UPDATE integrations SET first_webhook_at = COALESCE(first_webhook_at, $3),
                last_webhook_at = $3, last_integration_sync_at = $3, last_status_pull_at = $3
         WHERE company_id = $1 AND provider = $2",
    )
    .bind(company.to_string())
    .bind(provider)
    .bind(now.as_millisecond())
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Which health timestamp to move (LR12).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Health {
    /// Anything was synced in either direction.
    IntegrationSync,
    /// Statuses were read from the CRM (webhook or pull).
    StatusPull,
    /// A status was written to the CRM.
    StatusPush,
}

/// Moves a health timestamp (and, for every kind, `last_integration_sync_at`) to `now`.
pub async fn touch_health(
    conn: &mut Conn,
    company: CompanyId,
    provider: &str,
    what: Health,
    now: Timestamp,
) -> Result<()> {
    let also = match what {
        Health::IntegrationSync => "",
        Health::StatusPull => ", last_status_pull_at = $3",
        Health::StatusPush => ", last_status_push_at = $3",
    };
    sqlx::query(&format!(
        "UPDATE integrations SET last_integration_sync_at = $3{also}
         WHERE company_id = $1 AND provider = $2"
    ))
    .bind(company.to_string())
    .bind(provider)
    .bind(now.as_millisecond())
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Records a configuration problem found while syncing (the Key was rejected, …), or clears it.
pub async fn set_config_error(
    conn: &mut Conn,
    company: CompanyId,
    provider: &str,
    error: Option<&str>,
    now: Timestamp,
) -> Result<()> {
    sqlx::query(
        "UPDATE integrations SET config_error = $3, updated_at = $4
         WHERE company_id = $1 AND provider = $2",
    )
    .bind(company.to_string())
    .bind(provider)
    .bind(error.map(str::to_owned))
    .bind(now.as_millisecond())
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Records a pull: the new cursors (unchanged when `None`), when, and its error if it failed.
pub async fn record_pull(
    conn: &mut Conn,
    company: CompanyId,
    provider: &str,
    leads_cursor: Option<Timestamp>,
    notes_cursor: Option<Timestamp>,
    error: Option<&str>,
    now: Timestamp,
) -> Result<()> {
    sqlx::query(
        "UPDATE integrations SET leads_cursor = COALESCE($3, leads_cursor),
                notes_cursor = COALESCE($4, notes_cursor), last_pull_at = $5,
                last_pull_error = $6
         WHERE company_id = $1 AND provider = $2",
    )
    .bind(company.to_string())
    .bind(provider)
    .bind(leads_cursor.map(|t| t.as_millisecond()))
    .bind(notes_cursor.map(|t| t.as_millisecond()))
    .bind(now.as_millisecond())
    .bind(error.map(str::to_owned))
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// A pull cursor beside the leads and notes cursors of [`record_pull`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cursor {
    Contacts,
    Documents,
}

/// Moves a contacts or documents cursor (unchanged when `None`); the other cursors are
/// [`record_pull`]'s.
pub async fn record_cursor(
    conn: &mut Conn,
    company: CompanyId,
    provider: &str,
    cursor: Cursor,
    at: Option<Timestamp>,
) -> Result<()> {
    let sql = match cursor {
        Cursor::Contacts => {
            "UPDATE integrations SET contacts_cursor = COALESCE($3, contacts_cursor)
             WHERE company_id = $1 AND provider = $2"
        }
        Cursor::Documents => {
            "UPDATE integrations SET documents_cursor = COALESCE($3, documents_cursor)
             WHERE company_id = $1 AND provider = $2"
        }
    };
    sqlx::query(sql)
        .bind(company.to_string())
        .bind(provider)
        .bind(at.map(|t| t.as_millisecond()))
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// The companies with a connected integration of `provider` (for scheduled pulls).
pub async fn connected(conn: &mut Conn, provider: &str) -> Result<Vec<CompanyId>> {
    let ids: Vec<String> = sqlx::query_scalar(
        "SELECT company_id FROM integrations
         WHERE provider = $1 AND credentials_sealed IS NOT NULL ORDER BY company_id",
    )
    .bind(provider)
    .fetch_all(&mut *conn)
    .await?;
    ids.iter()
        .map(|i| parse_id("integrations.company_id", i))
        .collect()
}

/// The CRM case types linked to a platform case type, `(crm_id, name)`, by CRM id.
pub async fn crm_case_types_linked_to(
    conn: &mut Conn,
    company: CompanyId,
    provider: &str,
    case_type: CaseTypeId,
) -> Result<Vec<(String, String)>> {
    Ok(sqlx::query_as(
        "SELECT l.crm_case_type_id, COALESCE(t.name, l.crm_case_type_id)
         FROM case_type_links l
         LEFT JOIN crm_case_types t ON t.company_id = l.company_id AND t.provider = l.provider
                                   AND t.crm_id = l.crm_case_type_id
         WHERE l.company_id = $1 AND l.provider = $2 AND l.case_type_id = $3
         ORDER BY l.crm_case_type_id",
    )
    .bind(company.to_string())
    .bind(provider)
    .bind(case_type.to_string())
    .fetch_all(&mut *conn)
    .await?)
}

/// The primary CRM status a platform status maps to, `(crm_id, name)` (the name from the
/// catalog, or the id when the catalog does not have it).
pub async fn crm_status_for(
    conn: &mut Conn,
    company: CompanyId,
    provider: &str,
    case_status: CaseStatusId,
) -> Result<Option<(String, String)>> {
    Ok(sqlx::query_as(
        "SELECT m.crm_status_id, COALESCE(s.name, m.crm_status_id)
         FROM status_mappings m
         LEFT JOIN crm_statuses s ON s.company_id = m.company_id AND s.provider = m.provider
                                 AND s.crm_id = m.crm_status_id
         WHERE m.company_id = $1 AND m.provider = $2 AND m.case_status_id = $3
           AND m.status_type = ''",
    )
    .bind(company.to_string())
    .bind(provider)
    .bind(case_status.to_string())
    .fetch_optional(&mut *conn)
    .await?)
}

/// A CRM status a platform status maps to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MappedCrmStatus {
    /// Empty for the primary status, else the second-status type's id.
    pub status_type: String,
    pub crm_id: String,
    /// From the catalog, or the id when the catalog does not have it.
    pub name: String,
}

/// Every CRM status a platform status maps to, in the order they are written: the primary
/// status first, then the second statuses by status type id (numeric ids in numeric order).
pub async fn crm_statuses_for(
    conn: &mut Conn,
    company: CompanyId,
    provider: &str,
    case_status: CaseStatusId,
) -> Result<Vec<MappedCrmStatus>> {
    let rows: Vec<(String, String, String)> = sqlx::query_as(
        "SELECT m.status_type, m.crm_status_id, COALESCE(s.name, m.crm_status_id)
         FROM status_mappings m
         LEFT JOIN crm_statuses s ON s.company_id = m.company_id AND s.provider = m.provider
                                 AND s.crm_id = m.crm_status_id
         WHERE m.company_id = $1 AND m.provider = $2 AND m.case_status_id = $3
         ORDER BY LENGTH(m.status_type), m.status_type",
    )
    .bind(company.to_string())
    .bind(provider)
    .bind(case_status.to_string())
    .fetch_all(&mut *conn)
    .await?;
    Ok(rows
        .into_iter()
        .map(|(status_type, crm_id, name)| MappedCrmStatus {
            status_type,
            crm_id,
            name,
        })
        .collect())
}

/// A CRM case type, status or field as loaded from the CRM.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CrmItem {
    pub crm_id: String,
    pub name: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CrmField {
    pub crm_case_type_id: String,
    pub key: String,
    pub crm_field_id: String,
    pub label: String,
    pub input_type: String,
    pub form_section: String,
}

/// Replaces the cached CRM catalog with a fresh load. Mappings are separate rows and stay.
pub async fn replace_catalog(
    conn: &mut Tx,
    company: CompanyId,
    provider: &str,
    case_types: &[CrmItem],
    statuses: &[CrmItem],
    fields: &[CrmField],
    now: Timestamp,
) -> Result<()> {
    let conn: &mut Conn = conn;
    for table in ["crm_case_types", "crm_statuses", "crm_fields"] {
        sqlx::query(&format!(
            "DELETE FROM {table} WHERE company_id = $1 AND provider = $2"
        ))
        .bind(company.to_string())
        .bind(provider)
        .execute(&mut *conn)
        .await?;
    }
    for (table, items) in [("crm_case_types", case_types), ("crm_statuses", statuses)] {
        for it in items {
            sqlx::query(&format!(
                "INSERT INTO {table} (company_id, provider, crm_id, name) VALUES ($1, $2, $3, $4)
                 ON CONFLICT DO NOTHING"
            ))
            .bind(company.to_string())
            .bind(provider)
            .bind(&it.crm_id)
            .bind(&it.name)
            .execute(&mut *conn)
            .await?;
        }
    }
    for f in fields {
        sqlx::query(
            "INSERT INTO crm_fields (company_id, provider, crm_case_type_id, field_key, crm_field_id,
                                     label, input_type, form_section)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT DO NOTHING",
        )
        .bind(company.to_string())
        .bind(provider)
        .bind(&f.crm_case_type_id)
        .bind(&f.key)
        .bind(&f.crm_field_id)
        .bind(&f.label)
        .bind(&f.input_type)
        .bind(&f.form_section)
        .execute(&mut *conn)
        .await?;
    }
    sqlx::query(
        "UPDATE integrations SET catalog_refreshed_at = $3, catalog_error = NULL, updated_at = $3
         WHERE company_id = $1 AND provider = $2",
    )
    .bind(company.to_string())
    .bind(provider)
    .bind(now.as_millisecond())
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Records that loading the CRM catalog failed; the previous catalog stays usable.
pub async fn set_catalog_error(
    conn: &mut Conn,
    company: CompanyId,
    provider: &str,
    error: &str,
    now: Timestamp,
) -> Result<()> {
    sqlx::query(
        "UPDATE integrations SET catalog_error = $3, updated_at = $4
         WHERE company_id = $1 AND provider = $2",
    )
    .bind(company.to_string())
    .bind(provider)
    .bind(error)
    .bind(now.as_millisecond())
    .execute(&mut *conn)
    .await?;
    Ok(())
}

async fn items(
    conn: &mut Conn,
    table: &str,
    company: CompanyId,
    provider: &str,
) -> Result<Vec<CrmItem>> {
    let rows: Vec<(String, String)> = sqlx::query_as(&format!(
        "SELECT crm_id, name FROM {table} WHERE company_id = $1 AND provider = $2 ORDER BY name, crm_id"
    ))
    .bind(company.to_string())
    .bind(provider)
    .fetch_all(&mut *conn)
    .await?;
    Ok(rows
        .into_iter()
        .map(|(crm_id, name)| CrmItem { crm_id, name })
        .collect())
}

pub async fn crm_case_types(
    conn: &mut Conn,
    company: CompanyId,
    provider: &str,
) -> Result<Vec<CrmItem>> {
    items(conn, "crm_case_types", company, provider).await
}

pub async fn crm_statuses(
    conn: &mut Conn,
    company: CompanyId,
    provider: &str,
) -> Result<Vec<CrmItem>> {
    items(conn, "crm_statuses", company, provider).await
}

pub async fn crm_fields(
    conn: &mut Conn,
    company: CompanyId,
    provider: &str,
    crm_case_type_id: &str,
) -> Result<Vec<CrmField>> {
    let rows: Vec<(String, String, String, String, String, String)> = sqlx::query_as(
        "SELECT crm_case_type_id, field_key, crm_field_id, label, input_type, form_section
         FROM crm_fields WHERE company_id = $1 AND provider = $2 AND crm_case_type_id = $3
         ORDER BY form_section, label",
    )
    .bind(company.to_string())
    .bind(provider)
    .bind(crm_case_type_id)
    .fetch_all(&mut *conn)
    .await?;
    Ok(rows
        .into_iter()
        .map(
            |(crm_case_type_id, key, crm_field_id, label, input_type, form_section)| CrmField {
                crm_case_type_id,
                key,
                crm_field_id,
                label,
                input_type,
                form_section,
            },
        )
        .collect())
}

// ---- case type links ----

/// `(crm_case_type_id, case_type_id)` for every link.
pub async fn links(
    conn: &mut Conn,
    company: CompanyId,
    provider: &str,
) -> Result<Vec<(String, CaseTypeId)>> {
    let rows: Vec<(String, String)> = sqlx::query_as(
        "SELECT crm_case_type_id, case_type_id FROM case_type_links
         WHERE company_id = $1 AND provider = $2 ORDER BY crm_case_type_id",
    )
    .bind(company.to_string())
    .bind(provider)
    .fetch_all(&mut *conn)
    .await?;
    rows.into_iter()
        .map(|(c, p)| Ok((c, parse_id("case_type_links.case_type_id", &p)?)))
        .collect()
}

pub async fn linked_case_type(
    conn: &mut Conn,
    company: CompanyId,
    provider: &str,
    crm_case_type_id: &str,
) -> Result<Option<CaseTypeId>> {
    let id: Option<String> = sqlx::query_scalar(
        "SELECT case_type_id FROM case_type_links
         WHERE company_id = $1 AND provider = $2 AND crm_case_type_id = $3",
    )
    .bind(company.to_string())
    .bind(provider)
    .bind(crm_case_type_id)
    .fetch_optional(&mut *conn)
    .await?;
    id.map(|i| parse_id("case_type_links.case_type_id", &i))
        .transpose()
}

/// Links a CRM case type to a platform case type, or unlinks it (`None`).
pub async fn set_link(
    conn: &mut Conn,
    company: CompanyId,
    provider: &str,
    crm_case_type_id: &str,
    case_type: Option<CaseTypeId>,
) -> Result<()> {
    match case_type {
        Some(ct) => {
            sqlx::query(
                "INSERT INTO case_type_links (company_id, provider, crm_case_type_id, case_type_id)
                 VALUES ($1, $2, $3, $4)
                 ON CONFLICT (company_id, provider, crm_case_type_id)
                 DO UPDATE SET case_type_id = excluded.case_type_id",
            )
            .bind(company.to_string())
            .bind(provider)
            .bind(crm_case_type_id)
            .bind(ct.to_string())
            .execute(&mut *conn)
            .await?;
        }
        None => {
            sqlx::query(
                "DELETE FROM case_type_links
                 WHERE company_id = $1 AND provider = $2 AND crm_case_type_id = $3",
            )
            .bind(company.to_string())
            .bind(provider)
            .bind(crm_case_type_id)
            .execute(&mut *conn)
            .await?;
        }
    }
    Ok(())
}

// ---- field mappings ----

/// One field mapping: the platform field, the CRM field key, and its sync rule.
#[derive(Debug, Clone, PartialEq, Eq, FromRow)]
pub struct StoredFieldMapping {
    pub platform_field: String,
    pub crm_field_key: String,
    /// A `casebridge_domain::sync::FieldRule` name.
    pub rule: String,
}

/// The field mappings of one CRM case type, by platform field.
pub async fn field_mappings(
    conn: &mut Conn,
    company: CompanyId,
    provider: &str,
    crm_case_type_id: &str,
) -> Result<Vec<StoredFieldMapping>> {
    Ok(sqlx::query_as(
        "SELECT platform_field, crm_field_key, rule FROM field_mappings
         WHERE company_id = $1 AND provider = $2 AND crm_case_type_id = $3 ORDER BY platform_field",
    )
    .bind(company.to_string())
    .bind(provider)
    .bind(crm_case_type_id)
    .fetch_all(&mut *conn)
    .await?)
}

/// Replaces the field mappings of one CRM case type.
pub async fn replace_field_mappings(
    conn: &mut Tx,
    company: CompanyId,
    provider: &str,
    crm_case_type_id: &str,
    mappings: &[StoredFieldMapping],
) -> Result<()> {
    let conn: &mut Conn = conn;
    sqlx::query(
        "DELETE FROM field_mappings WHERE company_id = $1 AND provider = $2 AND crm_case_type_id = $3",
    )
    .bind(company.to_string())
    .bind(provider)
    .bind(crm_case_type_id)
    .execute(&mut *conn)
    .await?;
    for m in mappings {
        sqlx::query(
            "INSERT INTO field_mappings (company_id, provider, crm_case_type_id, platform_field,
                                         crm_field_key, rule)
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(company.to_string())
        .bind(provider)
        .bind(crm_case_type_id)
        .bind(&m.platform_field)
        .bind(&m.crm_field_key)
        .bind(&m.rule)
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}

// ---- status mappings ----

/// One status mapping: a platform status, a CRM status, and the slot that CRM status fills
/// (`status_type`: empty for the primary status, else the second-status type's id).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredStatusMapping {
    pub case_status_id: CaseStatusId,
    pub crm_status_id: String,
    pub status_type: String,
}

/// Every status mapping, by CRM status id.
pub async fn status_mappings(
    conn: &mut Conn,
    company: CompanyId,
    provider: &str,
) -> Result<Vec<StoredStatusMapping>> {
    let rows: Vec<(String, String, String)> = sqlx::query_as(
        "SELECT case_status_id, crm_status_id, status_type FROM status_mappings
         WHERE company_id = $1 AND provider = $2 ORDER BY crm_status_id",
    )
    .bind(company.to_string())
    .bind(provider)
    .fetch_all(&mut *conn)
    .await?;
    rows.into_iter()
        .map(|(p, crm_status_id, status_type)| {
            Ok(StoredStatusMapping {
                case_status_id: parse_id("status_mappings.case_status_id", &p)?,
                crm_status_id,
                status_type,
            })
        })
        .collect()
}

/// Replaces the status mappings. A platform status has at most one CRM status per slot, and a
/// CRM status maps from one platform status (both refused here as a conflict).
pub async fn replace_status_mappings(
    conn: &mut Tx,
    company: CompanyId,
    provider: &str,
    mappings: &[StoredStatusMapping],
) -> Result<()> {
    let conn: &mut Conn = conn;
    sqlx::query("DELETE FROM status_mappings WHERE company_id = $1 AND provider = $2")
        .bind(company.to_string())
        .bind(provider)
        .execute(&mut *conn)
        .await?;
    for m in mappings {
        sqlx::query(
            "INSERT INTO status_mappings (company_id, provider, case_status_id, crm_status_id,
                                          status_type)
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(company.to_string())
        .bind(provider)
        .bind(m.case_status_id.to_string())
        .bind(&m.crm_status_id)
        .bind(&m.status_type)
        .execute(&mut *conn)
        .await
        .map_err(|e| {
            StoreError::from(e).on_conflict(|| {
                format!(
                    "CRM status {} is mapped twice, or its platform status has two CRM statuses \
                     of one kind",
                    m.crm_status_id
                )
            })
        })?;
    }
    Ok(())
}

/// The platform status whose primary mapping a CRM status is, if any (how an arriving record's
/// status is matched; a second status never is).
pub async fn mapped_status(
    conn: &mut Conn,
    company: CompanyId,
    provider: &str,
    crm_status_id: &str,
) -> Result<Option<CaseStatusId>> {
    let id: Option<String> = sqlx::query_scalar(
        "SELECT case_status_id FROM status_mappings
         WHERE company_id = $1 AND provider = $2 AND crm_status_id = $3 AND status_type = ''",
    )
    .bind(company.to_string())
    .bind(provider)
    .bind(crm_status_id)
    .fetch_optional(&mut *conn)
    .await?;
    id.map(|i| parse_id("status_mappings.case_status_id", &i))
        .transpose()
}

/// Maps a platform status to a primary CRM status, unless either is mapped already (the
/// platform status to another primary status, or the CRM status from another platform status).
pub async fn add_status_mapping(
    conn: &mut Conn,
    company: CompanyId,
    provider: &str,
    status: CaseStatusId,
    crm_status_id: &str,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO status_mappings (company_id, provider, case_status_id, crm_status_id,
                                      status_type)
         VALUES ($1, $2, $3, $4, '') ON CONFLICT DO NOTHING",
    )
    .bind(company.to_string())
    .bind(provider)
    .bind(status.to_string())
    .bind(crm_status_id)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

// ---- list auto-add rules ----

#[derive(Debug, Clone, PartialEq)]
pub struct StoredRule {
    pub id: String,
    pub list_id: ListId,
    pub provider: String,
    pub rule: AutoAddRule,
    pub created_at: Timestamp,
}

type RuleRow = (String, String, String, Option<String>, Option<String>, i64);

fn rule_from(row: RuleRow) -> Result<StoredRule> {
    let (id, list_id, provider, case_type, status, created_at) = row;
    Ok(StoredRule {
        id,
        list_id: parse_id("list_auto_add_rules.list_id", &list_id)?,
        provider,
        rule: AutoAddRule { case_type, status },
        created_at: ts(created_at)?,
    })
}

pub async fn add_rule(
    conn: &mut Conn,
    company: CompanyId,
    list: ListId,
    provider: &str,
    rule: &AutoAddRule,
    now: Timestamp,
) -> Result<StoredRule> {
    let id = Uuid::now_v7().to_string();
    sqlx::query(
        "INSERT INTO list_auto_add_rules (id, company_id, list_id, provider, case_type, status, created_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(&id)
    .bind(company.to_string())
    .bind(list.to_string())
    .bind(provider)
    .bind(rule.case_type.clone())
    .bind(rule.status.clone())
    .bind(now.as_millisecond())
    .execute(&mut *conn)
    .await?;
    Ok(StoredRule {
        id,
        list_id: list,
        provider: provider.to_owned(),
        rule: rule.clone(),
        created_at: now,
    })
}

/// The rules of one list, or (with `list = None`) every rule of a provider in the company.
pub async fn rules(
    conn: &mut Conn,
    company: CompanyId,
    list: Option<ListId>,
    provider: Option<&str>,
) -> Result<Vec<StoredRule>> {
    let rows: Vec<RuleRow> = sqlx::query_as(
        "SELECT id, list_id, provider, case_type, status, created_at FROM list_auto_add_rules
         WHERE company_id = $1 AND ($2 IS NULL OR list_id = $2) AND ($3 IS NULL OR provider = $3)
         ORDER BY id",
    )
    .bind(company.to_string())
    .bind(list.map(|l| l.to_string()))
    .bind(provider.map(str::to_owned))
    .fetch_all(&mut *conn)
    .await?;
    rows.into_iter().map(rule_from).collect()
}

pub async fn delete_rule(
    conn: &mut Conn,
    company: CompanyId,
    list: ListId,
    id: &str,
) -> Result<()> {
    let done = sqlx::query(
        "DELETE FROM list_auto_add_rules WHERE company_id = $1 AND list_id = $2 AND id = $3",
    )
    .bind(company.to_string())
    .bind(list.to_string())
    .bind(id)
    .execute(&mut *conn)
    .await?;
    if done.rows_affected() == 0 {
        return Err(StoreError::NotFound);
    }
    Ok(())
}

// ---- inbound receipts ----

/// Records the content last applied for a CRM record. Returns false when it equals the content
/// applied last time for that record (a repeated delivery), true otherwise.
pub async fn record_receipt(
    conn: &mut Tx,
    company: CompanyId,
    provider: &str,
    record_id: &str,
    content_hash: &str,
    now: Timestamp,
) -> Result<bool> {
    let conn: &mut Conn = conn;
    // One statement, so two identical deliveries racing each other cannot both apply.
    let done = sqlx::query(
        "INSERT INTO inbound_receipts (company_id, provider, record_id, content_hash, received_at)
         VALUES ($1, $2, $3, $4, $5)
         ON CONFLICT (company_id, provider, record_id)
         DO UPDATE SET content_hash = excluded.content_hash, received_at = excluded.received_at
         WHERE inbound_receipts.content_hash <> excluded.content_hash",
    )
    .bind(company.to_string())
    .bind(provider)
    .bind(record_id)
    .bind(content_hash)
    .bind(now.as_millisecond())
    .execute(&mut *conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// How many CRM records were received (distinct records with an applied receipt).
pub async fn records_received(conn: &mut Conn, company: CompanyId, provider: &str) -> Result<u64> {
    let n: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM inbound_receipts WHERE company_id = $1 AND provider = $2",
    )
    .bind(company.to_string())
    .bind(provider)
    .fetch_one(&mut *conn)
    .await?;
    Ok(u64::try_from(n).unwrap_or(0))
}

// ---- sync log ----

#[derive(Debug, Clone, PartialEq)]
pub struct SyncEntry {
    pub id: String,
    pub direction: String,
    pub operation: String,
    pub record_ref: Option<String>,
    pub outcome: String,
    pub error_kind: Option<String>,
    pub message: Option<String>,
    pub created_at: Timestamp,
}

/// What to log about one sync operation.
#[derive(Debug, Clone)]
pub struct NewSyncEntry<'a> {
    pub direction: &'a str,
    pub operation: &'a str,
    pub record_ref: Option<&'a str>,
    pub outcome: SyncOutcome,
    pub error_kind: Option<ErrorKind>,
    pub message: Option<&'a str>,
}

pub async fn log(
    conn: &mut Conn,
    company: CompanyId,
    provider: &str,
    entry: &NewSyncEntry<'_>,
    now: Timestamp,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO sync_log (id, company_id, provider, direction, operation, record_ref, outcome,
                               error_kind, message, created_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
    )
    .bind(Uuid::now_v7().to_string())
    .bind(company.to_string())
    .bind(provider)
    .bind(entry.direction)
    .bind(entry.operation)
    .bind(entry.record_ref.map(str::to_owned))
    .bind(entry.outcome.as_str())
    .bind(entry.error_kind.map(|k| k.as_str()))
    .bind(entry.message.map(str::to_owned))
    .bind(now.as_millisecond())
    .execute(&mut *conn)
    .await?;
    Ok(())
}

type SyncRow = (
    String,
    String,
    String,
    Option<String>,
    String,
    Option<String>,
    Option<String>,
    i64,
);

/// The sync log, newest first.
pub async fn sync_log(
    conn: &mut Conn,
    company: CompanyId,
    provider: &str,
    outcome: Option<&str>,
    page: &PageRequest,
) -> Result<Page<SyncEntry>> {
    let rows: Vec<SyncRow> = sqlx::query_as(
        "SELECT id, direction, operation, record_ref, outcome, error_kind, message, created_at
             FROM sync_log WHERE company_id = $1 AND provider = $2 AND ($3 IS NULL OR id < $3)
               AND ($4 IS NULL OR outcome = $4)
             ORDER BY id DESC LIMIT $5",
    )
    .bind(company.to_string())
    .bind(provider)
    .bind(page.after.clone())
    .bind(outcome.map(str::to_owned))
    .bind(i64::from(page.limit) + 1)
    .fetch_all(&mut *conn)
    .await?;
    let items = rows.into_iter().map(entry).collect::<Result<Vec<_>>>()?;
    Ok(Page::from_overfetch(items, page.limit, |e| e.id.clone()))
}

fn entry(row: SyncRow) -> Result<SyncEntry> {
    let (id, direction, operation, record_ref, outcome, error_kind, message, created_at) = row;
    Ok(SyncEntry {
        id,
        direction,
        operation,
        record_ref,
        outcome,
        error_kind,
        message,
        created_at: ts(created_at)?,
    })
}

/// The sync-log lines about `record_ref` with an id after `after` (a UUIDv7 made earlier in
/// this process), oldest first: what a dry run's transaction wrote before it was rolled back.
pub async fn sync_log_after(
    conn: &mut Conn,
    company: CompanyId,
    provider: &str,
    record_ref: &str,
    after: &str,
) -> Result<Vec<SyncEntry>> {
    let rows: Vec<SyncRow> = sqlx::query_as(
        "SELECT id, direction, operation, record_ref, outcome, error_kind, message, created_at
             FROM sync_log WHERE company_id = $1 AND provider = $2 AND record_ref = $3
               AND id > $4
             ORDER BY id",
    )
    .bind(company.to_string())
    .bind(provider)
    .bind(record_ref)
    .bind(after)
    .fetch_all(&mut *conn)
    .await?;
    rows.into_iter().map(entry).collect()
}

/// A [`SyncRow`] with its CRM first.
type ProviderSyncRow = (
    String,
    String,
    String,
    String,
    Option<String>,
    String,
    Option<String>,
    Option<String>,
    i64,
);

/// The sync-log lines written in `[since, until)`, of one CRM or all, oldest first, after the
/// cursor `after` (a line id): what an export reads, a chunk at a time. Returns each line with
/// its CRM.
pub async fn sync_log_range(
    conn: &mut Conn,
    company: CompanyId,
    provider: Option<&str>,
    since: Option<Timestamp>,
    until: Option<Timestamp>,
    after: Option<&str>,
    limit: u32,
) -> Result<Vec<(String, SyncEntry)>> {
    let rows: Vec<ProviderSyncRow> = sqlx::query_as(
        "SELECT provider, id, direction, operation, record_ref, outcome, error_kind, message,
                    created_at
             FROM sync_log WHERE company_id = $1 AND ($2 IS NULL OR provider = $2)
               AND ($3 IS NULL OR created_at >= $3) AND ($4 IS NULL OR created_at < $4)
               AND id > $5
             ORDER BY id LIMIT $6",
    )
    .bind(company.to_string())
    .bind(provider.map(str::to_owned))
    .bind(since.map(|t| t.as_millisecond()))
    .bind(until.map(|t| t.as_millisecond()))
    .bind(after.unwrap_or_default().to_owned())
    .bind(i64::from(limit))
    .fetch_all(&mut *conn)
    .await?;
    rows.into_iter()
        .map(
            |(
                p,
                id,
                direction,
                operation,
                record_ref,
                outcome,
                error_kind,
                message,
                created_at,
            )| {
                Ok((
                    p,
                    SyncEntry {
                        id,
                        direction,
                        operation,
                        record_ref,
                        outcome,
                        error_kind,
                        message,
                        created_at: ts(created_at)?,
                    },
                ))
            },
        )
        .collect()
}

/// How many sync-log lines [`sync_log_range`] reads from the start (for an export's progress).
pub async fn sync_log_range_count(
    conn: &mut Conn,
    company: CompanyId,
    provider: Option<&str>,
    since: Option<Timestamp>,
    until: Option<Timestamp>,
) -> Result<u64> {
    let n: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM sync_log WHERE company_id = $1 AND ($2 IS NULL OR provider = $2)
           AND ($3 IS NULL OR created_at >= $3) AND ($4 IS NULL OR created_at < $4)",
    )
    .bind(company.to_string())
    .bind(provider.map(str::to_owned))
    .bind(since.map(|t| t.as_millisecond()))
    .bind(until.map(|t| t.as_millisecond()))
    .fetch_one(&mut *conn)
    .await?;
    Ok(u64::try_from(n).unwrap_or(0))
}

/// How many sync-log lines there are per direction and outcome, written at or after `since`
/// (all of them when `None`): `(direction, outcome, count)`.
pub async fn sync_log_counts(
    conn: &mut Conn,
    company: CompanyId,
    provider: &str,
    since: Option<Timestamp>,
) -> Result<Vec<(String, String, u64)>> {
    let rows: Vec<(String, String, i64)> = sqlx::query_as(
        "SELECT direction, outcome, COUNT(*) FROM sync_log
             WHERE company_id = $1 AND provider = $2 AND ($3 IS NULL OR created_at >= $3)
             GROUP BY direction, outcome",
    )
    .bind(company.to_string())
    .bind(provider)
    .bind(since.map(|t| t.as_millisecond()))
    .fetch_all(&mut *conn)
    .await?;
    Ok(rows
        .into_iter()
        .map(|(d, o, n)| (d, o, u64::try_from(n).unwrap_or(0)))
        .collect())
}

/// A group of sync-log problems: the lines of one direction that failed (or were skipped for a
/// reason with a kind), with the same error kind, or, for lines without a kind, of the same
/// operation.
#[derive(Debug, Clone, PartialEq)]
pub struct SyncProblems {
    pub direction: String,
    pub error_kind: Option<String>,
    pub count: u64,
    pub first_seen: Timestamp,
    pub last_seen: Timestamp,
    /// The newest line of the group.
    pub newest: SyncEntry,
    /// The newest line of `newest`'s direction and operation, whatever its outcome.
    pub latest_of_operation: SyncEntry,
}

/// A problem line: an error, or a skip whose reason has a kind (an ignored webhook).
const PROBLEM: &str = "(outcome = 'error' OR (outcome = 'skipped' AND error_kind IS NOT NULL))";

async fn sync_entry_where(
    conn: &mut Conn,
    company: CompanyId,
    provider: &str,
    condition: &str,
    binds: &[&str],
) -> Result<Option<SyncEntry>> {
    let sql = format!(
        "SELECT id, direction, operation, record_ref, outcome, error_kind, message, created_at
             FROM sync_log WHERE company_id = $1 AND provider = $2 AND {condition}
             ORDER BY id DESC LIMIT 1"
    );
    let mut q = sqlx::query_as::<_, SyncRow>(&sql)
        .bind(company.to_string())
        .bind(provider);
    for b in binds {
        q = q.bind(b.to_string());
    }
    let row = q.fetch_optional(&mut *conn).await?;
    row.map(
        |(id, direction, operation, record_ref, outcome, error_kind, message, created_at)| {
            Ok(SyncEntry {
                id,
                direction,
                operation,
                record_ref,
                outcome,
                error_kind,
                message,
                created_at: ts(created_at)?,
            })
        },
    )
    .transpose()
}

/// The sync log's problems grouped by direction and error kind (by operation when a line has
/// no kind), the group with the newest line first.
pub async fn sync_problems(
    conn: &mut Conn,
    company: CompanyId,
    provider: &str,
) -> Result<Vec<SyncProblems>> {
    type Row = (String, Option<String>, String, i64, i64, i64, String);
    let groups: Vec<Row> = sqlx::query_as(&format!(
        "SELECT direction, error_kind, CASE WHEN error_kind IS NULL THEN operation ELSE '' END,
                COUNT(*), MIN(created_at), MAX(created_at), MAX(id)
             FROM sync_log WHERE company_id = $1 AND provider = $2 AND {PROBLEM}
             GROUP BY 1, 2, 3
             ORDER BY 7 DESC"
    ))
    .bind(company.to_string())
    .bind(provider)
    .fetch_all(&mut *conn)
    .await?;
    let mut out = Vec::with_capacity(groups.len());
    for (direction, error_kind, _, count, first, last, newest_id) in groups {
        let newest = sync_entry_where(conn, company, provider, "id = $3", &[&newest_id])
            .await?
            .ok_or(StoreError::NotFound)?;
        let latest_of_operation = sync_entry_where(
            conn,
            company,
            provider,
            "direction = $3 AND operation = $4",
            &[&newest.direction, &newest.operation],
        )
        .await?
        .ok_or(StoreError::NotFound)?;
        out.push(SyncProblems {
            direction,
            error_kind,
            count: u64::try_from(count).unwrap_or(0),
            first_seen: ts(first)?,
            last_seen: ts(last)?,
            newest,
            latest_of_operation,
        });
    }
    Ok(out)
}

/// Connected integrations per CRM across every company, and how many of them have a
/// configuration error (wrong key, revoked user): what an operator alerts on.
pub async fn health_totals(conn: &mut Conn) -> Result<Vec<(String, u64, u64)>> {
    let rows: Vec<(String, i64, i64)> = sqlx::query_as(
        "SELECT provider, COUNT(*),
                COALESCE(SUM(CASE WHEN config_error IS NOT NULL THEN 1 ELSE 0 END), 0)
         FROM integrations WHERE connected_at IS NOT NULL
         GROUP BY provider ORDER BY provider",
    )
    .fetch_all(&mut *conn)
    .await?;
    Ok(rows
        .into_iter()
        .map(|(p, n, e)| {
            (
                p,
                u64::try_from(n).unwrap_or(0),
                u64::try_from(e).unwrap_or(0),
            )
        })
        .collect())
}
