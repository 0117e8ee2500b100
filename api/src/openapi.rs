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
        routes::clients::create,
        routes::health::healthz,
        routes::health::readyz,
    ),
    components(schemas(crate::error::Problem, crate::error::ParamError, redress_shared::domain::FieldError)),
    modifiers(&Security),
    tags(
        (name = "auth", description = "OAuth 2.0 client credentials and the token signing keys"),
        (name = "complaints", description = "Filing and following complaints"),
        (name = "administration", description = "Tenant administration"),
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
