//! The job table behind the durable queue (`casebridge-queue` runs the jobs).
//!
//! Invariants:
//! - A job is enqueued with [`enqueue`] on the caller's connection, so it commits or rolls back
//!   with the change that caused it (transactional outbox).
//! - A job is claimed by one worker at a time: on PostgreSQL the claim locks rows with
//!   `FOR UPDATE SKIP LOCKED`; on SQLite the claim runs in a `BEGIN IMMEDIATE` transaction, which
//!   holds the database's single write lock.
//! - A claim carries a lease (`lease_id`, `locked_until`). Completing, retrying or burying a job
//!   needs the lease id, so a worker whose lease expired cannot overwrite the outcome of the
//!   worker that took the job over. An expired lease makes the job claimable again.
//! - Jobs that share an ordering key run one at a time in enqueue order: a job is claimable only
//!   when no earlier job with its key is pending or running. Dead jobs do not block.
//! - Jobs that share a concurrency key run at most `concurrency_limit` at once: a claim takes,
//!   per key, only as many as the limit leaves after counting the key's running jobs. Within a
//!   process claims are serial, so the bound is exact; two processes claiming at the same instant
//!   on PostgreSQL can each fill the limit once.
//! - Finished jobs are deleted; dead jobs stay (status `dead`) until requeued or pruned.

use std::time::Duration;

use casebridge_domain::ids::JobId;
use casebridge_domain::jobs::{Job, JobStatus, NewJob};
use casebridge_domain::page::{Page, PageRequest};
use jiff::Timestamp;
use sqlx::FromRow;
use uuid::Uuid;

use crate::{parse_id, parse_opt_id, ts, Backend, Conn, Result, Store, StoreError};

const COLUMNS: &str =
    "id, queue, kind, company_id, payload, ordering_key, status, attempts, run_at,
    first_attempt_at, locked_until, lease_id, last_error, created_at";

#[derive(FromRow)]
struct Row {
    id: String,
    queue: String,
    kind: String,
    company_id: Option<String>,
    payload: String,
    ordering_key: Option<String>,
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
        Ok(Job {
            id: parse_id("jobs.id", &self.id)?,
            queue: self.queue,
            kind: self.kind,
            company_id: parse_opt_id("jobs.company_id", self.company_id.as_deref())?,
            payload: serde_json::from_str(&self.payload)
                .map_err(|e| StoreError::Corrupt(format!("jobs.payload: {e}")))?,
            ordering_key: self.ordering_key,
            status: JobStatus::parse(&self.status)
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

/// Adds a job on the caller's connection, normally inside the transaction of the change that
/// caused it.
pub async fn enqueue(conn: &mut Conn, job: &NewJob, now: Timestamp) -> Result<JobId> {
    if let Some(key) = &job.ordering_key {
        if conn.backend_name() == "PostgreSQL" {
            // Serialise enqueues per key until commit, so `seq` order (assigned at insert) is
            // also commit order and a later job of the key can never become visible first.
            sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended($1, 7))")
                .bind(format!("{}/{}", job.queue, key))
                .execute(&mut *conn)
                .await?;
        }
    }
    let id = JobId::new();
    sqlx::query(
        "INSERT INTO jobs (id, queue, kind, company_id, payload, ordering_key, concurrency_key,
                           concurrency_limit, status, attempts, run_at, created_at, updated_at)
         VALUES ($1, $2, $3, $4, $5, $6, $9, $10, 'pending', 0, $7, $8, $8)",
    )
    .bind(id.to_string())
    .bind(&job.queue)
    .bind(&job.kind)
    .bind(job.company_id.map(|c| c.to_string()))
    .bind(job.payload.to_string())
    .bind(job.ordering_key.clone())
    .bind(job.run_at.unwrap_or(now).as_millisecond())
    .bind(now.as_millisecond())
    .bind(job.concurrency.as_ref().map(|(k, _)| k.clone()))
    .bind(job.concurrency.as_ref().map(|(_, l)| i64::from(*l)))
    .execute(&mut *conn)
    .await?;
    Ok(id)
}

/// Removes the pending (not running) jobs of `queue` with `ordering_key` and returns them, so
/// the caller can enqueue their work again in another order, in its transaction.
pub async fn take_pending(conn: &mut Conn, queue: &str, ordering_key: &str) -> Result<Vec<Job>> {
    let taken: Vec<Row> = sqlx::query_as(&format!(
        "DELETE FROM jobs WHERE queue = $1 AND ordering_key = $2 AND status = 'pending'
         RETURNING {COLUMNS}"
    ))
    .bind(queue)
    .bind(ordering_key)
    .fetch_all(&mut *conn)
    .await?;
    rows(taken)
}

/// Claims up to `limit` runnable jobs of `queue` for `lease`, in `run_at` order.
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
    let lock = match store.backend() {
        Backend::Postgres => "FOR UPDATE SKIP LOCKED",
        Backend::Sqlite => "",
    };
    // Candidates are the runnable jobs (due, or leased by a worker that stopped renewing) that no
    // earlier job of their ordering key holds back. Per concurrency key, ROW_NUMBER ranks them
    // so that, added to the key's running count, no more than its limit are taken. The outer
    // SELECT takes the limit in due order and, on PostgreSQL, skips rows another claim holds.
    // SQL comments inside the statement are fine for both backends.
    let sql = format!(
        "UPDATE jobs SET status = 'running', attempts = attempts + 1, lease_id = $1,
                locked_until = $2, first_attempt_at = COALESCE(first_attempt_at, $3),
                updated_at = $3
         WHERE seq IN (
             SELECT seq FROM jobs WHERE seq IN (
                 SELECT c.seq FROM (
                     SELECT j.seq, j.concurrency_key, j.concurrency_limit,
                            ROW_NUMBER() OVER (PARTITION BY j.concurrency_key
                                               ORDER BY j.run_at, j.seq) AS rn
                     FROM jobs j
                     WHERE j.queue = $4
                       AND ((j.status = 'pending' AND j.run_at <= $3)
                            OR (j.status = 'running' AND j.locked_until <= $3))
                       AND (j.ordering_key IS NULL OR NOT EXISTS (
                            SELECT 1 FROM jobs e
                            WHERE e.queue = j.queue AND e.ordering_key = j.ordering_key
                              AND e.seq < j.seq AND e.status <> 'dead'))
                 ) c
                 WHERE c.concurrency_key IS NULL
                    OR c.rn + (SELECT COUNT(*) FROM jobs r
                               WHERE r.queue = $4 AND r.concurrency_key = c.concurrency_key
                                 AND r.status = 'running' AND r.locked_until > $3)
                       <= c.concurrency_limit)
               -- Repeated at the locking level: on PostgreSQL a row that another claim
               -- changed after our snapshot is re-checked against these conditions.
               AND ((status = 'pending' AND run_at <= $3)
                    OR (status = 'running' AND locked_until <= $3))
             ORDER BY run_at, seq
             LIMIT $5
             {lock})
         RETURNING {COLUMNS}"
    );
    let lease_id = Uuid::new_v4().to_string();
    let mut tx = store.begin().await?;
    let claimed: Vec<Row> = sqlx::query_as(&sql)
        .bind(&lease_id)
        .bind(now.as_millisecond() + ms(lease))
        .bind(now.as_millisecond())
        .bind(queue)
        .bind(i64::from(limit))
        .fetch_all(&mut *tx)
        .await?;
    tx.commit().await?;
    let mut jobs = rows(claimed)?;
    // RETURNING does not promise an order.
    jobs.sort_by_key(|j| (j.run_at, j.id));
    Ok(jobs)
}

