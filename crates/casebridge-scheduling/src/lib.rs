//! Scheduling (SPEC §6): agents check availability and book appointments during a call through
//! a Cal.com API v2 compatible service, with the company's key and in the company's time zone.
//!
//! - [`calcom`]: the HTTP client for the three calls casebridge makes (`GET /v2/me`,
//!   `GET /v2/slots`, `POST /v2/bookings`) and the classification of their answers.
//! - [`slots`]: pure: slots in the company's zone, the nearest ones to a refused time.
//! - [`service`]: connect/disconnect a key, availability and booking over the store, the
//!   keyring and the client.
//!
//! Time-zone rules (types in `casebridge_domain::scheduling`): the company's IANA zone is used
//! for everything an agent reads or gives; the service is asked in UTC instants and its answers
//! are re-expressed from their instants, never from their wall-clock text.

pub mod calcom;
pub mod service;
pub mod slots;

pub use calcom::{CalClient, CalError};
pub use service::{
    AttendeeAsk, Availability, Booked, BookingAsk, ConnectionView, Scheduling, SchedulingError,
};
