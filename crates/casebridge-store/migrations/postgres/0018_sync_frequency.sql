-- Sync frequency (SYNC1, issue 13). The frequency itself is stored with the toggles (settings
-- JSON). `next_run_at` is the anchor of an hourly or daily schedule: the next run when it is
-- later than now, else runs follow it every interval (NULL in real time). `batched_until` is set
-- on an operation queued to wait for the next run (its job is not due before), so the pending
-- list can say why it has not gone; a release ("run now", back to real time) clears it.
ALTER TABLE integrations ADD COLUMN next_run_at BIGINT;
ALTER TABLE crm_ops ADD COLUMN batched_until BIGINT;
