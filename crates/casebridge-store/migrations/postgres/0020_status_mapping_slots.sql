-- A platform status maps to one CRM status per slot (PostgreSQL). Keep in step with
-- ../sqlite/0020_status_mapping_slots.sql, which explains `status_type`.
ALTER TABLE status_mappings ADD COLUMN status_type TEXT NOT NULL DEFAULT '';
UPDATE status_mappings SET status_type = split_part(crm_status_id, ':', 1)
WHERE provider = 'smartadvocate' AND position(':' in crm_status_id) > 0;
ALTER TABLE status_mappings DROP CONSTRAINT status_mappings_pkey;
ALTER TABLE status_mappings ADD PRIMARY KEY (company_id, provider, case_status_id, status_type);
