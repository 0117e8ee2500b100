//! Integration tests against the real Postgres and RabbitMQ. One binary, many modules, so the
//! whole stack links once.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod auth;
mod deadlines;
mod intake;
mod limits;
mod messaging;
mod metrics;
mod operations;
mod privacy;
mod rotation;
mod routing;
mod tenancy;
mod webhooks;
