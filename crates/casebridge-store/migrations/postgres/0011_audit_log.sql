-- What admins did that must be traceable (for now: revealing a webhook's signing secret): who,
-- what, on which record, when. Rows are only ever added.
CREATE TABLE audit_log (
    id          TEXT PRIMARY KEY,
    company_id  TEXT NOT NULL REFERENCES companies(id),
    actor       TEXT NOT NULL,
    action      TEXT NOT NULL,
    subject     TEXT NOT NULL,
    created_at  BIGINT NOT NULL
);
CREATE INDEX audit_log_subject ON audit_log(company_id, subject, action, created_at);
