-- The second wall between tenants: row-level security on every table that holds tenant
-- data (the first wall is the explicit tenant filter every query carries).
--
-- The API and the worker connect as redress_app (000005): it owns no table, is no
-- superuser and cannot bypass row-level security, and every table below is FORCEd, so
-- even its owner is held by the policies unless it bypasses them (the migration and admin
-- role must: a superuser, or a role with BYPASSRLS; docs/OPERATIONS.md).
--
-- Each transaction that touches tenant data first sets `redress.tenant_id` (transaction-
-- local, shared/src/db/tenant.rs); redress_tenant() reads it and is NULL when unset, which
-- matches no row. `tenant_id = redress_tenant()` with a STABLE function is evaluated once
-- per statement and uses the (tenant_id, …) indexes like a literal would.
--
-- Every new table with tenant data follows the same four lines in its own migration;
-- tests/it/tenancy.rs fails for a table with a tenant_id column that does not.

-- ---------------------------------------------------------------------------------------
-- Idempotency records hold whole responses (complaint views), so they are tenant data
-- too; they only had the client. The column defaults to the transaction's tenant, which
-- the policy then checks, so the code that writes them needs no change.
ALTER TABLE idempotency_keys ADD COLUMN tenant_id TEXT REFERENCES tenants (id);
UPDATE idempotency_keys k SET tenant_id = c.tenant_id FROM clients c WHERE c.id = k.client_id;
ALTER TABLE idempotency_keys ALTER COLUMN tenant_id SET NOT NULL;
ALTER TABLE idempotency_keys ALTER COLUMN tenant_id SET DEFAULT redress_tenant();

-- ---------------------------------------------------------------------------------------
-- The usual shape: a tenant reads and writes its own rows, and only those.
DO $$
DECLARE
    t text;
BEGIN
    FOREACH t IN ARRAY ARRAY[
        'clients', 'complaints', 'complaint_events', 'outbox', 'idempotency_keys',
        'webhook_endpoints', 'webhook_messages', 'webhook_attempts',
        'routing_versions', 'complaint_routing', 'calendars', 'sla_policies', 'sla_clocks',
        'audit_log'
    ] LOOP
        EXECUTE format('ALTER TABLE %I ENABLE ROW LEVEL SECURITY', t);
        EXECUTE format('ALTER TABLE %I FORCE ROW LEVEL SECURITY', t);
        EXECUTE format(
            'CREATE POLICY tenant_isolation ON %I '
            'USING (tenant_id = redress_tenant()) WITH CHECK (tenant_id = redress_tenant())', t);
        EXECUTE format('GRANT SELECT, INSERT, UPDATE, DELETE ON %I TO redress_app', t);
    END LOOP;
END $$;

-- A tenant sees (and may update) its own row; creating and removing tenants is
-- cross-tenant administration (`redress-api admin tenant …`, the admin role).
ALTER TABLE tenants ENABLE ROW LEVEL SECURITY;
ALTER TABLE tenants FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON tenants
    USING (id = redress_tenant()) WITH CHECK (id = redress_tenant());
GRANT SELECT, UPDATE ON tenants TO redress_app;

-- Calendar days: a built-in calendar's days (tenant_id NULL) are read by every tenant and
-- written by none (they are loaded with `redress-api admin calendar load-year`); a
-- tenant's own days are its own. Permissive policies are OR-ed per command, so SELECT
-- sees both kinds while INSERT, UPDATE and DELETE see only the tenant's rows.
ALTER TABLE calendar_days ENABLE ROW LEVEL SECURITY;
ALTER TABLE calendar_days FORCE ROW LEVEL SECURITY;
CREATE POLICY builtin_read ON calendar_days FOR SELECT
    USING (tenant_id IS NULL);
CREATE POLICY tenant_isolation ON calendar_days
    USING (tenant_id = redress_tenant()) WITH CHECK (tenant_id = redress_tenant());
GRANT SELECT, INSERT, UPDATE, DELETE ON calendar_days TO redress_app;

-- Hub-wide tables without tenant data: the years known to the built-in calendars (read
-- only: loaded by the admin command) and the consumers' record of messages applied (ids
-- of messages, nothing of any tenant).
GRANT SELECT ON calendar_years TO redress_app;
GRANT SELECT, INSERT, UPDATE, DELETE ON processed_messages TO redress_app;

GRANT USAGE ON SEQUENCE outbox_id_seq, webhook_attempts_id_seq, calendar_days_id_seq,
    sla_clocks_id_seq, audit_log_id_seq TO redress_app;

-- ---------------------------------------------------------------------------------------
-- The few questions that must look across tenants before a tenant is known. Each is a
-- SECURITY DEFINER function owned by redress_system (BYPASSRLS, cannot log in), with the
-- search path pinned so no caller can put its own objects in front of the tables, and
-- each returns only what its caller needs to then set the tenant and do the real work in
-- a tenant transaction. Only redress_app may call them.

