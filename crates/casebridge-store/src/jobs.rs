//! The job table behind the durable queue (`casebridge-queue` runs the jobs).
//!
//! A job's `status` says what it waits for, so a claim reads only jobs that can run:
//!
//! | status | meaning |
//! |---|---|
//! | `pending` | claimable once `run_at` passes: it is the head of its ordering key and holds a slot of its concurrency key |
//! | `running` | claimed under a lease until `locked_until` (then claimable again: takeover) |
//! | `waiting` | behind an earlier unfinished job of its ordering key |
//! | `scheduled` | has a concurrency key but no slot yet (new, or retried, until `run_at`) |
//! | `blocked` | due, waiting for a slot of its concurrency key |
//! | `dead` | retries spent or a permanent error; kept until requeued |
//!
//! Outside the store, `waiting`, `scheduled` and `blocked` read as [`JobStatus::Pending`].
//!
//! Invariants:
//! - A job is enqueued with [`enqueue`] on the caller's connection, so it commits or rolls back
//!   with the change that caused it (transactional outbox). Committing a [`crate::Tx`] that
//!   enqueued wakes the store's idle workers ([`crate::wake`]).
//! - A claim reads due `pending` jobs and expired leases through partial indexes (`LIMIT`
//!   applies in the index), plus the `scheduled` jobs that fell due since the last claim, which
//!   it gates (at most 200 per claim; on SQLite, enqueue gates a due job itself). Its cost does
//!   not depend on how many jobs wait for a time, a key or a slot.
//! - A job is claimed by one worker at a time: on PostgreSQL the claim locks rows with
//!   `FOR UPDATE SKIP LOCKED`; on SQLite every write transaction holds the single write lock.
//! - A claim carries a lease (`lease_id`, `locked_until`). Completing, retrying or burying a job
//!   needs the lease id, so a worker whose lease expired cannot overwrite the outcome of the
//!   worker that took the job over. An expired lease makes the job claimable again.
//! - Ordering keys: at most one job per key is unfinished and not `waiting` (the head; dead jobs
//!   do not count). Enqueue makes a job `waiting` if its key has an unfinished job; completing
//!   or burying the head moves the key's oldest `waiting` job on, in the same transaction. A
//!   retried head stays the head, so order survives retries. On PostgreSQL both sides hold a
//!   transaction-scoped advisory lock on the key, so enqueue order is commit order.
//! - Concurrency keys: the key's `pending` and `running` jobs hold its slots, never more than
//!   its limit. Slots are given only under the key's advisory lock (PostgreSQL), by a claim
//!   gating due `scheduled` jobs and by the transaction that frees a slot (complete, retry,
//!   bury), oldest `blocked` job first. Claims take only jobs that hold their slot, so the limit
//!   is exact across processes. API transactions never take this lock (they only make jobs
//!   `scheduled`), so the queue's lock order is always ordering key, then concurrency keys in
//!   sorted order, and cannot deadlock with them.
//! - A completion given a [`Take`] claims the job taking the ended one's place (next of its
//!   ordering key, or the oldest blocked one of the freed slot) for the caller, with a lease, in
//!   the same transaction, instead of making it `pending`: the slot never passes through a claim.
//! - Finished jobs are deleted; dead jobs stay (status `dead`) until requeued or pruned.

use std::collections::BTreeMap;
use std::time::Duration;

use casebridge_domain::ids::{CompanyId, JobId};
use casebridge_domain::jobs::{Job, JobStatus, NewJob};
use casebridge_domain::page::{Page, PageRequest};
use jiff::Timestamp;
use sqlx::FromRow;
use uuid::Uuid;

use crate::{parse_id, parse_opt_id, ts, wake, Backend, Conn, Result, Store, StoreError, Tx};

const COLUMNS: &str =
    "id, queue, kind, company_id, payload, ordering_key, concurrency_key, status, attempts,
    run_at, first_attempt_at, locked_until, lease_id, last_error, created_at";

/// Due `scheduled` jobs a claim gates at most (the rest wait for the next claim), so a claim
/// after a large burst stays short.
const GATE_BATCH: i64 = 200;

#[derive(FromRow)]
struct Row {
    id: String,
    queue: String,
    kind: String,
    company_id: Option<String>,
    payload: String,
    ordering_key: Option<String>,
    concurrency_key: Option<String>,
    status: String,
    attempts: i64,
    run_at: i64,
    first_attempt_at: Option<i64>,
    locked_until: Option<i64>,
    lease_id: Option<String>,
    last_error: Option<String>,
    created_at: i64,
}

impl Row {
    fn into_model(self) -> Result<Job> {
        // The states a job waits in are the store's business: outside, they are all "pending".
        let status = match self.status.as_str() {
            "waiting" | "scheduled" | "blocked" => Some(JobStatus::Pending),
            other => JobStatus::parse(other),
        };
        Ok(Job {
            id: parse_id("jobs.id", &self.id)?,
            queue: self.queue,
            kind: self.kind,
            company_id: parse_opt_id("jobs.company_id", self.company_id.as_deref())?,
            payload: serde_json::from_str(&self.payload)
                .map_err(|e| StoreError::Corrupt(format!("jobs.payload: {e}")))?,
            ordering_key: self.ordering_key,
            status: status
                .ok_or_else(|| StoreError::Corrupt(format!("jobs.status `{}`", self.status)))?,
            attempts: u32::try_from(self.attempts).unwrap_or(u32::MAX),
            run_at: ts(self.run_at)?,
            first_attempt_at: self.first_attempt_at.map(ts).transpose()?,
            locked_until: self.locked_until.map(ts).transpose()?,
            lease_id: self.lease_id,
            last_error: self.last_error,
            created_at: ts(self.created_at)?,
        })
    }
}

fn rows(rows: Vec<Row>) -> Result<Vec<Job>> {
    rows.into_iter().map(Row::into_model).collect()
}

fn ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX / 4)
}

fn is_postgres(conn: &Conn) -> bool {
    conn.backend_name() == "PostgreSQL"
}

/// Appended to the row selections of queue transactions: on PostgreSQL, rows another
/// transaction holds are skipped rather than waited for (so the queue's own transactions wait
/// only on advisory locks, in a fixed order).
///
/// Such selections are written as `WITH picked AS MATERIALIZED (… LIMIT n FOR UPDATE SKIP
/// LOCKED) UPDATE … WHERE seq IN (SELECT seq FROM picked)`: as a plain subquery of the UPDATE,
/// PostgreSQL may run the selection again for each row, and since the rows the statement already
/// changed no longer lock, each run picks further rows, well past `LIMIT` (measured: a claim of 8
/// took 22).
fn skip_locked(conn: &Conn) -> &'static str {
    if is_postgres(conn) {
        "FOR UPDATE SKIP LOCKED"
    } else {
        ""
    }
}

