use casebridge_store::{Store, StoreOptions};
use sqlx::{Connection, Executor, PgConnection};

/// Names the PostgreSQL server used by tests. Default: the local server CI uses.
/// `none` is refused (see [`TestBackend::require_postgres`]): a variant that did not run must
/// not be counted as passed.
pub const POSTGRES_ENV: &str = "CASEBRIDGE_TEST_POSTGRES_URL";
const DEFAULT_POSTGRES: &str = "postgres://postgres@127.0.0.1:5432/test";
const DEFAULT_ADDR: &str = "127.0.0.1:5432";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TestBackend {
    Sqlite,
    Postgres,
}

impl TestBackend {
    /// Whether `CASEBRIDGE_TEST_POSTGRES_URL=none` asks to leave PostgreSQL out.
    pub fn postgres_disabled() -> bool {
        std::env::var(POSTGRES_ENV).is_ok_and(|v| v.eq_ignore_ascii_case("none"))
    }

    /// Called first by every PostgreSQL variant: with `CASEBRIDGE_TEST_POSTGRES_URL=none` the
    /// variant fails rather than pass without running, and says how to leave it out visibly.
    #[track_caller]
    pub fn require_postgres() {
        assert!(
            !Self::postgres_disabled(),
            "{POSTGRES_ENV}=none: this PostgreSQL variant did not run. To leave the PostgreSQL \
             variants out, unset the variable and run `cargo test --workspace -- --skip ::postgres` \
             (libtest reports them as filtered out); to run them, point {POSTGRES_ENV} at a server"
        );
    }
}

/// The server URL tests create their databases on: the one `CASEBRIDGE_TEST_POSTGRES_URL` names;
/// unset, the default local server if it answers, else a throwaway cluster this process starts
/// from the installed server binaries ([`crate::cluster`]; the panic names what to install when
/// there are none).
/// Chosen once per test process.
pub fn postgres_admin_url() -> String {
    static CHOSEN: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    CHOSEN
        .get_or_init(|| {
            if let Some(url) = std::env::var(POSTGRES_ENV).ok().filter(|v| !v.is_empty()) {
                return url;
            }
            if crate::cluster::answers(DEFAULT_ADDR) {
                return DEFAULT_POSTGRES.to_owned();
            }
            crate::cluster::throwaway_cluster_url().to_owned()
        })
        .clone()
}

/// How many PostgreSQL test databases one test process holds at once. A test holds at most
/// about 20 connections (its pool and a second one of 8 each, a spawned server's 4), so the
/// suite stays well inside the server's default `max_connections` of 100 at any core count.
pub const POSTGRES_AT_ONCE: usize = 4;
static POSTGRES_SLOTS: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(POSTGRES_AT_ONCE);
/// Connections in each pool a test opens on PostgreSQL.
pub const POSTGRES_POOL: u32 = 8;
/// Test databases are named `cb_test_<unix seconds>_<uuid>`; leftovers older than this (a test
/// process that was killed) are dropped by the next test process.
const LEFTOVER_AGE_SECS: u64 = 3 * 3600;
const PREFIX: &str = "cb_test_";

/// A database that exists for one test.
pub struct TestDb {
    pub store: Store,
    pub url: String,
    pub backend: TestBackend,
    _dir: Option<tempfile::TempDir>,
    pg_name: Option<String>,
    _slot: Option<tokio::sync::SemaphorePermit<'static>>,
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs()
}

/// Drops the test databases killed test processes left behind (once per process).
async fn sweep_leftovers(conn: &mut PgConnection) {
    static SWEPT: tokio::sync::OnceCell<()> = tokio::sync::OnceCell::const_new();
    SWEPT
        .get_or_init(|| async {
            let names: Vec<(String,)> = sqlx::query_as(
                "SELECT datname FROM pg_database WHERE datname LIKE 'cb\\_test\\_%'",
            )
            .fetch_all(&mut *conn)
            .await
            .unwrap_or_default();
            let cutoff = unix_now().saturating_sub(LEFTOVER_AGE_SECS);
            for (name,) in names {
                if created_secs(&name).is_some_and(|at| at < cutoff) {
                    drop_database(conn, &name).await;
                }
            }
        })
        .await;
}

/// Drops a test database, closing whatever is still connected to it.
async fn drop_database(conn: &mut PgConnection, name: &str) {
    let _ = conn
        .execute(format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)").as_str())
        .await;
}

/// When a test database was created, from its name.
fn created_secs(name: &str) -> Option<u64> {
    name.strip_prefix(PREFIX)?.split_once('_')?.0.parse().ok()
}

impl TestDb {
    /// A fresh, migrated database.
    pub async fn new(backend: TestBackend) -> Self {
        let db = Self::empty(backend).await;
        db.store.migrate().await.expect("migrations apply");
        db
    }

