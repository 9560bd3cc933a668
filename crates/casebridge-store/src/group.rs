//! Group commit: many callers' units of work in one write transaction, one commit.
//!
//! A caller hands [`crate::Store::group_commit`] a unit of work (an async closure over
//! `&mut Tx`) and awaits its answer. One committer per store (started by the first unit, on a
//! thread of its own that polls it through the runtime's handle, so that each of its many
//! awaits on the database resumes at once instead of waiting for a runtime worker behind the
//! request tasks: measured 25–50 % more webhooks/s than a spawned task) takes the first unit queued and everything else queued behind it (at most
//! [`MAX_BATCH`]), begins one write transaction the way [`crate::Store::begin`] does (on SQLite
//! `BEGIN IMMEDIATE` under the store's write lock, so batches queue fairly with every other
//! writer), and runs each unit in its own `SAVEPOINT`: a unit that returns `Ok` is released, one
//! that returns `Err` (or panics) is rolled back to its savepoint, so it leaves nothing and its
//! neighbours go on. Then it commits once and answers every unit. There is no timer: under load
//! a batch is what arrived during the previous commit; at low load it is one unit.
//!
//! What holds:
//! - A unit is answered only after the commit that holds it. Its own `Ok` value or error comes
//!   back unchanged; a panic resumes in the caller.
//! - A failing unit rolls back alone. If the batch itself cannot commit (or a savepoint cannot
//!   be taken or rolled back to, for example after SQLite gave up the whole transaction), every
//!   unit of it that had not already failed on its own gets that store error, classified as the
//!   original was: none of its work is kept.
//! - Later units of a batch see earlier units' writes, as sequential transactions would.
//! - Wake-ups for jobs enqueued by a unit fire after the batch's commit ([`crate::wake`]), as
//!   for any [`Tx`].
//! - Once queued, a unit runs and commits even if its caller stops waiting (an HTTP client that
//!   hung up), as a spawned task would. (In the `PerUnit` mode below the unit runs in its
//!   caller's future, and a caller that stops waiting rolls it back, as a plain [`Tx`] would.)
//!
//! How units run is the store's [`GroupCommit`] mode. [`GroupCommit::Batched`] is the above,
//! the default on SQLite, where every commit is an fsync by the one writer. On PostgreSQL the
//! default is [`GroupCommit::PerUnit`]: each unit in a transaction of its own on a pooled
//! connection, as [`crate::Store::begin`] gives it, because PostgreSQL already flushes the WAL of
//! concurrent commits together, and one connection running the units one after the other was
//! measured slower than sixteen connections committing side by side (`bench/README.md`, "Issue
//! 11, group commit of inbound webhooks"). The guarantees above hold in both modes.
//!
//! Rule for units: **a unit awaits nothing but statements on the transaction it is given** — no
//! network, no timers, no locks or channels of other tasks, and no other transaction or pooled
//! connection of the store (on SQLite a `Store::begin` inside a unit would wait for ever for the
//! write lock its own batch holds). Every unit of the batch, and every writer behind it, waits
//! for it. Reads that need no transaction belong before the unit, on a pooled connection.

use std::any::Any;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use futures::FutureExt;
use sqlx::Executor;
use tokio::sync::{mpsc, oneshot};

use crate::{Store, StoreError, Tx};

/// The future a unit of work returns: it may borrow the batch's transaction.
pub type UnitFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// The most units in one transaction.
pub const MAX_BATCH: usize = 256;
/// Units that may wait for the committer; a caller beyond that waits to be queued.
pub const QUEUE: usize = 2 * MAX_BATCH;

// Each unit's savepoint is closed and the next one's opened in one round trip (one command of
// several statements). The last unit's savepoint, when it succeeded, is left to the COMMIT,
// which releases it.
const FIRST: &str = "SAVEPOINT casebridge_unit";
const NEXT_AFTER_OK: &str = "RELEASE SAVEPOINT casebridge_unit; SAVEPOINT casebridge_unit";
const NEXT_AFTER_ERR: &str = "ROLLBACK TO SAVEPOINT casebridge_unit; \
     RELEASE SAVEPOINT casebridge_unit; SAVEPOINT casebridge_unit";
