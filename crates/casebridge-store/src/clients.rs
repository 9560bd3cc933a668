use casebridge_domain::ids::{ClientId, CompanyId};
use casebridge_domain::model::Client;
use casebridge_domain::page::{Page, PageRequest};
use casebridge_domain::records::{ClientFields, ClientFilter, ClientPatch, ExternalRef, NewClient};
use jiff::Timestamp;
use sqlx::FromRow;

use crate::refs::{self, Entity};
use crate::{parse_id, ts, Conn, Result, StoreError, Tx};

const COLUMNS: &str = "id, first_name, last_name, email, phone, created_at, updated_at";

#[derive(FromRow)]
struct Row {
    id: String,
    first_name: Option<String>,
    last_name: Option<String>,
    email: Option<String>,
    phone: Option<String>,
    created_at: i64,
    updated_at: i64,
}

impl Row {
    fn into_model(self, external_refs: Vec<ExternalRef>) -> Result<Client> {
        Ok(Client {
            id: parse_id("clients.id", &self.id)?,
            fields: ClientFields {
                first_name: self.first_name,
                last_name: self.last_name,
                email: self.email,
                phone: self.phone,
            },
            external_refs,
            created_at: ts(self.created_at)?,
            updated_at: ts(self.updated_at)?,
        })
    }
}

pub async fn create(
    conn: &mut Tx,
    company: CompanyId,
    new: &NewClient,
    now: Timestamp,
) -> Result<Client> {
    let id = insert(conn, company, new, now).await?;
    get(conn, company, id).await
}

/// [`create`] without reading the client back: its id only (for ingest paths that need no more,
/// two statements fewer).
pub async fn insert(
    conn: &mut Tx,
    company: CompanyId,
    new: &NewClient,
    now: Timestamp,
) -> Result<ClientId> {
    let conn: &mut Conn = conn;
    let id = ClientId::new().to_string();
    let f = &new.fields;
    sqlx::query(
        "INSERT INTO clients (id, company_id, first_name, last_name, email, phone, created_at, updated_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $7)",
    )
    .bind(&id)
    .bind(company.to_string())
    .bind(f.first_name.clone())
    .bind(f.last_name.clone())
    .bind(f.email.clone())
    .bind(f.phone.clone())
    .bind(now.as_millisecond())
    .execute(&mut *conn)
    .await?;
    refs::attach(conn, company, Entity::Client, &id, &new.external_refs, now).await?;
    parse_id("clients.id", &id)
}

/// The client, its row locked until the transaction ends, for a change that must compare the
/// record before and after (outbound sync diffs) without losing to a concurrent writer.
pub async fn get_for_update(conn: &mut Tx, company: CompanyId, id: ClientId) -> Result<Client> {
    let conn: &mut Conn = conn;
    let found: Option<String> = sqlx::query_scalar(&format!(
        "SELECT id FROM clients WHERE company_id = $1 AND id = $2{}",
        crate::for_update(conn)
    ))
    .bind(company.to_string())
    .bind(id.to_string())
    .fetch_optional(&mut *conn)
    .await?;
    found.ok_or(StoreError::NotFound)?;
    get(conn, company, id).await
}

pub async fn get(conn: &mut Conn, company: CompanyId, id: ClientId) -> Result<Client> {
    let row: Row = sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM clients WHERE company_id = $1 AND id = $2"
    ))
    .bind(company.to_string())
    .bind(id.to_string())
    .fetch_one(&mut *conn)
    .await?;
    let mut refs =
        refs::for_entities(conn, company, Entity::Client, std::slice::from_ref(&row.id)).await?;
    let r = refs.remove(&row.id).unwrap_or_default();
    row.into_model(r)
}

pub async fn exists(conn: &mut Conn, company: CompanyId, id: ClientId) -> Result<bool> {
    let found: Option<i64> =
        sqlx::query_scalar("SELECT 1 FROM clients WHERE company_id = $1 AND id = $2")
            .bind(company.to_string())
            .bind(id.to_string())
            .fetch_optional(&mut *conn)
            .await?;
    Ok(found.is_some())
}