    /// A fresh database without migrations.
    pub async fn empty(backend: TestBackend) -> Self {
        match backend {
            TestBackend::Sqlite => {
                let dir = tempfile::tempdir().expect("temp dir");
                let url = format!("sqlite://{}/test.db?mode=rwc", dir.path().display());
                let store = Store::connect(&url, StoreOptions::default())
                    .await
                    .expect("open sqlite");
                Self {
                    store,
                    url,
                    backend,
                    _dir: Some(dir),
                    pg_name: None,
                    _slot: None,
                }
            }
            TestBackend::Postgres => {
                let slot = tokio::time::timeout(
                    std::time::Duration::from_secs(600),
                    POSTGRES_SLOTS.acquire(),
                )
                .await
                .unwrap_or_else(|_| {
                    panic!(
                        "waited 10 minutes for one of {POSTGRES_AT_ONCE} PostgreSQL test \
                         databases (does a test hold more than one?)"
                    )
                })
                .expect("semaphore open");
                let admin = postgres_admin_url();
                let name = format!("{PREFIX}{}_{}", unix_now(), uuid::Uuid::new_v4().simple());
                let mut conn = PgConnection::connect(&admin).await.unwrap_or_else(|e| {
                    panic!(
                        "cannot reach PostgreSQL at {admin} ({e}); start it or set {POSTGRES_ENV}"
                    )
                });
                sweep_leftovers(&mut conn).await;
                conn.execute(format!("CREATE DATABASE \"{name}\"").as_str())
                    .await
                    .expect("create test database");
                let _ = conn.close().await;
                let url = with_database(&admin, &name);
                let store = Store::connect(&url, pool_options())
                    .await
                    .expect("connect to test database");
                Self {
                    store,
                    url,
                    backend,
                    _dir: None,
                    pg_name: Some(name),
                    _slot: Some(slot),
                }
            }
        }
    }

    /// A second, independent connection pool on the same database (as another process would have).
    pub async fn second_store(&self) -> Store {
        Store::connect(&self.url, pool_options())
            .await
            .expect("second pool")
    }
}

fn pool_options() -> StoreOptions {
    StoreOptions {
        max_connections: POSTGRES_POOL,
        ..StoreOptions::default()
    }
}

/// Replaces the database name (the URL path) in a PostgreSQL URL.
fn with_database(url: &str, name: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (url, None),
    };
    let scheme_end = base.find("://").map(|i| i + 3).unwrap_or(0);
    let host_end = base[scheme_end..]
        .find('/')
        .map(|i| i + scheme_end)
        .unwrap_or(base.len());
    let mut out = format!("{}/{}", &base[..host_end], name);
    if let Some(q) = query {
        out.push('?');
        out.push_str(q);
    }
    out
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let Some(name) = self.pg_name.take() else {
            return;
        };
        // Drop runs outside async; use a short-lived runtime on its own thread.
        let admin = postgres_admin_url();
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(async move {
                if let Ok(mut conn) = PgConnection::connect(&admin).await {
                    drop_database(&mut conn, &name).await;
                    let _ = conn.close().await;
                }
            });
        })
        .join();
    }
}

#[cfg(test)]
mod tests {
    use super::{with_database, TestBackend, POSTGRES_ENV};

    #[test]
    fn none_fails_a_postgres_variant_instead_of_passing_it() {
        // The only test in this binary that reads the variable.
        std::env::set_var(POSTGRES_ENV, "none");
        let refused = std::panic::catch_unwind(TestBackend::require_postgres);
        std::env::remove_var(POSTGRES_ENV);
        let message = refused.expect_err("a variant that did not run must fail");
        let message = message.downcast_ref::<String>().expect("a message");
        assert!(message.contains("--skip ::postgres"), "{message}");
        TestBackend::require_postgres();
    }

    #[test]
    fn replaces_the_database_name() {
        assert_eq!(
            with_database("postgres://postgres@127.0.0.1:5432/test", "x"),
            "postgres://postgres@127.0.0.1:5432/x"
        );
        assert_eq!(
            with_database("postgres://u@h/test?sslmode=disable", "x"),
            "postgres://u@h/x?sslmode=disable"
        );
        assert_eq!(with_database("postgres://u@h", "x"), "postgres://u@h/x");
    }

    #[test]
    fn leftover_ages_come_from_the_name() {
        assert_eq!(
            super::created_secs("cb_test_1764640000_0123456789abcdef0123456789abcdef"),
            Some(1_764_640_000)
        );
        assert_eq!(super::created_secs("cb_test_0123456789abcdef"), None);
        assert_eq!(super::created_secs("casebridge"), None);
    }
}
