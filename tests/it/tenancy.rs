//! The second wall between tenants: Postgres row-level security under every query the app
//! runs, checked with queries that forgot their tenant filter, with one connection that
//! serves two tenants in turn, and against the catalog (so a new table without its policy,
//! or a role that could step around them, fails here).

use diesel::{prelude::*, sql_types::Text};
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use redress_shared::{
    db::{schema::complaints, tenant},
    ids::TenantId,
};
use redress_tests::{example_complaint, Options, TestApp};
use serde_json::Value;

async fn app_without_worker() -> TestApp {
    TestApp::spawn_with(Options {
        worker: false,
        ..Default::default()
    })
    .await
}

/// A tenant with one complaint filed through the API: (tenant, complaint id, token).
async fn tenant_with_complaint(app: &TestApp) -> (TenantId, String, String) {
    let (t, token) = app.tenant_and_token().await;
    let r = app.file(&token, &example_complaint()).await;
    assert_eq!(r.status(), 202);
    let body: Value = r.json().await.unwrap();
    (
        TenantId::from_trusted(t.tenant_id),
        body["id"].as_str().unwrap().to_owned(),
        token,
    )
}

#[derive(QueryableByName, Debug)]
struct Name {
    #[diesel(sql_type = Text)]
    name: String,
}

#[derive(QueryableByName, Debug)]
struct Count {
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    n: i64,
}

