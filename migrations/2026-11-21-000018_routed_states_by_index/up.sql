-- Routing a batch of new cases updated their complaint rows in one statement, a join of
-- the table with the batch's ids (UPDATE … FROM unnest). The planner may answer that join
-- by reading every complaint of the tenant (a scan of complaints_tenant_key by tenant, then
-- a hash join, or a nested loop over the tenant's rows) when its statistics say the tenant
-- has few complaints: a new tenant, a fresh database, or any tenant whose complaints grew
-- faster than autovacuum analyses them (at most once a minute). Then each batch reads the
-- whole tenant, and more with every complaint filed. Measured under load on a fresh
-- database (docs/PERFORMANCE.md, session 7): 5-8 ms and about 110 buffer reads per updated
-- row, against 0.6 ms and 13 when the plan probed the index per row; the batches held their
-- row locks that much longer and routing fell behind. Planner settings did not make the
-- join safe: with hash joins, bitmap scans and materialisation priced out, stale statistics
-- still made a nested loop over the tenant's rows look cheapest.
--
-- This function updates each row by its key instead, one statement per row inside the
-- server (no round trip each): an equality on every column of a unique index is planned as
-- a probe of at most one row whatever the statistics say.
--
-- It runs as its caller (SECURITY INVOKER), under row-level security with the tenant the
-- transaction set. Returns the number of rows updated; the caller checks it.
CREATE FUNCTION redress_set_routed_states(
        p_tenant text, p_status text, p_now timestamptz,
        p_ids text[], p_rungs jsonb[], p_sequences int[])
    RETURNS int
    LANGUAGE plpgsql VOLATILE
    SET search_path = pg_catalog, public
    SET jit = off
    AS $$
    DECLARE
        updated int := 0;
    BEGIN
        IF array_length(p_rungs, 1) IS DISTINCT FROM array_length(p_ids, 1)
           OR array_length(p_sequences, 1) IS DISTINCT FROM array_length(p_ids, 1) THEN
            RAISE EXCEPTION 'redress_set_routed_states: the arrays differ in length';
        END IF;
        FOR i IN 1 .. coalesce(array_length(p_ids, 1), 0) LOOP
            UPDATE complaints
                SET status = p_status, current_rungs = p_rungs[i], missing_evidence = '{}',
                    updated_at = p_now, last_sequence = p_sequences[i]
                WHERE tenant_id = p_tenant AND id = p_ids[i];
            IF FOUND THEN
                updated := updated + 1;
            END IF;
        END LOOP;
        RETURN updated;
    END
    $$;

REVOKE ALL ON FUNCTION redress_set_routed_states(text, text, timestamptz, text[], jsonb[], int[])
    FROM PUBLIC;
GRANT EXECUTE ON FUNCTION redress_set_routed_states(text, text, timestamptz, text[], jsonb[], int[])
    TO redress_app;
