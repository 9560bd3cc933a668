-- An inbound webhook token replaced by rotation keeps opening its URL until expires_at (a grace
-- period for the CRM to be given the new URL); stored as the current token is.
CREATE TABLE integration_previous_tokens (
    company_id     TEXT NOT NULL,
    provider       TEXT NOT NULL,
    webhook_token  TEXT NOT NULL,
    expires_at     BIGINT NOT NULL,
    PRIMARY KEY (provider, webhook_token),
    FOREIGN KEY (company_id, provider) REFERENCES integrations(company_id, provider) ON DELETE CASCADE
);
CREATE INDEX integration_previous_tokens_company ON integration_previous_tokens(company_id, provider);

-- The CRM case types that records have arrived with (webhook, import or pull): the ones the
-- firm uses, which the setup checklist asks to be linked. Refreshing the catalog keeps these.
CREATE TABLE crm_case_types_used (
    company_id     TEXT NOT NULL,
    provider       TEXT NOT NULL,
    crm_id         TEXT NOT NULL,
    first_seen_at  BIGINT NOT NULL,
    PRIMARY KEY (company_id, provider, crm_id)
);
