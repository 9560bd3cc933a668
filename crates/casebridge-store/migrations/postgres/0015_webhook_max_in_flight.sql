-- A webhook's bound on deliveries in flight at once (its delivery jobs' concurrency limit), a
-- setting since issue 11; 4 was the hard-coded bound before.
ALTER TABLE webhooks ADD COLUMN max_in_flight INTEGER NOT NULL DEFAULT 4
    CHECK (max_in_flight BETWEEN 1 AND 64);
