//! Case types, case statuses, campaigns and lists: one shape, one implementation.

use casebridge_domain::ids::CompanyId;
use casebridge_domain::model::Named;
use casebridge_domain::page::{Page, PageRequest};
use casebridge_domain::records::{Name, NamedKind};
use jiff::Timestamp;
use sqlx::FromRow;
use uuid::Uuid;

use crate::{ts, Conn, Result, StoreError};

/// The table of each kind. Table names come only from this match, never from input.
fn table(kind: NamedKind) -> &'static str {
    match kind {
        NamedKind::CaseType => "case_types",
        NamedKind::CaseStatus => "case_statuses",
        NamedKind::Campaign => "campaigns",
        NamedKind::List => "lists",
    }
}

#[derive(FromRow)]
struct Row {
    id: String,
    name: String,
    created_at: i64,
    updated_at: i64,
}

impl Row {
    fn into_model(self, kind: NamedKind) -> Result<Named> {
        Ok(Named {
            kind,
            id: self.id,
            name: self.name,
            created_at: ts(self.created_at)?,
            updated_at: ts(self.updated_at)?,
        })
    }
}

fn name_taken(kind: NamedKind, name: &Name) -> impl FnOnce() -> String + '_ {
    move || {
        format!(
            "a {} named `{}` already exists",
            kind.label(),
            name.as_str()
        )
    }
}

pub async fn create(
    conn: &mut Conn,
    company: CompanyId,
    kind: NamedKind,
    name: &Name,
    now: Timestamp,
) -> Result<Named> {
    let sql = format!(
        "INSERT INTO {} (id, company_id, name, created_at, updated_at) VALUES ($1, $2, $3, $4, $4)
         RETURNING id, name, created_at, updated_at",
        table(kind)
    );
    let row: Row = sqlx::query_as(&sql)
        .bind(Uuid::now_v7().hyphenated().to_string())
        .bind(company.to_string())
        .bind(name.as_str())
        .bind(now.as_millisecond())
        .fetch_one(&mut *conn)
        .await
        .map_err(|e| StoreError::from(e).on_conflict(name_taken(kind, name)))?;
    row.into_model(kind)
}

/// The record named `name`, created if there is none. Safe under concurrency: two transactions
/// creating the same name at once both end up with the one record (the second insert waits for
/// the first and then does nothing), where [`create`] would fail one of them.
pub async fn find_or_create(
    conn: &mut Conn,
    company: CompanyId,
    kind: NamedKind,
    name: &Name,
    now: Timestamp,
) -> Result<Named> {
    let sql = format!(
        "INSERT INTO {} (id, company_id, name, created_at, updated_at) VALUES ($1, $2, $3, $4, $4)
         ON CONFLICT (company_id, name) DO NOTHING",
        table(kind)
    );
    sqlx::query(&sql)
        .bind(Uuid::now_v7().hyphenated().to_string())
        .bind(company.to_string())
        .bind(name.as_str())
        .bind(now.as_millisecond())
        .execute(&mut *conn)
        .await?;
    find_by_name(conn, company, kind, name.as_str())
        .await?
        .ok_or(StoreError::NotFound)
}

pub async fn get(conn: &mut Conn, company: CompanyId, kind: NamedKind, id: &str) -> Result<Named> {
    let sql = format!(
        "SELECT id, name, created_at, updated_at FROM {} WHERE company_id = $1 AND id = $2",
        table(kind)
    );
    let row: Row = sqlx::query_as(&sql)
        .bind(company.to_string())
        .bind(id)
        .fetch_one(&mut *conn)
        .await?;
    row.into_model(kind)
}

/// Whether a record of this kind with this id exists in the company.
pub async fn exists(
    conn: &mut Conn,
    company: CompanyId,
    kind: NamedKind,
    id: &str,
) -> Result<bool> {
    match get(conn, company, kind, id).await {
        Ok(_) => Ok(true),
        Err(StoreError::NotFound) => Ok(false),
        Err(e) => Err(e),
    }
}

pub async fn find_by_name(
    conn: &mut Conn,
    company: CompanyId,
    kind: NamedKind,
    name: &str,
) -> Result<Option<Named>> {
    let sql = format!(
        "SELECT id, name, created_at, updated_at FROM {} WHERE company_id = $1 AND name = $2",
        table(kind)
    );
    let row: Option<Row> = sqlx::query_as(&sql)
        .bind(company.to_string())
        .bind(name)
        .fetch_optional(&mut *conn)
        .await?;
    row.map(|r| r.into_model(kind)).transpose()
}

pub async fn list(
    conn: &mut Conn,
    company: CompanyId,
    kind: NamedKind,
    page: &PageRequest,
) -> Result<Page<Named>> {
    let sql = format!(
        "SELECT id, name, created_at, updated_at FROM {} WHERE company_id = $1 AND id > $2
         ORDER BY id LIMIT $3",
        table(kind)
    );
    let rows: Vec<Row> = sqlx::query_as(&sql)
        .bind(company.to_string())
        .bind(page.after.clone().unwrap_or_default())
        .bind(i64::from(page.limit) + 1)
        .fetch_all(&mut *conn)
        .await?;
    let items = rows
        .into_iter()
        .map(|r| r.into_model(kind))
        .collect::<Result<Vec<_>>>()?;
    Ok(Page::from_overfetch(items, page.limit, |n| n.id.clone()))
}

pub async fn rename(
    conn: &mut Conn,
    company: CompanyId,
    kind: NamedKind,
    id: &str,
    name: &Name,
    now: Timestamp,
) -> Result<Named> {
    let sql = format!(
        "UPDATE {} SET name = $3, updated_at = $4 WHERE company_id = $1 AND id = $2
         RETURNING id, name, created_at, updated_at",
        table(kind)
    );
    let row: Option<Row> = sqlx::query_as(&sql)
        .bind(company.to_string())
        .bind(id)
        .bind(name.as_str())
        .bind(now.as_millisecond())
        .fetch_optional(&mut *conn)
        .await
        .map_err(|e| StoreError::from(e).on_conflict(name_taken(kind, name)))?;
    row.ok_or(StoreError::NotFound)?.into_model(kind)
}

/// Deletes the record; a case type or status still used by cases is a conflict.
pub async fn delete(conn: &mut Conn, company: CompanyId, kind: NamedKind, id: &str) -> Result<()> {
    let sql = format!(
        "DELETE FROM {} WHERE company_id = $1 AND id = $2",
        table(kind)
    );
    let done = sqlx::query(&sql)
        .bind(company.to_string())
        .bind(id)
        .execute(&mut *conn)
        .await
        .map_err(|e| {
            StoreError::from(e).on_conflict(|| {
                format!(
                    "this {} is still used by cases; change those cases first",
                    kind.label()
                )
            })
        })?;
    if done.rows_affected() == 0 {
        return Err(StoreError::NotFound);
    }
    Ok(())
}
