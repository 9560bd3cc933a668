-- Job states that keep a claim's cost independent of the backlog (SQLite). Keep in step with
-- ../postgres/0008_job_states.sql.
--
-- `pending` now means claimable once `run_at` passes: the job already holds what it needs (it is
-- the head of its ordering key, and a slot of its concurrency key). A claim reads only due
-- `pending` rows and expired `running` leases, through partial indexes, so jobs that cannot run
-- are never scanned. The other waiting states:
--   waiting   — behind an earlier unfinished job of its ordering key; the next one moves on when
--               that job finishes (done or dead).
--   scheduled — a job with a concurrency key that holds no slot yet: new, or retried, until its
--               `run_at`; then it is gated (to `pending` if its key has a free slot, else
--               `blocked`).
--   blocked   — due, waiting for a slot of its concurrency key; a finishing job of the key hands
--               its slot to the oldest one.
-- All three read as "pending" outside the store.
--
-- SQLite cannot change a CHECK constraint in place, so the table is rebuilt (no foreign key
-- points at it).
CREATE TABLE jobs_new (
    seq               INTEGER PRIMARY KEY AUTOINCREMENT,
    id                TEXT NOT NULL UNIQUE,
    queue             TEXT NOT NULL,
    kind              TEXT NOT NULL,
    company_id        TEXT,
    payload           TEXT NOT NULL,
    ordering_key      TEXT,
    concurrency_key   TEXT,
    concurrency_limit INTEGER,
    status            TEXT NOT NULL CHECK (status IN
                        ('pending', 'running', 'dead', 'waiting', 'scheduled', 'blocked')),
    attempts          INTEGER NOT NULL DEFAULT 0,
    run_at            INTEGER NOT NULL,
    first_attempt_at  INTEGER,
    locked_until      INTEGER,
    lease_id          TEXT,
    last_error        TEXT,
    created_at        INTEGER NOT NULL,
    updated_at        INTEGER NOT NULL
);
INSERT INTO jobs_new (seq, id, queue, kind, company_id, payload, ordering_key, concurrency_key,
                      concurrency_limit, status, attempts, run_at, first_attempt_at, locked_until,
                      lease_id, last_error, created_at, updated_at)
SELECT seq, id, queue, kind, company_id, payload, ordering_key, concurrency_key,
       concurrency_limit, status, attempts, run_at, first_attempt_at, locked_until,
       lease_id, last_error, created_at, updated_at
FROM jobs;
DROP TABLE jobs;
ALTER TABLE jobs_new RENAME TO jobs;

-- Existing pending jobs: behind an unfinished job of their ordering key -> waiting; the rest
-- with a concurrency key -> scheduled (the first claim gates them against their key's running
-- jobs); the others stay pending. (Changing pending to waiting does not change what the
-- subquery sees: both are unfinished.)
UPDATE jobs SET status = 'waiting'
WHERE status = 'pending' AND ordering_key IS NOT NULL
  AND EXISTS (SELECT 1 FROM jobs e
              WHERE e.queue = jobs.queue AND e.ordering_key = jobs.ordering_key
                AND e.status <> 'dead' AND (e.seq < jobs.seq OR e.status = 'running'));
UPDATE jobs SET status = 'scheduled' WHERE status = 'pending' AND concurrency_key IS NOT NULL;

-- Claimable jobs, in claim order.
CREATE INDEX jobs_claimable ON jobs(queue, run_at, seq) WHERE status = 'pending';
-- Leases, for takeover after a crash.
CREATE INDEX jobs_leased ON jobs(queue, locked_until) WHERE status = 'running';
-- Jobs to gate when their time comes.
CREATE INDEX jobs_scheduled ON jobs(queue, run_at, seq) WHERE status = 'scheduled';
-- Hand-off of a concurrency key's freed slot to its oldest blocked job.
CREATE INDEX jobs_blocked ON jobs(queue, concurrency_key, run_at, seq) WHERE status = 'blocked';
-- The next job of an ordering key.
CREATE INDEX jobs_waiting ON jobs(queue, ordering_key, seq) WHERE status = 'waiting';
-- Every job of an ordering key (is there an unfinished one?), and a key's slot holders.
CREATE INDEX jobs_ordering ON jobs(queue, ordering_key, seq) WHERE ordering_key IS NOT NULL;
CREATE INDEX jobs_concurrency ON jobs(queue, concurrency_key, status) WHERE concurrency_key IS NOT NULL;
-- The dead-letter list.
CREATE INDEX jobs_dead ON jobs(queue, id) WHERE status = 'dead';
