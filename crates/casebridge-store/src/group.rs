//! Group commit: many callers' units of work in one write transaction, one commit.
//!
//! A caller hands [`crate::Store::group_commit`] a unit of work (an async closure over
//! `&mut Tx`) and awaits its answer. One task per store (the committer, started by the first
//! unit) takes the first unit queued and everything else queued behind it (at most
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
//!   hung up), as a spawned task would.
//!
//! Rule for units: **a unit never awaits anything but the store** — no network, no timers, no
//! locks or channels of other tasks. Every unit of the batch, and every writer behind it, waits
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

const SAVEPOINT: &str = "SAVEPOINT casebridge_unit";
const RELEASE: &str = "RELEASE SAVEPOINT casebridge_unit";
const ROLLBACK_TO: &str = "ROLLBACK TO SAVEPOINT casebridge_unit";

/// Counters of a store's committer since the store was opened.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GroupStats {
    /// Units accepted into the queue.
    pub submitted: u64,
    /// Transactions the committer ran (committed or not).
    pub batches: u64,
    /// Units those transactions held.
    pub units: u64,
    /// The most units one transaction held.
    pub max_batch: u64,
}

#[derive(Debug, Default)]
struct Counters {
    submitted: AtomicU64,
    batches: AtomicU64,
    units: AtomicU64,
    max_batch: AtomicU64,
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
#[derive(Default)]
pub(crate) struct Group {
    queue: Mutex<Option<Queue>>,
    counters: Arc<Counters>,
}

impl std::fmt::Debug for Group {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Group")
            .field("counters", &self.counters)
            .finish()
    }
}

impl Group {
    pub(crate) fn stats(&self) -> GroupStats {
        let c = &self.counters;
        GroupStats {
            submitted: c.submitted.load(Ordering::Relaxed),
            batches: c.batches.load(Ordering::Relaxed),
            units: c.units.load(Ordering::Relaxed),
            max_batch: c.max_batch.load(Ordering::Relaxed),
        }
    }

    /// The committer's queue, starting the committer when there is none (or it stopped with
    /// the runtime that ran it).
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
        own.group = Arc::new(Group::default());
        tokio::spawn(committer(own, rx, self.counters.clone()));
        *slot = Some(q.clone());
        q
    }
}

impl Store {
    /// Runs `work` in a group commit (see [`crate::group`]): in a savepoint of a write
    /// transaction shared with other callers' units, answered after that transaction commits.
    /// `work`'s own result comes back unchanged; a failure to commit comes back as `E::from`
    /// the store error. `work` must await nothing but the store.
    pub async fn group_commit<T, E, F>(&self, work: F) -> Result<T, E>
    where
        F: for<'a> FnOnce(&'a mut Tx) -> UnitFuture<'a, Result<T, E>> + Send + 'static,
        T: Send + 'static,
        E: From<StoreError> + Send + 'static,
    {
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
                // The committer stopped (its runtime ended) between the check and the send:
                // start another.
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

    /// How the committer has batched so far.
    pub fn group_stats(&self) -> GroupStats {
        self.group.stats()
    }
}

async fn committer(store: Store, mut rx: mpsc::Receiver<Box<dyn Unit>>, counters: Arc<Counters>) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while rx.recv_many(&mut batch, MAX_BATCH).await > 0 {
        let n = batch.len() as u64;
        counters.batches.fetch_add(1, Ordering::Relaxed);
        counters.units.fetch_add(n, Ordering::Relaxed);
        counters.max_batch.fetch_max(n, Ordering::Relaxed);
        metrics::histogram!("casebridge_db_group_commit_units").record(n as f64);
        let done = run_batch(&store, &mut batch).await;
        if let Err(e) = &done {
            tracing::warn!(error = %e, units = n, "group commit failed; every unit of it fails");
        }
        for unit in batch.drain(..) {
            unit.answer(done.as_ref().map(|_| ()));
        }
    }
}

async fn run_batch(store: &Store, batch: &mut [Box<dyn Unit>]) -> Result<(), StoreError> {
    let mut tx = store.begin().await?;
    for unit in batch.iter_mut() {
        (&mut *tx).execute(SAVEPOINT).await?;
        if unit.run(&mut tx).await {
            (&mut *tx).execute(RELEASE).await?;
        } else {
            (&mut *tx).execute(ROLLBACK_TO).await?;
            (&mut *tx).execute(RELEASE).await?;
        }
    }
    tx.commit().await
}
