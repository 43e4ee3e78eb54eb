-- A refresh token presented again within the grace period gets the answer its first rotation
-- gave, sealed under the master key, instead of forking its family. Kept until successor_until
-- (the end of the grace period), then cleared by the maintenance task.
ALTER TABLE refresh_tokens ADD COLUMN successor BLOB;
ALTER TABLE refresh_tokens ADD COLUMN successor_until BIGINT;
CREATE INDEX refresh_tokens_by_successor_until ON refresh_tokens (successor_until)
    WHERE successor_until IS NOT NULL;
