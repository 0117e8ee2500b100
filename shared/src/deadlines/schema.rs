// Diesel's view of the deadline tables (migrations/2026-11-21-000004_deadlines). Kept by
// hand in step with the SQL, beside the code that uses it, so deadline work does not edit
// db/schema.rs.

diesel::table! {
    calendars (tenant_id, id) {
        tenant_id -> Text,
        id -> Text,
        name -> Text,
        base -> Text,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
    }
}

diesel::table! {
    calendar_years (calendar_id, year) {
        calendar_id -> Text,
        year -> Int4,
        source -> Nullable<Text>,
        loaded_at -> Timestamptz,
    }
}

diesel::table! {
    calendar_days (id) {
        id -> Int8,
        calendar_id -> Text,
        tenant_id -> Nullable<Text>,
        date -> Date,
        kind -> Text,
        name -> Nullable<Text>,
        source -> Nullable<Text>,
        created_at -> Timestamptz,
    }
}

diesel::table! {
    sla_policies (tenant_id, code) {
        tenant_id -> Text,
        code -> Text,
        body -> Jsonb,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
    }
}

diesel::table! {
    sla_clocks (id) {
        id -> Int8,
        tenant_id -> Text,
        complaint_id -> Text,
        channel -> Text,
        track -> Text,
        clock -> Text,
        state -> Text,
        spec -> Jsonb,
        progress -> Jsonb,
        due_on -> Nullable<Date>,
        due_at -> Nullable<Timestamptz>,
        next_fire_at -> Nullable<Timestamptz>,
        claimed_until -> Nullable<Timestamptz>,
        updated_at -> Timestamptz,
    }
}

diesel::allow_tables_to_appear_in_same_query!(
    calendars,
    calendar_years,
    calendar_days,
    sla_policies,
    sla_clocks,
);
