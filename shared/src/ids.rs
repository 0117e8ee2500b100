//! Opaque, prefixed identifiers. The prefix tells a reader (and a support engineer reading a
//! log line) what kind of object an id names; the UUIDv7 body keeps ids time-ordered so
//! cursor pagination by id follows filing order.

use std::fmt;

use serde::{Deserialize, Serialize};

macro_rules! prefixed_id {
    ($(#[$meta:meta])* $name:ident, $prefix:literal) => {
        $(#[$meta])*
        #[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl $name {
            pub const PREFIX: &'static str = $prefix;

            /// A new id whose body is a UUIDv7 (time-ordered).
            pub fn generate() -> Self {
                Self(format!("{}{}", $prefix, uuid::Uuid::now_v7().simple()))
            }

            /// Parses an id received from outside; only the prefix and the body's shape are
            /// checked, existence is the database's business.
            pub fn parse(raw: &str) -> Result<Self, InvalidId> {
                match raw.strip_prefix($prefix) {
                    Some(body)
                        if !body.is_empty()
                            && body.len() <= 64
                            && body.bytes().all(|b| b.is_ascii_alphanumeric()) =>
                    {
                        Ok(Self(raw.to_owned()))
                    }
                    _ => Err(InvalidId { expected_prefix: $prefix }),
                }
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }

            /// Wraps a value read back from our own database, where it was valid when written.
            pub fn from_trusted(raw: String) -> Self {
                Self(raw)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl TryFrom<String> for $name {
            type Error = InvalidId;
            fn try_from(value: String) -> Result<Self, Self::Error> {
                Self::parse(&value)
            }
        }

        impl From<$name> for String {
            fn from(value: $name) -> String {
                value.0
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }
    };
}

#[derive(Debug, Clone, thiserror::Error)]
#[error("not a valid id: expected a string starting with `{expected_prefix}`")]
pub struct InvalidId {
    pub expected_prefix: &'static str,
}

prefixed_id!(
    /// A consumer organisation running cases on the hub.
    TenantId,
    "ten_"
);
prefixed_id!(
    /// An OAuth client: a partner app or an operator console.
    ClientId,
    "cli_"
);
prefixed_id!(ComplaintId, "cmp_");
prefixed_id!(EventId, "evt_");
prefixed_id!(WebhookEndpointId, "whe_");

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn a_generated_id_parses_back_and_keeps_its_prefix() {
        let id = ComplaintId::generate();
        assert!(id.as_str().starts_with("cmp_"));
        assert_eq!(ComplaintId::parse(id.as_str()).unwrap(), id);
    }

    #[test]
    fn an_id_of_another_kind_or_with_odd_characters_is_refused() {
        assert!(ComplaintId::parse("ten_0123").is_err());
        assert!(ComplaintId::parse("cmp_").is_err());
        assert!(ComplaintId::parse("cmp_abc'; drop").is_err());
    }

    #[test]
    fn ids_generated_later_sort_after_earlier_ones() {
        let a = ComplaintId::generate();
        std::thread::sleep(std::time::Duration::from_millis(2));
        let b = ComplaintId::generate();
        assert!(a < b);
    }
}