/// PostgreSQL: serialises, until commit, the transactions that change which job heads an
/// ordering key. (SQLite's write transactions are serial already.)
async fn lock_ordering_key(conn: &mut Conn, queue: &str, key: &str) -> Result<()> {
    if is_postgres(conn) {
        sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended($1, 7))")
            .bind(format!("{queue}/{key}"))
            .execute(&mut *conn)
            .await?;
    }
    Ok(())
}

/// PostgreSQL: serialises, until commit, the transactions that give out a concurrency key's
/// slots. Only the queue's own transactions take it (see the module docs).
async fn lock_concurrency_key(conn: &mut Conn, queue: &str, key: &str) -> Result<()> {
    if is_postgres(conn) {
        sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended($1, 11))")
            .bind(format!("{queue}/{key}"))
            .execute(&mut *conn)
            .await?;
    }
    Ok(())
}

/// Whether the ordering key has an unfinished (not dead) job.
async fn key_has_unfinished(conn: &mut Conn, queue: &str, key: &str) -> Result<bool> {
    let n: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM (SELECT 1 FROM jobs
                               WHERE queue = $1 AND ordering_key = $2 AND status <> 'dead'
                               LIMIT 1) t",
    )
    .bind(queue)
    .bind(key)
    .fetch_one(&mut *conn)
    .await?;
    Ok(n > 0)
}

/// The state a job starts in once it heads its ordering key (or has none).
fn head_status(concurrency_key: Option<&str>) -> &'static str {
    if concurrency_key.is_some() {
        // Gated by the next claim, which takes the key's lock; an API transaction must not.
        "scheduled"
    } else {
        "pending"
    }
}

/// Adds a job on the caller's connection, normally inside the transaction of the change that
/// caused it.
pub async fn enqueue(conn: &mut Conn, job: &NewJob, now: Timestamp) -> Result<JobId> {
    let behind = match &job.ordering_key {
        Some(key) => {
            // Held until commit, so `seq` order (assigned at insert) is also commit order and
            // a later job of the key can never become visible first.
            lock_ordering_key(conn, &job.queue, key).await?;
            key_has_unfinished(conn, &job.queue, key).await?
        }
        None => false,
    };
    let concurrency_key = job.concurrency.as_ref().map(|(k, _)| k.clone());
    let run_at = job.run_at.unwrap_or(now);
    let status = match &job.concurrency {
        _ if behind => "waiting",
        // SQLite: write transactions are serial, so the slot can be given here at no risk of a
        // deadlock (on PostgreSQL the next claim gates it, under the key's lock).
        Some((key, limit)) if !is_postgres(conn) && run_at <= now => {
            gate_at_enqueue(conn, &job.queue, key, i64::from(*limit)).await?
        }
        _ => head_status(concurrency_key.as_deref()),
    };
    let id = JobId::new();
    sqlx::query(
        "INSERT INTO jobs (id, queue, kind, company_id, payload, ordering_key, concurrency_key,
                           concurrency_limit, status, attempts, run_at, created_at, updated_at)
         VALUES ($1, $2, $3, $4, $5, $6, $9, $10, $11, 0, $7, $8, $8)",
    )
    .bind(id.to_string())
    .bind(&job.queue)
    .bind(&job.kind)
    .bind(job.company_id.map(|c| c.to_string()))
    .bind(job.payload.to_string())
    .bind(job.ordering_key.clone())
    .bind(run_at.as_millisecond())
    .bind(now.as_millisecond())
    .bind(concurrency_key)
    .bind(job.concurrency.as_ref().map(|(_, l)| i64::from(*l)))
    .bind(status)
    .execute(&mut *conn)
    .await?;
    if status != "waiting" && status != "blocked" {
        wake::mark_enqueued();
    }
    Ok(id)
}

/// SQLite only (inside the caller's write transaction): `pending` if the key has a free slot
/// and no job waits for one (first come, first served), else `blocked`.
async fn gate_at_enqueue(
    conn: &mut Conn,
    queue: &str,
    key: &str,
    limit: i64,
) -> Result<&'static str> {
    let (held, blocked) = key_slots(conn, queue, key).await?;
    Ok(if held < limit && !blocked {
        "pending"
    } else {
        "blocked"
    })
}

/// How many slots of a concurrency key are held (`pending` and `running` jobs, at most its
/// limit), and whether a job waits for one: two index probes.
async fn key_slots(conn: &mut Conn, queue: &str, key: &str) -> Result<(i64, bool)> {
    let (held, blocked): (i64, i64) = sqlx::query_as(
        "SELECT (SELECT COUNT(*) FROM jobs WHERE queue = $1 AND concurrency_key = $2
                                          AND status IN ('pending', 'running')),
                (SELECT COUNT(*) FROM (SELECT 1 FROM jobs WHERE queue = $1 AND concurrency_key = $2
                                                          AND status = 'blocked' LIMIT 1) b)",
    )
    .bind(queue)
    .bind(key)
    .fetch_one(&mut *conn)
    .await?;
    Ok((held, blocked > 0))
}

/// Rows per multi-row `INSERT` of [`enqueue_many`] (10 parameters each).
const ENQUEUE_BATCH: usize = 50;

