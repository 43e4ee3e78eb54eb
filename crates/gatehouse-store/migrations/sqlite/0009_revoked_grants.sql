-- Grants revoked as a whole (a replayed code, a reused refresh token). A token issued from a
-- grant checks for its grant here after it was stored, so an issuance that raced with the
-- revocation is revoked too. Kept for a while after the revocation, then purged.
CREATE TABLE revoked_grants (
    grant_id TEXT PRIMARY KEY,
    expires_at BIGINT NOT NULL
);
CREATE INDEX revoked_grants_by_expiry ON revoked_grants (expires_at);
