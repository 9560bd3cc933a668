//! Law Ruler: the lead and campaign APIs (public guide) and the modelled Advanced API.

pub mod client;
pub mod connection;
pub mod import;
pub mod inbound;
pub mod ingest;
pub mod lead;
pub mod outbound;
pub mod pull;
pub mod voice;

mod connector;

pub use connector::LawRuler;