/// Adds several jobs on the caller's connection with one `INSERT` per 50 jobs, deciding each
/// job's state as [`enqueue`] does (on SQLite, a due keyed job gets a free slot of its key or
/// waits `blocked`, in the order given). Jobs with an ordering key go through [`enqueue`] one by
/// one (their key's lock and order). Returns the ids in the order given.
pub async fn enqueue_many(conn: &mut Conn, jobs: &[NewJob], now: Timestamp) -> Result<Vec<JobId>> {
    let mut ids = Vec::with_capacity(jobs.len());
    // SQLite, when no two due keyed jobs share a key (an event's deliveries: one per webhook):
    // each job's slot is decided inside the INSERT (`Status::Gate`), so no read comes first.
    let gate_in_insert = !is_postgres(conn) && {
        let mut keys = std::collections::BTreeSet::new();
        jobs.iter()
            .filter(|j| j.ordering_key.is_none() && j.run_at.is_none_or(|at| at <= now))
            .filter_map(|j| j.concurrency.as_ref())
            .all(|(key, _)| keys.insert(key.as_str()))
    };
    let mut rows: Vec<(JobId, &NewJob, Status)> = Vec::with_capacity(jobs.len());
    // SQLite: per key, the slots held and whether a job waits, as this batch leaves them.
    let mut slots: BTreeMap<(&str, &str), (i64, bool)> = BTreeMap::new();
    for job in jobs {
        if job.ordering_key.is_some() {
            ids.push(enqueue(conn, job, now).await?);
            continue;
        }
        let run_at = job.run_at.unwrap_or(now);
        let status = match &job.concurrency {
            Some(_) if gate_in_insert && run_at <= now => Status::Gate,
            Some((key, limit)) if !is_postgres(conn) && run_at <= now => {
                let slot = (job.queue.as_str(), key.as_str());
                let state = match slots.entry(slot) {
                    std::collections::btree_map::Entry::Occupied(e) => e.into_mut(),
                    std::collections::btree_map::Entry::Vacant(e) => {
                        e.insert(key_slots(conn, &job.queue, key).await?)
                    }
                };
                if state.0 < i64::from(*limit) && !state.1 {
                    state.0 += 1;
                    Status::Is("pending")
                } else {
                    state.1 = true;
                    Status::Is("blocked")
                }
            }
            Some(_) => Status::Is("scheduled"),
            None => Status::Is("pending"),
        };
        let id = JobId::new();
        ids.push(id);
        rows.push((id, job, status));
    }
    let mut runnable = false;
    for chunk in rows.chunks(ENQUEUE_BATCH) {
        let values = (0..chunk.len())
            .map(|i| {
                let b = 2 + 9 * i;
                let (queue, key, limit) = (b + 1, b + 5, b + 6);
                let status = match chunk[i].2 {
                    Status::Is(_) => format!("${}", b + 7),
                    // As `gate_at_enqueue` decides it (`$b+7` is bound, unused).
                    Status::Gate => format!(
                        "CASE WHEN (SELECT COUNT(*) FROM jobs
                                    WHERE queue = ${queue} AND concurrency_key = ${key}
                                      AND status IN ('pending', 'running')) < ${limit}
                                   AND NOT EXISTS (SELECT 1 FROM jobs
                                    WHERE queue = ${queue} AND concurrency_key = ${key}
                                      AND status = 'blocked')
                              THEN 'pending' ELSE 'blocked' END"
                    ),
                };
                format!(
                    "(${b}, ${queue}, ${}, ${}, ${}, NULL, ${key}, ${limit}, {status}, 0, ${}, \
                     $1, $1)",
                    b + 2,
                    b + 3,
                    b + 4,
                    b + 8
                )
            })
            .collect::<Vec<_>>()
            .join(", ");
        let sql = format!(
            "INSERT INTO jobs (id, queue, kind, company_id, payload, ordering_key, concurrency_key,
                               concurrency_limit, status, attempts, run_at, created_at, updated_at)
             VALUES {values}
             RETURNING status"
        );
        let mut q = sqlx::query_scalar::<_, String>(&sql).bind(now.as_millisecond());
        for (id, job, status) in chunk {
            q = q
                .bind(id.to_string())
                .bind(&job.queue)
                .bind(&job.kind)
                .bind(job.company_id.map(|c| c.to_string()))
                .bind(job.payload.to_string())
                .bind(job.concurrency.as_ref().map(|(k, _)| k.clone()))
                .bind(job.concurrency.as_ref().map(|(_, l)| i64::from(*l)))
                .bind(match status {
                    Status::Is(s) => *s,
                    Status::Gate => "blocked",
                })
                .bind(job.run_at.unwrap_or(now).as_millisecond());
        }
        let statuses = q.fetch_all(&mut *conn).await?;
        runnable |= statuses.iter().any(|s| s != "blocked");
    }
    if runnable {
        wake::mark_enqueued();
    }
    Ok(ids)
}

/// A job's state as [`enqueue_many`] inserts it: known, or decided by the `INSERT` itself.
#[derive(Clone, Copy)]
enum Status {
    Is(&'static str),
    Gate,
}

/// Removes the jobs of `queue` with `ordering_key` that have not started and returns them, so
/// the caller can enqueue their work again in another order, in its transaction.
pub async fn take_pending(conn: &mut Conn, queue: &str, ordering_key: &str) -> Result<Vec<Job>> {
    lock_ordering_key(conn, queue, ordering_key).await?;
    let taken: Vec<Row> = sqlx::query_as(&format!(
        "DELETE FROM jobs WHERE queue = $1 AND ordering_key = $2
                            AND status IN ('pending', 'waiting', 'scheduled', 'blocked')
         RETURNING {COLUMNS}"
    ))
    .bind(queue)
    .bind(ordering_key)
    .fetch_all(&mut *conn)
    .await?;
    // A taken `pending` job held a slot of its concurrency key. This transaction must not take
    // the key's lock (module docs), so it hands the slot on through the gate: the key's oldest
    // blocked job becomes `scheduled` (due), and the next claim gates it, filling every free
    // slot of the key.
    let mut freed: Vec<&str> = taken
        .iter()
        .filter(|r| r.status == "pending")
        .filter_map(|r| r.concurrency_key.as_deref())
        .collect();
    freed.sort_unstable();
    freed.dedup();
    for key in freed {
        let kicked = sqlx::query(&format!(
            "WITH picked AS MATERIALIZED (SELECT seq FROM jobs
                           WHERE queue = $1 AND concurrency_key = $2 AND status = 'blocked'
                           ORDER BY run_at, seq LIMIT 1 {})
             UPDATE jobs SET status = 'scheduled'
             WHERE seq IN (SELECT seq FROM picked)
               AND status = 'blocked'",
            skip_locked(conn)
        ))
        .bind(queue)
        .bind(key)
        .execute(&mut *conn)
        .await?;
        if kicked.rows_affected() > 0 {
            wake::mark_enqueued();
        }
    }
    rows(taken)
}

