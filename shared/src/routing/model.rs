//! A tenant's routing data as stored (one JSON document per version) and as edited through
//! the API: channels, the provider directory, categories with their evidence requirements,
//! ladders of rungs, and the rules that pick a ladder and parallel tracks for a complaint.
//!
//! The document is the unit of versioning: every edit, however small, writes a whole new
//! version, so a routing decision can always be explained from the one version it names.

use serde::{Deserialize, Serialize};

/// The whole routing configuration of a tenant at one version.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RoutingData {
    #[serde(default)]
    pub channels: Vec<Channel>,
    #[serde(default)]
    pub providers: Vec<Provider>,
    #[serde(default)]
    pub categories: Vec<Category>,
    #[serde(default)]
    pub ladders: Vec<Ladder>,
    /// Evaluated highest `priority` first (ties in list order).
    #[serde(default)]
    pub rules: Vec<Rule>,
}

/// A body that handles complaints: a provider's customer service, a regulator, a
/// mediation body, a court.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Channel {
    /// Stable code used by ladders, rungs and operators, e.g. `pboc_12363`.
    pub code: String,
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// How a case reaches this channel.
    pub delivery: Delivery,
    #[serde(default)]
    pub contact: Contact,
    /// SLA policy used by rungs on this channel that name none themselves.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sla_policy: Option<String>,
    /// `false` marks facts shipped as editable defaults that nobody has checked against
    /// the rule or the body's own site yet.
    #[serde(default = "yes")]
    pub verified: bool,
    /// Where the facts come from (rule names, articles, pages).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sources: Vec<String>,
}

/// Delivery methods a channel can have.
pub const DELIVERY_METHODS: [&str; 8] = [
    "phone",
    "online_form",
    "app",
    "email",
    "letter",
    "in_person",
    "api",
    "provider_directory",
];

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Delivery {
    /// One of `phone`, `online_form`, `app`, `email`, `letter`, `in_person`, `api`, or
    /// `provider_directory` (the contact is the respondent's own, from the directory).
    pub method: String,
    /// Number, address or URL the case goes to, when the method has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    /// What an operator does to file the case there.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instructions: Option<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Contact {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phone: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hours: Option<String>,
}

/// Kinds of provider in the directory.
pub const PROVIDER_KINDS: [&str; 5] = [
    "payment_institution",
    "agent",
    "bank",
    "clearing_organisation",
    "other",
];

/// One provider of the directory. A complaint's `respondent.provider` is matched against
/// `name` and `aliases` without regard to case, width or spacing.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Provider {
    pub code: String,
    /// The registered name, e.g. `拉卡拉支付股份有限公司`.
    pub name: String,
    /// Other names people use: brand, short name, English name.
    #[serde(default)]
    pub aliases: Vec<String>,
    /// `payment_institution`, `agent`, `bank`, `clearing_organisation` or `other`.
    pub kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hotline: Option<String>,
    /// Whether the hotline was checked on the provider's own site.
    #[serde(default)]
    pub hotline_verified: bool,
    /// For an agent: the code of the licensed institution it sells for, which stays
    /// responsible for it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub institution: Option<String>,
    /// Whether the entry as a whole (names, kind) was checked.
    #[serde(default)]
    pub verified: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notes: Option<String>,
}

/// A complaint category with the evidence it needs.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Category {
    pub code: String,
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Evidence kinds without which the case waits in `awaiting_evidence`.
    #[serde(default)]
    pub required_evidence: Vec<String>,
    /// Evidence kinds worth asking for; their absence does not hold the case.
    #[serde(default)]
    pub recommended_evidence: Vec<String>,
}

/// An ordered list of channels a case climbs.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Ladder {
    pub code: String,
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    pub rungs: Vec<LadderRung>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LadderRung {
    /// Channel code.
    pub channel: String,
    /// SLA policy reference for this rung's clocks; defaults to the channel's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sla_policy: Option<String>,
    /// Conditions the complaint must meet for this rung to be used; the first that fails
    /// skips the rung and its `reason` is recorded.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub eligibility: Vec<Check>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Check {
    /// A CEL expression over the complaint; see docs/ROUTING.md.
    pub when: String,
    /// Why the rung is skipped when `when` is false, in words an operator can repeat.
    pub reason: String,
}

/// A rule: when its condition holds, it names the ladder (the first matching rule with a
/// ladder decides it) and parallel tracks (every matching rule adds its own).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Rule {
    pub id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// A CEL expression over the complaint.
    pub when: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ladder: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tracks: Vec<TrackRef>,
    /// Higher first.
    #[serde(default)]
    pub priority: i32,
    #[serde(default = "yes")]
    pub enabled: bool,
}

/// A parallel track: a ladder climbed beside the main one under its own name.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TrackRef {
    /// The track's name as it appears on the case (`police`, `samr_report` …); `main` is
    /// reserved for the ladder itself.
    pub track: String,
    pub ladder: String,
}

fn yes() -> bool {
    true
}

impl RoutingData {
    pub fn channel(&self, code: &str) -> Option<&Channel> {
        self.channels.iter().find(|c| c.code == code)
    }
    pub fn provider(&self, code: &str) -> Option<&Provider> {
        self.providers.iter().find(|p| p.code == code)
    }
    pub fn category(&self, code: &str) -> Option<&Category> {
        self.categories.iter().find(|c| c.code == code)
    }
    pub fn ladder(&self, code: &str) -> Option<&Ladder> {
        self.ladders.iter().find(|l| l.code == code)
    }

    /// Rule indices in evaluation order: highest priority first, ties in list order.
    pub fn rule_order(&self) -> Vec<usize> {
        let mut order: Vec<usize> = (0..self.rules.len()).collect();
        // A stable sort keeps list order among equal priorities.
        order.sort_by_key(|&i| std::cmp::Reverse(self.rules[i].priority));
        order
    }
}
