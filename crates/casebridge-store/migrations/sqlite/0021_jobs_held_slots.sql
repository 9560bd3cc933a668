-- The slots a concurrency key holds (its `pending` and `running` jobs), counted by every gate
-- and hand-off, from an index of only those jobs rather than of every job of the key (see
-- ../postgres/0021_jobs_held_slots.sql for what the wider index cost on PostgreSQL).
CREATE INDEX jobs_held ON jobs(queue, concurrency_key)
    WHERE status IN ('pending', 'running') AND concurrency_key IS NOT NULL;
