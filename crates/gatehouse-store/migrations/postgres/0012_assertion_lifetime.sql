-- An assertion lives at most max_lifetime seconds: its exp may be no further than that from its
-- iat, nor from now.
ALTER TABLE jwt_providers ADD COLUMN max_lifetime BIGINT NOT NULL DEFAULT 3600;
