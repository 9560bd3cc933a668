-- The slots a concurrency key holds (its `pending` and `running` jobs), counted by every gate
-- and hand-off. Through `jobs_concurrency` (every job of the key) PostgreSQL read the whole key:
-- with 45,000 deliveries of one webhook waiting, one count took 14.5 ms (a bitmap scan of 46,044
-- entries, the status filtered on the heap), and a drain of 50,000 ran at 82 deliveries/s. This
-- index holds only the jobs that hold slots (at most the key's limit, plus entries not yet
-- vacuumed). Keep in step with ../sqlite/0021_jobs_held_slots.sql.
CREATE INDEX jobs_held ON jobs(queue, concurrency_key)
    WHERE status IN ('pending', 'running') AND concurrency_key IS NOT NULL;
