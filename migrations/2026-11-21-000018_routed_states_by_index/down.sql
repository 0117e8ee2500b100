DROP FUNCTION redress_set_routed_states(text, text, timestamptz, text[], jsonb[], int[]);
