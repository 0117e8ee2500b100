DROP TABLE idempotency_keys;
DROP TABLE processed_messages;
DROP TABLE outbox;
DROP TABLE complaint_events;
DROP TABLE complaints;
DROP TABLE category_routes;
DROP TABLE clients;
DROP TABLE tenants;
