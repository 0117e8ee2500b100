-- Webhook endpoints a tenant registered (CONTRACT §5). The secrets must be readable to sign
-- with, so they are stored as the `whsec_…` text the tenant was shown; during a rotation
-- the previous secret keeps signing until previous_secret_expires_at.
CREATE TABLE webhook_endpoints (
    id                          TEXT PRIMARY KEY,
    tenant_id                   TEXT NOT NULL REFERENCES tenants (id),
    url                         TEXT NOT NULL,
    event_types                 TEXT[] NOT NULL,
    description                 TEXT NOT NULL DEFAULT '',
    enabled                     BOOLEAN NOT NULL DEFAULT true,
    -- Why the hub switched it off (410 Gone, or failing for days); NULL when enabled or
    -- paused by the tenant.
    disabled_reason             TEXT,
    disabled_at                 TIMESTAMPTZ,
    secret                      TEXT NOT NULL,
    previous_secret             TEXT,
    previous_secret_expires_at  TIMESTAMPTZ,
    -- First failure since the last success; the disable-after-days rule counts from here.
    failing_since               TIMESTAMPTZ,
    -- The receiver asked us to slow down (429 + Retry-After): nothing goes out before this.
    throttled_until             TIMESTAMPTZ,
    created_at                  TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at                  TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX webhook_endpoints_tenant ON webhook_endpoints (tenant_id, id);

-- One message per (event, subscribed endpoint). id is the webhook-id, the same on every
-- attempt. body is the exact JSON serialised once at creation: the bytes signed are the
-- bytes sent, on every attempt.
CREATE TABLE webhook_messages (
    id               TEXT PRIMARY KEY,
    tenant_id        TEXT NOT NULL REFERENCES tenants (id),
    endpoint_id      TEXT NOT NULL REFERENCES webhook_endpoints (id) ON DELETE CASCADE,
    event_type       TEXT NOT NULL,
    body             TEXT NOT NULL,
    status           TEXT NOT NULL DEFAULT 'pending'
                     CHECK (status IN ('pending', 'delivered', 'failed')),
    attempts         INTEGER NOT NULL DEFAULT 0,
    next_attempt_at  TIMESTAMPTZ,
    -- A dispatcher claims a message with a lease and commits at once, so no transaction is
    -- held open across the HTTP call; an expired lease means the claimer died.
    claimed_until    TIMESTAMPTZ,
    last_error       TEXT,
    created_at       TIMESTAMPTZ NOT NULL DEFAULT now(),
    delivered_at     TIMESTAMPTZ
);
CREATE INDEX webhook_messages_due ON webhook_messages (next_attempt_at) WHERE status = 'pending';
CREATE INDEX webhook_messages_endpoint ON webhook_messages (endpoint_id, id);

-- The delivery log: every attempt, successful or not.
CREATE TABLE webhook_attempts (
    id                BIGSERIAL PRIMARY KEY,
    message_id        TEXT NOT NULL REFERENCES webhook_messages (id) ON DELETE CASCADE,
    tenant_id         TEXT NOT NULL REFERENCES tenants (id),
    endpoint_id       TEXT NOT NULL REFERENCES webhook_endpoints (id) ON DELETE CASCADE,
    attempt           INTEGER NOT NULL,
    attempted_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
    status_code       INTEGER,
    latency_ms        INTEGER NOT NULL,
    -- timeout | connect | refused_address | redirect | http_status | secret | request
    error_kind        TEXT,
    error             TEXT,
    -- At most 1 KiB of the receiver's answer.
    response_excerpt  TEXT
);
CREATE INDEX webhook_attempts_endpoint ON webhook_attempts (endpoint_id, id);
CREATE INDEX webhook_attempts_message ON webhook_attempts (message_id, id);
