//! Matching what a complainant wrote in `respondent.provider` against the tenant's
//! directory. People write the same company many ways: `拉卡拉`, `Lakala`, `ＬＡＫＡＬＡ`,
//! `拉卡拉 支付`. Names and aliases are compared after folding (NFKC, which turns
//! full-width forms into half-width ones, then lowercase, with all spacing removed).

use serde::Serialize;
use unicode_normalization::UnicodeNormalization;

use super::model::{Provider, RoutingData};

/// The folded form two spellings of one name share.
pub fn fold(name: &str) -> String {
    name.nfkc()
        .filter(|c| !c.is_whitespace() && !is_invisible(*c))
        .flat_map(char::to_lowercase)
        .collect()
}

/// Zero-width characters that survive NFKC and make two equal-looking names differ.
fn is_invisible(c: char) -> bool {
    matches!(
        c,
        '\u{200b}' | '\u{200c}' | '\u{200d}' | '\u{2060}' | '\u{feff}'
    )
}

/// How a provider was recognised.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct ProviderMatch {
    /// Directory code of the provider.
    pub code: String,
    /// Its registered name.
    pub name: String,
    pub kind: String,
    /// The name or alias that matched.
    pub matched: String,
    /// `exact`: the whole text is the name or an alias; `contains`: the text contains one
    /// (the longest that fits wins), e.g. `拉卡拉POS机`.
    pub how: String,
    /// For an agent, the licensed institution it sells for.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub institution: Option<InstitutionRef>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hotline: Option<String>,
    pub hotline_verified: bool,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct InstitutionRef {
    pub code: String,
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hotline: Option<String>,
}

/// The shortest alias a `contains` match may use: a single character matches too much.
const MIN_CONTAINED_CHARS: usize = 2;

/// Finds the provider `written` names: an exact match on a folded name or alias first,
/// otherwise the longest name or alias the folded text contains.
pub fn find(routing: &RoutingData, written: &str) -> Option<ProviderMatch> {
    let folded = fold(written);
    if folded.is_empty() {
        return None;
    }
    let mut best: Option<(&Provider, &str, bool, usize)> = None;
    for p in &routing.providers {
        for label in std::iter::once(&p.name).chain(p.aliases.iter()) {
            let key = fold(label);
            if key.is_empty() {
                continue;
            }
            let len = key.chars().count();
            if key == folded {
                return Some(describe(routing, p, label, true));
            }
            if len >= MIN_CONTAINED_CHARS
                && folded.contains(&key)
                && best.is_none_or(|(_, _, _, l)| len > l)
            {
                best = Some((p, label.as_str(), false, len));
            }
        }
    }
    best.map(|(p, label, exact, _)| describe(routing, p, label, exact))
}

fn describe(routing: &RoutingData, p: &Provider, label: &str, exact: bool) -> ProviderMatch {
    ProviderMatch {
        code: p.code.clone(),
        name: p.name.clone(),
        kind: p.kind.clone(),
        matched: label.to_owned(),
        how: if exact { "exact" } else { "contains" }.to_owned(),
        institution: p
            .institution
            .as_deref()
            .and_then(|code| routing.provider(code))
            .map(|i| InstitutionRef {
                code: i.code.clone(),
                name: i.name.clone(),
                hotline: i.hotline.clone(),
            }),
        hotline: p.hotline.clone(),
        hotline_verified: p.hotline_verified,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn directory() -> RoutingData {
        let provider = |code: &str, name: &str, aliases: &[&str]| Provider {
            code: code.into(),
            name: name.into(),
            aliases: aliases.iter().map(|a| (*a).to_owned()).collect(),
            kind: "payment_institution".into(),
            hotline: None,
            hotline_verified: false,
            institution: None,
            verified: false,
            notes: None,
        };
        RoutingData {
            providers: vec![
                provider("lakala", "拉卡拉支付股份有限公司", &["拉卡拉", "Lakala"]),
                provider(
                    "chinaums",
                    "银联商务股份有限公司",
                    &["银联商务", "ChinaUMS"],
                ),
                provider("unionpay", "中国银联股份有限公司", &["中国银联", "银联"]),
            ],
            ..RoutingData::default()
        }
    }

    #[test]
    fn folding_ignores_case_width_and_spacing() {
        assert_eq!(fold("ＬＡＫＡＬＡ"), "lakala");
        assert_eq!(fold(" La ka\u{3000}la "), "lakala");
        assert_eq!(fold("拉卡拉（支付）"), "拉卡拉(支付)");
        assert_eq!(fold("Chinaums\u{200b}"), "chinaums");
    }

    #[test]
    fn every_spelling_of_lakala_finds_the_same_provider() {
        let d = directory();
        for written in [
            "拉卡拉",
            "Lakala",
            "LAKALA",
            "ｌａｋａｌａ",
            "拉卡拉支付股份有限公司",
            "拉卡拉 支付股份 有限公司",
        ] {
            let m = find(&d, written).unwrap();
            assert_eq!(m.code, "lakala", "{written}");
            assert_eq!(m.how, "exact", "{written}");
        }
    }

    #[test]
    fn a_longer_text_matches_the_longest_name_it_contains() {
        let d = directory();
        let m = find(&d, "拉卡拉POS机").unwrap();
        assert_eq!((m.code.as_str(), m.how.as_str()), ("lakala", "contains"));
        // 银联商务 contains 银联: the longer, more specific name wins.
        assert_eq!(find(&d, "银联商务的代理商").unwrap().code, "chinaums");
    }

    #[test]
    fn an_unknown_provider_matches_nothing() {
        let d = directory();
        assert!(find(&d, "某某科技").is_none());
        assert!(find(&d, "   ").is_none());
    }
}
