//! The routing decision, pure: routing data and a complaint in, a [`Decision`] with its
//! explanation out. No I/O, so the worker and `POST /v1/routing/preview` run exactly this
//! code, and escalation uses [`climb`] to find the next rung the same way.

use std::collections::BTreeSet;

use chrono::NaiveDate;
use rust_decimal::prelude::ToPrimitive;
use serde::{Deserialize, Serialize};

use super::{
    expr::{Facts, PriorContactFact},
    providers::{self, ProviderMatch},
    validate::CompiledRouting,
};
use crate::domain::ComplaintInput;

/// Where the engine sends a complaint.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    Routed,
    AwaitingEvidence,
    Rejected,
}

/// A routing decision and everything needed to explain it.
#[derive(Clone, Debug, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Decision {
    /// The routing version the decision was made with.
    pub routing_version: i32,
    pub verdict: Verdict,
    /// One paragraph an operator can read to the complainant.
    pub why: String,
    /// Set when the verdict is `rejected`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rejection_reason: Option<String>,
    pub category: CategoryNote,
    pub provider: ProviderNote,
    /// Every rule, in evaluation order, and whether it matched.
    pub rules: Vec<RuleTrace>,
    /// The rule that chose the ladder.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rule: Option<String>,
    /// The main track.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub main: Option<TrackPlan>,
    /// Parallel tracks started beside the main ladder.
    pub parallel_tracks: Vec<TrackPlan>,
    /// Required evidence kinds the complaint lacks.
    pub missing_evidence: Vec<String>,
    /// Recommended evidence kinds the complaint lacks (they do not hold it).
    pub recommended_evidence_missing: Vec<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize, utoipa::ToSchema)]
pub struct CategoryNote {
    pub code: String,
    /// Whether the tenant's catalogue has this category.
    pub known: bool,
    pub required_evidence: Vec<String>,
    pub recommended_evidence: Vec<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize, utoipa::ToSchema)]
pub struct ProviderNote {
    /// As the complainant wrote it.
    pub written: String,
    /// The directory entry it matched; absent for an unknown provider, which is routed by
    /// the category's defaults.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub directory: Option<ProviderMatch>,
}

#[derive(Clone, Debug, PartialEq, Serialize, utoipa::ToSchema)]
pub struct RuleTrace {
    pub id: String,
    pub priority: i32,
    pub when: String,
    pub matched: bool,
    /// Why the condition could not be evaluated (it then counts as not matched).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub disabled: bool,
}

/// One track of a case: the ladder it climbs and where it starts.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct TrackPlan {
    /// `main`, or the parallel track's name.
    pub track: String,
    pub ladder: String,
    pub ladder_name: String,
    /// The rule that put this track on the case.
    pub rule: String,
    /// Absent when no rung of the ladder is open to the complaint.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub start: Option<RungPlan>,
    /// Rungs passed over, before the start and ahead of it, with the reason.
    pub skipped: Vec<Skipped>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct RungPlan {
    /// 0-based position in the ladder.
    pub index: usize,
    pub channel: String,
    pub channel_name: String,
    /// SLA policy reference for the rung's clocks.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sla_policy: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Skipped {
    pub index: usize,
    pub channel: String,
    /// `ineligible` (a condition of the rung failed) or `tried` (the complainant or this
    /// case has already been there).
    pub kind: String,
    pub reason: String,
}