/// Brings a company's jobs of one kind that have not started and are not due until after `at`
/// forward to `at` (`at` = now: due at once). Jobs that were attempted (a retry waiting for its
/// backoff) are left alone. Returns how many moved.
///
/// Only `run_at` changes, never the status, so every gate still holds: a `scheduled` job is
/// gated by the next claim once `run_at` passes (it takes a free slot of its concurrency key or
/// waits `blocked`); a `waiting` job keeps its place behind its ordering key and, promoted,
/// becomes `scheduled` with the earlier `run_at`, so order per key is unchanged. Workers are
/// woken when the transaction commits, so one sleeping until the old time looks again.
pub async fn bring_forward(
    conn: &mut Conn,
    company: CompanyId,
    queue: &str,
    kind: &str,
    concurrency_key: &str,
    at: Timestamp,
    now: Timestamp,
) -> Result<u64> {
    let done = sqlx::query(
        "UPDATE jobs SET run_at = $5, updated_at = $6
         WHERE queue = $1 AND concurrency_key = $2 AND kind = $3 AND company_id = $4
           AND status IN ('pending', 'waiting', 'scheduled', 'blocked')
           AND attempts = 0 AND run_at > $5",
    )
    .bind(queue)
    .bind(concurrency_key)
    .bind(kind)
    .bind(company.to_string())
    .bind(at.as_millisecond())
    .bind(now.as_millisecond())
    .execute(&mut *conn)
    .await?;
    if done.rows_affected() > 0 {
        wake::mark_enqueued();
    }
    Ok(done.rows_affected())
}

/// Sets the limit of a concurrency key on every job that has it (new jobs carry the limit their
/// enqueuer gives). A raised limit takes effect at once: the key's oldest `blocked` job goes back
/// to `scheduled`, and the next claim gates it, filling every free slot (this transaction must
/// not take the key's lock: see the module docs). A lowered one takes effect as running jobs
/// finish: no slot is given while the key holds as many as its limit.
pub async fn set_concurrency_limit(
    conn: &mut Conn,
    queue: &str,
    key: &str,
    limit: u32,
) -> Result<()> {
    sqlx::query(
        "UPDATE jobs SET concurrency_limit = $3
         WHERE queue = $1 AND concurrency_key = $2 AND concurrency_limit <> $3",
    )
    .bind(queue)
    .bind(key)
    .bind(i64::from(limit.max(1)))
    .execute(&mut *conn)
    .await?;
    let kicked = sqlx::query(&format!(
        "WITH picked AS MATERIALIZED (SELECT seq FROM jobs
                       WHERE queue = $1 AND concurrency_key = $2 AND status = 'blocked'
                       ORDER BY run_at, seq LIMIT 1 {})
         UPDATE jobs SET status = 'scheduled'
         WHERE seq IN (SELECT seq FROM picked)
           AND status = 'blocked'",
        skip_locked(conn)
    ))
    .bind(queue)
    .bind(key)
    .execute(&mut *conn)
    .await?;
    if kicked.rows_affected() > 0 {
        wake::mark_enqueued();
    }
    Ok(())
}

/// Gives free slots of a concurrency key to its oldest blocked jobs, in one statement (the slots
/// held are counted in it). The caller holds the key's lock (PostgreSQL).
async fn hand_off(conn: &mut Conn, queue: &str, key: &str, limit: i64) -> Result<()> {
    let moved = sqlx::query(&format!(
        "WITH picked AS MATERIALIZED (SELECT seq FROM jobs
                       WHERE queue = $1 AND concurrency_key = $2 AND status = 'blocked'
                       ORDER BY run_at, seq
                       LIMIT (SELECT CASE WHEN $3 > COUNT(*) THEN $3 - COUNT(*) ELSE 0 END
                              FROM jobs
                              WHERE queue = $1 AND concurrency_key = $2
                                AND status IN ('pending', 'running'))
                       {})
         UPDATE jobs SET status = 'pending'
         WHERE seq IN (SELECT seq FROM picked)
           AND status = 'blocked'",
        skip_locked(conn)
    ))
    .bind(queue)
    .bind(key)
    .bind(limit)
    .execute(&mut *conn)
    .await?;
    if moved.rows_affected() > 0 {
        wake::mark_enqueued();
    }
    Ok(())
}

/// Locks each key (sorted, so concurrent gates cannot deadlock) and hands off its free slots.
async fn hand_off_all(conn: &mut Conn, queue: &str, keys: BTreeMap<String, i64>) -> Result<()> {
    for (key, limit) in keys {
        lock_concurrency_key(conn, queue, &key).await?;
        hand_off(conn, queue, &key, limit).await?;
    }
    Ok(())
}

/// Gates the `scheduled` jobs that are due: each becomes `blocked`, and its key's free slots go
/// to the key's oldest blocked jobs.
async fn gate_due(tx: &mut Tx, queue: &str, now: i64) -> Result<()> {
    let gated: Vec<(Option<String>, Option<i64>)> = sqlx::query_as(&format!(
        "WITH picked AS MATERIALIZED (SELECT seq FROM jobs
                       WHERE queue = $1 AND status = 'scheduled' AND run_at <= $2
                       ORDER BY run_at, seq LIMIT {GATE_BATCH} {})
         UPDATE jobs SET status = CASE WHEN concurrency_key IS NULL THEN 'pending'
                                       ELSE 'blocked' END
         WHERE seq IN (SELECT seq FROM picked)
           AND status = 'scheduled'
         RETURNING concurrency_key, concurrency_limit",
        skip_locked(tx)
    ))
    .bind(queue)
    .bind(now)
    .fetch_all(&mut **tx)
    .await?;
    let keys: BTreeMap<String, i64> = gated
        .into_iter()
        .filter_map(|(k, l)| Some((k?, l.unwrap_or(1))))
        .collect();
    hand_off_all(tx, queue, keys).await
}

/// What a claim could find, as seen just before it: due `pending` jobs, due `scheduled` ones to
/// gate, expired leases.
#[derive(Debug, Clone, Copy)]
struct Work {
    pending: bool,
    scheduled: bool,
    expired: bool,
}

impl Work {
    fn any(self) -> bool {
        self.pending || self.scheduled || self.expired
    }
}

/// Three index probes on a read connection, so an idle worker's look costs no write transaction
/// (on SQLite, no turn at the write lock), and a claim runs only the statements that can find
/// something.
async fn has_work(store: &Store, queue: &str, now: i64) -> Result<Work> {
    let mut conn = store.conn().await?;
    let (pending, scheduled, expired): (i64, i64, i64) = sqlx::query_as(
        "SELECT (SELECT COUNT(*) FROM (SELECT 1 FROM jobs WHERE queue = $1 AND status = 'pending'
                                       AND run_at <= $2 LIMIT 1) a),
                (SELECT COUNT(*) FROM (SELECT 1 FROM jobs WHERE queue = $1 AND status = 'scheduled'
                                       AND run_at <= $2 LIMIT 1) b),
                (SELECT COUNT(*) FROM (SELECT 1 FROM jobs WHERE queue = $1 AND status = 'running'
                                       AND locked_until <= $2 LIMIT 1) c)",
    )
    .bind(queue)
    .bind(now)
    .fetch_one(&mut *conn)
    .await?;
    Ok(Work {
        pending: pending > 0,
        scheduled: scheduled > 0,
        expired: expired > 0,
    })
}