/// The tables of the public schema with a `tenant_id` column, from the catalog.
async fn tenant_tables(conn: &mut AsyncPgConnection) -> Vec<String> {
    diesel::sql_query(
        "SELECT c.relname AS name FROM pg_class c \
         JOIN pg_namespace n ON n.oid = c.relnamespace \
         JOIN pg_attribute a ON a.attrelid = c.oid \
         WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p') \
           AND a.attname = 'tenant_id' AND NOT a.attisdropped \
         ORDER BY 1",
    )
    .load::<Name>(conn)
    .await
    .unwrap()
    .into_iter()
    .map(|n| n.name)
    .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_query_that_forgot_its_tenant_filter_still_sees_only_its_own_tenant() {
    let app = app_without_worker().await;
    let (a, a_complaint, _) = tenant_with_complaint(&app).await;
    let (b, b_complaint, _) = tenant_with_complaint(&app).await;
    let mut conn = app.app_db().await;

    // The "handler" below forgot `.filter(complaints::tenant_id.eq(…))`.
    let seen: Vec<(String, String)> = tenant::transaction(&mut conn, &a, async |conn| {
        complaints::table
            .select((complaints::id, complaints::tenant_id))
            .load(conn)
            .await
    })
    .await
    .unwrap();
    assert_eq!(seen, vec![(a_complaint.clone(), a.to_string())]);

    // Asked by id for the other tenant's complaint, it finds nothing, and cannot change it
    // or write a row into the other tenant either.
    tenant::transaction(&mut conn, &a, async |conn| {
        let found: Option<String> = complaints::table
            .find(&b_complaint)
            .select(complaints::id)
            .first(conn)
            .await
            .optional()?;
        assert_eq!(found, None);
        let updated = diesel::update(complaints::table.find(&b_complaint))
            .set(complaints::status.eq("closed"))
            .execute(conn)
            .await?;
        assert_eq!(updated, 0);
        Ok::<_, diesel::result::Error>(())
    })
    .await
    .unwrap();
    let smuggled = tenant::transaction(&mut conn, &a, async |conn| {
        diesel::sql_query(
            "INSERT INTO complaint_events (id, tenant_id, complaint_id, sequence, event_type, actor, data) \
             VALUES ('evt_smuggled', $1, $2, 99, 'note', 'test', '{}')",
        )
        .bind::<Text, _>(b.as_str())
        .bind::<Text, _>(&b_complaint)
        .execute(conn)
        .await
    })
    .await;
    let error = smuggled.unwrap_err().to_string();
    assert!(error.contains("row-level security"), "{error}");

    // Every tenant table, read with the opposite filter: nothing of another tenant shows.
    let tables = tenant_tables(&mut app.db().await).await;
    assert!(tables.len() >= 15, "{tables:?}");
    for table in &tables {
        let leaked: Count = tenant::transaction(&mut conn, &a, async |conn| {
            diesel::sql_query(format!(
                "SELECT count(*) AS n FROM {table} WHERE tenant_id IS DISTINCT FROM $1 AND tenant_id IS NOT NULL"
            ))
            .bind::<Text, _>(a.as_str())
            .get_result(conn)
            .await
        })
        .await
        .unwrap();
        assert_eq!(leaked.n, 0, "{table} shows rows of another tenant");
    }
    // The tenants table shows the tenant its own row only.
    let tenants: Vec<Name> = tenant::transaction(&mut conn, &a, async |conn| {
        diesel::sql_query("SELECT id AS name FROM tenants")
            .load(conn)
            .await
    })
    .await
    .unwrap();
    assert_eq!(
        tenants.into_iter().map(|t| t.name).collect::<Vec<_>>(),
        vec![a.to_string()]
    );

    // The owner sees both complaints: the rows are there, the wall is what hides them.
    let all: Vec<String> = complaints::table
        .select(complaints::id)
        .order(complaints::id)
        .load(&mut app.db().await)
        .await
        .unwrap();
    assert!(all.contains(&a_complaint) && all.contains(&b_complaint));
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_that_served_one_tenant_then_another_leaks_nothing() {
    let app = app_without_worker().await;
    let (a, a_complaint, a_token) = tenant_with_complaint(&app).await;
    let (b, b_complaint, b_token) = tenant_with_complaint(&app).await;

    let mut conn = app.app_db().await;
    let ids = async |conn: &mut AsyncPgConnection, t: &TenantId| -> Vec<String> {
        tenant::transaction(conn, t, async |conn| {
            complaints::table.select(complaints::id).load(conn).await
        })
        .await
        .unwrap()
    };
    assert_eq!(ids(&mut conn, &a).await, vec![a_complaint.clone()]);
    assert_eq!(ids(&mut conn, &b).await, vec![b_complaint.clone()]);
    assert_eq!(ids(&mut conn, &a).await, vec![a_complaint.clone()]);

    // After the transactions, the same session has no tenant and sees no tenant's row.
    let setting: Option<String> =
        diesel::select(diesel::dsl::sql::<diesel::sql_types::Nullable<Text>>(
            "nullif(current_setting('redress.tenant_id', true), '')",
        ))
        .get_result(&mut conn)
        .await
        .unwrap();
    assert_eq!(setting, None);
    let outside: i64 = complaints::table
        .count()
        .get_result(&mut conn)
        .await
        .unwrap();
    assert_eq!(outside, 0);
    // A rolled-back transaction leaves nothing behind either.
    let _ = tenant::transaction(&mut conn, &a, async |_conn| {
        Err::<(), _>(diesel::result::Error::RollbackTransaction)
    })
    .await;
    let outside: i64 = complaints::table
        .count()
        .get_result(&mut conn)
        .await
        .unwrap();
    assert_eq!(outside, 0);

    // Through the API with a single pooled connection, taking turns: each tenant sees its
    // own complaint and not the other's.
    drop(conn);
    app.stop().await;
    let app = TestApp::spawn_with(Options {
        worker: false,
        tweak: Box::new(|s| s.db_pool_size = 1),
        ..Default::default()
    })
    .await;
    let (_, a_complaint, a_token2) = tenant_with_complaint(&app).await;
    let (_, b_complaint, b_token2) = tenant_with_complaint(&app).await;
    let _ = (a_token, b_token);
    for _ in 0..3 {
        let (code, _) = app
            .get_json(&a_token2, &format!("/v1/complaints/{a_complaint}"))
            .await;
        assert_eq!(code, 200);
        let (code, _) = app
            .get_json(&b_token2, &format!("/v1/complaints/{a_complaint}"))
            .await;
        assert_eq!(code, 404);
        let (code, list) = app.get_json(&b_token2, "/v1/complaints").await;
        assert_eq!(code, 200);
        let listed: Vec<&str> = list["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["id"].as_str().unwrap())
            .collect();
        assert_eq!(listed, vec![b_complaint.as_str()]);
    }
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_application_role_owns_no_table_and_cannot_bypass_row_level_security() {
    let app = app_without_worker().await;
    // The app really runs as the application role.
    let user: String = diesel::select(diesel::dsl::sql::<Text>("current_user::text"))
        .get_result(&mut app.app_db().await)
        .await
        .unwrap();
    assert_eq!(user, redress_shared::db::APP_ROLE);

    let mut conn = app.db().await;
    #[derive(QueryableByName)]
    struct Role {
        #[diesel(sql_type = diesel::sql_types::Bool)]
        rolsuper: bool,
        #[diesel(sql_type = diesel::sql_types::Bool)]
        rolbypassrls: bool,
        #[diesel(sql_type = diesel::sql_types::Bool)]
        rolcreaterole: bool,
        #[diesel(sql_type = diesel::sql_types::Bool)]
        rolinherit_bypass: bool,
    }
    let role: Role = diesel::sql_query(
        "SELECT r.rolsuper, r.rolbypassrls, r.rolcreaterole, \
                EXISTS (SELECT 1 FROM pg_auth_members m JOIN pg_roles g ON g.oid = m.roleid \
                        WHERE m.member = r.oid AND (g.rolsuper OR g.rolbypassrls)) AS rolinherit_bypass \
         FROM pg_roles r WHERE r.rolname = 'redress_app'",
    )
    .get_result(&mut conn)
    .await
    .unwrap();
    assert!(!role.rolsuper, "redress_app is a superuser");
    assert!(
        !role.rolbypassrls,
        "redress_app bypasses row-level security"
    );
    assert!(!role.rolcreaterole, "redress_app can create roles");
    assert!(
        !role.rolinherit_bypass,
        "redress_app is a member of a role that bypasses row-level security"
    );

    let owned: Vec<Name> = diesel::sql_query(
        "SELECT c.relname AS name FROM pg_class c \
         JOIN pg_roles r ON r.oid = c.relowner WHERE r.rolname = 'redress_app'",
    )
    .load(&mut conn)
    .await
    .unwrap();
    assert!(
        owned.is_empty(),
        "redress_app owns {:?}",
        owned.iter().map(|n| &n.name).collect::<Vec<_>>()
    );

    // The few functions that look across tenants: owned by redress_system, search path
    // pinned, callable by the app role and not by everyone.
    let definers: Vec<Name> = diesel::sql_query(
        "SELECT p.proname::text || ' owner=' || r.rolname::text \
                || ' pinned=' || (p.proconfig IS NOT NULL AND EXISTS \
                      (SELECT 1 FROM unnest(p.proconfig) c WHERE c LIKE 'search_path=%'))::text \
                || ' public=' || has_function_privilege('public', p.oid, 'EXECUTE')::text \
                || ' app=' || has_function_privilege('redress_app', p.oid, 'EXECUTE')::text AS name \
         FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace \
         JOIN pg_roles r ON r.oid = p.proowner \
         WHERE n.nspname = 'public' AND p.prosecdef ORDER BY 1",
    )
    .load(&mut conn)
    .await
    .unwrap();
    assert!(definers.len() >= 4, "{definers:?}");
    for d in &definers {
        assert!(
            d.name
                .ends_with("owner=redress_system pinned=true public=false app=true"),
            "{}",
            d.name
        );
    }
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_table_with_a_tenant_id_has_row_level_security_enabled_and_forced() {
    let app = app_without_worker().await;
    let mut conn = app.db().await;
    let tables = tenant_tables(&mut conn).await;
    assert!(tables.contains(&"complaints".to_owned()), "{tables:?}");
    let unguarded: Vec<Name> = diesel::sql_query(
        "SELECT c.relname AS name FROM pg_class c \
         JOIN pg_namespace n ON n.oid = c.relnamespace \
         JOIN pg_attribute a ON a.attrelid = c.oid \
         WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p') \
           AND a.attname = 'tenant_id' AND NOT a.attisdropped \
           AND NOT (c.relrowsecurity AND c.relforcerowsecurity \
                    AND EXISTS (SELECT 1 FROM pg_policy p WHERE p.polrelid = c.oid)) \
         ORDER BY 1",
    )
    .load(&mut conn)
    .await
    .unwrap();
    assert!(
        unguarded.is_empty(),
        "tables with tenant data but without row-level security enabled, forced and a policy: {:?}",
        unguarded.iter().map(|n| &n.name).collect::<Vec<_>>()
    );
    // The tenants table itself has no tenant_id column: its own id is the tenant.
    let tenants: Count = diesel::sql_query(
        "SELECT count(*) AS n FROM pg_class WHERE relname = 'tenants' \
         AND relrowsecurity AND relforcerowsecurity",
    )
    .get_result(&mut conn)
    .await
    .unwrap();
    assert_eq!(tenants.n, 1);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn built_in_calendar_days_are_read_by_every_tenant_and_written_by_none() {
    let app = app_without_worker().await;
    let (a, _, _) = tenant_with_complaint(&app).await;
    diesel::sql_query(
        "INSERT INTO calendar_days (calendar_id, tenant_id, date, kind, name) \
         VALUES ('cn-mainland', NULL, '2031-01-01', 'rest', 'test day')",
    )
    .execute(&mut app.db().await)
    .await
    .unwrap();
    let mut conn = app.app_db().await;
    let (seen, updated) = tenant::transaction(&mut conn, &a, async |conn| {
        let seen: Count = diesel::sql_query(
            "SELECT count(*) AS n FROM calendar_days WHERE tenant_id IS NULL AND date = '2031-01-01'",
        )
        .get_result(conn)
        .await?;
        let updated = diesel::sql_query(
            "UPDATE calendar_days SET kind = 'working' WHERE tenant_id IS NULL AND date = '2031-01-01'",
        )
        .execute(conn)
        .await?;
        Ok::<_, diesel::result::Error>((seen.n, updated))
    })
    .await
    .unwrap();
    assert_eq!((seen, updated), (1, 0));
    let inserted = tenant::transaction(&mut conn, &a, async |conn| {
        diesel::sql_query(
            "INSERT INTO calendar_days (calendar_id, tenant_id, date, kind) \
             VALUES ('cn-mainland', NULL, '2031-01-02', 'rest')",
        )
        .execute(conn)
        .await
    })
    .await;
    assert!(inserted.is_err(), "a tenant wrote a built-in calendar day");
    let years = tenant::transaction(&mut conn, &a, async |conn| {
        diesel::sql_query(
            "INSERT INTO calendar_years (calendar_id, year) VALUES ('cn-mainland', 2031)",
        )
        .execute(conn)
        .await
    })
    .await;
    assert!(
        years.is_err(),
        "a tenant added a year to a built-in calendar"
    );
    drop(conn);
    app.stop().await;
}
