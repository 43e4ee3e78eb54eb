-- The second up to which every token issued to an application is revoked (its last "revoke
-- everything"), 0 for never: checked with the issue time of each token presented, so a token
-- issued while the revocation ran, or one stored nowhere, is refused as well.
ALTER TABLE clients ADD COLUMN tokens_revoked_at BIGINT NOT NULL DEFAULT 0;
