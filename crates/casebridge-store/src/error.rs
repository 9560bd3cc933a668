use casebridge_domain::ValidationError;

/// What can go wrong in the store, classified so the API can answer with the right status.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("not found")]
    NotFound,
    /// A uniqueness rule or a reference from another record stops the change.
    #[error("{0}")]
    Conflict(String),
    /// Input that refers to something that does not exist in this company.
    #[error(transparent)]
    Invalid(#[from] ValidationError),
    /// The database could not be reached in time (pool exhausted or down).
    #[error("database unavailable: {0}")]
    Unavailable(#[source] sqlx::Error),
    #[error("database error: {0}")]
    Database(#[source] sqlx::Error),
    #[error("stored data is not valid: {0}")]
    Corrupt(String),
    #[error("migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("configuration: {0}")]
    Config(String),
}

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        match e {
            sqlx::Error::RowNotFound => StoreError::NotFound,
            sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::Io(_) => {
                StoreError::Unavailable(e)
            }
            sqlx::Error::Database(ref db) if db.is_unique_violation() => {
                StoreError::Conflict("a record with these values already exists".into())
            }
            sqlx::Error::Database(ref db) if db.is_foreign_key_violation() => {
                StoreError::Conflict("the record is referenced by other records".into())
            }
            // Contention, not a fault: SQLite busy/locked after busy_timeout; PostgreSQL
            // deadlock, lock timeout, serialization failure. The client may try again.
            sqlx::Error::Database(ref db)
                if matches!(
                    db.code().as_deref(),
                    Some("5" | "6" | "40P01" | "55P03" | "40001")
                ) =>
            {
                StoreError::Unavailable(e)
            }
            other => StoreError::Database(other),
        }
    }
}

impl StoreError {
    /// Replaces the generic message of a uniqueness conflict with one that names the field.
    pub(crate) fn on_conflict(self, message: impl FnOnce() -> String) -> Self {
        match self {
            StoreError::Conflict(_) => StoreError::Conflict(message()),
            other => other,
        }
    }
}
