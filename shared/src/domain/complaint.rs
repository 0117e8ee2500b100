//! A complaint as filed (input, validated field by field) and as shown (view).

use chrono::{DateTime, NaiveDate, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::{
    masking::{mask_pans, mask_phone},
    validation::{escape_token, FieldError},
    Status,
};

/// Evidence kinds of the contract's vocabulary.
pub const EVIDENCE_KINDS: [&str; 11] = [
    "contract",
    "payment_receipt",
    "transaction_record",
    "call_recording",
    "chat_log",
    "advertisement",
    "freeze_notice",
    "police_report",
    "device_photo",
    "identity_document",
    "other",
];

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Complainant {
    #[schema(
        min_length = 1,
        max_length = 100,
        pattern = r"^[^\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f-\u009f]*[^\s\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f-\u009f][^\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f-\u009f]*$"
    )]
    pub name: String,
    /// 7 to 15 digits, with `+`, `-`, spaces and parentheses allowed between them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(max_length = 20, pattern = r"^[+\- ()]*([0-9][+\- ()]*){7,15}$")]
    pub phone: Option<String>,
    /// `consumer` or `merchant`.
    #[schema(pattern = r"^(consumer|merchant)$")]
    pub kind: String,
    /// 6-digit administrative division code (GB/T 2260).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(pattern = r"^[0-9]{6}$")]
    pub region: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Respondent {
    /// Provider as written by the complainant; matched against the tenant's directory.
    #[schema(
        min_length = 1,
        max_length = 200,
        pattern = r"^[^\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f-\u009f]*[^\s\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f-\u009f][^\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f-\u009f]*$"
    )]
    pub provider: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(pattern = r"^[A-Za-z0-9-]{1,64}$")]
    pub merchant_no: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(pattern = r"^[A-Za-z0-9-]{1,64}$")]
    pub terminal_sn: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Money {
    /// Decimal string, e.g. `"299.00"`; never a float.
    #[schema(value_type = String, example = "299.00", pattern = r"^[0-9]{1,13}(\.[0-9]{1,4})?$")]
    pub value: Decimal,
    /// ISO 4217 code.
    #[schema(pattern = r"^[A-Z]{3}$")]
    pub currency: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Evidence {
    #[schema(
        pattern = r"^(contract|payment_receipt|transaction_record|call_recording|chat_log|advertisement|freeze_notice|police_report|device_photo|identity_document|other)$"
    )]
    pub kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(
        min_length = 1,
        max_length = 500,
        pattern = r"^[^\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f-\u009f]*[^\s\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f-\u009f][^\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f-\u009f]*$"
    )]
    pub description: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(pattern = r"^[0-9A-Fa-f]{64}$")]
    pub sha256: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct PriorContact {
    /// Channel code already tried, e.g. `provider_service`.
    #[schema(pattern = r"^[a-z0-9_]{1,64}$")]
    pub channel: String,
    /// Not in the future.
    #[schema(pattern = r"^(1[0-9]{3}|20[01][0-9]|202[0-5])-")]
    pub on: NaiveDate,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(
        min_length = 1,
        max_length = 200,
        pattern = r"^[^\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f-\u009f]*[^\s\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f-\u009f][^\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f-\u009f]*$"
    )]
    pub reference: Option<String>,
    /// What came of it, e.g. `refused`, `no_response`, `unsatisfactory`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(pattern = r"^[a-z0-9_]{1,64}$")]
    pub outcome: Option<String>,
}

/// The body of `POST /v1/complaints`, after validation and PAN masking.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ComplaintInput {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(
        min_length = 1,
        max_length = 128,
        pattern = r"^[^\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f-\u009f]*[^\s\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f-\u009f][^\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f-\u009f]*$"
    )]
    pub external_ref: Option<String>,
    pub complainant: Complainant,
    pub respondent: Respondent,
    #[schema(pattern = r"^[a-z0-9_]{1,64}$")]
    pub category: String,
    #[schema(
        min_length = 1,
        max_length = 200,
        pattern = r"^[^\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f-\u009f]*[^\s\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f-\u009f][^\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f-\u009f]*$"
    )]
    pub summary: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(
        min_length = 1,
        max_length = 10000,
        pattern = r"^[^\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f-\u009f]*[^\s\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f-\u009f][^\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f-\u009f]*$"
    )]
    pub description: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub amount_claimed: Option<Money>,
    /// Not in the future.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(pattern = r"^(1[0-9]{3}|20[01][0-9]|202[0-5])-")]
    pub occurred_on: Option<NaiveDate>,
    #[serde(default)]
    #[schema(max_items = 10)]
    pub desired_outcomes: Vec<String>,
    #[serde(default)]
    #[schema(max_items = 50)]
    pub evidence: Vec<Evidence>,
    #[serde(default)]
    #[schema(max_items = 20)]
    pub prior_contacts: Vec<PriorContact>,
}

