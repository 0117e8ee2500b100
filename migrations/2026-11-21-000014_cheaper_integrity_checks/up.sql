-- Integrity checks that cost less per complaint and say more (docs/PERFORMANCE.md).
--
-- 1. redress_phone_key (000008) was a SQL function with a FROM clause, which Postgres
--    cannot inline: every insert into complaints, and every update of one that is not HOT,
--    parsed and planned its body again to maintain complaints_complainant_phone. The same
--    function in PL/pgSQL keeps its plan per connection. Same results for every input, so
--    the index stays valid.
CREATE OR REPLACE FUNCTION redress_phone_key(phone text) RETURNS text
    LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE
    AS $$
    DECLARE
        d text := regexp_replace(coalesce(phone, ''), '[^0-9]', '', 'g');
    BEGIN
        RETURN CASE
            WHEN d = '' THEN NULL
            WHEN length(d) = 13 AND left(d, 2) = '86' THEN substr(d, 3)
            WHEN length(d) = 15 AND left(d, 4) = '0086' THEN substr(d, 5)
            ELSE d
        END;
    END
    $$;

-- 2. Rows that belong to a complaint (or a client, or an endpoint) referenced it and, apart,
--    the tenant: two checks per row, the second locking one of a handful of tenant rows that
--    every transaction shares (FOR KEY SHARE from many transactions at once makes
--    multixacts). One key over (tenant_id, parent) is one check, and a stronger one: a row
--    can no longer name a complaint, client or endpoint of another tenant. The parent's
--    tenant is checked where the parent is written.
CREATE UNIQUE INDEX clients_tenant_key ON clients (tenant_id, id);
DROP INDEX clients_tenant;
CREATE UNIQUE INDEX complaints_tenant_key ON complaints (tenant_id, id);
DROP INDEX complaints_tenant_id;
CREATE UNIQUE INDEX webhook_endpoints_tenant_key ON webhook_endpoints (tenant_id, id);
DROP INDEX webhook_endpoints_tenant;

-- NOT VALID, then VALIDATE: on a hub with data, validation scans the table without blocking
-- writes to it.
ALTER TABLE complaints
    DROP CONSTRAINT complaints_tenant_id_fkey,
    DROP CONSTRAINT complaints_client_id_fkey,
    ADD CONSTRAINT complaints_tenant_client_fkey FOREIGN KEY (tenant_id, client_id)
        REFERENCES clients (tenant_id, id) NOT VALID;
ALTER TABLE complaint_events
    DROP CONSTRAINT complaint_events_tenant_id_fkey,
    DROP CONSTRAINT complaint_events_complaint_id_fkey,
    ADD CONSTRAINT complaint_events_tenant_complaint_fkey FOREIGN KEY (tenant_id, complaint_id)
        REFERENCES complaints (tenant_id, id) NOT VALID;
ALTER TABLE sla_clocks
    DROP CONSTRAINT sla_clocks_tenant_id_fkey,
    DROP CONSTRAINT sla_clocks_complaint_id_fkey,
    ADD CONSTRAINT sla_clocks_tenant_complaint_fkey FOREIGN KEY (tenant_id, complaint_id)
        REFERENCES complaints (tenant_id, id) NOT VALID;
-- The routing version's key already carries the tenant.
ALTER TABLE complaint_routing
    DROP CONSTRAINT complaint_routing_tenant_id_fkey,
    DROP CONSTRAINT complaint_routing_complaint_id_fkey,
    ADD CONSTRAINT complaint_routing_tenant_complaint_fkey FOREIGN KEY (tenant_id, complaint_id)
        REFERENCES complaints (tenant_id, id) NOT VALID;
ALTER TABLE webhook_messages
    DROP CONSTRAINT webhook_messages_tenant_id_fkey,
    DROP CONSTRAINT webhook_messages_endpoint_id_fkey,
    ADD CONSTRAINT webhook_messages_tenant_endpoint_fkey FOREIGN KEY (tenant_id, endpoint_id)
        REFERENCES webhook_endpoints (tenant_id, id) ON DELETE CASCADE NOT VALID;
ALTER TABLE webhook_attempts
    DROP CONSTRAINT webhook_attempts_tenant_id_fkey,
    DROP CONSTRAINT webhook_attempts_endpoint_id_fkey,
    ADD CONSTRAINT webhook_attempts_tenant_endpoint_fkey FOREIGN KEY (tenant_id, endpoint_id)
        REFERENCES webhook_endpoints (tenant_id, id) ON DELETE CASCADE NOT VALID;

ALTER TABLE complaints VALIDATE CONSTRAINT complaints_tenant_client_fkey;
ALTER TABLE complaint_events VALIDATE CONSTRAINT complaint_events_tenant_complaint_fkey;
ALTER TABLE sla_clocks VALIDATE CONSTRAINT sla_clocks_tenant_complaint_fkey;
ALTER TABLE complaint_routing VALIDATE CONSTRAINT complaint_routing_tenant_complaint_fkey;
ALTER TABLE webhook_messages VALIDATE CONSTRAINT webhook_messages_tenant_endpoint_fkey;
ALTER TABLE webhook_attempts VALIDATE CONSTRAINT webhook_attempts_tenant_endpoint_fkey;
