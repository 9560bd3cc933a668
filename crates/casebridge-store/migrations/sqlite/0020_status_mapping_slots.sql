-- A platform status maps to one CRM status per slot (SQLite). Keep in step with
-- ../postgres/0020_status_mapping_slots.sql.
--
-- `status_type` is the slot a mapping's CRM status fills: '' for the CRM's primary status (the
-- one its records carry back, and the only slot Law Ruler has), else the id of a second-status
-- type (SmartAdvocate's "Dialer Status" …). So a platform status can map to a primary status and
-- to one value of each second-status type; each CRM status still maps from one platform status.
--
-- SQLite cannot change a primary key in place, so the table is rebuilt (no foreign key points
-- at it). Existing SmartAdvocate second-status mappings (CRM id `<type id>:<status id>`) get
-- their type; every other mapping is a primary one.
CREATE TABLE status_mappings_new (
    company_id      TEXT NOT NULL,
    provider        TEXT NOT NULL,
    case_status_id  TEXT NOT NULL,
    crm_status_id   TEXT NOT NULL,
    status_type     TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (company_id, provider, case_status_id, status_type),
    UNIQUE (company_id, provider, crm_status_id),
    FOREIGN KEY (company_id, case_status_id) REFERENCES case_statuses(company_id, id) ON DELETE CASCADE
);
INSERT INTO status_mappings_new (company_id, provider, case_status_id, crm_status_id, status_type)
SELECT company_id, provider, case_status_id, crm_status_id,
       CASE WHEN provider = 'smartadvocate' AND instr(crm_status_id, ':') > 0
            THEN substr(crm_status_id, 1, instr(crm_status_id, ':') - 1)
            ELSE '' END
FROM status_mappings;
DROP TABLE status_mappings;
ALTER TABLE status_mappings_new RENAME TO status_mappings;
