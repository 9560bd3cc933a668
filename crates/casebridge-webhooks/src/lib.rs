//! Outbound webhooks: signing, URL policy, the SSRF-safe client and the delivery handler.

pub mod cache;
pub mod delivery;
pub mod outbox;
pub mod policy;
pub mod retention;
pub mod signing;
