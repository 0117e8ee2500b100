//! CONTRACT §3 end to end against a cn-pos tenant: realistic complaints routed by the
//! worker and explained by the preview (which must agree), routing edits that take effect
//! for the next complaint only, refused bad expressions, the evidence gate, escalation by
//! feedback and by operators up to `unresolved`, and the status machine's 409s.

use std::{collections::BTreeSet, time::Duration};

use chrono::{Days, Utc};
use redress_tests::{Options, TestApp};
use serde_json::{json, Value};

const WAIT: Duration = Duration::from_secs(10);

fn days_ago(n: u64) -> String {
    (Utc::now().date_naive() - Days::new(n)).to_string()
}

/// A complaint body; `evidence` are kinds, `prior` are `(channel, days ago, outcome)`.
fn body(
    kind: &str,
    provider: &str,
    category: &str,
    summary: &str,
    incident_days_ago: u64,
    evidence: &[&str],
    prior: &[(&str, u64, &str)],
) -> Value {
    json!({
        "external_ref": format!("rt-{}", uuid::Uuid::new_v4().simple()),
        "complainant": {"name": if kind == "merchant" { "李记小吃店" } else { "王小明" }, "phone": "13912345678", "kind": kind, "region": "440305"},
        "respondent": {"provider": provider, "merchant_no": "822290070111234", "terminal_sn": "N5NL0123456"},
        "category": category,
        "summary": summary,
        "description": format!("{summary}。多次联系未果，请求协助处理。"),
        "amount_claimed": {"value": "299.00", "currency": "CNY"},
        "occurred_on": days_ago(incident_days_ago),
        "desired_outcomes": ["refund"],
        "evidence": evidence.iter().map(|k| json!({"kind": k, "description": "截图"})).collect::<Vec<_>>(),
        "prior_contacts": prior.iter().map(|(c, d, o)| json!({"channel": c, "on": days_ago(*d), "reference": "工单 A123", "outcome": o})).collect::<Vec<_>>(),
    })
}

