//! The only crate that contains SQL.
//!
//! One store API over two backends through sqlx's `Any` driver: SQLite (the embedded default) and
//! PostgreSQL (for scale-out). Queries are written once, in the common dialect (`$1` parameters,
//! `ON CONFLICT`, `RETURNING`); the few places where the backends must differ (job claiming, write
//! transactions) branch on [`Backend`]. Times are stored as epoch milliseconds and ids as text, so
//! both backends hold the same values.
//!
//! Every function that touches tenant data takes a [`CompanyId`] and filters by it: there is no
//! unscoped lookup of a company's records.
//!
//! Single-statement functions take `&mut Conn`, so the caller decides whether they run inside a
//! transaction ([`Store::begin`]) or on a pooled connection ([`Store::conn`]). Functions that
//! write with more than one statement take `&mut Tx`: they cannot be called outside a
//! transaction, so a failure half-way never leaves half a change.

use std::str::FromStr;
use std::time::Duration;

use jiff_ms::ms_to_ts;
use sqlx::any::AnyPoolOptions;
use sqlx::pool::PoolConnection;
use sqlx::AnyConnection;
use sqlx::{Any, AnyPool, Connection, Executor};

pub use casebridge_domain::ids::CompanyId;

pub mod activity;
pub mod admin_sessions;
pub mod api_keys;
pub mod audit;
pub mod cases;
pub mod clients;
pub mod companies;
pub mod crm_documents;
pub mod crm_notes;
pub mod crm_ops;
pub mod documents;
pub mod events;
pub mod group;
pub mod imports;
pub mod integrations;
pub mod jobs;
pub mod lists;
pub mod named;
pub mod scheduling;
pub mod sync_state;
pub mod users;
pub mod webhooks;

mod error;
mod jiff_ms;
mod refs;
pub mod wake;

pub use error::StoreError;
pub use group::{GroupCommit, GroupStats, UnitFuture};
pub use wake::JobWakeups;

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// A write transaction. On SQLite it is `BEGIN IMMEDIATE`, so it holds the single write lock from
/// the start and never fails half-way with a lock upgrade error. Dropped without
/// [`Tx::commit`], it rolls back.
///
/// On SQLite a write transaction also holds the store's in-process write lock (a fair, FIFO
/// mutex): writers queue in order instead of racing SQLite's busy handler, which is not fair and
/// can starve a writer past its timeout under load.
///
/// A transaction that enqueued a job wakes the store's idle workers when it commits
/// ([`wake`]); callers need not do anything for it.
pub struct Tx {
    tx: sqlx::Transaction<'static, Any>,
    guard: Option<tokio::sync::OwnedMutexGuard<()>>,
    hub: std::sync::Arc<wake::Hub>,
    /// [`wake::epoch`] when the transaction began.
    epoch: u64,
}

impl Tx {
    pub async fn commit(self) -> Result<()> {
        let Tx {
            tx,
            guard,
            hub,
            epoch,
        } = self;
        let done = tx.commit().await;
        drop(guard);
        done?;
        if wake::epoch() != epoch {
            hub.wake();
        }
        Ok(())
    }

    pub async fn rollback(self) -> Result<()> {
        let Tx { tx, guard, .. } = self;
        let done = tx.rollback().await;
        drop(guard);
        Ok(done?)
    }
}

impl std::ops::Deref for Tx {
    type Target = AnyConnection;
    fn deref(&self) -> &AnyConnection {
        &self.tx
    }
}

impl std::ops::DerefMut for Tx {
    fn deref_mut(&mut self) -> &mut AnyConnection {
        &mut self.tx
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    pub fn from_url(url: &str) -> Result<Self> {
        if url.starts_with("sqlite:") {
            Ok(Backend::Sqlite)
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Ok(Backend::Postgres)
        } else {
            Err(StoreError::Config(
                "database URL must start with sqlite: or postgres://".into(),
            ))
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
        }
    }
}

#[derive(Debug, Clone)]
pub struct StoreOptions {
    pub max_connections: u32,
    pub acquire_timeout: Duration,
    /// How [`Store::group_commit`] runs units; `None`: [`GroupCommit::default_for`] the backend.
    pub group_commit: Option<GroupCommit>,
}

impl Default for StoreOptions {
    fn default() -> Self {
        Self {
            max_connections: 16,
            acquire_timeout: Duration::from_secs(10),
            group_commit: None,
        }
    }
}

/// A snapshot of the connection pool.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolStats {
    /// Connections open (idle or in use).
    pub open: u32,
    pub idle: u32,
    pub max: u32,
}

