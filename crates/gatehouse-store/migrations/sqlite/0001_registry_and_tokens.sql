-- Users, applications, access tokens and signing keys. Instants are Unix seconds; lists are
-- JSON arrays in text columns.
CREATE TABLE users (
    id TEXT PRIMARY KEY,
    user_name TEXT NOT NULL UNIQUE,
    display_name TEXT NOT NULL,
    email TEXT,
    roles TEXT NOT NULL,
    active BOOLEAN NOT NULL,
    password_hash TEXT,
    managed BOOLEAN NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);

CREATE TABLE clients (
    id TEXT PRIMARY KEY,
    client_id TEXT NOT NULL UNIQUE,
    name TEXT NOT NULL,
    client_type TEXT NOT NULL,
    secret_hash TEXT,
    redirect_uris TEXT NOT NULL,
    grant_types TEXT NOT NULL,
    allowed_scopes TEXT NOT NULL,
    default_scopes TEXT NOT NULL,
    access_token_lifespan BIGINT NOT NULL,
    refresh_token_lifespan BIGINT NOT NULL,
    token_format TEXT NOT NULL,
    run_as TEXT,
    active BOOLEAN NOT NULL,
    managed BOOLEAN NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);

-- Opaque access tokens, by the keyed hash of the token.
CREATE TABLE access_tokens (
    token_hash TEXT PRIMARY KEY,
    jti TEXT NOT NULL,
    client_id TEXT NOT NULL,
    user_id TEXT,
    scope TEXT NOT NULL,
    issued_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    revoked BOOLEAN NOT NULL
);
CREATE INDEX access_tokens_by_expiry ON access_tokens (expires_at);
CREATE INDEX access_tokens_by_client ON access_tokens (client_id);
CREATE INDEX access_tokens_by_user ON access_tokens (user_id);

-- JWT access tokens revoked before they expire.
CREATE TABLE revoked_jwts (
    jti TEXT PRIMARY KEY,
    expires_at BIGINT NOT NULL
);
CREATE INDEX revoked_jwts_by_expiry ON revoked_jwts (expires_at);

CREATE TABLE signing_keys (
    kid TEXT PRIMARY KEY,
    alg TEXT NOT NULL,
    private_key_sealed BLOB NOT NULL,
    public_jwk TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    activates_at BIGINT NOT NULL
);