-- The outbox relay claims unsent rows of every tenant for a lease. The payload is the
-- queue message itself (ids and a type, never personal data: domain/events.rs), which the
-- relay publishes as is; marking rows sent happens per tenant.
CREATE FUNCTION redress_claim_outbox(lease_secs double precision, max_rows bigint)
    RETURNS TABLE (id bigint, message_id uuid, tenant_id text, routing_key text, payload jsonb)
    LANGUAGE sql VOLATILE SECURITY DEFINER
    SET search_path = pg_catalog, public
    AS $$
        UPDATE public.outbox o
        SET claimed_until = now() + make_interval(secs => lease_secs), attempts = o.attempts + 1
        WHERE o.id IN (SELECT u.id FROM public.outbox u
                       WHERE u.sent_at IS NULL
                         AND (u.claimed_until IS NULL OR u.claimed_until < now())
                       ORDER BY u.id LIMIT max_rows FOR UPDATE SKIP LOCKED)
        RETURNING o.id, o.message_id, o.tenant_id, o.routing_key, o.payload
    $$;

-- The SLA scheduler claims due clocks of every tenant (reads only the partial index
-- sla_clocks_due, as before).
CREATE FUNCTION redress_claim_due_clocks(as_of timestamptz, max_rows bigint, lease_until timestamptz)
    RETURNS TABLE (id bigint, tenant_id text, complaint_id text)
    LANGUAGE sql VOLATILE SECURITY DEFINER
    SET search_path = pg_catalog, public
    AS $$
        WITH due AS (
            SELECT s.id FROM public.sla_clocks s
            WHERE s.state = 'running' AND s.next_fire_at <= as_of
              AND (s.claimed_until IS NULL OR s.claimed_until <= as_of)
            ORDER BY s.next_fire_at
            LIMIT max_rows
            FOR UPDATE SKIP LOCKED
        )
        UPDATE public.sla_clocks c SET claimed_until = lease_until
        FROM due WHERE c.id = due.id
        RETURNING c.id, c.tenant_id, c.complaint_id
    $$;

-- The webhook dispatcher claims due messages of enabled, unthrottled endpoints of every
-- tenant, skipping the endpoints it is already busy with. Bodies, URLs and secrets are
-- read afterwards, per tenant.
CREATE FUNCTION redress_claim_webhook_messages(
        as_of timestamptz, max_rows bigint, lease_until timestamptz, busy_endpoints text[])
    RETURNS TABLE (id text, tenant_id text)
    LANGUAGE sql VOLATILE SECURITY DEFINER
    SET search_path = pg_catalog, public
    AS $$
        UPDATE public.webhook_messages m SET claimed_until = lease_until
        WHERE m.id IN (
            SELECT m2.id FROM public.webhook_messages m2
            JOIN public.webhook_endpoints e2 ON e2.id = m2.endpoint_id
            WHERE m2.status = 'pending' AND m2.next_attempt_at <= as_of
              AND (m2.claimed_until IS NULL OR m2.claimed_until <= as_of)
              AND e2.enabled AND (e2.throttled_until IS NULL OR e2.throttled_until <= as_of)
              AND NOT (m2.endpoint_id = ANY(busy_endpoints))
            ORDER BY m2.next_attempt_at
            LIMIT max_rows
            FOR UPDATE OF m2 SKIP LOCKED)
        RETURNING m.id, m.tenant_id
    $$;

-- /oauth/token: the tenant of a client, before any tenant is known. Only the tenant id:
-- the secret hash, scopes and state are read in a transaction set to that tenant.
CREATE FUNCTION redress_client_tenant(client text)
    RETURNS text
    LANGUAGE sql STABLE SECURITY DEFINER
    SET search_path = pg_catalog, public
    AS $$ SELECT c.tenant_id FROM public.clients c WHERE c.id = client $$;

-- Metrics: the outbox backlog over every tenant (a count and an age, nothing else).
CREATE FUNCTION redress_outbox_backlog()
    RETURNS TABLE (unsent bigint, oldest_secs double precision)
    LANGUAGE sql STABLE SECURITY DEFINER
    SET search_path = pg_catalog, public
    AS $$
        SELECT count(*), COALESCE(EXTRACT(EPOCH FROM now() - min(o.created_at))::float8, 0)
        FROM public.outbox o WHERE o.sent_at IS NULL
    $$;

GRANT SELECT, UPDATE ON outbox, sla_clocks, webhook_messages TO redress_system;
GRANT SELECT ON webhook_endpoints, clients TO redress_system;

DO $$
DECLARE
    f text;
BEGIN
    FOREACH f IN ARRAY ARRAY[
        'redress_claim_outbox(double precision, bigint)',
        'redress_claim_due_clocks(timestamptz, bigint, timestamptz)',
        'redress_claim_webhook_messages(timestamptz, bigint, timestamptz, text[])',
        'redress_client_tenant(text)',
        'redress_outbox_backlog()'
    ] LOOP
        EXECUTE 'ALTER FUNCTION ' || f || ' OWNER TO redress_system';
        EXECUTE 'REVOKE ALL ON FUNCTION ' || f || ' FROM PUBLIC';
        EXECUTE 'GRANT EXECUTE ON FUNCTION ' || f || ' TO redress_app';
    END LOOP;
END $$;