pub async fn find_by_ref(
    conn: &mut Conn,
    company: CompanyId,
    provider: &str,
    external_id: &str,
) -> Result<Client> {
    let id = refs::find(conn, company, Entity::Client, provider, external_id)
        .await?
        .ok_or(StoreError::NotFound)?;
    get(conn, company, parse_id("external_refs.entity_id", &id)?).await
}

pub async fn list(
    conn: &mut Conn,
    company: CompanyId,
    filter: &ClientFilter,
    page: &PageRequest,
) -> Result<Page<Client>> {
    let rows: Vec<Row> = sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM clients
         WHERE company_id = $1 AND id > $2
           AND ($3 IS NULL OR lower(email) = lower($3))
           AND ($4 IS NULL OR phone = $4)
           AND ($5 IS NULL OR created_at >= $5)
           AND ($6 IS NULL OR created_at < $6)
         ORDER BY id LIMIT $7"
    ))
    .bind(company.to_string())
    .bind(page.after.clone().unwrap_or_default())
    .bind(filter.email.clone())
    .bind(filter.phone.clone())
    .bind(filter.created_since.map(|t| t.as_millisecond()))
    .bind(filter.created_until.map(|t| t.as_millisecond()))
    .bind(i64::from(page.limit) + 1)
    .fetch_all(&mut *conn)
    .await?;
    let ids: Vec<String> = rows.iter().map(|r| r.id.clone()).collect();
    let mut refs = refs::for_entities(conn, company, Entity::Client, &ids).await?;
    let items = rows
        .into_iter()
        .map(|r| {
            let x = refs.remove(&r.id).unwrap_or_default();
            r.into_model(x)
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(Page::from_overfetch(items, page.limit, |c| {
        c.id.to_string()
    }))
}

/// How many clients were created in `[since, until)` (for an export's progress).
pub async fn count_created(
    conn: &mut Conn,
    company: CompanyId,
    since: Option<Timestamp>,
    until: Option<Timestamp>,
) -> Result<u64> {
    let n: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM clients WHERE company_id = $1
           AND ($2 IS NULL OR created_at >= $2) AND ($3 IS NULL OR created_at < $3)",
    )
    .bind(company.to_string())
    .bind(since.map(|t| t.as_millisecond()))
    .bind(until.map(|t| t.as_millisecond()))
    .fetch_one(&mut *conn)
    .await?;
    Ok(u64::try_from(n).unwrap_or(0))
}

pub async fn update(
    conn: &mut Tx,
    company: CompanyId,
    id: ClientId,
    patch: &ClientPatch,
    now: Timestamp,
) -> Result<Client> {
    let conn: &mut Conn = conn;
    let current = get(conn, company, id).await?;
    let f = patch.apply(&current.fields)?;
    sqlx::query(
        "UPDATE clients SET first_name = $3, last_name = $4, email = $5, phone = $6, updated_at = $7
         WHERE company_id = $1 AND id = $2",
    )
    .bind(company.to_string())
    .bind(id.to_string())
    .bind(f.first_name)
    .bind(f.last_name)
    .bind(f.email)
    .bind(f.phone)
    .bind(now.as_millisecond())
    .execute(&mut *conn)
    .await?;
    get(conn, company, id).await
}

pub async fn add_refs(
    conn: &mut Tx,
    company: CompanyId,
    id: ClientId,
    new_refs: &[ExternalRef],
    now: Timestamp,
) -> Result<Client> {
    let conn: &mut Conn = conn;
    if !exists(conn, company, id).await? {
        return Err(StoreError::NotFound);
    }
    refs::attach(
        conn,
        company,
        Entity::Client,
        &id.to_string(),
        new_refs,
        now,
    )
    .await?;
    get(conn, company, id).await
}

/// Deletes a client that no case points at.
pub async fn delete(conn: &mut Tx, company: CompanyId, id: ClientId) -> Result<()> {
    let conn: &mut Conn = conn;
    let done = sqlx::query("DELETE FROM clients WHERE company_id = $1 AND id = $2")
        .bind(company.to_string())
        .bind(id.to_string())
        .execute(&mut *conn)
        .await
        .map_err(|e| {
            StoreError::from(e)
                .on_conflict(|| "this client still has cases; delete or reassign them first".into())
        })?;
    if done.rows_affected() == 0 {
        return Err(StoreError::NotFound);
    }
    refs::delete_for(conn, company, Entity::Client, &id.to_string()).await
}
