-- Token exchange (RFC 8693): an access token made for a delegation names who acts for its
-- subject (`act`, the claim's JSON; NULL otherwise), and an application lists the audiences it
-- may ask an exchange for (a JSON array).
ALTER TABLE access_tokens ADD COLUMN act TEXT;
ALTER TABLE clients ADD COLUMN exchange_audiences TEXT NOT NULL DEFAULT '[]';
