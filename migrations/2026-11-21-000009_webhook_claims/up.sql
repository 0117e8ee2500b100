-- The dispatcher claims each endpoint's oldest due messages, as many as it has free slots
-- for that endpoint (shared/src/webhooks/store.rs claim_due): one index range per endpoint
-- instead of a walk over every endpoint's backlog that handed most of what it took back.
CREATE INDEX webhook_messages_endpoint_due ON webhook_messages (endpoint_id, next_attempt_at)
    WHERE status = 'pending';

-- Replaces the claim of migration 000006 (same owner, search path and callers): busy
-- endpoints are now given with how many messages are in flight to each, and each endpoint
-- gets at most per_endpoint minus that.
DROP FUNCTION redress_claim_webhook_messages(timestamptz, bigint, timestamptz, text[]);
CREATE FUNCTION redress_claim_webhook_messages(
        as_of timestamptz, max_rows bigint, lease_until timestamptz,
        busy_ids text[], busy_counts int[], per_endpoint int)
    RETURNS TABLE (id text, tenant_id text)
    LANGUAGE sql VOLATILE SECURITY DEFINER
    SET search_path = pg_catalog, public
    AS $$
        WITH picked AS (
            SELECT p.id
            FROM public.webhook_endpoints e
            LEFT JOIN unnest(busy_ids, busy_counts) AS busy(endpoint_id, in_flight)
                ON busy.endpoint_id = e.id
            CROSS JOIN LATERAL (
                SELECT m2.id, m2.next_attempt_at
                FROM public.webhook_messages m2
                WHERE m2.endpoint_id = e.id AND m2.status = 'pending'
                  AND m2.next_attempt_at <= as_of
                  AND (m2.claimed_until IS NULL OR m2.claimed_until <= as_of)
                ORDER BY m2.next_attempt_at
                LIMIT greatest(per_endpoint - coalesce(busy.in_flight, 0), 0)
                FOR UPDATE OF m2 SKIP LOCKED
            ) p
            WHERE e.enabled AND (e.throttled_until IS NULL OR e.throttled_until <= as_of)
            ORDER BY p.next_attempt_at
            LIMIT max_rows
        )
        UPDATE public.webhook_messages m SET claimed_until = lease_until
        WHERE m.id IN (SELECT picked.id FROM picked)
        RETURNING m.id, m.tenant_id
    $$;
ALTER FUNCTION redress_claim_webhook_messages(timestamptz, bigint, timestamptz, text[], int[], int)
    OWNER TO redress_system;
REVOKE ALL ON FUNCTION redress_claim_webhook_messages(timestamptz, bigint, timestamptz, text[], int[], int)
    FROM PUBLIC;
GRANT EXECUTE ON FUNCTION redress_claim_webhook_messages(timestamptz, bigint, timestamptz, text[], int[], int)
    TO redress_app;
