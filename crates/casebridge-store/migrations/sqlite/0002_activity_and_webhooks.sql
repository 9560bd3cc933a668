-- Calls, transfers, messages and tasks (the platform activity that produces events), the events
-- themselves, and outbound webhooks with their deliveries and attempt log (SQLite).
-- Keep in step with ../postgres/0002_activity_and_webhooks.sql.

CREATE TABLE calls (
    id               TEXT PRIMARY KEY,
    company_id       TEXT NOT NULL REFERENCES companies(id),
    case_id          TEXT,
    campaign_id      TEXT,
    direction        TEXT NOT NULL CHECK (direction IN ('inbound', 'outbound')),
    from_number      TEXT,
    to_number        TEXT,
    status           TEXT NOT NULL CHECK (status IN ('in_progress', 'ended')),
    started_at       INTEGER NOT NULL,
    ended_at         INTEGER,
    end_reason       TEXT,
    transcript       TEXT NOT NULL DEFAULT '[]',
    summary          TEXT,
    post_call_result TEXT,
    analysis_custom  TEXT,
    analyzed_at      INTEGER,
    created_at       INTEGER NOT NULL,
    updated_at       INTEGER NOT NULL,
    UNIQUE (company_id, id),
    FOREIGN KEY (company_id, case_id) REFERENCES cases(company_id, id),
    FOREIGN KEY (company_id, campaign_id) REFERENCES campaigns(company_id, id)
);
CREATE INDEX calls_case ON calls(company_id, case_id);

CREATE TABLE transfers (
    id          TEXT PRIMARY KEY,
    company_id  TEXT NOT NULL REFERENCES companies(id),
    call_id     TEXT NOT NULL,
    to_number   TEXT NOT NULL,
    status      TEXT NOT NULL CHECK (status IN ('started', 'bridged', 'cancelled', 'ended')),
    created_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL,
    FOREIGN KEY (company_id, call_id) REFERENCES calls(company_id, id)
);
CREATE INDEX transfers_call ON transfers(company_id, call_id);

CREATE TABLE messages (
    id            TEXT PRIMARY KEY,
    company_id    TEXT NOT NULL REFERENCES companies(id),
    case_id       TEXT,
    campaign_id   TEXT,
    channel       TEXT NOT NULL CHECK (channel IN ('sms', 'email')),
    direction     TEXT NOT NULL CHECK (direction IN ('inbound', 'outbound')),
    from_address  TEXT,
    to_address    TEXT NOT NULL,
    body          TEXT NOT NULL,
    status        TEXT NOT NULL CHECK (status IN ('sent', 'delivered')),
    sent_at       INTEGER NOT NULL,
    delivered_at  INTEGER,
    created_at    INTEGER NOT NULL,
    updated_at    INTEGER NOT NULL,
    FOREIGN KEY (company_id, case_id) REFERENCES cases(company_id, id),
    FOREIGN KEY (company_id, campaign_id) REFERENCES campaigns(company_id, id)
);
CREATE INDEX messages_case ON messages(company_id, case_id);

CREATE TABLE tasks (
    id            TEXT PRIMARY KEY,
    company_id    TEXT NOT NULL REFERENCES companies(id),
    case_id       TEXT,
    kind          TEXT NOT NULL CHECK (kind IN ('task', 'form')),
    title         TEXT NOT NULL,
    status        TEXT NOT NULL CHECK (status IN ('open', 'completed', 'submitted')),
    form_answers  TEXT,
    completed_at  INTEGER,
    created_at    INTEGER NOT NULL,
    updated_at    INTEGER NOT NULL,
    FOREIGN KEY (company_id, case_id) REFERENCES cases(company_id, id)
);
CREATE INDEX tasks_case ON tasks(company_id, case_id);

-- payload is the exact envelope sent to consumers, so every delivery of an event is identical.
CREATE TABLE events (
    id            TEXT PRIMARY KEY,
    company_id    TEXT NOT NULL REFERENCES companies(id),
    type          TEXT NOT NULL,
    campaign_id   TEXT,
    case_type_id  TEXT,
    payload       TEXT NOT NULL,
    created_at    INTEGER NOT NULL
);
CREATE INDEX events_company ON events(company_id, id);
CREATE INDEX events_created ON events(created_at);

