//! Starting catalogues a new tenant can be made from. Templates are data files shipped with
//! the hub (`shared/templates/*.json`), not code.

use std::collections::BTreeMap;

use serde::Deserialize;

#[derive(Debug, Clone, Deserialize)]
pub struct Template {
    pub template: String,
    pub description: String,
    /// category → channel code
    pub category_routes: BTreeMap<String, String>,
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
            assert!(t.category_routes.contains_key(c), "{c}");
        }
    }
}
