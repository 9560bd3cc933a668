//! Admin UI sign-in (SPEC §7): users made by `casebridge user create`, sessions, CSRF tokens
//! and a lock-out after repeated failures.
//!
//! The session cookie's value is a random token shown only to the browser; the database keeps
//! its SHA-256. Each session carries its own CSRF token, which every form of the admin UI sends
//! back. A session ends on sign-out, after [`IDLE_TIMEOUT`] without a request, and at the latest
//! [`SESSION_LIFETIME`] after sign-in.

use std::time::Duration;

use casebridge_crypto::{hash_token, random_token, verify_password};
use casebridge_domain::ids::{CompanyId, UserId};
use casebridge_store::admin_sessions as store;
use jiff::{SignedDuration, Timestamp};

use crate::{App, AppError, Result};

/// A session ends after this long without a request.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(30 * 60);
/// A session ends this long after sign-in, however active.
pub const SESSION_LIFETIME: Duration = Duration::from_secs(12 * 60 * 60);
/// Failed sign-ins in a row (per email) before sign-in is refused for [`LOCKOUT`].
pub const MAX_FAILURES: i64 = 5;
/// How long sign-in is refused after [`MAX_FAILURES`] failures in a row.
pub const LOCKOUT: Duration = Duration::from_secs(15 * 60);

/// A signed-in admin: who, for which company, and the CSRF token their forms must carry.
#[derive(Debug, Clone)]
pub struct AdminSession {
    pub user_id: UserId,
    pub company_id: CompanyId,
    pub email: String,
    pub csrf_token: String,
    pub expires_at: Timestamp,
}

/// A new session: the cookie value (shown once, to the browser) and the session it opens.
#[derive(Debug, Clone)]
pub struct SignedIn {
    pub token: String,
    pub session: AdminSession,
}

/// Why a sign-in was refused. Wrong email and wrong password read the same, so the answer does
/// not tell which emails have accounts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SignInRefused {
    WrongCredentials,
    /// Too many failures in a row; sign-in opens again at this time.
    Locked {
        until: Timestamp,
    },
}

fn span(d: Duration) -> SignedDuration {
    SignedDuration::try_from(d).expect("a constant duration fits")
}

fn normalise(email: &str) -> String {
    email.trim().to_lowercase()
}

/// Checks an email and password. Every failure, for a known email or not, counts towards the
/// lock-out of that email.
pub async fn sign_in(
    app: &App,
    email: &str,
    password: &str,
) -> Result<Result<SignedIn, SignInRefused>> {
    let email = normalise(email);
    let now = app.now();
    let mut conn = app.store().conn().await?;
    if let Some(until) = store::locked_until(&mut conn, &email, now).await? {
        return Ok(Err(SignInRefused::Locked { until }));
    }
    let user = store::credentials(&mut conn, &email).await?;
    drop(conn);
    // Argon2 takes tens of milliseconds of CPU: off the async threads. An unknown email is
    // checked against a fixed hash, so it takes as long as a known one.
    let phc = user
        .as_ref()
        .map_or_else(|| UNKNOWN_USER_HASH.clone(), |u| u.password_hash.clone());
    let password = password.to_owned();
    let ok = tokio::task::spawn_blocking(move || verify_password(&password, &phc))
        .await
        .map_err(|e| AppError::Internal(format!("password check: {e}")))?;
    let mut tx = app.store().begin().await?;
    let Some(user) = user.filter(|_| ok) else {
        let failures = store::record_failure(
            &mut tx,
            &email,
            MAX_FAILURES,
            span(LOCKOUT).as_millis() as i64,
            now,
        )
        .await?;
        tx.commit().await?;
        if failures >= MAX_FAILURES {
            return Ok(Err(SignInRefused::Locked {
                until: now + span(LOCKOUT),
            }));
        }
        return Ok(Err(SignInRefused::WrongCredentials));
    };
    store::clear_failures(&mut tx, &email).await?;
    store::prune(&mut tx, now).await?;
    let token = random_token();
    let csrf_token = random_token();
    let idle_until = now + span(IDLE_TIMEOUT);
    let expires_at = now + span(SESSION_LIFETIME);
    store::create(
        &mut tx,
        &hash_token(&token),
        &user,
        &csrf_token,
        now,
        idle_until,
        expires_at,
    )
    .await?;
    tx.commit().await?;
    Ok(Ok(SignedIn {
        token,
        session: AdminSession {
            user_id: user.user_id,
            company_id: user.company_id,
            email: user.email,
            csrf_token,
            expires_at,
        },
    }))
}

/// The live session for a cookie value, its idle deadline moved on; `None` when it ended or
/// never existed.
pub async fn session(app: &App, token: &str) -> Result<Option<AdminSession>> {
    let now = app.now();
    let hash = hash_token(token);
    let mut conn = app.store().conn().await?;
    let Some(s) = store::live(&mut conn, &hash, now).await? else {
        return Ok(None);
    };
    // Move the idle deadline at most once a minute, so a page with many requests writes once.
    let next = now + span(IDLE_TIMEOUT);
    if next.duration_since(s.idle_until) > SignedDuration::from_secs(60) {
        store::touch(&mut conn, &hash, next).await?;
    }
    Ok(Some(AdminSession {
        user_id: s.user_id,
        company_id: s.company_id,
        email: s.email,
        csrf_token: s.csrf_token,
        expires_at: s.expires_at,
    }))
}

/// Ends the session of this cookie value (nothing happens for an unknown one).
pub async fn sign_out(app: &App, token: &str) -> Result<()> {
    let mut conn = app.store().conn().await?;
    store::delete(&mut conn, &hash_token(token)).await?;
    Ok(())
}

/// Whether the admin UI should mark its cookies `Secure` (the public URL is https).
pub fn secure_cookies(app: &App) -> bool {
    app.public_url().is_some_and(|u| u.starts_with("https://"))
}

/// An Argon2id hash (the same parameters as real ones) of a random password nobody knows,
/// checked for unknown emails.
static UNKNOWN_USER_HASH: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    casebridge_crypto::hash_password(&random_token()).expect("hashing a random password")
});

/// A fresh token for a form that has no session yet (the sign-in form's double-submit token).
pub fn form_token() -> String {
    random_token()
}
