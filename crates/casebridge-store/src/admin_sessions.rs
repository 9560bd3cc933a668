//! Admin UI sign-in: users by email, sessions by the hash of their cookie value, and the count
//! of failed sign-ins in a row per email.

use casebridge_domain::ids::{CompanyId, UserId};
use jiff::Timestamp;
use sqlx::FromRow;

use crate::{for_update, parse_id, Conn, Result};

/// A user as the sign-in check needs it.
#[derive(Debug, Clone)]
pub struct Credentials {
    pub user_id: UserId,
    pub company_id: CompanyId,
    pub email: String,
    pub password_hash: String,
}

/// A live session.
#[derive(Debug, Clone)]
pub struct Session {
    pub user_id: UserId,
    pub company_id: CompanyId,
    pub email: String,
    pub csrf_token: String,
    pub idle_until: Timestamp,
    pub expires_at: Timestamp,
}

#[derive(FromRow)]
struct CredRow {
    id: String,
    company_id: String,
    email: String,
    password_hash: String,
}

/// The user with this (already normalised) email.
pub async fn credentials(conn: &mut Conn, email: &str) -> Result<Option<Credentials>> {
    let row: Option<CredRow> =
        sqlx::query_as("SELECT id, company_id, email, password_hash FROM users WHERE email = $1")
            .bind(email)
            .fetch_optional(&mut *conn)
            .await?;
    row.map(|r| {
        Ok(Credentials {
            user_id: parse_id("users.id", &r.id)?,
            company_id: parse_id("users.company_id", &r.company_id)?,
            email: r.email,
            password_hash: r.password_hash,
        })
    })
    .transpose()
}

/// Until when sign-in is refused for this email (`None`: not locked).
pub async fn locked_until(
    conn: &mut Conn,
    email: &str,
    now: Timestamp,
) -> Result<Option<Timestamp>> {
    let until: Option<i64> = sqlx::query_scalar(&format!(
        "SELECT locked_until FROM admin_login_failures WHERE email = $1{}",
        for_update(conn)
    ))
    .bind(email)
    .fetch_optional(&mut *conn)
    .await?;
    until
        .filter(|&ms| ms > now.as_millisecond())
        .map(crate::ts)
        .transpose()
}

/// Counts one more failed sign-in for `email` (starting again after a lock has ended); from the
/// `threshold`-th failure in a row on, the email is locked for `lock_ms`. Returns the failures
/// in a row.
pub async fn record_failure(
    conn: &mut Conn,
    email: &str,
    threshold: i64,
    lock_ms: i64,
    now: Timestamp,
) -> Result<i64> {
    // A lock that has ended starts the count again.
    let failures: i64 = sqlx::query_scalar(
        "INSERT INTO admin_login_failures (email, failures, locked_until) VALUES ($1, 1, 0)
         ON CONFLICT (email) DO UPDATE SET
             failures = CASE WHEN admin_login_failures.locked_until > 0
                                  AND admin_login_failures.locked_until <= $2
                             THEN 1 ELSE admin_login_failures.failures + 1 END,
             locked_until = CASE WHEN admin_login_failures.locked_until <= $2
                                 THEN 0 ELSE admin_login_failures.locked_until END
         RETURNING failures",
    )
    .bind(email)
    .bind(now.as_millisecond())
    .fetch_one(&mut *conn)
    .await?;
    if failures >= threshold {
        sqlx::query("UPDATE admin_login_failures SET locked_until = $2 WHERE email = $1")
            .bind(email)
            .bind(now.as_millisecond() + lock_ms)
            .execute(&mut *conn)
            .await?;
    }
    Ok(failures)
}

/// Forgets the failed sign-ins of `email` (after a successful one).
pub async fn clear_failures(conn: &mut Conn, email: &str) -> Result<()> {
    sqlx::query("DELETE FROM admin_login_failures WHERE email = $1")
        .bind(email)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// Stores a new session.
pub async fn create(
    conn: &mut Conn,
    token_hash: &str,
    user: &Credentials,
    csrf_token: &str,
    now: Timestamp,
    idle_until: Timestamp,
    expires_at: Timestamp,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO admin_sessions
             (token_hash, user_id, company_id, csrf_token, created_at, idle_until, expires_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(token_hash)
    .bind(user.user_id.to_string())
    .bind(user.company_id.to_string())
    .bind(csrf_token)
    .bind(now.as_millisecond())
    .bind(idle_until.as_millisecond())
    .bind(expires_at.as_millisecond())
    .execute(&mut *conn)
    .await?;
    Ok(())
}

#[derive(FromRow)]
struct SessionRow {
    user_id: String,
    company_id: String,
    email: String,
    csrf_token: String,
    idle_until: i64,
    expires_at: i64,
}

/// The session with this token hash, if it has neither expired nor idled out at `now`.
pub async fn live(conn: &mut Conn, token_hash: &str, now: Timestamp) -> Result<Option<Session>> {
    let row: Option<SessionRow> = sqlx::query_as(
        "SELECT s.user_id, s.company_id, u.email, s.csrf_token, s.idle_until, s.expires_at
         FROM admin_sessions s JOIN users u ON u.id = s.user_id
         WHERE s.token_hash = $1 AND s.idle_until > $2 AND s.expires_at > $2",
    )
    .bind(token_hash)
    .bind(now.as_millisecond())
    .fetch_optional(&mut *conn)
    .await?;
    row.map(|r| {
        Ok(Session {
            user_id: parse_id("admin_sessions.user_id", &r.user_id)?,
            company_id: parse_id("admin_sessions.company_id", &r.company_id)?,
            email: r.email,
            csrf_token: r.csrf_token,
            idle_until: crate::ts(r.idle_until)?,
            expires_at: crate::ts(r.expires_at)?,
        })
    })
    .transpose()
}

/// Moves a session's idle deadline (never past its absolute expiry).
pub async fn touch(conn: &mut Conn, token_hash: &str, idle_until: Timestamp) -> Result<()> {
    sqlx::query(
        "UPDATE admin_sessions SET idle_until = CASE WHEN $2 < expires_at THEN $2 ELSE expires_at END
         WHERE token_hash = $1",
    )
    .bind(token_hash)
    .bind(idle_until.as_millisecond())
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Ends a session (sign out).
pub async fn delete(conn: &mut Conn, token_hash: &str) -> Result<()> {
    sqlx::query("DELETE FROM admin_sessions WHERE token_hash = $1")
        .bind(token_hash)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// Deletes sessions that ended before `now`; returns how many.
pub async fn prune(conn: &mut Conn, now: Timestamp) -> Result<u64> {
    let done = sqlx::query("DELETE FROM admin_sessions WHERE expires_at <= $1 OR idle_until <= $1")
        .bind(now.as_millisecond())
        .execute(&mut *conn)
        .await?;
    Ok(done.rows_affected())
}
