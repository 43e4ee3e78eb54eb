-- An application's own tokens (client credentials) have no user and no grant. Left out of the
-- indexes on those columns, issuing one updates two indexes fewer; every query on them asks
-- for a value (`= $1`, `IN (...)`), which a NULL never matches, so each still uses its index.
DROP INDEX access_tokens_by_user;
CREATE INDEX access_tokens_by_user ON access_tokens (user_id) WHERE user_id IS NOT NULL;
DROP INDEX access_tokens_by_grant;
CREATE INDEX access_tokens_by_grant ON access_tokens (grant_id) WHERE grant_id IS NOT NULL;
