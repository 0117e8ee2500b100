//! Realistic complaints for the cn-pos template: Chinese text, every category, consumers and
//! merchants, and the evidence each category needs so the routing engine routes them instead
//! of holding them in `awaiting_evidence`.

use rand::{rngs::StdRng, seq::SliceRandom, Rng};
use serde_json::{json, Value};

const PROVIDERS: [&str; 14] = [
    "拉卡拉",
    "Lakala",
    "拉卡拉支付股份有限公司",
    "银盛支付",
    "付临门",
    "中付支付",
    "随行付",
    "海科融通",
    "合利宝",
    "乐刷",
    "汇付天下",
    "联动优势",
    "瑞银信",
    "某某信息科技有限公司",
];

const NAMES: [&str; 12] = [
    "张三", "李四", "王芳", "刘伟", "陈静", "杨洋", "赵磊", "黄敏", "周杰", "吴霞", "徐丽", "孙浩",
];

/// GB/T 2260 county-level codes: Pudong, Chaoyang, Nanshan, Xihu, Wuhou, Gulou, Wuchang, Yanta.
const REGIONS: [&str; 8] = [
    "310115", "110105", "440305", "330106", "510107", "320106", "420106", "610113",
];

struct Category {
    code: &'static str,
    /// Relative frequency, roughly what a consumer association's inbox looks like.
    weight: u32,
    summaries: &'static [&'static str],
    detail: &'static str,
    /// Evidence always attached (what the template requires) and sometimes added.
    required: &'static [&'static str],
    optional: &'static [&'static str],
    outcomes: &'static [&'static str],
    amount: (u32, u32),
}

const CATEGORIES: [Category; 10] = [
    Category {
        code: "deposit_not_refunded",
        weight: 25,
        summaries: &[
            "POS机押金{amt}元申请退还被拒",
            "激活返现未到账，押金{amt}元不予退还",
            "退机后押金{amt}元迟迟未退",
        ],
        detail: "办理POS机时业务员承诺交易满三个月即退还押金，现已满足条件，客服以已超过退还期限为由拒绝退还。",
        required: &["payment_receipt"],
        optional: &["contract", "chat_log"],
        outcomes: &["refund"],
        amount: (99, 399),
    },
    Category {
        code: "unauthorized_fee",
        weight: 18,
        summaries: &[
            "未经同意每月扣取服务费{amt}元",
            "流量卡年费{amt}元被自动扣除",
            "刷卡后被额外扣除会员费{amt}元",
        ],
        detail: "本人从未开通任何增值服务，结算时却发现每笔交易被扣除服务费，联系客服称系统默认开通。",
        required: &["transaction_record"],
        optional: &["chat_log", "call_recording"],
        outcomes: &["refund", "apology"],
        amount: (39, 599),
    },
    Category {
        code: "hidden_fee",
        weight: 10,
        summaries: &["办理时未告知的年费{amt}元", "秒到费每笔3元从未告知，累计{amt}元"],
        detail: "签约时业务员只说明费率为0.6%，未告知另有秒到费和年费，合同中也没有相关条款。",
        required: &["transaction_record"],
        optional: &["contract", "advertisement"],
        outcomes: &["refund"],
        amount: (60, 900),
    },
    Category {
        code: "rate_misrepresentation",
        weight: 10,
        summaries: &["宣传费率0.38%实际按0.6%扣费", "费率被无故上调，多扣手续费{amt}元"],
        detail: "宣传单写明费率终身0.38%，使用三个月后费率被调整为0.63%，未收到任何通知。",
        required: &["transaction_record"],
        optional: &["advertisement", "chat_log"],
        outcomes: &["refund", "rate_restored"],
        amount: (120, 3000),
    },
    Category {
        code: "settlement_delay",
        weight: 10,
        summaries: &["交易款{amt}元超过T+1未到账", "结算款{amt}元被延迟到账七天"],
        detail: "商户交易资金按约定应次日到账，至今已超过五个工作日仍未结算，客服称正在风控审核。",
        required: &["transaction_record"],
        optional: &["contract"],
        outcomes: &["settlement"],
        amount: (800, 50000),
    },
    Category {
        code: "account_frozen",
        weight: 7,
        summaries: &["商户账户被冻结，资金{amt}元无法提现", "无故冻结结算账户"],
        detail: "收到短信通知商户号因交易异常被冻结，未说明具体原因，提交资料后仍未解冻。",
        required: &["freeze_notice"],
        optional: &["transaction_record", "identity_document"],
        outcomes: &["unfreeze"],
        amount: (1000, 80000),
    },
    Category {
        code: "unauthorized_transaction",
        weight: 6,
        summaries: &["银行卡被盗刷{amt}元", "本人未操作却发生POS消费{amt}元"],
        detail: "凌晨收到扣款短信，本人当时在家且银行卡未离身，该笔交易通过某POS机完成，卡号6222021234567890123。",
        required: &["transaction_record"],
        optional: &["police_report"],
        outcomes: &["refund", "investigation"],
        amount: (500, 20000),
    },
    Category {
        code: "device_fault",
        weight: 5,
        summaries: &["POS机无法开机，售后拒绝维修", "新机刷卡频繁失败"],
        detail: "机器使用不到一个月即无法读卡，联系售后要求寄回检测，至今无人处理。",
        required: &["device_photo"],
        optional: &["payment_receipt"],
        outcomes: &["repair", "replacement"],
        amount: (0, 0),
    },
    Category {
        code: "service_quality",
        weight: 5,
        summaries: &["客服电话长期无人接听", "业务员态度恶劣并拒绝处理"],
        detail: "多次拨打客服热线均提示排队，在线客服只回复模板话术，问题一个月未解决。",
        required: &["chat_log"],
        optional: &["call_recording"],
        outcomes: &["apology"],
        amount: (0, 0),
    },
    Category {
        code: "other",
        weight: 4,
        summaries: &["个人信息被用于办理POS机", "收到不明POS机并被要求激活"],
        detail: "从未申请办理POS机，却收到快递和激活短信，担心个人信息被泄露。",
        required: &["other"],
        optional: &[],
        outcomes: &["investigation"],
        amount: (0, 0),
    },
];

