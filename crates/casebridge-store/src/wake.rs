//! Wake-ups for idle workers, so a new job does not wait for a poll.
//!
//! - **In this process.** [`crate::jobs::enqueue`] (and every queue write that makes a job
//!   claimable) bumps a process-wide counter. When a [`crate::Tx`] commits and the counter moved
//!   since the transaction began, it wakes the workers of its store ([`JobWakeups`]). Callers do
//!   nothing: enqueueing in the transaction is enough. The wake comes after the commit, so the
//!   worker sees the job. A transaction that enqueued nothing may also wake the workers when a
//!   concurrent one enqueued (the counter is process-wide); that costs an idle worker one cheap
//!   read. Rolled-back transactions wake no one.
//! - **Other processes (PostgreSQL).** The same commit also sends `NOTIFY casebridge_jobs`, at most
//!   one per [`NOTIFY_COOLDOWN`] per process (a burst ends with one trailing NOTIFY, so the last
//!   job is not left to the poll). NOTIFY takes a database-wide lock at commit, hence the
//!   debounce. Each store with workers listens with one dedicated connection (sqlx's
//!   `PgListener`) and ignores its own notifications.
//!
//! Polling stays as the fallback (a lost notification, a job enqueued outside a [`crate::Tx`]).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use sqlx::AnyPool;
use tokio::sync::{oneshot, watch};
use tracing::warn;

/// The PostgreSQL channel the queue notifies on.
pub const CHANNEL: &str = "casebridge_jobs";
/// At most one NOTIFY per this interval per process.
pub const NOTIFY_COOLDOWN: Duration = Duration::from_millis(50);

static ENQUEUED: AtomicU64 = AtomicU64::new(0);

/// Records that the current transaction made a job claimable (see the module docs).
pub(crate) fn mark_enqueued() {
    ENQUEUED.fetch_add(1, Ordering::SeqCst);
}

pub(crate) fn epoch() -> u64 {
    ENQUEUED.load(Ordering::SeqCst)
}

/// One per [`crate::Store`] (shared by its clones).
pub(crate) struct Hub {
    local: Arc<watch::Sender<u64>>,
    remote: Option<Remote>,
}

impl std::fmt::Debug for Hub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hub")
            .field("remote", &self.remote.is_some())
            .finish()
    }
}

struct Remote {
    url: String,
    /// Identifies this store's notifications, so its own listener ignores them.
    origin: String,
    pool: AnyPool,
    last_sent: Mutex<Option<Instant>>,
    trailing: Arc<AtomicBool>,
    listener: Mutex<Weak<ListenerGuard>>,
}

/// Keeps the listener task alive; dropping the last one stops it and closes its connection.
struct ListenerGuard {
    _stop: oneshot::Sender<()>,
}

impl Hub {
    pub(crate) fn new(postgres: Option<(String, AnyPool)>) -> Self {
        let (local, _) = watch::channel(0u64);
        Self {
            local: Arc::new(local),
            remote: postgres.map(|(url, pool)| Remote {
                url,
                origin: uuid::Uuid::new_v4().to_string(),
                pool,
                last_sent: Mutex::new(None),
                trailing: Arc::new(AtomicBool::new(false)),
                listener: Mutex::new(Weak::new()),
            }),
        }
    }

    /// Wakes this store's idle workers and (PostgreSQL, debounced) other processes' workers.
    /// Must run inside a Tokio runtime.
    pub(crate) fn wake(&self) {
        self.local.send_modify(|n| *n = n.wrapping_add(1));
        if let Some(remote) = &self.remote {
            remote.notify();
        }
    }

    pub(crate) fn subscribe(&self) -> JobWakeups {
        let listener = self.remote.as_ref().map(|r| r.listener(&self.local));
        JobWakeups {
            rx: self.local.subscribe(),
            _listener: listener,
        }
    }
}

