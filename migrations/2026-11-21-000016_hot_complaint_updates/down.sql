ALTER TABLE complaints RESET (fillfactor);
CREATE INDEX complaints_tenant_updated ON complaints (tenant_id, updated_at);
DROP INDEX complaint_events_tenant_at;
