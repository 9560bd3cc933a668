//! One error type for every handler. 4xx answers carry a stable code and a readable message;
//! 5xx answers are logged here, once, with their cause, and returned opaque. Service errors
//! (`AppError`) map to it one to one.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use casebridge_app::AppError;
use casebridge_domain::{FieldError, ValidationError};
use serde::Serialize;
use utoipa::ToSchema;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    BadRequest(String),
    /// The URL's path could not be read (a segment that is not UTF-8).
    #[error("{0}")]
    BadPath(String),
    #[error("{0}")]
    Unauthorized(String),
    #[error("{0}")]
    NotFound(String),
    #[error("this route does not accept that method")]
    MethodNotAllowed,
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    PayloadTooLarge(String),
    #[error("{0}")]
    UriTooLong(String),
    #[error("{0}")]
    UnsupportedMediaType(String),
    #[error("{0}")]
    Validation(#[from] ValidationError),
    #[error("{0}")]
    Unavailable(String),
    /// A service we depend on (a CRM) answered with an error; the message says which and why.
    #[error("{0}")]
    BadGateway(String),
    #[error("internal error: {0}")]
    Internal(String),
}

/// Seconds a client should wait before trying again after a 503 (`Retry-After`).
pub const RETRY_AFTER_SECONDS: u32 = 5;

/// The error envelope: `{"error": {"code", "message", "details"}}`, the same for every error of
/// every layer (routing, extractors, body limits, handlers, panics).
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorDetail {
    /// Stable, machine-readable: `malformed_json` (400: a body, form or upload that cannot be
    /// read), `bad_path` (400), `unauthorized` (401), `not_found` (404), `method_not_allowed`
    /// (405), `conflict` (409), `payload_too_large` (413), `uri_too_long` (414),
    /// `unsupported_media_type` (415), `validation_failed` (422), `internal_error` (500),
    /// `upstream_error` (502), `unavailable` (503, with `Retry-After`).
    pub code: &'static str,
    pub message: String,
    /// For `validation_failed`: every failing field. Empty for every other code.
    #[schema(value_type = Vec<FieldErrorOut>)]
    pub details: Vec<FieldError>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct FieldErrorOut {
    pub field: String,
    pub message: String,
}

impl ApiError {
    pub fn not_found(what: &str, id: impl std::fmt::Display) -> Self {
        ApiError::NotFound(format!("no {what} with id {id}"))
    }

    fn parts(&self) -> (StatusCode, &'static str) {
        match self {
            ApiError::BadRequest(_) => (StatusCode::BAD_REQUEST, "malformed_json"),
            ApiError::BadPath(_) => (StatusCode::BAD_REQUEST, "bad_path"),
            ApiError::Unauthorized(_) => (StatusCode::UNAUTHORIZED, "unauthorized"),
            ApiError::NotFound(_) => (StatusCode::NOT_FOUND, "not_found"),
            ApiError::MethodNotAllowed => (StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed"),
            ApiError::Conflict(_) => (StatusCode::CONFLICT, "conflict"),
            ApiError::PayloadTooLarge(_) => (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large"),
            ApiError::UriTooLong(_) => (StatusCode::URI_TOO_LONG, "uri_too_long"),
            ApiError::UnsupportedMediaType(_) => {
                (StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type")
            }
            ApiError::Validation(_) => (StatusCode::UNPROCESSABLE_ENTITY, "validation_failed"),
            ApiError::Unavailable(_) => (StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
            ApiError::BadGateway(_) => (StatusCode::BAD_GATEWAY, "upstream_error"),
            ApiError::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal_error"),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code) = self.parts();
        let (message, details) = match self {
            ApiError::Internal(cause) => {
                tracing::error!(error = %cause, "request failed");
                ("something went wrong on our side".to_owned(), Vec::new())
            }
            ApiError::Unavailable(cause) => {
                tracing::warn!(error = %cause, "dependency unavailable");
                (
                    "the service is temporarily unavailable; try again".to_owned(),
                    Vec::new(),
                )
            }
            ApiError::Validation(v) => (v.to_string(), v.errors),
            other => (other.to_string(), Vec::new()),
        };
        let body = ErrorBody {
            error: ErrorDetail {
                code,
                message,
                details,
            },
        };
        let mut resp = (status, axum::Json(body)).into_response();
        if status == StatusCode::SERVICE_UNAVAILABLE {
            resp.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(RETRY_AFTER_SECONDS));
        }
        resp
    }
}

impl From<AppError> for ApiError {
    fn from(e: AppError) -> Self {
        match e {
            AppError::BadRequest(m) => ApiError::BadRequest(m),
            AppError::NotFound(m) => ApiError::NotFound(m),
            AppError::Conflict(m) => ApiError::Conflict(m),
            AppError::PayloadTooLarge(m) => ApiError::PayloadTooLarge(m),
            AppError::UnsupportedMediaType(m) => ApiError::UnsupportedMediaType(m),
            AppError::Validation(v) => ApiError::Validation(v),
            AppError::Unavailable(m) => ApiError::Unavailable(m),
            AppError::BadGateway(m) => ApiError::BadGateway(m),
            AppError::Internal(m) => ApiError::Internal(m),
        }
    }
}
