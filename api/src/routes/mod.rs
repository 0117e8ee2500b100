//! HTTP routes, one module per resource.

pub mod calendars;
pub mod cases;
pub mod clients;
pub mod complaints;
pub mod deadlines;
pub mod health;
pub mod hub;
pub mod oauth;
pub mod privacy;
pub mod routing;
pub mod sla_policies;
pub mod webhooks;

use actix_web::web;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(health::healthz)
        .service(health::readyz)
        .service(health::metrics)
        .service(oauth::token)
        .service(oauth::jwks)
        .service(complaints::create)
        .service(complaints::list)
        .service(complaints::get)
        .service(complaints::events)
        .service(cases::transition)
        .service(cases::feedback)
        .service(cases::withdraw)
        .service(cases::add_evidence)
        // Fixed paths before `/v1/routing/{collection}`, which would otherwise take them.
        .service(routing::get_routing)
        .service(routing::replace_routing)
        .service(routing::list_versions)
        .service(routing::get_version)
        .service(routing::preview)
        .service(routing::list_entries)
        .service(routing::put_entry)
        .service(routing::delete_entry)
        .service(clients::create)
        .service(clients::rotate_secret)
        .service(clients::add_keys)
        .service(clients::list_keys)
        .service(clients::remove_key)
        .service(hub::list_signing_keys)
        .service(hub::rotate_signing_key)
        .service(privacy::export)
        .service(privacy::erase)
        .service(privacy::list_audit)
        .service(deadlines::extend)
        .service(calendars::list)
        .service(calendars::create)
        .service(calendars::due_date)
        .service(calendars::list_days)
        .service(calendars::put_days)
        .service(calendars::get)
        .service(sla_policies::list)
        .service(sla_policies::create)
        .service(sla_policies::get)
        .service(sla_policies::replace)
        .service(sla_policies::remove)
        .service(webhooks::create)
        .service(webhooks::list)
        .service(webhooks::get)
        .service(webhooks::update)
        .service(webhooks::remove)
        .service(webhooks::rotate_secret)
        .service(webhooks::deliveries)
        .service(webhooks::messages)
        .service(webhooks::get_message)
        .service(webhooks::redeliver)
        .service(webhooks::test_send);
}
