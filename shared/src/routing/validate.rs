//! Checking routing data before it is saved. Every problem is reported at once, each named
//! by a JSON pointer into the document; a condition's problem also names its rule (or
//! ladder and rung) and the line and column inside the expression. Nothing invalid is
//! ever stored, so the version in force stays in force.

use std::collections::{BTreeMap, BTreeSet};

use super::{
    expr::Condition,
    model::{RoutingData, DELIVERY_METHODS, PROVIDER_KINDS},
    providers::fold,
};
use crate::domain::{complaint::EVIDENCE_KINDS, FieldError};

/// Routing data whose conditions are compiled, ready for the engine.
#[derive(Debug)]
pub struct CompiledRouting {
    /// The version this data was stored as (0 for data not stored, e.g. while checking).
    pub version: i32,
    pub data: RoutingData,
    /// Same order as `data.rules`.
    pub(crate) rule_conditions: Vec<Condition>,
    /// `[ladder][rung][check]`, same order as `data.ladders`.
    pub(crate) rung_checks: Vec<Vec<Vec<Condition>>>,
}

/// Size limits: generous for a national catalogue, small enough that one document stays
/// cheap to load and check.
pub const MAX_CHANNELS: usize = 200;
pub const MAX_PROVIDERS: usize = 5000;
pub const MAX_CATEGORIES: usize = 200;
pub const MAX_LADDERS: usize = 200;
pub const MAX_RUNGS: usize = 30;
pub const MAX_RULES: usize = 500;
pub const MAX_ALIASES: usize = 50;

pub fn is_code(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
        && s.as_bytes()[0].is_ascii_lowercase()
}

struct Report {
    errors: Vec<FieldError>,
}

impl Report {
    fn fail(&mut self, pointer: String, detail: impl Into<String>) {
        self.errors.push(FieldError::new(pointer, detail));
    }

    fn code(&mut self, pointer: String, value: &str) {
        if !is_code(value) {
            self.fail(
                pointer,
                "must be 1 to 64 characters: a lowercase letter, then lowercase letters, digits or '_'",
            );
        }
    }

    fn text(&mut self, pointer: String, value: &str, max: usize) {
        let n = value.trim().chars().count();
        if n == 0 {
            self.fail(pointer, "must not be empty");
        } else if n > max {
            self.fail(pointer, format!("must be at most {max} characters"));
        }
    }

    fn opt_text(&mut self, pointer: String, value: Option<&str>, max: usize) {
        if let Some(v) = value {
            self.text(pointer, v, max);
        }
    }

    fn limit(&mut self, pointer: &str, len: usize, max: usize) {
        if len > max {
            self.fail(pointer.to_owned(), format!("must have at most {max} items"));
        }
    }

    fn unique<'a>(&mut self, pointer: &str, key: &str, codes: impl Iterator<Item = &'a str>) {
        let mut seen = BTreeSet::new();
        for (i, code) in codes.enumerate() {
            if !seen.insert(code) {
                self.fail(
                    format!("{pointer}/{i}/{key}"),
                    format!("`{code}` is used by an earlier entry"),
                );
            }
        }
    }

    fn condition(&mut self, pointer: String, whose: &str, source: &str) -> Option<Condition> {
        match Condition::compile(source) {
            Ok(c) => Some(c),
            Err(e) => {
                self.fail(pointer, format!("{whose}: {e}"));
                None
            }
        }
    }
}

