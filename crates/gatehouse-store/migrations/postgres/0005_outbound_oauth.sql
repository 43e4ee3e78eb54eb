-- Outbound OAuth: the external providers Gatehouse obtains tokens from, the profiles (provider
-- and scopes) tokens are obtained for, the connection aliases that name an API and a profile,
-- and the tokens themselves. Credentials and tokens are sealed (AES-GCM under the master key).
CREATE TABLE oauth_providers (
    name TEXT PRIMARY KEY,
    token_url TEXT NOT NULL,
    authorization_url TEXT,
    client_id TEXT NOT NULL,
    client_secret_sealed BYTEA,
    auth_method TEXT NOT NULL,
    grant_type TEXT NOT NULL,
    audience TEXT,
    resource TEXT,
    username TEXT,
    password_sealed BYTEA,
    signing_key_sealed BYTEA,
    signing_kid TEXT,
    signing_alg TEXT,
    signing_public_jwk TEXT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);

CREATE TABLE oauth_profiles (
    name TEXT PRIMARY KEY,
    provider TEXT NOT NULL REFERENCES oauth_providers (name),
    scopes TEXT NOT NULL,
    per_user BOOLEAN NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);

CREATE TABLE connection_aliases (
    name TEXT PRIMARY KEY,
    base_url TEXT NOT NULL,
    profile TEXT NOT NULL REFERENCES oauth_profiles (name),
    allowed_roles TEXT NOT NULL,
    timeout_seconds BIGINT NOT NULL,
    max_retries BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);

-- owner is the user's id for per-user profiles and empty for system-wide ones.
CREATE TABLE outbound_tokens (
    profile TEXT NOT NULL REFERENCES oauth_profiles (name),
    owner TEXT NOT NULL,
    access_token_sealed BYTEA NOT NULL,
    refresh_token_sealed BYTEA,
    obtained_at BIGINT NOT NULL,
    expires_at BIGINT,
    PRIMARY KEY (profile, owner)
);