/// Claims up to `limit` runnable jobs of `queue` for `lease`: expired leases first, then due
/// `pending` jobs in `run_at` order. Gates due `scheduled` jobs first, in the same transaction.
pub async fn claim(
    store: &Store,
    queue: &str,
    limit: u32,
    lease: Duration,
    now: Timestamp,
) -> Result<Vec<Job>> {
    if limit == 0 {
        return Ok(Vec::new());
    }
    let now_ms = now.as_millisecond();
    let work = has_work(store, queue, now_ms).await?;
    if !work.any() {
        return Ok(Vec::new());
    }
    let lock = match store.backend() {
        Backend::Postgres => "FOR UPDATE SKIP LOCKED",
        Backend::Sqlite => "",
    };
    let queue = queue.to_owned();
    // A unit of a group commit: on SQLite a claim shares its commit with the completions and
    // the API writes of the moment instead of taking the writer for a commit of its own.
    let claimed = store
        .group_commit(move |tx| {
            Box::pin(async move { claim_in(tx, &queue, limit, lease, now_ms, lock, work).await })
        })
        .await?;
    let mut jobs = rows(claimed)?;
    // RETURNING does not promise an order.
    jobs.sort_by_key(|j| (j.run_at, j.id));
    Ok(jobs)
}

/// [`claim`]'s writes, in the caller's transaction.
async fn claim_in(
    tx: &mut Tx,
    queue: &str,
    limit: u32,
    lease: Duration,
    now_ms: i64,
    lock: &str,
    work: Work,
) -> Result<Vec<Row>> {
    // A job that became due, gateable or expired since the look is left to the next claim
    // (its wake-up or the poll), as if the look had come a moment earlier. Gating can free a
    // slot, so a claim after a gate always looks for pending jobs.
    if work.scheduled {
        gate_due(tx, queue, now_ms).await?;
    }
    let lease_id = Uuid::new_v4().to_string();
    let until = now_ms + ms(lease);
    // Each selection is a range of one partial index, in index order, so `LIMIT` bounds the
    // rows read. The conditions are repeated at the locking level: on PostgreSQL a row that
    // another transaction changed after our snapshot is re-checked against them.
    let mut claimed: Vec<Row> = if !work.expired {
        Vec::new()
    } else {
        sqlx::query_as(&format!(
            "WITH picked AS MATERIALIZED (SELECT seq FROM jobs
                       WHERE queue = $4 AND status = 'running' AND locked_until <= $3
                       ORDER BY locked_until LIMIT $5 {lock})
         UPDATE jobs SET attempts = attempts + 1, lease_id = $1, locked_until = $2, updated_at = $3
         WHERE seq IN (SELECT seq FROM picked)
           AND status = 'running' AND locked_until <= $3
         RETURNING {COLUMNS}"
        ))
        .bind(&lease_id)
        .bind(until)
        .bind(now_ms)
        .bind(queue)
        .bind(i64::from(limit))
        .fetch_all(&mut **tx)
        .await?
    };
    let left = i64::from(limit) - claimed.len() as i64;
    if left > 0 && (work.pending || work.scheduled) {
        let fresh: Vec<Row> = sqlx::query_as(&format!(
            "WITH picked AS MATERIALIZED (SELECT seq FROM jobs
                           WHERE queue = $4 AND status = 'pending' AND run_at <= $3
                           ORDER BY run_at, seq LIMIT $5 {lock})
             UPDATE jobs SET status = 'running', attempts = attempts + 1, lease_id = $1,
                    locked_until = $2, first_attempt_at = COALESCE(first_attempt_at, $3),
                    updated_at = $3
             WHERE seq IN (SELECT seq FROM picked)
               AND status = 'pending' AND run_at <= $3
             RETURNING {COLUMNS}"
        ))
        .bind(&lease_id)
        .bind(until)
        .bind(now_ms)
        .bind(queue)
        .bind(left)
        .fetch_all(&mut **tx)
        .await?;
        claimed.extend(fresh);
    }
    Ok(claimed)
}

/// The key columns a lease-guarded change returns.
type Keys = (Option<String>, Option<String>, Option<i64>);

/// A claim the worker that ends a job makes on the job that takes its place (the next job of
/// its ordering key, or the oldest job blocked on the slot it frees), so that worker runs it
/// at once: no separate claim, no wake-up. The taken job gets a lease of `lease` from `now`.
#[derive(Debug, Clone, Copy)]
pub struct Take {
    pub lease: Duration,
    pub now: Timestamp,
}

/// How ending a job under its lease went.
#[derive(Debug, Clone, Default)]
pub struct Ended {
    /// False when the lease was lost (then nothing was changed).
    pub held: bool,
    /// The successor claimed for the caller under [`Take`], if one was runnable.
    pub next: Option<Job>,
}

/// The job ended (done: deleted; or dead) under the caller's lease. Moves its ordering key's next
/// job on and gives its concurrency slot away, in the same transaction. False when the lease was
/// lost.
/// Runs as a unit of a group commit ([`Store::group_commit`]), so concurrent workers' outcomes
/// share a commit.
async fn finish(
    store: &Store,
    job: &Job,
    sql: &'static str,
    binds: LeaseBinds,
    take: Option<Take>,
) -> Result<Ended> {
    let job = job.clone();
    store
        .group_commit(move |tx| {
            Box::pin(async move { finish_in(tx, &job, sql, binds, take).await })
        })
        .await
}