/// The facts of a complaint as conditions see them. `extra_tried` adds channels the case
/// itself has been on to those the complainant reported.
pub fn facts_for(
    routing: &CompiledRouting,
    input: &ComplaintInput,
    today: NaiveDate,
    extra_tried: &[String],
) -> Facts {
    let mut tried: BTreeSet<String> = input
        .prior_contacts
        .iter()
        .map(|c| c.channel.clone())
        .collect();
    tried.extend(extra_tried.iter().cloned());
    Facts {
        category: input.category.clone(),
        complainant_kind: input.complainant.kind.clone(),
        region: input.complainant.region.clone().unwrap_or_default(),
        provider_written: input.respondent.provider.clone(),
        provider: providers::find(&routing.data, &input.respondent.provider),
        amount: input.amount_claimed.as_ref().and_then(|m| m.value.to_f64()),
        currency: input
            .amount_claimed
            .as_ref()
            .map(|m| m.currency.clone())
            .unwrap_or_default(),
        desired_outcomes: input.desired_outcomes.clone(),
        evidence: input.evidence.iter().map(|e| e.kind.clone()).collect(),
        prior_contacts: input
            .prior_contacts
            .iter()
            .map(|c| PriorContactFact {
                channel: c.channel.clone(),
                on: c.on,
                outcome: c.outcome.clone().unwrap_or_default(),
                reference: c.reference.clone().unwrap_or_default(),
            })
            .collect(),
        tried,
        occurred_on: input.occurred_on,
        today,
        summary: input.summary.clone(),
        description: input.description.clone().unwrap_or_default(),
    }
}

/// What [`climb`] finds from a position in a ladder.
#[derive(Clone, Debug, PartialEq)]
pub struct Climb {
    pub next: Option<RungPlan>,
    pub skipped: Vec<Skipped>,
}

/// Walks ladder `ladder` from rung `from` (inclusive): the first rung that is eligible and
/// not tried is `next`; every other rung is listed in `skipped` with its reason, those
/// ahead of `next` included (they will be skipped when the case gets there unless the
/// facts change by then, and escalation checks again).
pub fn climb(routing: &CompiledRouting, ladder: &str, from: usize, facts: &Facts) -> Climb {
    let mut out = Climb {
        next: None,
        skipped: Vec::new(),
    };
    let Some(li) = routing.data.ladders.iter().position(|l| l.code == ladder) else {
        return out;
    };
    let l = &routing.data.ladders[li];
    // Built at the first check, once for the climb.
    let mut context = None;
    for (i, rung) in l.rungs.iter().enumerate().skip(from) {
        let mut ineligible = None;
        for (check, condition) in rung.eligibility.iter().zip(&routing.rung_checks[li][i]) {
            let context = context.get_or_insert_with(|| super::expr::FactsContext::new(facts));
            match condition.evaluate_in(context) {
                Ok(true) => {}
                Ok(false) => {
                    ineligible = Some(check.reason.clone());
                    break;
                }
                Err(e) => {
                    ineligible = Some(format!(
                        "its condition `{}` could not be evaluated ({e}), so the rung is skipped",
                        check.when
                    ));
                    break;
                }
            }
        }
        if let Some(reason) = ineligible {
            out.skipped.push(Skipped {
                index: i,
                channel: rung.channel.clone(),
                kind: "ineligible".into(),
                reason,
            });
        } else if facts.tried.contains(&rung.channel) {
            out.skipped.push(Skipped {
                index: i,
                channel: rung.channel.clone(),
                kind: "tried".into(),
                reason: tried_reason(facts, &rung.channel),
            });
        } else if out.next.is_none() {
            let channel = routing.data.channel(&rung.channel);
            out.next = Some(RungPlan {
                index: i,
                channel: rung.channel.clone(),
                channel_name: channel.map(|c| c.name.clone()).unwrap_or_default(),
                sla_policy: rung
                    .sla_policy
                    .clone()
                    .or_else(|| channel.and_then(|c| c.sla_policy.clone())),
            });
        }
    }
    out
}

fn tried_reason(facts: &Facts, channel: &str) -> String {
    match facts.prior_contacts.iter().find(|c| c.channel == channel) {
        Some(c) => {
            let mut s = format!("the complainant already tried it on {}", c.on);
            if !c.outcome.is_empty() {
                s.push_str(&format!(" ({})", c.outcome));
            }
            if !c.reference.is_empty() {
                s.push_str(&format!(", reference {}", c.reference));
            }
            s
        }
        None => "this case has already been there".into(),
    }
}

