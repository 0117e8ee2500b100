-- Cheaper intake and routing writes (docs/PERFORMANCE.md, session 5).
--
-- 1. An Idempotency-Key row referenced its client and, apart, the tenant: two checks per
--    intake, the second locking one of a handful of tenant rows that every intake shares
--    (FOR KEY SHARE from many transactions at once makes multixacts). One key over
--    (tenant_id, client_id) is one check, and a stronger one: a key can no longer name a
--    client of another tenant. The same change as 000014 made for complaints and events.
ALTER TABLE idempotency_keys
    DROP CONSTRAINT idempotency_keys_client_id_fkey,
    DROP CONSTRAINT idempotency_keys_tenant_id_fkey,
    ADD CONSTRAINT idempotency_keys_tenant_client_fkey FOREIGN KEY (tenant_id, client_id)
        REFERENCES clients (tenant_id, id) NOT VALID;
ALTER TABLE idempotency_keys VALIDATE CONSTRAINT idempotency_keys_tenant_client_fkey;

-- 2. A routing event's data (the decision and why: about 4.7 kB of JSON) and the larger
--    complaint rows and webhook bodies pass the 2 kB at which Postgres compresses a row,
--    and pglz_compress was about 1 % of the machine's CPU under load (perf, at 330
--    complaints a second). Measured on this server: 20,000 inserts of a 4.3 kB routing-like
--    JSON took 0.91 s with lz4 against 1.18 s with pglz, at 463 against 421 bytes stored.
--    Only new values are compressed with it; old ones stay readable. A server built
--    without lz4 keeps pglz.
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_settings
               WHERE name = 'default_toast_compression' AND 'lz4' = ANY (enumvals)) THEN
        ALTER TABLE complaint_events ALTER COLUMN data SET COMPRESSION lz4;
        ALTER TABLE complaints ALTER COLUMN details SET COMPRESSION lz4,
                               ALTER COLUMN current_rungs SET COMPRESSION lz4;
        ALTER TABLE webhook_messages ALTER COLUMN body SET COMPRESSION lz4;
    END IF;
END
$$;