const TOP_LEVEL: [&str; 11] = [
    "external_ref",
    "complainant",
    "respondent",
    "category",
    "summary",
    "description",
    "amount_claimed",
    "occurred_on",
    "desired_outcomes",
    "evidence",
    "prior_contacts",
];

/// Collects every problem with a body in one pass, so a partner fixes them all at once.
struct Checker {
    errors: Vec<FieldError>,
}

impl Checker {
    fn fail(&mut self, pointer: &str, detail: impl Into<String>) {
        self.errors.push(FieldError::new(pointer, detail));
    }

    fn object<'a>(
        &mut self,
        v: Option<&'a Value>,
        pointer: &str,
        required: bool,
    ) -> Option<&'a Map<String, Value>> {
        match v {
            None | Some(Value::Null) => {
                if required {
                    self.fail(pointer, "is required");
                }
                None
            }
            Some(Value::Object(m)) => Some(m),
            Some(_) => {
                self.fail(pointer, "must be an object");
                None
            }
        }
    }

    fn unknown_fields(&mut self, m: &Map<String, Value>, pointer: &str, allowed: &[&str]) {
        for key in m.keys() {
            if !allowed.contains(&key.as_str()) {
                self.fail(
                    &format!("{pointer}/{}", escape_token(key)),
                    "is not a known field",
                );
            }
        }
    }

    /// A string of 1..=max characters (after trimming), or None with an error recorded.
    fn string(
        &mut self,
        v: Option<&Value>,
        pointer: &str,
        required: bool,
        max: usize,
    ) -> Option<String> {
        match v {
            None | Some(Value::Null) => {
                if required {
                    self.fail(pointer, "is required");
                }
                None
            }
            Some(Value::String(s)) => {
                let t = s.trim();
                if t.is_empty() {
                    self.fail(pointer, "must not be empty");
                    None
                } else if t.chars().count() > max {
                    self.fail(pointer, format!("must be at most {max} characters"));
                    None
                } else if t
                    .chars()
                    .any(|c| c.is_control() && c != '\n' && c != '\r' && c != '\t')
                {
                    self.fail(pointer, "must not contain control characters");
                    None
                } else {
                    Some(t.to_owned())
                }
            }
            Some(_) => {
                self.fail(pointer, "must be a string");
                None
            }
        }
    }

    fn slug(&mut self, v: Option<&Value>, pointer: &str, required: bool) -> Option<String> {
        let s = self.string(v, pointer, required, 64)?;
        if s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
        {
            Some(s)
        } else {
            self.fail(pointer, "must use only lowercase letters, digits and '_'");
            None
        }
    }

    fn date(&mut self, v: Option<&Value>, pointer: &str, required: bool) -> Option<NaiveDate> {
        let s = self.string(v, pointer, required, 10)?;
        match NaiveDate::parse_from_str(&s, "%Y-%m-%d") {
            Ok(d) => Some(d),
            Err(_) => {
                self.fail(pointer, "must be a date as YYYY-MM-DD");
                None
            }
        }
    }

    fn array<'a>(&mut self, v: Option<&'a Value>, pointer: &str, max: usize) -> &'a [Value] {
        match v {
            None | Some(Value::Null) => &[],
            Some(Value::Array(items)) if items.len() <= max => items,
            Some(Value::Array(_)) => {
                self.fail(pointer, format!("must have at most {max} items"));
                &[]
            }
            Some(_) => {
                self.fail(pointer, "must be an array");
                &[]
            }
        }
    }
}

