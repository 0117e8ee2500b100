-- The roles of the second wall between tenants, and the audit log.
--
-- Roles belong to the cluster, not to one database, so they are created only when missing
-- (several hub databases, and every test database, share them) and never dropped here.
--
--   redress_app     what the API and the worker connect as: owns no table, is no superuser
--                   and cannot bypass row-level security. Every transaction that touches
--                   tenant data first runs set_config('redress.tenant_id', <tenant>, true)
--                   (shared/src/db/tenant.rs); with no tenant set, a tenant table shows
--                   nothing.
--   redress_system  owns nothing either and cannot log in; it bypasses row-level security
--                   and owns the few SECURITY DEFINER functions that must look across
--                   tenants (claiming due work, finding the client at /oauth/token). Each
--                   returns only what the caller needs to then set the tenant.
--
-- Cross-tenant administration (the `redress-api admin …` commands) connects with the
-- migration URL (the tables' owner) and records what it did in audit_log.
DO $$
BEGIN
    CREATE ROLE redress_app LOGIN NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE;
EXCEPTION WHEN duplicate_object THEN NULL;
END $$;
DO $$
BEGIN
    CREATE ROLE redress_system NOLOGIN NOSUPERUSER BYPASSRLS NOCREATEDB NOCREATEROLE;
EXCEPTION WHEN duplicate_object THEN NULL;
END $$;

GRANT USAGE ON SCHEMA public TO redress_app, redress_system;

-- The tenant of the current transaction; NULL when none is set, which matches no row.
CREATE FUNCTION redress_tenant() RETURNS text
    LANGUAGE sql STABLE PARALLEL SAFE
    AS $$ SELECT nullif(current_setting('redress.tenant_id', true), '') $$;

-- Who did what, for admin actions (tenant, client, key and secret management, exports,
-- erasures, cross-tenant commands). tenant_id is NULL for hub-wide actions.
CREATE TABLE audit_log (
    id         BIGSERIAL PRIMARY KEY,
    at         TIMESTAMPTZ NOT NULL DEFAULT now(),
    tenant_id  TEXT REFERENCES tenants (id),
    -- "client:<id>" for an API caller, "cli:<os user>" for an admin command.
    actor      TEXT NOT NULL,
    action     TEXT NOT NULL,
    target     TEXT,
    details    JSONB NOT NULL DEFAULT '{}'
);
CREATE INDEX audit_log_tenant_at ON audit_log (tenant_id, at);
