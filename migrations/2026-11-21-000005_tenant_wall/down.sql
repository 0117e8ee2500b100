DROP TABLE audit_log;
DROP FUNCTION redress_tenant();
REVOKE USAGE ON SCHEMA public FROM redress_app, redress_system;
-- The roles stay: they belong to the cluster and other databases may use them.
