-- File bytes move to the object store (P5) (SQLite). Keep in step with
-- ../postgres/0013_files_in_object_store.sql.
--
-- A document row names its object (`object_key`); `bytes` is kept only for rows written before
-- this migration, until `casebridge files migrate` moves them (then it is NULL). Exactly one of
-- the two is set. SQLite cannot drop a NOT NULL, so the table is rebuilt.
CREATE TABLE documents_new (
    id            TEXT PRIMARY KEY,
    company_id    TEXT NOT NULL REFERENCES companies(id),
    case_id       TEXT,
    call_id       TEXT,
    kind          TEXT NOT NULL CHECK (kind IN ('document', 'recording')),
    file_name     TEXT NOT NULL,
    content_type  TEXT NOT NULL,
    size          INTEGER NOT NULL,
    sha256        TEXT NOT NULL,
    bytes         BLOB,
    object_key    TEXT UNIQUE,
    created_at    INTEGER NOT NULL,
    UNIQUE (company_id, id),
    CHECK ((bytes IS NULL) <> (object_key IS NULL)),
    FOREIGN KEY (company_id, case_id) REFERENCES cases(company_id, id),
    FOREIGN KEY (company_id, call_id) REFERENCES calls(company_id, id)
);
INSERT INTO documents_new (id, company_id, case_id, call_id, kind, file_name, content_type, size,
                           sha256, bytes, object_key, created_at)
    SELECT id, company_id, case_id, call_id, kind, file_name, content_type, size, sha256, bytes,
           NULL, created_at
      FROM documents;
DROP TABLE documents;
ALTER TABLE documents_new RENAME TO documents;
CREATE INDEX documents_case ON documents(company_id, case_id, id);
CREATE INDEX documents_call ON documents(company_id, call_id, id);
-- What `casebridge files migrate` still has to move.
CREATE INDEX documents_inline ON documents(id) WHERE object_key IS NULL;

-- Object keys reserved by an upload before its object is written. The row that names the object
-- deletes the reservation in its own transaction; a reservation left behind (the upload failed
-- or the process died before its row committed) names an orphan object, which the sweep deletes.
CREATE TABLE file_uploads (
    object_key   TEXT PRIMARY KEY,
    company_id   TEXT NOT NULL REFERENCES companies(id),
    reserved_at  INTEGER NOT NULL
);
CREATE INDEX file_uploads_age ON file_uploads(reserved_at);
