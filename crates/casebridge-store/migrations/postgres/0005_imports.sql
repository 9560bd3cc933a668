-- Manual imports of CRM records (SPEC LR14): one row per uploaded file, with its progress
-- (postgres). Keep in step with ../sqlite/0005_imports.sql.
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
    total_rows      BIGINT NOT NULL,
    processed_rows  BIGINT NOT NULL DEFAULT 0,
    created_count   BIGINT NOT NULL DEFAULT 0,
    updated_count   BIGINT NOT NULL DEFAULT 0,
    unchanged_count BIGINT NOT NULL DEFAULT 0,
    failed_count    BIGINT NOT NULL DEFAULT 0,
    errors          TEXT NOT NULL DEFAULT '[]',
    failure         TEXT,
    source          TEXT,
    created_at      BIGINT NOT NULL,
    started_at      BIGINT,
    finished_at     BIGINT,
    updated_at      BIGINT NOT NULL,
    UNIQUE (company_id, id)
);
CREATE INDEX imports_company ON imports(company_id, provider, id);