const LAST_AFTER_ERR: &str =
    "ROLLBACK TO SAVEPOINT casebridge_unit; RELEASE SAVEPOINT casebridge_unit";

/// How [`crate::Store::group_commit`] runs units (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupCommit {
    /// Units of concurrent callers share one write transaction, each in its own savepoint:
    /// one commit per batch. The default on SQLite.
    Batched,
    /// Each unit in a write transaction of its own. The default on PostgreSQL.
    PerUnit,
}

impl GroupCommit {
    /// The faster mode on `backend`, as measured.
    pub fn default_for(backend: crate::Backend) -> Self {
        match backend {
            crate::Backend::Sqlite => GroupCommit::Batched,
            crate::Backend::Postgres => GroupCommit::PerUnit,
        }
    }
}

/// Counters of a store handle's group commits since it was made.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GroupStats {
    /// Units handed to [`crate::Store::group_commit`] (queued, in `Batched` mode).
    pub submitted: u64,
    /// Transactions run for them (committed or not).
    pub batches: u64,
    /// Units those transactions held.
    pub units: u64,
    /// The most units one transaction held.
    pub max_batch: u64,
    /// Time spent running units and their savepoints, in microseconds (`Batched` only).
    pub run_us: u64,
    /// Time spent beginning and committing the transactions, in microseconds (`Batched`
    /// only; on SQLite this includes waiting for the write lock).
    pub commit_us: u64,
}

#[derive(Debug, Default)]
struct Counters {
    submitted: AtomicU64,
    batches: AtomicU64,
    units: AtomicU64,
    max_batch: AtomicU64,
    run_us: AtomicU64,
    commit_us: AtomicU64,
}

impl Counters {
    fn batch(&self, n: u64) {
        self.batches.fetch_add(1, Ordering::Relaxed);
        self.units.fetch_add(n, Ordering::Relaxed);
        self.max_batch.fetch_max(n, Ordering::Relaxed);
        metrics::histogram!("casebridge_db_group_commit_units").record(n as f64);
    }
}

fn micros(d: std::time::Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

/// A type-erased unit: runs in the batch, then answers its caller.
trait Unit: Send {
    /// Runs the work; `true` when it succeeded and its savepoint is to be released.
    fn run<'a>(&'a mut self, tx: &'a mut Tx) -> UnitFuture<'a, bool>;
    /// Answers the caller: its own outcome, or the batch's failure when its success was not
    /// kept (or it never ran).
    fn answer(self: Box<Self>, batch: Result<(), &StoreError>);
}

enum Outcome<T, E> {
    Done(Result<T, E>),
    Panicked(Box<dyn Any + Send>),
}

type Work<T, E> = Box<dyn for<'a> FnOnce(&'a mut Tx) -> UnitFuture<'a, Result<T, E>> + Send>;

struct Pending<T, E> {
    work: Option<Work<T, E>>,
    outcome: Option<Outcome<T, E>>,
    reply: oneshot::Sender<Outcome<T, E>>,
}

impl<T, E> Unit for Pending<T, E>
where
    T: Send + 'static,
    E: From<StoreError> + Send + 'static,
{
    fn run<'a>(&'a mut self, tx: &'a mut Tx) -> UnitFuture<'a, bool> {
        let work = self.work.take().expect("a unit runs once");
        Box::pin(async move {
            // The closure is called inside the caught future, so a panic in its synchronous
            // part is caught too.
            let out = AssertUnwindSafe(async move { work(tx).await })
                .catch_unwind()
                .await;
            let ok = matches!(out, Ok(Ok(_)));
            self.outcome = Some(match out {
                Ok(r) => Outcome::Done(r),
                Err(panic) => Outcome::Panicked(panic),
            });
            ok
        })
    }

    fn answer(self: Box<Self>, batch: Result<(), &StoreError>) {
        let outcome = match (self.outcome, batch) {
            // Its own failure is its answer whatever became of the batch: it kept nothing.
            (Some(Outcome::Done(Err(e))), _) => Outcome::Done(Err(e)),
            (Some(Outcome::Panicked(p)), _) => Outcome::Panicked(p),
            (Some(Outcome::Done(Ok(v))), Ok(())) => Outcome::Done(Ok(v)),
            (Some(Outcome::Done(Ok(_))), Err(e)) | (None, Err(e)) => {
                Outcome::Done(Err(E::from(replicate(e))))
            }
            (None, Ok(())) => unreachable!("a committed batch ran every unit"),
        };
        // The caller may have stopped waiting; its unit's work stands.
        let _ = self.reply.send(outcome);
    }
}

