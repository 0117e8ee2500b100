//! Reading routing documents sent to the API: a parse error (a missing field, a field of the
//! wrong type, an unknown field) is named by its JSON pointer, like every other validation
//! error of the API.

use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::domain::{validation::escape_token, FieldError};

/// Parses `value` as `T`; the error names the field by JSON pointer under `prefix`.
pub fn from_value<T: DeserializeOwned>(value: &Value, prefix: &str) -> Result<T, Vec<FieldError>> {
    serde_path_to_error::deserialize::<_, T>(value).map_err(|e| {
        let mut pointer = prefix.to_owned();
        for segment in e.path().iter() {
            match segment {
                serde_path_to_error::Segment::Seq { index } => {
                    pointer.push('/');
                    pointer.push_str(&index.to_string());
                }
                serde_path_to_error::Segment::Map { key } => {
                    pointer.push('/');
                    pointer.push_str(&escape_token(key));
                }
                serde_path_to_error::Segment::Enum { variant } => {
                    pointer.push('/');
                    pointer.push_str(&escape_token(variant));
                }
                serde_path_to_error::Segment::Unknown => {}
            }
        }
        // serde's message ends with the position in the text it read; here it read a value.
        let detail = e.inner().to_string();
        vec![FieldError::new(pointer, detail)]
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::routing::model::RoutingData;
    use serde_json::json;

    #[test]
    fn a_parse_error_is_named_by_its_pointer() {
        let e = from_value::<RoutingData>(
            &json!({"rules": [{"id": "a", "when": "true", "ladder": "x"}, {"id": "b", "when": 3}]}),
            "/routing",
        )
        .unwrap_err();
        assert_eq!(e[0].pointer, "/routing/rules/1/when");
        let e = from_value::<RoutingData>(&json!({"chanels": []}), "").unwrap_err();
        assert_eq!(e[0].pointer, "/chanels");
        assert!(e[0].detail.contains("unknown field"), "{}", e[0].detail);
    }
}
