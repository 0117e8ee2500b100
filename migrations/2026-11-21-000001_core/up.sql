-- Tenants are consumer organisations running cases on this hub. Every other row belongs to one.
CREATE TABLE tenants (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL,
    template    TEXT,
    time_zone   TEXT NOT NULL DEFAULT 'Asia/Shanghai',
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- OAuth clients (partner apps, operator consoles). Secrets are argon2id hashes, never plain.
CREATE TABLE clients (
    id           TEXT PRIMARY KEY,
    tenant_id    TEXT NOT NULL REFERENCES tenants (id),
    name         TEXT NOT NULL,
    secret_hash  TEXT NOT NULL,
    scopes       TEXT[] NOT NULL,
    disabled_at  TIMESTAMPTZ,
    created_at   TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX clients_tenant ON clients (tenant_id);

-- The simplest real routing rule: a tenant's category -> channel table.
-- category '*' is the tenant's fallback for categories it has no row for.
CREATE TABLE category_routes (
    tenant_id   TEXT NOT NULL REFERENCES tenants (id),
    category    TEXT NOT NULL,
    channel     TEXT NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, category)
);

CREATE TABLE complaints (
    id                TEXT PRIMARY KEY,
    tenant_id         TEXT NOT NULL REFERENCES tenants (id),
    client_id         TEXT NOT NULL REFERENCES clients (id),
    external_ref      TEXT,
    status            TEXT NOT NULL,
    category          TEXT NOT NULL,
    provider          TEXT NOT NULL,
    complainant_kind  TEXT NOT NULL,
    -- The validated request as filed, free text already PAN-masked.
    details           JSONB NOT NULL,
    -- The active rung or rungs: [{"channel","since","deadlines"}].
    current_rungs     JSONB NOT NULL DEFAULT '[]',
    missing_evidence  TEXT[] NOT NULL DEFAULT '{}',
    last_sequence     INTEGER NOT NULL DEFAULT 0,
    created_at        TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at        TIMESTAMPTZ NOT NULL DEFAULT now()
);
-- external_ref is the partner's own id: unique per partner client.
CREATE UNIQUE INDEX complaints_client_external_ref ON complaints (client_id, external_ref)
    WHERE external_ref IS NOT NULL;
-- List views page by id within a tenant (ids are time-ordered UUIDv7).
CREATE INDEX complaints_tenant_id ON complaints (tenant_id, id);
CREATE INDEX complaints_client_id ON complaints (client_id, id);
CREATE INDEX complaints_tenant_updated ON complaints (tenant_id, updated_at);

-- Append-only history. (complaint_id, sequence) numbers events 1, 2, 3... per complaint.
CREATE TABLE complaint_events (
    id            TEXT PRIMARY KEY,
    tenant_id     TEXT NOT NULL REFERENCES tenants (id),
    complaint_id  TEXT NOT NULL REFERENCES complaints (id),
    sequence      INTEGER NOT NULL,
    event_type    TEXT NOT NULL,
    actor         TEXT NOT NULL,
    data          JSONB NOT NULL,
    at            TIMESTAMPTZ NOT NULL DEFAULT now(),
    UNIQUE (complaint_id, sequence)
);

-- Transactional outbox: written in the same transaction as the change it announces,
-- published by the relay with publisher confirms, marked sent only after a clean ack.
CREATE TABLE outbox (
    id             BIGSERIAL PRIMARY KEY,
    message_id     UUID NOT NULL UNIQUE,
    tenant_id      TEXT NOT NULL,
    routing_key    TEXT NOT NULL,
    payload        JSONB NOT NULL,
    created_at     TIMESTAMPTZ NOT NULL DEFAULT now(),
    -- A relay claims rows with a lease so several relays never hold a transaction
    -- open across the publish; an expired lease means the claimer died.
    claimed_until  TIMESTAMPTZ,
    attempts       INTEGER NOT NULL DEFAULT 0,
    last_error     TEXT,
    sent_at        TIMESTAMPTZ
);
CREATE INDEX outbox_unsent ON outbox (id) WHERE sent_at IS NULL;

-- Messages a consumer has already applied, recorded in the same transaction as their effects,
-- so a redelivery changes nothing.
CREATE TABLE processed_messages (
    consumer      TEXT NOT NULL,
    message_id    UUID NOT NULL,
    processed_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (consumer, message_id)
);

-- Idempotency-Key records: the first answer, replayed for retries with the same body.
CREATE TABLE idempotency_keys (
    client_id        TEXT NOT NULL REFERENCES clients (id),
    idempotency_key  TEXT NOT NULL,
    request_hash     TEXT NOT NULL,
    -- NULL while the first request is still in flight.
    response_status  INTEGER,
    response_body    JSONB,
    resource_id      TEXT,
    created_at       TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (client_id, idempotency_key)
);
CREATE INDEX idempotency_keys_created ON idempotency_keys (created_at);
