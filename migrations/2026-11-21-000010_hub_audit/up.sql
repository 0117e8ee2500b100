-- Hub-wide admin actions (signing-key bootstrap and rotation through the API, by a
-- hub:admin caller) are audited with no tenant. The tenant policy of audit_log (000006)
-- refuses such rows from the application role; this lets it add them, and only add them:
-- no policy lets it read, change or delete a hub-wide row.
CREATE POLICY hub_entries_insert ON audit_log FOR INSERT TO redress_app
    WITH CHECK (tenant_id IS NULL);
