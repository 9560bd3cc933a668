use casebridge_domain::ids::{CompanyId, UserId};
use casebridge_domain::model::User;
use jiff::Timestamp;

use crate::{Conn, Result, StoreError};

/// Creates an admin-UI user; `password_hash` is an argon2 PHC string.
pub async fn create(
    conn: &mut Conn,
    company: CompanyId,
    email: &str,
    password_hash: &str,
    now: Timestamp,
) -> Result<User> {
    let id = UserId::new();
    let email = email.trim().to_lowercase();
    sqlx::query(
        "INSERT INTO users (id, company_id, email, password_hash, created_at)
         VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(id.to_string())
    .bind(company.to_string())
    .bind(&email)
    .bind(password_hash)
    .bind(now.as_millisecond())
    .execute(&mut *conn)
    .await
    .map_err(|e| {
        StoreError::from(e).on_conflict(|| format!("a user with email {email} already exists"))
    })?;
    Ok(User {
        id,
        company_id: company,
        email,
        created_at: now,
    })
}
