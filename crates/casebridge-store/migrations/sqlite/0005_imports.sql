-- Manual imports of CRM records (SPEC LR14): one row per uploaded file, with its progress
-- (sqlite). Keep in step with ../postgres/0005_imports.sql.
--
-- The uploaded CSV is kept in `source` until the import finishes (then cleared), so a worker
-- that dies mid-import resumes from `processed_rows`. `errors` is a JSON array of
-- {"row": <1-based data row, header not counted>, "message": ...}, capped by the writer.
CREATE TABLE imports (
    id              TEXT PRIMARY KEY,
    company_id      TEXT NOT NULL REFERENCES companies(id),
    provider        TEXT NOT NULL,
    status          TEXT NOT NULL CHECK (status IN ('queued', 'running', 'done', 'failed')),
    file_name       TEXT,
    total_rows      INTEGER NOT NULL,
    processed_rows  INTEGER NOT NULL DEFAULT 0,
    created_count   INTEGER NOT NULL DEFAULT 0,
    updated_count   INTEGER NOT NULL DEFAULT 0,
    unchanged_count INTEGER NOT NULL DEFAULT 0,
    failed_count    INTEGER NOT NULL DEFAULT 0,
    errors          TEXT NOT NULL DEFAULT '[]',
    failure         TEXT,
    source          TEXT,
    created_at      INTEGER NOT NULL,
    started_at      INTEGER,
    finished_at     INTEGER,
    updated_at      INTEGER NOT NULL,
    UNIQUE (company_id, id)
);
CREATE INDEX imports_company ON imports(company_id, provider, id);
