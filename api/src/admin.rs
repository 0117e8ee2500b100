//! Administration run from the command line: tenants and signing keys.

use std::path::Path;

use diesel_async::{AsyncConnection, AsyncPgConnection};
use redress_shared::{
    db::tenants,
    domain::templates,
    ids::{ClientId, TenantId},
};
use serde::Serialize;

use crate::auth::{keys, secrets, SCOPES};

#[derive(Debug, Serialize)]
pub struct CreatedTenant {
    pub tenant_id: String,
    pub client_id: String,
    pub client_secret: String,
}

/// Who runs an admin command, for the audit log: `cli:<os user>`.
pub fn cli_actor() -> String {
    let user = std::env::var("USER")
        .or_else(|_| std::env::var("LOGNAME"))
        .unwrap_or_else(|_| "unknown".into());
    format!("cli:{user}")
}

/// Creates a tenant (from a template, if named) and a first client holding every scope.
/// Cross-tenant administration: it runs over the admin URL (the owner) and is audited.
pub async fn create_tenant(
    database_url: &str,
    name: &str,
    template: Option<&str>,
) -> anyhow::Result<CreatedTenant> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > 200 {
        anyhow::bail!("--name must be 1 to 200 characters");
    }
    let template = template.map(templates::load).transpose()?;
    let secret = secrets::generate();
    let hash = secrets::hash(secret.clone()).await?;
    let tenant_id = TenantId::generate();
    let client_id = ClientId::generate();
    let scopes: Vec<String> = SCOPES.iter().map(|s| (*s).to_owned()).collect();
    let mut conn = AsyncPgConnection::establish(database_url).await?;
    conn.transaction(async |conn| {
        tenants::insert_tenant(
            conn,
            &tenant_id,
            name,
            template.as_ref().map(|t| t.template.as_str()),
        )
        .await?;
        tenants::insert_client(
            conn,
            &tenant_id,
            &client_id,
            &format!("{name} (first client)"),
            &hash,
            &scopes,
        )
        .await?;
        if let Some(t) = &template {
            // The template's routing is the tenant's version 1.
            let routing = t.routing.clone();
            redress_shared::routing::store::save_with(
                conn,
                &tenant_id,
                None,
                Some(&format!("template {}", t.template)),
                &format!("system:template:{}", t.template),
                |_| Ok(routing),
            )
            .await
            .map_err(|e| match e {
                redress_shared::routing::store::StoreError::Db(e) => e,
                other => diesel::result::Error::QueryBuilderError(other.to_string().into()),
            })?;
            redress_shared::deadlines::policies::install_template(
                conn,
                &tenant_id,
                &t.template,
                chrono::Utc::now(),
            )
            .await?;
        }
        redress_shared::audit::record(
            conn,
            redress_shared::audit::Entry {
                tenant: Some(&tenant_id),
                actor: &cli_actor(),
                action: "tenant.created",
                target: Some(tenant_id.as_str()),
                details: serde_json::json!({
                    "first_client": client_id.as_str(),
                    "template": template.as_ref().map(|t| t.template.as_str()),
                }),
            },
        )
        .await?;
        Ok::<_, diesel::result::Error>(())
    })
    .await?;
    Ok(CreatedTenant {
        tenant_id: tenant_id.to_string(),
        client_id: client_id.to_string(),
        client_secret: secret,
    })
}

/// Writes a new Ed25519 signing key; refuses to overwrite an existing file.
pub fn keygen(out: &Path) -> anyhow::Result<String> {
    use std::io::Write;
    let pem = keys::generate_ed25519_pem()?;
    let kid = keys::SigningKey::from_pem(&pem)?.kid;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(out).map_err(|e| {
        anyhow::anyhow!(
            "cannot create {}: {e} (an existing key is never overwritten)",
            out.display()
        )
    })?;
    file.write_all(pem.as_bytes())?;
    Ok(kid)
}