fn plan(
    routing: &CompiledRouting,
    track: &str,
    ladder: &str,
    rule: &str,
    facts: &Facts,
) -> TrackPlan {
    let c = climb(routing, ladder, 0, facts);
    TrackPlan {
        track: track.to_owned(),
        ladder: ladder.to_owned(),
        ladder_name: routing
            .data
            .ladder(ladder)
            .map(|l| l.name.clone())
            .unwrap_or_default(),
        rule: rule.to_owned(),
        start: c.next,
        skipped: c.skipped,
    }
}

/// Decides where `input` goes under `routing` on `today` (the tenant's date).
pub fn decide(routing: &CompiledRouting, input: &ComplaintInput, today: NaiveDate) -> Decision {
    let facts = facts_for(routing, input, today, &[]);
    let data = &routing.data;

    let category = data.category(&input.category);
    let category_note = CategoryNote {
        code: input.category.clone(),
        known: category.is_some(),
        required_evidence: category
            .map(|c| c.required_evidence.clone())
            .unwrap_or_default(),
        recommended_evidence: category
            .map(|c| c.recommended_evidence.clone())
            .unwrap_or_default(),
    };
    let missing_evidence: Vec<String> = category_note
        .required_evidence
        .iter()
        .filter(|k| !facts.evidence.contains(*k))
        .cloned()
        .collect();
    let recommended_evidence_missing: Vec<String> = category_note
        .recommended_evidence
        .iter()
        .filter(|k| !facts.evidence.contains(*k))
        .cloned()
        .collect();

    let context = super::expr::FactsContext::new(&facts);
    let mut rules = Vec::with_capacity(data.rules.len());
    let mut deciding: Option<usize> = None;
    let mut parallel: Vec<TrackPlan> = Vec::new();
    for i in data.rule_order() {
        let rule = &data.rules[i];
        let (matched, error) = if !rule.enabled {
            (false, None)
        } else {
            match routing.rule_conditions[i].evaluate_in(&context) {
                Ok(m) => (m, None),
                Err(e) => (false, Some(e)),
            }
        };
        rules.push(RuleTrace {
            id: rule.id.clone(),
            priority: rule.priority,
            when: rule.when.clone(),
            matched,
            error,
            disabled: !rule.enabled,
        });
        if !matched {
            continue;
        }
        if deciding.is_none() && rule.ladder.is_some() {
            deciding = Some(i);
        }
        for t in &rule.tracks {
            // The first rule to name a track wins it; a later rule cannot restart it.
            if !parallel.iter().any(|p| p.track == t.track) {
                parallel.push(plan(routing, &t.track, &t.ladder, &rule.id, &facts));
            }
        }
    }

    let main = deciding.and_then(|i| {
        let rule = &data.rules[i];
        rule.ladder
            .as_deref()
            .map(|l| plan(routing, "main", l, &rule.id, &facts))
    });
    let rule = deciding.map(|i| data.rules[i].id.clone());

    let (verdict, rejection_reason) = match &main {
        None => (
            Verdict::Rejected,
            Some(format!(
                "no routing rule of this hub names a ladder for this complaint (category `{}`)",
                input.category
            )),
        ),
        Some(m) if m.start.is_none() => (
            Verdict::Rejected,
            Some(format!(
                "no rung of ladder `{}` is open to this complaint: {}",
                m.ladder,
                m.skipped
                    .iter()
                    .map(|s| format!("{} — {}", s.channel, s.reason))
                    .collect::<Vec<_>>()
                    .join("; ")
            )),
        ),
        Some(_) if !missing_evidence.is_empty() => (Verdict::AwaitingEvidence, None),
        Some(_) => (Verdict::Routed, None),
    };

    let mut decision = Decision {
        routing_version: routing.version,
        verdict,
        why: String::new(),
        rejection_reason,
        category: category_note,
        provider: ProviderNote {
            written: input.respondent.provider.clone(),
            directory: facts.provider.clone(),
        },
        rules,
        rule,
        main,
        parallel_tracks: parallel,
        missing_evidence,
        recommended_evidence_missing,
    };
    decision.why = explain(&decision, &input.complainant.kind);
    decision
}