impl Remote {
    fn notify(&self) {
        let now = Instant::now();
        let mut last = self.last_sent.lock().expect("notify lock");
        match *last {
            Some(at) if now.duration_since(at) < NOTIFY_COOLDOWN => {
                // Within the cooldown: one trailing NOTIFY at its end covers this commit and
                // every other one until then.
                if !self.trailing.swap(true, Ordering::SeqCst) {
                    let delay = NOTIFY_COOLDOWN - now.duration_since(at);
                    *last = Some(at + NOTIFY_COOLDOWN);
                    let (pool, origin, trailing) = (
                        self.pool.clone(),
                        self.origin.clone(),
                        self.trailing.clone(),
                    );
                    tokio::spawn(async move {
                        tokio::time::sleep(delay).await;
                        trailing.store(false, Ordering::SeqCst);
                        send(&pool, &origin).await;
                    });
                }
            }
            _ => {
                *last = Some(now);
                let (pool, origin) = (self.pool.clone(), self.origin.clone());
                tokio::spawn(async move { send(&pool, &origin).await });
            }
        }
    }

    /// The running listener, or a new one.
    fn listener(&self, local: &Arc<watch::Sender<u64>>) -> Arc<ListenerGuard> {
        let mut slot = self.listener.lock().expect("listener lock");
        if let Some(guard) = slot.upgrade() {
            return guard;
        }
        let (stop, stopped) = oneshot::channel();
        let guard = Arc::new(ListenerGuard { _stop: stop });
        *slot = Arc::downgrade(&guard);
        tokio::spawn(listen(
            self.url.clone(),
            self.origin.clone(),
            Arc::downgrade(local),
            stopped,
        ));
        guard
    }
}

async fn send(pool: &AnyPool, origin: &str) {
    let sent = sqlx::query("SELECT pg_notify($1, $2)")
        .bind(CHANNEL)
        .bind(origin)
        .execute(pool)
        .await;
    if let Err(e) = sent {
        warn!(error = %e, "could not notify other workers; they find the job at their next poll");
    }
}

/// Forwards other processes' notifications to this store's workers until `stopped`.
async fn listen(
    url: String,
    origin: String,
    local: Weak<watch::Sender<u64>>,
    mut stopped: oneshot::Receiver<()>,
) {
    let bump = |local: &Weak<watch::Sender<u64>>| match local.upgrade() {
        Some(tx) => {
            tx.send_modify(|n| *n = n.wrapping_add(1));
            true
        }
        None => false,
    };
    loop {
        let mut listener = tokio::select! {
            l = sqlx::postgres::PgListener::connect(&url) => match l {
                Ok(l) => l,
                Err(e) => {
                    warn!(error = %e, "job listener cannot connect; polling until it can");
                    tokio::select! {
                        _ = tokio::time::sleep(Duration::from_secs(1)) => continue,
                        _ = &mut stopped => return,
                    }
                }
            },
            _ = &mut stopped => return,
        };
        if let Err(e) = listener.listen(CHANNEL).await {
            warn!(error = %e, "job listener cannot LISTEN; polling until it can");
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_secs(1)) => continue,
                _ = &mut stopped => return,
            }
        }
        // Notifications sent while not listening are lost: look once.
        if !bump(&local) {
            return;
        }
        loop {
            tokio::select! {
                n = listener.try_recv() => match n {
                    Ok(Some(n)) => {
                        if n.payload() != origin && !bump(&local) {
                            return;
                        }
                    }
                    // The connection dropped (sqlx reconnects on the next call): anything sent
                    // meanwhile is lost, so look once.
                    Ok(None) => {
                        if !bump(&local) {
                            return;
                        }
                    }
                    Err(e) => {
                        warn!(error = %e, "job listener failed; reconnecting");
                        break;
                    }
                },
                _ = &mut stopped => return,
            }
        }
    }
}

/// What an idle worker awaits: a job was enqueued (in this process, or in another one on the
/// same PostgreSQL database).
pub struct JobWakeups {
    rx: watch::Receiver<u64>,
    _listener: Option<Arc<ListenerGuard>>,
}

impl JobWakeups {
    /// Forgets wake-ups so far; call before looking for work, so a wake-up that arrives while
    /// looking is not lost.
    pub fn mark_seen(&mut self) {
        self.rx.borrow_and_update();
    }

    /// Returns when a wake-up arrived since [`Self::mark_seen`] (at once if one already did).
    /// Never returns once the store is gone.
    pub async fn changed(&mut self) {
        if self.rx.changed().await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}
