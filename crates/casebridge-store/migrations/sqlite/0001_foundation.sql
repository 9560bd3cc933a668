-- Foundation schema (SQLite). Times are milliseconds since the Unix epoch; ids are UUIDv7 text.
-- Keep in step with ../postgres/0001_foundation.sql: same tables, columns and constraints.

CREATE TABLE companies (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL,
    timezone    TEXT NOT NULL,
    created_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL
);

CREATE TABLE api_keys (
    id            TEXT PRIMARY KEY,
    company_id    TEXT NOT NULL REFERENCES companies(id),
    name          TEXT NOT NULL,
    prefix        TEXT NOT NULL,
    key_hash      TEXT NOT NULL UNIQUE,
    created_at    INTEGER NOT NULL,
    revoked_at    INTEGER
);
CREATE INDEX api_keys_company ON api_keys(company_id, id);

CREATE TABLE users (
    id             TEXT PRIMARY KEY,
    company_id     TEXT NOT NULL REFERENCES companies(id),
    email          TEXT NOT NULL UNIQUE,
    password_hash  TEXT NOT NULL,
    created_at     INTEGER NOT NULL
);

CREATE TABLE case_types (
    id          TEXT PRIMARY KEY,
    company_id  TEXT NOT NULL REFERENCES companies(id),
    name        TEXT NOT NULL,
    created_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL,
    UNIQUE (company_id, name),
    UNIQUE (company_id, id)
);

CREATE TABLE case_statuses (
    id          TEXT PRIMARY KEY,
    company_id  TEXT NOT NULL REFERENCES companies(id),
    name        TEXT NOT NULL,
    created_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL,
    UNIQUE (company_id, name),
    UNIQUE (company_id, id)
);

CREATE TABLE campaigns (
    id          TEXT PRIMARY KEY,
    company_id  TEXT NOT NULL REFERENCES companies(id),
    name        TEXT NOT NULL,
    created_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL,
    UNIQUE (company_id, name),
    UNIQUE (company_id, id)
);

CREATE TABLE lists (
    id          TEXT PRIMARY KEY,
    company_id  TEXT NOT NULL REFERENCES companies(id),
    name        TEXT NOT NULL,
    created_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL,
    UNIQUE (company_id, name),
    UNIQUE (company_id, id)
);

CREATE TABLE clients (
    id          TEXT PRIMARY KEY,
    company_id  TEXT NOT NULL REFERENCES companies(id),
    first_name  TEXT,
    last_name   TEXT,
    email       TEXT,
    phone       TEXT,
    created_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL,
    UNIQUE (company_id, id)
);
CREATE INDEX clients_email ON clients(company_id, email);
CREATE INDEX clients_phone ON clients(company_id, phone);

-- Composite foreign keys carry company_id, so a case can only point at its own company's records.
CREATE TABLE cases (
    id              TEXT PRIMARY KEY,
    company_id      TEXT NOT NULL REFERENCES companies(id),
    name            TEXT NOT NULL,
    case_type_id    TEXT NOT NULL,
    case_status_id  TEXT,
    client_id       TEXT,
    custom_fields   TEXT NOT NULL DEFAULT '{}',
    created_at      INTEGER NOT NULL,
    updated_at      INTEGER NOT NULL,
    UNIQUE (company_id, id),
    FOREIGN KEY (company_id, case_type_id) REFERENCES case_types(company_id, id),
    FOREIGN KEY (company_id, case_status_id) REFERENCES case_statuses(company_id, id),
    FOREIGN KEY (company_id, client_id) REFERENCES clients(company_id, id)
);
CREATE INDEX cases_type ON cases(company_id, case_type_id, id);
CREATE INDEX cases_status ON cases(company_id, case_status_id, id);
CREATE INDEX cases_client ON cases(company_id, client_id, id);

-- (provider, external_id) is unique per company and entity kind; one ref per provider per record.
CREATE TABLE external_refs (
    company_id   TEXT NOT NULL REFERENCES companies(id),
    entity       TEXT NOT NULL CHECK (entity IN ('case', 'client')),
    provider     TEXT NOT NULL,
    external_id  TEXT NOT NULL,
    entity_id    TEXT NOT NULL,
    created_at   INTEGER NOT NULL,
    PRIMARY KEY (company_id, entity, provider, external_id),
    UNIQUE (entity, entity_id, provider)
);

CREATE TABLE list_cases (
    company_id  TEXT NOT NULL,
    list_id     TEXT NOT NULL,
    case_id     TEXT NOT NULL,
    added_at    INTEGER NOT NULL,
    PRIMARY KEY (list_id, case_id),
    FOREIGN KEY (company_id, list_id) REFERENCES lists(company_id, id) ON DELETE CASCADE,
    FOREIGN KEY (company_id, case_id) REFERENCES cases(company_id, id) ON DELETE CASCADE
);
CREATE INDEX list_cases_case ON list_cases(case_id);

-- The durable job queue. seq gives enqueue order (per-key ordering); id is the public handle.
-- concurrency_key/limit: at most `limit` jobs with the same key run at once (e.g. one webhook endpoint).
CREATE TABLE jobs (
    seq               INTEGER PRIMARY KEY AUTOINCREMENT,
    id                TEXT NOT NULL UNIQUE,
    queue             TEXT NOT NULL,
    kind              TEXT NOT NULL,
    company_id        TEXT,
    payload           TEXT NOT NULL,
    ordering_key      TEXT,
    concurrency_key   TEXT,
    concurrency_limit INTEGER,
    status            TEXT NOT NULL CHECK (status IN ('pending', 'running', 'dead')),
    attempts          INTEGER NOT NULL DEFAULT 0,
    run_at            INTEGER NOT NULL,
    first_attempt_at  INTEGER,
    locked_until      INTEGER,
    lease_id          TEXT,
    last_error        TEXT,
    created_at        INTEGER NOT NULL,
    updated_at        INTEGER NOT NULL
);
CREATE INDEX jobs_ready ON jobs(queue, status, run_at);
CREATE INDEX jobs_running ON jobs(queue, status, locked_until);
CREATE INDEX jobs_ordering ON jobs(queue, ordering_key, seq) WHERE ordering_key IS NOT NULL;
CREATE INDEX jobs_concurrency ON jobs(queue, concurrency_key, status) WHERE concurrency_key IS NOT NULL;
