DROP TABLE client_assertion_jtis;
DROP TABLE client_keys;
ALTER TABLE clients
    DROP COLUMN previous_secret_expires_at,
    DROP COLUMN previous_secret_hash;
DROP TABLE signing_keys;