fn hex64(rng: &mut StdRng) -> String {
    (0..32)
        .map(|_| format!("{:02x}", rng.gen::<u8>()))
        .collect()
}

fn pick<'a>(rng: &mut StdRng, items: &[&'a str]) -> &'a str {
    items.choose(rng).copied().unwrap_or("")
}

/// One complaint body; `external_ref` makes it unique per partner client.
pub fn complaint(rng: &mut StdRng, external_ref: &str) -> Value {
    let total: u32 = CATEGORIES.iter().map(|c| c.weight).sum();
    let mut roll = rng.gen_range(0..total);
    let mut cat = &CATEGORIES[0];
    for c in &CATEGORIES {
        if roll < c.weight {
            cat = c;
            break;
        }
        roll -= c.weight;
    }
    // Merchants file the settlement and freezing complaints; a third of the others too.
    let merchant = matches!(cat.code, "settlement_delay" | "account_frozen") || rng.gen_bool(0.3);
    let amount = if cat.amount.1 > 0 {
        rng.gen_range(cat.amount.0..=cat.amount.1)
    } else {
        0
    };
    let summary = pick(rng, cat.summaries).replace("{amt}", &amount.to_string());
    let today = chrono::Utc::now().date_naive();
    // Mostly recent; one in twenty older than three years (12315 and the courts refuse those).
    let age_days = if rng.gen_bool(0.05) {
        rng.gen_range(1100..1500)
    } else {
        rng.gen_range(5..400)
    };
    let occurred = today - chrono::Days::new(age_days);
    let mut evidence: Vec<Value> = cat
        .required
        .iter()
        .map(|k| json!({"kind": k, "description": evidence_text(k), "sha256": hex64(rng)}))
        .collect();
    for k in cat.optional {
        if rng.gen_bool(0.4) {
            evidence
                .push(json!({"kind": k, "description": evidence_text(k), "sha256": hex64(rng)}));
        }
    }
    let mut prior = Vec::new();
    if rng.gen_bool(0.4) {
        let on = occurred + chrono::Days::new(rng.gen_range(1..4));
        prior.push(json!({
            "channel": "provider_service",
            "on": on.min(today).to_string(),
            "reference": format!("工单 {}{:05}", pick(rng, &["A", "B", "KF"]), rng.gen_range(0..100_000)),
            "outcome": pick(rng, &["refused", "no_response"]),
        }));
    }
    let name = pick(rng, &NAMES);
    let mut body = json!({
        "external_ref": external_ref,
        "complainant": {
            "name": if merchant { format!("{name}（个体商户）") } else { name.to_owned() },
            "phone": format!("13{:09}", rng.gen_range(0..1_000_000_000u32)),
            "kind": if merchant { "merchant" } else { "consumer" },
            "region": pick(rng, &REGIONS),
        },
        "respondent": {
            "provider": pick(rng, &PROVIDERS),
            "merchant_no": format!("8222{:011}", rng.gen_range(0..100_000_000_000u64)),
            "terminal_sn": format!("N5NL{:07}", rng.gen_range(0..10_000_000u32)),
        },
        "category": cat.code,
        "summary": summary,
        "description": format!("{}{}年{}月起至今多次沟通无果，请求协助处理。", cat.detail, occurred.format("%Y"), occurred.format("%-m")),
        "occurred_on": occurred.to_string(),
        "desired_outcomes": cat.outcomes,
        "evidence": evidence,
        "prior_contacts": prior,
    });
    if amount > 0 {
        body["amount_claimed"] = json!({"value": format!("{amount}.00"), "currency": "CNY"});
    }
    body
}

fn evidence_text(kind: &str) -> &'static str {
    match kind {
        "payment_receipt" => "押金转账记录截图",
        "transaction_record" => "商户后台交易明细",
        "contract" => "签约合同照片",
        "chat_log" => "与客服的聊天记录",
        "call_recording" => "客服通话录音",
        "advertisement" => "业务员发送的宣传单",
        "freeze_notice" => "冻结通知短信截图",
        "police_report" => "报警回执",
        "device_photo" => "故障机器照片",
        "identity_document" => "营业执照",
        _ => "其他材料",
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use rand::SeedableRng;

    use super::*;

    #[test]
    fn every_generated_complaint_passes_the_api_validation() {
        let mut rng = StdRng::seed_from_u64(7);
        let today = chrono::Utc::now().date_naive();
        for i in 0..500 {
            let body = complaint(&mut rng, &format!("t-{i}"));
            let parsed = redress_shared::domain::ComplaintInput::from_json(&body, today);
            assert!(parsed.is_ok(), "{body}: {parsed:?}");
        }
    }
}
