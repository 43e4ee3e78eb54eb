-- DPoP (RFC 9449): whether an application must prove possession of a key with every token
-- request, and the thumbprint of the key an opaque access token, a public client's refresh
-- token or an authorization code (dpop_jkt, §10) is bound to (JWT access tokens carry theirs as
-- cnf.jkt).
ALTER TABLE clients ADD COLUMN dpop_bound_access_tokens BOOLEAN NOT NULL DEFAULT FALSE;
ALTER TABLE access_tokens ADD COLUMN dpop_jkt TEXT;
ALTER TABLE refresh_tokens ADD COLUMN dpop_jkt TEXT;
ALTER TABLE authorization_codes ADD COLUMN dpop_jkt TEXT;
