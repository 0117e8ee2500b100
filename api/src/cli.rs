//! Command line of `redress-api`.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "redress-api",
    version,
    about = "The Redress complaint-routing hub: HTTP API and administration"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the HTTP API and its outbox relay (the default).
    Serve,
    /// Apply pending database migrations.
    Migrate,
    /// Administration.
    Admin {
        #[command(subcommand)]
        command: AdminCommand,
    },
    /// Print the OpenAPI document.
    Openapi,
}

#[derive(Debug, Subcommand)]
pub enum AdminCommand {
    /// Tenants (consumer organisations).
    Tenant {
        #[command(subcommand)]
        command: TenantCommand,
    },
    /// Working-day calendars shared by every tenant.
    Calendar {
        #[command(subcommand)]
        command: CalendarCommand,
    },
    /// The hub's access-token signing keys (shared by every API process through Postgres).
    SigningKey {
        #[command(subcommand)]
        command: SigningKeyCommand,
    },
    /// A client's credentials: secret rotation and private_key_jwt public keys.
    Client {
        #[command(subcommand)]
        command: ClientCommand,
    },
    /// The hub:admin scope (hub operators' API); only this command grants it.
    HubAdmin {
        #[command(subcommand)]
        command: HubAdminCommand,
    },
    /// Write a new Ed25519 signing key (PKCS#8 PEM).
    Keygen {
        #[arg(long)]
        out: PathBuf,
    },
}

#[derive(Debug, Subcommand)]
pub enum TenantCommand {
    /// Create a tenant and its first client; prints {"tenant_id","client_id","client_secret"}.
    Create {
        #[arg(long)]
        name: String,
        /// Start from a template of routing data (e.g. cn-pos).
        #[arg(long)]
        template: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
pub enum CalendarCommand {
    /// Load (or replace) one year of a built-in calendar from a CSV file in the format of
    /// calendar/data/cn-mainland.csv (date,weekday,type,holiday_name,notice_year,
    /// gov_cn_notice_url; type `off` or `makeup_workday`). Prints a JSON summary.
    LoadYear {
        /// The calendar, e.g. cn-mainland.
        #[arg(long)]
        calendar: String,
        #[arg(long)]
        year: i32,
        #[arg(long)]
        file: PathBuf,
        /// Where the arrangement comes from (e.g. the notice URL), for rows that do not
        /// name it themselves.
        #[arg(long)]
        source: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
pub enum SigningKeyCommand {
    /// Add a new key: published now, signing after signing_keys.publish_lead_secs; the
    /// current key stays published until its last token has expired. Prints JSON.
    Rotate {
        #[arg(long, value_enum, default_value = "EdDSA")]
        algorithm: crate::auth::rotation::NewKeyAlgorithm,
    },
    /// Every key and its state (next, current, retired, expired). Prints JSON.
    List,
}

#[derive(Debug, Subcommand)]
pub enum ClientCommand {
    /// Issue a new secret; the current one keeps working for the overlap. Prints JSON with
    /// the new secret (shown once).
    RotateSecret {
        #[arg(long)]
        client: String,
        /// Seconds the current secret keeps working (default client_auth.secret_overlap_secs;
        /// 0 ends it at once).
        #[arg(long)]
        overlap_secs: Option<u64>,
    },
    /// Register public keys for private_key_jwt from a file holding a JWK or a JWK Set.
    AddKey {
        #[arg(long)]
        client: String,
        #[arg(long)]
        jwk: PathBuf,
    },
    /// The client's registered public keys. Prints JSON.
    ListKeys {
        #[arg(long)]
        client: String,
    },
    /// Remove a registered public key.
    RemoveKey {
        #[arg(long)]
        client: String,
        #[arg(long)]
        kid: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum HubAdminCommand {
    /// Give a client the hub:admin scope.
    Grant {
        #[arg(long)]
        client: String,
    },
    /// Take the hub:admin scope away from a client.
    Revoke {
        #[arg(long)]
        client: String,
    },
}
