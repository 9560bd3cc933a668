//! SmartAdvocate: the CaseSyncAPI client (documented authentication and case reads, modelled
//! catalog and write paths), the connection at rest, the connector and the push. This version
//! connects (SA1), loads the catalog (SA2), pushes mapped changes (SA3, SA4 push), pulls cases,
//! contacts, notes and documents changed since a cursor (`pull`, `documents`; SA4), takes the
//! cases firms push to
//! `POST /hooks/smartadvocate/{token}` and imports existing cases (`import`); all three apply a
//! case through `record`. File imports are not in it, and the connector says so.

pub mod client;
pub mod connection;
mod connector;
pub mod documents;
pub mod import;
pub mod outbound;
mod paths;
pub mod pull;
pub mod record;

pub use client::SmartAdvocatePaths;
pub use connector::{second_status_id, SmartAdvocate, NOT_YET};

/// The provider name in integration rows, sync-log lines and AADs.
pub const PROVIDER: &str = "smartadvocate";