CREATE TABLE webhooks (
    id                    TEXT PRIMARY KEY,
    company_id            TEXT NOT NULL REFERENCES companies(id),
    scope_campaign_id     TEXT,
    name                  TEXT NOT NULL,
    url                   TEXT NOT NULL,
    event_types           TEXT NOT NULL DEFAULT '[]',
    filter_campaign_ids   TEXT NOT NULL DEFAULT '[]',
    filter_case_type_ids  TEXT NOT NULL DEFAULT '[]',
    app_key_sealed        TEXT,
    active                INTEGER NOT NULL DEFAULT 1,
    disabled_reason       TEXT,
    created_at            INTEGER NOT NULL,
    updated_at            INTEGER NOT NULL,
    UNIQUE (company_id, id),
    FOREIGN KEY (company_id, scope_campaign_id) REFERENCES campaigns(company_id, id) ON DELETE CASCADE
);
CREATE INDEX webhooks_company ON webhooks(company_id, id);

-- Signing secrets. More than one is active during a rotation's overlap window.
CREATE TABLE webhook_secrets (
    id             TEXT PRIMARY KEY,
    company_id     TEXT NOT NULL,
    webhook_id     TEXT NOT NULL,
    secret_sealed  TEXT NOT NULL,
    created_at     INTEGER NOT NULL,
    expires_at     INTEGER,
    FOREIGN KEY (company_id, webhook_id) REFERENCES webhooks(company_id, id) ON DELETE CASCADE
);
CREATE INDEX webhook_secrets_webhook ON webhook_secrets(webhook_id, created_at);

CREATE TABLE webhook_deliveries (
    id                    TEXT PRIMARY KEY,
    company_id            TEXT NOT NULL,
    webhook_id            TEXT NOT NULL,
    event_id              TEXT NOT NULL REFERENCES events(id) ON DELETE CASCADE,
    status                TEXT NOT NULL CHECK (status IN ('pending', 'succeeded', 'failed')),
    attempt_count         INTEGER NOT NULL DEFAULT 0,
    last_attempt_at       INTEGER,
    last_response_status  INTEGER,
    last_error            TEXT,
    created_at            INTEGER NOT NULL,
    updated_at            INTEGER NOT NULL,
    UNIQUE (webhook_id, event_id),
    FOREIGN KEY (company_id, webhook_id) REFERENCES webhooks(company_id, id) ON DELETE CASCADE
);
CREATE INDEX deliveries_webhook ON webhook_deliveries(company_id, webhook_id, id);
CREATE INDEX deliveries_status ON webhook_deliveries(webhook_id, status, created_at);
CREATE INDEX deliveries_updated ON webhook_deliveries(updated_at);

-- Every attempt, as sent and as answered (W9). The App Key is stored masked.
CREATE TABLE webhook_attempts (
    id                TEXT PRIMARY KEY,
    company_id        TEXT NOT NULL,
    delivery_id       TEXT NOT NULL REFERENCES webhook_deliveries(id) ON DELETE CASCADE,
    job_id            TEXT NOT NULL,
    attempt_no        INTEGER NOT NULL,
    trigger           TEXT NOT NULL CHECK (trigger IN ('scheduled', 'retry', 'manual', 'test')),
    request_url       TEXT NOT NULL,
    request_headers   TEXT NOT NULL,
    request_body      TEXT NOT NULL,
    response_status   INTEGER,
    response_headers  TEXT,
    response_body     TEXT,
    error             TEXT,
    duration_ms       INTEGER NOT NULL,
    succeeded         INTEGER NOT NULL,
    started_at        INTEGER NOT NULL
);
CREATE INDEX attempts_delivery ON webhook_attempts(delivery_id, attempt_no);
CREATE INDEX attempts_job ON webhook_attempts(job_id);
CREATE INDEX attempts_started ON webhook_attempts(started_at);
