// Diesel's view of the routing tables in ../../../migrations/2026-11-21-000003_routing.
// Kept by hand in step with the SQL, in its own file so routing work does not collide with
// edits to schema.rs.

diesel::table! {
    routing_versions (tenant_id, version) {
        tenant_id -> Text,
        version -> Int4,
        snapshot -> Jsonb,
        note -> Nullable<Text>,
        created_by -> Text,
        created_at -> Timestamptz,
    }
}

diesel::table! {
    complaint_routing (complaint_id) {
        complaint_id -> Text,
        tenant_id -> Text,
        version -> Int4,
        state -> Jsonb,
        updated_at -> Timestamptz,
    }
}

diesel::allow_tables_to_appear_in_same_query!(routing_versions, complaint_routing);
