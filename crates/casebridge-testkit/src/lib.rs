//! Test support shared by every crate's integration tests.
//!
//! - [`TestDb`]: a fresh database per test, on SQLite (a temporary file) or PostgreSQL (a new
//!   database created on the server named by `CASEBRIDGE_TEST_POSTGRES_URL`, dropped afterwards;
//!   unset and with no server on 127.0.0.1:5432, on a throwaway cluster, [`cluster`]).
//! - [`backend_test!`]: runs a test written once on both backends.
//! - [`TestApp`]: the real HTTP server on `127.0.0.1:0` over a fresh database, with a company and
//!   its API key, plus a reqwest client.
//! - [`S3Server`]: moto, a real S3-compatible server on loopback, for the object-store tests.
//! - [`CommitterHeld`]: holds a store's group committer, so that the units queued meanwhile make
//!   one batch.

mod app;
pub mod browser;
pub mod cluster;
mod db;
pub mod receiver;
pub mod s3;

pub use app::{Reply, TestApp, TestOptions};
pub use browser::{Browser, Page};
pub use db::{postgres_admin_url, TestBackend, TestDb, POSTGRES_ENV};
pub use receiver::Receiver;
pub use s3::S3Server;

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

/// A store's group committer held by a unit that waits until [`CommitterHeld::release`]: the
/// units queued meanwhile make the next batch, one transaction. The holding unit breaks the rule
/// for units (await nothing but statements on its transaction) on purpose; tests only.
pub struct CommitterHeld {
    release: tokio::sync::oneshot::Sender<()>,
    unit: tokio::task::JoinHandle<Result<(), casebridge_store::StoreError>>,
}

impl CommitterHeld {
    /// Returns once the holding unit runs (so the committer is busy with it). The store must
    /// be in the `Batched` mode (`Store::with_group_commit`, `TestOptions::group_commit`).
    pub async fn hold(store: &casebridge_store::Store) -> Self {
        assert_eq!(
            store.group_commit_mode(),
            casebridge_store::GroupCommit::Batched,
            "only a batching committer can be held"
        );
        let (release, held) = tokio::sync::oneshot::channel::<()>();
        let (running, is_running) = tokio::sync::oneshot::channel();
        let store = store.clone();
        let unit = tokio::spawn(async move {
            store
                .group_commit(move |_tx| {
                    Box::pin(async move {
                        running.send(()).expect("the holder waits");
                        held.await.expect("released, not dropped");
                        Ok(())
                    })
                })
                .await
        });
        is_running.await.expect("the holding unit runs");
        Self { release, unit }
    }

    /// Waits until `n` units in all were queued (counting the holder's and every earlier one:
    /// [`casebridge_store::GroupStats::submitted`]).
    pub async fn wait_queued(store: &casebridge_store::Store, n: u64) {
        wait_until(
            std::time::Duration::from_secs(20),
            "units queued for the group committer",
            async || store.group_stats().submitted >= n,
        )
        .await;
    }

    /// Lets the committer go on (the holder's batch commits) and waits for the holder's answer.
    pub async fn release(self) {
        self.release.send(()).expect("the holder waits");
        self.unit
            .await
            .expect("the holder does not panic")
            .expect("the holder's batch commits");
    }
}

/// Runs a test on both backends: `backend_test!(name)` after `async fn name(backend:
/// TestBackend) { … }` declares `name::sqlite` and `name::postgres`, each a multi-thread tokio
/// test calling `name` with its backend. The test is a plain function, so rustfmt formats its
/// body. The PostgreSQL variant fails with a clear message when PostgreSQL is disabled (see
/// [`TestBackend::require_postgres`]).
#[macro_export]
macro_rules! backend_test {
    ($name:ident) => {
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                super::$name($crate::TestBackend::Sqlite).await
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                $crate::TestBackend::require_postgres();
                super::$name($crate::TestBackend::Postgres).await
            }
        }
    };
}