/// Records how long getting a connection took: `read` for [`Store::conn`], `write` for
/// [`Store::begin`] (on SQLite that includes waiting for the single writer).
fn record_acquire(kind: &'static str, started: std::time::Instant) {
    metrics::histogram!("casebridge_db_acquire_duration_seconds", "kind" => kind)
        .record(started.elapsed().as_secs_f64());
}

/// A handle to the database. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Store {
    pool: AnyPool,
    /// SQLite only: serialises write transactions in this process (see [`Tx`]).
    write_lock: Option<std::sync::Arc<tokio::sync::Mutex<()>>>,
    backend: Backend,
    /// Wakes idle workers after a commit that enqueued jobs ([`wake`]).
    hub: std::sync::Arc<wake::Hub>,
    /// The group committer's queue ([`group`]).
    group: std::sync::Arc<group::Group>,
}

static SQLITE_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");
static POSTGRES_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

impl Store {
    /// Connects; for SQLite, creates the database file's folder and sets durable pragmas
    /// (WAL, `synchronous=FULL`: an acknowledged write survives power loss).
    pub async fn connect(url: &str, options: StoreOptions) -> Result<Self> {
        sqlx::any::install_default_drivers();
        let backend = Backend::from_url(url)?;
        if backend == Backend::Sqlite {
            ensure_sqlite_dir(url)?;
        }
        let pool = AnyPoolOptions::new()
            .max_connections(options.max_connections)
            .acquire_timeout(options.acquire_timeout)
            .after_connect(move |conn, _meta| {
                Box::pin(async move {
                    let setup = match backend {
                        Backend::Sqlite => {
                            "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; \
                             PRAGMA foreign_keys = ON; PRAGMA busy_timeout = 10000;"
                        }
                        Backend::Postgres => "SET synchronous_commit = on",
                    };
                    conn.execute(setup).await?;
                    Ok(())
                })
            })
            // A connection still inside a transaction is not handed out again but replaced.
            // After SQLite fails a write with "database or disk is full" it rolls the
            // transaction back itself, so the ROLLBACK sent when the `Tx` is dropped fails and
            // the driver still counts the connection as in a transaction: every later `begin`
            // on it would fail, long after space is back.
            .before_acquire(|conn, _meta| Box::pin(async move { Ok(!conn.is_in_transaction()) }))
            .connect(url)
            .await
            .map_err(StoreError::from)?;
        let write_lock =
            (backend == Backend::Sqlite).then(|| std::sync::Arc::new(tokio::sync::Mutex::new(())));
        let hub =
            wake::Hub::new((backend == Backend::Postgres).then(|| (url.to_owned(), pool.clone())));
        Ok(Self {
            pool,
            backend,
            write_lock,
            hub: std::sync::Arc::new(hub),
            group: std::sync::Arc::new(group::Group::new(
                options
                    .group_commit
                    .unwrap_or(GroupCommit::default_for(backend)),
            )),
        })
    }

