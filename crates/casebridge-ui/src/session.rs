//! Who is signed in, and the CSRF check every form passes.
//!
//! The session cookie (`cb_session`) is HttpOnly, `SameSite=Strict`, scoped to `/ui`, and
//! `Secure` when the public URL is https. Every request that changes something (any method but
//! GET and HEAD) must carry the session's CSRF token, as the form field `csrf` or the
//! `X-CSRF-Token` header (a file upload, which is streamed, carries it in its action URL);
//! [`require_csrf`] checks it before any handler runs, so no form can forget it. The sign-in form, which has no session yet, is protected the same way by a token
//! in a short-lived cookie of its own (double submit).

use axum::body::Body;
use axum::extract::{FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{header, Method};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum_extra::extract::cookie::{Cookie, CookieJar, SameSite};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use casebridge_app::admin::{self, AdminSession};
use casebridge_app::App;
use casebridge_domain::model::Company;

use crate::error::UiError;
use crate::Ui;

pub const SESSION_COOKIE: &str = "cb_session";
pub const LOGIN_COOKIE: &str = "cb_login";
pub const FLASH_COOKIE: &str = "cb_flash";

/// The largest form body the CSRF check reads (forms are small; uploads are not forms here).
const MAX_FORM_BYTES: usize = 256 * 1024;

/// A signed-in admin, with their company (name and time zone for every page).
#[derive(Debug, Clone)]
pub struct Admin {
    pub session: AdminSession,
    pub company: Company,
    /// A one-time notice from the previous action ("Webhook saved."), shown once.
    pub flash: Option<String>,
}

impl FromRequestParts<Ui> for Admin {
    type Rejection = UiError;

    async fn from_request_parts(parts: &mut Parts, ui: &Ui) -> Result<Self, Self::Rejection> {
        let session = match parts.extensions.get::<AdminSession>() {
            Some(s) => s.clone(),
            None => {
                let jar = CookieJar::from_headers(&parts.headers);
                match session_of(&ui.app, &jar).await? {
                    Some(s) => s,
                    None => {
                        let next = parts
                            .extensions
                            .get::<axum::extract::OriginalUri>()
                            .and_then(|u| u.path_and_query())
                            .map_or("/ui/", |p| p.as_str())
                            .to_owned();
                        return Err(UiError::SignIn { next });
                    }
                }
            }
        };
        let company = casebridge_app::company::get(&ui.app, session.company_id).await?;
        let flash = CookieJar::from_headers(&parts.headers)
            .get(FLASH_COOKIE)
            .and_then(|c| URL_SAFE_NO_PAD.decode(c.value()).ok())
            .and_then(|b| String::from_utf8(b).ok())
            .filter(|v| !v.is_empty());
        Ok(Admin {
            session,
            company,
            flash,
        })
    }
}

async fn session_of(app: &App, jar: &CookieJar) -> Result<Option<AdminSession>, UiError> {
    match jar.get(SESSION_COOKIE) {
        Some(c) if !c.value().is_empty() => Ok(admin::session(app, c.value()).await?),
        _ => Ok(None),
    }
}

/// A cookie of the admin UI: HttpOnly, `SameSite=Strict`, scoped to `/ui`, `Secure` on https.
pub fn cookie(ui: &Ui, name: &'static str, value: String) -> Cookie<'static> {
    Cookie::build((name, value))
        .path("/ui")
        .http_only(true)
        .same_site(SameSite::Strict)
        .secure(ui.secure_cookies)
        .build()
}

/// The same cookie, expired (to remove it).
pub fn removal(ui: &Ui, name: &'static str) -> Cookie<'static> {
    let mut c = cookie(ui, name, String::new());
    c.make_removal();
    c
}

/// Middleware: a request that changes something must carry the right CSRF token, or it is
/// refused with 403 and nothing runs. A request without a session is sent to sign in.
pub async fn require_csrf(State(ui): State<Ui>, req: Request, next: Next) -> Response {
    if matches!(*req.method(), Method::GET | Method::HEAD) {
        return next.run(req).await;
    }
    let jar = CookieJar::from_headers(req.headers());
    // Mounted under `/ui`, the path seen here has the prefix removed.
    let login = matches!(req.uri().path(), "/login" | "/ui/login");
    let (expected, session) = if login {
        match jar.get(LOGIN_COOKIE) {
            Some(c) if !c.value().is_empty() => (c.value().to_owned(), None),
            _ => return UiError::Csrf.into_response(),
        }
    } else {
        match session_of(&ui.app, &jar).await {
            Ok(Some(s)) => (s.csrf_token.clone(), Some(s)),
            Ok(None) => {
                return UiError::SignIn {
                    next: "/ui/".into(),
                }
                .into_response()
            }
            Err(e) => return e.into_response(),
        }
    };
    let header_token = req
        .headers()
        .get("x-csrf-token")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let content_type = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let (mut parts, body) = req.into_parts();
    // A file upload (multipart) is streamed to its handler, not read here: its form carries the
    // token in its action URL (`?csrf=…`) instead of a field.
    if content_type.starts_with("multipart/form-data") {
        let query_token = parts
            .uri
            .query()
            .and_then(|q| form_urlencoded_field(q.as_bytes(), "csrf"));
        if !header_token
            .or(query_token)
            .is_some_and(|g| constant_time_eq(g.as_bytes(), expected.as_bytes()))
        {
            return UiError::Csrf.into_response();
        }
        if let Some(s) = session {
            parts.extensions.insert(s);
        }
        return next.run(Request::from_parts(parts, body)).await;
    }
    let bytes = match axum::body::to_bytes(body, MAX_FORM_BYTES).await {
        Ok(b) => b,
        Err(_) => return UiError::TooLarge.into_response(),
    };
    let form_token = content_type
        .starts_with("application/x-www-form-urlencoded")
        .then(|| form_urlencoded_field(&bytes, "csrf"))
        .flatten();
    let given = header_token.or(form_token);
    if !given.is_some_and(|g| constant_time_eq(g.as_bytes(), expected.as_bytes())) {
        return UiError::Csrf.into_response();
    }
    if let Some(s) = session {
        parts.extensions.insert(s);
    }
    next.run(Request::from_parts(parts, Body::from(bytes)))
        .await
}

fn form_urlencoded_field(body: &[u8], name: &str) -> Option<String> {
    serde_urlencoded::from_bytes::<Vec<(String, String)>>(body)
        .ok()?
        .into_iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v)
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}
