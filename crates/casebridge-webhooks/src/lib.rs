//! Outbound webhooks: signing, URL policy, the SSRF-safe client and the delivery handler.

pub mod outbox;
pub mod policy;
pub mod signing;
