-- A JWT provider's tokens stand for users who hold a registry role only when an administrator
-- said so: whoever controls its keys would otherwise act as one.
ALTER TABLE jwt_providers ADD COLUMN map_registry_roles BOOLEAN NOT NULL DEFAULT FALSE;
