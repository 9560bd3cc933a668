-- Job states that keep a claim's cost independent of the backlog (PostgreSQL). Keep in step
-- with ../sqlite/0008_job_states.sql, which explains the states.
ALTER TABLE jobs DROP CONSTRAINT jobs_status_check;
ALTER TABLE jobs ADD CONSTRAINT jobs_status_check CHECK (status IN
    ('pending', 'running', 'dead', 'waiting', 'scheduled', 'blocked'));

UPDATE jobs SET status = 'waiting'
WHERE status = 'pending' AND ordering_key IS NOT NULL
  AND EXISTS (SELECT 1 FROM jobs e
              WHERE e.queue = jobs.queue AND e.ordering_key = jobs.ordering_key
                AND e.status <> 'dead' AND (e.seq < jobs.seq OR e.status = 'running'));
UPDATE jobs SET status = 'scheduled' WHERE status = 'pending' AND concurrency_key IS NOT NULL;

DROP INDEX jobs_ready;
DROP INDEX jobs_running;
CREATE INDEX jobs_claimable ON jobs(queue, run_at, seq) WHERE status = 'pending';
CREATE INDEX jobs_leased ON jobs(queue, locked_until) WHERE status = 'running';
CREATE INDEX jobs_scheduled ON jobs(queue, run_at, seq) WHERE status = 'scheduled';
CREATE INDEX jobs_blocked ON jobs(queue, concurrency_key, run_at, seq) WHERE status = 'blocked';
CREATE INDEX jobs_waiting ON jobs(queue, ordering_key, seq) WHERE status = 'waiting';
CREATE INDEX jobs_dead ON jobs(queue, id) WHERE status = 'dead';
