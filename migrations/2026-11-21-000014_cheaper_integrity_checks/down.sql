-- The keys and the phone function as migrations 000001–000008 left them.
ALTER TABLE webhook_attempts
    DROP CONSTRAINT webhook_attempts_tenant_endpoint_fkey,
    ADD CONSTRAINT webhook_attempts_tenant_id_fkey FOREIGN KEY (tenant_id) REFERENCES tenants (id),
    ADD CONSTRAINT webhook_attempts_endpoint_id_fkey FOREIGN KEY (endpoint_id)
        REFERENCES webhook_endpoints (id) ON DELETE CASCADE;
ALTER TABLE webhook_messages
    DROP CONSTRAINT webhook_messages_tenant_endpoint_fkey,
    ADD CONSTRAINT webhook_messages_tenant_id_fkey FOREIGN KEY (tenant_id) REFERENCES tenants (id),
    ADD CONSTRAINT webhook_messages_endpoint_id_fkey FOREIGN KEY (endpoint_id)
        REFERENCES webhook_endpoints (id) ON DELETE CASCADE;
ALTER TABLE complaint_routing
    DROP CONSTRAINT complaint_routing_tenant_complaint_fkey,
    ADD CONSTRAINT complaint_routing_tenant_id_fkey FOREIGN KEY (tenant_id) REFERENCES tenants (id),
    ADD CONSTRAINT complaint_routing_complaint_id_fkey FOREIGN KEY (complaint_id)
        REFERENCES complaints (id);
ALTER TABLE sla_clocks
    DROP CONSTRAINT sla_clocks_tenant_complaint_fkey,
    ADD CONSTRAINT sla_clocks_tenant_id_fkey FOREIGN KEY (tenant_id) REFERENCES tenants (id),
    ADD CONSTRAINT sla_clocks_complaint_id_fkey FOREIGN KEY (complaint_id) REFERENCES complaints (id);
ALTER TABLE complaint_events
    DROP CONSTRAINT complaint_events_tenant_complaint_fkey,
    ADD CONSTRAINT complaint_events_tenant_id_fkey FOREIGN KEY (tenant_id) REFERENCES tenants (id),
    ADD CONSTRAINT complaint_events_complaint_id_fkey FOREIGN KEY (complaint_id)
        REFERENCES complaints (id);
ALTER TABLE complaints
    DROP CONSTRAINT complaints_tenant_client_fkey,
    ADD CONSTRAINT complaints_tenant_id_fkey FOREIGN KEY (tenant_id) REFERENCES tenants (id),
    ADD CONSTRAINT complaints_client_id_fkey FOREIGN KEY (client_id) REFERENCES clients (id);

CREATE INDEX webhook_endpoints_tenant ON webhook_endpoints (tenant_id, id);
DROP INDEX webhook_endpoints_tenant_key;
CREATE INDEX complaints_tenant_id ON complaints (tenant_id, id);
DROP INDEX complaints_tenant_key;
CREATE INDEX clients_tenant ON clients (tenant_id);
DROP INDEX clients_tenant_key;

CREATE OR REPLACE FUNCTION redress_phone_key(phone text) RETURNS text
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    AS $$
        SELECT CASE
            WHEN d = '' THEN NULL
            WHEN length(d) = 13 AND left(d, 2) = '86' THEN substr(d, 3)
            WHEN length(d) = 15 AND left(d, 4) = '0086' THEN substr(d, 5)
            ELSE d
        END
        FROM (SELECT regexp_replace(coalesce(phone, ''), '[^0-9]', '', 'g') AS d) digits
    $$;
