//! Who is calling: OAuth client credentials and `private_key_jwt`, access tokens, scopes,
//! and the rotation of signing keys and client secrets.

pub mod assertion;
pub mod caller;
pub mod client_admin;
pub mod keys;
pub mod rotation;
pub mod secrets;
pub mod tokens;

pub use caller::Caller;

/// Scopes of CONTRACT §1: what tenant admins may give the clients of their tenant.
pub const SCOPES: [&str; 5] = [
    "complaints:write",
    "complaints:read",
    "webhooks:manage",
    "cases:operate",
    "tenant:admin",
];

/// Hub operators' scope: rotating the hub's signing keys. Only the admin command grants it
/// (`redress-api admin hub-admin grant`), never `POST /v1/clients`, and the tenant API will
/// not rotate the secret of, or register keys for, a client holding it: a tenant admin must
/// not be able to become a hub operator.
pub const HUB_ADMIN: &str = "hub:admin";

/// Whether the token endpoint may grant `scope` to a client that holds it.
pub fn grantable(scope: &str) -> bool {
    SCOPES.contains(&scope) || scope == HUB_ADMIN
}
