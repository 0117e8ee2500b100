//! The Redress HTTP API. A complaint enters at [`routes::complaints::create`]; an
//! [`intake::IntakeWriter`] writes the complaint, its first event and the outbox message in
//! one transaction (with the other filings waiting beside it), and the outbox relay started
//! by [`startup::Application`] hands it to RabbitMQ for the worker.

pub mod admin;
pub mod audit;
pub mod auth;
pub mod calendar_admin;
pub mod cli;
pub mod error;
pub mod idempotency;
pub mod intake;
pub mod limits;
pub mod openapi;
pub mod routes;
pub mod startup;
pub mod state;
