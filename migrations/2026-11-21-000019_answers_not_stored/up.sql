-- An Idempotency-Key's answer is no longer stored (CONTRACT §2: a retry with the same key
-- and body gets the first answer).
--
-- The first answer to a filing is the complaint as filed: its id, what was filed, status
-- `submitted`, no rungs yet, sequence 1, updated when created. All of that is in the
-- complaint row, which is never deleted, and what changes later (status, rungs, sequence,
-- updated_at) the API sets back to those values, with the code that built the answer
-- (redress_shared::db::intake::first_answer). So the key keeps the request's hash, the
-- status and the complaint's id, and no copy of the complainant's personal data: erasure
-- has one place less to reach, and a filing writes about 1.4 kB less (the answer averaged
-- 1,372 bytes of an idempotency row's 1,627 in a benchmark run; docs/PERFORMANCE.md,
-- session 9). Postgres also no
-- longer parses that JSON on the way in and prints it on the way out, for every filing.
--
-- The signature is unchanged, so an API of the previous version keeps filing during a
-- rolling deploy: it passes the answer, which is then stored as before, and it falls back
-- to the answer it built when the function returns none for a new complaint. One thing it
-- cannot do: replay a key that this version completed (it would answer an empty body), so
-- finish a deploy before partners retry across it. This version passes NULL for
-- p_response.
--
-- A key completed by an earlier version keeps its stored answer, which is replayed as it
-- is.
CREATE OR REPLACE FUNCTION redress_file_complaint(
        p_tenant text, p_client text, p_routing_version int,
        p_key text, p_hash text,
        p_id text, p_external_ref text, p_category text, p_provider text,
        p_complainant_kind text, p_details jsonb, p_now timestamptz,
        p_event_id text, p_event_type text, p_actor text, p_event_data jsonb,
        p_message_id uuid, p_payload jsonb,
        p_response jsonb)
    RETURNS TABLE (outcome text, response_status int, response_body jsonb, resource_id text)
    LANGUAGE plpgsql VOLATILE
    SET search_path = pg_catalog, public
    SET jit = off
    AS $$
    DECLARE
        stored record;
        existing text;
    BEGIN
        PERFORM set_config('redress.tenant_id', p_tenant, true);

        -- The categories are those of the routing in force (its latest version).
        IF (SELECT max(v.version) FROM routing_versions v WHERE v.tenant_id = p_tenant)
                IS DISTINCT FROM p_routing_version THEN
            RETURN QUERY SELECT 'routing_changed'::text, NULL::int, NULL::jsonb, NULL::text;
            RETURN;
        END IF;

        IF p_key IS NOT NULL THEN
            -- Held until this transaction ends, however it ends (also when the API dies):
            -- a concurrent retry with the same key is told "in flight" at once. 7655 is
            -- 0x1de7, the class that keeps these locks apart from any other advisory lock.
            IF NOT pg_try_advisory_xact_lock(7655, hashtext(p_client || E'\n' || p_key)) THEN
                RETURN QUERY SELECT 'in_flight'::text, NULL::int, NULL::jsonb, NULL::text;
                RETURN;
            END IF;
            SELECT k.request_hash, k.response_status, k.response_body, k.resource_id, k.created_at
                INTO stored
                FROM idempotency_keys k
                WHERE k.client_id = p_client AND k.idempotency_key = p_key;
            IF FOUND THEN
                IF stored.request_hash <> p_hash THEN
                    RETURN QUERY SELECT 'mismatch'::text, NULL::int, NULL::jsonb, NULL::text;
                    RETURN;
                END IF;
                -- Completed. Its answer is stored only if an earlier version wrote it;
                -- otherwise response_body is NULL and the API renders it from the complaint.
                IF stored.response_status IS NOT NULL THEN
                    RETURN QUERY SELECT 'replay'::text, stored.response_status,
                        stored.response_body, stored.resource_id;
                    RETURN;
                END IF;
                -- A row without an answer was reserved by an API version that committed
                -- reservations on their own: younger than a minute it may still be in
                -- flight there (a rolling deploy); older, its request died.
                IF stored.created_at >= p_now - interval '60 seconds' THEN
                    RETURN QUERY SELECT 'in_flight'::text, NULL::int, NULL::jsonb, NULL::text;
                    RETURN;
                END IF;
            END IF;
        END IF;

        INSERT INTO complaints (id, tenant_id, client_id, external_ref, status, category,
                                provider, complainant_kind, details, created_at, updated_at,
                                last_sequence)
        VALUES (p_id, p_tenant, p_client, p_external_ref, 'submitted', p_category,
                p_provider, p_complainant_kind, p_details, p_now, p_now, 1)
        ON CONFLICT DO NOTHING;
        IF NOT FOUND THEN
            SELECT c.id INTO existing FROM complaints c
                WHERE c.client_id = p_client AND c.external_ref = p_external_ref;
            RETURN QUERY SELECT 'duplicate_external_ref'::text, NULL::int, NULL::jsonb, existing;
            RETURN;
        END IF;

        INSERT INTO complaint_events (id, tenant_id, complaint_id, sequence, event_type, actor,
                                      data, at)
        VALUES (p_event_id, p_tenant, p_id, 1, p_event_type, p_actor, p_event_data, p_now);

        INSERT INTO outbox (message_id, tenant_id, routing_key, payload)
        VALUES (p_message_id, p_tenant, p_event_type, p_payload);

        IF p_key IS NOT NULL THEN
            -- An abandoned reservation of an earlier version is taken over; a completed
            -- key never is (the lock above rules that out; this is the second line).
            INSERT INTO idempotency_keys (client_id, idempotency_key, request_hash,
                                          response_status, response_body, resource_id, tenant_id)
            VALUES (p_client, p_key, p_hash, 202, p_response, p_id, p_tenant)
            ON CONFLICT (client_id, idempotency_key) DO UPDATE
                SET request_hash = EXCLUDED.request_hash,
                    response_status = EXCLUDED.response_status,
                    response_body = EXCLUDED.response_body,
                    resource_id = EXCLUDED.resource_id,
                    created_at = now()
                WHERE idempotency_keys.response_status IS NULL;
            IF NOT FOUND THEN
                RAISE EXCEPTION 'idempotency key completed by another request meanwhile'
                    USING ERRCODE = 'RDIKT';
            END IF;
        END IF;

        -- The caller built the answer; sending it back would only cost its conversion to
        -- text here and its parsing there.
        RETURN QUERY SELECT 'created'::text, 202, NULL::jsonb, p_id;
    END
    $$;