/// [`finish`] in the caller's transaction: on `held: false` (lease lost) nothing was changed.
/// With `take`, the job that moves into the ended job's place is claimed for the caller when it
/// can run now (instead of being made `pending` for the next claim); at most one is taken.
async fn finish_in(
    tx: &mut Tx,
    job: &Job,
    sql: &str,
    binds: LeaseBinds,
    take: Option<Take>,
) -> Result<Ended> {
    let tx: &mut Conn = tx;
    let lease = job.lease_id.as_deref().unwrap_or_default();
    if let Some(key) = &job.ordering_key {
        lock_ordering_key(&mut *tx, &job.queue, key).await?;
    }
    let mut q = sqlx::query_as::<_, Keys>(sql)
        .bind(job.id.to_string())
        .bind(lease);
    if let Some(t) = binds.at {
        q = q.bind(t.as_millisecond());
    }
    if let Some(e) = binds.error {
        q = q.bind(e);
    }
    let Some((ordering_key, concurrency_key, limit)) = q.fetch_optional(&mut *tx).await? else {
        return Ok(Ended::default());
    };
    let mut next: Option<Row> = None;
    if let Some(key) = &ordering_key {
        let waiting: Option<(i64, Option<String>, i64)> = sqlx::query_as(
            "SELECT seq, concurrency_key, run_at FROM jobs
             WHERE queue = $1 AND ordering_key = $2 AND status = 'waiting'
             ORDER BY seq LIMIT 1",
        )
        .bind(&job.queue)
        .bind(key)
        .fetch_optional(&mut *tx)
        .await?;
        if let Some((seq, next_key, run_at)) = waiting {
            let status = head_status(next_key.as_deref());
            match take {
                // It heads its key now and needs no slot: it is the caller's.
                Some(t) if status == "pending" && run_at <= t.now.as_millisecond() => {
                    next = take_job(tx, seq, t).await?;
                }
                _ => {
                    sqlx::query(
                        "UPDATE jobs SET status = $2 WHERE seq = $1 AND status = 'waiting'",
                    )
                    .bind(seq)
                    .bind(status)
                    .execute(&mut *tx)
                    .await?;
                    wake::mark_enqueued();
                }
            }
        }
    }
    if let Some(key) = concurrency_key {
        let limit = limit.unwrap_or(1);
        lock_concurrency_key(&mut *tx, &job.queue, &key).await?;
        match take {
            // The slot this job held goes to the key's oldest blocked job, claimed for the
            // caller. Blocked jobs exist only while the key's slots are all held, so ending one
            // job frees one slot; if none is blocked (or no slot is free) there is nothing to
            // hand off either.
            Some(t) if next.is_none() => {
                next = take_blocked(tx, &job.queue, &key, limit, t).await?;
            }
            _ => hand_off(tx, &job.queue, &key, limit).await?,
        }
    }
    Ok(Ended {
        held: true,
        next: next.map(Row::into_model).transpose()?,
    })
}

/// What a [`Take`] sets on the job it claims, as a claim does, given the parameters that hold
/// the new lease id, the lease's end and now.
fn take_set(lease_id: &str, until: &str, now: &str) -> String {
    format!(
        "SET status = 'running', attempts = attempts + 1, lease_id = {lease_id},
             locked_until = {until}, first_attempt_at = COALESCE(first_attempt_at, {now}),
             updated_at = {now}"
    )
}

/// The `waiting` job at `seq`, made head of its ordering key and claimed for a [`Take`].
async fn take_job(conn: &mut Conn, seq: i64, t: Take) -> Result<Option<Row>> {
    let now = t.now.as_millisecond();
    let set = take_set("$1", "$2", "$3");
    let row: Option<Row> = sqlx::query_as(&format!(
        "UPDATE jobs {set} WHERE seq = $4 AND status = 'waiting' RETURNING {COLUMNS}"
    ))
    .bind(Uuid::new_v4().to_string())
    .bind(now + ms(t.lease))
    .bind(now)
    .bind(seq)
    .fetch_optional(&mut *conn)
    .await?;
    Ok(row)
}

/// The oldest blocked job of a concurrency key, claimed for a [`Take`] when the key has a free
/// slot, in one statement (the slots held are counted in it). The caller holds the key's lock
/// (PostgreSQL).
async fn take_blocked(
    conn: &mut Conn,
    queue: &str,
    key: &str,
    limit: i64,
    t: Take,
) -> Result<Option<Row>> {
    let now = t.now.as_millisecond();
    let row: Option<Row> = sqlx::query_as(&format!(
        "WITH picked AS MATERIALIZED (SELECT seq FROM jobs
                       WHERE queue = $4 AND concurrency_key = $5 AND status = 'blocked'
                       ORDER BY run_at, seq
                       LIMIT (SELECT CASE WHEN $6 > COUNT(*) THEN 1 ELSE 0 END
                              FROM jobs
                              WHERE queue = $4 AND concurrency_key = $5
                                AND status IN ('pending', 'running'))
                       {})
         UPDATE jobs {}
         WHERE seq IN (SELECT seq FROM picked) AND status = 'blocked'
         RETURNING {COLUMNS}",
        skip_locked(conn),
        take_set("$1", "$2", "$3")
    ))
    .bind(Uuid::new_v4().to_string())
    .bind(now + ms(t.lease))
    .bind(now)
    .bind(queue)
    .bind(key)
    .bind(limit)
    .fetch_optional(&mut *conn)
    .await?;
    Ok(row)
}

/// Runs one statement that changes a job only while the caller still holds its lease.
/// Returns false when the lease was lost (expired and taken over, or released).
/// A unit of a group commit, like [`finish`].
async fn with_lease(
    store: &Store,
    sql: &'static str,
    job: &Job,
    binds: LeaseBinds,
) -> Result<bool> {
    let lease = job.lease_id.clone().unwrap_or_default();
    let id = job.id.to_string();
    store
        .group_commit(move |tx| {
            Box::pin(async move {
                let mut q = sqlx::query(sql).bind(id).bind(lease);
                if let Some(t) = binds.at {
                    q = q.bind(t.as_millisecond());
                }
                if let Some(e) = binds.error {
                    q = q.bind(e);
                }
                if let Some(n) = binds.now {
                    q = q.bind(n.as_millisecond());
                }
                let done = q.execute(&mut **tx).await?;
                Ok(done.rows_affected() == 1)
            })
        })
        .await
}

#[derive(Default)]
struct LeaseBinds {
    at: Option<Timestamp>,
    error: Option<String>,
    now: Option<Timestamp>,
}

const COMPLETE: &str = "DELETE FROM jobs WHERE id = $1 AND lease_id = $2 AND status = 'running'
     RETURNING ordering_key, concurrency_key, concurrency_limit";

/// The job succeeded: it is removed (its ordering key's next job moves up, its concurrency slot
/// goes to the oldest blocked job). False when the lease was lost.
pub async fn complete(store: &Store, job: &Job) -> Result<bool> {
    Ok(complete_taking(store, job, None).await?.held)
}

/// [`complete`], and with `take` the job that moves into its place is claimed for the caller
/// when it can run now (see [`Take`]).
pub async fn complete_taking(store: &Store, job: &Job, take: Option<Take>) -> Result<Ended> {
    finish(store, job, COMPLETE, LeaseBinds::default(), take).await
}

/// [`complete`] in the transaction that records the job's work, so the work and the job's end
/// commit together: one commit fewer per job, and a crash cannot leave the work done with the
/// job still queued. False (and nothing changed) when the lease was lost; the caller's other
/// writes still commit if it commits.
pub async fn complete_in(tx: &mut Tx, job: &Job) -> Result<bool> {
    Ok(complete_in_taking(tx, job, None).await?.held)
}

