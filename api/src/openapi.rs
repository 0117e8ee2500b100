//! The OpenAPI 3.1 document, generated from the handlers. `docs/openapi.json` is the
//! committed copy; a test fails when the two differ (`redress-api openapi > docs/openapi.json`
//! refreshes it).

use utoipa::{
    openapi::{
        path::{Operation, ParameterIn, PathItem},
        schema::{AdditionalProperties, ArrayItems, SchemaType, Type},
        security::{
            ClientCredentials, Flow, HttpAuthScheme, HttpBuilder, OAuth2, Scopes, SecurityScheme,
        },
        ContentBuilder, Ref, RefOr, Response, ResponseBuilder, Schema,
    },
    Modify, OpenApi,
};

use crate::{error::PROBLEM_JSON, routes};

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
    modifiers(&Security, &CommonResponses),
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

/// Adds the answers every operation of a kind can give and that its handler does not list:
/// 401/403/429/503 on authenticated operations, 400/413/422 on operations with a body
/// (malformed JSON, the body-limit middleware, validation), 422 on operations with query
/// parameters and 404 on operations with path parameters. All are problem+json.
struct CommonResponses;

/// Request bodies whose handlers refuse fields they do not know.
const CLOSED_SCHEMAS: &[&str] = &[
    "Complainant",
    "Respondent",
    "Money",
    "Evidence",
    "PriorContact",
    "NewCalendarBody",
    "DaysBody",
    "NewClient",
    "RotateSecret",
    "SubjectRequest",
    "Feedback",
    "TransitionBody",
    "WithdrawBody",
    "EvidenceBody",
    "DayEntry",
    "ExtendBody",
];

/// Schemas that are request bodies and parts of answers too: the request gets a closed
/// copy under the second name.
const REQUEST_COPIES: &[(&str, &str)] = &[
    ("ComplaintInput", "NewComplaint"),
    ("SlaPolicy", "SlaPolicyInput"),
];

/// Request bodies whose handlers ignore fields they do not know (but not NUL in them).
const OPEN_SCHEMAS: &[&str] = &["RotateSigningKey"];

