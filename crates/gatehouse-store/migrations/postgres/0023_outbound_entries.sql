-- OAuth profiles and connection aliases become registry entries: each row moves into
-- registry_entries as the JSON document of its kind, and their tables go. Tokens keep naming
-- their profile, now without a foreign key: the registry drops a profile's tokens when the
-- profile changes or is deleted.
INSERT INTO registry_entries (kind, name, body, managed, created_at, updated_at)
SELECT 'oauth_profile', name,
       json_build_object('name', name, 'provider', provider, 'scopes', scopes::json,
                         'per_user', per_user)::text,
       FALSE, created_at, updated_at
FROM oauth_profiles;

INSERT INTO registry_entries (kind, name, body, managed, created_at, updated_at)
SELECT 'connection_alias', name,
       json_build_object('name', name, 'base_url', base_url, 'profile', profile,
                         'allowed_roles', allowed_roles::json,
                         'timeout_seconds', timeout_seconds, 'max_retries', max_retries)::text,
       FALSE, created_at, updated_at
FROM connection_aliases;

ALTER TABLE outbound_tokens DROP CONSTRAINT outbound_tokens_profile_fkey;
DROP TABLE connection_aliases;
DROP TABLE oauth_profiles;
