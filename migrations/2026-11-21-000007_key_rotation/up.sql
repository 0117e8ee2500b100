-- Rotating keys and secrets, and private_key_jwt client authentication (issue 6).

-- The keys that sign access tokens, hub-wide (no tenant): every API process reads this
-- table periodically, so all of them publish, sign with and accept the same keys.
--
-- A key is published in the JWKS from the moment its row exists, signs from activates_at
-- until the next key's activates_at, and stays published for one token lifetime (plus
-- leeway) after that. Rotation inserts a key whose activates_at lies a publish lead time in
-- the future, so every process and every partner's JWKS cache knows it before it signs.
--
-- At rest: private_pem is the PKCS#8 PEM in clear text, protected only by the database's
-- access control (and by disk or volume encryption where the operator runs it). It is not
-- encrypted by the application: every API process must read it to sign, so a key to decrypt
-- it would sit beside the database URL in the same configuration. Once a key has left the
-- JWKS its private half is erased (set to NULL) at the next rotation, so a database dump
-- holds at most the current, the next and the recently retired keys.
CREATE TABLE signing_keys (
    kid           TEXT PRIMARY KEY,
    algorithm     TEXT NOT NULL CHECK (algorithm IN ('EdDSA', 'ES256')),
    private_pem   TEXT,
    public_jwk    JSONB NOT NULL,
    activates_at  TIMESTAMPTZ NOT NULL,
    created_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
    -- "bootstrap" (the configured key file), "cli:<user>" or "client:<id>".
    created_by    TEXT NOT NULL
);
CREATE INDEX signing_keys_activates ON signing_keys (activates_at);
GRANT SELECT, INSERT, UPDATE, DELETE ON signing_keys TO redress_app;

-- Client-secret rotation: the previous secret keeps working until its expiry.
ALTER TABLE clients
    ADD COLUMN previous_secret_hash TEXT,
    ADD COLUMN previous_secret_expires_at TIMESTAMPTZ;

-- Public keys a partner registered for private_key_jwt (RFC 7523). Only the public members
-- of the JWK are kept. Assertions are verified with these keys and no others.
CREATE TABLE client_keys (
    tenant_id   TEXT NOT NULL REFERENCES tenants (id),
    client_id   TEXT NOT NULL REFERENCES clients (id) ON DELETE CASCADE,
    kid         TEXT NOT NULL,
    -- EdDSA | ES256 | RS256
    alg         TEXT NOT NULL,
    jwk         JSONB NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (client_id, kid)
);
CREATE INDEX client_keys_tenant ON client_keys (tenant_id, client_id);
ALTER TABLE client_keys ENABLE ROW LEVEL SECURITY;
ALTER TABLE client_keys FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON client_keys
    USING (tenant_id = redress_tenant()) WITH CHECK (tenant_id = redress_tenant());
GRANT SELECT, INSERT, UPDATE, DELETE ON client_keys TO redress_app;

-- The jti of every accepted client assertion, kept until the assertion has expired, so an
-- assertion is accepted once. The primary key is what refuses a replay, also between
-- two API processes racing on the same assertion.
CREATE TABLE client_assertion_jtis (
    tenant_id   TEXT NOT NULL REFERENCES tenants (id),
    client_id   TEXT NOT NULL REFERENCES clients (id) ON DELETE CASCADE,
    jti         TEXT NOT NULL,
    expires_at  TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (client_id, jti)
);
CREATE INDEX client_assertion_jtis_expiry ON client_assertion_jtis (expires_at);
ALTER TABLE client_assertion_jtis ENABLE ROW LEVEL SECURITY;
ALTER TABLE client_assertion_jtis FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON client_assertion_jtis
    USING (tenant_id = redress_tenant()) WITH CHECK (tenant_id = redress_tenant());
GRANT SELECT, INSERT, UPDATE, DELETE ON client_assertion_jtis TO redress_app;
