-- Documents pulled from a CRM (SmartAdvocate's documents by date) (SQLite). Keep in step with
-- ../postgres/0019_crm_documents.sql.
--
-- The fourth pull cursor: the CRM's change time of the newest document handled, epoch
-- milliseconds.
ALTER TABLE integrations ADD COLUMN documents_cursor INTEGER;

-- One row per CRM document handled, keyed by the CRM's document id, so a pull never stores a
-- document twice: `document_id` is the platform document made of it, or NULL while it is
-- skipped, with `skipped` saying why (`unknown_case`, `empty`, `too_large`). `crm_modified_at`
-- is the CRM's change time of the version handled (a newer one is read again).
CREATE TABLE crm_documents (
    company_id       TEXT NOT NULL REFERENCES companies(id),
    provider         TEXT NOT NULL,
    crm_document_id  TEXT NOT NULL,
    record_id        TEXT NOT NULL,
    crm_modified_at  INTEGER,
    document_id      TEXT UNIQUE,
    skipped          TEXT,
    pulled_at        INTEGER NOT NULL,
    PRIMARY KEY (company_id, provider, crm_document_id),
    CHECK ((document_id IS NULL) <> (skipped IS NULL)),
    FOREIGN KEY (company_id, document_id) REFERENCES documents(company_id, id)
);
