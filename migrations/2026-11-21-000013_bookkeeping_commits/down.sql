-- The claims as migration 000011 left them (commits wait for the disk).
CREATE OR REPLACE FUNCTION redress_claim_outbox(lease_secs double precision, max_rows bigint)
    RETURNS TABLE (id bigint, message_id uuid, tenant_id text, routing_key text, payload jsonb)
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER
    SET search_path = pg_catalog, public
    SET jit = off
    AS $$
    BEGIN
        RETURN QUERY
        UPDATE public.outbox o
        SET claimed_until = now() + make_interval(secs => lease_secs), attempts = o.attempts + 1
        WHERE o.id IN (SELECT u.id FROM public.outbox u
                       WHERE u.sent_at IS NULL
                         AND (u.claimed_until IS NULL OR u.claimed_until < now())
                       ORDER BY u.id LIMIT max_rows FOR UPDATE SKIP LOCKED)
        RETURNING o.id, o.message_id, o.tenant_id, o.routing_key, o.payload;
    END
    $$;

CREATE OR REPLACE FUNCTION redress_claim_webhook_messages(
        as_of timestamptz, max_rows bigint, lease_until timestamptz,
        busy_ids text[], busy_counts int[], per_endpoint int)
    RETURNS TABLE (id text, tenant_id text)
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER
    SET search_path = pg_catalog, public
    SET jit = off
    AS $$
    BEGIN
        RETURN QUERY
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
        RETURNING m.id, m.tenant_id;
    END
    $$;
