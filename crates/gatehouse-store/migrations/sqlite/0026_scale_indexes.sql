-- Indexes the scale benchmark's query plans showed missing, each a full scan of a table that
-- grows with the users and their tokens: the upkeep's purge of expired sessions, ending a
-- user's sessions, revoking a user's refresh tokens for one application (consent withdrawn,
-- the user changed or deleted), and deleting an application's refresh tokens with it.
CREATE INDEX sessions_by_expiry ON sessions (expires_at);
CREATE INDEX sessions_by_user ON sessions (user_id);
CREATE INDEX refresh_tokens_by_user ON refresh_tokens (user_id, client_id);
CREATE INDEX refresh_tokens_by_client ON refresh_tokens (client_id);
