-- Back to the category -> channel table. Each tenant's latest routing version gives one
-- row per category: the first rung of the ladder its highest-priority `category == '…'`
-- rule names, or else of the catch-all rule's ladder. Ladders, rules, evidence
-- requirements and the history of versions are lost.
CREATE TABLE category_routes (
    tenant_id   TEXT NOT NULL REFERENCES tenants (id),
    category    TEXT NOT NULL,
    channel     TEXT NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, category)
);

INSERT INTO category_routes (tenant_id, category, channel)
SELECT DISTINCT ON (v.tenant_id, cat->>'code')
       v.tenant_id, cat->>'code', lad->'rungs'->0->>'channel'
FROM (SELECT DISTINCT ON (tenant_id) tenant_id, snapshot
      FROM routing_versions ORDER BY tenant_id, version DESC) v
CROSS JOIN LATERAL jsonb_array_elements(v.snapshot->'categories') cat
CROSS JOIN LATERAL jsonb_array_elements(v.snapshot->'rules') rule
CROSS JOIN LATERAL jsonb_array_elements(v.snapshot->'ladders') lad
WHERE rule ? 'ladder'
  AND lad->>'code' = rule->>'ladder'
  AND (rule->>'when' = 'true'
       OR rule->>'when' = 'category == ''' || (cat->>'code') || '''')
ORDER BY v.tenant_id, cat->>'code',
         (rule->>'when' = 'true'),
         COALESCE((rule->>'priority')::int, 0) DESC;

DROP TABLE complaint_routing;
DROP TABLE routing_versions;