impl Modify for CommonResponses {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        if let Some(components) = openapi.components.as_mut() {
            // Not the problem documents: they echo what was refused, NUL included.
            for (name, schema) in components.schemas.iter_mut() {
                if !["Problem", "ParamError", "FieldError"].contains(&name.as_str()) {
                    refuse_nul(schema);
                }
            }
            for name in OPEN_SCHEMAS {
                if let Some(RefOr::T(Schema::Object(object))) = components.schemas.get_mut(*name) {
                    object.additional_properties = Some(Box::new(AdditionalProperties::RefOr(
                        Ref::from_schema_name("NulFreeJson").into(),
                    )));
                }
            }
            for name in CLOSED_SCHEMAS {
                if let Some(RefOr::T(Schema::Object(object))) = components.schemas.get_mut(*name) {
                    object.additional_properties =
                        Some(Box::new(AdditionalProperties::FreeForm(false)));
                }
            }
            // Exactly one of the two, a null counting as absent.
            if let Some(RefOr::T(Schema::Object(subject))) =
                components.schemas.get_mut("SubjectRequest")
            {
                subject.max_properties = None;
                for field in ["phone", "complaint_id"] {
                    if let Some(RefOr::T(Schema::Object(p))) = subject.properties.get_mut(field) {
                        p.schema_type = SchemaType::Array(vec![Type::String, Type::Null]);
                    }
                }
                let given = |f: &str| serde_json::json!({"required": [f], "properties": {f: {"type": "string"}}});
                // One keyword only: extensions are a hash map, and the document must come out
                // the same every time.
                subject
                    .extensions
                    .get_or_insert_with(Default::default)
                    .insert(
                        "allOf".into(),
                        serde_json::json!([
                            {"anyOf": [given("phone"), given("complaint_id")]},
                            {"not": both("phone", "string", "complaint_id", "string")},
                        ]),
                    );
            }
            // Not both warning points (a null counting as absent); the time zone as
            // `chrono-tz` names it.
            if let Some(RefOr::T(Schema::Object(policy))) = components.schemas.get_mut("SlaPolicy")
            {
                if let Some(RefOr::T(Schema::Object(tz))) = policy.properties.get_mut("time_zone") {
                    tz.enum_values = Some(time_zone_names(true));
                }
                let given = |f: &str| serde_json::json!({"required": [f], "properties": {f: {"type": "object"}}});
                policy
                    .extensions
                    .get_or_insert_with(Default::default)
                    .insert(
                        "allOf".into(),
                        serde_json::json!([
                            {"not": both("warn_at_fraction", "number", "warn_before", "object")},
                            {"anyOf": [given("acknowledge"), given("respond")]},
                        ]),
                    );
            }
            // `reject` needs its reason in `note`.
            if let Some(RefOr::T(Schema::Object(transition))) =
                components.schemas.get_mut("TransitionBody")
            {
                transition.extensions.get_or_insert_with(Default::default).insert(
                    "not".into(),
                    serde_json::json!({
                        "required": ["action"],
                        "properties": {"action": {"const": "reject"}},
                        "not": {"required": ["note"], "properties": {"note": {"type": "string"}}}
                    }),
                );
            }
            components
                .schemas
                .insert("NulFreeJson".to_owned(), nul_free_json());
            if let (Some(pattern), Some(RefOr::T(Schema::Object(day)))) = (
                known_dates_pattern(false),
                components.schemas.get_mut("DayEntry"),
            ) {
                if let Some(RefOr::T(Schema::Object(date))) = day.properties.get_mut("date") {
                    date.pattern = Some(pattern);
                }
            }
            // `ComplaintInput` and `SlaPolicy` are also parts of answers, so only the
            // requests' copies are closed.
            for (shown, request_name) in REQUEST_COPIES {
                if let Some(RefOr::T(Schema::Object(shown))) = components.schemas.get(*shown) {
                    let mut request = shown.clone();
                    request.additional_properties =
                        Some(Box::new(AdditionalProperties::FreeForm(false)));
                    if *request_name == "SlaPolicyInput" {
                        // Accepted and ignored, so that a GET answer can be PUT back.
                        request.properties.insert(
                            "created_at".to_owned(),
                            RefOr::T(Schema::Object(
                                utoipa::openapi::ObjectBuilder::new()
                                    .schema_type(SchemaType::AnyValue)
                                    .description(Some("Ignored"))
                                    .build(),
                            )),
                        );
                    }
                    components.schemas.insert(
                        (*request_name).to_owned(),
                        RefOr::T(Schema::Object(request)),
                    );
                }
            }
        }
        for (path, item) in openapi.paths.paths.iter_mut() {
            let calendar_dates = path.starts_with("/v1/calendars/");
            for op in operations_mut(item) {
                for param in op.parameters.iter_mut().flatten() {
                    if let Some(schema) = param.schema.as_mut() {
                        refuse_nul(schema);
                    }
                    let Some(RefOr::T(Schema::Object(schema))) = param.schema.as_mut() else {
                        continue;
                    };
                    match param.name.as_str() {
                        // What `chrono-tz` parses, which is what the API accepts.
                        "time_zone" => schema.enum_values = Some(time_zone_names(false)),
                        "from" | "to" if calendar_dates => {
                            let instant = path.ends_with("/due-date");
                            schema.pattern = known_dates_pattern(instant);
                        }
                        _ => {}
                    }
                }
                let mut codes: Vec<(&str, &str)> = Vec::new();
                if op.security.as_ref().is_some_and(|s| !s.is_empty()) {
                    codes.push(("401", "The bearer token is missing, invalid or expired"));
                    codes.push(("403", "The token lacks the scope this operation needs"));
                    codes.push((
                        "429",
                        "Too many requests from this client; see `Retry-After`",
                    ));
                    codes.push(("503", "A dependency (the database) is unavailable"));
                }
                if op.request_body.is_some() {
                    codes.push(("400", "The request body is not valid JSON"));
                    codes.push(("413", "The request body is too large or too deeply nested"));
                    codes.push(("422", "The request is invalid; see `errors`"));
                }
                // An optional body is documented as absent-or-object, not as `null`, which
                // the handlers refuse.
                if let Some(body) = op.request_body.as_mut() {
                    for content in body.content.values_mut() {
                        if let Some(schema) = content.schema.as_mut() {
                            refuse_nul(schema);
                        }
                        if let Some(RefOr::Ref(r)) = &content.schema {
                            let copy = REQUEST_COPIES.iter().find(|(shown, _)| {
                                r.ref_location == format!("#/components/schemas/{shown}")
                            });
                            if let Some((_, request_name)) = copy {
                                content.schema = Some(Ref::from_schema_name(*request_name).into());
                            }
                        }
                        if let Some(RefOr::T(Schema::OneOf(one))) = &content.schema {
                            let not_null: Vec<_> =
                                one.items.iter().filter(|s| !is_null(s)).cloned().collect();
                            if not_null.len() == 1 && one.items.len() == 2 {
                                content.schema = not_null.into_iter().next();
                            }
                        }
                    }
                }
                let params = op.parameters.as_deref().unwrap_or_default();
                if params
                    .iter()
                    .any(|p| matches!(p.parameter_in, ParameterIn::Query | ParameterIn::Header))
                {
                    codes.push(("422", "The request is invalid; see `errors`"));
                }
                if params
                    .iter()
                    .any(|p| matches!(p.parameter_in, ParameterIn::Path))
                {
                    codes.push(("404", "No such resource"));
                }
                for (code, description) in codes {
                    op.responses
                        .responses
                        .entry(code.to_owned())
                        .or_insert_with(|| problem_response(description));
                }
            }
        }
    }
}