fn explain(d: &Decision, complainant_kind: &str) -> String {
    let mut s = format!(
        "Category `{}`{}, {} complaint about {}. ",
        d.category.code,
        if d.category.known {
            ""
        } else {
            " (not in this hub's catalogue)"
        },
        complainant_kind,
        match &d.provider.directory {
            Some(p) => format!("{} (directory entry `{}`)", p.name, p.code),
            None => format!("`{}` (not in the provider directory)", d.provider.written),
        }
    );
    if let Some(rule) = &d.rule {
        s.push_str(&format!("Rule `{rule}` matched"));
        if let Some(m) = &d.main {
            s.push_str(&format!(" and chose ladder `{}`", m.ladder));
            match &m.start {
                Some(start) => s.push_str(&format!(
                    ", starting at rung {} `{}`",
                    start.index + 1,
                    start.channel
                )),
                None => s.push_str(", but none of its rungs is open"),
            }
            let before: Vec<String> = m
                .skipped
                .iter()
                .filter(|k| m.start.as_ref().is_none_or(|st| k.index < st.index))
                .map(|k| format!("`{}` ({})", k.channel, k.reason))
                .collect();
            if !before.is_empty() {
                s.push_str(&format!(" after skipping {}", before.join(", ")));
            }
            s.push_str(". ");
        }
    }
    for t in &d.parallel_tracks {
        match &t.start {
            Some(start) => s.push_str(&format!(
                "Parallel track `{}` (rule `{}`) starts at `{}`. ",
                t.track, t.rule, start.channel
            )),
            None => s.push_str(&format!(
                "Parallel track `{}` (rule `{}`) is not started: no rung is open. ",
                t.track, t.rule
            )),
        }
    }
    match d.verdict {
        Verdict::Routed => {}
        Verdict::AwaitingEvidence => s.push_str(&format!(
            "The case waits for evidence: {}. ",
            d.missing_evidence.join(", ")
        )),
        Verdict::Rejected => {
            if let Some(r) = &d.rejection_reason {
                s.push_str(&format!("Rejected: {r}. "));
            }
        }
    }
    s.trim_end().to_owned()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::routing::{model::RoutingData, validate::validate};
    use serde_json::json;

    fn routing() -> CompiledRouting {
        let data: RoutingData = serde_json::from_value(json!({
            "channels": [
                {"code": "provider_service", "name": "客服", "delivery": {"method": "provider_directory"}, "sla_policy": "provider_service"},
                {"code": "regulator", "name": "监管", "delivery": {"method": "phone", "target": "12363"}},
                {"code": "consumer_body", "name": "12315", "delivery": {"method": "online_form"}},
                {"code": "police", "name": "公安", "delivery": {"method": "in_person"}}
            ],
            "categories": [
                {"code": "deposit", "name": "押金", "required_evidence": ["payment_receipt"], "recommended_evidence": ["contract"]},
                {"code": "fraud", "name": "盗刷"}
            ],
            "ladders": [
                {"code": "main", "name": "Main", "rungs": [
                    {"channel": "provider_service"},
                    {"channel": "regulator", "sla_policy": "regulator_15cd"},
                    {"channel": "consumer_body", "eligibility": [
                        {"when": "complainant.kind == 'consumer'", "reason": "consumers only"},
                        {"when": "incident_age_years() < 3", "reason": "too old"}
                    ]}
                ]},
                {"code": "police", "name": "Police", "rungs": [{"channel": "police"}]}
            ],
            "rules": [
                {"id": "catch_all", "when": "true", "ladder": "main", "priority": 0},
                {"id": "fraud", "when": "category == 'fraud'", "ladder": "main", "tracks": [{"track": "police", "ladder": "police"}], "priority": 10}
            ]
        }))
        .unwrap();
        let mut c = validate(data).unwrap();
        c.version = 7;
        c
    }

    fn complaint(category: &str) -> ComplaintInput {
        serde_json::from_value(json!({
            "complainant": {"name": "张三", "kind": "consumer"},
            "respondent": {"provider": "某公司"},
            "category": category,
            "summary": "s",
            "occurred_on": "2026-09-03",
            "evidence": [{"kind": "payment_receipt"}]
        }))
        .unwrap()
    }

    fn today() -> NaiveDate {
        NaiveDate::from_ymd_opt(2026, 11, 20).unwrap()
    }

    #[test]
    fn the_highest_priority_matching_rule_picks_the_ladder_and_adds_its_tracks() {
        let d = decide(&routing(), &complaint("fraud"), today());
        assert_eq!(d.verdict, Verdict::Routed);
        assert_eq!(d.routing_version, 7);
        assert_eq!(d.rule.as_deref(), Some("fraud"));
        let main = d.main.unwrap();
        assert_eq!(main.start.unwrap().channel, "provider_service");
        assert_eq!(d.parallel_tracks.len(), 1);
        assert_eq!(
            d.parallel_tracks[0].start.as_ref().unwrap().channel,
            "police"
        );
        assert_eq!(
            d.rules.iter().map(|r| r.id.as_str()).collect::<Vec<_>>(),
            ["fraud", "catch_all"]
        );
    }

    #[test]
    fn missing_required_evidence_holds_the_case_and_names_the_kinds() {
        let mut c = complaint("deposit");
        c.evidence.clear();
        let d = decide(&routing(), &c, today());
        assert_eq!(d.verdict, Verdict::AwaitingEvidence);
        assert_eq!(d.missing_evidence, ["payment_receipt"]);
        assert_eq!(d.recommended_evidence_missing, ["contract"]);
        assert!(d.why.contains("payment_receipt"), "{}", d.why);
        // The plan is still shown, for the preview.
        assert_eq!(d.main.unwrap().start.unwrap().channel, "provider_service");
    }

    #[test]
    fn a_rung_already_tried_is_not_the_start_and_says_why() {
        let mut c = complaint("deposit");
        c.prior_contacts = serde_json::from_value(json!([
            {"channel": "provider_service", "on": "2026-10-10", "outcome": "refused", "reference": "A123"}
        ]))
        .unwrap();
        let d = decide(&routing(), &c, today());
        let main = d.main.unwrap();
        let start = main.start.unwrap();
        assert_eq!((start.index, start.channel.as_str()), (1, "regulator"));
        assert_eq!(start.sla_policy.as_deref(), Some("regulator_15cd"));
        assert_eq!(main.skipped[0].kind, "tried");
        assert!(main.skipped[0]
            .reason
            .contains("2026-10-10 (refused), reference A123"));
    }

    #[test]
    fn ineligible_rungs_are_skipped_with_the_first_failing_reason() {
        let mut c = complaint("deposit");
        c.complainant.kind = "merchant".into();
        c.occurred_on = NaiveDate::from_ymd_opt(2020, 1, 1);
        let r = routing();
        let facts = facts_for(
            &r,
            &c,
            today(),
            &["provider_service".into(), "regulator".into()],
        );
        let climb = climb(&r, "main", 1, &facts);
        assert_eq!(climb.next, None);
        assert_eq!(climb.skipped.len(), 2);
        assert_eq!(climb.skipped[1].reason, "consumers only");
        c.complainant.kind = "consumer".into();
        let facts = facts_for(&r, &c, today(), &[]);
        assert_eq!(
            super::climb(&r, "main", 2, &facts).skipped[0].reason,
            "too old"
        );
    }

    #[test]
    fn a_complaint_no_rung_will_take_is_rejected_with_the_reasons() {
        let mut c = complaint("deposit");
        c.prior_contacts = serde_json::from_value(json!([
            {"channel": "provider_service", "on": "2026-10-10"},
            {"channel": "regulator", "on": "2026-10-20"}
        ]))
        .unwrap();
        c.complainant.kind = "merchant".into();
        let d = decide(&routing(), &c, today());
        assert_eq!(d.verdict, Verdict::Rejected);
        assert!(d.rejection_reason.unwrap().contains("consumers only"));
    }
}
