-- Scheduling (SPEC §6): the company's connection to the scheduling service, agents with their
-- appointment-booking settings, and the bookings they made (SQLite).
-- Keep in step with ../postgres/0004_scheduling.sql.

-- One per company. The API key is sealed with the keyring (associated data
-- `scheduling-key/{company_id}`); disconnecting deletes the row.
CREATE TABLE scheduling_connections (
    company_id      TEXT PRIMARY KEY REFERENCES companies(id),
    api_key_sealed  TEXT NOT NULL,
    account_email   TEXT,
    connected_at    INTEGER NOT NULL,
    updated_at      INTEGER NOT NULL
);

CREATE TABLE agents (
    id                   TEXT PRIMARY KEY,
    company_id           TEXT NOT NULL REFERENCES companies(id),
    name                 TEXT NOT NULL,
    appointment_booking  INTEGER NOT NULL DEFAULT 0,
    event_type_id        INTEGER CHECK (event_type_id > 0),
    created_at           INTEGER NOT NULL,
    updated_at           INTEGER NOT NULL,
    UNIQUE (company_id, id)
);

-- A booking is written `pending` before the service is asked and becomes `booked` with the
-- service's uid; a refused booking's row is deleted. A `pending` row that stays means the
-- process stopped in between: the outcome is unknown and the service is the authority.
CREATE TABLE bookings (
    id                  TEXT PRIMARY KEY,
    company_id          TEXT NOT NULL REFERENCES companies(id),
    agent_id            TEXT NOT NULL,
    case_id             TEXT,
    event_type_id       INTEGER NOT NULL,
    status              TEXT NOT NULL CHECK (status IN ('pending', 'booked')),
    external_uid        TEXT,
    start_at            INTEGER NOT NULL,
    end_at              INTEGER,
    attendee_name       TEXT NOT NULL,
    attendee_email      TEXT,
    attendee_phone      TEXT,
    attendee_time_zone  TEXT NOT NULL,
    created_at          INTEGER NOT NULL,
    updated_at          INTEGER NOT NULL,
    FOREIGN KEY (company_id, agent_id) REFERENCES agents(company_id, id),
    FOREIGN KEY (company_id, case_id) REFERENCES cases(company_id, id),
    UNIQUE (company_id, external_uid)
);
CREATE INDEX bookings_agent ON bookings(company_id, agent_id, id);
CREATE INDEX bookings_case ON bookings(company_id, case_id);
