//! CONTRACT §4 end to end: calendars over HTTP (DOMAIN.md's worked examples, every day of
//! 2024–2026), years and tenant calendars added as data, SLA policies, clocks in Postgres
//! (pause and resume, extension), and the scheduler firing every warning and breach exactly
//! once across several workers, one of them killed, and escalating a case by itself.

use std::{
    collections::BTreeMap,
    path::PathBuf,
    time::{Duration, Instant, SystemTime},
};

use chrono::{DateTime, Datelike, NaiveDate, Utc, Weekday};
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use redress_shared::{
    config::Settings,
    db::complaints,
    deadlines,
    domain::{Rung, Status},
    ids::{ComplaintId, TenantId},
};
use redress_tests::{example_complaint, Options, Tenant, TestApp};
use serde_json::{json, Value};

fn utc(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

fn date(s: &str) -> NaiveDate {
    s.parse().unwrap()
}

async fn api_only() -> TestApp {
    TestApp::spawn_with(Options {
        worker: false,
        ..Default::default()
    })
    .await
}

async fn due_date(app: &TestApp, token: &str, calendar: &str, query: &str) -> (u16, Value) {
    app.get_json(token, &format!("/v1/calendars/{calendar}/due-date?{query}"))
        .await
}

fn enc(s: &str) -> String {
    s.replace('+', "%2B").replace(':', "%3A")
}

// ---------------------------------------------------------------------------------------
// Calendars over HTTP

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_due_date_endpoint_reproduces_every_worked_example_of_domain_md() {
    let app = api_only().await;
    let (_, token) = app.tenant_and_token().await;
    // (start = day of receipt, amount, unit, roll_forward, due_on)
    let examples = [
        ("2025-09-26", 7, "working_days", true, "2025-10-13"),
        ("2026-02-12", 7, "working_days", true, "2026-02-28"),
        ("2024-09-27", 7, "working_days", true, "2024-10-12"),
        ("2026-04-30", 5, "working_days", true, "2026-05-11"),
        ("2025-01-24", 45, "working_days", true, "2025-04-03"),
        ("2026-02-05", 15, "calendar_days", true, "2026-02-24"),
        ("2026-02-05", 15, "calendar_days", false, "2026-02-20"),
    ];
    for (start, amount, unit, roll, due_on) in examples {
        // Received mid-morning in Shanghai; 01:30 local is still the previous UTC day,
        // and must count from the local date.
        for at in ["T10:00:00+08:00", "T01:30:00+08:00"] {
            let from = enc(&format!("{start}{at}"));
            let (status, body) = due_date(
                &app,
                &token,
                "cn-mainland",
                &format!("from={from}&amount={amount}&unit={unit}&roll_forward={roll}"),
            )
            .await;
            assert_eq!(status, 200, "{start} {body}");
            assert_eq!(body["due_on"], due_on, "{start} + {amount} {unit}");
            // A date deadline is due at 23:59:59 Shanghai time, 15:59:59 UTC.
            assert_eq!(body["due_at"], format!("{due_on}T15:59:59Z"), "{start}");
        }
    }
    // Wall-clock units add the duration and have no due date.
    let (status, body) = due_date(
        &app,
        &token,
        "cn-mainland",
        &format!(
            "from={}&amount=36&unit=hours",
            enc("2026-02-16T10:00:00+08:00")
        ),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(body["due_on"], Value::Null);
    assert_eq!(body["due_at"], "2026-02-17T14:00:00Z");
    app.stop().await;
}

/// The reference file beside the calendar crate's tests, parsed by hand here.
fn reference_rows() -> BTreeMap<NaiveDate, (String, String)> {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../calendar/tests/reference/cn-mainland-2024-2026.csv"
    );
    let text = std::fs::read_to_string(path).unwrap();
    text.lines()
        .skip(1)
        .filter(|l| !l.trim().is_empty())
        .map(|line| {
            let f: Vec<&str> = line.trim_end().split(',').collect();
            (date(f[0]), (f[2].to_owned(), f[3].to_owned()))
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_days_endpoint_matches_the_reference_file_on_every_day_of_2024_to_2026() {
    let app = api_only().await;
    let (_, token) = app.tenant_and_token().await;
    let rows = reference_rows();
    assert_eq!(rows.len(), 108);
    let (status, body) = app
        .get_json(
            &token,
            "/v1/calendars/cn-mainland/days?from=2024-01-01&to=2026-12-31",
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let days = body["days"].as_array().unwrap();
    assert_eq!(days.len(), 366 + 365 + 365);
    let mut per_year: BTreeMap<i32, usize> = BTreeMap::new();
    for day in days {
        let d = date(day["date"].as_str().unwrap());
        let weekend = matches!(d.weekday(), Weekday::Sat | Weekday::Sun);
        let (kind, reason) = match rows.get(&d).map(|(t, _)| t.as_str()) {
            Some("off") => ("rest", json!("holiday")),
            Some("makeup_workday") => ("working", json!("makeup_workday")),
            Some(other) => panic!("unknown type {other}"),
            None if weekend => ("rest", json!("weekend")),
            None => ("working", Value::Null),
        };
        assert_eq!(day["kind"], kind, "{d}");
        assert_eq!(day["reason"], reason, "{d}");
        if let Some((_, name)) = rows.get(&d) {
            assert_eq!(day["name"], name.as_str(), "{d}");
        }
        if kind == "working" {
            *per_year.entry(d.year()).or_default() += 1;
        }
    }
    assert_eq!(
        per_year,
        BTreeMap::from([(2024, 251), (2025, 248), (2026, 248)])
    );
    assert_eq!(body["working_days"], 251 + 248 + 248);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dates_outside_the_known_years_are_refused_naming_the_parameter() {
    let app = api_only().await;
    let (_, token) = app.tenant_and_token().await;
    let cases = [
        (
            format!(
                "/v1/calendars/cn-mainland/due-date?from={}&amount=7&unit=working_days",
                enc("2027-03-01T10:00:00+08:00")
            ),
            "from",
        ),
        (
            format!(
                "/v1/calendars/cn-mainland/due-date?from={}&amount=30&unit=working_days",
                enc("2026-12-20T10:00:00+08:00")
            ),
            "amount",
        ),
        (
            "/v1/calendars/cn-mainland/days?from=2026-12-01&to=2027-01-31".to_owned(),
            "to",
        ),
        (
            "/v1/calendars/cn-mainland/days?from=2023-12-01&to=2024-01-31".to_owned(),
            "from",
        ),
        (
            "/v1/calendars/cn-mainland/due-date?from=yesterday&amount=x&unit=fortnights".to_owned(),
            "from",
        ),
    ];
    for (path, parameter) in cases {
        let r = app
            .http
            .get(app.url(&path))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 422, "{path}");
        assert_eq!(
            r.headers().get("content-type").unwrap(),
            "application/problem+json"
        );
        let body: Value = r.json().await.unwrap();
        assert_eq!(body["errors"][0]["parameter"], parameter, "{path}: {body}");
    }
    // Calendar days without roll-forward do not consult the calendar at all, so they
    // answer beyond the known years; with roll-forward they cannot.
    let (status, _) = due_date(
        &app,
        &token,
        "cn-mainland",
        &format!(
            "from={}&amount=30&unit=calendar_days&roll_forward=false",
            enc("2026-12-20T10:00:00+08:00")
        ),
    )
    .await;
    assert_eq!(status, 200);
    let (status, _) = due_date(&app, &token, "no-such-calendar", "from=x").await;
    assert_eq!(status, 422, "parameters are checked before the calendar");
    let (status, _) = due_date(
        &app,
        &token,
        "no-such-calendar",
        &format!("from={}&amount=1&unit=hours", enc("2026-01-05T00:00:00Z")),
    )
    .await;
    assert_eq!(status, 404);
    app.stop().await;
}

/// `redress_deadline_clocks_waiting_for_calendar` as the API's `/metrics` reports it.
async fn clocks_waiting(app: &TestApp) -> i64 {
    let text = app
        .http
        .get(app.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .find(|l| l.starts_with("redress_deadline_clocks_waiting_for_calendar{"))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no clocks-waiting gauge in {text}"))
}

fn write_2027_csv() -> PathBuf {
    // A made-up arrangement in the project's CSV format (the real notice is data to load
    // when it is published): New Year on Friday 2027-01-01, a make-up Saturday 01-09.
    let path = std::env::temp_dir().join(format!(
        "redress-2027-{}.csv",
        uuid::Uuid::new_v4().simple()
    ));
    std::fs::write(
        &path,
        "date,weekday,type,holiday_name,notice_year,gov_cn_notice_url\n\
         2027-01-01,Fri,off,元旦,2027,https://example.invalid/notice-2027\n\
         2027-01-09,Sat,makeup_workday,,2027,https://example.invalid/notice-2027\n",
    )
    .unwrap();
    path
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_years_arrangement_is_loaded_as_data_and_schedules_the_clocks_waiting_for_it() {
    let app = api_only().await;
    let (tenant, token) = app.tenant_and_token().await;
    // A case routed on 2027-01-04, before the 2027 arrangement is known: its clocks wait.
    let id = app.file_example(&token).await;
    let started = utc("2027-01-04T10:00:00+08:00");
    route_by_hand(
        &app,
        &tenant,
        &id,
        "samr_12315",
        Some("samr_12315"),
        started,
    )
    .await;
    let deadline = deadline_of(&app, &token, &id, "acknowledge").await;
    assert_eq!(deadline["state"], "running");
    assert_eq!(deadline["due_on"], Value::Null);
    assert!(
        deadline["problem"].as_str().unwrap().contains("2027"),
        "{deadline}"
    );
    // What an operator's alert watches: the clocks waiting for a calendar (this test's
    // database holds only this case's two).
    assert_eq!(clocks_waiting(&app).await, 2);

    let csv = write_2027_csv();
    let loaded =
        redress_api::calendar_admin::load_year(&app.database_url, "cn-mainland", 2027, &csv, None)
            .await
            .unwrap();
    assert_eq!(loaded.year, 2027);
    assert_eq!(loaded.rest_days, 1);
    assert_eq!(loaded.makeup_workdays, 1);
    assert_eq!(loaded.known_to, Some(date("2027-12-31")));
    assert_eq!(loaded.clocks_scheduled, 2, "acknowledge and respond");
    assert_eq!(clocks_waiting(&app).await, 0);

    // 2027-01-04 (Mon) + 7 working days, the make-up Saturday 01-09 counted: 01-05, 06,
    // 07, 08, 09, 11, 12.
    let deadline = deadline_of(&app, &token, &id, "acknowledge").await;
    assert_eq!(deadline["due_on"], "2027-01-12", "{deadline}");
    assert!(deadline.get("problem").is_none());
    let (status, body) = due_date(
        &app,
        &token,
        "cn-mainland",
        &format!(
            "from={}&amount=7&unit=working_days",
            enc("2027-01-04T10:00:00+08:00")
        ),
    )
    .await;
    assert_eq!((status, body["due_on"].clone()), (200, json!("2027-01-12")));
    let (_, days) = app
        .get_json(
            &token,
            "/v1/calendars/cn-mainland/days?from=2027-01-01&to=2027-01-10",
        )
        .await;
    assert_eq!(days["days"][0]["reason"], "holiday");
    assert_eq!(days["days"][0]["name"], "元旦");
    assert_eq!(days["days"][8]["kind"], "working");
    assert_eq!(days["days"][8]["reason"], "makeup_workday");

    // A year that would leave a gap is refused before anything is written.
    let gap =
        redress_api::calendar_admin::load_year(&app.database_url, "cn-mainland", 2029, &csv, None)
            .await;
    assert!(gap.is_err());
    let _ = std::fs::remove_file(csv);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenant_calendar_adds_its_own_rest_days_and_stays_invisible_to_other_tenants() {
    let app = api_only().await;
    let (_, token) = app.tenant_and_token().await;
    let r = app
        .http
        .post(app.url("/v1/calendars"))
        .bearer_auth(&token)
        .json(&json!({
            "id": "acme-office", "name": "ACME office",
            "days": [{"date": "2026-03-03", "kind": "rest", "name": "盘点"}]
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    assert_eq!(r.headers()["location"], "/v1/calendars/acme-office");
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["base"], "cn-mainland");
    assert_eq!(body["known_to"], "2026-12-31");

    // Monday 03-02 + 2 working days: 03-04 on cn-mainland... 03-05 with the closure.
    let q = format!(
        "from={}&amount=2&unit=working_days",
        enc("2026-03-02T10:00:00+08:00")
    );
    let (_, official) = due_date(&app, &token, "cn-mainland", &q).await;
    let (_, own) = due_date(&app, &token, "acme-office", &q).await;
    assert_eq!(official["due_on"], "2026-03-04");
    assert_eq!(own["due_on"], "2026-03-05");
    // The official holidays still apply.
    let (_, days) = app
        .get_json(
            &token,
            "/v1/calendars/acme-office/days?from=2026-02-16&to=2026-03-03",
        )
        .await;
    assert_eq!(days["days"][0]["reason"], "holiday");
    assert_eq!(days["days"][15]["name"], "盘点");

    // PUT replaces the list; a Saturday becomes a working day.
    let r = app
        .http
        .put(app.url("/v1/calendars/acme-office/days"))
        .bearer_auth(&token)
        .json(&json!({"days": [{"date": "2026-03-07", "kind": "working"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let (_, own) = due_date(&app, &token, "acme-office", &q).await;
    assert_eq!(own["due_on"], "2026-03-04");
    let (_, list) = app.get_json(&token, "/v1/calendars").await;
    let ids: Vec<&str> = list["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["cn-mainland", "weekdays", "acme-office"]);

    // Errors: a day outside the base's known years, a duplicate id, a built-in.
    let r = app
        .http
        .post(app.url("/v1/calendars"))
        .bearer_auth(&token)
        .json(
            &json!({"id": "later", "name": "x", "days": [{"date": "2030-01-02", "kind": "rest"}]}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 422);
    assert_eq!(
        r.json::<Value>().await.unwrap()["errors"][0]["pointer"],
        "/days/0/date"
    );
    let r = app
        .http
        .post(app.url("/v1/calendars"))
        .bearer_auth(&token)
        .json(&json!({"id": "acme-office", "name": "again"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 409);
    let r = app
        .http
        .put(app.url("/v1/calendars/cn-mainland/days"))
        .bearer_auth(&token)
        .json(&json!({"days": []}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 409);

    // Another tenant: 404, never the data. A token without tenant:admin cannot create.
    let other = app.create_tenant(Some("cn-pos")).await;
    let other_token = app
        .token(&other.client_id, &other.client_secret, None)
        .await;
    let (status, _) = app
        .get_json(&other_token, "/v1/calendars/acme-office")
        .await;
    assert_eq!(status, 404);
    let (status, _) = due_date(&app, &other_token, "acme-office", &q).await;
    assert_eq!(status, 404);
    let reader = app
        .token(
            &other.client_id,
            &other.client_secret,
            Some("complaints:read"),
        )
        .await;
    let r = app
        .http
        .post(app.url("/v1/calendars"))
        .bearer_auth(&reader)
        .json(&json!({"id": "mine", "name": "x"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    app.stop().await;
}

// ---------------------------------------------------------------------------------------
// SLA policies

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tenant_admins_manage_sla_policies_and_a_new_tenant_starts_with_the_cn_pos_defaults() {
    let app = api_only().await;
    let (tenant, token) = app.tenant_and_token().await;
    let (status, list) = app.get_json(&token, "/v1/sla-policies").await;
    assert_eq!(status, 200);
    let codes: Vec<&str> = list["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["code"].as_str().unwrap())
        .collect();
    for code in [
        "pboc_transferred",
        "samr_12315",
        "pcac_report",
        "nfra_12378",
        "provider_service",
    ] {
        assert!(codes.contains(&code), "{code} in {codes:?}");
    }
    let (_, pboc) = app
        .get_json(&token, "/v1/sla-policies/pboc_transferred")
        .await;
    assert_eq!(
        pboc["respond"],
        json!({"amount": 15, "unit": "calendar_days", "extendable_to": 60})
    );
    let (_, provider) = app
        .get_json(&token, "/v1/sla-policies/provider_service")
        .await;
    assert_eq!(provider["editable_default"], true);
    assert_eq!(provider["certainty"], "U");

    let policy = json!({
        "code": "fast-lane", "name": "Fast lane",
        "acknowledge": {"amount": 4, "unit": "hours"},
        "respond": {"amount": 3, "unit": "working_days", "extendable_to": 6},
        "calendar": "weekdays", "warn_before": {"amount": 1, "unit": "working_days"},
        "on_breach": "escalate"
    });
    let post = |body: Value| {
        app.http
            .post(app.url("/v1/sla-policies"))
            .bearer_auth(&token)
            .json(&body)
            .send()
    };
    let r = post(policy.clone()).await.unwrap();
    assert_eq!(r.status(), 201);
    assert_eq!(r.headers()["location"], "/v1/sla-policies/fast-lane");
    let created: Value = r.json().await.unwrap();
    assert_eq!(created["roll_forward"], true);
    assert_eq!(created["time_zone"], Value::Null);
    assert_eq!(post(policy.clone()).await.unwrap().status(), 409);

    let r = post(json!({
        "code": "bad", "respond": {"amount": 0, "unit": "weeks"},
        "calendar": "nowhere", "warn_at_fraction": 2
    }))
    .await
    .unwrap();
    assert_eq!(r.status(), 422);
    let problem: Value = r.json().await.unwrap();
    let pointers: Vec<&str> = problem["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["pointer"].as_str().unwrap())
        .collect();
    assert_eq!(
        pointers,
        ["/respond/unit", "/respond/amount", "/warn_at_fraction"]
    );
    let r = post(
        json!({"code": "cal", "respond": {"amount": 1, "unit": "hours"}, "calendar": "nowhere"}),
    )
    .await
    .unwrap();
    assert_eq!(r.status(), 422);
    assert_eq!(
        r.json::<Value>().await.unwrap()["errors"][0]["pointer"],
        "/calendar"
    );

    let mut changed = created.clone();
    changed["respond"]["amount"] = json!(5);
    let r = app
        .http
        .put(app.url("/v1/sla-policies/fast-lane"))
        .bearer_auth(&token)
        .json(&changed)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "a GET answer can be PUT back");
    assert_eq!(r.json::<Value>().await.unwrap()["respond"]["amount"], 5);
    let r = app
        .http
        .delete(app.url("/v1/sla-policies/fast-lane"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    let (status, _) = app.get_json(&token, "/v1/sla-policies/fast-lane").await;
    assert_eq!(status, 404);

    // Partners cannot see or change policies; another tenant does not see this one's.
    let partner = app
        .token(
            &tenant.client_id,
            &tenant.client_secret,
            Some("complaints:write"),
        )
        .await;
    let (status, _) = app.get_json(&partner, "/v1/sla-policies").await;
    assert_eq!(status, 403);
    let other = app.create_tenant(None).await;
    let other_token = app
        .token(&other.client_id, &other.client_secret, None)
        .await;
    let (_, list) = app.get_json(&other_token, "/v1/sla-policies").await;
    assert_eq!(
        list["data"],
        json!([]),
        "a tenant without a template has no policies"
    );
    app.stop().await;
}

// ---------------------------------------------------------------------------------------
// Clocks in Postgres

/// Routes a case to `channel` at `started_at` the way the routing engine does: clocks
/// started, rung stored, in one transaction.
async fn route_by_hand(
    app: &TestApp,
    tenant: &Tenant,
    id: &str,
    channel: &str,
    policy: Option<&str>,
    started_at: DateTime<Utc>,
) {
    let tenant_id = TenantId::parse(&tenant.tenant_id).unwrap();
    let complaint = ComplaintId::parse(id).unwrap();
    let mut conn = app.db().await;
    conn.transaction(async |conn| {
        complaints::find_for_update(conn, &tenant_id, &complaint)
            .await?
            .unwrap();
        let deadlines = deadlines::start_for_rung(
            conn, &tenant_id, &complaint, channel, "main", policy, started_at,
        )
        .await?;
        let rung = Rung {
            channel: channel.to_owned(),
            since: started_at,
            track: "main".to_owned(),
            deadlines,
        };
        complaints::set_state(
            conn,
            &tenant_id,
            &complaint,
            Status::Routed,
            &[rung],
            &[],
            started_at,
        )
        .await
    })
    .await
    .unwrap();
}

/// A connection and the ids to call the deadline functions with. Each call is its own
/// transaction here; nothing else writes to the case meanwhile.
async fn case(
    app: &TestApp,
    tenant: &Tenant,
    id: &str,
) -> (AsyncPgConnection, TenantId, ComplaintId) {
    (
        app.db().await,
        TenantId::parse(&tenant.tenant_id).unwrap(),
        ComplaintId::parse(id).unwrap(),
    )
}

async fn deadline_of(app: &TestApp, token: &str, id: &str, clock: &str) -> Value {
    let (status, body) = app.get_json(token, &format!("/v1/complaints/{id}")).await;
    assert_eq!(status, 200);
    body["current"][0]["deadlines"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["clock"] == clock)
        .unwrap_or_else(|| panic!("no {clock} deadline in {body}"))
        .clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_clock_counts_its_unused_part_again_from_the_resume_date() {
    let app = api_only().await;
    let (tenant, token) = app.tenant_and_token().await;

    // 12315: accept within 7 working days. Received Friday 2025-09-26: due 2025-10-13.
    let id = app.file_example(&token).await;
    route_by_hand(
        &app,
        &tenant,
        &id,
        "samr_12315",
        None,
        utc("2025-09-26T10:00:00+08:00"),
    )
    .await;
    let ack = deadline_of(&app, &token, &id, "acknowledge").await;
    assert_eq!(ack["due_on"], "2025-10-13");
    assert_eq!(ack["due_at"], "2025-10-13T15:59:59Z");
    assert_eq!(ack["state"], "running");

    // Paused Monday 09-29: 09-28 (make-up Sunday) and 09-29 are used; left are 09-30,
    // 10-09, 10-10, 10-11 (make-up Saturday) and 10-13: five working days.
    {
        let (mut conn, t, c) = case(&app, &tenant, &id).await;
        deadlines::pause_all(&mut conn, &t, &c, utc("2025-09-29T16:00:00+08:00"))
            .await
            .unwrap();
    }
    let ack = deadline_of(&app, &token, &id, "acknowledge").await;
    assert_eq!(ack["state"], "paused");
    assert_eq!(ack["due_on"], Value::Null);
    assert_eq!(ack["remaining"], json!({"unit": "working_days", "days": 5}));

    // Evidence arrives Monday 10-20: five working days after it is Monday 10-27.
    {
        let (mut conn, t, c) = case(&app, &tenant, &id).await;
        deadlines::resume_all(&mut conn, &t, &c, utc("2025-10-20T09:00:00+08:00"))
            .await
            .unwrap();
    }
    let ack = deadline_of(&app, &token, &id, "acknowledge").await;
    assert_eq!(ack["state"], "running");
    assert_eq!(ack["due_on"], "2025-10-27");
    assert_eq!(ack["due_at"], "2025-10-27T15:59:59Z");

    // Calendar days: the PBOC-transferred 15 days from Monday 2026-03-02 (due 03-17);
    // paused Friday 03-06 with 11 days unused; resumed Monday 03-16: due Friday 03-27.
    let id = app.file_example(&token).await;
    route_by_hand(
        &app,
        &tenant,
        &id,
        "institution_complaint",
        Some("pboc_transferred"),
        utc("2026-03-02T10:00:00+08:00"),
    )
    .await;
    assert_eq!(
        deadline_of(&app, &token, &id, "respond").await["due_on"],
        "2026-03-17"
    );
    {
        let (mut conn, t, c) = case(&app, &tenant, &id).await;
        deadlines::pause_all(&mut conn, &t, &c, utc("2026-03-06T10:00:00+08:00"))
            .await
            .unwrap();
    }
    assert_eq!(
        deadline_of(&app, &token, &id, "respond").await["remaining"],
        json!({"unit": "calendar_days", "days": 11})
    );
    {
        let (mut conn, t, c) = case(&app, &tenant, &id).await;
        deadlines::resume_all(&mut conn, &t, &c, utc("2026-03-16T10:00:00+08:00"))
            .await
            .unwrap();
    }
    assert_eq!(
        deadline_of(&app, &token, &id, "respond").await["due_on"],
        "2026-03-27"
    );

    // A met clock stays met through later pauses.
    {
        let (mut conn, t, c) = case(&app, &tenant, &id).await;
        deadlines::stop_for_rung(
            &mut conn,
            &t,
            &c,
            "institution_complaint",
            "main",
            "respond",
            true,
            utc("2026-03-20T10:00:00+08:00"),
        )
        .await
        .unwrap();
        deadlines::pause_all(&mut conn, &t, &c, utc("2026-03-21T10:00:00+08:00"))
            .await
            .unwrap();
    }
    let respond = deadline_of(&app, &token, &id, "respond").await;
    assert_eq!(respond["state"], "met");
    assert_eq!(respond["due_on"], "2026-03-27");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_extends_a_15_day_deadline_to_30_then_60_days_counted_from_the_start() {
    let app = api_only().await;
    let (tenant, token) = app.tenant_and_token().await;
    let id = app.file_example(&token).await;
    // Transferred by the PBOC branch on 2026-02-05: 15 days end on 02-20, a Spring Festival
    // rest day, so the deadline is 02-24.
    route_by_hand(
        &app,
        &tenant,
        &id,
        "institution_complaint",
        Some("pboc_transferred"),
        utc("2026-02-05T10:00:00+08:00"),
    )
    .await;
    assert_eq!(
        deadline_of(&app, &token, &id, "respond").await["due_on"],
        "2026-02-24"
    );

    let extend = |amount: u32, unit: &str| {
        app.http
            .post(app.url(&format!("/v1/complaints/{id}/deadlines/respond/extend")))
            .bearer_auth(&token)
            .json(&json!({"amount": amount, "unit": unit, "reason": "案情复杂，需调取交易记录"}))
            .send()
    };
    // 30 days from 02-05 is Saturday 03-07: the next working day is Monday 03-09.
    let r = extend(30, "calendar_days").await.unwrap();
    assert_eq!(r.status(), 200);
    let d: Value = r.json().await.unwrap();
    assert_eq!(d["due_on"], "2026-03-09");
    assert_eq!(d["target"], json!({"amount": 30, "unit": "calendar_days"}));
    assert_eq!(d["extensions"], 1);
    // 60 days is Monday 04-06, the last day of the Qingming holiday: Tuesday 04-07.
    let d: Value = extend(60, "calendar_days")
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(d["due_on"], "2026-04-07");
    assert_eq!(d["due_at"], "2026-04-07T15:59:59Z");
    assert_eq!(
        deadline_of(&app, &token, &id, "respond").await,
        d,
        "the rung shows it"
    );

    // Beyond the policy's 60-day ceiling, a shorter target, another unit: 422.
    for (amount, unit, pointer) in [
        (61, "calendar_days", "/amount"),
        (45, "calendar_days", "/amount"),
        (90, "working_days", "/unit"),
    ] {
        let r = extend(amount, unit).await.unwrap();
        assert_eq!(r.status(), 422);
        let body: Value = r.json().await.unwrap();
        assert_eq!(body["errors"][0]["pointer"], pointer, "{body}");
    }
    // Without a reason: 422; a clock the rung does not have: 404; a partner: 403.
    let r = app
        .http
        .post(app.url(&format!("/v1/complaints/{id}/deadlines/respond/extend")))
        .bearer_auth(&token)
        .json(&json!({"amount": 45, "unit": "calendar_days"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 422);
    let r = app
        .http
        .post(app.url(&format!("/v1/complaints/{id}/deadlines/acknowledge/extend")))
        .bearer_auth(&token)
        .json(&json!({"amount": 45, "unit": "calendar_days", "reason": "x"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    let partner = app
        .token(
            &tenant.client_id,
            &tenant.client_secret,
            Some("complaints:read"),
        )
        .await;
    let r = app
        .http
        .post(app.url(&format!("/v1/complaints/{id}/deadlines/respond/extend")))
        .bearer_auth(&partner)
        .json(&json!({"amount": 45, "unit": "calendar_days", "reason": "x"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);

    // Each extension is in the history with its reason.
    let (_, events) = app
        .get_json(&token, &format!("/v1/complaints/{id}/events"))
        .await;
    let extended: Vec<&Value> = events["data"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["type"] == "complaint.deadline_extended")
        .collect();
    assert_eq!(extended.len(), 2);
    assert_eq!(extended[0]["data"]["reason"], "案情复杂，需调取交易记录");
    assert_eq!(extended[0]["data"]["previous"]["due_on"], "2026-02-24");
    assert_eq!(extended[1]["data"]["deadline"]["due_on"], "2026-04-07");

    // A paused clock keeps its pause: extended by 15 days while paused, it resumes with 15
    // more days left than it had.
    let id = app.file_example(&token).await;
    route_by_hand(
        &app,
        &tenant,
        &id,
        "institution_complaint",
        Some("pboc_transferred"),
        utc("2026-03-02T10:00:00+08:00"),
    )
    .await;
    {
        let (mut conn, t, c) = case(&app, &tenant, &id).await;
        deadlines::pause_all(&mut conn, &t, &c, utc("2026-03-06T10:00:00+08:00"))
            .await
            .unwrap();
    }
    let r = app
        .http
        .post(app.url(&format!("/v1/complaints/{id}/deadlines/respond/extend")))
        .bearer_auth(&token)
        .json(&json!({"amount": 30, "unit": "calendar_days", "reason": "复杂"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.json::<Value>().await.unwrap()["remaining"],
        json!({"unit": "calendar_days", "days": 26})
    );
    {
        let (mut conn, t, c) = case(&app, &tenant, &id).await;
        deadlines::resume_all(&mut conn, &t, &c, utc("2026-03-16T10:00:00+08:00"))
            .await
            .unwrap();
    }
    // 03-16 + 26 days = Saturday 04-11 → Monday 04-13.
    assert_eq!(
        deadline_of(&app, &token, &id, "respond").await["due_on"],
        "2026-04-13"
    );
    app.stop().await;
}

// ---------------------------------------------------------------------------------------
// The scheduler

/// How the three workers of the load test run: real `redress-worker` processes when the
/// binary next to this test was built from the current code (the whole workspace was
/// built, as `scripts/test` does), otherwise three schedulers in this
/// process, each with its own connection pool, the "kill" being an abort that drops its
/// transactions and connections mid-way (as a crash would).
enum Workers {
    Processes(Vec<std::process::Child>),
    InProcess(Vec<tokio::task::JoinHandle<()>>),
}

fn newest_modification(dir: &std::path::Path) -> SystemTime {
    let mut newest = SystemTime::UNIX_EPOCH;
    let Ok(entries) = std::fs::read_dir(dir) else {
        return newest;
    };
    for entry in entries.filter_map(Result::ok) {
        let Ok(meta) = entry.metadata() else { continue };
        let modified = if meta.is_dir() {
            newest_modification(&entry.path())
        } else {
            meta.modified().unwrap_or(SystemTime::UNIX_EPOCH)
        };
        newest = newest.max(modified);
    }
    newest
}

/// The `redress-worker` binary beside this test, if it was built after the last change to
/// the code it runs (so it is not an old build that would test old code).
fn fresh_worker_binary() -> Option<PathBuf> {
    let exe = std::env::current_exe().ok()?;
    let binary = exe.parent()?.parent()?.join("redress-worker");
    let built = std::fs::metadata(&binary).ok()?.modified().ok()?;
    let root = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/.."));
    let newest_source = [
        "worker/src",
        "shared/src",
        "shared/templates",
        "calendar/src",
        "calendar/data",
        "migrations",
    ]
    .iter()
    .map(|dir| newest_modification(&root.join(dir)))
    .max()
    .unwrap_or(SystemTime::UNIX_EPOCH);
    (built >= newest_source).then_some(binary)
}

fn start_workers(settings: &Settings, database_url: &str) -> Workers {
    if let Some(binary) = fresh_worker_binary() {
        let children = (0..3)
            .map(|_| {
                std::process::Command::new(&binary)
                    .env("REDRESS_DATABASE_URL", database_url)
                    .env("REDRESS_AMQP_URL", settings.amqp_url.expose())
                    .env("REDRESS_AMQP_NAMESPACE", &settings.amqp_namespace)
                    .env("REDRESS_DB_POOL_SIZE", "6")
                    .env("REDRESS_RELAY__ENABLED", "false")
                    .env("REDRESS_WEBHOOKS__DISPATCHER_ENABLED", "false")
                    .env("REDRESS_SCHEDULER__POLL_INTERVAL_MS", "50")
                    .env("REDRESS_SCHEDULER__LEASE_SECS", "2")
                    .env("REDRESS_LOG", "warn")
                    // Each process its own port for /metrics.
                    .env("REDRESS_WORKER_METRICS_ADDR", "127.0.0.1:0")
                    .stdout(std::process::Stdio::null())
                    .spawn()
                    .unwrap()
            })
            .collect();
        return Workers::Processes(children);
    }
    let handles = (0..3)
        .map(|_| {
            let pool = redress_shared::db::pool(database_url, 6).unwrap();
            let mut s = settings.scheduler.clone();
            s.poll_interval_ms = 50;
            s.lease_secs = 2;
            let scheduler = redress_worker::scheduler::Scheduler::new(pool, s);
            tokio::spawn(scheduler.run(tokio_util::sync::CancellationToken::new()))
        })
        .collect();
    Workers::InProcess(handles)
}

impl Workers {
    fn kind(&self) -> &'static str {
        match self {
            Workers::Processes(_) => "three redress-worker processes",
            Workers::InProcess(_) => {
                "three in-process schedulers (redress-worker binary not built or stale)"
            }
        }
    }

    /// Panics unless every worker is still running (a process that could not start would
    /// leave fewer workers than the test claims).
    fn assert_alive(&mut self) {
        match self {
            Workers::Processes(children) => {
                for (i, child) in children.iter_mut().enumerate() {
                    assert!(
                        matches!(child.try_wait(), Ok(None)),
                        "redress-worker process {i} exited: {:?}",
                        child.try_wait()
                    );
                }
            }
            Workers::InProcess(handles) => {
                assert!(
                    handles.iter().all(|h| !h.is_finished()),
                    "a scheduler stopped"
                );
            }
        }
    }

    fn kill_first(&mut self) {
        match self {
            Workers::Processes(children) => children[0].kill().unwrap(),
            Workers::InProcess(handles) => handles[0].abort(),
        }
    }

    fn stop(mut self) {
        self.kill_all();
    }

    fn kill_all(&mut self) {
        match self {
            Workers::Processes(children) => {
                for mut child in children.drain(..) {
                    let _ = child.kill();
                    let _ = child.wait();
                }
            }
            Workers::InProcess(handles) => handles.iter().for_each(|h| h.abort()),
        }
    }
}

/// A failed assertion must not leave worker processes running (they would keep firing
/// clocks, and hold the test runner's output pipe open).
impl Drop for Workers {
    fn drop(&mut self) {
        self.kill_all();
    }
}

async fn count(conn: &mut AsyncPgConnection, sql: &str) -> i64 {
    diesel::dsl::sql::<diesel::sql_types::BigInt>(sql)
        .get_result(conn)
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_workers_fire_each_warning_and_breach_of_10000_clocks_once_even_when_one_is_killed() {
    let app = api_only().await;
    let tenant = app.create_tenant(Some("cn-pos")).await;
    let mut conn = app.db().await;
    let now = Utc::now();
    // 10,000 cases whose clocks all warn in 3 s and fall due 2 s later.
    let warn_at = now + chrono::TimeDelta::seconds(3);
    let due_at = now + chrono::TimeDelta::seconds(5);
    redress_worker::scheduler::synthetic::insert_clocks(
        &mut conn,
        &tenant.tenant_id,
        &tenant.client_id,
        "cmp_load",
        10_000,
        now,
        Some(warn_at),
        due_at,
    )
    .await
    .unwrap();

    let mut workers = start_workers(&app.settings, app.settings.database_url.expose());
    eprintln!("scheduler load test: {}", workers.kind());
    tokio::time::sleep(Duration::from_millis(1500)).await;
    workers.assert_alive();
    let breaches =
        "SELECT count(*) FROM complaint_events WHERE event_type = 'complaint.sla_breached'";
    let warnings =
        "SELECT count(*) FROM complaint_events WHERE event_type = 'complaint.sla_warning'";
    let started = Instant::now();
    let mut killed = false;
    loop {
        let fired = count(&mut conn, breaches).await;
        if !killed && fired >= 3_000 {
            workers.assert_alive();
            workers.kill_first();
            killed = true;
        }
        if fired >= 10_000 {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(300),
            "only {fired} of 10000 breaches fired in 300 s ({})",
            workers.kind()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let all_fired = Utc::now();
    assert!(killed, "a worker was killed mid-way");
    // Anything still in flight would show now.
    tokio::time::sleep(Duration::from_millis(500)).await;
    workers.stop();

    assert_eq!(count(&mut conn, warnings).await, 10_000);
    assert_eq!(count(&mut conn, breaches).await, 10_000);
    for kind in ["sla_warning", "sla_breached"] {
        assert_eq!(
            count(
                &mut conn,
                &format!(
                    "SELECT count(DISTINCT complaint_id) FROM complaint_events \
                     WHERE event_type = 'complaint.{kind}'"
                )
            )
            .await,
            10_000,
            "one {kind} per case"
        );
    }
    assert_eq!(
        count(
            &mut conn,
            "SELECT count(*) FROM complaint_events w JOIN complaint_events b \
             ON w.complaint_id = b.complaint_id \
             WHERE w.event_type = 'complaint.sla_warning' \
               AND b.event_type = 'complaint.sla_breached' AND w.sequence > b.sequence"
        )
        .await,
        0,
        "every warning comes before its breach"
    );
    assert_eq!(
        count(
            &mut conn,
            "SELECT count(*) FROM sla_clocks WHERE state = 'breached' AND next_fire_at IS NULL"
        )
        .await,
        10_000
    );
    // The rung shows the breach.
    let rung_states: Value = diesel::dsl::sql::<diesel::sql_types::Jsonb>(
        "SELECT current_rungs->0->'deadlines'->0 FROM complaints WHERE id = 'cmp_load00000001'",
    )
    .get_result(&mut conn)
    .await
    .unwrap();
    assert_eq!(rung_states["state"], "breached");
    eprintln!(
        "10000 breaches fired {:.1} s after they fell due, one of three workers killed",
        (all_fired - due_at).num_milliseconds() as f64 / 1000.0
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_breached_respond_deadline_with_escalate_moves_the_case_to_the_next_rung_by_itself() {
    let app = TestApp::spawn_with(Options {
        tweak: Box::new(|s| s.scheduler.poll_interval_ms = 100),
        ..Default::default()
    })
    .await;
    let (_, token) = app.tenant_and_token().await;
    // The provider's customer service gets 3 seconds to respond, then the case climbs.
    let r = app
        .http
        .put(app.url("/v1/sla-policies/provider_service"))
        .bearer_auth(&token)
        .json(&json!({
            "name": "Provider customer service (test: seconds)",
            "respond": {"amount": 3, "unit": "seconds"},
            "warn_at_fraction": 0.5,
            "on_breach": "escalate"
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let id = app
        .file(&token, &example_complaint())
        .await
        .json::<Value>()
        .await
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let routed = app
        .wait_for_status(&token, &id, "routed", Duration::from_secs(10))
        .await;
    assert_eq!(routed["current"][0]["channel"], "provider_service");
    assert_eq!(routed["current"][0]["deadlines"][0]["clock"], "respond");
    assert_eq!(routed["current"][0]["deadlines"][0]["state"], "running");

    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let complaint = loop {
        let (_, c) = app.get_json(&token, &format!("/v1/complaints/{id}")).await;
        if c["current"][0]["channel"] != "provider_service" {
            break c;
        }
        assert!(tokio::time::Instant::now() < deadline, "not escalated: {c}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(complaint["status"], "routed");
    assert_eq!(complaint["current"][0]["channel"], "institution_complaint");
    // The new rung's own clocks run (its policy from the cn-pos defaults).
    let clocks: Vec<&str> = complaint["current"][0]["deadlines"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["clock"].as_str().unwrap())
        .collect();
    assert_eq!(clocks, ["acknowledge", "respond"]);

    let (_, events) = app
        .get_json(&token, &format!("/v1/complaints/{id}/events"))
        .await;
    let types: Vec<&str> = events["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["type"].as_str().unwrap())
        .collect();
    assert_eq!(
        types,
        [
            "complaint.submitted",
            "complaint.routed",
            "complaint.sla_warning",
            "complaint.sla_breached",
            "complaint.escalated"
        ]
    );
    let data: Vec<&Value> = events["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| &e["data"])
        .collect();
    assert_eq!(data[2]["clock"], "respond");
    assert_eq!(data[3]["on_breach"], "escalate");
    assert_eq!(data[4]["from_channel"], "provider_service");
    assert_eq!(data[4]["channel"], "institution_complaint");
    let sequences: Vec<i64> = events["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["sequence"].as_i64().unwrap())
        .collect();
    assert_eq!(sequences, [1, 2, 3, 4, 5]);
    app.stop().await;
}
