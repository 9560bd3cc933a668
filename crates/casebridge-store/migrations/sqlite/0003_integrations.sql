-- CRM integrations (provider-neutral): connection, toggles, webhook token, CRM catalog cache,
-- mappings, list auto-add rules, inbound dedupe receipts and the sync log (SQLite).
-- Keep in step with ../postgres/0003_integrations.sql.

-- A case may belong to one campaign (Law Ruler's campaign_id, LR6).
ALTER TABLE cases ADD COLUMN campaign_id TEXT;
CREATE INDEX cases_campaign ON cases(company_id, campaign_id, id);

CREATE TABLE integrations (
    company_id                TEXT NOT NULL REFERENCES companies(id),
    provider                  TEXT NOT NULL,
    webhook_token             TEXT NOT NULL UNIQUE,
    credentials_sealed        TEXT,
    connected_at              INTEGER,
    settings                  TEXT NOT NULL DEFAULT '{}',
    config_error              TEXT,
    first_webhook_at          INTEGER,
    last_webhook_at           INTEGER,
    last_integration_sync_at  INTEGER,
    last_status_pull_at       INTEGER,
    last_status_push_at       INTEGER,
    catalog_refreshed_at      INTEGER,
    catalog_error             TEXT,
    created_at                INTEGER NOT NULL,
    updated_at                INTEGER NOT NULL,
    PRIMARY KEY (company_id, provider)
);

-- The CRM's own case types, statuses and fields, as last loaded. Refreshing replaces these and
-- never touches the mappings below.
CREATE TABLE crm_case_types (
    company_id  TEXT NOT NULL,
    provider    TEXT NOT NULL,
    crm_id      TEXT NOT NULL,
    name        TEXT NOT NULL,
    PRIMARY KEY (company_id, provider, crm_id)
);

CREATE TABLE crm_statuses (
    company_id  TEXT NOT NULL,
    provider    TEXT NOT NULL,
    crm_id      TEXT NOT NULL,
    name        TEXT NOT NULL,
    PRIMARY KEY (company_id, provider, crm_id)
);

CREATE TABLE crm_fields (
    company_id        TEXT NOT NULL,
    provider          TEXT NOT NULL,
    crm_case_type_id  TEXT NOT NULL,
    field_key         TEXT NOT NULL,
    crm_field_id      TEXT NOT NULL,
    label             TEXT NOT NULL,
    input_type        TEXT NOT NULL,
    form_section      TEXT NOT NULL,
    PRIMARY KEY (company_id, provider, crm_case_type_id, field_key)
);

CREATE TABLE case_type_links (
    company_id        TEXT NOT NULL,
    provider          TEXT NOT NULL,
    crm_case_type_id  TEXT NOT NULL,
    case_type_id      TEXT NOT NULL,
    PRIMARY KEY (company_id, provider, crm_case_type_id),
    FOREIGN KEY (company_id, case_type_id) REFERENCES case_types(company_id, id) ON DELETE CASCADE
);

CREATE TABLE field_mappings (
    company_id        TEXT NOT NULL,
    provider          TEXT NOT NULL,
    crm_case_type_id  TEXT NOT NULL,
    platform_field    TEXT NOT NULL,
    crm_field_key     TEXT NOT NULL,
    PRIMARY KEY (company_id, provider, crm_case_type_id, platform_field)
);

CREATE TABLE status_mappings (
    company_id      TEXT NOT NULL,
    provider        TEXT NOT NULL,
    case_status_id  TEXT NOT NULL,
    crm_status_id   TEXT NOT NULL,
    PRIMARY KEY (company_id, provider, case_status_id),
    UNIQUE (company_id, provider, crm_status_id),
    FOREIGN KEY (company_id, case_status_id) REFERENCES case_statuses(company_id, id) ON DELETE CASCADE
);

CREATE TABLE list_auto_add_rules (
    id          TEXT PRIMARY KEY,
    company_id  TEXT NOT NULL,
    list_id     TEXT NOT NULL,
    provider    TEXT NOT NULL,
    case_type   TEXT,
    status      TEXT,
    created_at  INTEGER NOT NULL,
    FOREIGN KEY (company_id, list_id) REFERENCES lists(company_id, id) ON DELETE CASCADE
);
CREATE INDEX auto_add_rules_company ON list_auto_add_rules(company_id, provider);

-- The last applied content per CRM record: a delivery identical to the last one applied for the
-- same record is a repeat and changes nothing; a record that changes and changes back is applied.
CREATE TABLE inbound_receipts (
    company_id    TEXT NOT NULL,
    provider      TEXT NOT NULL,
    record_id     TEXT NOT NULL,
    content_hash  TEXT NOT NULL,
    received_at   INTEGER NOT NULL,
    PRIMARY KEY (company_id, provider, record_id)
);

CREATE TABLE sync_log (
    id          TEXT PRIMARY KEY,
    company_id  TEXT NOT NULL,
    provider    TEXT NOT NULL,
    direction   TEXT NOT NULL CHECK (direction IN ('inbound', 'outbound')),
    operation   TEXT NOT NULL,
    record_ref  TEXT,
    outcome     TEXT NOT NULL CHECK (outcome IN ('ok', 'skipped', 'error')),
    error_kind  TEXT,
    message     TEXT,
    created_at  INTEGER NOT NULL
);
CREATE INDEX sync_log_company ON sync_log(company_id, provider, id);
