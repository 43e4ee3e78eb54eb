-- Pushed authorization requests (RFC 9126): the parameters a client pushed, by the keyed hash
-- of the request_uri that names them, until the browser brings it (once) or it expires.
CREATE TABLE pushed_requests (
    request_hash TEXT PRIMARY KEY,
    client_id TEXT NOT NULL,
    parameters TEXT NOT NULL,
    expires_at BIGINT NOT NULL
);
CREATE INDEX pushed_requests_expiry ON pushed_requests (expires_at);
