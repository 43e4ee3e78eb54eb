-- Federated tokens must say what they are: plain JWTs and ID tokens are accepted on the APIs only
-- from providers that opt in by name, and keys that fail to refresh serve only for a bounded time.
ALTER TABLE jwt_providers ADD COLUMN accept_plain_jwt BOOLEAN NOT NULL DEFAULT FALSE;
ALTER TABLE jwt_providers ADD COLUMN accept_id_tokens BOOLEAN NOT NULL DEFAULT FALSE;
ALTER TABLE jwt_providers ADD COLUMN stale_keys_lifetime BIGINT NOT NULL DEFAULT 3600;

-- private_key_jwt assertions name the issuer; the token endpoint only for applications kept on
-- the older rule.
ALTER TABLE clients ADD COLUMN legacy_token_endpoint_aud BOOLEAN NOT NULL DEFAULT FALSE;

-- An email maps to one person. The store refuses to run this migration while users share an
-- email, naming them, rather than choosing which of them keeps it.
DROP INDEX users_by_email;
CREATE UNIQUE INDEX users_by_email ON users (email);

-- Outbound authorization codes are bound to the provider that issued them (RFC 9207).
ALTER TABLE oauth_providers ADD COLUMN issuer TEXT;
ALTER TABLE oauth_providers ADD COLUMN authorization_response_iss_parameter_supported BOOLEAN NOT NULL DEFAULT FALSE;
