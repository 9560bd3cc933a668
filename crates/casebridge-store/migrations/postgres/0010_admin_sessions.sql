-- Admin UI sign-in: sessions, and a slowdown after repeated failed sign-ins.
--
-- A session is stored by the SHA-256 of its cookie value (the value itself is never stored), with
-- the CSRF token its forms carry. It ends at `expires_at` (absolute) or after `idle_until` passes
-- without a request (idle timeout).
CREATE TABLE admin_sessions (
    token_hash   TEXT PRIMARY KEY,
    user_id      TEXT NOT NULL REFERENCES users(id),
    company_id   TEXT NOT NULL REFERENCES companies(id),
    csrf_token   TEXT NOT NULL,
    created_at   BIGINT NOT NULL,
    idle_until   BIGINT NOT NULL,
    expires_at   BIGINT NOT NULL
);
CREATE INDEX admin_sessions_expiry ON admin_sessions(expires_at);

-- Failed sign-ins in a row per email (known or not, so the answer does not reveal which emails
-- exist); reset by a successful sign-in.
CREATE TABLE admin_login_failures (
    email         TEXT PRIMARY KEY,
    failures      BIGINT NOT NULL,
    locked_until  BIGINT NOT NULL
);
