-- OpenID Connect Back-Channel Logout 1.0: where an application hears that a user signed out,
-- and whether it needs the session (`sid`) named; a code remembers the session it was issued
-- in, so the ID token it is redeemed for names it too.
ALTER TABLE clients ADD COLUMN backchannel_logout_uri TEXT;
ALTER TABLE clients ADD COLUMN backchannel_logout_session_required BOOLEAN NOT NULL DEFAULT FALSE;
ALTER TABLE authorization_codes ADD COLUMN sid TEXT;