/// The same failure for another unit of the batch: the variant (so the status it maps to) and
/// the message are kept; sqlx's error is not `Clone`.
fn replicate(e: &StoreError) -> StoreError {
    let text = |e: &sqlx::Error| sqlx::Error::InvalidArgument(e.to_string());
    match e {
        StoreError::NotFound => StoreError::NotFound,
        StoreError::Conflict(m) => StoreError::Conflict(m.clone()),
        StoreError::Invalid(v) => StoreError::Invalid(v.clone()),
        StoreError::Unavailable(e) => StoreError::Unavailable(text(e)),
        StoreError::Database(e) => StoreError::Database(text(e)),
        StoreError::Corrupt(m) => StoreError::Corrupt(m.clone()),
        StoreError::Config(m) => StoreError::Config(m.clone()),
        StoreError::Migrate(m) => StoreError::Database(sqlx::Error::InvalidArgument(m.to_string())),
    }
}

type Queue = mpsc::Sender<Box<dyn Unit>>;

/// A store's handle on its committer (shared by the store's clones).
pub(crate) struct Group {
    mode: GroupCommit,
    queue: Mutex<Option<Queue>>,
    counters: Arc<Counters>,
}

impl std::fmt::Debug for Group {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Group")
            .field("mode", &self.mode)
            .field("counters", &self.counters)
            .finish()
    }
}

impl Group {
    pub(crate) fn new(mode: GroupCommit) -> Self {
        Self {
            mode,
            queue: Mutex::new(None),
            counters: Arc::default(),
        }
    }

    pub(crate) fn stats(&self) -> GroupStats {
        let c = &self.counters;
        GroupStats {
            submitted: c.submitted.load(Ordering::Relaxed),
            batches: c.batches.load(Ordering::Relaxed),
            units: c.units.load(Ordering::Relaxed),
            max_batch: c.max_batch.load(Ordering::Relaxed),
            run_us: c.run_us.load(Ordering::Relaxed),
            commit_us: c.commit_us.load(Ordering::Relaxed),
        }
    }

    /// The committer's queue, starting the committer when there is none (or it stopped).
    fn queue(&self, store: &Store) -> Queue {
        let mut slot = self.queue.lock().expect("group queue lock");
        if let Some(q) = slot.as_ref().filter(|q| !q.is_closed()) {
            return q.clone();
        }
        let (q, rx) = mpsc::channel(QUEUE);
        // The committer's own store handle has a group of its own, so it does not keep this
        // queue open: when the last handle of the store is dropped, the queue closes and the
        // committer ends.
        let mut own = store.clone();
        own.group = Arc::new(Group::new(self.mode));
        // A thread of its own (see the module docs), on this runtime's drivers; it ends when
        // the queue closes.
        let runtime = tokio::runtime::Handle::current();
        let counters = self.counters.clone();
        std::thread::Builder::new()
            .name("casebridge-committer".into())
            .spawn(move || runtime.block_on(committer(own, rx, counters)))
            .expect("a thread for the group committer");
        *slot = Some(q.clone());
        q
    }
}

