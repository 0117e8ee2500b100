ALTER FUNCTION redress_claim_webhook_messages(timestamptz, bigint, timestamptz, text[], int[], int)
    RESET plan_cache_mode;
