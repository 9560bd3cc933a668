//! SmartAdvocate: the CaseSyncAPI client (documented authentication and case reads, modelled
//! catalog paths), the connection at rest, and the connector. This version connects (SA1) and
//! loads the catalog (SA2); webhooks, pushes, pulls and imports are not in it yet, and the
//! connector says so rather than pretending.

pub mod client;
pub mod connection;
mod connector;
pub mod outbound;
mod paths;

pub use client::SmartAdvocatePaths;
pub use connector::{second_status_id, SmartAdvocate, NOT_YET};

/// The provider name in integration rows, sync-log lines and AADs.
pub const PROVIDER: &str = "smartadvocate";
