-- Tenant routing data, versioned. Every change writes a whole new document (channels,
-- providers, categories, ladders, rules) as the next version; nothing is updated in place,
-- so each routing decision can be explained from the version it names.
CREATE TABLE routing_versions (
    tenant_id   TEXT NOT NULL REFERENCES tenants (id),
    version     INTEGER NOT NULL CHECK (version > 0),
    snapshot    JSONB NOT NULL,
    -- What the change was, in the words of whoever made it.
    note        TEXT,
    -- `client:cli_…` for API edits, `system:template:<name>` or `system:migration`.
    created_by  TEXT NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, version)
);

-- Where a routed case stands on its ladders: the version it was routed with (escalation
-- keeps climbing the ladder of that version even after the tenant edits its routing), the
-- ladder and rung index of each track, and the channels the case has been on.
CREATE TABLE complaint_routing (
    complaint_id  TEXT PRIMARY KEY REFERENCES complaints (id),
    tenant_id     TEXT NOT NULL REFERENCES tenants (id),
    version       INTEGER NOT NULL,
    state         JSONB NOT NULL,
    updated_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
    FOREIGN KEY (tenant_id, version) REFERENCES routing_versions (tenant_id, version)
);
CREATE INDEX complaint_routing_tenant ON complaint_routing (tenant_id);

-- The category -> channel table of the first release becomes version 1 of each tenant's
-- routing: its channels, its categories, a one-rung ladder per channel and a rule per
-- category (`*`, the old fallback, becomes a catch-all rule of the lowest priority).
INSERT INTO routing_versions (tenant_id, version, snapshot, note, created_by)
SELECT t.tenant_id, 1, jsonb_build_object(
    'channels', COALESCE((
        SELECT jsonb_agg(jsonb_build_object(
                   'code', d.channel, 'name', d.channel,
                   'delivery', jsonb_build_object('method', 'provider_directory'))
                 ORDER BY d.channel)
        FROM (SELECT DISTINCT channel FROM category_routes c WHERE c.tenant_id = t.tenant_id) d
    ), '[]'::jsonb),
    'providers', '[]'::jsonb,
    'categories', COALESCE((
        SELECT jsonb_agg(jsonb_build_object('code', c.category, 'name', c.category)
                         ORDER BY c.category)
        FROM category_routes c WHERE c.tenant_id = t.tenant_id AND c.category <> '*'
    ), '[]'::jsonb),
    'ladders', COALESCE((
        SELECT jsonb_agg(jsonb_build_object(
                   'code', 'to_' || d.channel, 'name', d.channel,
                   'rungs', jsonb_build_array(jsonb_build_object('channel', d.channel)))
                 ORDER BY d.channel)
        FROM (SELECT DISTINCT channel FROM category_routes c WHERE c.tenant_id = t.tenant_id) d
    ), '[]'::jsonb),
    'rules', COALESCE((
        SELECT jsonb_agg(jsonb_build_object(
                   'id', CASE WHEN c.category = '*' THEN 'fallback' ELSE 'category_' || c.category END,
                   'when', CASE WHEN c.category = '*' THEN 'true'
                                ELSE 'category == ''' || c.category || '''' END,
                   'ladder', 'to_' || c.channel,
                   'priority', CASE WHEN c.category = '*' THEN -1000 ELSE 0 END)
                 ORDER BY c.category)
        FROM category_routes c WHERE c.tenant_id = t.tenant_id
    ), '[]'::jsonb)
), 'converted from the category table', 'system:migration'
FROM (SELECT DISTINCT tenant_id FROM category_routes) t;

DROP TABLE category_routes;
