//! The client's errors, classified for the job queue (retry or not) and for the connect form
//! (which value is wrong). No variant ever holds a secret: messages are written here or taken
//! from Law Ruler's answers, never from the credentials.

use std::fmt;
use std::time::Duration;

use serde::Serialize;

/// One of the five values an admin enters to connect Law Ruler.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CredentialField {
    Username,
    Password,
    ClientRoot,
    ClientSecret,
    Key,
}

impl CredentialField {
    pub const ALL: [CredentialField; 5] = [
        Self::Username,
        Self::Password,
        Self::ClientRoot,
        Self::ClientSecret,
        Self::Key,
    ];

    /// The name used in APIs and error details: `username`, `password`, `client_root`,
    /// `client_secret`, `key`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Username => "username",
            Self::Password => "password",
            Self::ClientRoot => "client_root",
            Self::ClientSecret => "client_secret",
            Self::Key => "key",
        }
    }

    /// The label of the connect form's box: `Username`, …, `Client Root`, `Client Secret`, `Key`.
    pub fn label(self) -> &'static str {
        match self {
            Self::Username => "Username",
            Self::Password => "Password",
            Self::ClientRoot => "Client Root",
            Self::ClientSecret => "Client Secret",
            Self::Key => "Key",
        }
    }
}

impl fmt::Display for CredentialField {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl PartialEq<str> for CredentialField {
    fn eq(&self, other: &str) -> bool {
        self.as_str() == other
    }
}

impl PartialEq<&str> for CredentialField {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

/// What went wrong with a Law Ruler operation, classified so the queue knows whether to retry.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LawRulerError {
    /// A connection value is wrong (Key, credentials, Client Root). Retrying cannot help until an
    /// admin fixes the connection; surface it on the integration.
    #[error("Law Ruler configuration error ({field}): {message}")]
    Config {
        field: CredentialField,
        message: String,
    },
    /// HTTP 429. Retry after `retry_after` (from `Retry-After`), or the caller's own backoff.
    #[error("Law Ruler rate limit reached{}", fmt_retry_after(*.retry_after))]
    RateLimited { retry_after: Option<Duration> },
    /// 5xx, 408, a timeout or a connection failure: worth retrying.
    #[error("Law Ruler is unavailable: {0}")]
    Transient(String),
    /// Law Ruler understood the request and refused it (a failure body such as
    /// `Failed|Lead not found`, or a 4xx with a reason). Retrying the same request cannot help.
    #[error("Law Ruler rejected the request: {0}")]
    Rejected(String),
    /// An answer this client does not understand (not the modelled protocol). Not retried: it
    /// needs a person to look.
    #[error("unexpected answer from Law Ruler: {0}")]
    Unexpected(String),
}

impl LawRulerError {
    /// Whether the same request may succeed later (rate limit, transient failure).
    pub fn is_retryable(&self) -> bool {
        matches!(self, Self::RateLimited { .. } | Self::Transient(_))
    }

    /// The delay Law Ruler asked for, if it asked.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Self::RateLimited { retry_after } => *retry_after,
            _ => None,
        }
    }

    /// Whether this error means the connection itself is misconfigured.
    pub fn is_config(&self) -> bool {
        matches!(self, Self::Config { .. })
    }
}

/// Why connecting (verifying the five values) failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConnectError {
    /// One value is wrong; `message` says so in words for the admin (it never repeats a secret).
    #[error("{message}")]
    WrongValue {
        field: CredentialField,
        message: String,
    },
    /// Law Ruler did not answer in time or answered 5xx: the values may be right; try again.
    #[error("Law Ruler could not be reached: {0}")]
    Unreachable(String),
    /// Law Ruler's rate limit; try again after `retry_after`.
    #[error("Law Ruler rate limit reached{}", fmt_retry_after(*.retry_after))]
    RateLimited { retry_after: Option<Duration> },
    /// An answer that fits none of the above.
    #[error("unexpected answer from Law Ruler: {0}")]
    Unexpected(String),
}

impl ConnectError {
    /// The value that is wrong, if the error names one.
    pub fn field(&self) -> Option<CredentialField> {
        match self {
            Self::WrongValue { field, .. } => Some(*field),
            _ => None,
        }
    }
}

impl From<LawRulerError> for ConnectError {
    fn from(e: LawRulerError) -> Self {
        match e {
            LawRulerError::Config { field, message } => Self::WrongValue { field, message },
            LawRulerError::RateLimited { retry_after } => Self::RateLimited { retry_after },
            LawRulerError::Transient(m) => Self::Unreachable(m),
            LawRulerError::Rejected(m) | LawRulerError::Unexpected(m) => Self::Unexpected(m),
        }
    }
}

fn fmt_retry_after(d: Option<Duration>) -> String {
    match d {
        Some(d) => format!(" (retry after {} s)", d.as_secs_f64()),
        None => String::new(),
    }
}
