-- A user's credential epoch, raised by every password change, lock and deactivation: JWT access
-- tokens issued under an older one are no longer valid. `applied` remembers what the
-- declarative file last said about the fields it sets only when it changes them.
ALTER TABLE users ADD COLUMN credential_epoch BIGINT NOT NULL DEFAULT 0;
ALTER TABLE users ADD COLUMN applied TEXT;
ALTER TABLE clients ADD COLUMN applied TEXT;
