use casebridge_domain::ids::{ApiKeyId, CompanyId};
use casebridge_domain::model::ApiKeyInfo;
use casebridge_domain::page::{Page, PageRequest};
use jiff::Timestamp;
use sqlx::FromRow;

use crate::{parse_id, ts, Conn, Result, StoreError};

#[derive(FromRow)]
struct Row {
    id: String,
    name: String,
    prefix: String,
    created_at: i64,
    revoked_at: Option<i64>,
}

impl Row {
    fn into_model(self) -> Result<ApiKeyInfo> {
        Ok(ApiKeyInfo {
            id: parse_id("api_keys.id", &self.id)?,
            name: self.name,
            prefix: self.prefix,
            created_at: ts(self.created_at)?,
            revoked_at: self.revoked_at.map(ts).transpose()?,
        })
    }
}

/// Stores a key by its hash; the key itself is never stored.
pub async fn create(
    conn: &mut Conn,
    company: CompanyId,
    name: &str,
    prefix: &str,
    key_hash: &str,
    now: Timestamp,
) -> Result<ApiKeyInfo> {
    let row: Row = sqlx::query_as(
        "INSERT INTO api_keys (id, company_id, name, prefix, key_hash, created_at)
         VALUES ($1, $2, $3, $4, $5, $6)
         RETURNING id, name, prefix, created_at, revoked_at",
    )
    .bind(ApiKeyId::new().to_string())
    .bind(company.to_string())
    .bind(name)
    .bind(prefix)
    .bind(key_hash)
    .bind(now.as_millisecond())
    .fetch_one(&mut *conn)
    .await?;
    row.into_model()
}

/// The company that owns an active (not revoked) key with this hash.
pub async fn authenticate(conn: &mut Conn, key_hash: &str) -> Result<Option<CompanyId>> {
    let id: Option<String> = sqlx::query_scalar(
        "SELECT company_id FROM api_keys WHERE key_hash = $1 AND revoked_at IS NULL",
    )
    .bind(key_hash)
    .fetch_optional(&mut *conn)
    .await?;
    id.map(|id| parse_id("api_keys.company_id", &id))
        .transpose()
}

pub async fn list(
    conn: &mut Conn,
    company: CompanyId,
    page: &PageRequest,
) -> Result<Page<ApiKeyInfo>> {
    let rows: Vec<Row> = sqlx::query_as(
        "SELECT id, name, prefix, created_at, revoked_at FROM api_keys
         WHERE company_id = $1 AND id > $2 ORDER BY id LIMIT $3",
    )
    .bind(company.to_string())
    .bind(page.after.clone().unwrap_or_default())
    .bind(i64::from(page.limit) + 1)
    .fetch_all(&mut *conn)
    .await?;
    let items = rows
        .into_iter()
        .map(Row::into_model)
        .collect::<Result<Vec<_>>>()?;
    Ok(Page::from_overfetch(items, page.limit, |k| {
        k.id.to_string()
    }))
}

pub async fn revoke(
    conn: &mut Conn,
    company: CompanyId,
    id: ApiKeyId,
    now: Timestamp,
) -> Result<ApiKeyInfo> {
    let row: Option<Row> = sqlx::query_as(
        "UPDATE api_keys SET revoked_at = COALESCE(revoked_at, $3)
         WHERE company_id = $1 AND id = $2
         RETURNING id, name, prefix, created_at, revoked_at",
    )
    .bind(company.to_string())
    .bind(id.to_string())
    .bind(now.as_millisecond())
    .fetch_optional(&mut *conn)
    .await?;
    row.ok_or(StoreError::NotFound)?.into_model()
}
