//! One error type for every use case. It says what went wrong in terms a caller can act on
//! (not found, conflict, invalid input, a dependency down); the HTTP layer and the admin UI each
//! map it to their own answer. Store errors are mapped here, in one place.

use casebridge_domain::ValidationError;
use casebridge_store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// The input could not be read at all (a malformed body or upload).
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    PayloadTooLarge(String),
    #[error("{0}")]
    UnsupportedMediaType(String),
    #[error("{0}")]
    Validation(#[from] ValidationError),
    /// Transient: the database or a service we depend on cannot answer now; try again.
    #[error("{0}")]
    Unavailable(String),
    /// A service we depend on (a CRM) answered with an error; the message says which and why.
    #[error("{0}")]
    BadGateway(String),
    #[error("internal error: {0}")]
    Internal(String),
}

pub type Result<T, E = AppError> = std::result::Result<T, E>;

impl AppError {
    pub fn not_found(what: &str, id: impl std::fmt::Display) -> Self {
        AppError::NotFound(format!("no {what} with id {id}"))
    }
}

impl From<StoreError> for AppError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound => AppError::NotFound("not found".into()),
            StoreError::Conflict(m) => AppError::Conflict(m),
            StoreError::Invalid(v) => AppError::Validation(v),
            StoreError::Unavailable(e) => AppError::Unavailable(e.to_string()),
            other => AppError::Internal(other.to_string()),
        }
    }
}

/// Names the missing record in a store's `NotFound`.
pub trait OrNotFound<T> {
    fn or_not_found(self, what: &str, id: &str) -> Result<T>;
}

impl<T> OrNotFound<T> for std::result::Result<T, StoreError> {
    fn or_not_found(self, what: &str, id: &str) -> Result<T> {
        self.map_err(|e| match e {
            StoreError::NotFound => AppError::not_found(what, id),
            other => other.into(),
        })
    }
}
