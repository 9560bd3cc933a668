//! Pure domain types and rules for casebridge.
//!
//! Nothing in this crate performs I/O: no database, no network, no file system, no reading of the
//! wall clock except through [`clock::Clock`]. Inputs from the outside world are parsed into the
//! types here ("parse, don't validate"), so code that holds a [`records::NewCase`] knows it is valid.

#[macro_use]
mod text_enum;

pub mod activity;
pub mod clock;
pub mod company;
pub mod crm_ops;
pub mod dialer;
pub mod error;
pub mod events;
pub mod ids;
pub mod input;
pub mod integrations;
pub mod jobs;
pub mod model;
pub mod page;
pub mod records;
pub mod retry;
pub mod scheduling;
pub mod sync;

pub use error::{FieldError, ValidationError};
