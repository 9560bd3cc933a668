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
            // The connection itself failed: the pool is exhausted or closed, the socket broke,
            // the server went away mid-conversation (a restart). Transient: a new connection
            // will be opened for the next request.
            sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::Io(_)
            | sqlx::Error::Tls(_)
            | sqlx::Error::Protocol(_)
            | sqlx::Error::WorkerCrashed => StoreError::Unavailable(e),
            sqlx::Error::Database(ref db) if db.is_unique_violation() => {
                StoreError::Conflict("a record with these values already exists".into())
            }
            sqlx::Error::Database(ref db) if db.is_foreign_key_violation() => {
                StoreError::Conflict("the record is referenced by other records".into())
            }
            // Contention, not a fault: SQLite busy/locked after busy_timeout; PostgreSQL
            // deadlock, lock timeout, serialization failure. The client may try again.
            sqlx::Error::Database(ref db) if is_transient(db.code().as_deref()) => {
                StoreError::Unavailable(e)
            }
            other => StoreError::Database(other),
        }
    }
}

/// Database error codes that describe a condition, not a bad request: the client may try again
/// and succeed once it passes.
///
/// - Contention: SQLite busy/locked after `busy_timeout` (5, 6); PostgreSQL deadlock, lock
///   timeout, serialization failure (40P01, 55P03, 40001).
/// - No room: SQLite "database or disk is full" (13) and its I/O errors (10 and the extended
///   codes built on it, such as 778 for a failed write); PostgreSQL disk full, out of memory,
///   too many connections (class 53).
/// - The server went away: PostgreSQL connection exceptions (class 08), administrator or crash
///   shutdown and "the database system is starting up" (57P01, 57P02, 57P03).
fn is_transient(code: Option<&str>) -> bool {
    let Some(code) = code else { return false };
    // SQLite reports its (extended) result code in decimal, at most four digits; PostgreSQL a
    // five-character SQLSTATE.
    if code.len() < 5 {
        // The primary result code is the low byte of an extended one.
        return code
            .parse::<i32>()
            .is_ok_and(|n| matches!(n & 0xff, 5 | 6 | 10 | 13));
    }
    matches!(
        code,
        "40P01" | "55P03" | "40001" | "57P01" | "57P02" | "57P03"
    ) || code.starts_with("08")
        || code.starts_with("53")
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
