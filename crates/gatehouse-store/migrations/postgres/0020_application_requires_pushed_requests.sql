-- Whether an application's authorization requests must be pushed first (RFC 9126).
ALTER TABLE clients ADD COLUMN require_pushed_authorization_requests BOOLEAN NOT NULL DEFAULT FALSE;
