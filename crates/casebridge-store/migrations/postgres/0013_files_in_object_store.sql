-- File bytes move to the object store (P5) (PostgreSQL). Keep in step with
-- ../sqlite/0013_files_in_object_store.sql.
--
-- A document row names its object (`object_key`); `bytes` is kept only for rows written before
-- this migration, until `casebridge files migrate` moves them (then it is NULL). Exactly one of
-- the two is set.
ALTER TABLE documents ALTER COLUMN bytes DROP NOT NULL;
ALTER TABLE documents ADD COLUMN object_key TEXT UNIQUE;
ALTER TABLE documents ADD CONSTRAINT documents_bytes_or_object
    CHECK ((bytes IS NULL) <> (object_key IS NULL));
-- What `casebridge files migrate` still has to move.
CREATE INDEX documents_inline ON documents(id) WHERE object_key IS NULL;

-- Object keys reserved by an upload before its object is written. The row that names the object
-- deletes the reservation in its own transaction; a reservation left behind (the upload failed
-- or the process died before its row committed) names an orphan object, which the sweep deletes.
CREATE TABLE file_uploads (
    object_key   TEXT PRIMARY KEY,
    company_id   TEXT NOT NULL REFERENCES companies(id),
    reserved_at  BIGINT NOT NULL
);
CREATE INDEX file_uploads_age ON file_uploads(reserved_at);