/// Runs one statement that changes a job only while the caller still holds its lease.
/// Returns false when the lease was lost (expired and taken over, or released).
async fn with_lease(store: &Store, sql: &str, job: &Job, binds: LeaseBinds<'_>) -> Result<bool> {
    let lease = job.lease_id.as_deref().unwrap_or_default();
    // A write transaction, so on SQLite it queues with the other writers (see `Tx`).
    let mut conn = store.begin().await?;
    let mut q = sqlx::query(sql).bind(job.id.to_string()).bind(lease);
    if let Some(t) = binds.at {
        q = q.bind(t.as_millisecond());
    }
    if let Some(e) = binds.error {
        q = q.bind(e);
    }
    if let Some(n) = binds.now {
        q = q.bind(n.as_millisecond());
    }
    let done = q.execute(&mut *conn).await?;
    conn.commit().await?;
    Ok(done.rows_affected() == 1)
}

#[derive(Default)]
struct LeaseBinds<'a> {
    at: Option<Timestamp>,
    error: Option<&'a str>,
    now: Option<Timestamp>,
}

/// The job succeeded: it is removed.
pub async fn complete(store: &Store, job: &Job) -> Result<bool> {
    with_lease(
        store,
        "DELETE FROM jobs WHERE id = $1 AND lease_id = $2 AND status = 'running'",
        job,
        LeaseBinds::default(),
    )
    .await
}

/// The attempt failed and the job runs again at `at`.
pub async fn retry(
    store: &Store,
    job: &Job,
    at: Timestamp,
    error: &str,
    now: Timestamp,
) -> Result<bool> {
    with_lease(
        store,
        "UPDATE jobs SET status = 'pending', run_at = $3, last_error = $4, lease_id = NULL,
                locked_until = NULL, updated_at = $5
         WHERE id = $1 AND lease_id = $2 AND status = 'running'",
        job,
        LeaseBinds {
            at: Some(at),
            error: Some(error),
            now: Some(now),
        },
    )
    .await
}

/// The job failed for good (retries spent or a permanent error): dead letter.
pub async fn bury(store: &Store, job: &Job, now: Timestamp, error: &str) -> Result<bool> {
    with_lease(
        store,
        "UPDATE jobs SET status = 'dead', last_error = $4, lease_id = NULL, locked_until = NULL,
                updated_at = $3
         WHERE id = $1 AND lease_id = $2 AND status = 'running'",
        job,
        LeaseBinds {
            at: Some(now),
            error: Some(error),
            now: None,
        },
    )
    .await
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
pub async fn release(store: &Store, job: &Job, now: Timestamp) -> Result<bool> {
    with_lease(
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
    .await
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

/// Puts a dead job back in line with a fresh attempt budget.
pub async fn requeue_dead(conn: &mut Conn, id: JobId, now: Timestamp) -> Result<()> {
    let done = sqlx::query(
        "UPDATE jobs SET status = 'pending', run_at = $2, attempts = 0, first_attempt_at = NULL,
                updated_at = $2
         WHERE id = $1 AND status = 'dead'",
    )
    .bind(id.to_string())
    .bind(now.as_millisecond())
    .execute(&mut *conn)
    .await?;
    if done.rows_affected() == 0 {
        return Err(StoreError::NotFound);
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

/// When the next pending job of `queue` becomes runnable, if any: lets an idle worker sleep
/// exactly until then.
pub async fn next_run_at(conn: &mut Conn, queue: &str) -> Result<Option<Timestamp>> {
    let at: Option<i64> =
        sqlx::query_scalar("SELECT MIN(run_at) FROM jobs WHERE queue = $1 AND status = 'pending'")
            .bind(queue)
            .fetch_one(&mut *conn)
            .await?;
    at.map(ts).transpose()
}
