-- Law Ruler part 2 (SPEC LR9–LR15, SYNC3) (postgres). Keep in step with ../sqlite/0006_crm_outbound.sql.

-- Files uploaded to the platform: case documents and call recordings. The bytes live in the
-- database, so a file commits in the same transaction as the CRM operation that sends it.
CREATE TABLE documents (
    id            TEXT PRIMARY KEY,
    company_id    TEXT NOT NULL REFERENCES companies(id),
    case_id       TEXT,
    call_id       TEXT,
    kind          TEXT NOT NULL CHECK (kind IN ('document', 'recording')),
    file_name     TEXT NOT NULL,
    content_type  TEXT NOT NULL,
    size          BIGINT NOT NULL,
    sha256        TEXT NOT NULL,
    bytes         BYTEA NOT NULL,
    created_at    BIGINT NOT NULL,
    UNIQUE (company_id, id),
    FOREIGN KEY (company_id, case_id) REFERENCES cases(company_id, id),
    FOREIGN KEY (company_id, call_id) REFERENCES calls(company_id, id)
);
CREATE INDEX documents_case ON documents(company_id, case_id, id);
CREATE INDEX documents_call ON documents(company_id, call_id, id);

-- Outbound CRM operations (the CRM outbox). Written in the transaction of the change that caused
-- them; each `pending` one has a job on the `crm` queue ordered by the CRM record. `held`: a
-- status change made while status sync was off (LR11), waiting for the admin's choice.
-- `blocked`: parked because the connection is misconfigured; requeued when it is fixed.
CREATE TABLE crm_ops (
    id           TEXT PRIMARY KEY,
    company_id   TEXT NOT NULL REFERENCES companies(id),
    provider     TEXT NOT NULL,
    kind         TEXT NOT NULL,
    case_id      TEXT,
    record_id    TEXT NOT NULL,
    payload      TEXT NOT NULL,
    state        TEXT NOT NULL CHECK (state IN ('held', 'pending', 'done', 'skipped', 'failed', 'blocked')),
    attempts     BIGINT NOT NULL DEFAULT 0,
    last_error   TEXT,
    created_at   BIGINT NOT NULL,
    updated_at   BIGINT NOT NULL,
    finished_at  BIGINT,
    UNIQUE (company_id, id)
);
CREATE INDEX crm_ops_state ON crm_ops(company_id, provider, state, id);

-- Notes pulled from the CRM (LR13) and notes this platform wrote there, by the CRM's note id.
CREATE TABLE crm_notes (
    company_id   TEXT NOT NULL REFERENCES companies(id),
    provider     TEXT NOT NULL,
    crm_note_id  TEXT NOT NULL,
    record_id    TEXT NOT NULL,
    case_id      TEXT,
    origin       TEXT NOT NULL CHECK (origin IN ('crm', 'platform')),
    category     TEXT NOT NULL,
    subject      TEXT NOT NULL,
    body         TEXT NOT NULL,
    noted_at     BIGINT NOT NULL,
    pulled_at    BIGINT NOT NULL,
    PRIMARY KEY (company_id, provider, crm_note_id),
    FOREIGN KEY (company_id, case_id) REFERENCES cases(company_id, id)
);
CREATE INDEX crm_notes_case ON crm_notes(company_id, case_id, noted_at);

-- Pull cursors (CRM storage time of the newest record seen) and the last pull's outcome.
ALTER TABLE integrations ADD COLUMN leads_cursor BIGINT;
ALTER TABLE integrations ADD COLUMN notes_cursor BIGINT;
ALTER TABLE integrations ADD COLUMN last_pull_at BIGINT;
ALTER TABLE integrations ADD COLUMN last_pull_error TEXT;
