//! Starting catalogues a new tenant can be made from. Templates are data files shipped with
//! the hub (`shared/templates/*.json`), not code.

use serde::Deserialize;

use crate::routing::RoutingData;

/// A template. Unknown top-level keys are ignored, so a template file can carry data for
/// other parts of the hub (SLA policies, calendars) that this build reads elsewhere.
#[derive(Debug, Clone, Deserialize)]
pub struct Template {
    pub template: String,
    pub description: String,
    /// The tenant's first routing version: channels, providers, categories, ladders, rules.
    pub routing: RoutingData,
}

const CN_POS: &str = include_str!("../../templates/cn-pos.json");

/// Names of the templates this build ships.
pub const NAMES: [&str; 1] = ["cn-pos"];

#[derive(Debug, thiserror::Error)]
pub enum TemplateError {
    #[error("unknown template `{0}`; known: cn-pos")]
    Unknown(String),
    #[error("template `{0}` does not parse: {1}")]
    Corrupt(String, String),
}

pub fn load(name: &str) -> Result<Template, TemplateError> {
    let raw = match name {
        "cn-pos" => CN_POS,
        other => return Err(TemplateError::Unknown(other.to_owned())),
    };
    serde_json::from_str(raw).map_err(|e| TemplateError::Corrupt(name.to_owned(), e.to_string()))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn the_cn_pos_template_is_valid_routing_data() {
        let t = load("cn-pos").unwrap();
        if let Err(errors) = crate::routing::validate(t.routing) {
            panic!("{errors:#?}");
        }
    }

    #[test]
    fn the_cn_pos_template_uses_the_contract_vocabulary() {
        let t = load("cn-pos").unwrap();
        let codes: Vec<&str> = t.routing.channels.iter().map(|c| c.code.as_str()).collect();
        assert_eq!(
            codes,
            [
                "provider_service",
                "institution_complaint",
                "pboc_12363",
                "samr_12315",
                "samr_12315_report",
                "pcac_report",
                "nfra_12378",
                "mediation",
                "police",
                "court"
            ]
        );
        let required = |c: &str| t.routing.category(c).unwrap().required_evidence.clone();
        assert_eq!(required("deposit_not_refunded"), ["payment_receipt"]);
        for fee_or_settlement in [
            "unauthorized_fee",
            "hidden_fee",
            "rate_misrepresentation",
            "settlement_delay",
        ] {
            assert_eq!(required(fee_or_settlement), ["transaction_record"]);
        }
        // Every hotline ships as an unverified default.
        assert!(t.routing.providers.iter().all(|p| !p.hotline_verified));
    }

    #[test]
    fn the_cn_pos_template_covers_every_contract_category() {
        let t = load("cn-pos").unwrap();
        for c in [
            "deposit_not_refunded",
            "unauthorized_fee",
            "hidden_fee",
            "rate_misrepresentation",
            "settlement_delay",
            "account_frozen",
            "unauthorized_transaction",
            "device_fault",
            "service_quality",
            "other",
        ] {
            assert!(t.routing.category(c).is_some(), "{c}");
        }
    }
}
