//! What a page answers when it cannot do what was asked: sign in first, a refused form, a page
//! that does not exist, or a service that failed. Always a readable HTML page (never JSON).

use askama::Template;
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Redirect, Response};
use casebridge_app::AppError;

#[derive(Debug)]
pub enum UiError {
    /// No live session: go to the sign-in page, then back to `next`.
    SignIn {
        next: String,
    },
    /// A form without the right CSRF token (or an expired page).
    Csrf,
    TooLarge,
    App(AppError),
}

impl From<AppError> for UiError {
    fn from(e: AppError) -> Self {
        UiError::App(e)
    }
}

#[derive(Template)]
#[template(path = "error.html")]
struct ErrorPage<'a> {
    status: u16,
    title: &'a str,
    message: String,
    hint: &'a str,
}

/// A page with only a status and a message, for errors.
pub fn error_page(status: StatusCode, title: &str, message: String, hint: &str) -> Response {
    let page = ErrorPage {
        status: status.as_u16(),
        title,
        message,
        hint,
    };
    match page.render() {
        Ok(html) => (status, Html(html)).into_response(),
        Err(_) => (status, title.to_owned()).into_response(),
    }
}

impl IntoResponse for UiError {
    fn into_response(self) -> Response {
        match self {
            UiError::SignIn { next } => {
                let q = serde_urlencoded::to_string([("next", next.as_str())]).unwrap_or_default();
                Redirect::to(&format!("/ui/login?{q}")).into_response()
            }
            UiError::Csrf => error_page(
                StatusCode::FORBIDDEN,
                "This form has expired",
                "The form was not sent from this session's page, so nothing was changed.".into(),
                "Go back, reload the page and send the form again.",
            ),
            UiError::TooLarge => error_page(
                StatusCode::PAYLOAD_TOO_LARGE,
                "Too much data",
                "The form sent more data than a page of casebridge accepts.".into(),
                "Go back and shorten what you entered.",
            ),
            UiError::App(e) => {
                let (status, title, hint) = match &e {
                    AppError::NotFound(_) => (
                        StatusCode::NOT_FOUND,
                        "Not found",
                        "It may have been deleted, or belong to another company.",
                    ),
                    AppError::Unavailable(_) => (
                        StatusCode::SERVICE_UNAVAILABLE,
                        "Temporarily unavailable",
                        "Nothing was lost. Try again in a few seconds.",
                    ),
                    AppError::BadGateway(_) => (
                        StatusCode::BAD_GATEWAY,
                        "The other service answered with an error",
                        "Check the connection settings, then try again.",
                    ),
                    AppError::Internal(_) => (
                        StatusCode::INTERNAL_SERVER_ERROR,
                        "Something went wrong on our side",
                        "Nothing was changed. Try again; if it keeps happening, tell your casebridge operator.",
                    ),
                    AppError::Validation(_)
                    | AppError::BadRequest(_)
                    | AppError::Conflict(_)
                    | AppError::PayloadTooLarge(_)
                    | AppError::UnsupportedMediaType(_) => (
                        StatusCode::UNPROCESSABLE_ENTITY,
                        "That could not be done",
                        "Go back, correct it and try again.",
                    ),
                };
                let message = match &e {
                    AppError::Internal(detail) => {
                        tracing::error!(error = %detail, "admin UI page failed");
                        "An unexpected error stopped this page.".to_owned()
                    }
                    other => other.to_string(),
                };
                error_page(status, title, message, hint)
            }
        }
    }
}
