-- One row per signing algorithm, written by the transaction that stores that algorithm's first
-- key. Instances starting together on an empty database all write it, so the row lock makes
-- them take turns and only the first one stores a key; the others read that key back.
CREATE TABLE signing_key_lines (
    alg TEXT PRIMARY KEY
);
