//! Administration run from the command line: tenants, signing keys, client credentials.
//! Every change is recorded in the audit log with the actor `cli:<os user>`.

use std::path::Path;

use diesel_async::{AsyncConnection, AsyncPgConnection};
use redress_shared::{
    db::tenants,
    domain::templates,
    ids::{ClientId, TenantId},
};
use serde::Serialize;

use crate::auth::{
    client_admin::{self, Authority},
    keys, rotation, secrets, HUB_ADMIN, SCOPES,
};

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

pub async fn rotate_signing_key(
    settings: &redress_shared::config::Settings,
    algorithm: rotation::NewKeyAlgorithm,
) -> anyhow::Result<rotation::Rotated> {
    let mut conn = AsyncPgConnection::establish(settings.admin_database_url.expose()).await?;
    Ok(rotation::rotate(&mut conn, settings, &cli_actor(), algorithm).await?)
}

pub async fn list_signing_keys(
    settings: &redress_shared::config::Settings,
) -> anyhow::Result<Vec<keys::KeySchedule>> {
    let mut conn = AsyncPgConnection::establish(settings.admin_database_url.expose()).await?;
    Ok(rotation::list(&mut conn, settings).await?)
}

/// The client and its tenant, for commands that name only the client.
async fn client_and_tenant(
    conn: &mut AsyncPgConnection,
    client: &str,
) -> anyhow::Result<(ClientId, TenantId, Vec<String>)> {
    let id = ClientId::parse(client).map_err(|e| anyhow::anyhow!("--client: {e}"))?;
    let row = tenants::find_client(conn, &id)
        .await?
        .ok_or_else(|| anyhow::anyhow!("no enabled client {client}"))?;
    let tenant = TenantId::parse(&row.tenant_id)?;
    Ok((id, tenant, row.scopes))
}

fn admin_error(e: client_admin::ClientAdminError) -> anyhow::Error {
    match e {
        client_admin::ClientAdminError::Invalid(errors) => anyhow::anyhow!(
            "invalid keys: {}",
            errors
                .iter()
                .map(|e| format!(
                    "{} {}",
                    if e.pointer.is_empty() {
                        "(document)"
                    } else {
                        &e.pointer
                    },
                    e.detail
                ))
                .collect::<Vec<_>>()
                .join("; ")
        ),
        other => anyhow::anyhow!("{other}"),
    }
}

pub async fn rotate_client_secret(
    settings: &redress_shared::config::Settings,
    client: &str,
    overlap_secs: Option<u64>,
) -> anyhow::Result<client_admin::RotatedSecret> {
    let mut conn = AsyncPgConnection::establish(settings.admin_database_url.expose()).await?;
    let (id, tenant, _) = client_and_tenant(&mut conn, client).await?;
    let overlap = overlap_secs.unwrap_or(settings.client_auth.secret_overlap_secs);
    client_admin::rotate_secret(
        &mut conn,
        &tenant,
        &id,
        chrono::Duration::seconds(i64::try_from(overlap)?),
        &cli_actor(),
        Authority::Operator,
    )
    .await
    .map_err(admin_error)
}

pub async fn add_client_keys(
    settings: &redress_shared::config::Settings,
    client: &str,
    jwk_file: &Path,
) -> anyhow::Result<Vec<client_admin::ClientKeyView>> {
    let text = std::fs::read_to_string(jwk_file)
        .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", jwk_file.display()))?;
    let body: serde_json::Value = serde_json::from_str(&text)
        .map_err(|e| anyhow::anyhow!("{} is not JSON: {e}", jwk_file.display()))?;
    let mut conn = AsyncPgConnection::establish(settings.admin_database_url.expose()).await?;
    let (id, tenant, _) = client_and_tenant(&mut conn, client).await?;
    client_admin::add_keys(
        &mut conn,
        &tenant,
        &id,
        &body,
        settings.client_auth.max_keys_per_client,
        &cli_actor(),
        Authority::Operator,
    )
    .await
    .map_err(admin_error)
}

pub async fn list_client_keys(
    settings: &redress_shared::config::Settings,
    client: &str,
) -> anyhow::Result<Vec<client_admin::ClientKeyView>> {
    let mut conn = AsyncPgConnection::establish(settings.admin_database_url.expose()).await?;
    let (id, tenant, _) = client_and_tenant(&mut conn, client).await?;
    client_admin::list_keys(&mut conn, &tenant, &id, Authority::Operator)
        .await
        .map_err(admin_error)
}

pub async fn remove_client_key(
    settings: &redress_shared::config::Settings,
    client: &str,
    kid: &str,
) -> anyhow::Result<()> {
    let mut conn = AsyncPgConnection::establish(settings.admin_database_url.expose()).await?;
    let (id, tenant, _) = client_and_tenant(&mut conn, client).await?;
    client_admin::remove_key(
        &mut conn,
        &tenant,
        &id,
        kid,
        &cli_actor(),
        Authority::Operator,
    )
    .await
    .map_err(admin_error)
}

/// Grants (or revokes) `hub:admin`; returns the client's scopes after the change.
pub async fn set_hub_admin(
    database_url: &str,
    client: &str,
    grant: bool,
) -> anyhow::Result<Vec<String>> {
    use redress_shared::{audit, db::client_auth};
    let mut conn = AsyncPgConnection::establish(database_url).await?;
    let (id, tenant, mut scopes) = client_and_tenant(&mut conn, client).await?;
    scopes.retain(|s| s != HUB_ADMIN);
    if grant {
        scopes.push(HUB_ADMIN.to_owned());
    }
    let actor = cli_actor();
    conn.transaction(async |conn| {
        client_auth::set_scopes(conn, &id, &scopes).await?;
        audit::record(
            conn,
            audit::Entry {
                tenant: Some(&tenant),
                actor: &actor,
                action: if grant {
                    "client.hub_admin_granted"
                } else {
                    "client.hub_admin_revoked"
                },
                target: Some(id.as_str()),
                details: serde_json::json!({"scopes": scopes}),
            },
        )
        .await
    })
    .await?;
    Ok(scopes)
}
