//! CRM adapters. Everything we only *model* about a CRM's protocol (endpoint paths, parameter
//! names, failure bodies) lives in that CRM's module, with the paths in configuration, so a
//! correction touches one place. [`connector`] is the one interface the service layer uses.

pub mod conflicts;
pub mod connector;
pub mod counters;
pub mod ingest;
pub mod lawruler;
pub mod outbox;
pub mod pull;
pub mod smartadvocate;

pub use connector::{Connector, Connectors, IngestError, PlannedRequest, PlatformChange};
