DROP POLICY hub_entries_insert ON audit_log;
