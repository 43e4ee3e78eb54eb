-- Device authorizations (RFC 8628): the device code by its keyed hash, the code the user types
-- (unique while it lives), what the device asked for, how often it may poll, and the user's
-- answer.
CREATE TABLE device_authorizations (
    device_code_hash TEXT PRIMARY KEY,
    user_code TEXT NOT NULL UNIQUE,
    client_id TEXT NOT NULL,
    scope TEXT NOT NULL,
    audience TEXT NOT NULL,
    expires_at BIGINT NOT NULL,
    poll_interval BIGINT NOT NULL,
    last_polled_at BIGINT,
    status TEXT NOT NULL,
    user_id TEXT,
    auth_time BIGINT
);
CREATE INDEX device_authorizations_expiry ON device_authorizations (expires_at);
