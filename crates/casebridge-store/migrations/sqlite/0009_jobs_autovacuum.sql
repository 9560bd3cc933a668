-- Vacuum the job table early (PostgreSQL only; see ../postgres/0009_jobs_autovacuum.sql).
-- SQLite has no MVCC row versions to vacuum: a changed index entry is replaced in place, so this
-- migration changes nothing here. It exists to keep the two migration lists in step.
SELECT 1;
