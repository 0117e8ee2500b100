//! The tenant is part of the types: every tenant-owned query takes a [`Scope`], which only
//! the auth layer (from a verified token) or the worker (from a message it is processing)
//! can build.

use crate::ids::{ClientId, TenantId};

/// What a caller may see. Partner apps see the complaints they filed; operators and tenant
/// admins see the whole tenant. Another tenant's rows are never visible.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Scope {
    pub tenant_id: TenantId,
    /// `Some` narrows to one client's own complaints.
    pub client_id: Option<ClientId>,
}

impl Scope {
    pub fn tenant(tenant_id: TenantId) -> Self {
        Self {
            tenant_id,
            client_id: None,
        }
    }
    pub fn client(tenant_id: TenantId, client_id: ClientId) -> Self {
        Self {
            tenant_id,
            client_id: Some(client_id),
        }
    }
}
