//! The OpenAPI 3.1 document, generated from the handlers. `docs/openapi.json` is the
//! committed copy; a test fails when the two differ (`redress-api openapi > docs/openapi.json`
//! refreshes it).

use utoipa::{
    openapi::security::{
        ClientCredentials, Flow, HttpAuthScheme, HttpBuilder, OAuth2, Scopes, SecurityScheme,
    },
    Modify, OpenApi,
};

use crate::routes;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Redress API",
        description = "Multi-tenant complaint-routing hub: partner apps file complaints, the hub routes them up the ladder of channels, watches their deadlines and reports every step.",
        license(name = "Apache-2.0")
    ),
    paths(
        routes::oauth::token,
        routes::oauth::jwks,
        routes::complaints::create,
        routes::complaints::list,
        routes::complaints::get,
        routes::complaints::events,
        routes::cases::transition,
        routes::cases::feedback,
        routes::cases::withdraw,
        routes::cases::add_evidence,
        routes::routing::get_routing,
        routes::routing::replace_routing,
        routes::routing::list_versions,
        routes::routing::get_version,
        routes::routing::list_entries,
        routes::routing::put_entry,
        routes::routing::delete_entry,
        routes::routing::preview,
        routes::clients::create,
        routes::clients::rotate_secret,
        routes::clients::add_keys,
        routes::clients::list_keys,
        routes::clients::remove_key,
        routes::hub::list_signing_keys,
        routes::hub::rotate_signing_key,
        routes::privacy::export,
        routes::privacy::erase,
        routes::privacy::list_audit,
        routes::deadlines::extend,
        routes::calendars::list,
        routes::calendars::get,
        routes::calendars::create,
        routes::calendars::put_days,
        routes::calendars::due_date,
        routes::calendars::list_days,
        routes::sla_policies::list,
        routes::sla_policies::get,
        routes::sla_policies::create,
        routes::sla_policies::replace,
        routes::sla_policies::remove,
        routes::webhooks::create,
        routes::webhooks::list,
        routes::webhooks::get,
        routes::webhooks::update,
        routes::webhooks::remove,
        routes::webhooks::rotate_secret,
        routes::webhooks::deliveries,
        routes::webhooks::messages,
        routes::webhooks::get_message,
        routes::webhooks::redeliver,
        routes::webhooks::test_send,
        routes::health::healthz,
        routes::health::readyz,
        routes::health::metrics,
    ),
    components(schemas(crate::error::Problem, crate::error::ParamError, redress_shared::domain::FieldError)),
    modifiers(&Security),
    tags(
        (name = "auth", description = "OAuth 2.0 client credentials and the token signing keys"),
        (name = "complaints", description = "Filing and following complaints"),
        (name = "administration", description = "Tenant administration: clients, their secrets and their private_key_jwt keys"),
        (name = "hub", description = "Hub operators (scope hub:admin, granted only by `redress-api admin hub-admin grant`): signing-key rotation"),
        (name = "personal-data", description = "Export and erasure of a complainant's personal data (docs/PRIVACY.md)"),
        (name = "routing", description = "The tenant's routing: channels, providers, categories, ladders, rules, versions and the preview (CONTRACT §3; docs/ROUTING.md)"),
        (name = "calendars", description = "Working-day calendars: due dates and day lists (CONTRACT §4)"),
        (name = "sla-policies", description = "SLA policies: the deadlines of each rung (CONTRACT §4)"),
        (name = "webhooks", description = "Webhook endpoints, their delivery log, redelivery and test sends (CONTRACT §5, Standard Webhooks)"),
        (name = "operations", description = "Health and readiness"),
    )
)]
pub struct ApiDoc;

struct Security;

impl Modify for Security {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .build(),
            ),
        );
        components.add_security_scheme(
            "oauth2",
            SecurityScheme::OAuth2(OAuth2::new([Flow::ClientCredentials(
                ClientCredentials::new(
                    "/oauth/token",
                    Scopes::from_iter([
                        ("complaints:write", "File complaints"),
                        ("complaints:read", "Read complaints"),
                        ("webhooks:manage", "Manage webhook endpoints"),
                        ("cases:operate", "Work cases as an operator"),
                        ("tenant:admin", "Administer the tenant"),
                        (
                            "hub:admin",
                            "Operate the hub (signing keys); granted by the admin command only",
                        ),
                    ]),
                ),
            )])),
        );
    }
}

/// The document as served and committed: pretty JSON with a trailing newline.
pub fn document() -> String {
    let mut s = ApiDoc::openapi()
        .to_pretty_json()
        .unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"));
    s.push('\n');
    s
}