/// Every string without a pattern, enum or format of its own says it holds no NUL: the API
/// refuses NUL anywhere in a path, query or body (Postgres text cannot hold it).
fn refuse_nul(schema: &mut RefOr<Schema>) {
    let RefOr::T(schema) = schema else {
        return;
    };
    match schema {
        Schema::Object(o) => {
            let is_string = match &o.schema_type {
                SchemaType::Type(t) => *t == Type::String,
                SchemaType::Array(ts) => ts.contains(&Type::String),
                SchemaType::AnyValue => false,
            };
            if is_string && o.pattern.is_none() && o.enum_values.is_none() && o.format.is_none() {
                o.pattern = Some("^[^\\u0000]*$".to_owned());
            }
            for property in o.properties.values_mut() {
                refuse_nul(property);
            }
            // A free-form object (no properties named) holds any JSON but NUL.
            let is_object = matches!(&o.schema_type, SchemaType::Type(Type::Object));
            if is_object && o.properties.is_empty() && o.additional_properties.is_none() {
                o.additional_properties = Some(Box::new(AdditionalProperties::RefOr(
                    Ref::from_schema_name("NulFreeJson").into(),
                )));
            }
        }
        Schema::Array(a) => {
            if let ArrayItems::RefOrSchema(items) = &mut a.items {
                refuse_nul(items);
            }
        }
        Schema::OneOf(one) => one.items.iter_mut().for_each(refuse_nul),
        Schema::AllOf(all) => all.items.iter_mut().for_each(refuse_nul),
        Schema::AnyOf(any) => any.items.iter_mut().for_each(refuse_nul),
        _ => {}
    }
}

/// The years the built-in calendars know (a tenant may load more): dates outside them are
/// refused with 422.
fn known_years_pattern() -> Option<String> {
    let years = redress_shared::calendar::Calendar::cn_mainland().known_years()?;
    let years: Vec<String> = years.map(|y| format!("{y:04}")).collect();
    Some(format!(
        "^({})-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])",
        years.join("|")
    ))
}

/// `known_years_pattern` for a date (`YYYY-MM-DD`) or an RFC 3339 instant.
fn known_dates_pattern(instant: bool) -> Option<String> {
    let date = known_years_pattern()?;
    Some(if instant {
        format!("{date}T([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](\\.[0-9]{{1,9}})?(Z|[+-](0[0-9]|1[0-3]):[0-5][0-9])$")
    } else {
        format!("{date}$")
    })
}

