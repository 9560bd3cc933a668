use casebridge_domain::company::{CompanyPatch, NewCompany};
use casebridge_domain::ids::CompanyId;
use casebridge_domain::model::Company;
use jiff::Timestamp;
use sqlx::FromRow;

use crate::{parse_id, ts, Conn, Result};

#[derive(FromRow)]
struct Row {
    id: String,
    name: String,
    timezone: String,
    created_at: i64,
    updated_at: i64,
}

impl Row {
    fn into_model(self) -> Result<Company> {
        Ok(Company {
            id: parse_id("companies.id", &self.id)?,
            name: self.name,
            timezone: self.timezone,
            created_at: ts(self.created_at)?,
            updated_at: ts(self.updated_at)?,
        })
    }
}

pub async fn create(conn: &mut Conn, new: &NewCompany, now: Timestamp) -> Result<Company> {
    let id = CompanyId::new();
    let row: Row = sqlx::query_as(
        "INSERT INTO companies (id, name, timezone, created_at, updated_at)
         VALUES ($1, $2, $3, $4, $4) RETURNING id, name, timezone, created_at, updated_at",
    )
    .bind(id.to_string())
    .bind(new.name.as_str())
    .bind(new.timezone.as_str())
    .bind(now.as_millisecond())
    .fetch_one(&mut *conn)
    .await?;
    row.into_model()
}

pub async fn get(conn: &mut Conn, id: CompanyId) -> Result<Company> {
    let row: Row = sqlx::query_as(
        "SELECT id, name, timezone, created_at, updated_at FROM companies WHERE id = $1",
    )
    .bind(id.to_string())
    .fetch_one(&mut *conn)
    .await?;
    row.into_model()
}

pub async fn update(
    conn: &mut Conn,
    id: CompanyId,
    patch: &CompanyPatch,
    now: Timestamp,
) -> Result<Company> {
    let row: Row = sqlx::query_as(
        "UPDATE companies SET name = COALESCE($2, name), timezone = COALESCE($3, timezone),
                updated_at = $4
         WHERE id = $1 RETURNING id, name, timezone, created_at, updated_at",
    )
    .bind(id.to_string())
    .bind(patch.name.as_ref().map(|n| n.as_str().to_owned()))
    .bind(patch.timezone.as_ref().map(|t| t.as_str().to_owned()))
    .bind(now.as_millisecond())
    .fetch_one(&mut *conn)
    .await?;
    row.into_model()
}