    /// Applies pending migrations for this backend. Safe to run from several processes.
    pub async fn migrate(&self) -> Result<()> {
        let migrator = match self.backend {
            Backend::Sqlite => &SQLITE_MIGRATIONS,
            Backend::Postgres => &POSTGRES_MIGRATIONS,
        };
        migrator.run(&self.pool).await?;
        Ok(())
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Refreshes PostgreSQL's planner statistics (`ANALYZE`), as autovacuum would, for use after
    /// a bulk load: with no statistics the planner misjudges the pagination queries (a page of
    /// external refs read by entity alone, every page). A no-op on SQLite, whose plans here do
    /// not rely on statistics.
    pub async fn analyze(&self) -> Result<()> {
        if self.backend == Backend::Postgres {
            sqlx::query("ANALYZE").execute(&self.pool).await?;
        }
        Ok(())
    }

    /// What idle workers await: jobs enqueued in this process (woken when their transaction
    /// commits) and, on PostgreSQL, in other processes (a debounced NOTIFY; the first
    /// subscriber starts one listening connection per store, the last one to go stops it).
    pub fn job_wakeups(&self) -> JobWakeups {
        self.hub.subscribe()
    }

    /// Wakes idle workers now, as a commit that enqueued would (for tools that change jobs
    /// outside a [`Tx`]).
    pub fn wake_workers(&self) {
        self.hub.wake();
    }

    /// Starts a write transaction.
    pub async fn begin(&self) -> Result<Tx> {
        let epoch = wake::epoch();
        let started = std::time::Instant::now();
        // Queue for the write lock before taking a connection, so waiting writers do not hold
        // pooled connections.
        let guard = match &self.write_lock {
            Some(lock) => Some(lock.clone().lock_owned().await),
            None => None,
        };
        let tx = match self.backend {
            Backend::Sqlite => self.pool.begin_with("BEGIN IMMEDIATE").await,
            Backend::Postgres => self.pool.begin().await,
        };
        record_acquire("write", started);
        let tx = tx?;
        Ok(Tx {
            tx,
            guard,
            hub: self.hub.clone(),
            epoch,
        })
    }

    /// A pooled connection for reads outside a transaction.
    pub async fn conn(&self) -> Result<PoolConnection<Any>> {
        let started = std::time::Instant::now();
        let conn = self.pool.acquire().await;
        record_acquire("read", started);
        Ok(conn?)
    }

    /// The pool's connections now: open, idle and the configured maximum (for `/metrics`).
    pub fn pool_stats(&self) -> PoolStats {
        PoolStats {
            open: self.pool.size(),
            idle: u32::try_from(self.pool.num_idle()).unwrap_or(u32::MAX),
            max: self.pool.options().get_max_connections(),
        }
    }

    /// Checks that the database answers (for `/readyz`). On SQLite it also checks that a write
    /// can be made durable now: a database whose disk is full still answers reads, but every
    /// write fails ("database or disk is full") until space is freed.
    pub async fn ping(&self) -> Result<()> {
        let mut conn = self.conn().await?;
        sqlx::query("SELECT 1").execute(&mut *conn).await?;
        drop(conn);
        self.probe_write().await
    }

    /// SQLite: commits a write that changes nothing (the database header's `user_version`,
    /// rewritten with its own value, which casebridge does not use) so that the write-ahead log
    /// must take a page. A writer already holding the write lock for two seconds is taken as
    /// proof enough that writes go on: the probe does not queue behind it.
    async fn probe_write(&self) -> Result<()> {
        let Some(lock) = &self.write_lock else {
            return Ok(());
        };
        let Ok(_guard) = tokio::time::timeout(Duration::from_secs(2), lock.lock()).await else {
            return Ok(());
        };
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        let version: i64 = sqlx::query_scalar("PRAGMA user_version")
            .fetch_one(&mut *tx)
            .await?;
        sqlx::query(&format!("PRAGMA user_version = {version}"))
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    pub async fn close(&self) {
        self.pool.close().await;
    }
}

fn ensure_sqlite_dir(url: &str) -> Result<()> {
    let path = url
        .trim_start_matches("sqlite://")
        .trim_start_matches("sqlite:");
    let path = path.split('?').next().unwrap_or_default();
    if path.is_empty() || path == ":memory:" {
        return Ok(());
    }
    if let Some(dir) = std::path::Path::new(path).parent() {
        if !dir.as_os_str().is_empty() {
            std::fs::create_dir_all(dir).map_err(|e| {
                StoreError::Config(format!(
                    "cannot create database folder {}: {e}",
                    dir.display()
                ))
            })?;
        }
    }
    Ok(())
}

/// `FOR UPDATE` on PostgreSQL, nothing on SQLite (whose write transactions already exclude each
/// other): appended to a read that a read-modify-write must not lose to a concurrent writer.
fn for_update(conn: &Conn) -> &'static str {
    if conn.backend_name() == "PostgreSQL" {
        " FOR UPDATE"
    } else {
        ""
    }
}

/// Parses a stored id, reporting a corrupt row rather than panicking.
fn parse_id<T: FromStr>(column: &str, raw: &str) -> Result<T> {
    raw.parse()
        .map_err(|_| StoreError::Corrupt(format!("{column} holds `{raw}`, not an id")))
}

fn parse_opt_id<T: FromStr>(column: &str, raw: Option<&str>) -> Result<Option<T>> {
    raw.map(|r| parse_id(column, r)).transpose()
}

/// Used by every module for `created_at` / `updated_at` values.
fn ts(ms: i64) -> Result<jiff::Timestamp> {
    ms_to_ts(ms)
}

/// The connection type every repository function takes.
pub type Conn = AnyConnection;
