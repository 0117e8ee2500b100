-- Intake in batches. Each API process gathers the filings that arrive while its intake
-- writers are busy and files them with one call of this function: one statement, one
-- transaction and one commit for the batch instead of one each per complaint. Measured with
-- pgbench on the development machine, eight filings in one transaction took about 0.5 ms
-- of the machine's CPU each, against 0.7-0.8 ms when each was its own call and commit
-- (docs/PERFORMANCE.md). A quiet API files one complaint at a time, as before.
--
-- Each filing goes through redress_file_complaint (migration 000012) with the same
-- arguments it would get alone, in the order given, so each one's outcome is what it
-- would have been had they arrived one after the other: the tenant is set for each
-- filing's statements; a second filing with a key the batch already answered finds that
-- answer (the advisory lock is the session's, taken again); a second filing with an
-- external_ref the batch already used is a duplicate of the first. Nothing is written
-- unless the whole batch commits; the API answers no filing before that, and if the call
-- fails it files each again alone, so one filing's error is that filing's alone.
--
-- The arrays are parallel, one element per filing; all must have the same length.
CREATE FUNCTION redress_file_complaints(
        p_tenant text[], p_client text[], p_routing_version int[],
        p_key text[], p_hash text[],
        p_id text[], p_external_ref text[], p_category text[], p_provider text[],
        p_complainant_kind text[], p_details jsonb[], p_now timestamptz[],
        p_event_id text[], p_event_type text[], p_actor text[], p_event_data jsonb[],
        p_message_id uuid[], p_payload jsonb[],
        p_response jsonb[])
    RETURNS TABLE (ordinal int, outcome text, response_status int, response_body jsonb,
                   resource_id text)
    LANGUAGE plpgsql VOLATILE
    SET search_path = pg_catalog, public
    SET jit = off
    AS $$
    DECLARE
        n int := coalesce(array_length(p_id, 1), 0);
    BEGIN
        IF array_length(p_tenant, 1) IS DISTINCT FROM array_length(p_id, 1)
           OR array_length(p_client, 1) IS DISTINCT FROM array_length(p_id, 1)
           OR array_length(p_response, 1) IS DISTINCT FROM array_length(p_id, 1) THEN
            RAISE EXCEPTION 'redress_file_complaints: the arrays differ in length';
        END IF;
        FOR i IN 1 .. n LOOP
            RETURN QUERY
                SELECT i, f.outcome, f.response_status, f.response_body, f.resource_id
                FROM redress_file_complaint(
                    p_tenant[i], p_client[i], p_routing_version[i], p_key[i], p_hash[i],
                    p_id[i], p_external_ref[i], p_category[i], p_provider[i],
                    p_complainant_kind[i], p_details[i], p_now[i], p_event_id[i],
                    p_event_type[i], p_actor[i], p_event_data[i], p_message_id[i],
                    p_payload[i], p_response[i]) f;
        END LOOP;
    END
    $$;

REVOKE ALL ON FUNCTION redress_file_complaints(text[], text[], int[], text[], text[], text[],
    text[], text[], text[], text[], jsonb[], timestamptz[], text[], text[], text[], jsonb[],
    uuid[], jsonb[], jsonb[]) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION redress_file_complaints(text[], text[], int[], text[], text[],
    text[], text[], text[], text[], text[], jsonb[], timestamptz[], text[], text[], text[],
    jsonb[], uuid[], jsonb[], jsonb[]) TO redress_app;