/// Any JSON value whose strings hold no NUL (what the body check lets through), for the
/// free-form parts of request bodies.
fn nul_free_json() -> RefOr<Schema> {
    schema_from_json(serde_json::json!({
        "anyOf": [
            {"type": ["null", "boolean", "number"]},
            {"type": "string", "pattern": "^[^\\u0000]*$"},
            {"type": "array", "items": {"$ref": "#/components/schemas/NulFreeJson"}},
            {"type": "object", "additionalProperties": {"$ref": "#/components/schemas/NulFreeJson"}}
        ]
    }))
}

/// A schema matching objects where both fields are given (not null).
fn both(a: &str, a_type: &str, b: &str, b_type: &str) -> serde_json::Value {
    serde_json::json!({
        "required": [a, b],
        "properties": {a: {"type": a_type}, b: {"type": b_type}}
    })
}

fn schema_from_json(value: serde_json::Value) -> RefOr<Schema> {
    serde_json::from_value(value).unwrap_or_else(|e| panic!("a schema written here: {e}"))
}

fn time_zone_names(nullable: bool) -> Vec<serde_json::Value> {
    let mut names: Vec<serde_json::Value> = chrono_tz::TZ_VARIANTS
        .iter()
        .map(|tz| tz.name().into())
        .collect();
    if nullable {
        names.push(serde_json::Value::Null);
    }
    names
}

fn is_null(schema: &RefOr<Schema>) -> bool {
    matches!(schema, RefOr::T(Schema::Object(o)) if o.schema_type == SchemaType::Type(Type::Null))
}

fn problem_response(description: &str) -> RefOr<Response> {
    RefOr::T(
        ResponseBuilder::new()
            .description(description)
            .content(
                PROBLEM_JSON,
                ContentBuilder::new()
                    .schema(Some(Ref::from_schema_name("Problem")))
                    .build(),
            )
            .build(),
    )
}

fn operations_mut(item: &mut PathItem) -> impl Iterator<Item = &mut Operation> {
    [
        &mut item.get,
        &mut item.put,
        &mut item.post,
        &mut item.delete,
        &mut item.options,
        &mut item.head,
        &mut item.patch,
        &mut item.trace,
    ]
    .into_iter()
    .filter_map(|o| o.as_mut())
}

/// The documented paths and the methods each serves, to tell "no such resource" (404)
/// from "not with this method" (405 with `Allow`).
pub struct KnownPaths(Vec<(Vec<Option<String>>, Vec<&'static str>)>);

impl KnownPaths {
    pub fn from_document(openapi: &utoipa::openapi::OpenApi) -> Self {
        let paths = openapi
            .paths
            .paths
            .iter()
            .map(|(path, item)| {
                let segments = path
                    .split('/')
                    .map(|s| (!(s.starts_with('{') && s.ends_with('}'))).then(|| s.to_owned()))
                    .collect();
                let methods = [
                    ("GET", item.get.is_some()),
                    ("HEAD", item.head.is_some()),
                    ("POST", item.post.is_some()),
                    ("PUT", item.put.is_some()),
                    ("PATCH", item.patch.is_some()),
                    ("DELETE", item.delete.is_some()),
                    ("OPTIONS", item.options.is_some()),
                    ("TRACE", item.trace.is_some()),
                ]
                .into_iter()
                .filter_map(|(m, served)| served.then_some(m))
                .collect();
                (segments, methods)
            })
            .collect();
        Self(paths)
    }

    /// The methods served at `path`, from the most specific documented path it matches
    /// (the one with the most fixed segments); `None` when no documented path matches.
    pub fn methods(&self, path: &str) -> Option<&[&'static str]> {
        let wanted: Vec<&str> = path.split('/').collect();
        self.0
            .iter()
            .filter(|(segments, _)| {
                segments.len() == wanted.len()
                    && segments.iter().zip(&wanted).all(|(s, w)| match s {
                        Some(fixed) => fixed == w,
                        None => !w.is_empty(),
                    })
            })
            .max_by_key(|(segments, _)| segments.iter().filter(|s| s.is_some()).count())
            .map(|(_, methods)| methods.as_slice())
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
