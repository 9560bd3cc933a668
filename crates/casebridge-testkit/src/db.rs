use casebridge_store::{Store, StoreOptions};
use sqlx::{Connection, Executor, PgConnection};

/// Names the PostgreSQL server used by tests. Default: the local server CI uses.
/// `none` is refused (see [`TestBackend::require_postgres`]): a variant that did not run must
/// not be counted as passed.
pub const POSTGRES_ENV: &str = "CASEBRIDGE_TEST_POSTGRES_URL";
const DEFAULT_POSTGRES: &str = "postgres://postgres@127.0.0.1:5432/test";

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

/// The server URL tests create their databases on.
pub fn postgres_admin_url() -> String {
    std::env::var(POSTGRES_ENV)
        .ok()
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| DEFAULT_POSTGRES.to_owned())
}

/// A database that exists for one test.
pub struct TestDb {
    pub store: Store,
    pub url: String,
    pub backend: TestBackend,
    _dir: Option<tempfile::TempDir>,
    pg_name: Option<String>,
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
                }
            }
            TestBackend::Postgres => {
                let admin = postgres_admin_url();
                let name = format!("cb_test_{}", uuid::Uuid::new_v4().simple());
                let mut conn = PgConnection::connect(&admin).await.unwrap_or_else(|e| {
                    panic!(
                        "cannot reach PostgreSQL at {admin} ({e}); start it or set {POSTGRES_ENV}"
                    )
                });
                conn.execute(format!("CREATE DATABASE \"{name}\"").as_str())
                    .await
                    .expect("create test database");
                let _ = conn.close().await;
                let url = with_database(&admin, &name);
                let store = Store::connect(
                    &url,
                    StoreOptions {
                        max_connections: 8,
                        ..StoreOptions::default()
                    },
                )
                .await
                .expect("connect to test database");
                Self {
                    store,
                    url,
                    backend,
                    _dir: None,
                    pg_name: Some(name),
                }
            }
        }
    }

    /// A second, independent connection pool on the same database (as another process would have).
    pub async fn second_store(&self) -> Store {
        Store::connect(&self.url, StoreOptions::default())
            .await
            .expect("second pool")
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
                    let _ = conn
                        .execute(
                            format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)").as_str(),
                        )
                        .await;
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
}
