//! Simulators of the external services casebridge talks to. Each behaves like the real service
//! where casebridge depends on it (authentication, validation, rate limits, error bodies) and adds
//! what tests need: injected faults, a request log, and a settable clock. [`receiver`] stands in for
//! a firm's server that receives casebridge's webhooks and verifies their signatures.

pub mod lawruler;
pub mod receiver;
pub mod scheduling;
pub mod smartadvocate;