impl ComplaintInput {
    /// Checks a request body against the contract. `today` bounds `occurred_on` (an incident
    /// cannot lie in the future; one day of slack covers time zones). Free text comes back
    /// with card numbers masked.
    pub fn from_json(body: &Value, today: NaiveDate) -> Result<ComplaintInput, Vec<FieldError>> {
        let mut c = Checker { errors: Vec::new() };
        let Some(root) = body.as_object() else {
            return Err(vec![FieldError::new("", "the body must be a JSON object")]);
        };
        c.unknown_fields(root, "", &TOP_LEVEL);

        let external_ref = c.string(root.get("external_ref"), "/external_ref", false, 128);

        let complainant = c
            .object(root.get("complainant"), "/complainant", true)
            .map(|m| {
                c.unknown_fields(m, "/complainant", &["name", "phone", "kind", "region"]);
                let name = c.string(m.get("name"), "/complainant/name", true, 100);
                let phone = c.string(m.get("phone"), "/complainant/phone", false, 20);
                if let Some(p) = &phone {
                    let digits = p.chars().filter(|ch| ch.is_ascii_digit()).count();
                    let allowed = p
                        .chars()
                        .all(|ch| ch.is_ascii_digit() || "+- ()".contains(ch));
                    if !allowed || !(7..=15).contains(&digits) {
                        c.fail(
                            "/complainant/phone",
                            "must be a phone number of 7 to 15 digits",
                        );
                    }
                }
                let kind = c.string(m.get("kind"), "/complainant/kind", true, 16);
                if let Some(k) = &kind {
                    if k != "consumer" && k != "merchant" {
                        c.fail("/complainant/kind", "must be `consumer` or `merchant`");
                    }
                }
                let region = c.string(m.get("region"), "/complainant/region", false, 6);
                if let Some(r) = &region {
                    if r.len() != 6 || !r.bytes().all(|b| b.is_ascii_digit()) {
                        c.fail(
                            "/complainant/region",
                            "must be a 6-digit administrative division code (GB/T 2260)",
                        );
                    }
                }
                (name, phone, kind, region)
            });

        let respondent = c
            .object(root.get("respondent"), "/respondent", true)
            .map(|m| {
                c.unknown_fields(
                    m,
                    "/respondent",
                    &["provider", "merchant_no", "terminal_sn"],
                );
                let provider = c.string(m.get("provider"), "/respondent/provider", true, 200);
                let merchant_no =
                    c.string(m.get("merchant_no"), "/respondent/merchant_no", false, 64);
                let terminal_sn =
                    c.string(m.get("terminal_sn"), "/respondent/terminal_sn", false, 64);
                for (value, pointer) in [
                    (&merchant_no, "/respondent/merchant_no"),
                    (&terminal_sn, "/respondent/terminal_sn"),
                ] {
                    if let Some(v) = value {
                        if !v.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
                            c.fail(pointer, "must use only letters, digits and '-'");
                        }
                    }
                }
                (provider, merchant_no, terminal_sn)
            });

        let category = c.slug(root.get("category"), "/category", true);
        let summary = c.string(root.get("summary"), "/summary", true, 200);
        let description = c.string(root.get("description"), "/description", false, 10_000);

        let amount_claimed = c
            .object(root.get("amount_claimed"), "/amount_claimed", false)
            .and_then(|m| {
                c.unknown_fields(m, "/amount_claimed", &["value", "currency"]);
                let value = match m.get("value") {
                    Some(Value::String(s)) => match s.parse::<Decimal>() {
                        Ok(d) if d.is_sign_negative() => {
                            c.fail("/amount_claimed/value", "must not be negative");
                            None
                        }
                        Ok(d) if d.scale() > 4 => {
                            c.fail(
                                "/amount_claimed/value",
                                "must have at most 4 decimal places",
                            );
                            None
                        }
                        Ok(d) if d > Decimal::from(1_000_000_000_000i64) => {
                            c.fail("/amount_claimed/value", "is too large");
                            None
                        }
                        Ok(d) => Some(d),
                        Err(_) => {
                            c.fail(
                                "/amount_claimed/value",
                                "must be a decimal string such as \"299.00\"",
                            );
                            None
                        }
                    },
                    Some(Value::Number(_)) => {
                        c.fail(
                            "/amount_claimed/value",
                            "must be a decimal string such as \"299.00\", not a number",
                        );
                        None
                    }
                    None | Some(Value::Null) => {
                        c.fail("/amount_claimed/value", "is required");
                        None
                    }
                    Some(_) => {
                        c.fail("/amount_claimed/value", "must be a decimal string");
                        None
                    }
                };
                let currency = c.string(m.get("currency"), "/amount_claimed/currency", true, 3);
                if let Some(cur) = &currency {
                    if cur.len() != 3 || !cur.bytes().all(|b| b.is_ascii_uppercase()) {
                        c.fail(
                            "/amount_claimed/currency",
                            "must be an ISO 4217 code such as CNY",
                        );
                    }
                }
                Some(Money {
                    value: value?,
                    currency: currency?,
                })
            });

