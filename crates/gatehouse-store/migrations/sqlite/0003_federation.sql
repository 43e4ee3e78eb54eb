-- Federation: trusted JWT providers, the assertions already used (replay protection), and keys
-- applications register for private_key_jwt.
CREATE TABLE jwt_providers (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    issuer TEXT NOT NULL,
    audiences TEXT NOT NULL,
    key_source_kind TEXT NOT NULL,
    key_source_value TEXT NOT NULL,
    algorithms TEXT NOT NULL,
    user_claim TEXT NOT NULL,
    user_field TEXT NOT NULL,
    allowed_clients TEXT NOT NULL,
    max_age BIGINT NOT NULL,
    api_access BOOLEAN NOT NULL,
    api_scopes TEXT NOT NULL,
    active BOOLEAN NOT NULL,
    managed BOOLEAN NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);

-- A hash of issuer and jti, kept until the assertion expires.
CREATE TABLE used_assertions (
    assertion_key TEXT PRIMARY KEY,
    expires_at BIGINT NOT NULL
);
CREATE INDEX used_assertions_by_expiry ON used_assertions (expires_at);

ALTER TABLE clients ADD COLUMN jwks TEXT;
ALTER TABLE clients ADD COLUMN jwks_uri TEXT;

CREATE INDEX users_by_email ON users (email);
