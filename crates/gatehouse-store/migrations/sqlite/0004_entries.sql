-- Configuration entries of the registry (scopes, REST API auth scope rules, gateway routes,
-- tables): one JSON document per kind and name, read whole into memory by every instance.
CREATE TABLE registry_entries (
    kind TEXT NOT NULL,
    name TEXT NOT NULL,
    body TEXT NOT NULL,
    managed BOOLEAN NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (kind, name)
);

-- The scopes every installation starts with. `useraccount` stands for everything the user's
-- roles allow and is what a request no scope rule covers needs.
INSERT INTO registry_entries (kind, name, body, managed, created_at, updated_at) VALUES
('scope', 'useraccount', '{"name":"useraccount","description":"act as you, with everything your roles allow","default":true}', FALSE, 0, 0),
('scope', 'openid', '{"name":"openid","description":"know who you are","default":false}', FALSE, 0, 0),
('scope', 'profile', '{"name":"profile","description":"see your name and user name","default":false}', FALSE, 0, 0),
('scope', 'email', '{"name":"email","description":"see your email address","default":false}', FALSE, 0, 0),
('scope', 'offline_access', '{"name":"offline_access","description":"keep access while you are away","default":false}', FALSE, 0, 0);

-- Records of the Table API: each a JSON object of fields in a table the registry declares.
-- sys_mod_count is the version a change compares and swaps.
CREATE TABLE table_records (
    table_name TEXT NOT NULL,
    sys_id TEXT NOT NULL,
    fields TEXT NOT NULL,
    sys_created_on BIGINT NOT NULL,
    sys_updated_on BIGINT NOT NULL,
    sys_mod_count BIGINT NOT NULL,
    PRIMARY KEY (table_name, sys_id)
);
CREATE INDEX table_records_in_order ON table_records (table_name, sys_created_on, sys_id);