impl Store {
    /// Runs `work` in a group commit (see [`crate::group`]): in a savepoint of a write
    /// transaction shared with other callers' units (`Batched`) or in a transaction of its own
    /// (`PerUnit`), answered after that transaction commits. `work`'s own result comes back
    /// unchanged; a failure to commit comes back as `E::from` the store error. `work` must
    /// await nothing but statements on the transaction it is given.
    pub async fn group_commit<T, E, F>(&self, work: F) -> Result<T, E>
    where
        F: for<'a> FnOnce(&'a mut Tx) -> UnitFuture<'a, Result<T, E>> + Send + 'static,
        T: Send + 'static,
        E: From<StoreError> + Send + 'static,
    {
        if self.group.mode == GroupCommit::PerUnit {
            let counters = &self.group.counters;
            counters.submitted.fetch_add(1, Ordering::Relaxed);
            counters.batch(1);
            let mut tx = self.begin().await?;
            // Dropped on failure: rolled back.
            let value = work(&mut tx).await?;
            tx.commit().await?;
            return Ok(value);
        }
        let (reply, answer) = oneshot::channel();
        let mut unit: Box<dyn Unit> = Box::new(Pending {
            work: Some(Box::new(work) as Work<T, E>),
            outcome: None,
            reply,
        });
        loop {
            let queue = self.group.queue(self);
            match queue.send(unit).await {
                Ok(()) => break,
                // The committer ended (a panic outside any unit) between the check and the
                // send: start another.
                Err(mpsc::error::SendError(back)) => unit = back,
            }
        }
        self.group
            .counters
            .submitted
            .fetch_add(1, Ordering::Relaxed);
        match answer.await {
            Ok(Outcome::Done(r)) => r,
            Ok(Outcome::Panicked(p)) => std::panic::resume_unwind(p),
            Err(_) => Err(E::from(StoreError::Unavailable(
                sqlx::Error::InvalidArgument(
                    "the group committer stopped before answering; the outcome is unknown".into(),
                ),
            ))),
        }
    }

    /// How this handle's group commits went so far.
    pub fn group_stats(&self) -> GroupStats {
        self.group.stats()
    }

    /// How [`Store::group_commit`] runs units on this handle.
    pub fn group_commit_mode(&self) -> GroupCommit {
        self.group.mode
    }

    /// A handle on the same database whose [`Store::group_commit`] runs units in `mode`, with a
    /// committer (and counters) of its own.
    pub fn with_group_commit(&self, mode: GroupCommit) -> Store {
        let mut other = self.clone();
        other.group = Arc::new(Group::new(mode));
        other
    }
}

async fn committer(store: Store, mut rx: mpsc::Receiver<Box<dyn Unit>>, counters: Arc<Counters>) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while rx.recv_many(&mut batch, MAX_BATCH).await > 0 {
        let n = batch.len() as u64;
        counters.batch(n);
        let done = run_batch(&store, &mut batch, &counters).await;
        if let Err(e) = &done {
            tracing::warn!(error = %e, units = n, "group commit failed; every unit of it fails");
        }
        for unit in batch.drain(..) {
            unit.answer(done.as_ref().map(|_| ()));
        }
    }
}

async fn run_batch(
    store: &Store,
    batch: &mut [Box<dyn Unit>],
    counters: &Counters,
) -> Result<(), StoreError> {
    let began = std::time::Instant::now();
    let mut tx = store.begin().await?;
    let running = std::time::Instant::now();
    counters
        .commit_us
        .fetch_add(micros(running - began), Ordering::Relaxed);
    let mut open = FIRST;
    let mut last_failed = false;
    for unit in batch.iter_mut() {
        (&mut *tx).execute(open).await?;
        last_failed = !unit.run(&mut tx).await;
        open = if last_failed {
            NEXT_AFTER_ERR
        } else {
            NEXT_AFTER_OK
        };
    }
    if last_failed {
        (&mut *tx).execute(LAST_AFTER_ERR).await?;
    }
    let committing = std::time::Instant::now();
    counters
        .run_us
        .fetch_add(micros(committing - running), Ordering::Relaxed);
    let done = tx.commit().await;
    counters
        .commit_us
        .fetch_add(micros(committing.elapsed()), Ordering::Relaxed);
    done
}
