//! Who is calling: OAuth client credentials, access tokens, scopes.

pub mod caller;
pub mod keys;
pub mod secrets;
pub mod tokens;

pub use caller::Caller;

/// Scopes of CONTRACT §1.
pub const SCOPES: [&str; 5] = [
    "complaints:write",
    "complaints:read",
    "webhooks:manage",
    "cases:operate",
    "tenant:admin",
];
