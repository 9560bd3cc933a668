-- Imports pulled from the CRM's API (SPEC LR14) (SQLite). Keep in step with
-- ../postgres/0007_import_from_api.sql.
--
-- `origin`: where an import's rows come from: 'csv' (an uploaded file, in `source` from the
-- start) or 'api' (the import's job first fetches the provider's leads changed since
-- `fetch_since` — NULL: all of them — and stores them in `source` as the CSV an upload would
-- be, then applies them exactly as an upload). `fetched_at` is set when that fetch is stored
-- (with `total_rows`); it stays NULL while an 'api' import is still fetching.
ALTER TABLE imports ADD COLUMN origin TEXT NOT NULL DEFAULT 'csv' CHECK (origin IN ('csv', 'api'));
ALTER TABLE imports ADD COLUMN fetch_since INTEGER;
ALTER TABLE imports ADD COLUMN fetched_at INTEGER;
