DROP FUNCTION redress_claim_webhook_messages(timestamptz, bigint, timestamptz, text[], int[], int);
-- The claim of migration 000006, as it was.
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
ALTER FUNCTION redress_claim_webhook_messages(timestamptz, bigint, timestamptz, text[])
    OWNER TO redress_system;
REVOKE ALL ON FUNCTION redress_claim_webhook_messages(timestamptz, bigint, timestamptz, text[])
    FROM PUBLIC;
GRANT EXECUTE ON FUNCTION redress_claim_webhook_messages(timestamptz, bigint, timestamptz, text[])
    TO redress_app;
DROP INDEX webhook_messages_endpoint_due;
