// Diesel's view of the tables in ../../../migrations. Kept by hand in step with the SQL;
// the migration round-trip test catches a table that drifts.

diesel::table! {
    tenants (id) {
        id -> Text,
        name -> Text,
        template -> Nullable<Text>,
        time_zone -> Text,
        created_at -> Timestamptz,
    }
}

diesel::table! {
    clients (id) {
        id -> Text,
        tenant_id -> Text,
        name -> Text,
        secret_hash -> Text,
        scopes -> Array<Text>,
        disabled_at -> Nullable<Timestamptz>,
        created_at -> Timestamptz,
        previous_secret_hash -> Nullable<Text>,
        previous_secret_expires_at -> Nullable<Timestamptz>,
    }
}

diesel::table! {
    complaints (id) {
        id -> Text,
        tenant_id -> Text,
        client_id -> Text,
        external_ref -> Nullable<Text>,
        status -> Text,
        category -> Text,
        provider -> Text,
        complainant_kind -> Text,
        details -> Jsonb,
        current_rungs -> Jsonb,
        missing_evidence -> Array<Text>,
        last_sequence -> Int4,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
        personal_data_erased_at -> Nullable<Timestamptz>,
    }
}

diesel::table! {
    complaint_events (id) {
        id -> Text,
        tenant_id -> Text,
        complaint_id -> Text,
        sequence -> Int4,
        event_type -> Text,
        actor -> Text,
        data -> Jsonb,
        at -> Timestamptz,
    }
}

diesel::table! {
    outbox (id) {
        id -> Int8,
        message_id -> Uuid,
        tenant_id -> Text,
        routing_key -> Text,
        payload -> Jsonb,
        created_at -> Timestamptz,
        claimed_until -> Nullable<Timestamptz>,
        attempts -> Int4,
        last_error -> Nullable<Text>,
        sent_at -> Nullable<Timestamptz>,
    }
}

diesel::table! {
    processed_messages (consumer, message_id) {
        consumer -> Text,
        message_id -> Uuid,
        processed_at -> Timestamptz,
    }
}

diesel::table! {
    idempotency_keys (client_id, idempotency_key) {
        client_id -> Text,
        // Defaults to the transaction's tenant (migration 000006), so writers leave it out.
        tenant_id -> Text,
        idempotency_key -> Text,
        request_hash -> Text,
        response_status -> Nullable<Int4>,
        response_body -> Nullable<Jsonb>,
        resource_id -> Nullable<Text>,
        created_at -> Timestamptz,
    }
}

diesel::joinable!(clients -> tenants (tenant_id));
diesel::joinable!(complaints -> tenants (tenant_id));
diesel::joinable!(complaint_events -> complaints (complaint_id));

diesel::allow_tables_to_appear_in_same_query!(
    tenants,
    clients,
    complaints,
    complaint_events,
    outbox,
    processed_messages,
    idempotency_keys,
);

diesel::table! {
    audit_log (id) {
        id -> Int8,
        at -> Timestamptz,
        tenant_id -> Nullable<Text>,
        actor -> Text,
        action -> Text,
        target -> Nullable<Text>,
        details -> Jsonb,
    }
}

diesel::table! {
    signing_keys (kid) {
        kid -> Text,
        algorithm -> Text,
        private_pem -> Nullable<Text>,
        public_jwk -> Jsonb,
        activates_at -> Timestamptz,
        created_at -> Timestamptz,
        created_by -> Text,
    }
}

diesel::table! {
    client_keys (client_id, kid) {
        tenant_id -> Text,
        client_id -> Text,
        kid -> Text,
        alg -> Text,
        jwk -> Jsonb,
        created_at -> Timestamptz,
    }
}

diesel::table! {
    client_assertion_jtis (client_id, jti) {
        tenant_id -> Text,
        client_id -> Text,
        jti -> Text,
        expires_at -> Timestamptz,
    }
}

diesel::allow_tables_to_appear_in_same_query!(clients, client_keys, client_assertion_jtis);
