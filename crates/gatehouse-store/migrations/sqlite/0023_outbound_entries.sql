-- OAuth profiles and connection aliases become registry entries: each row moves into
-- registry_entries as the JSON document of its kind, and their tables go. Tokens keep naming
-- their profile, now without a foreign key (SQLite cannot drop one, so the table is rebuilt):
-- the registry drops a profile's tokens when the profile changes or is deleted.
INSERT INTO registry_entries (kind, name, body, managed, created_at, updated_at)
SELECT 'oauth_profile', name,
       json_object('name', name, 'provider', provider, 'scopes', json(scopes),
                   'per_user', CASE WHEN per_user THEN json('true') ELSE json('false') END),
       FALSE, created_at, updated_at
FROM oauth_profiles;

INSERT INTO registry_entries (kind, name, body, managed, created_at, updated_at)
SELECT 'connection_alias', name,
       json_object('name', name, 'base_url', base_url, 'profile', profile,
                   'allowed_roles', json(allowed_roles), 'timeout_seconds', timeout_seconds,
                   'max_retries', max_retries),
       FALSE, created_at, updated_at
FROM connection_aliases;

CREATE TABLE outbound_tokens_rebuilt (
    profile TEXT NOT NULL,
    owner TEXT NOT NULL,
    access_token_sealed BLOB NOT NULL,
    refresh_token_sealed BLOB,
    obtained_at BIGINT NOT NULL,
    expires_at BIGINT,
    PRIMARY KEY (profile, owner)
);
INSERT INTO outbound_tokens_rebuilt
    (profile, owner, access_token_sealed, refresh_token_sealed, obtained_at, expires_at)
SELECT profile, owner, access_token_sealed, refresh_token_sealed, obtained_at, expires_at
FROM outbound_tokens;
DROP TABLE outbound_tokens;
ALTER TABLE outbound_tokens_rebuilt RENAME TO outbound_tokens;

DROP TABLE connection_aliases;
DROP TABLE oauth_profiles;