/// [`complete_in`] with a [`Take`] of the job that moves into its place. The taken job is the
/// caller's only once the transaction commits; if it rolls back, the job stays where it was.
pub async fn complete_in_taking(tx: &mut Tx, job: &Job, take: Option<Take>) -> Result<Ended> {
    finish_in(tx, job, COMPLETE, LeaseBinds::default(), take).await
}

/// [`complete_in_taking`] in the same round trip as the caller's statements `sql` (which return
/// no rows; `args` are their parameters, `$1`…) on SQLite, for a job without an ordering key:
/// one command runs them, gives the freed slot to the key's oldest blocked job (claimed for the
/// caller under `take`, else made `pending`) and deletes the job, instead of four round trips.
/// Elsewhere (PostgreSQL, or a job with an ordering key) `sql` runs first and the completion
/// follows as [`complete_in_taking`] runs it. Either way the caller's statements take effect
/// even when the lease was lost (`held: false`), as they would before a separate completion.
pub async fn complete_in_after<'q>(
    tx: &mut Tx,
    job: &Job,
    take: Option<Take>,
    sql: &'q str,
    mut args: sqlx::any::AnyArguments<'q>,
) -> Result<Ended> {
    use sqlx::{Arguments, Row as _};
    if is_postgres(tx) || job.ordering_key.is_some() {
        sqlx::query_with(sql, args).execute(&mut **tx).await?;
        return complete_in_taking(tx, job, take).await;
    }
    let n = args.len();
    let [id, lease, new_lease, until, now] = [1, 2, 3, 4, 5].map(|i| format!("${}", n + i));
    let (set, returning) = match take {
        Some(_) => (take_set(&new_lease, &until, &now), COLUMNS),
        None => ("SET status = 'pending'".to_owned(), "1 AS handed"),
    };
    // The successor is picked while the job still holds its slot under the caller's lease, so
    // a slot is free when the key holds no more than its limit counting this job.
    let full = format!(
        "{sql};
         UPDATE jobs {set}
         WHERE status = 'blocked' AND seq = (
             SELECT b.seq FROM jobs d
             JOIN jobs b ON b.queue = d.queue AND b.concurrency_key = d.concurrency_key
                        AND b.status = 'blocked'
             WHERE d.id = {id} AND d.lease_id = {lease} AND d.status = 'running'
               AND d.concurrency_limit >= (SELECT COUNT(*) FROM jobs h
                                           WHERE h.queue = d.queue
                                             AND h.concurrency_key = d.concurrency_key
                                             AND h.status IN ('pending', 'running'))
             ORDER BY b.run_at, b.seq LIMIT 1)
         RETURNING {returning};
         DELETE FROM jobs WHERE id = {id} AND lease_id = {lease} AND status = 'running'
         RETURNING 1 AS held"
    );
    let (at, lease_for) = match take {
        Some(t) => (t.now.as_millisecond(), ms(t.lease)),
        None => (0, 0),
    };
    let binds: [Result<(), sqlx::error::BoxDynError>; 5] = [
        args.add(job.id.to_string()),
        args.add(job.lease_id.clone().unwrap_or_default()),
        args.add(Uuid::new_v4().to_string()),
        args.add(at + lease_for),
        args.add(at),
    ];
    for b in binds {
        b.map_err(|e| StoreError::Database(sqlx::Error::Encode(e)))?;
    }
    let rows = sqlx::query_with(&full, args).fetch_all(&mut **tx).await?;
    let mut ended = Ended::default();
    for row in rows {
        if row.try_column("held").is_ok() {
            ended.held = true;
        } else if row.try_column("handed").is_ok() {
            wake::mark_enqueued();
        } else {
            ended.next = Some(Row::from_row(&row)?.into_model()?);
        }
    }
    Ok(ended)
}

/// The attempt failed and the job runs again at `at`. It stays the head of its ordering key
/// (so order survives retries) but gives its concurrency slot back until then (`scheduled`).
pub async fn retry(
    store: &Store,
    job: &Job,
    at: Timestamp,
    error: &str,
    now: Timestamp,
) -> Result<bool> {
    let lease = job.lease_id.clone().unwrap_or_default();
    let (id, queue, error) = (job.id.to_string(), job.queue.clone(), error.to_owned());
    // A unit of a group commit, like [`finish`].
    store
        .group_commit(move |tx| {
            Box::pin(async move {
                let done: Option<(Option<String>, Option<i64>)> = sqlx::query_as(
                    "UPDATE jobs SET status = CASE WHEN concurrency_key IS NULL THEN 'pending'
                                                   ELSE 'scheduled' END,
                            run_at = $3, last_error = $4, lease_id = NULL, locked_until = NULL,
                            updated_at = $5
                     WHERE id = $1 AND lease_id = $2 AND status = 'running'
                     RETURNING concurrency_key, concurrency_limit",
                )
                .bind(id)
                .bind(lease)
                .bind(at.as_millisecond())
                .bind(error)
                .bind(now.as_millisecond())
                .fetch_optional(&mut **tx)
                .await?;
                let Some((concurrency_key, limit)) = done else {
                    return Ok(false);
                };
                if let Some(key) = concurrency_key {
                    let keys = BTreeMap::from([(key, limit.unwrap_or(1))]);
                    hand_off_all(&mut *tx, &queue, keys).await?;
                }
                if at <= now {
                    wake::mark_enqueued();
                }
                Ok(true)
            })
        })
        .await
}

/// The job failed for good (retries spent or a permanent error): dead letter. Dead jobs hold
/// back nothing: the next job of its ordering key moves on.
pub async fn bury(store: &Store, job: &Job, now: Timestamp, error: &str) -> Result<bool> {
    finish(
        store,
        job,
        "UPDATE jobs SET status = 'dead', last_error = $4, lease_id = NULL, locked_until = NULL,
                updated_at = $3
         WHERE id = $1 AND lease_id = $2 AND status = 'running'
         RETURNING ordering_key, concurrency_key, concurrency_limit",
        LeaseBinds {
            at: Some(now),
            error: Some(error.to_owned()),
            now: None,
        },
        None,
    )
    .await
    .map(|ended| ended.held)
}

/// Keeps the lease of a long-running job alive until `until`.
pub async fn extend(store: &Store, job: &Job, until: Timestamp) -> Result<bool> {
    with_lease(
        store,
        "UPDATE jobs SET locked_until = $3 WHERE id = $1 AND lease_id = $2 AND status = 'running'",
        job,
        LeaseBinds {
            at: Some(until),
            ..LeaseBinds::default()
        },
    )
    .await
}

