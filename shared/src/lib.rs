//! Code both Redress binaries share: configuration, identifiers, the domain model of a
//! complaint, the Postgres schema and queries, the RabbitMQ topology and the outbox relay.

pub mod amqp;
pub mod audit;
pub mod config;
pub mod db;
pub mod deadlines;
pub mod domain;
pub mod ids;
pub mod metrics;
pub mod outbox;
pub mod privacy;
pub mod routing;
pub mod shutdown;
pub mod telemetry;
pub mod tenancy;
pub mod webhooks;

pub use redress_calendar as calendar;
