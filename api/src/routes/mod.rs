//! HTTP routes, one module per resource.

pub mod clients;
pub mod complaints;
pub mod health;
pub mod oauth;

use actix_web::web;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(health::healthz)
        .service(health::readyz)
        .service(oauth::token)
        .service(oauth::jwks)
        .service(complaints::create)
        .service(complaints::list)
        .service(complaints::get)
        .service(complaints::events)
        .service(clients::create);
}
