-- Two-way sync of a field (SYNC2). sync_bases keeps, per synced field of a case and CRM, the
-- last value both sides agreed on, each in its own side's terms (platform status id, CRM status
-- id). A side has changed when its value differs from the base.
CREATE TABLE sync_bases (
    company_id      TEXT NOT NULL REFERENCES companies(id),
    provider        TEXT NOT NULL,
    case_id         TEXT NOT NULL,
    field           TEXT NOT NULL,
    platform_value  TEXT,
    crm_value       TEXT,
    agreed_at       INTEGER NOT NULL,
    PRIMARY KEY (company_id, provider, case_id, field)
);

-- One row per conflict (both sides changed a field since the base and differ), decided
-- automatically or not. Values are as an admin reads them (status names); restore_value is the
-- losing value in platform terms, which a restore applies. Rows are never deleted; a restore
-- sets restored_at and restored_by.
CREATE TABLE sync_conflicts (
    id              TEXT PRIMARY KEY,
    company_id      TEXT NOT NULL REFERENCES companies(id),
    provider        TEXT NOT NULL,
    case_id         TEXT NOT NULL,
    record_ref      TEXT NOT NULL,
    field           TEXT NOT NULL,
    base_value      TEXT,
    platform_value  TEXT,
    crm_value       TEXT,
    rule            TEXT NOT NULL,
    winner          TEXT NOT NULL CHECK (winner IN ('platform', 'crm')),
    action          TEXT NOT NULL,
    restore_value   TEXT,
    restored_at     INTEGER,
    restored_by     TEXT,
    created_at      INTEGER NOT NULL
);
CREATE INDEX sync_conflicts_by_company ON sync_conflicts(company_id, provider, id);
CREATE INDEX sync_conflicts_by_case ON sync_conflicts(company_id, provider, case_id, id);

-- A case's operations of one kind (a conflict reads when the platform last changed the field and
-- supersedes the unsent changes the CRM's value beat).
CREATE INDEX crm_ops_by_case ON crm_ops(company_id, provider, case_id, kind, id);

-- Each field mapping's sync rule (SYNC1): prefer_crm_unless_blank, always_crm, two_way (the
-- default), prefer_platform_unless_blank, always_platform or dont_sync.
ALTER TABLE field_mappings ADD COLUMN rule TEXT NOT NULL DEFAULT 'two_way';

-- What each synced record did (SYNC3), one row per record and direction, written in the
-- transaction that did it (or that logged its failure): the measured counters of monitoring.
-- Inbound: created, updated, unchanged, skipped, failed; outbound: sent, skipped, failed.
CREATE TABLE sync_records (
    id          TEXT PRIMARY KEY,
    company_id  TEXT NOT NULL REFERENCES companies(id),
    provider    TEXT NOT NULL,
    direction   TEXT NOT NULL CHECK (direction IN ('inbound', 'outbound')),
    outcome     TEXT NOT NULL,
    record_ref  TEXT,
    created_at  INTEGER NOT NULL
);
CREATE INDEX sync_records_by_time ON sync_records(company_id, provider, created_at);
