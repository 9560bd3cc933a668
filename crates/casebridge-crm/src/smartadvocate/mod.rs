//! SmartAdvocate: the CaseSyncAPI client (documented authentication and case reads, modelled
//! catalog and write paths), the connection at rest, the connector and the push. This version
//! connects (SA1), loads the catalog (SA2), and pushes mapped changes (SA3, SA4 push); webhooks,
//! pulls and imports are not in it yet, and the connector says so rather than pretending.

pub mod client;
pub mod connection;
mod connector;
pub mod outbound;
mod paths;

pub use client::SmartAdvocatePaths;
pub use connector::{second_status_id, SmartAdvocate, NOT_YET};

/// The provider name in integration rows, sync-log lines and AADs.
pub const PROVIDER: &str = "smartadvocate";
