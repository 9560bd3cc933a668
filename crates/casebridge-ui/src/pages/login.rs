//! Sign in and sign out.

use askama::Template;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::Router;
use axum_extra::extract::cookie::CookieJar;
use casebridge_app::admin::{self, SignInRefused};

use serde::Deserialize;

use crate::error::UiError;
use crate::session::{self, LOGIN_COOKIE, SESSION_COOKIE};
use crate::view::{render, Form};
use crate::Ui;

pub fn routes() -> Router<Ui> {
    Router::new()
        .route("/login", get(form).post(sign_in))
        .route("/logout", post(sign_out))
}

#[derive(Template)]
#[template(path = "login.html")]
struct LoginPage {
    csrf: String,
    next: String,
    email: String,
    error: Option<String>,
}

#[derive(Deserialize)]
struct Next {
    next: Option<String>,
}

/// Only a path of this UI: never send a browser elsewhere after sign-in (open redirect).
fn safe_next(next: Option<&str>) -> String {
    match next {
        Some(n) if n.starts_with("/ui/") && !n.starts_with("//") && !n.contains('\\') => n.into(),
        _ => "/ui/".into(),
    }
}

async fn form(
    State(ui): State<Ui>,
    jar: CookieJar,
    Query(q): Query<Next>,
) -> Result<Response, UiError> {
    let csrf = admin::form_token();
    let page = LoginPage {
        csrf: csrf.clone(),
        next: safe_next(q.next.as_deref()),
        email: String::new(),
        error: None,
    };
    let jar = jar.add(session::cookie(&ui, LOGIN_COOKIE, csrf));
    Ok((jar, render(StatusCode::OK, &page)?).into_response())
}

#[derive(Deserialize)]
struct Credentials {
    #[serde(default)]
    email: String,
    #[serde(default)]
    password: String,
    next: Option<String>,
    #[allow(dead_code)]
    csrf: Option<String>,
}

async fn sign_in(
    State(ui): State<Ui>,
    jar: CookieJar,
    Form(f): Form<Credentials>,
) -> Result<Response, UiError> {
    let next = safe_next(f.next.as_deref());
    match admin::sign_in(&ui.app, &f.email, &f.password).await? {
        Ok(signed_in) => {
            let jar = jar
                .add(session::cookie(&ui, SESSION_COOKIE, signed_in.token))
                .add(session::removal(&ui, LOGIN_COOKIE));
            Ok((jar, Redirect::to(&next)).into_response())
        }
        Err(refused) => {
            let (status, error) = match refused {
                SignInRefused::WrongCredentials => (
                    StatusCode::UNAUTHORIZED,
                    "The email or password is not right. Check both and try again.".to_owned(),
                ),
                SignInRefused::Locked { until } => (
                    StatusCode::TOO_MANY_REQUESTS,
                    format!(
                        "Too many failed sign-ins for this email. Try again after {} UTC.",
                        until.strftime("%H:%M")
                    ),
                ),
            };
            let csrf = admin::form_token();
            let page = LoginPage {
                csrf: csrf.clone(),
                next,
                email: f.email,
                error: Some(error),
            };
            let jar = jar.add(session::cookie(&ui, LOGIN_COOKIE, csrf));
            Ok((jar, render(status, &page)?).into_response())
        }
    }
}

async fn sign_out(State(ui): State<Ui>, jar: CookieJar) -> Result<Response, UiError> {
    if let Some(c) = jar.get(SESSION_COOKIE) {
        admin::sign_out(&ui.app, c.value()).await?;
    }
    let jar = jar.add(session::removal(&ui, SESSION_COOKIE));
    Ok((jar, Redirect::to("/ui/login")).into_response())
}