        let occurred_on = c.date(root.get("occurred_on"), "/occurred_on", false);
        if let Some(d) = occurred_on {
            if d > today + chrono::Days::new(1) {
                c.fail("/occurred_on", "must not be in the future");
            }
        }

        let mut desired_outcomes = Vec::new();
        for (i, v) in c
            .array(root.get("desired_outcomes"), "/desired_outcomes", 10)
            .iter()
            .enumerate()
        {
            if let Some(s) = c.slug(Some(v), &format!("/desired_outcomes/{i}"), true) {
                desired_outcomes.push(s);
            }
        }

        let mut evidence = Vec::new();
        for (i, v) in c
            .array(root.get("evidence"), "/evidence", 50)
            .iter()
            .enumerate()
        {
            let p = format!("/evidence/{i}");
            if let Some(m) = c.object(Some(v), &p, true) {
                c.unknown_fields(m, &p, &["kind", "description", "sha256"]);
                let kind = c.slug(m.get("kind"), &format!("{p}/kind"), true);
                if let Some(k) = &kind {
                    if !EVIDENCE_KINDS.contains(&k.as_str()) {
                        c.fail(
                            &format!("{p}/kind"),
                            format!("must be one of: {}", EVIDENCE_KINDS.join(", ")),
                        );
                    }
                }
                let description = c.string(
                    m.get("description"),
                    &format!("{p}/description"),
                    false,
                    500,
                );
                let sha256 = c.string(m.get("sha256"), &format!("{p}/sha256"), false, 64);
                if let Some(h) = &sha256 {
                    if h.len() != 64 || !h.bytes().all(|b| b.is_ascii_hexdigit()) {
                        c.fail(&format!("{p}/sha256"), "must be 64 hexadecimal characters");
                    }
                }
                if let Some(kind) = kind {
                    evidence.push(Evidence {
                        kind,
                        description: description.map(|d| mask_pans(&d)),
                        sha256: sha256.map(|h| h.to_ascii_lowercase()),
                    });
                }
            }
        }

        let mut prior_contacts = Vec::new();
        for (i, v) in c
            .array(root.get("prior_contacts"), "/prior_contacts", 20)
            .iter()
            .enumerate()
        {
            let p = format!("/prior_contacts/{i}");
            if let Some(m) = c.object(Some(v), &p, true) {
                c.unknown_fields(m, &p, &["channel", "on", "reference", "outcome"]);
                let channel = c.slug(m.get("channel"), &format!("{p}/channel"), true);
                let on = c.date(m.get("on"), &format!("{p}/on"), true);
                if let Some(d) = on {
                    if d > today + chrono::Days::new(1) {
                        c.fail(&format!("{p}/on"), "must not be in the future");
                    }
                }
                let reference = c.string(m.get("reference"), &format!("{p}/reference"), false, 200);
                let outcome = c.slug(m.get("outcome"), &format!("{p}/outcome"), false);
                if let (Some(channel), Some(on)) = (channel, on) {
                    prior_contacts.push(PriorContact {
                        channel,
                        on,
                        reference: reference.map(|r| mask_pans(&r)),
                        outcome,
                    });
                }
            }
        }

        if !c.errors.is_empty() {
            return Err(c.errors);
        }
        // Every required part was present and valid, or an error was recorded above.
        let (
            Some((Some(name), phone, Some(kind), region)),
            Some((Some(provider), merchant_no, terminal_sn)),
            Some(category),
            Some(summary),
        ) = (complainant, respondent, category, summary)
        else {
            return Err(vec![FieldError::new("", "the body is incomplete")]);
        };
        Ok(ComplaintInput {
            external_ref,
            complainant: Complainant {
                name,
                phone,
                kind,
                region,
            },
            respondent: Respondent {
                provider,
                merchant_no,
                terminal_sn,
            },
            category,
            summary: mask_pans(&summary),
            description: description.map(|d| mask_pans(&d)),
            amount_claimed,
            occurred_on,
            desired_outcomes,
            evidence,
            prior_contacts,
        })
    }
}

