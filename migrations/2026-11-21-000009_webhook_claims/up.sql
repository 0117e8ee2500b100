-- The dispatcher claims each endpoint's oldest due messages, as many as it has free slots
-- for that endpoint (shared/src/webhooks/store.rs claim_due): one index range per endpoint
-- instead of a walk over every endpoint's backlog.
CREATE INDEX webhook_messages_endpoint_due ON webhook_messages (endpoint_id, next_attempt_at)
    WHERE status = 'pending';
