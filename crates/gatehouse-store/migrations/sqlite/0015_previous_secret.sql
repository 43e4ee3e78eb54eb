-- A rotated client secret stays valid for a grace period beside the new one, so the services
-- using it can move over one by one. Never more than one previous secret.
ALTER TABLE clients ADD COLUMN previous_secret_hash TEXT;
ALTER TABLE clients ADD COLUMN previous_secret_expires_at BIGINT;
