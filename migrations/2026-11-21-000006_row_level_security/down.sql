DROP FUNCTION redress_claim_outbox(double precision, bigint);
DROP FUNCTION redress_claim_due_clocks(timestamptz, bigint, timestamptz);
DROP FUNCTION redress_claim_webhook_messages(timestamptz, bigint, timestamptz, text[]);
DROP FUNCTION redress_client_tenant(text);
DROP FUNCTION redress_outbox_backlog();
REVOKE ALL ON outbox, sla_clocks, webhook_messages, webhook_endpoints, clients FROM redress_system;

DO $$
DECLARE
    t text;
BEGIN
    FOREACH t IN ARRAY ARRAY[
        'tenants', 'clients', 'complaints', 'complaint_events', 'outbox', 'idempotency_keys',
        'webhook_endpoints', 'webhook_messages', 'webhook_attempts',
        'routing_versions', 'complaint_routing', 'calendars', 'calendar_days',
        'sla_policies', 'sla_clocks', 'audit_log'
    ] LOOP
        EXECUTE format('DROP POLICY tenant_isolation ON %I', t);
        EXECUTE format('ALTER TABLE %I NO FORCE ROW LEVEL SECURITY', t);
        EXECUTE format('ALTER TABLE %I DISABLE ROW LEVEL SECURITY', t);
        EXECUTE format('REVOKE ALL ON %I FROM redress_app', t);
    END LOOP;
END $$;
DROP POLICY builtin_read ON calendar_days;
REVOKE ALL ON calendar_years, processed_messages FROM redress_app;
REVOKE ALL ON SEQUENCE outbox_id_seq, webhook_attempts_id_seq, calendar_days_id_seq,
    sla_clocks_id_seq, audit_log_id_seq FROM redress_app;

ALTER TABLE idempotency_keys DROP COLUMN tenant_id;
