-- Routing a case updates its complaint row (status, rungs, updated_at). The index on
-- (tenant_id, updated_at), which served `GET /v1/complaints?updated_since=`, changed with
-- every update, so no update could be HOT: each one wrote a new entry into every index of
-- the table, and evaluated the phone key of complaints_complainant_phone again. It was the
-- largest cost of routing in Postgres (docs/PERFORMANCE.md, session 5).
--
-- Every change that moves updated_at appends an event with the same time (the history is
-- the record of changes), so "updated since T" is "has an event at or after T", which an
-- index on the events answers; events are only ever inserted, so that index costs one
-- entry per event and no update is held back by it. The complaints table leaves room on
-- each page for the updated row, which HOT needs.
CREATE INDEX complaint_events_tenant_at ON complaint_events (tenant_id, at);
DROP INDEX complaints_tenant_updated;
ALTER TABLE complaints SET (fillfactor = 80);
