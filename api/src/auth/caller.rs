//! The authenticated caller, extracted from the bearer token of each request. Handlers ask
//! it for a scope; it is also the only way to get a tenant [`Scope`] for queries.

use std::future::{ready, Ready};

use crate::{error::ApiError, state::AppState};
use actix_web::{dev::Payload, http::header, web, FromRequest, HttpRequest};
use redress_shared::{
    ids::{ClientId, TenantId},
    tenancy::Scope,
};

#[derive(Debug, Clone)]
pub struct Caller {
    pub tenant_id: TenantId,
    pub client_id: ClientId,
    pub scopes: Vec<String>,
}

impl Caller {
    pub fn has(&self, scope: &str) -> bool {
        self.scopes.iter().any(|s| s == scope)
    }

    /// 403 unless the token carries `scope`.
    pub fn require(&self, scope: &'static str) -> Result<(), ApiError> {
        if self.has(scope) {
            Ok(())
        } else {
            Err(ApiError::Forbidden(scope))
        }
    }

    /// What this caller may see of complaints: operators and tenant admins see the whole
    /// tenant, a partner app only what it filed.
    pub fn complaint_scope(&self) -> Scope {
        if self.has("cases:operate") || self.has("tenant:admin") {
            Scope::tenant(self.tenant_id.clone())
        } else {
            Scope::client(self.tenant_id.clone(), self.client_id.clone())
        }
    }
}

impl FromRequest for Caller {
    type Error = ApiError;
    type Future = Ready<Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(authenticate(req))
    }
}

fn authenticate(req: &HttpRequest) -> Result<Caller, ApiError> {
    let Some(state) = req.app_data::<web::Data<AppState>>() else {
        return Err(ApiError::internal("application state missing"));
    };
    let Some(value) = req.headers().get(header::AUTHORIZATION) else {
        return Err(ApiError::Unauthenticated {
            token_presented: false,
        });
    };
    let token = value
        .to_str()
        .ok()
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(str::trim)
        .ok_or(ApiError::Unauthenticated {
            token_presented: false,
        })?;
    let settings = &state.settings.token;
    let claims = state
        .verified_tokens
        .verify(
            &state.keys.get(),
            &settings.issuer,
            &settings.audience,
            settings.leeway_secs,
            token,
        )
        .map_err(|error| {
            tracing::info!(%error, "bearer token refused");
            ApiError::Unauthenticated {
                token_presented: true,
            }
        })?;
    let tenant_id = TenantId::parse(&claims.tid).map_err(|_| ApiError::Unauthenticated {
        token_presented: true,
    })?;
    let client_id = ClientId::parse(&claims.sub).map_err(|_| ApiError::Unauthenticated {
        token_presented: true,
    })?;
    tracing::Span::current().record("tenant.id", tenant_id.as_str());
    state.limits.check_request(client_id.as_str())?;
    Ok(Caller {
        tenant_id,
        client_id,
        scopes: claims.scope.split_whitespace().map(str::to_owned).collect(),
    })
}
