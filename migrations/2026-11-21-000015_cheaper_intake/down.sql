ALTER TABLE complaint_events ALTER COLUMN data SET COMPRESSION DEFAULT;
ALTER TABLE complaints ALTER COLUMN details SET COMPRESSION DEFAULT,
                       ALTER COLUMN current_rungs SET COMPRESSION DEFAULT;
ALTER TABLE webhook_messages ALTER COLUMN body SET COMPRESSION DEFAULT;

ALTER TABLE idempotency_keys
    DROP CONSTRAINT idempotency_keys_tenant_client_fkey,
    ADD CONSTRAINT idempotency_keys_client_id_fkey FOREIGN KEY (client_id) REFERENCES clients (id),
    ADD CONSTRAINT idempotency_keys_tenant_id_fkey FOREIGN KEY (tenant_id) REFERENCES tenants (id);
