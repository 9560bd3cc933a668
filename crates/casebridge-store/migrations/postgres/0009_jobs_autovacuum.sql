-- Vacuum the job table early (PostgreSQL). Keep in step with ../sqlite/0009_jobs_autovacuum.sql.
--
-- Every state move of a job writes a new row version and new entries in the partial index of its
-- new state; the old entries stay in the index until VACUUM. A claim's index probes walk over
-- them: right after 300,000 keyed jobs were gated, one probe of `jobs_scheduled` read 4,412
-- index pages, 19 after VACUUM (bench/README.md). The default (20 % of the table dead) would wait
-- for 200,000 dead rows in a million; vacuum after 10,000 instead, whatever the table's size.
ALTER TABLE jobs SET (autovacuum_vacuum_scale_factor = 0.0, autovacuum_vacuum_threshold = 10000,
                      autovacuum_analyze_scale_factor = 0.0, autovacuum_analyze_threshold = 10000);