/// Checks `data` and compiles its conditions.
pub fn validate(data: RoutingData) -> Result<CompiledRouting, Vec<FieldError>> {
    let mut r = Report { errors: Vec::new() };
    r.limit("/channels", data.channels.len(), MAX_CHANNELS);
    r.limit("/providers", data.providers.len(), MAX_PROVIDERS);
    r.limit("/categories", data.categories.len(), MAX_CATEGORIES);
    r.limit("/ladders", data.ladders.len(), MAX_LADDERS);
    r.limit("/rules", data.rules.len(), MAX_RULES);

    for (i, c) in data.channels.iter().enumerate() {
        let p = format!("/channels/{i}");
        r.code(format!("{p}/code"), &c.code);
        r.text(format!("{p}/name"), &c.name, 200);
        r.opt_text(format!("{p}/description"), c.description.as_deref(), 2000);
        if !DELIVERY_METHODS.contains(&c.delivery.method.as_str()) {
            r.fail(
                format!("{p}/delivery/method"),
                format!("must be one of: {}", DELIVERY_METHODS.join(", ")),
            );
        }
        r.opt_text(
            format!("{p}/delivery/target"),
            c.delivery.target.as_deref(),
            500,
        );
        r.opt_text(
            format!("{p}/delivery/instructions"),
            c.delivery.instructions.as_deref(),
            2000,
        );
        if let Some(s) = &c.sla_policy {
            r.code(format!("{p}/sla_policy"), s);
        }
        for (field, value) in [
            ("phone", &c.contact.phone),
            ("url", &c.contact.url),
            ("email", &c.contact.email),
            ("address", &c.contact.address),
            ("hours", &c.contact.hours),
        ] {
            r.opt_text(format!("{p}/contact/{field}"), value.as_deref(), 500);
        }
        for (j, s) in c.sources.iter().enumerate() {
            r.text(format!("{p}/sources/{j}"), s, 500);
        }
    }
    r.unique(
        "/channels",
        "code",
        data.channels.iter().map(|c| c.code.as_str()),
    );

    // Every folded name or alias may name one provider only, or a complaint could match
    // two of them.
    let mut labels: BTreeMap<String, String> = BTreeMap::new();
    for (i, pr) in data.providers.iter().enumerate() {
        let p = format!("/providers/{i}");
        r.code(format!("{p}/code"), &pr.code);
        r.text(format!("{p}/name"), &pr.name, 200);
        if !PROVIDER_KINDS.contains(&pr.kind.as_str()) {
            r.fail(
                format!("{p}/kind"),
                format!("must be one of: {}", PROVIDER_KINDS.join(", ")),
            );
        }
        r.limit(&format!("{p}/aliases"), pr.aliases.len(), MAX_ALIASES);
        for (j, label) in std::iter::once(&pr.name)
            .chain(pr.aliases.iter())
            .enumerate()
        {
            let pointer = if j == 0 {
                format!("{p}/name")
            } else {
                format!("{p}/aliases/{}", j - 1)
            };
            if j > 0 {
                r.text(pointer.clone(), label, 200);
            }
            let key = fold(label);
            if key.is_empty() {
                continue;
            }
            match labels.get(&key) {
                Some(owner) if owner != &pr.code => r.fail(
                    pointer,
                    format!("`{label}` already names provider `{owner}`"),
                ),
                _ => {
                    labels.insert(key, pr.code.clone());
                }
            }
        }
        r.opt_text(format!("{p}/hotline"), pr.hotline.as_deref(), 50);
        r.opt_text(format!("{p}/notes"), pr.notes.as_deref(), 2000);
        if let Some(inst) = &pr.institution {
            match data.provider(inst) {
                None => r.fail(
                    format!("{p}/institution"),
                    format!("`{inst}` is not a provider of the directory"),
                ),
                Some(i) if i.code == pr.code => {
                    r.fail(format!("{p}/institution"), "must name another provider")
                }
                Some(i) if i.kind != "payment_institution" && i.kind != "bank" => r.fail(
                    format!("{p}/institution"),
                    format!(
                        "`{inst}` is a `{}`; an agent sells for a licensed payment institution or a bank",
                        i.kind
                    ),
                ),
                Some(_) => {}
            }
        }
    }
    r.unique(
        "/providers",
        "code",
        data.providers.iter().map(|c| c.code.as_str()),
    );

    for (i, c) in data.categories.iter().enumerate() {
        let p = format!("/categories/{i}");
        r.code(format!("{p}/code"), &c.code);
        r.text(format!("{p}/name"), &c.name, 200);
        r.opt_text(format!("{p}/description"), c.description.as_deref(), 2000);
        for (field, kinds) in [
            ("required_evidence", &c.required_evidence),
            ("recommended_evidence", &c.recommended_evidence),
        ] {
            for (j, k) in kinds.iter().enumerate() {
                if !EVIDENCE_KINDS.contains(&k.as_str()) {
                    r.fail(
                        format!("{p}/{field}/{j}"),
                        format!("must be one of: {}", EVIDENCE_KINDS.join(", ")),
                    );
                }
            }
        }
        for (j, k) in c.recommended_evidence.iter().enumerate() {
            if c.required_evidence.contains(k) {
                r.fail(
                    format!("{p}/recommended_evidence/{j}"),
                    format!("`{k}` is already required"),
                );
            }
        }
    }
    r.unique(
        "/categories",
        "code",
        data.categories.iter().map(|c| c.code.as_str()),
    );

    let mut rung_checks = Vec::with_capacity(data.ladders.len());
    for (i, l) in data.ladders.iter().enumerate() {
        let p = format!("/ladders/{i}");
        r.code(format!("{p}/code"), &l.code);
        r.text(format!("{p}/name"), &l.name, 200);
        r.opt_text(format!("{p}/description"), l.description.as_deref(), 2000);
        if l.rungs.is_empty() {
            r.fail(format!("{p}/rungs"), "a ladder needs at least one rung");
        }
        r.limit(&format!("{p}/rungs"), l.rungs.len(), MAX_RUNGS);
        let mut ladder_checks = Vec::with_capacity(l.rungs.len());
        for (j, rung) in l.rungs.iter().enumerate() {
            let rp = format!("{p}/rungs/{j}");
            if data.channel(&rung.channel).is_none() {
                r.fail(
                    format!("{rp}/channel"),
                    format!("`{}` is not a channel of this tenant", rung.channel),
                );
            }
            if l.rungs[..j].iter().any(|o| o.channel == rung.channel) {
                r.fail(
                    format!("{rp}/channel"),
                    format!("`{}` is already a rung of this ladder", rung.channel),
                );
            }
            if let Some(s) = &rung.sla_policy {
                r.code(format!("{rp}/sla_policy"), s);
            }
            let mut checks = Vec::with_capacity(rung.eligibility.len());
            for (k, check) in rung.eligibility.iter().enumerate() {
                let cp = format!("{rp}/eligibility/{k}");
                r.text(format!("{cp}/reason"), &check.reason, 500);
                let whose = format!(
                    "ladder `{}`, rung {} (`{}`), eligibility condition {}",
                    l.code,
                    j + 1,
                    rung.channel,
                    k + 1
                );
                if let Some(c) = r.condition(format!("{cp}/when"), &whose, &check.when) {
                    checks.push(c);
                }
            }
            ladder_checks.push(checks);
        }
        rung_checks.push(ladder_checks);
    }
    r.unique(
        "/ladders",
        "code",
        data.ladders.iter().map(|c| c.code.as_str()),
    );

    let mut rule_conditions = Vec::with_capacity(data.rules.len());
    for (i, rule) in data.rules.iter().enumerate() {
        let p = format!("/rules/{i}");
        r.code(format!("{p}/id"), &rule.id);
        r.opt_text(
            format!("{p}/description"),
            rule.description.as_deref(),
            2000,
        );
        if let Some(c) = r.condition(
            format!("{p}/when"),
            &format!("rule `{}`", rule.id),
            &rule.when,
        ) {
            rule_conditions.push(c);
        }
        if let Some(l) = &rule.ladder {
            if data.ladder(l).is_none() {
                r.fail(
                    format!("{p}/ladder"),
                    format!("`{l}` is not a ladder of this tenant"),
                );
            }
        }
        if rule.ladder.is_none() && rule.tracks.is_empty() {
            r.fail(
                p.clone(),
                format!(
                    "rule `{}` names neither a ladder nor a track, so it would change nothing",
                    rule.id
                ),
            );
        }
        for (j, t) in rule.tracks.iter().enumerate() {
            let tp = format!("{p}/tracks/{j}");
            r.code(format!("{tp}/track"), &t.track);
            if t.track == "main" {
                r.fail(
                    format!("{tp}/track"),
                    "`main` is the ladder's own track; name a parallel track otherwise",
                );
            }
            if rule.tracks[..j].iter().any(|o| o.track == t.track) {
                r.fail(
                    format!("{tp}/track"),
                    format!("track `{}` is already named by this rule", t.track),
                );
            }
            if data.ladder(&t.ladder).is_none() {
                r.fail(
                    format!("{tp}/ladder"),
                    format!("`{}` is not a ladder of this tenant", t.ladder),
                );
            }
        }
    }
    r.unique("/rules", "id", data.rules.iter().map(|c| c.id.as_str()));

    if r.errors.is_empty() {
        Ok(CompiledRouting {
            version: 0,
            data,
            rule_conditions,
            rung_checks,
        })
    } else {
        Err(r.errors)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::routing::model::*;

    fn minimal() -> RoutingData {
        serde_json::from_value(serde_json::json!({
            "channels": [{"code": "provider_service", "name": "客服", "delivery": {"method": "provider_directory"}}],
            "providers": [
                {"code": "lakala", "name": "拉卡拉支付股份有限公司", "aliases": ["拉卡拉", "Lakala"], "kind": "payment_institution"}
            ],
            "categories": [{"code": "other", "name": "其他"}],
            "ladders": [{"code": "basic", "name": "Basic", "rungs": [{"channel": "provider_service"}]}],
            "rules": [{"id": "all", "when": "true", "ladder": "basic"}]
        }))
        .unwrap()
    }

    #[test]
    fn minimal_routing_data_is_valid() {
        let c = validate(minimal()).unwrap();
        assert_eq!(c.rule_conditions.len(), 1);
    }

    #[test]
    fn a_bad_condition_is_named_by_rule_pointer_and_position() {
        let mut d = minimal();
        d.rules.push(Rule {
            id: "broken".into(),
            description: None,
            when: "category == 'x' && evidnce.size() > 0".into(),
            ladder: Some("basic".into()),
            tracks: vec![],
            priority: 0,
            enabled: true,
        });
        let errors = validate(d).unwrap_err();
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert_eq!(errors[0].pointer, "/rules/1/when");
        assert!(
            errors[0]
                .detail
                .starts_with("rule `broken`: line 1, column 20"),
            "{}",
            errors[0].detail
        );
    }

    #[test]
    fn dangling_references_and_duplicates_are_reported_together() {
        let mut d = minimal();
        d.ladders[0].rungs.push(LadderRung {
            channel: "court".into(),
            sla_policy: None,
            eligibility: vec![],
        });
        d.rules[0].ladder = Some("nope".into());
        d.providers.push(Provider {
            code: "fake".into(),
            name: "ＬＡＫＡＬＡ".into(),
            aliases: vec![],
            kind: "agent".into(),
            hotline: None,
            hotline_verified: false,
            institution: Some("missing".into()),
            verified: false,
            notes: None,
        });
        d.categories[0].required_evidence.push("selfie".into());
        let errors = validate(d).unwrap_err();
        let pointers: Vec<&str> = errors.iter().map(|e| e.pointer.as_str()).collect();
        for p in [
            "/ladders/0/rungs/1/channel",
            "/rules/0/ladder",
            "/providers/1/name",
            "/providers/1/institution",
            "/categories/0/required_evidence/0",
        ] {
            assert!(pointers.contains(&p), "{p} missing from {pointers:?}");
        }
    }
}