async fn post(app: &TestApp, token: &str, path: &str, body: &Value) -> (u16, Value) {
    let r = app
        .http
        .post(app.url(path))
        .bearer_auth(token)
        .json(body)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

async fn put(app: &TestApp, token: &str, path: &str, body: &Value) -> (u16, Value) {
    let r = app
        .http
        .put(app.url(path))
        .bearer_auth(token)
        .json(body)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

async fn file(app: &TestApp, token: &str, body: &Value) -> String {
    let r = app.file(token, body).await;
    let status = r.status().as_u16();
    let b: Value = r.json().await.unwrap();
    assert_eq!(status, 202, "{b}");
    b["id"].as_str().unwrap().to_owned()
}

async fn events(app: &TestApp, token: &str, id: &str) -> Vec<Value> {
    let (_, e) = app
        .get_json(token, &format!("/v1/complaints/{id}/events"))
        .await;
    e["data"].as_array().unwrap().clone()
}

/// Waits until the router has decided (the complaint left `submitted`), and returns the
/// complaint and the event that recorded the decision.
async fn decided(app: &TestApp, token: &str, id: &str) -> (Value, Value) {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let (_, c) = app.get_json(token, &format!("/v1/complaints/{id}")).await;
        if c["status"] != "submitted" {
            let e = events(app, token, id).await;
            let decision = e
                .iter()
                .rev()
                .find(|e| e["data"]["decision"].is_object())
                .cloned()
                .unwrap_or(Value::Null);
            return (c, decision);
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "complaint {id} was not routed"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// Waits until the complaint has at least `n` events.
async fn wait_events(app: &TestApp, token: &str, id: &str, n: usize) -> Vec<Value> {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let e = events(app, token, id).await;
        if e.len() >= n {
            return e;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "complaint {id} has {} events, not {n}",
            e.len()
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

fn main_channel(c: &Value) -> Option<String> {
    c["current"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["track"] == "main")
        .map(|r| r["channel"].as_str().unwrap().to_owned())
}

/// One row of the table: a complaint and where cn-pos must send it.
struct Case {
    name: &'static str,
    body: Value,
    status: &'static str,
    provider: Option<&'static str>,
    ladder: &'static str,
    start: Option<&'static str>,
    /// `(track, channel it starts at, or None when the track cannot start)`.
    tracks: &'static [(&'static str, Option<&'static str>)],
    /// Main-ladder rungs passed over: `(channel, "tried" | "ineligible")`.
    skipped: &'static [(&'static str, &'static str)],
    missing: &'static [&'static str],
}

fn table() -> Vec<Case> {
    const RECENT: u64 = 45;
    const OLD: u64 = 4 * 366;
    vec![
        Case {
            name: "deposit with payment proof starts at the provider",
            body: body(
                "consumer",
                "拉卡拉",
                "deposit_not_refunded",
                "POS机押金299元申请退还被拒",
                RECENT,
                &["payment_receipt"],
                &[],
            ),
            status: "routed",
            provider: Some("lakala"),
            ladder: "payment_dispute",
            start: Some("provider_service"),
            tracks: &[],
            skipped: &[("nfra_12378", "ineligible")],
            missing: &[],
        },
        Case {
            name: "deposit without payment proof waits for it",
            body: body(
                "consumer",
                "Lakala",
                "deposit_not_refunded",
                "退机后押金未退",
                RECENT,
                &["contract"],
                &[],
            ),
            status: "awaiting_evidence",
            provider: Some("lakala"),
            ladder: "payment_dispute",
            start: Some("provider_service"),
            tracks: &[],
            skipped: &[("nfra_12378", "ineligible")],
            missing: &["payment_receipt"],
        },
        Case {
            name: "a provider already refused: start at the licensed institution",
            body: body(
                "consumer",
                "拉卡拉支付股份有限公司",
                "deposit_not_refunded",
                "客服拒绝退还押金",
                RECENT,
                &["payment_receipt", "chat_log"],
                &[("provider_service", 20, "refused")],
            ),
            status: "routed",
            provider: Some("lakala"),
            ladder: "payment_dispute",
            start: Some("institution_complaint"),
            tracks: &[],
            skipped: &[("provider_service", "tried"), ("nfra_12378", "ineligible")],
            missing: &[],
        },
        Case {
            name: "full-width name, provider and institution tried: PBOC 12363",
            body: body(
                "consumer",
                "ＬＡＫＡＬＡ",
                "deposit_not_refunded",
                "押金三个月未退",
                120,
                &["payment_receipt"],
                &[
                    ("provider_service", 90, "no_response"),
                    ("institution_complaint", 30, "refused"),
                ],
            ),
            status: "routed",
            provider: Some("lakala"),
            ladder: "payment_dispute",
            start: Some("pboc_12363"),
            tracks: &[],
            skipped: &[
                ("provider_service", "tried"),
                ("institution_complaint", "tried"),
                ("nfra_12378", "ineligible"),
            ],
            missing: &[],
        },
        Case {
            name: "traffic fee deducted: clearing association report beside",
            body: body(
                "consumer",
                "通联支付",
                "unauthorized_fee",
                "未经同意扣除流量费99元",
                RECENT,
                &["transaction_record"],
                &[],
            ),
            status: "routed",
            provider: Some("allinpay"),
            ladder: "payment_dispute",
            start: Some("provider_service"),
            tracks: &[("pcac_report", Some("pcac_report"))],
            skipped: &[("nfra_12378", "ineligible")],
            missing: &[],
        },
        Case {
            name: "merchant fee complaint without transaction record waits",
            body: body(
                "merchant",
                "通联",
                "unauthorized_fee",
                "每年被扣服务费",
                RECENT,
                &[],
                &[],
            ),
            status: "awaiting_evidence",
            provider: Some("allinpay"),
            ladder: "payment_dispute",
            start: Some("provider_service"),
            tracks: &[("pcac_report", Some("pcac_report"))],
            skipped: &[("nfra_12378", "ineligible"), ("samr_12315", "ineligible")],
            missing: &["transaction_record"],
        },
        Case {
            name: "hidden fee at Shengpay",
            body: body(
                "consumer",
                "盛付通",
                "hidden_fee",
                "激活后被扣隐藏费用",
                RECENT,
                &["transaction_record", "advertisement"],
                &[],
            ),
            status: "routed",
            provider: Some("shengpay"),
            ladder: "payment_dispute",
            start: Some("provider_service"),
            tracks: &[("pcac_report", Some("pcac_report"))],
            skipped: &[("nfra_12378", "ineligible")],
            missing: &[],
        },
        Case {
            name: "hidden fee at a bank: NFRA instead of PBOC, no association report",
            body: body(
                "consumer",
                "工商银行",
                "hidden_fee",
                "银行POS机隐藏收费",
                RECENT,
                &["transaction_record"],
                &[],
            ),
            status: "routed",
            provider: Some("icbc"),
            ladder: "payment_dispute",
            start: Some("provider_service"),
            tracks: &[("pcac_report", None)],
            skipped: &[("pboc_12363", "ineligible")],
            missing: &[],
        },
        Case {
            name: "merchant misled on rates: 12315 report track, never the 12315 complaint rung",
            body: body(
                "merchant",
                "银联商务",
                "rate_misrepresentation",
                "宣传0费率实际扣0.6%",
                RECENT,
                &["transaction_record", "advertisement"],
                &[],
            ),
            status: "routed",
            provider: Some("chinaums"),
            ladder: "payment_dispute",
            start: Some("provider_service"),
            tracks: &[("samr_report", Some("samr_12315_report"))],
            skipped: &[("nfra_12378", "ineligible"), ("samr_12315", "ineligible")],
            missing: &[],
        },
        Case {
            name: "consumer misled on rates without records waits",
            body: body(
                "consumer",
                "快钱",
                "rate_misrepresentation",
                "T+0到账承诺未兑现且费率偏高",
                RECENT,
                &["advertisement"],
                &[],
            ),
            status: "awaiting_evidence",
            provider: Some("kuaiqian"),
            ladder: "payment_dispute",
            start: Some("provider_service"),
            tracks: &[("samr_report", Some("samr_12315_report"))],
            skipped: &[("nfra_12378", "ineligible")],
            missing: &["transaction_record"],
        },
        Case {
            name: "merchant settlement delay",
            body: body(
                "merchant",
                "随行付",
                "settlement_delay",
                "营业款三天未到账",
                RECENT,
                &["transaction_record"],
                &[],
            ),
            status: "routed",
            provider: Some("vbill"),
            ladder: "payment_dispute",
            start: Some("provider_service"),
            tracks: &[],
            skipped: &[("nfra_12378", "ineligible"), ("samr_12315", "ineligible")],
            missing: &[],
        },
        Case {
            name: "settlement delay without the transaction record waits",
            body: body(
                "merchant",
                "VBill",
                "settlement_delay",
                "结算延迟一周",
                RECENT,
                &["chat_log"],
                &[],
            ),
            status: "awaiting_evidence",
            provider: Some("vbill"),
            ladder: "payment_dispute",
            start: Some("provider_service"),
            tracks: &[],
            skipped: &[("nfra_12378", "ineligible"), ("samr_12315", "ineligible")],
            missing: &["transaction_record"],
        },
        Case {
            name: "frozen merchant account climbs the frozen-account ladder",
            body: body(
                "merchant",
                "拉卡拉",
                "account_frozen",
                "商户账户被冻结且未告知原因",
                RECENT,
                &["freeze_notice"],
                &[],
            ),
            status: "routed",
            provider: Some("lakala"),
            ladder: "account_frozen",
            start: Some("provider_service"),
            tracks: &[],
            skipped: &[("nfra_12378", "ineligible")],
            missing: &[],
        },
        Case {
            name: "frozen account at a bank after two refusals: NFRA 12378",
            body: body(
                "merchant",
                "建设银行",
                "account_frozen",
                "收单账户冻结两个月",
                70,
                &[],
                &[
                    ("provider_service", 60, "refused"),
                    ("institution_complaint", 30, "no_response"),
                ],
            ),
            status: "routed",
            provider: Some("ccb"),
            ladder: "account_frozen",
            start: Some("nfra_12378"),
            tracks: &[],
            skipped: &[
                ("provider_service", "tried"),
                ("institution_complaint", "tried"),
                ("pboc_12363", "ineligible"),
            ],
            missing: &[],
        },
        Case {
            name: "unauthorised transaction goes to the police at once",
            body: body(
                "consumer",
                "银联",
                "unauthorized_transaction",
                "银行卡被盗刷3笔共5000元",
                3,
                &[],
                &[],
            ),
            status: "routed",
            provider: Some("unionpay"),
            ladder: "payment_dispute",
            start: Some("provider_service"),
            tracks: &[("police", Some("police"))],
            skipped: &[("nfra_12378", "ineligible")],
            missing: &[],
        },
        Case {
            name: "fraud already reported to the police: the police track does not restart",
            body: body(
                "merchant",
                "拉卡拉POS机",
                "unauthorized_transaction",
                "POS机被他人盗刷",
                10,
                &["police_report"],
                &[("police", 9, "case_opened")],
            ),
            status: "routed",
            provider: Some("lakala"),
            ladder: "payment_dispute",
            start: Some("provider_service"),
            tracks: &[("police", None)],
            skipped: &[("nfra_12378", "ineligible"), ("samr_12315", "ineligible")],
            missing: &[],
        },
        Case {
            name: "device fault: device ladder, 12315 open to a consumer",
            body: body(
                "consumer",
                "盛付通",
                "device_fault",
                "新机无法刷卡",
                RECENT,
                &["device_photo"],
                &[],
            ),
            status: "routed",
            provider: Some("shengpay"),
            ladder: "device_dispute",
            start: Some("provider_service"),
            tracks: &[],
            skipped: &[],
            missing: &[],
        },
        Case {
            name: "merchant device fault skips 12315",
            body: body(
                "merchant",
                "随行付支付",
                "device_fault",
                "机具频繁死机",
                RECENT,
                &[],
                &[],
            ),
            status: "routed",
            provider: Some("vbill"),
            ladder: "device_dispute",
            start: Some("provider_service"),
            tracks: &[],
            skipped: &[("samr_12315", "ineligible")],
            missing: &[],
        },
        Case {
            name: "unknown provider is kept as written and routed by the category",
            body: body(
                "consumer",
                "深圳某某科技有限公司",
                "service_quality",
                "代理商态度恶劣",
                RECENT,
                &[],
                &[],
            ),
            status: "routed",
            provider: None,
            ladder: "device_dispute",
            start: Some("provider_service"),
            tracks: &[],
            skipped: &[],
            missing: &[],
        },
        Case {
            name: "old service complaint skips 12315 and court",
            body: body(
                "consumer",
                "通联支付",
                "service_quality",
                "多年前的服务纠纷",
                OLD,
                &[],
                &[],
            ),
            status: "routed",
            provider: Some("allinpay"),
            ladder: "device_dispute",
            start: Some("provider_service"),
            tracks: &[],
            skipped: &[("samr_12315", "ineligible"), ("court", "ineligible")],
            missing: &[],
        },
        Case {
            name: "other complaint against an unknown agent",
            body: body(
                "consumer",
                "街边代理商",
                "other",
                "代理商承诺的礼品未兑现",
                RECENT,
                &[],
                &[],
            ),
            status: "routed",
            provider: None,
            ladder: "payment_dispute",
            start: Some("provider_service"),
            tracks: &[],
            skipped: &[("nfra_12378", "ineligible")],
            missing: &[],
        },
        Case {
            name: "deposit four years old: 12315 and court skipped",
            body: body(
                "consumer",
                "拉卡拉",
                "deposit_not_refunded",
                "2022年的押金至今未退",
                OLD,
                &["payment_receipt"],
                &[],
            ),
            status: "routed",
            provider: Some("lakala"),
            ladder: "payment_dispute",
            start: Some("provider_service"),
            tracks: &[],
            skipped: &[
                ("nfra_12378", "ineligible"),
                ("samr_12315", "ineligible"),
                ("court", "ineligible"),
            ],
            missing: &[],
        },
        Case {
            name: "old deposit, every early rung tried: mediation",
            body: body(
                "consumer",
                "拉卡拉支付",
                "deposit_not_refunded",
                "押金多年未退，各渠道均无果",
                OLD,
                &["payment_receipt"],
                &[
                    ("provider_service", 1200, "refused"),
                    ("institution_complaint", 1100, "refused"),
                    ("pboc_12363", 1000, "unsatisfactory"),
                ],
            ),
            status: "routed",
            provider: Some("lakala"),
            ladder: "payment_dispute",
            start: Some("mediation"),
            tracks: &[],
            skipped: &[
                ("provider_service", "tried"),
                ("institution_complaint", "tried"),
                ("pboc_12363", "tried"),
                ("nfra_12378", "ineligible"),
                ("samr_12315", "ineligible"),
                ("court", "ineligible"),
            ],
            missing: &[],
        },
        Case {
            name: "old merchant device fault after the provider: mediation",
            body: body(
                "merchant",
                "Shengpay",
                "device_fault",
                "机具故障维修费纠纷",
                5 * 366,
                &[],
                &[("provider_service", 1500, "refused")],
            ),
            status: "routed",
            provider: Some("shengpay"),
            ladder: "device_dispute",
            start: Some("mediation"),
            tracks: &[],
            skipped: &[
                ("provider_service", "tried"),
                ("samr_12315", "ineligible"),
                ("court", "ineligible"),
            ],
            missing: &[],
        },
        Case {
            name: "bank card fraud after the bank's hotline: written complaint and police",
            body: body(
                "consumer",
                "工行",
                "unauthorized_transaction",
                "信用卡在POS机上被盗刷",
                7,
                &["transaction_record", "police_report"],
                &[("provider_service", 5, "refused")],
            ),
            status: "routed",
            provider: Some("icbc"),
            ladder: "payment_dispute",
            start: Some("institution_complaint"),
            tracks: &[("police", Some("police"))],
            skipped: &[("provider_service", "tried"), ("pboc_12363", "ineligible")],
            missing: &[],
        },
        Case {
            name: "merchant hidden fee without records waits",
            body: body(
                "merchant",
                "快钱支付",
                "hidden_fee",
                "套餐外收费",
                RECENT,
                &[],
                &[],
            ),
            status: "awaiting_evidence",
            provider: Some("kuaiqian"),
            ladder: "payment_dispute",
            start: Some("provider_service"),
            tracks: &[("pcac_report", Some("pcac_report"))],
            skipped: &[("nfra_12378", "ineligible"), ("samr_12315", "ineligible")],
            missing: &["transaction_record"],
        },
        Case {
            name: "an old frozen account that tried every open rung is rejected as ineligible",
            body: body(
                "merchant",
                "拉卡拉",
                "account_frozen",
                "账户冻结多年",
                OLD,
                &["freeze_notice"],
                &[
                    ("provider_service", 1400, "refused"),
                    ("institution_complaint", 1300, "refused"),
                    ("pboc_12363", 1200, "refused"),
                    ("mediation", 1100, "failed"),
                ],
            ),
            status: "rejected",
            provider: Some("lakala"),
            ladder: "account_frozen",
            start: None,
            tracks: &[],
            skipped: &[
                ("provider_service", "tried"),
                ("institution_complaint", "tried"),
                ("pboc_12363", "tried"),
                ("nfra_12378", "ineligible"),
                ("mediation", "tried"),
                ("court", "ineligible"),
            ],
            missing: &[],
        },
        Case {
            name: "rates already reported to 12315: no second report track",
            body: body(
                "consumer",
                "Allinpay",
                "rate_misrepresentation",
                "费率与宣传不符",
                RECENT,
                &["transaction_record"],
                &[("samr_12315_report", 10, "pending")],
            ),
            status: "routed",
            provider: Some("allinpay"),
            ladder: "payment_dispute",
            start: Some("provider_service"),
            tracks: &[("samr_report", None)],
            skipped: &[("nfra_12378", "ineligible")],
            missing: &[],
        },
    ]
}

fn check_decision(name: &str, case: &Case, d: &Value) {
    assert_eq!(d["verdict"], case.status, "{name}: verdict\n{}", d["why"]);
    assert_eq!(
        d["provider"]["directory"]["code"].as_str(),
        case.provider,
        "{name}: provider"
    );
    assert_eq!(d["main"]["ladder"], case.ladder, "{name}: ladder");
    assert_eq!(
        d["main"]["start"]["channel"].as_str(),
        case.start,
        "{name}: start rung\n{}",
        d["why"]
    );
    let tracks: Vec<(String, Option<String>)> = d["parallel_tracks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            (
                t["track"].as_str().unwrap().to_owned(),
                t["start"]["channel"].as_str().map(str::to_owned),
            )
        })
        .collect();
    let expected: Vec<(String, Option<String>)> = case
        .tracks
        .iter()
        .map(|(t, c)| ((*t).to_owned(), c.map(str::to_owned)))
        .collect();
    assert_eq!(tracks, expected, "{name}: parallel tracks");
    let skipped: BTreeSet<(String, String)> = d["main"]["skipped"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["channel"].as_str().unwrap().to_owned(),
                s["kind"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let expected: BTreeSet<(String, String)> = case
        .skipped
        .iter()
        .map(|(c, k)| ((*c).to_owned(), (*k).to_owned()))
        .collect();
    assert_eq!(skipped, expected, "{name}: skipped rungs\n{}", d["why"]);
    assert_eq!(
        d["missing_evidence"],
        json!(case.missing),
        "{name}: missing evidence"
    );
    for s in d["main"]["skipped"].as_array().unwrap() {
        assert!(
            !s["reason"].as_str().unwrap().is_empty(),
            "{name}: every skipped rung says why"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cn_pos_catalogue_routes_every_realistic_complaint_and_the_preview_agrees() {
    let app = TestApp::spawn().await;
    let (_, token) = app.tenant_and_token().await;
    let cases = table();
    assert!(cases.len() >= 25);
    let categories: BTreeSet<&str> = cases
        .iter()
        .map(|c| c.body["category"].as_str().unwrap())
        .collect();
    assert_eq!(categories.len(), 10, "every category is filed");

    let mut ids = Vec::new();
    for case in &cases {
        ids.push(file(&app, &token, &case.body).await);
    }
    for (case, id) in cases.iter().zip(&ids) {
        let name = case.name;
        let (complaint, event) = decided(&app, &token, id).await;
        assert_eq!(complaint["status"], case.status, "{name}: status");
        assert_eq!(
            complaint["missing_evidence"],
            json!(case.missing),
            "{name}: the complaint lists the missing evidence"
        );
        let decision = &event["data"]["decision"];
        check_decision(name, case, decision);
        assert_eq!(event["data"]["routing_version"], 1, "{name}");
        assert_eq!(event["actor"], "system:router");
        match case.status {
            "routed" => {
                assert_eq!(event["type"], "complaint.routed", "{name}");
                assert_eq!(
                    main_channel(&complaint).as_deref(),
                    case.start,
                    "{name}: current"
                );
                let main = complaint["current"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .find(|r| r["track"] == "main")
                    .unwrap();
                assert!(
                    !main["deadlines"].as_array().unwrap().is_empty(),
                    "{name}: the start rung's clocks run: {main}"
                );
                // Every started parallel track is an active rung beside the main one.
                for (track, channel) in case.tracks {
                    let active = complaint["current"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .find(|r| r["track"] == *track)
                        .map(|r| r["channel"].as_str().unwrap().to_owned());
                    assert_eq!(active.as_deref(), *channel, "{name}: track {track}");
                }
            }
            "awaiting_evidence" => {
                assert_eq!(event["type"], "complaint.evidence_requested", "{name}");
                assert_eq!(event["data"]["missing_evidence"], json!(case.missing));
                assert!(complaint["current"].as_array().unwrap().is_empty());
            }
            _ => {
                assert_eq!(event["type"], "complaint.rejected", "{name}");
                assert!(event["data"]["reason"]
                    .as_str()
                    .unwrap()
                    .contains("no rung of ladder `account_frozen`"));
            }
        }

        // The preview answers the same, from the same code, storing nothing.
        let mut preview_body = case.body.clone();
        preview_body["external_ref"] = json!(null);
        let (status, mut preview) = post(&app, &token, "/v1/routing/preview", &preview_body).await;
        assert_eq!(status, 200, "{name}: {preview}");
        let deadlines = preview
            .as_object_mut()
            .unwrap()
            .remove("deadlines")
            .unwrap();
        assert_eq!(&preview, decision, "{name}: preview and worker disagree");
        if let Some(start) = case.start.filter(|_| case.status != "rejected") {
            assert!(
                deadlines
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|d| d["track"] == "main" && d["channel"] == start),
                "{name}: the preview names the start rung's deadlines: {deadlines}"
            );
            assert!(
                deadlines
                    .as_array()
                    .unwrap()
                    .iter()
                    .all(|d| d["track"] != "main" || !d["deadlines"].as_array().unwrap().is_empty()),
                "{name}: the start rung has clocks under the cn-pos SLA policies: {deadlines}"
            );
        }
    }
    let (_, page) = app.get_json(&token, "/v1/complaints?limit=100").await;
    assert_eq!(
        page["data"].as_array().unwrap().len(),
        cases.len(),
        "the preview stored no complaint"
    );
    app.stop().await;
}

fn deposit(prior: &[(&str, u64, &str)]) -> Value {
    body(
        "consumer",
        "拉卡拉",
        "deposit_not_refunded",
        "POS机押金299元申请退还被拒",
        30,
        &["payment_receipt"],
        prior,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rule_edit_routes_the_next_complaint_differently_and_leaves_earlier_ones_on_their_version(
) {
    let app = TestApp::spawn().await;
    let (_, token) = app.tenant_and_token().await;
    let (_, routing) = app.get_json(&token, "/v1/routing").await;
    assert_eq!(routing["version"], 1);
    assert_eq!(routing["created_by"], "system:template:cn-pos");

    let before = file(&app, &token, &deposit(&[])).await;
    let (c, e) = decided(&app, &token, &before).await;
    assert_eq!(main_channel(&c).as_deref(), Some("provider_service"));
    assert_eq!(e["data"]["routing_version"], 1);

    // Deposits skip the provider's hotline from now on: a ladder and a rule, two versions.
    let (status, v) = put(
        &app,
        &token,
        "/v1/routing/ladders/deposit_written",
        &json!({"name": "押金：直接书面投诉", "rungs": [
            {"channel": "institution_complaint"},
            {"channel": "pboc_12363"},
            {"channel": "mediation"}
        ]}),
    )
    .await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["version"], 2);
    let (status, v) = put(
        &app,
        &token,
        "/v1/routing/rules/deposits_in_writing",
        &json!({
            "description": "押金纠纷直接书面投诉持牌机构",
            "when": "category == 'deposit_not_refunded' && has_evidence('payment_receipt')",
            "ladder": "deposit_written",
            "priority": 200
        }),
    )
    .await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["version"], 3);
    assert_eq!(v["entry"]["id"], "deposits_in_writing");

    let after = file(&app, &token, &deposit(&[])).await;
    let (c, e) = decided(&app, &token, &after).await;
    assert_eq!(main_channel(&c).as_deref(), Some("institution_complaint"));
    assert_eq!(e["data"]["routing_version"], 3);
    assert_eq!(e["data"]["rule"], "deposits_in_writing");
    assert_eq!(e["data"]["ladder"], "deposit_written");

    // The earlier complaint is untouched, and still climbs the ladder it was routed with.
    let (_, c) = app
        .get_json(&token, &format!("/v1/complaints/{before}"))
        .await;
    assert_eq!(main_channel(&c).as_deref(), Some("provider_service"));
    let (status, c) = post(
        &app,
        &token,
        &format!("/v1/complaints/{before}/transitions"),
        &json!({"action": "escalate", "note": "客服超时未处理"}),
    )
    .await;
    assert_eq!(status, 200, "{c}");
    assert_eq!(main_channel(&c).as_deref(), Some("institution_complaint"));
    let e = events(&app, &token, &before).await;
    let escalated = e.last().unwrap();
    assert_eq!(escalated["type"], "complaint.escalated");
    assert_eq!(escalated["data"]["routing_version"], 1);
    assert_eq!(escalated["data"]["from_channel"], "provider_service");

    // The history keeps every version.
    let (_, versions) = app.get_json(&token, "/v1/routing/versions").await;
    let numbers: Vec<i64> = versions["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["version"].as_i64().unwrap())
        .collect();
    assert_eq!(numbers, [3, 2, 1]);
    let (status, v1) = app.get_json(&token, "/v1/routing/versions/1").await;
    assert_eq!(status, 200);
    assert!(v1["routing"]["rules"]
        .as_array()
        .unwrap()
        .iter()
        .all(|r| r["id"] != "deposits_in_writing"));
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_expression_is_refused_naming_rule_and_position_and_routing_stays_as_it_was() {
    let app = TestApp::spawn().await;
    let (_, token) = app.tenant_and_token().await;

    let (status, problem) = put(
        &app,
        &token,
        "/v1/routing/rules/broken",
        &json!({"when": "category == 'other' && evidnce.size() > 0", "ladder": "payment_dispute", "priority": 500}),
    )
    .await;
    assert_eq!(status, 422, "{problem}");
    assert_eq!(problem["errors"][0]["pointer"], "/when");
    let detail = problem["errors"][0]["detail"].as_str().unwrap();
    assert!(
        detail.starts_with("rule `broken`: line 1, column 24:"),
        "{detail}"
    );
    assert!(detail.contains("evidnce"), "{detail}");

    // A syntax error in a whole document, and a rung condition calling a missing helper.
    let (_, current) = app.get_json(&token, "/v1/routing").await;
    let mut routing = current["routing"].clone();
    routing["rules"][0]["when"] = json!("category == ");
    routing["ladders"][0]["rungs"][2]["eligibility"][0]["when"] = json!("is_bank()");
    let (status, problem) = put(
        &app,
        &token,
        "/v1/routing",
        &json!({"routing": routing, "note": "broken", "base_version": 1}),
    )
    .await;
    assert_eq!(status, 422, "{problem}");
    let errors = problem["errors"].as_array().unwrap();
    assert_eq!(
        errors[0]["pointer"],
        "/routing/ladders/0/rungs/2/eligibility/0/when"
    );
    assert!(errors[0]["detail"]
        .as_str()
        .unwrap()
        .contains("ladder `payment_dispute`, rung 3 (`pboc_12363`)"));
    assert_eq!(errors[1]["pointer"], "/routing/rules/0/when");
    assert!(errors[1]["detail"]
        .as_str()
        .unwrap()
        .starts_with("rule `fraud`: line 1, column"));

    // Nothing changed: still version 1, and complaints route by it.
    let (_, after) = app.get_json(&token, "/v1/routing").await;
    assert_eq!(after["version"], 1);
    assert_eq!(after["routing"], current["routing"]);
    let id = file(&app, &token, &deposit(&[])).await;
    let (c, e) = decided(&app, &token, &id).await;
    assert_eq!(main_channel(&c).as_deref(), Some("provider_service"));
    assert_eq!(e["data"]["routing_version"], 1);

    // An edit based on an old version is refused rather than overwriting a newer one.
    let (status, _) = put(
        &app,
        &token,
        "/v1/routing",
        &json!({"routing": current["routing"], "base_version": 1}),
    )
    .await;
    assert_eq!(status, 200);
    let (status, problem) = put(
        &app,
        &token,
        "/v1/routing",
        &json!({"routing": current["routing"], "base_version": 1}),
    )
    .await;
    assert_eq!(status, 409, "{problem}");
    assert_eq!(problem["current_version"], 2);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn evidence_added_to_a_waiting_case_routes_it() {
    let app = TestApp::spawn().await;
    let (_, token) = app.tenant_and_token().await;
    let id = file(
        &app,
        &token,
        &body(
            "consumer",
            "拉卡拉",
            "deposit_not_refunded",
            "押金未退",
            30,
            &[],
            &[],
        ),
    )
    .await;
    let (c, e) = decided(&app, &token, &id).await;
    assert_eq!(c["status"], "awaiting_evidence");
    assert_eq!(c["missing_evidence"], json!(["payment_receipt"]));
    assert_eq!(e["type"], "complaint.evidence_requested");
    assert_eq!(e["data"]["missing_evidence"], json!(["payment_receipt"]));

    // Evidence of another kind: recorded, and the case keeps waiting for what is missing.
    let (status, c) = post(
        &app,
        &token,
        &format!("/v1/complaints/{id}/evidence"),
        &json!({"evidence": [{"kind": "contract", "description": "合同"}]}),
    )
    .await;
    assert_eq!(status, 202, "{c}");
    let e = wait_events(&app, &token, &id, 4).await;
    assert_eq!(e[2]["type"], "complaint.evidence_added");
    assert_eq!(e[3]["type"], "complaint.evidence_requested");
    assert_eq!(e[3]["data"]["from"], "awaiting_evidence");

    let (status, _) = post(
        &app,
        &token,
        &format!("/v1/complaints/{id}/evidence"),
        &json!({"evidence": [{"kind": "payment_receipt", "description": "押金转账记录 6222021234567890128"}]}),
    )
    .await;
    assert_eq!(status, 202);
    let c = app.wait_for_status(&token, &id, "routed", WAIT).await;
    assert_eq!(main_channel(&c).as_deref(), Some("provider_service"));
    assert_eq!(c["missing_evidence"], json!([]));
    assert_eq!(c["evidence"].as_array().unwrap().len(), 2);
    assert!(
        c["evidence"][1]["description"]
            .as_str()
            .unwrap()
            .contains("622202*********0128"),
        "card numbers in evidence are masked"
    );
    let e = events(&app, &token, &id).await;
    let last = e.last().unwrap();
    assert_eq!(last["type"], "complaint.routed");
    assert_eq!(last["data"]["from"], "awaiting_evidence");

    // Bad evidence is refused by pointer; a routed case still accepts evidence (200).
    let (status, problem) = post(
        &app,
        &token,
        &format!("/v1/complaints/{id}/evidence"),
        &json!({"evidence": [{"kind": "selfie"}]}),
    )
    .await;
    assert_eq!(status, 422);
    assert_eq!(problem["errors"][0]["pointer"], "/evidence/0/kind");
    let (status, _) = post(
        &app,
        &token,
        &format!("/v1/complaints/{id}/evidence"),
        &json!({"evidence": [{"kind": "chat_log"}]}),
    )
    .await;
    assert_eq!(status, 200);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unsatisfied_feedback_climbs_one_rung_and_satisfied_feedback_resolves() {
    let app = TestApp::spawn().await;
    let (_, token) = app.tenant_and_token().await;
    let id = file(&app, &token, &deposit(&[])).await;
    decided(&app, &token, &id).await;
    let transitions = format!("/v1/complaints/{id}/transitions");
    let (status, c) = post(
        &app,
        &token,
        &transitions,
        &json!({"action": "acknowledge", "channel_reference": "工单 88-1"}),
    )
    .await;
    assert_eq!((status, c["status"].as_str()), (200, Some("in_progress")));
    let (status, c) = post(
        &app,
        &token,
        &transitions,
        &json!({"action": "respond", "note": "客服称押金不予退还"}),
    )
    .await;
    assert_eq!((status, c["status"].as_str()), (200, Some("responded")));

    let (status, c) = post(
        &app,
        &token,
        &format!("/v1/complaints/{id}/feedback"),
        &json!({"satisfied": false, "comment": "答复不合理"}),
    )
    .await;
    assert_eq!(status, 200, "{c}");
    assert_eq!(c["status"], "routed");
    assert_eq!(main_channel(&c).as_deref(), Some("institution_complaint"));
    let e = events(&app, &token, &id).await;
    let escalated = e.last().unwrap();
    assert_eq!(escalated["type"], "complaint.escalated");
    assert_eq!(escalated["data"]["from"], "responded");
    assert_eq!(escalated["data"]["from_channel"], "provider_service");
    assert_eq!(escalated["data"]["channel"], "institution_complaint");
    assert_eq!(escalated["data"]["feedback"]["satisfied"], false);
    assert!(escalated["actor"]
        .as_str()
        .unwrap()
        .starts_with("client:cli_"));

    let (_, _) = post(
        &app,
        &token,
        &transitions,
        &json!({"action": "respond", "note": "机构同意退还押金"}),
    )
    .await;
    let (status, c) = post(
        &app,
        &token,
        &format!("/v1/complaints/{id}/feedback"),
        &json!({"satisfied": true}),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(c["status"], "resolved");
    assert!(c["current"].as_array().unwrap().is_empty());
    let kinds: Vec<String> = events(&app, &token, &id)
        .await
        .iter()
        .map(|e| e["type"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        kinds,
        [
            "complaint.submitted",
            "complaint.routed",
            "complaint.acknowledged",
            "complaint.responded",
            "complaint.escalated",
            "complaint.responded",
            "complaint.resolved"
        ]
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn escalating_past_the_last_eligible_rung_ends_unresolved() {
    let app = TestApp::spawn().await;
    let (_, token) = app.tenant_and_token().await;
    // A merchant's frozen account at a bank: PBOC is skipped for a bank, 12315 is not on
    // this ladder.
    let id = file(
        &app,
        &token,
        &body(
            "merchant",
            "中国建设银行股份有限公司",
            "account_frozen",
            "收单账户被冻结",
            30,
            &["freeze_notice"],
            &[],
        ),
    )
    .await;
    let (c, _) = decided(&app, &token, &id).await;
    let mut path = vec![main_channel(&c).unwrap()];
    let transitions = format!("/v1/complaints/{id}/transitions");
    loop {
        let (status, c) = post(
            &app,
            &token,
            &transitions,
            &json!({"action": "escalate", "note": "渠道未解决"}),
        )
        .await;
        assert_eq!(status, 200, "{c}");
        match main_channel(&c) {
            Some(channel) => {
                assert_eq!(c["status"], "routed");
                path.push(channel);
            }
            None => {
                assert_eq!(c["status"], "unresolved");
                assert!(c["current"].as_array().unwrap().is_empty());
                break;
            }
        }
        assert!(path.len() < 10, "the ladder must end");
    }
    assert_eq!(
        path,
        [
            "provider_service",
            "institution_complaint",
            "nfra_12378",
            "mediation",
            "court"
        ]
    );
    let e = events(&app, &token, &id).await;
    let last = e.last().unwrap();
    assert_eq!(last["type"], "complaint.escalated");
    assert_eq!(last["data"]["outcome"], "ladder_exhausted");
    assert_eq!(last["data"]["status"], "unresolved");
    // The climb recorded the skipped PBOC rung when it passed it.
    let passed_pboc = e.iter().any(|e| {
        e["type"] == "complaint.escalated"
            && e["data"]["skipped"]
                .as_array()
                .is_some_and(|s| s.iter().any(|s| s["channel"] == "pboc_12363"))
    });
    assert!(passed_pboc);
    let (status, problem) = post(&app, &token, &transitions, &json!({"action": "escalate"})).await;
    assert_eq!(status, 409);
    assert_eq!(problem["current_status"], "unresolved");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parallel_tracks_are_worked_by_channel_without_moving_the_main_status() {
    let app = TestApp::spawn().await;
    let (_, token) = app.tenant_and_token().await;
    let id = file(
        &app,
        &token,
        &body(
            "consumer",
            "拉卡拉",
            "unauthorized_transaction",
            "POS机盗刷",
            2,
            &[],
            &[],
        ),
    )
    .await;
    decided(&app, &token, &id).await;
    let transitions = format!("/v1/complaints/{id}/transitions");
    let (status, c) = post(&app, &token, &transitions, &json!({"action": "acknowledge", "channel": "police", "channel_reference": "报案回执 2026-001"})).await;
    assert_eq!(status, 200, "{c}");
    assert_eq!(
        c["status"], "routed",
        "the main track has not been acknowledged"
    );
    let (status, c) = post(
        &app,
        &token,
        &transitions,
        &json!({"action": "resolve", "channel": "police", "note": "已立案"}),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(c["status"], "routed");
    let tracks: Vec<&str> = c["current"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["track"].as_str().unwrap())
        .collect();
    assert_eq!(tracks, ["main"]);
    let e = events(&app, &token, &id).await;
    assert_eq!(e.last().unwrap()["type"], "complaint.track_closed");
    let (status, problem) = post(
        &app,
        &token,
        &transitions,
        &json!({"action": "acknowledge", "channel": "court"}),
    )
    .await;
    assert_eq!(status, 422);
    assert_eq!(problem["errors"][0]["pointer"], "/channel");
    let (status, problem) = post(&app, &token, &transitions, &json!({"action": "reject"})).await;
    assert_eq!(status, 422, "reject needs a reason");
    assert_eq!(problem["errors"][0]["pointer"], "/note");
    app.stop().await;
}

/// What the status machine allows each action from (CONTRACT §2).
fn legal(action: &str, status: &str) -> bool {
    match action {
        "acknowledge" => status == "routed",
        "respond" => matches!(status, "routed" | "in_progress"),
        "resolve" | "escalate" | "feedback" => {
            matches!(status, "routed" | "in_progress" | "responded")
        }
        "reject" => matches!(
            status,
            "submitted" | "awaiting_evidence" | "routed" | "in_progress"
        ),
        "withdraw" => !matches!(status, "resolved" | "unresolved" | "rejected" | "withdrawn"),
        _ => unreachable!(),
    }
}

const ACTIONS: [&str; 7] = [
    "acknowledge",
    "respond",
    "resolve",
    "escalate",
    "reject",
    "feedback",
    "withdraw",
];

async fn attempt(app: &TestApp, token: &str, id: &str, action: &str) -> (u16, Value) {
    match action {
        "feedback" => {
            post(
                app,
                token,
                &format!("/v1/complaints/{id}/feedback"),
                &json!({"satisfied": false}),
            )
            .await
        }
        "withdraw" => {
            post(
                app,
                token,
                &format!("/v1/complaints/{id}/withdraw"),
                &json!({}),
            )
            .await
        }
        a => {
            post(
                app,
                token,
                &format!("/v1/complaints/{id}/transitions"),
                &json!({"action": a, "note": "原因"}),
            )
            .await
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_illegal_transition_is_409_with_the_current_status() {
    let app = TestApp::spawn().await;
    let (_, token) = app.tenant_and_token().await;
    let go = |id: &str, action: &'static str| {
        let (app, token, id) = (&app, &token, id.to_owned());
        async move {
            let (status, body) = attempt(app, token, &id, action).await;
            assert_eq!(status, 200, "{action}: {body}");
        }
    };

    // One complaint in each status a case can be in after routing.
    let mut cases: Vec<(&str, String)> = Vec::new();
    let waiting = file(
        &app,
        &token,
        &body(
            "consumer",
            "拉卡拉",
            "deposit_not_refunded",
            "押金",
            30,
            &[],
            &[],
        ),
    )
    .await;
    decided(&app, &token, &waiting).await;
    cases.push(("awaiting_evidence", waiting));
    for (status, steps) in [
        ("routed", &[][..]),
        ("in_progress", &["acknowledge"][..]),
        ("responded", &["respond"][..]),
        ("resolved", &["resolve"][..]),
        ("rejected", &["reject"][..]),
        ("withdrawn", &["withdraw"][..]),
    ] {
        let id = file(&app, &token, &deposit(&[])).await;
        decided(&app, &token, &id).await;
        for step in steps {
            go(&id, step).await;
        }
        cases.push((status, id));
    }
    // Unresolved: only mediation is left to an old deposit complaint, then nothing.
    let id = file(
        &app,
        &token,
        &body(
            "consumer",
            "拉卡拉",
            "deposit_not_refunded",
            "押金",
            4 * 366,
            &["payment_receipt"],
            &[
                ("provider_service", 1300, "refused"),
                ("institution_complaint", 1200, "refused"),
                ("pboc_12363", 1100, "refused"),
            ],
        ),
    )
    .await;
    decided(&app, &token, &id).await;
    go(&id, "escalate").await;
    cases.push(("unresolved", id));

    let mut checked = 0;
    for (status, id) in &cases {
        let (_, c) = app.get_json(&token, &format!("/v1/complaints/{id}")).await;
        assert_eq!(c["status"], *status);
        for action in ACTIONS {
            if legal(action, status) {
                continue;
            }
            let (code, problem) = attempt(&app, &token, id, action).await;
            assert_eq!(code, 409, "{action} on {status}: {problem}");
            assert_eq!(problem["current_status"], *status, "{action} on {status}");
            assert_eq!(
                problem["type"],
                "https://redress.dev/problems/illegal-transition"
            );
            checked += 1;
        }
        let (_, after) = app.get_json(&token, &format!("/v1/complaints/{id}")).await;
        assert_eq!(after["status"], *status, "a refused move changes nothing");
    }
    assert!(checked >= 30, "{checked}");

    // A complaint the router has not reached yet.
    let mut app = app;
    app.stop_worker().await;
    let id = file(&app, &token, &deposit(&[])).await;
    for action in ACTIONS {
        if legal(action, "submitted") {
            continue;
        }
        let (code, problem) = attempt(&app, &token, &id, action).await;
        assert_eq!(code, 409, "{action} on submitted: {problem}");
        assert_eq!(problem["current_status"], "submitted");
    }
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn routing_is_the_tenants_own_and_managed_with_the_admin_scope() {
    let app = TestApp::spawn_with(Options {
        worker: false,
        ..Default::default()
    })
    .await;
    let (tenant, token) = app.tenant_and_token().await;
    let (_, other_token) = app.tenant_and_token().await;

    // A new alias is matched regardless of case, width and spacing.
    let (_, lakala) = app.get_json(&token, "/v1/routing/providers").await;
    let mut entry = lakala["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["code"] == "lakala")
        .unwrap()
        .clone();
    entry["aliases"]
        .as_array_mut()
        .unwrap()
        .push(json!("考拉 POS"));
    let (status, v) = put(&app, &token, "/v1/routing/providers/lakala", &entry).await;
    assert_eq!(status, 200, "{v}");
    let mut complaint = deposit(&[]);
    complaint["respondent"]["provider"] = json!("考拉ｐｏｓ");
    let (status, preview) = post(&app, &token, "/v1/routing/preview", &complaint).await;
    assert_eq!(status, 200, "{preview}");
    assert_eq!(preview["provider"]["directory"]["code"], "lakala");
    assert_eq!(preview["routing_version"], 2);

    // The other tenant's routing did not change.
    let (_, theirs) = app.get_json(&other_token, "/v1/routing").await;
    assert_eq!(theirs["version"], 1);
    let (_, preview) = post(&app, &other_token, "/v1/routing/preview", &complaint).await;
    assert!(preview["provider"]["directory"].is_null());

    // A channel a ladder uses cannot be removed; an unknown entry is 404.
    let r = app
        .http
        .delete(app.url("/v1/routing/channels/court"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 422);
    let problem: Value = r.json().await.unwrap();
    assert!(problem["errors"][0]["detail"]
        .as_str()
        .unwrap()
        .contains("`court` is not a channel"));
    let r = app
        .http
        .delete(app.url("/v1/routing/rules/no_such_rule"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);

    // Categories come from the routing: intake and preview refuse others.
    let mut unknown = deposit(&[]);
    unknown["category"] = json!("pos_rental");
    let (status, problem) = post(&app, &token, "/v1/routing/preview", &unknown).await;
    assert_eq!(status, 422);
    assert_eq!(problem["errors"][0]["pointer"], "/category");
    let r = app.file(&token, &unknown).await;
    assert_eq!(r.status(), 422);

    // Only tenant admins change routing; a partner app may not even read it.
    let partner = app
        .token(
            &tenant.client_id,
            &tenant.client_secret,
            Some("complaints:write complaints:read"),
        )
        .await;
    let (status, _) = put(
        &app,
        &partner,
        "/v1/routing/rules/x",
        &json!({"when": "true", "ladder": "payment_dispute"}),
    )
    .await;
    assert_eq!(status, 403);
    let (status, _) = app.get_json(&partner, "/v1/routing").await;
    assert_eq!(status, 403);
    let operator = app
        .token(
            &tenant.client_id,
            &tenant.client_secret,
            Some("cases:operate"),
        )
        .await;
    let (status, _) = app.get_json(&operator, "/v1/routing/ladders").await;
    assert_eq!(status, 200);
    let (status, _) = put(
        &app,
        &operator,
        "/v1/routing/rules/x",
        &json!({"when": "true", "ladder": "payment_dispute"}),
    )
    .await;
    assert_eq!(status, 403);
    let (status, _) = app.get_json(&token, "/v1/routing/gadgets").await;
    assert_eq!(status, 404);
    app.stop().await;
}

#[tokio::test]
async fn a_category_added_or_removed_counts_for_the_next_complaint_although_the_api_remembers_the_old_routing(
) {
    let app = TestApp::spawn().await;
    let (_, token) = app.tenant_and_token().await;
    // The API now remembers version 1, whose categories intake checks without a read.
    file(&app, &token, &deposit(&[])).await;

    let mut rental = deposit(&[]);
    rental["category"] = json!("terminal_rental_dispute");
    let r = app.file(&token, &rental).await;
    assert_eq!(r.status(), 422);
    let problem: Value = r.json().await.unwrap();
    assert_eq!(problem["errors"][0]["pointer"], "/category", "{problem}");

    let (status, v) = put(
        &app,
        &token,
        "/v1/routing/categories/terminal_rental_dispute",
        &json!({"name": "终端租赁纠纷"}),
    )
    .await;
    assert_eq!(status, 200, "{v}");
    // Filed against the version that added the category, not refused by the one remembered.
    file(&app, &token, &rental).await;

    let r = app
        .http
        .delete(app.url("/v1/routing/categories/terminal_rental_dispute"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{}", r.status());
    // The API remembers the version with the category; filing finds a newer one in force,
    // reads it and refuses.
    let r = app.file(&token, &rental).await;
    assert_eq!(r.status(), 422);
    let problem: Value = r.json().await.unwrap();
    assert_eq!(problem["errors"][0]["pointer"], "/category", "{problem}");
    let (_, list) = app
        .get_json(&token, "/v1/complaints?category=terminal_rental_dispute")
        .await;
    assert_eq!(list["data"].as_array().map(Vec::len), Some(1), "{list}");
}