/// An active rung: the channel now handling the case.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Rung {
    /// Channel code, e.g. `provider_service`.
    pub channel: String,
    pub since: DateTime<Utc>,
    /// `main` for the ladder, or the name of a parallel track.
    #[serde(default = "main_track")]
    pub track: String,
    #[serde(default)]
    #[schema(value_type = Vec<Object>)]
    pub deadlines: Vec<Value>,
}

fn main_track() -> String {
    "main".to_owned()
}

#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct Tracking {
    /// Sequence number of the latest event.
    pub last_sequence: i32,
    pub events_url: String,
}

/// A complaint as `GET /v1/complaints/{id}` shows it.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct ComplaintView {
    #[schema(example = "cmp_0192f0c2a1b27c5e8d1f3a4b5c6d7e8f")]
    pub id: String,
    pub status: Status,
    #[serde(flatten)]
    pub input: ComplaintInput,
    pub current: Vec<Rung>,
    pub missing_evidence: Vec<String>,
    pub tracking: Tracking,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl ComplaintView {
    /// The same view with the complainant's phone masked, for list views and webhooks.
    pub fn masked(mut self) -> Self {
        if let Some(p) = &self.input.complainant.phone {
            self.input.complainant.phone = Some(mask_phone(p));
        }
        self
    }
}

/// One entry of a complaint's history.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct EventView {
    pub id: String,
    pub sequence: i32,
    #[serde(rename = "type")]
    pub event_type: String,
    pub at: DateTime<Utc>,
    pub actor: String,
    #[schema(value_type = Object)]
    pub data: Value,
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use serde_json::json;

    fn today() -> NaiveDate {
        NaiveDate::from_ymd_opt(2026, 11, 20).unwrap()
    }

    fn example() -> Value {
        json!({
            "external_ref": "app-20261120-0042",
            "complainant": {"name": "张三", "phone": "13800138000", "kind": "consumer", "region": "310115"},
            "respondent": {"provider": "拉卡拉", "merchant_no": "822290070111234", "terminal_sn": "N5NL0123456"},
            "category": "deposit_not_refunded",
            "summary": "POS机押金299元申请退还被拒",
            "description": "卡号 6222021234567890128 被扣押金",
            "amount_claimed": {"value": "299.00", "currency": "CNY"},
            "occurred_on": "2026-09-03",
            "desired_outcomes": ["refund"],
            "evidence": [{"kind": "payment_receipt", "description": "押金转账记录", "sha256": "a".repeat(64)}],
            "prior_contacts": [{"channel": "provider_service", "on": "2026-10-10", "reference": "工单 A123", "outcome": "refused"}]
        })
    }

    #[test]
    fn the_contract_example_is_accepted_with_its_card_number_masked() {
        let input = ComplaintInput::from_json(&example(), today()).unwrap();
        assert_eq!(
            input.description.as_deref(),
            Some("卡号 622202*********0128 被扣押金")
        );
        assert_eq!(input.amount_claimed.unwrap().value.to_string(), "299.00");
    }

    #[test]
    fn every_bad_field_is_named_by_its_json_pointer() {
        let mut body = example();
        body["complainant"]["kind"] = json!("company");
        body["complainant"]["phone"] = json!("call me");
        body["amount_claimed"]["value"] = json!(299.0);
        body["evidence"][0]["kind"] = json!("selfie");
        body["occurred_on"] = json!("2026-13-01");
        body["surprise"] = json!(1);
        body.as_object_mut().unwrap().remove("summary");
        let errors = ComplaintInput::from_json(&body, today()).unwrap_err();
        let pointers: Vec<&str> = errors.iter().map(|e| e.pointer.as_str()).collect();
        for expected in [
            "/complainant/kind",
            "/complainant/phone",
            "/amount_claimed/value",
            "/evidence/0/kind",
            "/occurred_on",
            "/surprise",
            "/summary",
        ] {
            assert!(
                pointers.contains(&expected),
                "{expected} missing from {pointers:?}"
            );
        }
    }

    #[test]
    fn an_incident_in_the_future_is_refused() {
        let mut body = example();
        body["occurred_on"] = json!("2027-01-01");
        let errors = ComplaintInput::from_json(&body, today()).unwrap_err();
        assert_eq!(errors[0].pointer, "/occurred_on");
    }

    #[test]
    fn a_body_that_is_not_an_object_is_refused_at_the_root() {
        let errors = ComplaintInput::from_json(&json!([1, 2]), today()).unwrap_err();
        assert_eq!(errors[0].pointer, "");
    }
}
