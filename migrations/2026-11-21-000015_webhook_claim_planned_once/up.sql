-- The webhook claim (000009, as 000013 left it) was planned afresh on every call: PL/pgSQL
-- tries custom plans with the real arguments first, and this one kept them. Planning took
-- longer than running it (0.4–0.8 ms against 0.5 ms on a quiet machine), and the dispatcher
-- claims after every routing commit. Its shape is fixed by the query itself (a walk over the
-- enabled endpoints, each with a LATERAL index range on webhook_messages_endpoint_due
-- bounded by that endpoint's free slots), so the generic plan is the same plan: keep it per
-- connection. The row estimates that misled the generic plans of 000011 come from a table
-- scan there; here the endpoints bound every estimate.
ALTER FUNCTION redress_claim_webhook_messages(timestamptz, bigint, timestamptz, text[], int[], int)
    SET plan_cache_mode = force_generic_plan;
