//! Routing that a tenant runs: its channels, provider directory, categories with evidence
//! requirements, ladders and rules ([`model`]), versioned in Postgres ([`store`]), checked
//! when saved ([`validate`], conditions in CEL: [`expr`]), and the decision made from them
//! ([`engine`], pure, shared by the worker and the preview endpoint). [`cases`] applies
//! decisions and everything that moves a case afterwards, escalation included.

pub mod cases;
pub mod deadlines_hook;
pub mod edit;
pub mod engine;
pub mod expr;
pub mod model;
pub mod parse;
pub mod providers;
pub mod store;
pub mod validate;

/// Diesel's view of the routing tables. The file sits with the other schema files; it is
/// declared here so routing work does not edit `db/mod.rs`.
#[path = "../db/routing_schema.rs"]
pub mod schema;

pub use cases::{escalate, CaseError, EscalationOutcome};
pub use engine::{decide, Decision, Verdict};
pub use model::RoutingData;
pub use validate::{validate, CompiledRouting};
