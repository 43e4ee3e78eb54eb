-- Audiences (RFC 8707, RFC 9068 §4): applications that are resource servers name the audience
-- identifiers tokens for them carry, and tokens, codes and refresh tokens record what they were
-- issued for. Lists are JSON arrays; an empty list on a token row (rows from before this
-- migration) means this server's issuer.
ALTER TABLE clients ADD COLUMN audiences TEXT NOT NULL DEFAULT '[]';
ALTER TABLE clients ADD COLUMN introspect_any BOOLEAN NOT NULL DEFAULT FALSE;

-- The unique index of clients.audiences: written in the same transaction as the client row, so
-- one audience identifier can never belong to two applications.
CREATE TABLE client_audiences (
    audience TEXT PRIMARY KEY,
    client_id TEXT NOT NULL
);
CREATE INDEX client_audiences_by_client ON client_audiences (client_id);

ALTER TABLE access_tokens ADD COLUMN audience TEXT NOT NULL DEFAULT '[]';
ALTER TABLE refresh_tokens ADD COLUMN audience TEXT NOT NULL DEFAULT '[]';
ALTER TABLE authorization_codes ADD COLUMN audience TEXT NOT NULL DEFAULT '[]';