/// Gives an unfinished job back (graceful shutdown): runnable at once, the attempt not counted.
/// It keeps its place: the head of its ordering key, a slot of its concurrency key.
pub async fn release(store: &Store, job: &Job, now: Timestamp) -> Result<bool> {
    let released = with_lease(
        store,
        "UPDATE jobs SET status = 'pending', run_at = $3, attempts = attempts - 1, lease_id = NULL,
                locked_until = NULL, updated_at = $3
         WHERE id = $1 AND lease_id = $2 AND status = 'running'",
        job,
        LeaseBinds {
            at: Some(now),
            ..LeaseBinds::default()
        },
    )
    .await?;
    if released {
        store.wake_workers();
    }
    Ok(released)
}

pub async fn get(conn: &mut Conn, id: JobId) -> Result<Job> {
    let row: Row = sqlx::query_as(&format!("SELECT {COLUMNS} FROM jobs WHERE id = $1"))
        .bind(id.to_string())
        .fetch_one(&mut *conn)
        .await?;
    row.into_model()
}

/// Dead-lettered jobs of a queue, oldest first.
pub async fn dead(conn: &mut Conn, queue: &str, page: &PageRequest) -> Result<Page<Job>> {
    let found: Vec<Row> = sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM jobs WHERE queue = $1 AND status = 'dead' AND id > $2
         ORDER BY id LIMIT $3"
    ))
    .bind(queue)
    .bind(page.after.clone().unwrap_or_default())
    .bind(i64::from(page.limit) + 1)
    .fetch_all(&mut *conn)
    .await?;
    Ok(Page::from_overfetch(rows(found)?, page.limit, |j| {
        j.id.to_string()
    }))
}

/// Puts a dead job back in line with a fresh attempt budget: behind its ordering key's
/// unfinished jobs if it has any (run it in a transaction for that check to be exact on
/// PostgreSQL).
pub async fn requeue_dead(conn: &mut Conn, id: JobId, now: Timestamp) -> Result<()> {
    let found: Option<(String, Option<String>, Option<String>)> = sqlx::query_as(
        "SELECT queue, ordering_key, concurrency_key FROM jobs WHERE id = $1 AND status = 'dead'",
    )
    .bind(id.to_string())
    .fetch_optional(&mut *conn)
    .await?;
    let Some((queue, ordering_key, concurrency_key)) = found else {
        return Err(StoreError::NotFound);
    };
    let behind = match &ordering_key {
        Some(key) => {
            lock_ordering_key(conn, &queue, key).await?;
            key_has_unfinished(conn, &queue, key).await?
        }
        None => false,
    };
    let status = if behind {
        "waiting"
    } else {
        head_status(concurrency_key.as_deref())
    };
    let done = sqlx::query(
        "UPDATE jobs SET status = $3, run_at = $2, attempts = 0, first_attempt_at = NULL,
                updated_at = $2
         WHERE id = $1 AND status = 'dead'",
    )
    .bind(id.to_string())
    .bind(now.as_millisecond())
    .bind(status)
    .execute(&mut *conn)
    .await?;
    if done.rows_affected() == 0 {
        return Err(StoreError::NotFound);
    }
    if !behind {
        wake::mark_enqueued();
    }
    Ok(())
}

/// Jobs per queue and status, for metrics and monitoring.
pub async fn counts(conn: &mut Conn) -> Result<Vec<(String, String, i64)>> {
    Ok(sqlx::query_as(
        "SELECT queue, status, COUNT(*) FROM jobs GROUP BY queue, status ORDER BY queue, status",
    )
    .fetch_all(&mut *conn)
    .await?)
}

/// One queue's jobs in one status, for the metrics an operator alerts on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Depth {
    pub queue: String,
    /// The store's own status (`pending`, `running`, `waiting`, `scheduled`, `blocked`, `dead`).
    pub status: String,
    pub jobs: u64,
    /// The earliest `run_at` among these jobs that is due at `now` (none for `dead` and
    /// `running`, whose `run_at` says nothing about waiting).
    pub oldest_due: Option<Timestamp>,
}

/// How many jobs each queue holds in each status, and since when the oldest due one waits.
/// One aggregate over the table (a scrape every 15 s reads it; on a backlog of 1,000,000 it
/// is a sequential scan of the jobs table's narrow columns).
pub async fn depth(conn: &mut Conn, now: Timestamp) -> Result<Vec<Depth>> {
    let rows: Vec<(String, String, i64, Option<i64>)> = sqlx::query_as(
        "SELECT queue, status, COUNT(*),
                MIN(CASE WHEN run_at <= $1 AND status NOT IN ('dead', 'running')
                         THEN run_at END)
         FROM jobs GROUP BY queue, status ORDER BY queue, status",
    )
    .bind(now.as_millisecond())
    .fetch_all(&mut *conn)
    .await?;
    rows.into_iter()
        .map(|(queue, status, n, oldest)| {
            Ok(Depth {
                queue,
                status,
                jobs: u64::try_from(n).unwrap_or(0),
                oldest_due: oldest.map(ts).transpose()?,
            })
        })
        .collect()
}

/// When the next pending job of `queue` becomes runnable, if any: lets an idle worker sleep
/// exactly until then.
pub async fn next_run_at(conn: &mut Conn, queue: &str) -> Result<Option<Timestamp>> {
    let at: Option<i64> = sqlx::query_scalar(
        "SELECT MIN(run_at) FROM jobs
         WHERE queue = $1 AND status IN ('pending', 'waiting', 'scheduled', 'blocked')",
    )
    .bind(queue)
    .fetch_one(&mut *conn)
    .await?;
    at.map(ts).transpose()
}

/// The earliest time a claim of `queue` could find something it cannot find now: a `pending`
/// or `scheduled` job's `run_at`, or a lease's end. Three index probes; an idle worker sleeps
/// until then (or until woken).
pub async fn next_due(conn: &mut Conn, queue: &str) -> Result<Option<Timestamp>> {
    let at: Option<i64> = sqlx::query_scalar(
        "SELECT MIN(t) FROM (
             SELECT MIN(run_at) AS t FROM jobs WHERE queue = $1 AND status = 'pending'
             UNION ALL
             SELECT MIN(run_at) AS t FROM jobs WHERE queue = $1 AND status = 'scheduled'
             UNION ALL
             SELECT MIN(locked_until) AS t FROM jobs WHERE queue = $1 AND status = 'running'
         ) d",
    )
    .bind(queue)
    .fetch_one(&mut *conn)
    .await?;
    at.map(ts).transpose()
}
