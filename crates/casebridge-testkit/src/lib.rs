//! Test support shared by every crate's integration tests.
//!
//! - [`TestDb`]: a fresh database per test, on SQLite (a temporary file) or PostgreSQL (a new
//!   database created on the server named by `CASEBRIDGE_TEST_POSTGRES_URL`, dropped afterwards;
//!   unset and with no server on 127.0.0.1:5432, on a throwaway cluster, [`cluster`]).
//! - [`backend_tests!`]: writes each test once and runs it on both backends.
//! - [`TestApp`]: the real HTTP server on `127.0.0.1:0` over a fresh database, with a company and
//!   its API key, plus a reqwest client.

mod app;
pub mod browser;
pub mod cluster;
mod db;
pub mod receiver;

pub use app::{Reply, TestApp, TestOptions};
pub use browser::{Browser, Page};
pub use db::{postgres_admin_url, TestBackend, TestDb, POSTGRES_ENV};
pub use receiver::Receiver;

/// Waits until `done` holds, checking every 20 ms; fails after `limit`, naming `what`. For
/// tests that wait for something to happen: a condition, never a fixed sleep.
pub async fn wait_until(
    limit: std::time::Duration,
    what: &str,
    mut done: impl AsyncFnMut() -> bool,
) {
    let deadline = tokio::time::Instant::now() + limit;
    while !done().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "not within {limit:?}: {what}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

/// Runs each test on SQLite and on PostgreSQL.
///
/// ```ignore
/// backend_tests! {
///     async fn creates_a_case(backend) {
///         let app = TestApp::start(backend).await;
///         ...
///     }
/// }
/// ```
/// expands to a module per test with `sqlite` and `postgres` test functions. A PostgreSQL
/// variant never passes without running: with `CASEBRIDGE_TEST_POSTGRES_URL=none` it fails,
/// naming `cargo test -- --skip ::postgres`, which leaves the variants out as libtest's
/// "filtered out" count (visible, and not counted as passed).
#[macro_export]
macro_rules! backend_tests {
    ($( $(#[$meta:meta])* async fn $name:ident($backend:ident) $body:block )*) => {
        $(
            mod $name {
                #[allow(unused_imports)]
                use super::*;

                $(#[$meta])*
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn sqlite() {
                    let $backend = $crate::TestBackend::Sqlite;
                    $body
                }

                $(#[$meta])*
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn postgres() {
                    $crate::TestBackend::require_postgres();
                    let $backend = $crate::TestBackend::Postgres;
                    $body
                }
            }
        )*
    };
}
